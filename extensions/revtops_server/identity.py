"""Sign-in for the web app: Supabase sessions as a Jupyter Server `IdentityProvider`.

The session is the Supabase access token itself, verified on every request (signature, ``exp``,
audience, issuer), taken from the ``Authorization: Bearer`` header or from the HttpOnly
``revtops_session`` cookie that `SessionHandler` sets after verifying it. Nothing else the
client sends (other headers, cookies, query parameters) is believed about who they are.

Admission (member, waitlisted, consumer mailbox) is decided by `revtops_kernel.tenancy` and
cached briefly per token, so a page load's dozens of requests cost one database write.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web
from traitlets import Bool

from revtops_kernel.tenancy import Admission, admit

from .context import context_of
from .kernel_binding import LOCAL_OWNER, KernelOwner, bindings_of, kernel_id_of
from .pages import SignInHandler, SignOutHandler
from .sessions import (
    REFRESH_COOKIE,
    SESSION_COOKIE,
    Renewal,
    RenewalFailed,
    SessionRenewer,
    SessionRevoked,
    clear_session_cookies,
    renewal_due,
    set_session_cookies,
)
from .supabase import TokenRejected

ADMISSION_TTL_SECONDS = 60.0
_CACHE_LIMIT = 10_000


@dataclass
class RevtopsUser(User):
    """A signed-in person of the web app. ``status`` other than admitted means no data access."""

    email: str = ""
    status: str = "admitted"  # admitted, waitlisted, consumer_domain, unverified_email...
    organization_id: str | None = None
    member_id: uuid.UUID | None = None
    role: str = "member"
    message: str = ""
    expires_at: int = 0

    @property
    def admitted(self) -> bool:
        return self.status == "admitted" and self.organization_id is not None


def bearer_or_cookie(handler: web.RequestHandler) -> tuple[str | None, bool]:
    """The session token and whether it came in a header (not cookie-borne, so no XSRF risk)."""
    header = handler.request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None, True
    return handler.get_cookie(SESSION_COOKIE) or None, False


class SupabaseIdentityProvider(IdentityProvider):
    """Jupyter Server's identity from a verified Supabase session, or nobody."""

    _admissions: dict[str, tuple[float, Admission, int]]
    _renewer: SessionRenewer | None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._admissions = {}
        self._renewer = None

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def get_handlers(self) -> list[tuple[str, object]]:
        return [(r"/login", SignInHandler), (r"/logout", SignOutHandler)]

    async def get_user(self, handler: web.RequestHandler) -> RevtopsUser | None:
        token, from_header = bearer_or_cookie(handler)
        renewed: Renewal | None = None
        if not from_header:
            renewed = await self._renew_if_due(handler, token)
            if renewed is not None:
                token = renewed.access_token
            elif getattr(handler, "_revtops_signed_out", False):
                return None
        if not token:
            return None
        try:
            user = self.user_for_token(handler, token)
        except TokenRejected as exc:
            self.log.info("sign-in refused: %s", exc)
            return None
        if renewed is not None:
            set_session_cookies(handler, token, renewed.expires_at, renewed.refresh_token)
        # Jupyter skips the XSRF check for token-authenticated requests: only header tokens are.
        handler._token_authenticated = from_header  # type: ignore[attr-defined]
        return user

    async def _renew_if_due(self, handler: web.RequestHandler, token: str | None) -> Renewal | None:
        """A fresh session when the cookie's token is (nearly) expired and a refresh cookie exists.

        Supabase refusing the refresh token signs the person out (cookies cleared); Supabase
        being unreachable keeps the current token, which may still be valid for a few minutes.
        """
        refresh = handler.get_cookie(REFRESH_COOKIE)
        if not refresh or not renewal_due(token):
            return None
        renewer = self._session_renewer(handler)
        if renewer is None:
            return None
        try:
            return await renewer.renew(refresh)
        except SessionRevoked as exc:
            self.log.info("session ended: Supabase refused the refresh token (%s)", exc)
            clear_session_cookies(handler)
            handler._revtops_signed_out = True  # type: ignore[attr-defined]
            return None
        except RenewalFailed as exc:
            self.log.warning("could not renew a session: %s", exc)
            return None

    def _session_renewer(self, handler: web.RequestHandler) -> SessionRenewer | None:
        """Renewal needs the project's URL and its anon key (Supabase's gateway requires it)."""
        if self._renewer is None:
            settings = context_of(handler.settings).settings
            if settings.supabase_url is None or settings.supabase_anon_key is None:
                return None
            self._renewer = SessionRenewer(
                supabase_url=str(settings.supabase_url),
                anon_key=settings.supabase_anon_key.get_secret_value(),
            )
        return self._renewer

    def user_for_token(self, handler: web.RequestHandler, token: str) -> RevtopsUser:
        context = context_of(handler.settings)
        if context.verifier is None:
            raise TokenRejected("sign-in is not configured (SUPABASE_URL is unset)")
        claims = context.verifier.verify(token)
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._admissions.get(key)
        if cached and now - cached[0] < ADMISSION_TTL_SECONDS:
            admission = cached[1]
        else:
            admission = admit(
                context.db,
                email=claims.email,
                subject=claims.subject,
                name=claims.name,
                email_verified=claims.email_verified,
            )
            if len(self._admissions) >= _CACHE_LIMIT:
                self._admissions.clear()
            self._admissions[key] = (now, admission, claims.expires_at)
        member = admission.member
        return RevtopsUser(
            username=str(member.id) if member else claims.subject,
            name=(member.name if member else None) or claims.name or claims.email,
            display_name=(member.name if member else None) or claims.name or claims.email,
            email=admission.email,
            status=admission.status,
            organization_id=member.organization_id if member else None,
            member_id=member.id if member else None,
            role=member.role if member else "member",
            message=admission.message,
            expires_at=claims.expires_at,
        )

    def forget(self, token: str) -> None:
        self._admissions.pop(hashlib.sha256(token.encode()).hexdigest(), None)


