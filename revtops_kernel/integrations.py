"""Connections through Nango: connect sessions, the signed auth webhook, list and delete.

The flow: the app asks ``create_connect_session`` for a session token for the signed-in user's
organization and one provider; the front end opens Nango Connect with it; the user authorizes;
Nango calls our webhook with an auth ``creation`` event naming the new connection;
``handle_webhook`` verifies it and records the connection on the organization's ``integrations``
row. Syncs then fetch the access token from Nango (``connectors.credentials.NangoToken``): the
project never stores a provider token.

Webhooks: ``X-Nango-Hmac-Sha256`` is the hex HMAC-SHA256 of the raw body with the webhook
signing key, compared in constant time before the body is even parsed (the legacy
``X-Nango-Signature`` is not trusted). Nango retries deliveries and signs no timestamp, so each
processed body's SHA-256 is kept (``nango_webhook_events``) and a replay is recognized and
changes nothing; the key insert and the integration write share one transaction. Unknown
webhook types are acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import Connection, delete, select, text, update

from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.origins import origin_of, refuse_foreign_redirect, require_origin
from revtops_kernel.errors import CredentialsError, SettingsError
from revtops_kernel.providers import provider_for_nango_key, provider_info
from revtops_kernel.settings import Settings
from revtops_kernel.store import bookkeeping
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-nango-hmac-sha256"

_integrations = metadata.tables["integrations"]
_webhooks = metadata.tables["nango_webhook_events"]
_cursors = metadata.tables["sync_cursors"]


def provider_config_key(provider: str) -> str:
    """Nango's integration id (provider config key) for our ``provider``."""
    return provider_info(provider).nango_key


def provider_for_key(key: str) -> str | None:
    """Our provider for a Nango provider config key (``google-calendar`` -> google_calendar)."""
    found = provider_for_nango_key(key)
    return found.value if found is not None else None


# --- connect sessions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectSession:
    token: str
    connect_link: str | None
    expires_at: str | None


@dataclass(frozen=True)
class EndUser:
    id: str
    email: str | None = None
    display_name: str | None = None


def create_connect_session(
    settings: Settings,
    org: str,
    provider: str,
    end_user: EndUser,
    *,
    organization_name: str | None = None,
    http: httpx.Client | None = None,
) -> ConnectSession:
    """A Nango Connect session letting ``end_user`` connect ``provider`` for ``org``."""
    key = provider_config_key(provider)
    secret = _secret_key(settings)
    body: dict[str, Any] = {
        "end_user": {
            k: v
            for k, v in {
                "id": end_user.id,
                "email": end_user.email,
                "display_name": end_user.display_name,
            }.items()
            if v
        },
        "organization": {"id": org, "display_name": organization_name or org},
        "allowed_integrations": [key],
        "tags": {"end_user_id": end_user.id, "organization_id": org},
    }
    response = _nango_request(settings, secret, "POST", "/connect/sessions", http, json=body)
    if response.status_code != 201:
        raise CredentialsError(
            "nango", "POST /connect/sessions", response.status_code, _nango_error(response)
        )
    data = response.json().get("data") or {}
    if not data.get("token"):
        raise CredentialsError("nango", "POST /connect/sessions", 201, "no session token")
    return ConnectSession(str(data["token"]), data.get("connect_link"), data.get("expires_at"))


# --- the auth webhook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    status: str  # recorded, failed, ignored, replayed, rejected
    detail: str = ""

    @property
    def http_status(self) -> int:
        """What the webhook endpoint answers: 401 for a bad signature, else 200 (a non-2xx
        makes Nango retry, which only helps when the failure was ours)."""
        return 401 if self.status == "rejected" else 200


