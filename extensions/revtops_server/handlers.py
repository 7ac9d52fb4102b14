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
from .identity import RevtopsUser
from .no_cors import NoCorsMixin
from .sessions import clear_session_cookies, set_session_cookies
from .supabase import TokenRejected
from .text_input import DEFAULT_MAX_LENGTH, InvalidText, clean_domain, clean_email, clean_text

ACCESS_TOKEN_MAX_LENGTH = 16_384  # a Supabase JWT with generous metadata is a few kilobytes
REFRESH_TOKEN_MAX_LENGTH = 1_024
WAITLIST_STATUSES = ("waiting", "invited", "joined")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an organization, and the member when known."""

    organization_id: str
    member_id: uuid.UUID | None
    email: str | None
    role: str


class ApiHandler(NoCorsMixin, APIHandler):
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
            if getattr(self, "_revtops_signed_out", False):
                raise web.HTTPError(401, "your session has ended; sign in again")
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
            data = json.loads(self.request.body, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: thousands of nested brackets; ValueError: NaN, or a huge integer.
            raise web.HTTPError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data

    def text_field(
        self,
        data: dict[str, Any],
        name: str,
        *,
        required: bool = False,
        max_length: int = DEFAULT_MAX_LENGTH,
        multiline: bool = False,
    ) -> str | None:
        """A body field as clean text (see `text_input.clean_text`); 400 naming it otherwise."""
        value = data.get(name)
        if value is None:
            if required:
                raise web.HTTPError(400, f"'{name}' is required")
            return None
        try:
            text = clean_text(value, name, max_length=max_length, multiline=multiline)
        except InvalidText as exc:
            raise web.HTTPError(400, _plain(exc)) from None
        if required and not text:
            raise web.HTTPError(400, f"'{name}' must not be empty")
        return text

    def email_field(self, data: dict[str, Any], name: str = "email") -> str:
        """A required email address, normalized; 400 naming the field otherwise."""
        if data.get(name) is None:
            raise web.HTTPError(400, f"'{name}' is required")
        try:
            return clean_email(data[name], name)
        except InvalidText as exc:
            raise web.HTTPError(400, _plain(exc)) from None

    def query_text(self, name: str, *, max_length: int = DEFAULT_MAX_LENGTH) -> str | None:
        """A query-string argument as clean text, or None when absent.

        Read raw: tornado's ``get_argument`` silently turns control characters into spaces.
        """
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        try:
            return clean_text(values[-1].decode("utf-8"), name, max_length=max_length)
        except UnicodeDecodeError:
            raise web.HTTPError(400, f"'{name}' is not UTF-8 text") from None
        except InvalidText as exc:
            raise web.HTTPError(400, _plain(exc)) from None

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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _plain(exc: Exception) -> str:
    """A message safe to use as a tornado log_message (which %-formats its args)."""
    return str(exc).replace("%", "%%")


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
    """Exchange a Supabase session for the HttpOnly session cookies, or sign out.

    The body is ``{"access_token": …, "refresh_token": …}`` as Supabase returns them in the
    URL fragment; with a refresh token the server renews the session before it expires.
    """

    @allow_unauthenticated
    def post(self) -> None:
        data = self.body()
        token = self.text_field(
            data, "access_token", required=True, max_length=ACCESS_TOKEN_MAX_LENGTH
        )
        refresh = self.text_field(data, "refresh_token", max_length=REFRESH_TOKEN_MAX_LENGTH)
        assert token is not None
        provider = self.identity_provider
        try:
            user = provider.user_for_token(self, token)  # type: ignore[attr-defined]
        except TokenRejected as exc:
            raise web.HTTPError(401, _plain(exc)) from None
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
        user = self.current_user
        data = _me(user)
        status = {"admitted": 200, "waitlisted": 202}.get(data["status"], 403)
        self.reply(data, status)


class UsersSyncHandler(ApiHandler):
    """Update the member's profile from the verified token (name changes in Google, say)."""

    def post(self) -> None:
        principal = self.principal()
        name = self.text_field(self.body(), "name", max_length=200)
        if principal.member_id is not None and name is not None:
            from sqlalchemy import update

            from revtops_kernel.store.schema import metadata

            users = metadata.tables["users"]
            with self.ctx.db.begin() as conn:
                conn.execute(
                    update(users).where(users.c.id == principal.member_id).values(name=name)
                )
        self.reply({"user_id": str(principal.member_id) if principal.member_id else None})


class OrganizationByDomainHandler(ApiHandler):
    def get(self) -> None:
        raw = self.query_text("domain", max_length=253)
        if not raw:
            raise web.HTTPError(400, "'domain' is required")
        try:
            domain = clean_domain(raw)
        except InvalidText as exc:
            raise web.HTTPError(400, _plain(exc)) from None
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
        name = self.text_field(data, "name", required=True, max_length=200)
        assert name is not None
        domain = self.text_field(data, "domain", max_length=253)
        if domain is not None:
            try:
                domain = clean_domain(domain)
            except InvalidText as exc:
                raise web.HTTPError(400, _plain(exc)) from None
        self.reply(create_organization(self.ctx.db, name=name, domain=domain), 201)


class AdminWaitlistHandler(AdminHandler):
    @allow_unauthenticated
    def get(self) -> None:
        status = self.query_text("status", max_length=20)
        if status is not None and status not in WAITLIST_STATUSES:
            raise web.HTTPError(400, f"'status' must be one of {', '.join(WAITLIST_STATUSES)}")
        self.reply({"waitlist": waitlist(self.ctx.db, status=status)})


class AdminInviteHandler(AdminHandler):
    @allow_unauthenticated
    def post(self) -> None:
        self.reply(invite(self.ctx.db, self.email_field(self.body())))


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
