"""The chat widget in the web app (Voila, headless Chromium), used as a person would: the empty
chat's suggestions, an answer streaming with its verified badge, SQL, sortable table and chart;
a hostile answer that must stay inert (no dialog, no request leaves the app); Stop midway; a
second conversation and switching back; a page reload that restores the history.

Screenshots: /tmp/chat_*.png (look at them).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn
from tests.ui.notebook_env import PIPELINE_QUESTION, pipeline_turns

from .app_server import RunningApp
from .pages import HOSTILE_ANSWER, assert_inert, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BROWSER_TIMEZONE = "Asia/Tokyo"
HOSTILE_QUESTION = "Write our notes back as a poem"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=f"/tmp/chat_{name}.png", full_page=True)


def ask(page: Any, question: str) -> None:
    box = page.locator(".revtops-chat textarea.rt-input")
    box.fill(question)
    box.press("Enter")


def outside_requests(requests: list[str], app: RunningApp) -> list[str]:
    origin = urlsplit(app.url).netloc
    return [
        url
        for url in requests
        if urlsplit(url).scheme not in {"data", "blob"} and urlsplit(url).netloc != origin
    ]


def test_chat_streams_stops_switches_and_restores(
    world: tuple[RunningApp, ScriptedMessagesServer], browser: Any
) -> None:
    from playwright.sync_api import expect

    app, api = world
    expect.set_options(timeout=120_000)
    page = sign_in(browser, app, "cleo@initech.com", "Cleo", timezone_id=BROWSER_TIMEZONE)
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        chat = page.locator(".revtops-chat")

        # The empty chat offers verified questions to click.
        expect(chat.locator(".rt-suggestion").first).to_be_visible()
        assert page.locator(".rt-integrations").count() == 0  # other tabs are built when opened
        shot(page, "01_empty")

        # The organization's CRM is synced once (Integrations is built when first opened).
        page.locator(".lm-TabBar-tab:has-text('Integrations')").click()
        hubspot = page.locator(".rt-provider-hubspot")
        if "last sync succeeded" not in hubspot.inner_text():
            if "never synced" in hubspot.inner_text():
                hubspot.locator("button:has-text('Sync now')").click()
            expect(hubspot).to_contain_text("last sync succeeded")
        page.locator(".lm-TabBar-tab:has-text('Chat')").click()

        # Ask: the answer streams (Stop is offered meanwhile), then the verified table, the SQL,
        # the chart and the closing text.
        api.script(*pipeline_turns())
        ask(page, PIPELINE_QUESTION)
        expect(chat.locator(".rt-user").last).to_have_text(PIPELINE_QUESTION)
        expect(chat.locator(".rt-text", has_text="largest bucket")).to_be_visible()
        expect(chat.locator(".rt-stop")).to_be_hidden()
        expect(chat.locator(".rt-verified").first).to_be_visible()
        chart = chat.locator(".rt-chart .js-plotly-plot .main-svg").first
        expect(chart).to_be_visible()
        assert chart.bounding_box()["height"] > 100
        assert "<script>" in chat.locator(".rt-text", has_text="largest bucket").inner_text()
        card = chat.locator(".rt-tool", has_text="run_sql_query").first
        card.locator(":scope > summary").click()
        expect(card.locator(".rt-sql pre").first).to_contain_text("SUM(amount)")
        expect(card.locator(".rt-copy", has_text="Copy SQL")).to_be_visible()
        table = chat.locator(".rt-tool-block .rt-table", has_text="Closed Lost").first
        amounts = table.locator("tbody tr td:nth-child(2)")

        def numbers() -> list[float]:
            return [float(text.replace(",", "")) for text in amounts.all_inner_texts()]

        table.locator("th", has_text="amount").click()  # sort by amount, ascending
        assert numbers() == sorted(numbers())
        table.locator("th", has_text="amount").click()  # and descending
        assert numbers() == sorted(numbers(), reverse=True)
        shot(page, "02_answer")
        system = str(api.requests[-1].body["system"])
        assert BROWSER_TIMEZONE in system  # the widget read the browser's zone and sent it

        # A hostile answer in a new conversation renders inert and requests nothing.
        chat.locator(".rt-new").click()
        expect(chat.locator(".rt-suggestion").first).to_be_visible()
        api.script(Turn.reply(HOSTILE_ANSWER, event_delay=0.001))
        ask(page, HOSTILE_QUESTION)
        expect(chat.locator(".rt-text", has_text="End of the hostile answer.")).to_be_visible()
        page.wait_for_timeout(500)  # anything that would fire (onerror, onload) has fired
        assert_inert(page)
        assert dialogs == []
        assert outside_requests(requests, app) == []
        assert not any("evil.example" in url for url in requests)
        shot(page, "03_hostile")

        # Stop midway: the cut answer says so.
        chat.locator(".rt-new").click()
        api.script(Turn.reply(" ".join(f"w{i}" for i in range(3000)), event_delay=0.01))
        ask(page, "Tell me everything about every deal")
        expect(chat.locator(".rt-text", has_text="w20")).to_be_visible()
        expect(chat.locator(".rt-stop")).to_be_visible()
        chat.locator(".rt-stop").click()
        expect(chat.locator(".rt-stopped")).to_be_visible()
        assert "w2999" not in chat.locator(".rt-messages").inner_text()
        shot(page, "04_stopped")

        # Switch back to the first conversation: its history, chart included.
        chat.locator(".rt-conv", has_text=PIPELINE_QUESTION[:20]).click()
        expect(chat.locator(".rt-user").first).to_have_text(PIPELINE_QUESTION)
        expect(chat.locator(".rt-chart .js-plotly-plot .main-svg").first).to_be_visible()

        # Reload: a new page (and kernel) lists the three conversations and reopens one.
        page.reload()
        page.locator(".rt-header").wait_for()
        expect(chat.locator(".rt-conv")).to_have_count(3)
        chat.locator(".rt-conv", has_text=HOSTILE_QUESTION[:20]).click()
        expect(chat.locator(".rt-text", has_text="End of the hostile answer.")).to_be_visible()
        page.wait_for_timeout(500)
        assert_inert(page)
        chat.locator(".rt-conv", has_text=PIPELINE_QUESTION[:20]).click()
        expect(chat.locator(".rt-text", has_text="largest bucket")).to_be_visible()
        expect(chat.locator(".rt-chart .js-plotly-plot .main-svg").first).to_be_visible()
        shot(page, "05_reloaded")
        assert dialogs == [] and outside_requests(requests, app) == []
    except Exception:
        shot(page, "failure")
        raise
    page.context.close()
