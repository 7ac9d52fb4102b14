"""Who a web-app kernel works for, as the server verified it, carried in a signed envelope.

The Voila server signs the signed-in user's identity (organization, user, email) with a secret
that exists only in the server's and its kernels' environment, and hands it to the kernel as an
HTTP-header environment variable it sets itself (any client-sent copy is dropped). The kernel
verifies the signature before acting as anyone. A browser can neither read the secret nor get
a forged envelope past the check, so no header, cookie or query parameter it sends can change
the kernel's organization.

A preheated kernel starts before its visitor exists, so it waits on the server's request-info
socket (``/voila/query/<kernel id>``) for the page request. That socket answers only a kernel
that proves which one it is (`kernel_proof`: HMAC of its id under the same secret), so nobody
else can read a visitor's envelope from it or take a pooled kernel's place in the hand-over.
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

from revtops_kernel.errors import IdentityError

SECRET_ENV = "REVTOPS_KERNEL_IDENTITY_SECRET"
HEADER = "X-Revtops-Identity"
HEADER_ENV = "HTTP_X_REVTOPS_IDENTITY"  # rfc3875 naming, as Voila passes headers to kernels
KERNEL_PROOF_HEADER = "X-Revtops-Kernel-Proof"
KERNEL_ID_ENV = "VOILA_KERNEL_ID"  # Voila sets it in the kernel before the notebook's first cell
LIFETIME_SECONDS = 12 * 3600


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


def kernel_proof(kernel_id: str, secret: str) -> str:
    """What only this server's kernel ``kernel_id`` can compute: its key to the query socket."""
    return _mac(f"voila-query:{kernel_id}", secret)


def kernel_identity() -> AppIdentity:
    """In a web-app kernel: wait for the visitor's request (preheated kernels), then verify."""
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        raise IdentityError(f"this kernel was not started by the Revtops app ({SECRET_ENV})")
    if os.environ.get("VOILA_PREHEAT") == "True" and not os.environ.get(HEADER_ENV):
        _receive_request(secret)
    envelope = os.environ.get(HEADER_ENV)
    if not envelope:
        raise IdentityError("no signed-in identity reached this kernel; sign in again")
    return verify(envelope, secret)


def query_socket_url(kernel_id: str) -> str:
    """Where Voila's server offers this kernel its request (the address `wait_for_request` uses)."""
    protocol = os.environ.get("VOILA_WS_PROTOCOL", "ws")
    host = os.environ.get("VOILA_APP_IP", "127.0.0.1")
    port = os.environ.get("VOILA_APP_PORT", "8866")
    base = os.environ.get("VOILA_WS_BASE_URL", os.environ.get("VOILA_SERVER_URL", "/"))
    return f"{protocol}://{host}:{port}{base}voila/query/{kernel_id}"


def _receive_request(secret: str) -> None:
    """Voila's ``wait_for_request``, but proving to the server which kernel is asking."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    kernel_id = os.environ.get(KERNEL_ID_ENV)
    if not kernel_id:
        raise IdentityError(f"this preheated kernel does not know its id ({KERNEL_ID_ENV})")
    url = query_socket_url(kernel_id)
    proof = {KERNEL_PROOF_HEADER: kernel_proof(kernel_id, secret)}
    try:
        # No receive timeout: a pooled kernel waits as long as it takes a visitor to come.
        with connect(url, additional_headers=proof, open_timeout=10) as socket:
            message = socket.recv()
    except (OSError, WebSocketException) as exc:
        raise IdentityError(
            f"the visitor's request did not reach this kernel ({url}): {exc}"
        ) from None
    try:
        request = json.loads(message)
    except ValueError:
        raise IdentityError("the server's request info is not JSON") from None
    if not isinstance(request, dict):
        raise IdentityError("the server's request info is not an object")
    for name, value in request.items():
        os.environ[str(name)] = str(value)


def _mac(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
