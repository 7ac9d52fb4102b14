"""`reports.slack_poster`: an organization posts with its recorded Nango connection, else with
the token from settings (the store lookup the Slack connector itself no longer makes)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from helpers import sandbox_settings

from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.errors import CredentialsError
from revtops_kernel.integrations import handle_webhook
from revtops_kernel.reports.slack_poster import slack_poster
from revtops_kernel.store import Database
from revtops_sandbox import SandboxServer

ORG = "northwind"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.01, seed=3) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with make_http_client() as client:
        yield client


def test_an_organization_posts_with_its_nango_connection(
    db: Database, sandbox: SandboxServer, http: httpx.Client
) -> None:
    settings = sandbox_settings(sandbox, db, "slack", org=ORG, tokens=False, nango=True)
    body, headers = sandbox.nango_webhook("slack", tags={"organization_id": ORG})
    assert handle_webhook(db, settings, body, headers).status == "recorded"
    posted = slack_poster(settings, http, org=ORG).post_message("#sales", "via Nango")
    assert sandbox.slack_posts()[-1].ts == posted.ts


def test_without_a_connection_nango_gives_no_token(
    db: Database, sandbox: SandboxServer, http: httpx.Client
) -> None:
    settings = sandbox_settings(sandbox, db, "slack", org=ORG, tokens=False, nango=True)
    with pytest.raises(CredentialsError):
        slack_poster(settings, http, org="other-org").post_message("#sales", "nobody's")


def test_without_nango_the_token_comes_from_settings(
    db: Database, sandbox: SandboxServer, http: httpx.Client
) -> None:
    settings = sandbox_settings(sandbox, db, "slack", org=ORG)
    posted = slack_poster(settings, http).post_message("#sales", "via the token")
    assert sandbox.slack_posts()[-1].ts == posted.ts
