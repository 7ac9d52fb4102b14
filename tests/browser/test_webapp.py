"""The web app in headless Chromium, used as a person would: sign in, look at the integrations,
sync, ask a question and watch the answer stream with its tool call and chart, open the artifact,
download its PDF. A second user of another organization is signed in at the same time.

Screenshots land in tests/browser/screenshots/ (git-ignored); look at them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer
from tests.ui.notebook_env import PIPELINE_QUESTION, pipeline_turns

from .app_server import RunningApp
from .pages import TIMEOUT_MS, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SHOTS = Path(__file__).parent / "screenshots"


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_tab(page: Any, title: str) -> None:
    page.locator(f".lm-TabBar-tab:has-text('{title}')").click()


def test_sign_in_sync_ask_chart_artifact_pdf(
    world: tuple[RunningApp, ScriptedMessagesServer], browser: Any, tmp_path: Path
) -> None:
    app, api = world
    ana = sign_in(browser, app, "ana@acme.com", "Ana Lopez")
    header = ana.locator(".rt-header").inner_text()
    assert "Ana Lopez" in header and "acme-com" in header
    # No plotly lab extension on the page (4.8 MB): charts draw with plotly.js from the kernel.
    # The chat's front end came from the page's own bundle (the light front end, the default)
    # or, with Voila's front end (REVTOPS_APP_FRONTEND=voila), from anywidget's lab extension.
    loaded = ana.evaluate("() => performance.getEntriesByType('resource').map(r => r.name)")
    assert any("anywidget" in url or "/revtops/static/app.js" in url for url in loaded), loaded
    assert not [url for url in loaded if "jupyterlab-plotly" in url]
    shot(ana, "01-signed-in")

    # Integrations: HubSpot is connected (a token); sync it now and watch it finish.
    open_tab(ana, "Integrations")
    hubspot = ana.locator(".rt-provider-hubspot")
    assert "never synced" in hubspot.inner_text()
    hubspot.locator("button:has-text('Sync now')").click()
    ana.wait_for_function(
        "() => document.querySelector('.rt-provider-hubspot')?.innerText"
        ".includes('last sync succeeded')",
        timeout=TIMEOUT_MS,
    )
    assert "written" in hubspot.inner_text()
    shot(ana, "02-synced")

    # Chat: the answer streams, with the tool call's SQL and the chart.
    api.script(*pipeline_turns())
    open_tab(ana, "Chat")
    question = ana.locator(".revtops-chat textarea.rt-input")
    question.fill(PIPELINE_QUESTION)
    question.press("Enter")
    ana.locator(".rt-tool").first.wait_for()
    ana.get_by_text("Closed Lost is the largest bucket").wait_for()
    chart = ana.locator(".rt-messages .rt-chart .js-plotly-plot .main-svg").first
    chart.wait_for(state="attached")
    ana.wait_for_function(
        "() => [...document.querySelectorAll('.rt-messages .rt-chart .main-svg')]"
        ".some(svg => svg.getBoundingClientRect().height > 100)"
    )
    assert "Pipeline by stage" in ana.locator(".rt-messages .rt-chart").last.inner_text()
    assert ana.locator("script:has-text('alert')").count() == 0  # model text stayed text
    sql_card = ana.locator(".rt-tool", has_text="run_sql_query").first
    sql_card.locator(":scope > summary").click()  # the SQL is one click away
    assert "SUM(amount)" in sql_card.inner_text()
    shot(ana, "03-answer")

    # The other organization, signed in at the same time, sees none of it.
    gus = sign_in(browser, app, "gus@globex.com", "Gus")
    assert "globex-com" in gus.locator(".rt-header").inner_text()
    open_tab(gus, "Integrations")
    assert "never synced" in gus.locator(".rt-provider-hubspot").inner_text()
    open_tab(gus, "Artifacts")
    gus.get_by_text("No artifacts yet").wait_for()
    shot(gus, "05-other-org")

    # Artifacts: open the chart the answer made, then download its PDF.
    open_tab(ana, "Artifacts")
    picker = ana.locator(".rt-gallery select")
    picker.locator("option", has_text="Pipeline by stage").first.wait_for(state="attached")
    picker.select_option(index=0)
    ana.locator(".rt-gallery button:has-text('Open')").click()
    ana.locator(".rt-artifact-view .rt-chart .main-svg").first.wait_for(state="attached")
    ana.wait_for_function(
        "() => [...document.querySelectorAll('.rt-artifact-view .rt-chart .main-svg')]"
        ".some(svg => svg.getBoundingClientRect().height > 100)"
    )
    ana.locator(".rt-gallery button:has-text('PDF')").click()
    link = ana.locator(".rt-gallery a.rt-download")
    link.wait_for()
    with ana.expect_download() as download:
        link.click()
    pdf = tmp_path / "artifact.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    shot(ana, "04-artifact")


def test_sign_in_page_completes_a_supabase_session(
    world: tuple[RunningApp, ScriptedMessagesServer], browser: Any
) -> None:
    """Supabase sends the browser back to /login with the session in the URL fragment; the
    page exchanges it for the HttpOnly cookie and moves on to the app."""
    app, _ = world
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url + "/")  # no session: sent to sign in
    page.wait_for_url("**/login**")
    google = page.locator("#google")
    assert "/auth/v1/authorize?provider=google" in (google.get_attribute("href") or "")
    shot(page, "06-sign-in")
    token = app.token("ana@acme.com", "Ana Lopez")
    page.goto(f"{app.url}/login#access_token={token}&token_type=bearer&expires_in=3600")
    page.locator(".rt-header").wait_for()
    assert "acme-com" in page.locator(".rt-header").inner_text()
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["revtops_session"]["httpOnly"]
    assert "access_token" not in page.url
    context.close()


def test_waitlisted_and_personal_mailboxes_see_why(
    world: tuple[RunningApp, ScriptedMessagesServer], browser: Any
) -> None:
    app, _ = world
    for email, expected in (
        ("lee@newstartup.io", "waitlist"),
        ("pat@gmail.com", "work email"),
    ):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{app.url}/login#access_token={app.token(email, 'Someone')}")
        page.get_by_text(expected).first.wait_for()
        assert page.locator(".rt-header").count() == 0
        context.close()
