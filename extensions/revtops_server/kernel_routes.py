"""Voila's kernel routes, each made to ask who may reach the kernel it names.

Jupyter Server's kernel resource and channels already ask the authorizer (which checks the
kernel's binding, `kernel_binding`). Voila's own kernel routes do not: its shutdown handler
only wants a signed-in user, its execution socket likewise, and its request-info socket (the
preheated kernel's hand-over) wants nobody at all. `guard_kernel_routes` swaps those for the
subclasses below and refuses to start on a kernel route it does not know, so a Voila upgrade
that adds one cannot open it silently.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.services.kernels.handlers import KernelHandler
from tornado import web
from traitlets.log import get_logger
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.tornado.execution_request_handler import ExecutionRequestHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from revtops_kernel import app_identity

from .kernel_binding import bindings_of

RESOURCE = "kernels"


async def _may_reach_kernel(handler: web.RequestHandler, action: str) -> bool:
    authorizer = handler.settings.get("authorizer")
    user = handler.current_user
    if authorizer is None or user is None:
        return False
    return bool(await ensure_async(authorizer.is_authorized(handler, user, action, RESOURCE)))


class OwnKernelShutdownHandler(VoilaShutdownKernelHandler):
    """The page's shutdown-on-leave, for the kernel's owner only."""

    auth_resource = RESOURCE

    @web.authenticated
    async def post(self, kernel_id: str) -> None:
        if not await _may_reach_kernel(self, "write"):
            raise web.HTTPError(403, "this kernel is not yours")
        await super().post(kernel_id)
        bindings = bindings_of(self.settings)
        if bindings is not None:
            bindings.forget(kernel_id)


class OwnKernelExecutionHandler(ExecutionRequestHandler):
    """Voila's progressive-rendering socket, for the kernel's owner only."""

    auth_resource = RESOURCE

    async def get(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        # Checked before the upgrade, so a refusal is a plain 403 and no socket opens.
        if not await _may_reach_kernel(self, "execute"):
            raise web.HTTPError(403, "this kernel is not yours")
        await super().get(kernel_id, *args, **kwargs)


class KernelQuerySocketHandler(RequestInfoSocketHandler):
    """The preheated kernel's hand-over socket, open only to the kernel it is for.

    The kernel proves its id with `app_identity.kernel_proof` (the secret is in the server's
    and its kernels' environment, never a browser's); anything else is refused before the
    upgrade, so it neither reads a visitor's request nor displaces the kernel's own socket.
    """

    async def get(self, kernel_id: str, *args: Any, **kwargs: Any) -> None:
        secret = os.environ.get(app_identity.SECRET_ENV, "")
        offered = self.request.headers.get(app_identity.KERNEL_PROOF_HEADER, "")
        expected = app_identity.kernel_proof(kernel_id, secret) if secret else ""
        if not expected or not hmac.compare_digest(offered.encode(), expected.encode()):
            raise web.HTTPError(403, "only the kernel itself may receive its request")
        await super().get(kernel_id, *args, **kwargs)

    def open(self, kernel_id: str) -> None:
        get_logger().info("Kernel %s is waiting for its visitor", kernel_id)
        RequestInfoSocketHandler._waiters[kernel_id] = self
        # Delivered once: the request (with its identity envelope) does not linger in memory.
        pending = RequestInfoSocketHandler._cache.pop(kernel_id, None)
        if pending is not None:
            self.write_message(pending)

    def on_close(self) -> None:
        # Voila's own version deletes whichever entry its loop ended on; remove only ours.
        for kernel_id, waiter in list(RequestInfoSocketHandler._waiters.items()):
            if waiter is self:
                del RequestInfoSocketHandler._waiters[kernel_id]


# Routes that already ask the authorizer (KernelsAPIHandler's @authorized, the channels'
# pre_get) stay; Voila's unguarded ones are replaced.
_GUARDED: dict[type, type] = {
    VoilaShutdownKernelHandler: OwnKernelShutdownHandler,
    ExecutionRequestHandler: OwnKernelExecutionHandler,
    RequestInfoSocketHandler: KernelQuerySocketHandler,
}
_ASKS_AUTHORIZER = (KernelHandler, VoilaKernelWebsocketHandler)


def guard_kernel_routes(routes: list[Any]) -> list[Any]:
    """Voila's routes with every kernel route guarded; an unknown kernel route is an error."""
    guarded = []
    for route in routes:
        if len(route) > 1 and isinstance(route[1], type):
            handler = _GUARDED.get(route[1], route[1])
            if "kernel" in str(route[0]) and not issubclass(
                handler, (*_ASKS_AUTHORIZER, *_GUARDED.values())
            ):
                raise RuntimeError(
                    f"Voila serves a kernel route this app does not guard: {route[0]} "
                    f"({handler.__name__}); add it to revtops_server.kernel_routes"
                )
            route = (route[0], handler, *route[2:])
        guarded.append(route)
    return guarded
