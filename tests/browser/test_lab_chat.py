"""The chat in JupyterLab (headless Chromium), the parts tests/ui/test_lab_browser.py leaves out:
``%%ask`` in a cell (the chat component answering: its SQL card and its chart, the model's
<script> as text; a long answer watched while it streams and stopped with the component's Stop
while the cell runs, ``-o`` holding the stopped answer), and in ``ChatPanel()`` an answer
stopped midway with the Stop button, then another with Esc; ``%ask`` (the line form) streaming
and stopped the same way; the notebook saved without its widgets' state and reopened: static
copies instead of "model not found"; the kernel websocket compressed (permessage-deflate, from
the package's server extension). Screenshots: /tmp/chat_lab_*.png.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn
from tests.browser.app_server import CHROMIUM, CHROMIUM_ARGS
from tests.ui.browser_env import LAB_TOKEN, jupyterlab, kernel_world, write_notebook
from tests.ui.notebook_env import PIPELINE_QUESTION, pipeline_turns

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.slow

LONG_WORDS = 3000
# ~640 SSE events of 24 characters: unstopped, an answer would stream for ~30 s. Every long
# answer here is stopped midway; this only makes sure a slow browser (load 14) is still in the
# middle of it when it clicks Stop (at 10 ms an event it could finish in ~6 s, before the click).
LONG_EVENT_DELAY = 0.05


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedMessagesServer]:
    with kernel_world(tmp_path, monkeypatch) as server:
        yield server


CELLS = [
    "%load_ext revtops_kernel",
    f"%%ask\n{PIPELINE_QUESTION}",
    "%%ask -o cut --new\nTell me everything about every deal",
    "print('stop:', cut.stop_reason, len(cut.text.split()))",
    "from revtops_kernel import ChatPanel\nChatPanel()",
    "%ask -o said --new What's everything about every deal?",
    "print('line:', said.question, said.stop_reason, len(said.text.split()))",
]


def long_answer() -> Turn:
    return Turn.reply(" ".join(f"w{i}" for i in range(LONG_WORDS)), event_delay=LONG_EVENT_DELAY)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=f"/tmp/chat_lab_{name}.png", full_page=True)


def run_cell(page: Any, index: int) -> None:
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def websocket_extensions(page: Page) -> dict[str, str]:
    """Filled as the page opens websockets: each one's URL and the extensions the server agreed
    to in its handshake (``Sec-WebSocket-Extensions``), read from Chromium's network events."""
    urls: dict[str, str] = {}
    agreed: dict[str, str] = {}

    def answered(event: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in event["response"]["headers"].items()}
        url = urls.get(event["requestId"], event["requestId"])
        agreed[url] = headers.get("sec-websocket-extensions", "")

    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.webSocketCreated", lambda e: urls.update({e["requestId"]: e["url"]}))
    cdp.on("Network.webSocketHandshakeResponseReceived", answered)
    return agreed


def assert_grows(page: Page, text: Locator, steps: int = 3) -> None:
    """The text grows ``steps`` times while we watch: it streams, not all at once. Waits on
    the text itself, not on a clock (under load a fixed 400 ms look could see no change)."""
    seen = [len(text.inner_text())]
    deadline = time.monotonic() + 60
    while len(seen) <= steps:
        assert time.monotonic() < deadline, f"the answer stopped growing: {seen}"
        page.wait_for_timeout(50)
        length = len(text.inner_text())
        assert length >= seen[-1], seen  # it only ever grows
        if length > seen[-1]:
            seen.append(length)


