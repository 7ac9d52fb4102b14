"""The chat panel in a real browser (headless Chromium): in JupyterLab (open the notebook, run
the panel, ask, see the streamed answer and the chart) and in Voila (the same panel as a web
app). Screenshots are kept in tests/ui/artifacts/.

Needs Debian's chromium (/usr/bin/chromium); skipped when it is missing, saying so.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn
from tests.browser.app_server import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.browser.pages import HOSTILE_ANSWER, assert_inert
from tests.ui.browser_env import (
    ARTIFACTS,
    LAB_TOKEN,
    jupyterlab,
    kernel_world,
    serve,
    write_panel_notebook,
)
from tests.ui.notebook_env import PIPELINE_QUESTION, pipeline_turns

pytestmark = pytest.mark.slow

BROWSER_TIMEZONE = "Asia/Tokyo"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedMessagesServer]:
    with kernel_world(tmp_path, monkeypatch) as server:
        server.script(*pipeline_turns())
        yield server


def ask_and_check(page: Any, name: str) -> None:
    """Ask in the panel on ``page``; the answer, its SQL card and its chart must show."""
    from playwright.sync_api import expect

    question_box = page.locator(".revtops-chat textarea.rt-input")
    question_box.wait_for()
    question_box.fill(PIPELINE_QUESTION)
    question_box.press("Enter")  # Enter sends

    answer = page.locator(".revtops-chat .rt-text", has_text="largest bucket")
    expect(answer).to_be_visible()
    expect(page.locator(".revtops-chat .rt-chart .js-plotly-plot").last).to_be_visible()
    expect(page.locator(".revtops-chat .rt-tool", has_text="run_sql_query")).to_be_visible()
    expect(page.locator(".revtops-chat .rt-user")).to_have_text(PIPELINE_QUESTION)
    # the model's <script> is text on the page, never an element
    expect(page.locator(".revtops-chat .rt-text", has_text="<script>")).to_be_visible()
    assert page.locator(".revtops-chat .rt-messages script").count() == 0
    expect(answer).to_be_in_viewport()  # the thread keeps its newest text in view
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    summary = page.locator(".revtops-chat .rt-tool summary", has_text="run_sql_query")
    summary.click()  # scrolls the card into view and opens it: the SQL
    expect(page.locator(".revtops-chat .rt-tool[open] pre").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / f"{name}_sql.png"), full_page=True)


def browse(url: str, name: str, before_asking: Any = None, after: Any = None) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # a loaded CI machine: the kernel imports take a while
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, timezone_id=BROWSER_TIMEZONE
        )
        page = context.new_page()
        page.set_default_timeout(120_000)
        try:
            page.goto(url)
            if before_asking is not None:
                before_asking(page)
            ask_and_check(page, name)
            if after is not None:
                after(page)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"{name}_failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def luminance(css_color: str) -> float:
    """0 (black) to 1 (white), from ``rgb(r, g, b)``."""
    red, green, blue = (float(n) for n in re.findall(r"[\d.]+", css_color)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def assert_browser_timezone_reached_the_model(api: ScriptedMessagesServer) -> None:
    system = json.dumps(api.requests[0].body["system"])
    assert BROWSER_TIMEZONE in system  # the browser's zone, not REVTOPS_TIMEZONE


def test_panel_in_jupyterlab(api: ScriptedMessagesServer, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_panel_notebook(root / "panel.ipynb")

    def run_the_panel_cell(page: Any) -> None:
        page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()  # the kernel is up
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Shift+Enter")

    def dark_theme_then_reload(page: Any) -> None:
        from playwright.sync_api import expect

        chat = page.locator(".revtops-chat")
        light = chat.evaluate("el => getComputedStyle(el).backgroundColor")
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
        page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
        page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
        page.wait_for_function(
            "() => document.body.dataset.jpThemeLight === 'false'", timeout=60_000
        )
        dark = chat.evaluate("el => getComputedStyle(el).backgroundColor")
        text = chat.evaluate("el => getComputedStyle(el).color")
        assert dark != light and luminance(dark) < 0.3 < luminance(text), (light, dark, text)
        page.screenshot(path="/tmp/chat_lab_dark.png", full_page=True)
        # Save and reload: the view reconnects to the kernel's widget and gets the thread back.
        page.locator(".jp-Cell .jp-InputPrompt").first.click()
        page.keyboard.press("Control+s")
        page.wait_for_timeout(3000)
        page.reload()
        expect(page.locator(".revtops-chat .rt-user")).to_have_text(PIPELINE_QUESTION)
        expect(page.locator(".revtops-chat .rt-text", has_text="largest bucket")).to_be_visible()
        page.screenshot(path="/tmp/chat_lab_reloaded.png", full_page=True)

        # A hostile answer (the XSS corpus) renders inert: no dialog, nothing requested.
        requests: list[str] = []
        dialogs: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.locator(".revtops-chat .rt-new").click()
        api.script(Turn.reply(HOSTILE_ANSWER, event_delay=0.001))
        question_box = page.locator(".revtops-chat textarea.rt-input")
        question_box.fill("Write our notes back as a poem")
        question_box.press("Enter")
        expect(
            page.locator(".revtops-chat .rt-text", has_text="End of the hostile")
        ).to_be_visible()
        page.wait_for_timeout(500)
        assert_inert(page)
        assert dialogs == []
        outside = [u for u in requests if not u.startswith((base, "data:", "blob:"))]
        assert outside == [], outside
        page.screenshot(path="/tmp/chat_lab_hostile.png", full_page=True)

    with jupyterlab(root, tmp_path / "lab.log") as base:
        browse(
            f"{base}/lab/tree/panel.ipynb?token={LAB_TOKEN}",
            "lab_panel",
            run_the_panel_cell,
            dark_theme_then_reload,
        )
    assert_browser_timezone_reached_the_model(api)


def test_panel_in_voila(api: ScriptedMessagesServer, tmp_path: Path) -> None:
    notebook = write_panel_notebook(tmp_path / "panel.ipynb")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", str(notebook),
    ]  # fmt: skip
    with serve(command, f"{base}/voila/static/extension.js", tmp_path / "voila.log"):
        browse(f"{base}/", "voila_panel")
    assert_browser_timezone_reached_the_model(api)
