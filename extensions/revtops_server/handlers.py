"""REST endpoints under ``/revtops/api/``: JSON in, JSON out, errors as ``{"error": {...}}``.

Every route needs a signed-in, admitted user except those marked public (health, the public
waitlist, the OAuth callback, the Nango webhook, and the session exchange). Cookie-authenticated
writes carry Jupyter's XSRF token; bearer-token requests are not cookie-borne and skip it.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from tornado import web

from revtops_kernel import __version__
from revtops_kernel.errors import RevtopsError
from revtops_kernel.providers import ALL_PROVIDERS
from revtops_kernel.status import PROVIDER_NAMES
from revtops_kernel.tenancy import (
    TenancyError,
    create_organization,
    invite,
    join_waitlist,
    members,
    organization,
    organization_by_domain,
    waitlist,
)

from .context import Context, context_of
from .identity import SESSION_COOKIE, RevtopsUser
from .supabase import TokenRejected


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an organization, and the member when known."""

    organization_id: str
    member_id: uuid.UUID | None
    email: str | None
    role: str


class ApiHandler(APIHandler):
    """Base: the shared context, the caller's principal, JSON bodies and JSON errors."""

    public = False

    @property
    def ctx(self) -> Context:
        return context_of(self.settings)

    async def prepare(self) -> None:  # type: ignore[override]
        try:
            await super().prepare()
        except web.HTTPError as exc:
            # Jupyter answers 403 to an anonymous write; "who are you" is a 401.
            if exc.status_code == 403 and self.current_user is None and not self.public:
                raise web.HTTPError(401, "sign in first") from None
            raise
        if not self.public and self.current_user is None:
            raise web.HTTPError(401, "sign in first")

    def principal(self) -> Principal:
        user = self.current_user
        if user is None:
            raise web.HTTPError(401, "sign in first")
        if isinstance(user, RevtopsUser):
            if not user.admitted or user.organization_id is None:
                raise web.HTTPError(403, user.message or "your account has no access yet")
            return Principal(user.organization_id, user.member_id, user.email, user.role)
        # Jupyter's own auth (an analyst's JupyterLab): the server's owner, as settings.org.
        return Principal(self.ctx.settings.org, None, None, "admin")

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data

    def text_field(self, data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
        value = data.get(name)
        if value is None:
            if required:
                raise web.HTTPError(400, f"'{name}' is required")
            return None
        if not isinstance(value, str):
            raise web.HTTPError(400, f"'{name}' must be a string")
        return value

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif isinstance(exc, RevtopsError):
            message = str(exc)
        elif status_code >= 500:
            message = "internal error"  # details go to the log, never to the client
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"status": status_code, "message": message}}))

    def _handle_request_exception(self, e: BaseException) -> None:
        # Domain errors are the client's problem, said plainly; they are never 500s.
        if isinstance(e, RevtopsError) and not self._finished:
            self.log.info("revtops: %s", e)
            status = 409 if isinstance(e, TenancyError) and "already" in str(e) else 400
            self.send_error(status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class PublicHandler(ApiHandler):
    public = True

    def check_xsrf_cookie(self) -> None:
        # A request that carries no cookie has no ambient authority to abuse: nothing to forge.
        if not self.request.cookies:
            return None
        return super().check_xsrf_cookie()


class HealthHandler(PublicHandler):
    @allow_unauthenticated
    def get(self) -> None:
        self.reply({"status": "ok", "version": __version__, "backend": self.ctx.db.backend.value})


class SessionHandler(PublicHandler):
    """Exchange a Supabase access token for the HttpOnly session cookie, or sign out."""

    @allow_unauthenticated
    def post(self) -> None:
        token = self.text_field(self.body(), "access_token", required=True)
        assert token is not None
        provider = self.identity_provider
        try:
            user = provider.user_for_token(self, token)  # type: ignore[attr-defined]
        except TokenRejected as exc:
            raise web.HTTPError(401, str(exc).replace("%", "%%")) from None
        max_age = max(0, user.expires_at - int(time.time()))
        self.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            secure=self.request.protocol == "https",
            samesite="Lax",
            expires_days=None,
            max_age=max_age,
            path=self.base_url,
        )
        self.reply(_me(user))

    @allow_unauthenticated
    def delete(self) -> None:
        self.clear_cookie(SESSION_COOKIE, path=self.base_url)
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
        user = self.current_user
        data = _me(user)
        status = {"admitted": 200, "waitlisted": 202}.get(data["status"], 403)
        self.reply(data, status)