def test_ask_magic_streaming_stop_and_escape_in_jupyterlab(
    api: ScriptedMessagesServer, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "chat.ipynb", CELLS)
    expect.set_options(timeout=120_000)
    api.script(*pipeline_turns(), long_answer(), long_answer(), long_answer(), long_answer())
    with jupyterlab(root, tmp_path / "lab.log") as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        sockets = websocket_extensions(page)
        try:
            page.goto(f"{base}/lab/tree/chat.ipynb?token={LAB_TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            # the package's server extension compresses the kernel websocket (Jupyter default: off)
            kernel = {url: agreed for url, agreed in sockets.items() if "/channels" in url}
            assert kernel and all("permessage-deflate" in x for x in kernel.values()), sockets

            # %%ask: the chat component answers in the cell, with its SQL card and its chart.
            run_cell(page, 0)
            run_cell(page, 1)
            outputs = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
            answer = outputs.locator(".revtops-chat.rt-answer-mode")
            expect(answer).to_contain_text("largest bucket")
            expect(answer.locator(".rt-tool", has_text="run_sql_query")).to_be_visible()
            expect(answer).to_contain_text("SUM(amount)")
            expect(answer.locator(".rt-chart .js-plotly-plot .main-svg").first).to_be_visible()
            assert outputs.locator("script").count() == 0  # the model's <script> is text
            expect(answer).to_contain_text("<script>")
            expect(answer.locator(".rt-stop")).to_be_hidden()  # Stop only while it runs
            answer.locator(".rt-tool summary", has_text="run_sql_query").click()
            expect(answer.locator(".rt-tool[open] pre").first).to_be_visible()
            outputs.scroll_into_view_if_needed()
            shot(page, "ask_magic")

            # %%ask streams, and the component's Stop stops it while the cell still runs.
            run_cell(page, 2)
            cell = page.locator(".jp-Notebook .jp-Cell").nth(2)
            streaming = cell.locator(".revtops-chat.rt-answer-mode")
            text = streaming.locator(".rt-text").last
            expect(text).to_contain_text("w20")
            assert_grows(page, text)
            stop = streaming.locator(".rt-stop")
            expect(stop).to_be_visible()
            shot(page, "ask_streaming")
            stop.click()
            expect(streaming.locator(".rt-stopped")).to_be_visible()
            expect(stop).to_be_hidden()
            assert f"w{LONG_WORDS - 1}" not in streaming.inner_text()
            # the cell ended with the answer (-o cut is the stopped answer, cut short)
            run_cell(page, 3)
            printed = page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-OutputArea")
            expect(printed).to_contain_text("stop: cancelled")
            words = int(printed.inner_text().split()[-1])
            assert 20 < words < LONG_WORDS, words
            shot(page, "ask_stopped")

            # ChatPanel(): watch an answer stream, then stop it midway.
            run_cell(page, 4)
            chat = page.locator(".revtops-chat:not(.rt-answer-mode)")
            box = chat.locator("textarea.rt-input")
            box.fill("Tell me everything about every deal")
            box.press("Enter")
            text = chat.locator(".rt-text").last
            expect(text).to_contain_text("w20")
            assert_grows(page, text)
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

            # %ask (the line form) shows the same component, streaming; its Stop works while
            # the cell runs (the line awaits, as a %%ask cell does), its question kept whole.
            run_cell(page, 5)
            line = page.locator(".jp-Notebook .jp-Cell").nth(5)
            streaming = line.locator(".revtops-chat.rt-answer-mode")
            text = streaming.locator(".rt-text").last
            expect(text).to_contain_text("w20")
            assert_grows(page, text)
            streaming.locator(".rt-stop").click()
            expect(streaming.locator(".rt-stopped")).to_be_visible()
            run_cell(page, 6)
            printed = page.locator(".jp-Notebook .jp-Cell").nth(6).locator(".jp-OutputArea")
            expect(printed).to_contain_text("line: What's everything about every deal? cancelled")
            assert 20 < int(printed.inner_text().split()[-1]) < LONG_WORDS
            shot(page, "ask_line")

            # Saved without the widgets' state (JupyterLab's default) and reopened with a new
            # kernel: the answers show as their static copies and the panel as a line saying to
            # run its cell, not as "Error displaying widget: model not found".
            page.keyboard.press("Control+s")
            for _ in range(100):
                saved = (root / "chat.ipynb").read_text()
                if "line: What" in saved:
                    break
                page.wait_for_timeout(200)
            assert "widget-state" not in saved and "rt-static" in saved
            (root / "reopened.ipynb").write_text(saved)
            page.goto(f"{base}/lab/tree/reopened.ipynb?reset&token={LAB_TOKEN}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            cells = page.locator(".jp-Notebook .jp-Cell")
            first = cells.nth(1).locator(".rt-static")
            expect(first).to_contain_text("largest bucket")
            expect(first.locator("table").first).to_be_visible()  # the result's rows
            expect(cells.nth(2).locator(".rt-static .rt-stopped")).to_be_visible()
            expect(cells.nth(4).locator(".rt-static")).to_contain_text("when this cell runs")
            expect(cells.nth(5).locator(".rt-static")).to_be_visible()
            page.wait_for_timeout(3000)  # the widget manager gives up on a model after 2 s
            expect(page.get_by_text("model not found").first).to_be_hidden()
            assert page.locator(".revtops-chat").count() == 0
            shot(page, "reopened")

            # Run the panel's cell again: the live chat shows and the line steps aside.
            run_cell(page, 4)
            expect(cells.nth(4).locator(".revtops-chat textarea.rt-input")).to_be_visible()
            expect(cells.nth(4).locator(".rt-static")).to_be_hidden()
        except Exception:
            shot(page, "failure")
            raise
        finally:
            browser.close()
