"""The web app without an Anthropic key, as a new user meets it: the empty chat's suggested
question, clicked, answers from its verified query (table, chart, verified badge) with no model;
a question no verified query answers says how to enable free-form questions. The notice that
says so up front is in the empty chat, and the live page's boxes are where the shell drew them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from revtops_kernel.store.scratch import scratch_postgres
from revtops_sandbox import SandboxServer

from .app_server import RunningApp, running_app
from .pages import assert_nothing_moved, sign_in_across_takeover

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def keyless_app(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[RunningApp]:
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with (
        SandboxServer(scale=0.02, seed=11) as sandbox,
        scratch_postgres(admin_url, prefix="revtops_test_nokey") as database_url,
        running_app(
            tmp_path_factory.mktemp("nokey"),
            REVTOPS_DATABASE_URL=database_url,
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        ) as app,
    ):
        app.create_org("Acme", "acme.com")
        yield app


def test_a_suggested_question_answers_without_a_key(keyless_app: RunningApp, browser: Any) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=120_000)
    page, shell, live = sign_in_across_takeover(browser, keyless_app, "dana@acme.com", "Dana")
    try:
        # The notice is in the empty chat, under its first line: the live page's question box
        # is where the shell's was (a notice above the tabs pushed it down ~60 px).
        notice = page.locator(".revtops-chat .rt-empty .rt-setup")
        expect(notice).to_contain_text("ANTHROPIC_API_KEY")
        assert_nothing_moved(shell, live)
        page.locator(".lm-TabBar-tab:has-text('Integrations')").click()
        hubspot = page.locator(".rt-provider-hubspot")
        hubspot.locator("button:has-text('Sync now')").click()
        expect(hubspot).to_contain_text("last sync succeeded")
        page.locator(".lm-TabBar-tab:has-text('Chat')").click()

        chat = page.locator(".revtops-chat")
        suggestion = chat.locator(".rt-suggestion", has_text="open pipeline by stage").first
        expect(suggestion).to_be_visible()
        suggestion.click()
        answer = chat.locator(".rt-verified-answer").last
        expect(answer).to_be_visible()
        expect(chat.locator(".rt-verified").first).to_be_visible()
        expect(answer.locator(".rt-table")).to_be_visible()
        expect(answer.locator("tbody tr").first).to_be_visible()
        chart = answer.locator(".js-plotly-plot .main-svg").first
        expect(chart).to_be_visible()
        page.screenshot(path="/tmp/chat_nokey_verified.png", full_page=True)

        # Free-form without a key: the closest verified questions, and how to enable the rest.
        box = chat.locator("textarea.rt-input")
        box.fill("Write a limerick about our CRM hygiene")
        box.press("Enter")
        expect(chat.locator(".rt-suggest").last).to_be_visible()
        expect(chat.locator(".rt-suggest").last).to_contain_text("ANTHROPIC_API_KEY")
        expect(chat.locator(".rt-suggest").last.locator(".rt-suggestion").first).to_be_visible()
    finally:
        page.context.close()
