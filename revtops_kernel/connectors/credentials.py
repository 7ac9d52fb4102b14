"""Where a connector's token comes from: a token from settings, or a Nango connection.

With Nango the project stores no provider token: it asks Nango for the connection's current
access token when a sync starts, keeps it in memory for that sync only, and asks again (forcing
a refresh) when the provider answers 401 (the client does so once per request) or when the
token's ``expires_at`` is less than a minute away. Tokens rotate: a long sync may fetch several.
A token never appears in a log line or an error.

The Nango secret key goes only to ``NANGO_BASE_URL``'s origin: the request URL is checked and a
redirect is never followed (one to another origin raises ``ForeignOriginError``). An instance URL
that Nango reports for a connection (Salesforce: ``connection_config.instance_url``) must be
https, or http on a loopback host (a local sandbox); it becomes that connection's origin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from revtops_kernel.connectors.origins import (
    origin_of,
    refuse_foreign_redirect,
    require_origin,
    require_secure,
)
from revtops_kernel.errors import CredentialsError
from revtops_kernel.providers import ALL_PROVIDERS, provider_info, settings_token
from revtops_kernel.settings import Settings
from revtops_kernel.timeutil import to_utc, utcnow

log = logging.getLogger(__name__)

PROVIDERS = ALL_PROVIDERS
EXPIRY_MARGIN = timedelta(seconds=60)  # fetch a new token this long before the old one expires
TOKEN_VARIABLES = {name: provider_info(name).token_variable for name in ALL_PROVIDERS}


class StaticToken:
    """A token from settings (a single user's private app or personal token)."""

    def __init__(self, provider: str, secret: SecretStr | None) -> None:
        self.provider = provider
        self._secret = secret

    def token(self) -> str:
        if self._secret is None or not self._secret.get_secret_value():
            raise CredentialsError(
                self.provider,
                "credentials",
                None,
                f"no token: set {TOKEN_VARIABLES[self.provider]}, or connect "
                f"{self.provider} through Nango (NANGO_SECRET_KEY)",
            )
        return self._secret.get_secret_value()

    def refresh(self) -> bool:
        return False  # nothing to refresh: the 401 stands


@dataclass(frozen=True)
class NangoConnection:
    connection_id: str
    provider_config_key: str


class NangoToken:
    """The access token of a Nango connection: fetched on first use, before it expires, and
    after a 401 (``refresh``, which says whether Nango handed out a different token)."""

    def __init__(
        self,
        provider: str,
        connection: NangoConnection,
        *,
        base_url: str,
        secret_key: SecretStr,
        http: httpx.Client,
    ) -> None:
        self.provider = provider
        self.connection = connection
        self._base_url = base_url.rstrip("/")
        self._origin = origin_of(self._base_url)  # the only place the secret key goes
        self._secret_key = secret_key
        self._http = http
        self._token: str | None = None
        self._renew_at: datetime | None = None  # fetch again from then on
        self._instance_url: str | None = None
        self.fetches = 0

    def token(self) -> str:
        if self._token is None or (self._renew_at is not None and self._renew_at <= utcnow()):
            self._token = self._fetch(force_refresh=False)
        return self._token

    def instance_url(self) -> str | None:
        """The instance URL Nango reports for the connection (Salesforce), checked to be https
        (or loopback); fetches the token first if nothing was fetched yet."""
        if self._token is None:
            self.token()
        return self._instance_url

    def refresh(self) -> bool:
        """After a 401: True if Nango now gives another token (worth one more try). The same
        token again means the 401 stands; the client asks at most once per request."""
        previous, self._token = self._token, self._fetch(force_refresh=True)
        return self._token != previous or previous is None

    def _fetch(self, *, force_refresh: bool) -> str:
        endpoint = "GET /connections/{id}"
        params = {"provider_config_key": self.connection.provider_config_key}
        if force_refresh:
            params["force_refresh"] = "true"
        url = require_origin(
            "nango",
            "GET",
            f"{self._base_url}/connections/{quote(self.connection.connection_id, safe='')}",
            self._origin,
            why="the Nango URL",
        )
        try:
            response = self._http.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {self._secret_key.get_secret_value()}"},
                follow_redirects=False,
            )
        except httpx.TransportError as exc:
            raise CredentialsError("nango", endpoint, None, f"Nango unreachable: {exc}") from exc
        refuse_foreign_redirect("nango", "GET", response, self._origin)
        if response.status_code != 200:
            raise CredentialsError("nango", endpoint, response.status_code, _nango_error(response))
        self.fetches += 1
        body = response.json()
        credentials = body.get("credentials") or {}
        self._instance_url = _instance_url(self.provider, body, credentials)
        expires_at, now = _expiry(credentials.get("expires_at")), utcnow()
        # A minute before expiry, or half way for short-lived tokens.
        margin = min(EXPIRY_MARGIN, (expires_at - now) / 2) if expires_at else EXPIRY_MARGIN
        self._renew_at = expires_at - margin if expires_at else None
        token = credentials.get("access_token") or credentials.get("apiKey")
        if not token:
            raise CredentialsError(
                "nango",
                endpoint,
                200,
                f"connection has no access token ({credentials.get('type')})",
            )
        log.info("nango: token for %s connection fetched", self.provider)
        return str(token)


def _instance_url(provider: str, body: Any, credentials: Any) -> str | None:
    """``connection_config.instance_url`` (or the OAuth answer's), if Nango reports one."""
    config = body.get("connection_config") if isinstance(body, dict) else None
    raw = credentials.get("raw") if isinstance(credentials, dict) else None
    value = (config or {}).get("instance_url") if isinstance(config, dict) else None
    if not value and isinstance(raw, dict):
        value = raw.get("instance_url")
    if not value:
        return None
    return require_secure(
        provider, str(value), endpoint="instance_url", what="the instance URL Nango reports"
    )


def _expiry(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_utc(value)
    except ValueError:
        return None  # an unreadable expiry: rely on the 401 instead


def _nango_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return response.text[:200]
    if isinstance(error, dict):
        return f"{error.get('code', 'error')}: {error.get('message', '')}".strip(": ")
    return str(error)


def token_source(
    settings: Settings,
    provider: str,
    *,
    http: httpx.Client,
    nango_connection: NangoConnection | None = None,
) -> StaticToken | NangoToken:
    """Nango when the integration has a Nango connection; else the token from settings."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
    if nango_connection is not None:
        if settings.nango_secret_key is None:
            raise CredentialsError(
                provider, "credentials", None, "a Nango connection needs NANGO_SECRET_KEY"
            )
        return NangoToken(
            provider,
            nango_connection,
            base_url=settings.nango_base_url,
            secret_key=settings.nango_secret_key,
            http=http,
        )
    return StaticToken(provider, settings_token(settings, provider))