def verify_signature(secret: str, raw_body: bytes, signature: str | None) -> bool:
    if not signature or not secret:
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def handle_webhook(
    db: Database, settings: Settings, raw_body: bytes, headers: Mapping[str, str]
) -> WebhookResult:
    """Verify, de-duplicate and apply one Nango webhook delivery."""
    if settings.nango_webhook_secret is None:
        raise SettingsError("NANGO_WEBHOOK_SECRET", "set it to verify Nango's webhooks")
    signature = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER)
    if not verify_signature(settings.nango_webhook_secret.get_secret_value(), raw_body, signature):
        log.warning("nango webhook refused: bad or missing %s", SIGNATURE_HEADER)
        return WebhookResult("rejected", "bad or missing signature")
    try:
        payload = json.loads(raw_body)
    except ValueError:
        return WebhookResult("ignored", "body is not JSON")
    if not isinstance(payload, dict):
        return WebhookResult("ignored", "body is not a JSON object")
    digest = hashlib.sha256(raw_body).hexdigest()
    with db.begin() as conn:
        # Claim the delivery first: of two concurrent copies, exactly one inserts the key.
        claimed = conn.execute(
            text(
                "INSERT INTO nango_webhook_events (body_sha256, organization_id, webhook_type, "
                "operation, connection_id, outcome, received_at) VALUES (:sha, :org, :type, "
                ":operation, :connection, 'processing', :now) ON CONFLICT (body_sha256) "
                "DO NOTHING RETURNING body_sha256"
            ),
            {
                "sha": digest,
                "org": _org_of(payload),
                "type": _short(payload.get("type")),
                "operation": _short(payload.get("operation")),
                "connection": _short_id(payload.get("connectionId")),
                "now": utcnow(),
            },
        ).first()
        if claimed is None:
            return WebhookResult("replayed", "already processed")
        outcome = _apply(conn, payload)
        conn.execute(
            update(_webhooks)
            .where(_webhooks.c.body_sha256 == digest)
            .values(outcome=outcome.status)
        )
    return outcome


def _apply(conn: Connection, payload: Mapping[str, Any]) -> WebhookResult:
    if payload.get("type") != "auth" or payload.get("operation") not in ("creation", "override"):
        return WebhookResult("ignored", f"webhook type {payload.get('type')!r} not handled")
    key = str(payload.get("providerConfigKey") or "")
    provider = provider_for_key(key)
    org = _org_of(payload)
    connection_id = payload.get("connectionId")
    if provider is None or org is None or not connection_id:
        return WebhookResult("ignored", "no known provider, organization or connection in it")
    if payload.get("success") is not True:
        _upsert_integration(conn, org, provider, status="error", error=_failure(payload))
        return WebhookResult("failed", "Nango reports the authorization failed")
    tags = payload.get("tags") or {}
    _upsert_integration(
        conn,
        org,
        provider,
        status="connected",
        connection_id=str(connection_id),
        config_key=key,
        end_user_id=(tags.get("end_user_id") if isinstance(tags, dict) else None)
        or (payload.get("endUser") or {}).get("endUserId"),
    )
    log.info("nango: %s connected for %s", provider, org)
    return WebhookResult("recorded", f"{provider} connected for {org}")


def _org_of(payload: Mapping[str, Any]) -> str | None:
    tags = payload.get("tags")
    if isinstance(tags, dict) and tags.get("organization_id"):
        return str(tags["organization_id"])
    end_user = payload.get("endUser")
    if isinstance(end_user, dict) and end_user.get("organizationId"):
        return str(end_user["organizationId"])
    return None


def _failure(payload: Mapping[str, Any]) -> str:
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("description") or error.get("type") or "authorization failed")
    return "authorization failed"


