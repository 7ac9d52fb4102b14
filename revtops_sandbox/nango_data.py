"""Nango's side of the sandbox: integrations, connect sessions, connections and webhooks.

Pure data and helpers (no HTTP): `nango.py` serves them, `SandboxServer.nango_webhook` builds
the signed auth webhook a real Nango would POST after an end user connects an account.

A connection's credentials are the sandbox provider's current bearer token: when that token
has expired (``faults.<p>.token_ttl_calls``, ``expire_token``) or the connection's
``expires_at`` has passed, the next credential fetch rotates it, and the old token then gets
the provider's 401, as after a real OAuth refresh.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# provider config key -> (Nango provider name, sandbox provider, where Nango's proxy base URL
# sits in the sandbox). Nango's bases: https://api.hubapi.com, the Salesforce instance URL,
# https://slack.com/api and https://www.googleapis.com (so Calendar paths start /calendar/v3).
INTEGRATIONS: dict[str, tuple[str, str, str]] = {
    "hubspot": ("hubspot", "hubspot", "/hubspot"),
    "salesforce": ("salesforce", "salesforce", "/salesforce"),
    "slack": ("slack", "slack", "/slack/api"),
    "google-calendar": ("google-calendar", "google_calendar", ""),
}
SESSION_TTL_S = 30 * 60
DEFAULT_TOKEN_TTL_S = 3600.0


def iso_s(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + (
        f".{int(epoch_s * 1000) % 1000:03d}Z"
    )


@dataclass(slots=True)
class ConnectSession:
    token: str
    expires_at_s: float
    end_user: dict[str, Any] | None
    organization: dict[str, Any] | None
    allowed_integrations: list[str] | None
    tags: dict[str, str]


@dataclass(slots=True)
class Connection:
    id: int
    connection_id: str
    provider_config_key: str
    created_s: float
    expires_at_s: float
    end_user: dict[str, Any] | None = None
    organization: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    updated_s: float = 0.0
    last_fetched_s: float | None = None
    refreshes: int = 0

    @property
    def provider(self) -> str:
        return INTEGRATIONS[self.provider_config_key][0]

    @property
    def sandbox_provider(self) -> str:
        return INTEGRATIONS[self.provider_config_key][1]


@dataclass(slots=True)
class Webhook:
    """One webhook as Nango would send it: the exact bytes and the headers."""

    body: bytes
    headers: dict[str, str]
    connection_id: str


class NangoState:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        digest = hashlib.sha256(f"revtops-sandbox-nango:{seed}".encode()).hexdigest()
        self.secret_key = str(uuid.UUID(digest[:32]))  # Nango secret keys are UUIDs
        self.webhook_secret = digest[32:64]
        self.sessions: dict[str, ConnectSession] = {}
        self.connections: dict[str, Connection] = {}  # by connection_id
        self.token_ttl_s = DEFAULT_TOKEN_TTL_S
        self.environment = "dev"
        self._issued = 0

    def _next(self, kind: str) -> str:
        self._issued += 1
        return hashlib.sha256(f"{self.seed}:{kind}:{self._issued}".encode()).hexdigest()

    def create_session(
        self,
        end_user: dict[str, Any] | None,
        organization: dict[str, Any] | None,
        allowed: list[str] | None,
        tags: dict[str, str] | None,
    ) -> ConnectSession:
        merged: dict[str, str] = {}
        if end_user:
            merged["end_user_id"] = str(end_user["id"])
            if end_user.get("email"):
                merged["end_user_email"] = str(end_user["email"])
            if end_user.get("display_name"):
                merged["end_user_display_name"] = str(end_user["display_name"])
        if organization:
            merged["organization_id"] = str(organization["id"])
            if organization.get("display_name"):
                merged["organization_display_name"] = str(organization["display_name"])
        merged.update(tags or {})
        token = "nango_connect_session_" + self._next("session")[:48]
        session = ConnectSession(
            token, time.time() + SESSION_TTL_S, end_user, organization, allowed, merged
        )
        self.sessions[token] = session
        return session

    def create_connection(
        self,
        provider_config_key: str,
        *,
        session: ConnectSession | None = None,
        tags: dict[str, str] | None = None,
        connection_id: str | None = None,
    ) -> Connection:
        if provider_config_key not in INTEGRATIONS:
            raise ValueError(
                f"unknown integration {provider_config_key!r}; expected one of "
                f"{sorted(INTEGRATIONS)}"
            )
        allowed = session.allowed_integrations if session is not None else None
        if allowed and provider_config_key not in allowed:
            raise ValueError(
                f"the connect session only allows {allowed}, not {provider_config_key!r}"
            )
        cid = connection_id or str(uuid.UUID(self._next("connection")[:32]))
        now = time.time()
        merged = dict(session.tags) if session is not None else {}
        merged.update(tags or {})
        conn = Connection(
            id=len(self.connections) + 1,
            connection_id=cid,
            provider_config_key=provider_config_key,
            created_s=now,
            expires_at_s=now + self.token_ttl_s,
            end_user=session.end_user if session is not None else None,
            organization=session.organization if session is not None else None,
            tags=merged,
            updated_s=now,
        )
        self.connections[cid] = conn
        return conn

    def auth_webhook(
        self, conn: Connection, *, operation: str = "creation", success: bool = True
    ) -> Webhook:
        """The auth webhook body and headers, signed as Nango signs them."""
        payload: dict[str, Any] = {
            "from": "nango",
            "type": "auth",
            "operation": operation,
            "connectionId": conn.connection_id,
            "authMode": "OAUTH2",
            "providerConfigKey": conn.provider_config_key,
            "provider": conn.provider,
            "environment": self.environment,
            "success": success,
        }
        if conn.end_user:
            end_user: dict[str, Any] = {"endUserId": conn.end_user["id"]}
            if conn.end_user.get("email"):
                end_user["endUserEmail"] = conn.end_user["email"]
            if conn.organization:
                end_user["organizationId"] = conn.organization["id"]
            payload["endUser"] = end_user
        if conn.tags:
            payload["tags"] = dict(conn.tags)
        if not success:
            payload["error"] = {"type": "auth_error", "description": "The user denied access."}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return Webhook(body, self.sign(body), conn.connection_id)

    def sign(self, body: bytes) -> dict[str, str]:
        mac = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        legacy = hashlib.sha256(self.webhook_secret.encode() + body).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-Nango-Hmac-Sha256": mac,
            "X-Nango-Signature": legacy,  # deprecated plain SHA-256: not to be trusted
            "User-Agent": "Nango",
        }
