"""Driving the web app in Chromium: signing a visitor in, screenshots."""

from __future__ import annotations

from typing import Any

from .app_server import RunningApp

TIMEOUT_MS = 120_000


def sign_in(browser: Any, app: RunningApp, email: str, name: str, **options: Any) -> Any:
    """A browser session holding a test-minted Supabase session, as /login would leave it."""
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, accept_downloads=True, **options
    )
    context.add_cookies(
        [{"name": "revtops_session", "value": app.token(email, name), "url": app.url + "/"}]
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url + "/")
    page.locator(".rt-header").wait_for()
    return page
