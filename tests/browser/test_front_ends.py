"""The app page's two front ends in Chromium.

The light one (the default: `extensions/revtops_server/frontend/`, one bundled module) loads
no voila.js and no JupyterLab chunk (asserted from the browser's network log), renders the app,
answers a question and restores the conversation after a reload, over the same kernel websocket
(which still refuses code); leaving the page shuts its kernel down. Voila's own front end
(``REVTOPS_APP_FRONTEND=voila``, an operator's fallback) still renders and answers, and its head
preloads every script it uses.

Screenshots: /tmp/front_end_*.png (look at them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from revtops_kernel.store.scratch import scratch_postgres
from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn

from .app_server import RunningApp, running_app
from .pages import LIVE_BOXES, TIMEOUT_MS

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

QUESTION = "Which deals slipped last week?"
REPLY = "Three deals slipped last week."


def shot(page: Any, name: str) -> None:
    page.screenshot(path=f"/tmp/front_end_{name}.png", full_page=True)


def served_paths(requests: list[tuple[str, str]], app: RunningApp) -> list[tuple[str, str]]:
    """(path, resource type) of each request the page sent to the app's server."""
    origin = urlsplit(app.url).netloc
    return [(urlsplit(url).path, kind) for url, kind in requests if urlsplit(url).netloc == origin]


def visit(browser: Any, app: RunningApp, email: str, name: str) -> tuple[Any, list[Any]]:
    """A new visitor's first render, until the live question box; returns the page and the
    (url, resource type) of every request it sent from the navigation on."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.add_cookies(
        [{"name": "revtops_session", "value": app.token(email, name), "url": app.url + "/"}]
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    requests: list[tuple[str, str]] = []
    page.on("request", lambda request: requests.append((request.url, request.resource_type)))
    page.goto(app.url + "/", wait_until="commit")
    page.locator(LIVE_BOXES["question box"]).wait_for()
    return page, requests


def assert_kernel_ends_with_the_page(page: Any, app: RunningApp) -> None:
    """Leaving the page shuts its kernel down (the page's beacon, with the _xsrf cookie the
    page handler sets), instead of leaving it to the idle culler."""
    kernel_id = page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"
    )
    page.goto("about:blank")
    deadline = time.monotonic() + 30
    while f"Kernel shutdown: {kernel_id}" not in app.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"kernel {kernel_id} still running after the page left"
        time.sleep(0.2)


def ask_and_restore(page: Any, api: ScriptedMessagesServer, name: str) -> None:
    """Ask one question, see its answer, reload the page and see the conversation again."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    chat = page.locator(".revtops-chat")
    api.script(Turn.reply(REPLY))
    box = chat.locator("textarea.rt-input")
    box.fill(QUESTION)
    box.press("Enter")
    expect(chat.locator(".rt-text").last).to_contain_text(REPLY)
    shot(page, f"{name}_answered")
    page.reload()
    page.locator(LIVE_BOXES["question box"]).wait_for()
    chat.locator(".rt-conv", has_text=QUESTION[:20]).click()
    expect(chat.locator(".rt-user").first).to_have_text(QUESTION)
    expect(chat.locator(".rt-text").last).to_contain_text(REPLY)
    shot(page, f"{name}_restored")


def test_the_light_page_loads_one_module_and_works(
    world: tuple[RunningApp, ScriptedMessagesServer], browser: Any
) -> None:
    from playwright.sync_api import expect

    app, api = world
    page, requests = visit(browser, app, "lia@initech.com", "Lia")
    try:
        expect(page.locator("#rt-shell")).to_have_count(0)  # the widget took the shell over
        expect(page.locator(".rt-header")).to_contain_text("Lia")
        fetched = served_paths(requests, app)
        scripts = sorted({path for path, kind in fetched if kind == "script"})
        assert scripts == ["/revtops/static/app.js"], scripts
        assert not [p for p, _ in fetched if re.match(r"/voila/(static|labextensions)/", p)]
        styles = {path for path, kind in fetched if kind == "stylesheet"}
        assert "/revtops/static/app.css" in styles and not any("voila-style" in s for s in styles)
        # the tabs are Lumino's and work: each is built when first opened
        page.locator(".lm-TabBar-tab:has-text('Usage')").click()
        page.get_by_text("Total: $").wait_for()
        page.locator(".lm-TabBar-tab:has-text('Integrations')").click()
        page.locator(".rt-provider-hubspot").wait_for()
        shot(page, "light_integrations")
        page.locator(".lm-TabBar-tab:has-text('Chat')").click()
        shot(page, "light_first")
        ask_and_restore(page, api, "light")
        assert_kernel_ends_with_the_page(page, app)
    except Exception:
        shot(page, "light_failure")
        raise
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def voila_world(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[tuple[RunningApp, ScriptedMessagesServer]]:
    """The app with Voila's own front end (the operator's fallback)."""
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with (
        ScriptedMessagesServer() as api,
        scratch_postgres(admin_url, prefix="revtops_test_voila_front") as database_url,
        running_app(
            Path(tmp_path_factory.mktemp("voila_front_end")),
            REVTOPS_DATABASE_URL=database_url,
            ANTHROPIC_API_KEY=api.api_key,
            ANTHROPIC_BASE_URL=api.base_url,
            REVTOPS_APP_FRONTEND="voila",
        ) as app,
    ):
        app.create_org("Globex", "globex.com")
        yield app, api


def test_voilas_front_end_stays_available_and_preloads_its_scripts(
    voila_world: tuple[RunningApp, ScriptedMessagesServer], browser: Any
) -> None:
    """With Voila's front end the head announces its scripts (revtops_server/page_preload.py),
    so none of them waits for the script before it: each one the page used came from a
    preload, none was fetched twice, and the lab extensions the app does not load (plotly's,
    pygments') are not fetched at all. A failure after upgrading Voila, ipywidgets or anywidget
    means: re-record the list (bench/app.py --record-preload)."""
    app, api = voila_world
    page, _ = visit(browser, app, "pia@globex.com", "Pia")
    try:
        page.wait_for_timeout(1000)  # any late chunk of the views
        fetched = page.evaluate(
            """() => performance.getEntriesByType('resource').map((r) => {
                 const u = new URL(r.name); return [u.pathname + u.search, r.initiatorType]; })"""
        )
        preloaded = page.evaluate(
            """() => [...document.querySelectorAll('link[rel=preload][as=script]')]
                 .map((l) => { const u = new URL(l.href); return u.pathname + u.search; })"""
        )
        front_end = [p for p, _ in fetched if re.match(r"/voila/(static|labextensions)/", p)]
        assert len(preloaded) > 50 and preloaded[0] == "/voila/static/voila.js"
        not_preloaded = [p for p, kind in fetched if p in front_end and kind == "script"]
        assert not not_preloaded, f"fetched without a preload: {not_preloaded}"
        assert len(front_end) == len(set(front_end)), "a script was fetched twice"
        assert set(front_end) == set(preloaded)
        assert not [p for p in front_end if "plotly" in p or "pygments" in p]
        assert not [p for p, _ in fetched if p.startswith("/revtops/static/")]
        ask_and_restore(page, api, "voila")
        assert_kernel_ends_with_the_page(page, app)
    except Exception:
        shot(page, "voila_failure")
        raise
    finally:
        page.context.close()
