"""The product as a customer installs it: the wheel in a fresh virtual environment, used from a
directory that is not the source tree. Its stock notebooks, its database, a workflow run and the
web app's first page all work, and the sandbox commands say how to get the sandbox."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.browser.app_server import free_port

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, product_wheel: Path) -> Path:
    """``bin/`` of a new virtual environment with only the product's wheel installed."""
    uv = str(UV) if UV.exists() else shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    base = tmp_path_factory.mktemp("installed")
    run = {"check": True, "capture_output": True, "timeout": 600}
    wheel = product_wheel
    venv = base / "venv"
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], **run)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel)], **run
    )
    return venv / "bin"


def _revtops(bin_dir: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "REVTOPS_HOME": str(home / ".revtops"),
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [str(bin_dir / "revtops"), *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_installed_product_works_outside_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    site = subprocess.run(
        [str(installed / "python"), "-c", "import revtops_kernel; print(revtops_kernel.__file__)"],
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT) not in site  # the wheel's copy, not the checkout
    listed = _revtops(installed, home, "notebooks", "list")
    assert listed.returncode == 0, listed.stderr
    assert "stock_notebooks" in listed.stdout and "pipeline_digest" in listed.stdout
    upgraded = _revtops(installed, home, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    added = _revtops(installed, home, "workflows", "add", "nightly", "sync", "--cron", "0 2 * * *")
    assert added.returncode == 0, added.stderr
    ran = _revtops(installed, home, "workflows", "run", "nightly")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "succeeded" in ran.stdout
    demo = _revtops(installed, home, "demo", "--no-app")
    assert demo.returncode == 2
    assert "pip install 'revtops-kernel[sandbox]'" in demo.stderr
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(
            [str(installed / "python"), "-c", "import revtops_sandbox"],
            cwd=home,
            capture_output=True,
            check=True,
        )


def test_the_installed_web_app_serves_its_first_page(installed: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {
        "PATH": f"{installed}:/usr/bin:/bin",
        "HOME": str(home),
        "REVTOPS_HOME": str(home / ".revtops"),
        "JUPYTER_TOKEN": "wheel-test-token",  # local mode: the token admits the owner
    }
    app = subprocess.Popen(
        [str(installed / "revtops"), "app", "--port", str(port), "--no-browser"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300  # polled: cold starts under xdist load
        page = None
        while time.monotonic() < deadline:
            try:
                page = httpx.get(
                    f"http://127.0.0.1:{port}/?token=wheel-test-token",
                    follow_redirects=True,
                    timeout=120,
                )
                break
            except httpx.TransportError:
                if app.poll() is not None:
                    break
                time.sleep(0.5)
        assert page is not None, app.stderr.read() if app.stderr else ""
        assert page.status_code == 200
        assert "Revtops Workbench" in page.text  # the app notebook rendered, from the wheel
        assert "cdn.jsdelivr.net" not in page.text  # the wheel's page template
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
