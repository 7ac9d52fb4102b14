"""Web-app sessions that outlive one access token: the cookies, and renewal with Supabase.

Supabase's access tokens live an hour. The sign-in page posts the refresh token along with the
access token; it is kept in its own HttpOnly, SameSite=Lax cookie scoped to the server's base
URL. When a cookie-borne request arrives with an access token that has expired (or expires
within `RENEW_MARGIN_SECONDS`), the server exchanges the refresh token at
``POST {SUPABASE_URL}/auth/v1/token?grant_type=refresh_token`` and sets the new pair of cookies.
If Supabase says the refresh token is revoked or unknown, the session's cookies are cleared:
the person is signed out. Bearer callers manage their own tokens and are never renewed.

Renewals are shared per refresh token for `RENEWAL_REUSE_SECONDS`: the dozens of requests a page
load makes with the same expired token cause one call to Supabase (which rotates the refresh
token, so a second call with the old one could be refused as a reuse).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from tornado import web

log = logging.getLogger(__name__)

SESSION_COOKIE = "revtops_session"
REFRESH_COOKIE = "revtops_refresh"
RENEW_MARGIN_SECONDS = 300  # renew this long before expiry, so no request meets an expired token
RENEWAL_REUSE_SECONDS = 30.0
REFRESH_COOKIE_MAX_AGE = 14 * 24 * 3600  # a fortnight without a visit signs the person out
SUPABASE_TIMEOUT_SECONDS = 10.0
_CACHE_LIMIT = 10_000


class SessionRevoked(Exception):
    """Supabase refused the refresh token (revoked, signed out elsewhere, unknown): sign out."""


class RenewalFailed(Exception):
    """Supabase could not be asked (network, 5xx, 429): keep the session, try again later."""


@dataclass(frozen=True)
class Renewal:
    access_token: str
    refresh_token: str
    expires_at: int


def set_session_cookies(
    handler: web.RequestHandler, access_token: str, expires_at: int, refresh_token: str | None
) -> None:
    """The access token's cookie (until it expires) and, when given, the refresh token's."""
    base_url = handler.settings.get("base_url", "/")
    common: dict[str, Any] = {
        "httponly": True,
        "secure": handler.request.protocol == "https",
        "samesite": "Lax",
        "expires_days": None,
        "path": base_url,
    }
    max_age = max(0, expires_at - int(time.time()))
    handler.set_cookie(SESSION_COOKIE, access_token, max_age=max_age, **common)
    if refresh_token:
        handler.set_cookie(REFRESH_COOKIE, refresh_token, max_age=REFRESH_COOKIE_MAX_AGE, **common)


def clear_session_cookies(handler: web.RequestHandler) -> None:
    base_url = handler.settings.get("base_url", "/")
    handler.clear_cookie(SESSION_COOKIE, path=base_url)
    handler.clear_cookie(REFRESH_COOKIE, path=base_url)


def renewal_due(access_token: str | None, now: float | None = None) -> bool:
    """True when the token is absent, unreadable, expired or expiring within the margin.

    Reads ``exp`` without checking the signature: this only decides whether to ask Supabase;
    whatever token results is verified like any other.
    """
    if not access_token:
        return True
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
        expires_at = int(claims["exp"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError, OverflowError):
        return True
    return expires_at - (now if now is not None else time.time()) < RENEW_MARGIN_SECONDS


class SessionRenewer:
    """Exchanges refresh tokens at Supabase's token endpoint, one call per token at a time."""

    def __init__(self, *, supabase_url: str, anon_key: str) -> None:
        self.endpoint = supabase_url.rstrip("/") + "/auth/v1/token"
        self._anon_key = anon_key
        self._recent: dict[str, tuple[float, asyncio.Future[Renewal]]] = {}

    async def renew(self, refresh_token: str) -> Renewal:
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        now = time.monotonic()
        entry = self._recent.get(key)
        if entry is None or now - entry[0] > RENEWAL_REUSE_SECONDS:
            if len(self._recent) >= _CACHE_LIMIT:
                self._prune(now)
            entry = (now, asyncio.ensure_future(self._exchange(refresh_token)))
            self._recent[key] = entry
        future = entry[1]
        try:
            return await asyncio.shield(future)
        except RenewalFailed:
            if self._recent.get(key) is entry:
                del self._recent[key]  # a passing failure: the next request asks again
            raise

    def _prune(self, now: float) -> None:
        stale = [k for k, (t, _) in self._recent.items() if now - t > RENEWAL_REUSE_SECONDS]
        for k in stale:
            del self._recent[k]
        if len(self._recent) >= _CACHE_LIMIT:
            self._recent.clear()

    async def _exchange(self, refresh_token: str) -> Renewal:
        headers = {"apikey": self._anon_key, "Authorization": f"Bearer {self._anon_key}"}
        try:
            async with httpx.AsyncClient(timeout=SUPABASE_TIMEOUT_SECONDS) as client:
                reply = await client.post(
                    self.endpoint,
                    params={"grant_type": "refresh_token"},
                    json={"refresh_token": refresh_token},
                    headers=headers,
                )
        except httpx.HTTPError as exc:
            raise RenewalFailed(f"Supabase did not answer: {type(exc).__name__}") from None
        if reply.status_code in (400, 401, 403, 404):
            # invalid_grant / refresh_token_not_found / refresh_token_already_used / session_*
            raise SessionRevoked(_supabase_reason(reply))
        if reply.status_code != 200:
            raise RenewalFailed(f"Supabase answered {reply.status_code}: {_supabase_reason(reply)}")
        try:
            data = reply.json()
            access, refresh = data["access_token"], data["refresh_token"]
            expires_at = int(data.get("expires_at") or time.time() + int(data["expires_in"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise RenewalFailed(f"Supabase's reply is not a session: {exc!r}") from None
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise RenewalFailed("Supabase's reply is not a session: tokens are not strings")
        return Renewal(access, refresh, expires_at)


def _supabase_reason(reply: httpx.Response) -> str:
    """Supabase's error code and message (``error_code``/``msg`` or OAuth's ``error``)."""
    try:
        data = reply.json()
    except ValueError:
        return f"HTTP {reply.status_code}"
    if not isinstance(data, dict):
        return f"HTTP {reply.status_code}"
    code = data.get("error_code") or data.get("error") or data.get("code")
    message = data.get("msg") or data.get("error_description") or data.get("message")
    return f"HTTP {reply.status_code} {code or ''}: {message or ''}".strip()[:300]
