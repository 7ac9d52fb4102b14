"""Servers and a notebook for the browser checks (JupyterLab and Voila in headless Chromium)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from tests.browser.app_server import CHROMIUM

ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots (gitignored)


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def write_panel_notebook(path: Path) -> Path:
    """One cell that shows the panel, with the kernelspec set (no kernel picker)."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from revtops_kernel import ChatPanel\npanel = ChatPanel()\npanel"
        )
    ]
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
