"""What a customer installs: the product's wheel has no sandbox, and needs no sandbox server.

The sandbox is its own distribution (``revtops_sandbox/pyproject.toml``), pulled in by the
product's ``sandbox`` extra; its commands reach the CLI through an entry point.
"""

from __future__ import annotations

import re
import zipfile
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from pathlib import Path

import pytest
from helpers import build_wheel
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_ONLY = {"starlette", "uvicorn"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, product_wheel: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wheels")
    return {
        "product": product_wheel,
        "sandbox": build_wheel(ROOT / "revtops_sandbox", base / "sandbox", timeout=300),
    }


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    return [
        Requirement(line.split(":", 1)[1])
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def test_the_product_wheel_contains_no_sandbox(wheels: dict[str, Path]) -> None:
    with zipfile.ZipFile(wheels["product"]) as archive:
        names = archive.namelist()
    assert any(n.startswith("revtops_kernel/") for n in names)
    assert any(n.startswith("revtops_server/") for n in names)
    assert "revtops_server/templates/index.html.j2" in names  # the page without CDN links
    assert not [n for n in names if "sandbox" in n.split("/")[0] or n.startswith("revtops_sandbox")]
    # The stock notebooks ship as package data (revtops_kernel.notebooks finds them there).
    stock = {Path(n).name for n in names if n.startswith("revtops_kernel/stock_notebooks/")}
    assert {"app.ipynb", "sync.ipynb", "pipeline_digest.ipynb", "tutorial.ipynb"} <= stock
    plain = {r.name.lower() for r in _requirements(wheels["product"]) if r.marker is None}
    assert not plain & SANDBOX_ONLY
    extra = [r for r in _requirements(wheels["product"]) if r.marker is not None]
    assert any(r.name == "revtops-sandbox" and "sandbox" in str(r.marker) for r in extra)


def test_the_sandbox_wheel_carries_the_sandbox_and_its_commands(
    wheels: dict[str, Path],
) -> None:
    with zipfile.ZipFile(wheels["sandbox"]) as archive:
        names = set(archive.namelist())
        (points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = archive.read(points).decode()
    assert {"revtops_sandbox/server.py", "revtops_sandbox/commands/demo.py"} <= names
    assert "revtops_sandbox/evals/golden.py" in names
    assert not [n for n in names if n.startswith("revtops_kernel/")]
    assert "pyproject.toml" not in {Path(n).name for n in names}
    assert re.search(
        r"\[revtops\.commands\]\s*\nsandbox = revtops_sandbox\.commands:register", entry_text
    )
    plain = {r.name.lower() for r in _requirements(wheels["sandbox"])}
    assert {"revtops-kernel", "starlette", "uvicorn"} <= plain


def _reachable(name: str, seen: set[str]) -> None:
    """Distributions installed here that ``name`` needs without extras, transitively."""
    key = name.lower().replace("_", "-")
    if key in seen:
        return
    seen.add(key)
    try:
        requires = distribution(key).requires or []
    except PackageNotFoundError:
        return
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        _reachable(requirement.name, seen)


def test_installing_the_product_without_the_extra_pulls_in_no_sandbox_server() -> None:
    needed: set[str] = set()
    _reachable("revtops-kernel", needed)
    assert "jupyter-server" in needed and "sqlalchemy" in needed  # the walk saw the real graph
    assert not needed & SANDBOX_ONLY, sorted(needed & SANDBOX_ONLY)
    assert "revtops-sandbox" not in needed


def test_sandbox_commands_register_through_the_entry_point() -> None:
    found = {e.name: e.value for e in entry_points(group="revtops.commands")}
    assert found == {"sandbox": "revtops_sandbox.commands:register"}


def test_without_the_sandbox_its_commands_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from revtops_kernel import cli

    # As where the sandbox distribution is not installed: no entry point in the group.
    monkeypatch.setattr("importlib.metadata.entry_points", lambda **_: [])
    for argv in (["demo", "--no-app"], ["eval", "--gold-only"], ["sandbox", "serve"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert f"revtops {argv[0]}: needs the sandbox" in err
        assert "pip install 'revtops-kernel[sandbox]'" in err
