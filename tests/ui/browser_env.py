"""Servers and a notebook for the browser checks (JupyterLab and Voila in headless Chromium)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer
from tests.browser.app_server import CHROMIUM, free_port
from tests.ui.notebook_env import point_kernel_at, prepare_store

ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots (gitignored)


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def write_panel_notebook(path: Path) -> Path:
    """One cell that shows the panel, with the kernelspec set (no kernel picker)."""
    return write_notebook(
        path, ["from revtops_kernel import ChatPanel\npanel = ChatPanel()\npanel"]
    )


def write_notebook(path: Path, cells: Sequence[str]) -> Path:
    """Code cells, with the kernelspec set (no kernel picker)."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


@contextmanager
def serve(command: Sequence[str], ready_url: str, log_path: Path) -> Iterator[None]:
    """Run a server until ``ready_url`` answers; stop it afterwards (by its own pid)."""
    with log_path.open("w") as log:
        server = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
        try:
            deadline = time.monotonic() + 300  # polled: cold starts under xdist load
            while True:
                try:
                    with urllib.request.urlopen(ready_url, timeout=2):
                        break
                except urllib.error.HTTPError:
                    break  # it answered (a static route may refuse a tokenless probe): it is up
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"{command[2]} did not start:\n{log_path.read_text()}")
                    time.sleep(0.5)
            yield
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()


@contextmanager
def kernel_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ScriptedMessagesServer]:
    """A scripted Messages API and a store for kernels, and JupyterLab's own directories in
    ``tmp_path`` (no news, no user settings leaking in)."""
    require_chromium()
    with ScriptedMessagesServer() as server:
        point_kernel_at(monkeypatch, server, prepare_store(tmp_path))
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                     "JUPYTERLAB_WORKSPACES_DIR"):  # fmt: skip
            monkeypatch.setenv(name, str(tmp_path / name.lower()))
        settings = tmp_path / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        yield server


LAB_TOKEN = "revtops-lab-test"


@contextmanager
def jupyterlab(root: Path, log_path: Path) -> Iterator[str]:
    """JupyterLab serving ``root`` until the block ends; yields its base URL (token: LAB_TOKEN)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={LAB_TOKEN}",
        f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    with serve(command, f"{base}/api/status?token={LAB_TOKEN}", log_path):
        yield base