class UsersSyncHandler(ApiHandler):
    """Update the member's profile from the verified token (name changes in Google, say)."""

    def post(self) -> None:
        principal = self.principal()
        name = self.text_field(self.body(), "name")
        if principal.member_id is not None and name is not None:
            from sqlalchemy import update

            from revtops_kernel.store.schema import metadata

            users = metadata.tables["users"]
            with self.ctx.db.begin() as conn:
                conn.execute(
                    update(users).where(users.c.id == principal.member_id).values(name=name[:200])
                )
        self.reply({"user_id": str(principal.member_id) if principal.member_id else None})


class OrganizationByDomainHandler(ApiHandler):
    def get(self) -> None:
        domain = self.get_argument("domain", "").strip().lower()
        if not domain:
            raise web.HTTPError(400, "'domain' is required")
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
        self._rate_limit()
        data = self.body()
        email = self.text_field(data, "email", required=True)
        assert email is not None
        entry = join_waitlist(
            self.ctx.db,
            email=email,
            name=self.text_field(data, "name"),
            company=self.text_field(data, "company"),
            note=self.text_field(data, "note"),
        )
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


def require_admin_key(handler: ApiHandler) -> None:
    configured = handler.ctx.settings.admin_key
    given = handler.request.headers.get("X-Admin-Key", "")
    if configured is None:
        raise web.HTTPError(404, "admin endpoints are disabled (REVTOPS_ADMIN_KEY is unset)")
    if not hmac.compare_digest(given.encode(), configured.get_secret_value().encode()):
        raise web.HTTPError(403, "a valid X-Admin-Key header is required")


class AdminHandler(PublicHandler):
    """Admin routes authenticate by key, not by session."""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        require_admin_key(self)

    def check_xsrf_cookie(self) -> None:
        return None  # key-authenticated, not cookie-borne


class OrganizationsHandler(AdminHandler):
    @allow_unauthenticated
    def post(self) -> None:
        """Create an organization: admins of the deployment only (the admin key)."""
        data = self.body()
        name = self.text_field(data, "name", required=True)
        assert name is not None
        domain = self.text_field(data, "domain")
        self.reply(create_organization(self.ctx.db, name=name, domain=domain), 201)


class AdminWaitlistHandler(AdminHandler):
    @allow_unauthenticated
    def get(self) -> None:
        self.reply({"waitlist": waitlist(self.ctx.db, status=self.get_argument("status", None))})


class AdminInviteHandler(AdminHandler):
    @allow_unauthenticated
    def post(self) -> None:
        email = self.text_field(self.body(), "email", required=True)
        assert email is not None
        try:
            self.reply(invite(self.ctx.db, email))
        except ValueError as exc:
            raise web.HTTPError(400, str(exc).replace("%", "%%")) from None


def routes() -> list[tuple[str, type[ApiHandler]]]:
    """Paths relative to the server's base URL."""
    from .handlers_data import data_routes
    from .handlers_workflows import workflow_routes

    api = "/revtops/api"
    return [
        *data_routes(),
        *workflow_routes(),
        (f"{api}/health", HealthHandler),
        (f"{api}/session", SessionHandler),
        (f"{api}/me", MeHandler),
        (f"{api}/register", RegisterHandler),
        (f"{api}/users/sync", UsersSyncHandler),
        (f"{api}/organizations", OrganizationsHandler),
        (f"{api}/organizations/by-domain", OrganizationByDomainHandler),
        (f"{api}/organizations/([a-z0-9][a-z0-9_-]{{0,62}})/members", MembersHandler),
        (f"{api}/available-integrations", AvailableIntegrationsHandler),
        (f"{api}/waitlist", WaitlistHandler),
        (f"{api}/admin/waitlist", AdminWaitlistHandler),
        (f"{api}/admin/waitlist/invite", AdminInviteHandler),
    ]
