"""REST endpoints about the caller: health, the session exchange, who am I, sign-up, the
profile, their organization and its members, the providers on offer, the public waitlist.

Every route needs a signed-in, admitted user except those marked public (health, the public
waitlist and the session exchange). Cookie-authenticated writes carry Jupyter's XSRF token;
bearer-token requests are not cookie-borne and skip it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from revtops_kernel import __version__
from revtops_kernel.providers import ALL_PROVIDERS
from revtops_kernel.status import PROVIDER_NAMES
from revtops_kernel.tenancy import (
    join_waitlist,
    members,
    organization,
    organization_by_domain,
    rename_member,
)

from .base import ApiHandler, PublicHandler, plain
from .identity import RevtopsUser
from .sessions import clear_session_cookies, set_session_cookies
from .supabase import TokenRejected
from .text_input import InvalidText, clean_domain

ACCESS_TOKEN_MAX_LENGTH = 16_384  # a Supabase JWT with generous metadata is a few kilobytes
REFRESH_TOKEN_MAX_LENGTH = 1_024


class HealthHandler(PublicHandler):
    """Liveness: the process answers. No I/O, so a slow database never gets the app killed."""

    @allow_unauthenticated
    def get(self) -> None:
        self.reply({"status": "ok", "version": __version__, "backend": self.ctx.db.backend.value})


# Seconds each readiness check may take; a load balancer probes every few seconds.
READY_TIMEOUT_SECONDS = 2.0


class ReadyHandler(PublicHandler):
    """Readiness: the database answers SELECT 1 and, with REVTOPS_BROKER_URL, Redis answers
    PING. 200 with each check's latency, or 503 naming what failed (errors carry no password)."""

    @allow_unauthenticated
    async def get(self) -> None:
        from revtops_kernel.scheduling.deployment import readiness

        loop = asyncio.get_running_loop()
        checks = await loop.run_in_executor(
            None, lambda: readiness(self.ctx.db, self.ctx.settings, timeout=READY_TIMEOUT_SECONDS)
        )
        failing = [c.name for c in checks if not c.ok]
        body: dict[str, Any] = {
            "status": "unavailable" if failing else "ready",
            "version": __version__,
            "checks": {
                c.name: {"ok": c.ok, "latency_ms": c.latency_ms, "error": c.error} for c in checks
            },
        }
        if failing:
            body["failing"] = failing
        self.reply(body, 503 if failing else 200)


class SessionHandler(PublicHandler):
    """Exchange a Supabase session for the HttpOnly session cookies, or sign out.

    The body is ``{"access_token": …, "refresh_token": …}`` as Supabase returns them in the
    URL fragment; with a refresh token the server renews the session before it expires.
    """

    @allow_unauthenticated
    def post(self) -> None:
        data = self.body()
        token = self.required_text(data, "access_token", max_length=ACCESS_TOKEN_MAX_LENGTH)
        refresh = self.text_field(data, "refresh_token", max_length=REFRESH_TOKEN_MAX_LENGTH)
        provider = self.identity_provider
        try:
            user = provider.user_for_token(self, token)  # type: ignore[attr-defined]
        except TokenRejected as exc:
            raise web.HTTPError(401, plain(exc)) from None
        set_session_cookies(self, token, user.expires_at, refresh or None)
        self.reply(_me(user))

    @allow_unauthenticated
    def delete(self) -> None:
        clear_session_cookies(self)
        self.reply({"signed_out": True})


def _me(user: Any) -> dict[str, Any]:
    if isinstance(user, RevtopsUser):
        return {
            "email": user.email,
            "name": user.name,
            "status": user.status,
            "message": user.message,
            "organization_id": user.organization_id,
            "user_id": str(user.member_id) if user.member_id else None,
            "role": user.role,
        }
    return {"name": getattr(user, "name", None), "status": "admitted", "role": "admin"}


class MeHandler(ApiHandler):
    def get(self) -> None:
        data = _me(self.current_user)
        if data["status"] == "admitted":
            principal = self.principal()
            data["organization"] = organization(self.ctx.db, principal.organization_id)
            data["organization_id"] = principal.organization_id
        self.reply(data)


class RegisterHandler(ApiHandler):
    """Sign-up after sign-in: says whether the person is admitted, waitlisted or refused."""

    def post(self) -> None:
        data = _me(self.current_user)
        status = {"admitted": 200, "waitlisted": 202}.get(data["status"], 403)
        self.reply(data, status)


class UsersSyncHandler(ApiHandler):
    """Update the member's profile from the verified token (name changes in Google, say)."""

    def post(self) -> None:
        principal = self.principal()
        name = self.text_field(self.body(), "name", max_length=200)
        if principal.member_id is not None and name is not None:
            rename_member(self.ctx.db, principal.member_id, name)
        self.reply({"user_id": str(principal.member_id) if principal.member_id else None})


class OrganizationByDomainHandler(ApiHandler):
    def get(self) -> None:
        raw = self.query_text("domain", max_length=253)
        if not raw:
            raise web.HTTPError(400, "'domain' is required")
        try:
            domain = clean_domain(raw)
        except InvalidText as exc:
            raise web.HTTPError(400, plain(exc)) from None
        principal = self.principal()
        found = organization_by_domain(self.ctx.db, domain)
        # Only say what the caller may know: their own organization.
        if found is None or found["id"] != principal.organization_id:
            raise web.HTTPError(404, f"no organization of yours uses {domain}")
        self.reply(found)


class MembersHandler(ApiHandler):
    def get(self, org: str) -> None:
        if org != self.principal().organization_id:
            raise web.HTTPError(404, "no such organization")
        self.reply({"members": [m.as_json() for m in members(self.ctx.db, org)]})


class AvailableIntegrationsHandler(ApiHandler):
    def get(self) -> None:
        self.principal()
        connect = "nango" if self.ctx.settings.nango_secret_key is not None else "token"
        providers = [
            {"provider": p, "name": PROVIDER_NAMES[p], "connect": connect} for p in ALL_PROVIDERS
        ]
        self.reply({"providers": providers})


class WaitlistHandler(PublicHandler):
    """The public form: validated, rate-limited per client address."""

    LIMIT = 5
    WINDOW_SECONDS = 60.0

    @allow_unauthenticated
    def post(self) -> None:
        # Validation is free; the limit guards the database write that follows it.
        data = self.body()
        email = self.email_field(data)
        name = self.text_field(data, "name", max_length=200)
        company = self.text_field(data, "company", max_length=200)
        note = self.text_field(data, "note", max_length=2000, multiline=True)
        self._rate_limit()
        entry = join_waitlist(self.ctx.db, email=email, name=name, company=company, note=note)
        self.reply({"email": entry["email"], "status": entry["status"]}, 201)

    def _rate_limit(self) -> None:
        hits: dict[str, deque[float]] = self.ctx.limits.setdefault("waitlist", {})
        client = self.request.remote_ip or "unknown"
        now = time.monotonic()
        window = hits.setdefault(client, deque())
        while window and now - window[0] > self.WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self.LIMIT:
            self.set_header("Retry-After", str(int(self.WINDOW_SECONDS - (now - window[0])) + 1))
            raise web.HTTPError(429, "too many requests; try again in a minute")
        window.append(now)
