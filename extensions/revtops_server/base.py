"""What every REST handler shares: the context, the caller's principal, JSON in and out, and
the one table from error types to HTTP statuses.

Handler modules import this module (and the domain), never each other; `routes` lists them.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from revtops_kernel.errors import (
    RevtopsError,
    TenancyConflictError,
    UnknownOrganizationError,
    WorkflowBusyError,
    WorkflowExistsError,
    WorkflowLimitError,
)
from revtops_kernel.timeutil import iso_z

from .context import Context, context_of
from .identity import RevtopsUser
from .no_cors import NoCorsMixin
from .text_input import DEFAULT_MAX_LENGTH, InvalidText, clean_email, clean_text

# A domain error is the client's problem, said plainly, never a 500. The status is the one of
# the nearest class in the error's MRO; anything else of the tree is a 400.
ERROR_STATUS: dict[type[RevtopsError], int] = {
    RevtopsError: 400,
    UnknownOrganizationError: 404,
    TenancyConflictError: 409,  # a domain in use, an invitee who already joined
    WorkflowExistsError: 409,  # a taken name
    WorkflowBusyError: 409,  # a run in progress
    WorkflowLimitError: 429,  # a cap; with Retry-After when waiting will help
}


def status_for(error: RevtopsError) -> int:
    """The HTTP status `ERROR_STATUS` gives the error's type (its nearest listed ancestor's)."""
    for cls in type(error).__mro__:
        status = ERROR_STATUS.get(cls)
        if status is not None:
            return status
    return 400  # unreachable: every RevtopsError has RevtopsError in its MRO


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
            raise web.HTTPError(400, plain(exc)) from None
        if required and not text:
            raise web.HTTPError(400, f"'{name}' must not be empty")
        return text

    def required_text(
        self, data: dict[str, Any], name: str, *, max_length: int = DEFAULT_MAX_LENGTH
    ) -> str:
        """`text_field` for a field that must be there and not be empty."""
        text = self.text_field(data, name, required=True, max_length=max_length)
        assert text is not None  # text_field(required=True) answered 400 otherwise
        return text

    def email_field(self, data: dict[str, Any], name: str = "email") -> str:
        """A required email address, normalized; 400 naming the field otherwise."""
        if data.get(name) is None:
            raise web.HTTPError(400, f"'{name}' is required")
        try:
            return clean_email(data[name], name)
        except InvalidText as exc:
            raise web.HTTPError(400, plain(exc)) from None

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
            raise web.HTTPError(400, plain(exc)) from None

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
            # Here, not before send_error, which clears the headers set so far.
            if isinstance(exc, WorkflowLimitError) and exc.retry_after is not None:
                self.set_header("Retry-After", str(int(exc.retry_after)))
        elif status_code >= 500:
            message = "internal error"  # details go to the log, never to the client
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"status": status_code, "message": message}}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, RevtopsError) and not self._finished:
            self.log.info("revtops: %s", e)
            self.send_error(status_for(e), exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class PublicHandler(ApiHandler):
    public = True

    def check_xsrf_cookie(self) -> None:
        # A request that carries no cookie has no ambient authority to abuse: nothing to forge.
        if not self.request.cookies:
            return None
        return super().check_xsrf_cookie()


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


def to_json(value: Any) -> Any:
    """Domain values (dataclasses, datetimes, UUIDs, nested) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_json(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if hasattr(value, "isoformat") and hasattr(value, "tzinfo"):
        return iso_z(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def plain(exc: Exception) -> str:
    """A message safe to use as a tornado log_message (which %-formats its args)."""
    return str(exc).replace("%", "%%")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
