"""The app's first screen, drawn by the page template before any script loads (the shell): its
question box takes typing at once, a question sent from it is kept and goes out when the chat
widget takes over, and what was being typed (with the caret and the focus) survives the swap;
a page whose notebook failed shows its error instead of the shell. The live page draws its
header, tabs, conversation list and question box where the shell drew them (boxes compared).

The page's front end (its module, or voila.js with Voila's front end) is held back by the test
until the typing is done, so the box is used before the widget can exist, whatever the
machine's speed. Screenshots: /tmp/chat_shell_*.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn
from tests.ui.notebook_env import prepare_store

from .app_server import RunningApp, free_port, wait_until_healthy
from .pages import (
    FRONT_END_JS,
    LIVE_BOXES,
    SHELL_BOXES,
    TIMEOUT_MS,
    assert_nothing_moved,
    boxes,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

QUEUED = "Which deals closed this month?"
DRAFT = "and which of them came from referrals"
REPLY = "Two deals closed this month."


def shot(page: Any, name: str) -> None:
    page.screenshot(path=f"/tmp/chat_shell_{name}.png", full_page=True)


def test_the_shell_takes_typing_before_the_widget_and_hands_it_over(
    world: tuple[RunningApp, ScriptedMessagesServer], browser: Any
) -> None:
    from playwright.sync_api import expect

    app, api = world
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.add_cookies(
        [
            {
                "name": "revtops_session",
                "value": app.token("sol@globex.com", "Sol"),
                "url": app.url + "/",
            }
        ]
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    held: list[Any] = []
    page.route(FRONT_END_JS, lambda route: held.append(route))
    try:
        started = time.perf_counter()
        page.goto(app.url + "/", wait_until="commit")
        box = page.locator("#rt-shell textarea.rt-shell-input")
        expect(box).to_be_visible()
        shown = time.perf_counter() - started
        expect(box).to_be_focused()  # typing goes in at once, no click needed
        assert page.locator(".revtops-chat").count() == 0 and len(held) <= 1

        # A question sent from the shell is kept and shown; then the next one is half typed.
        api.script(Turn.reply(REPLY))
        page.keyboard.type(QUEUED)
        page.keyboard.press("Enter")
        expect(page.locator("#rt-shell .rt-shell-queued")).to_have_text(QUEUED)
        expect(box).to_have_value("")
        page.keyboard.type(DRAFT)
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("please")
        shot(page, "01_typed")
        shell = boxes(page, SHELL_BOXES)

        # The front end loads; the chat widget takes over the box.
        while not held:  # the request for the front end, held since the page asked for it
            page.wait_for_timeout(100)
        held[0].continue_()
        chat = page.locator(".revtops-chat:not(.rt-answer-mode)")
        live = chat.locator("textarea.rt-input")
        expect(live).to_be_visible()
        expect(page.locator("#rt-shell")).to_have_count(0)
        expect(live).to_have_value(f"{DRAFT}\nplease")
        expect(live).to_be_focused()
        # the caret stayed at the end: typing on continues the draft
        page.keyboard.type("!")
        expect(live).to_have_value(f"{DRAFT}\nplease!")
        # the kept question went out once the widget was connected, and was answered
        expect(chat.locator(".rt-user").first).to_have_text(QUEUED)
        expect(chat.locator(".rt-text").last).to_contain_text(REPLY)
        assert chat.locator(".rt-user").count() == 1
        expect(page.locator(".rt-header")).to_contain_text("Sol")
        shot(page, "02_taken_over")
        # the live chat drew where the shell was: header, tabs, list, thread, box, Send
        assert_nothing_moved(shell, boxes(page, LIVE_BOXES))
        print(f"shell question box shown after {shown:.2f} s")
    except Exception:
        shot(page, "failure")
        raise
    finally:
        context.close()


def test_the_shell_steps_aside_for_a_failed_notebook(tmp_path: Path, browser: Any) -> None:
    """A page whose notebook failed shows Voila's error, not a question box that never works."""
    from playwright.sync_api import expect

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("raise RuntimeError('broken app')")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "broken.ipynb")
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REVTOPS_", "SUPABASE_"))},
        "REVTOPS_DATABASE_URL": prepare_store(tmp_path),
        "REVTOPS_ORG": "acme",
        "REVTOPS_HOME": str(tmp_path / "home"),
        "JUPYTER_TOKEN": "broken",
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    command = [
        sys.executable, "-c", "from revtops_server.voila_app import main; main()",
        f"--port={port}", "--no-browser", "--VoilaConfiguration.default_pool_size=0",
        str(tmp_path / "broken.ipynb"),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "voila.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(command, env=environment, stdout=sink, stderr=subprocess.STDOUT)
    page = browser.new_page()
    try:
        wait_until_healthy(url, server, log)
        response = page.goto(f"{url}/?token=broken", wait_until="commit")
        # The page came with the shell and its question box (read from the HTML: how long the
        # shell stays visible is a race with how fast the failed cell is reported)...
        assert response is not None
        served = response.text()
        assert 'id="rt-shell"' in served and "<textarea" in served.split('id="rt-shell"', 1)[1]
        # ...and it is gone when Voila finished (the 60 s grace is for a widget that never comes)
        expect(page.locator("#rt-shell")).to_have_count(0, timeout=45_000)
        expect(page.get_by_text("There was an error when executing cell")).to_be_visible()
    finally:
        page.close()
        server.terminate()
        server.wait(20)