# Jupyter Server's own REST resources. Web-app users reach their data only through the
# revtops API (and, in the Voila app, the kernel channels Voila restricts to widget messages).
JUPYTER_RESOURCES = frozenset(
    {
        "api",
        "config",
        "contents",
        "events",
        "kernels",
        "kernelspecs",
        "nbconvert",
        "sessions",
        "terminals",
        "server",
        "lab",
    }
)


class RevtopsAuthorizer(Authorizer):
    """Deny web-app users Jupyter's contents, terminals and kernel APIs.

    A local analyst (Jupyter's own token auth, not a `RevtopsUser`) keeps every right in a
    Jupyter Server. In the Voila app (`allow_kernels`), a kernel is reachable only by the one it
    was handed to (`kernel_binding`): its REST resource, channels (where Voila lets only comm
    and kernel-info messages through), shutdown and execution socket. Listing kernels, pooled
    kernels and other people's kernels are refused; waitlisted and consumer-mailbox users reach
    no kernel at all.
    """

    allow_kernels = Bool(False, config=True, help="Let app users use kernel channels (Voila).")

    def is_authorized(
        self, handler: web.RequestHandler, user: User, action: str, resource: str
    ) -> bool:
        if resource == "kernels" and self.allow_kernels:
            bindings = bindings_of(handler.settings)
            if bindings is None:  # an app without its registry: nobody is anybody's owner
                return False
            return bindings.allows(kernel_id_of(handler), self.kernel_owner(user))
        if not isinstance(user, RevtopsUser):
            return True
        if not user.admitted:
            return False
        return resource not in JUPYTER_RESOURCES

    @staticmethod
    def kernel_owner(user: User) -> KernelOwner | None:
        """Whom a kernel handed to ``user`` belongs to; None for someone who gets no kernel."""
        if not isinstance(user, RevtopsUser):
            return LOCAL_OWNER  # Jupyter's token: the machine's owner (local mode)
        if not user.admitted:
            return None
        return KernelOwner(subject=user.username, organization_id=user.organization_id)
