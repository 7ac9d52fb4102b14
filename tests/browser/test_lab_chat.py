"""The chat in JupyterLab (headless Chromium), the parts tests/ui/test_lab_browser.py leaves out:
``%%ask`` in a cell (the streamed answer, its SQL and its chart, the model's <script> as text),
and in ``ChatPanel()`` an answer watched while it streams, stopped midway with the Stop button,
then another stopped with Esc. Screenshots: /tmp/chat_lab_*.png (look at them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn
from tests.browser.app_server import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.ui.browser_env import require_chromium, serve
from tests.ui.notebook_env import (
    PIPELINE_QUESTION,
    pipeline_turns,
    point_kernel_at,
    prepare_store,
)

pytestmark = pytest.mark.slow

TOKEN = "revtops-lab-chat-test"
LONG_WORDS = 3000


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedMessagesServer]:
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


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext revtops_kernel"),
        nbformat.v4.new_code_cell(f"%%ask\n{PIPELINE_QUESTION}"),
        nbformat.v4.new_code_cell("from revtops_kernel import ChatPanel\nChatPanel()"),
    ]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, path)


def long_answer() -> Turn:
    return Turn.reply(" ".join(f"w{i}" for i in range(LONG_WORDS)), event_delay=0.01)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=f"/tmp/chat_lab_{name}.png", full_page=True)


def run_cell(page: Any, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def test_ask_magic_streaming_stop_and_escape_in_jupyterlab(
    api: ScriptedMessagesServer, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "chat.ipynb")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    expect.set_options(timeout=120_000)
    api.script(*pipeline_turns(), long_answer(), long_answer())
    with (
        serve(command, f"{base}/api/status?token={TOKEN}", tmp_path / "lab.log"),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        try:
            page.goto(f"{base}/lab/tree/chat.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()

            # %%ask: the answer streams into the cell's outputs, with its SQL and its chart.
            run_cell(page, 0)
            run_cell(page, 1)
            outputs = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
            expect(outputs).to_contain_text("largest bucket")
            expect(outputs).to_contain_text("SUM(amount)")
            expect(outputs.locator(".js-plotly-plot .main-svg").first).to_be_visible()
            assert outputs.locator("script").count() == 0  # the model's <script> is text
            expect(outputs).to_contain_text("<script>")
            outputs.scroll_into_view_if_needed()
            shot(page, "ask_magic")

            # ChatPanel(): watch an answer stream, then stop it midway.
            run_cell(page, 2)
            chat = page.locator(".revtops-chat")
            box = chat.locator("textarea.rt-input")
            box.fill("Tell me everything about every deal")
            box.press("Enter")
            text = chat.locator(".rt-text").last
            expect(text).to_contain_text("w20")
            seen = []
            for _ in range(4):  # the text grows between looks: it streams, not all at once
                page.wait_for_timeout(400)
                seen.append(len(text.inner_text()))
            assert seen == sorted(seen) and len(set(seen)) >= 3, seen
            expect(chat.locator(".rt-stop")).to_be_enabled()
            chat.locator(".rt-stop").click()
            expect(chat.locator(".rt-stopped")).to_be_visible()
            expect(chat.locator(".rt-stop")).to_be_disabled()
            cut = chat.locator(".rt-messages").inner_text()
            assert f"w{LONG_WORDS - 1}" not in cut
            page.wait_for_timeout(1000)  # nothing more arrives after the stop
            assert chat.locator(".rt-messages").inner_text() == cut
            shot(page, "stopped")

            # Esc in the question box stops the next answer the same way.
            box.fill("And once more, everything")
            box.press("Enter")
            expect(chat.locator(".rt-text")).to_have_count(2)  # the second answer's text
            expect(chat.locator(".rt-text").nth(1)).to_contain_text("w20")
            box.press("Escape")
            expect(chat.locator(".rt-stopped")).to_have_count(2)
            assert f"w{LONG_WORDS - 1}" not in chat.locator(".rt-messages").inner_text()
            shot(page, "escaped")
        except Exception:
            shot(page, "failure")
            raise
        finally:
            browser.close()
