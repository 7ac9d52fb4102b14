"""Who a web-app kernel works for, as the server verified it, carried in a signed envelope.

The Voila server signs the signed-in user's identity (organization, user, email) with a secret
that exists only in the server's and its kernels' environment, and hands it to the kernel as an
HTTP-header environment variable it sets itself (any client-sent copy is dropped). The kernel
verifies the signature before acting as anyone. A browser can neither read the secret nor get
a forged envelope past the check, so no header, cookie or query parameter it sends can change
the kernel's organization.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass

from revtops_kernel.errors import RevtopsError

SECRET_ENV = "REVTOPS_KERNEL_IDENTITY_SECRET"
HEADER = "X-Revtops-Identity"
HEADER_ENV = "HTTP_X_REVTOPS_IDENTITY"  # rfc3875 naming, as Voila passes headers to kernels
LIFETIME_SECONDS = 12 * 3600


class IdentityError(RevtopsError):
    """The kernel has no verified identity; the message says why."""


@dataclass(frozen=True)
class AppIdentity:
    organization_id: str
    user_id: str | None
    email: str
    name: str
    role: str
    expires_at: int

    @property
    def user_uuid(self) -> uuid.UUID | None:
        return uuid.UUID(self.user_id) if self.user_id else None


def new_secret() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def sign(identity: AppIdentity, secret: str) -> str:
    payload = base64.urlsafe_b64encode(
        json.dumps(asdict(identity), sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    return f"{payload}.{_mac(payload, secret)}"


def verify(envelope: str, secret: str, *, now: float | None = None) -> AppIdentity:
    payload, _, mac = envelope.partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(payload, secret)):
        raise IdentityError("the identity envelope's signature does not verify")
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        identity = AppIdentity(**data)
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"the identity envelope is malformed: {exc}") from None
    if identity.expires_at < (now if now is not None else time.time()):
        raise IdentityError("the identity envelope has expired; reload the page")
    return identity


def identity_for(
    *, organization_id: str, user_id: str | None, email: str, name: str, role: str
) -> AppIdentity:
    return AppIdentity(
        organization_id, user_id, email, name, role, int(time.time()) + LIFETIME_SECONDS
    )


def kernel_identity() -> AppIdentity:
    """In a web-app kernel: wait for the visitor's request (preheated kernels), then verify."""
    if os.environ.get("VOILA_PREHEAT") == "True" and not os.environ.get(HEADER_ENV):
        from voila.utils import wait_for_request

        wait_for_request()
    secret = os.environ.get(SECRET_ENV)
    envelope = os.environ.get(HEADER_ENV)
    if not secret:
        raise IdentityError(f"this kernel was not started by the Revtops app ({SECRET_ENV})")
    if not envelope:
        raise IdentityError("no signed-in identity reached this kernel; sign in again")
    return verify(envelope, secret)


def _mac(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
