"""Nango: connect sessions, the signed webhook (forged, replayed, unknown), list and delete, and a
sync through Nango credentials whose token rotates mid-sync - against the sandbox's Nango."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from helpers import sandbox_settings
from sqlalchemy import text

from revtops_kernel.connectors.credentials import NangoConnection, token_source
from revtops_kernel.integrations import (
    EndUser,
    create_connect_session,
    delete_integration,
    handle_webhook,
    list_integrations,
    verify_signature,
)
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.sync import configured_providers, run_sync
from revtops_sandbox import SandboxServer

ORG = "northwind"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.02, seed=5) as server:
        yield server


def settings_for(sandbox: SandboxServer, db: Database) -> Settings:
    # Nango's connections, not tokens, reach the providers here.
    return sandbox_settings(
        sandbox, db, "slack", "google_calendar", org=ORG, tokens=False, nango=True
    )


def integrations(db: Database) -> list[tuple[str, str, str | None]]:
    with db.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT provider, status, nango_connection_id FROM integrations "
                    "ORDER BY provider"
                )
            ).all()
        ]


def test_signatures_are_compared_over_the_raw_body() -> None:
    body = b'{"type":"auth"}'
    good = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert verify_signature("key", body, good)
    assert verify_signature("key", body, good.upper())
    assert not verify_signature("key", body + b" ", good)  # re-serialized JSON fails
    assert not verify_signature("key", body, None)
    assert not verify_signature("key", body, hashlib.sha256(b"key" + body).hexdigest())  # legacy


def test_connect_then_webhook_records_the_connection_once(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    session = create_connect_session(
        settings, ORG, "google_calendar", EndUser("u_42", "ann@northwind-sales.example", "Ann")
    )
    assert session.token.startswith("nango_connect_session_")
    body, headers = sandbox.nango_webhook("google-calendar", session_token=session.token)
    assert json.loads(body)["tags"]["organization_id"] == ORG

    forged = handle_webhook(db, settings, body, {**headers, "X-Nango-Hmac-Sha256": "0" * 64})
    assert (forged.status, forged.http_status) == ("rejected", 401)
    tampered = body.replace(ORG.encode(), b"evil-org")
    assert handle_webhook(db, settings, tampered, headers).status == "rejected"
    assert integrations(db) == []

    first = handle_webhook(db, settings, body, headers)
    assert (first.status, first.http_status) == ("recorded", 200)
    connection_id = json.loads(body)["connectionId"]
    assert integrations(db) == [("google_calendar", "connected", connection_id)]
    replay = handle_webhook(db, settings, body, headers)
    assert (replay.status, replay.http_status) == ("replayed", 200)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM nango_webhook_events")).scalar_one() == 1

    unknown = json.dumps({"from": "nango", "type": "sync", "connectionId": "x"}).encode()
    signed = hmac.new(sandbox.nango_webhook_secret.encode(), unknown, hashlib.sha256).hexdigest()
    assert handle_webhook(db, settings, unknown, {"X-Nango-Hmac-Sha256": signed}).status == (
        "ignored"
    )
    assert integrations(db) == [("google_calendar", "connected", connection_id)]
    (listed,) = list_integrations(db, ORG)
    assert listed.via_nango and listed.connection_id == connection_id
    assert configured_providers(settings, db) == ("google_calendar",)

    assert delete_integration(db, settings, ORG, "google_calendar")
    assert integrations(db) == []
    gone = httpx.get(
        f"{sandbox.nango_base_url}/connections/{connection_id}",
        params={"provider_config_key": "google-calendar"},
        headers={"Authorization": f"Bearer {sandbox.nango_secret_key}"},
    )
    assert gone.status_code == 404
    assert not delete_integration(db, settings, ORG, "google_calendar")


def test_a_failed_authorization_marks_the_integration_in_error(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    session = create_connect_session(settings, ORG, "slack", EndUser("u1"))
    body, headers = sandbox.nango_webhook("slack", success=False, session_token=session.token)
    assert handle_webhook(db, settings, body, headers).status == "failed"
    assert integrations(db) == [("slack", "error", None)]


def test_a_sync_through_nango_survives_token_rotation_mid_sync(
    db: Database, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(sandbox, db)
    body, headers = sandbox.nango_webhook("slack", tags={"organization_id": ORG})
    assert handle_webhook(db, settings, body, headers).status == "recorded"
    # The provider token dies every 15 calls; Nango hands out a new one when asked.
    sandbox.faults.slack.token_ttl_calls = 15
    caplog.set_level(logging.DEBUG)
    result = run_sync(db, settings, "slack")
    assert result.ok, result.error
    assert result.counts.api_calls > 30  # the token rotated at least twice
    ws = sandbox.company.slack
    truth = sum(1 + len(m.replies) for c in ws.channels if c.is_member for m in c.messages)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM activities")).scalar_one() == truth
        stored = conn.execute(text("SELECT * FROM integrations")).one()._mapping
    # No provider token anywhere: not in the store, not in the logs.
    token = sandbox.token_for("slack")
    assert token not in json.dumps({k: str(v) for k, v in stored.items()})
    assert token not in caplog.text and sandbox.nango_secret_key not in caplog.text


def test_the_token_source_refetches_before_expiry_and_after_a_401(
    sandbox: SandboxServer,
) -> None:
    body, _ = sandbox.nango_webhook("slack", tags={"organization_id": ORG})
    connection = NangoConnection(json.loads(body)["connectionId"], "slack")
    settings = load_settings(
        NANGO_BASE_URL=sandbox.nango_base_url, NANGO_SECRET_KEY=sandbox.nango_secret_key
    )
    with httpx.Client() as http:
        source = token_source(settings, "slack", http=http, nango_connection=connection)
        first = source.token()
        assert first == sandbox.token_for("slack") and source.token() == first
        assert source.refresh() is True  # force_refresh rotates the provider token
        assert source.token() == sandbox.token_for("slack") != first