def _short_id(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


def _short(value: Any) -> str | None:
    return None if value is None else str(value)[:32]


def _upsert_integration(
    conn: Connection,
    org: str,
    provider: str,
    *,
    status: str,
    connection_id: str | None = None,
    config_key: str | None = None,
    end_user_id: Any = None,
    error: str | None = None,
) -> None:
    now = utcnow()
    bookkeeping.ensure_organization(conn, org)
    conn.execute(
        text(
            "INSERT INTO integrations (id, organization_id, provider, status, created_at, "
            "updated_at) VALUES (:id, :org, :provider, :status, :now, :now) "
            "ON CONFLICT (organization_id, provider) DO NOTHING"
        ),
        {"id": uuid.uuid4(), "org": org, "provider": provider, "status": status, "now": now},
    )
    values: dict[str, Any] = {"status": status, "updated_at": now, "last_error": error}
    if connection_id is not None:
        values.update(
            nango_connection_id=connection_id,
            nango_provider_config_key=config_key,
            end_user_id=None if end_user_id is None else str(end_user_id),
        )
    conn.execute(
        update(_integrations)
        .where(_integrations.c.organization_id == org, _integrations.c.provider == provider)
        .values(**values)
    )


# --- list and delete -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IntegrationInfo:
    provider: str
    status: str
    via_nango: bool
    connection_id: str | None
    last_sync_at: datetime | None
    last_error: str | None


def list_integrations(db: Database, org: str) -> list[IntegrationInfo]:
    with db.connect() as conn:
        rows = conn.execute(
            select(_integrations)
            .where(_integrations.c.organization_id == org)
            .order_by(_integrations.c.provider)
        ).all()
    return [
        IntegrationInfo(
            r.provider,
            r.status,
            r.nango_connection_id is not None,
            r.nango_connection_id,
            r.last_sync_at,
            r.last_error,
        )
        for r in rows
    ]


def delete_integration(
    db: Database,
    settings: Settings,
    org: str,
    provider: str,
    *,
    http: httpx.Client | None = None,
) -> bool:
    """Disconnect ``provider`` for ``org``: delete the Nango connection (if any), the
    integration and its sync cursors. Synced rows stay (they are the org's data). False if
    there was nothing to delete."""
    with db.connect() as conn:
        row = conn.execute(
            select(
                _integrations.c.nango_connection_id, _integrations.c.nango_provider_config_key
            ).where(_integrations.c.organization_id == org, _integrations.c.provider == provider)
        ).first()
    if row is None:
        return False
    if row.nango_connection_id:
        secret = _secret_key(settings)
        response = _nango_request(
            settings,
            secret,
            "DELETE",
            f"/connections/{quote(row.nango_connection_id, safe='')}",
            http,
            params={
                "provider_config_key": row.nango_provider_config_key
                or provider_config_key(provider)
            },
        )
        if response.status_code not in (200, 204, 404):  # 404: already gone at Nango
            raise CredentialsError(
                "nango", "DELETE /connections/{id}", response.status_code, _nango_error(response)
            )
    with db.begin() as conn:
        conn.execute(
            delete(_integrations).where(
                _integrations.c.organization_id == org, _integrations.c.provider == provider
            )
        )
        conn.execute(
            delete(_cursors).where(
                _cursors.c.organization_id == org, _cursors.c.provider == provider
            )
        )
    return True


# --- Nango HTTP ---------------------------------------------------------------------------------


def _secret_key(settings: Settings) -> str:
    if settings.nango_secret_key is None:
        raise SettingsError("NANGO_SECRET_KEY", "set it to connect providers through Nango")
    return settings.nango_secret_key.get_secret_value()


def _nango_request(
    settings: Settings,
    secret: str,
    method: str,
    path: str,
    http: httpx.Client | None,
    **kwargs: Any,
) -> httpx.Response:
    # The secret key goes to NANGO_BASE_URL's origin only: checked URL, no redirect followed.
    base = settings.nango_base_url.rstrip("/")
    origin = origin_of(base)
    url = require_origin("nango", method, f"{base}{path}", origin, why="the Nango URL")
    client = http or make_http_client()
    try:
        response = client.request(
            method,
            url,
            headers={"Authorization": f"Bearer {secret}"},
            follow_redirects=False,
            **kwargs,
        )
    except httpx.TransportError as exc:
        raise CredentialsError(
            "nango", f"{method} {path}", None, f"Nango unreachable: {exc}"
        ) from exc
    finally:
        if http is None:
            client.close()
    refuse_foreign_redirect("nango", method, response, origin)
    return response


def _nango_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return response.text[:200]
    if isinstance(error, dict):
        return f"{error.get('code', 'error')}: {error.get('message', '')}".strip(": ")
    return str(error)
