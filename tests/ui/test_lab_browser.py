"""The chat panel in JupyterLab, in headless Chromium: open a notebook, run the panel, ask,
see the streamed answer and the chart. A screenshot is kept in tests/ui/artifacts/.

Needs Debian's chromium (/usr/bin/chromium); skipped when it is missing, saying so.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from revtops_kernel.sandbox.anthropic import ScriptedMessagesServer
from tests.ui.notebook_env import (
    PIPELINE_QUESTION,
    pipeline_turns,
    point_kernel_at,
    prepare_store,
)

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
TOKEN = "revtops-browser-test"
ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSER_TIMEZONE = "Asia/Tokyo"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, ScriptedMessagesServer]]:
    """JupyterLab on a free loopback port, serving a notebook that shows the panel."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    root = tmp_path / "root"
    root.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from revtops_kernel import ChatPanel\npanel = ChatPanel()\npanel"
        )
    ]
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }  # fmt: skip
    nbformat.write(notebook, root / "panel.ipynb")
    settings = tmp_path / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    with ScriptedMessagesServer() as api:
        point_kernel_at(monkeypatch, api, prepare_store(tmp_path))
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                     "JUPYTERLAB_WORKSPACES_DIR"):  # fmt: skip
            monkeypatch.setenv(name, str(tmp_path / name.lower()))
        port = free_port()
        log = (tmp_path / "lab.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
             f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
             "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(
                            "JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()
                        )
                    time.sleep(0.5)
            yield base, api
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def test_panel_in_jupyterlab(lab: tuple[str, ScriptedMessagesServer]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, api = lab
    api.script(*pipeline_turns())
    expect.set_options(timeout=120_000)  # a loaded CI machine: the kernel imports take a while
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update"],
        )  # fmt: skip
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, timezone_id=BROWSER_TIMEZONE
        )
        page = context.new_page()
        page.set_default_timeout(120_000)
        try:
            page.goto(f"{base}/lab/tree/panel.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()  # the kernel is up
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Shift+Enter")
            question_box = page.locator(".revtops-chat .rt-input input")
            question_box.wait_for()
            question_box.fill(PIPELINE_QUESTION)
            question_box.press("Enter")

            answer = page.locator(".revtops-chat .rt-text", has_text="largest bucket")
            expect(answer).to_be_visible()
            expect(page.locator(".revtops-chat .rt-chart .js-plotly-plot")).to_be_visible()
            expect(page.locator(".revtops-chat .rt-tool", has_text="run_sql_query")).to_be_visible()
            expect(page.locator(".revtops-chat .rt-user")).to_have_text(PIPELINE_QUESTION)
            expect(page.locator(".revtops-chat .rt-messages")).not_to_contain_text("Answering")
            # the model's <script> is text on the page, never an element
            expect(page.locator(".revtops-chat .rt-text", has_text="<script>")).to_be_visible()
            assert page.locator(".revtops-chat .rt-messages script").count() == 0
            expect(answer).to_be_in_viewport()  # the thread keeps its newest text in view
            page.screenshot(path=str(ARTIFACTS / "lab_panel.png"), full_page=True)
            summary = page.locator(".revtops-chat .rt-tool summary", has_text="run_sql_query")
            summary.click()  # scrolls the card into view and opens it: the SQL
            expect(page.locator(".revtops-chat .rt-tool[open] pre").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "lab_panel_sql.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "lab_panel_failure.png"), full_page=True)
            raise
        finally:
            browser.close()

    system = json.dumps(api.requests[0].body["system"])
    assert BROWSER_TIMEZONE in system  # the browser's zone reached the model, not the setting
