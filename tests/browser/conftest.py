"""The web app, started once for the browser tests: a sandbox, a scripted Messages API, a
scratch PostgreSQL database and `revtops app`; Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revtops_kernel.store.scratch import scratch_postgres
from revtops_sandbox import SandboxServer
from revtops_sandbox.anthropic import ScriptedMessagesServer

from .app_server import CHROMIUM, CHROMIUM_ARGS, RunningApp, running_app


@pytest.fixture(scope="session")
def world(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[tuple[RunningApp, ScriptedMessagesServer]]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with (
        SandboxServer(scale=0.02, seed=11) as sandbox,
        ScriptedMessagesServer() as api,
        scratch_postgres(admin_url, prefix="revtops_test_browser") as database_url,
        running_app(
            tmp_path_factory.mktemp("webapp"),
            REVTOPS_DATABASE_URL=database_url,
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
            ANTHROPIC_API_KEY=api.api_key,
            ANTHROPIC_BASE_URL=api.base_url,
            REVTOPS_TIMEZONE="Europe/Paris",
        ) as app,
    ):
        app.create_org("Acme", "acme.com")
        app.create_org("Globex", "globex.com")
        app.create_org("Initech", "initech.com")  # test_chat's: test_webapp needs Acme never synced
        yield app, api


# Per module, not per session: Playwright's sync API runs an event loop in this thread while it
# is open, and later tests that call asyncio.run() (the extension's) would fail under it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
