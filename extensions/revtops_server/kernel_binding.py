"""Which signed-in user each web-app kernel was handed to, and who may therefore reach it.

A kernel is bound once, at hand-over: when the page handler gives it to a visitor (a preheated
kernel leaving the pool, or one started for that request). From then on only that user, in that
organization, may use its REST resource, its channels, its shutdown or its execution socket
(`RevtopsAuthorizer` asks `KernelBindings.allows`). Kernels still in the pool are bound to
nobody, so nobody from outside reaches them; anything unknown is refused.

The registry lives in the server process (one per app, in the Tornado settings): kernels are
processes of this server, so their bindings die with it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tornado import web

from revtops_kernel.errors import KernelBindingError

SETTINGS_KEY = "revtops_kernel_bindings"


@dataclass(frozen=True)
class KernelOwner:
    """Who a kernel was handed to: the member (or the local owner) and their organization."""

    subject: str
    organization_id: str | None


# Local mode (no Supabase): whoever holds the server's Jupyter token is the machine's owner.
LOCAL_OWNER = KernelOwner(subject="local-owner", organization_id=None)


class KernelBindings:
    """kernel id -> the owner it was handed to."""

    def __init__(self) -> None:
        self._owners: dict[str, KernelOwner] = {}

    def bind(self, kernel_id: str, owner: KernelOwner, *, running: Collection[str]) -> None:
        """Record the hand-over; ``running`` (the manager's kernel ids) lets dead ones go."""
        bound = self._owners.get(kernel_id)
        if bound is not None and bound != owner:
            # A kernel handed to two people would be shared between them: never.
            raise KernelBindingError(kernel_id, "is already bound to another user")
        for stale in [k for k in self._owners if k not in running and k != kernel_id]:
            del self._owners[stale]
        self._owners[kernel_id] = owner

    def owner_of(self, kernel_id: str) -> KernelOwner | None:
        return self._owners.get(kernel_id)

    def allows(self, kernel_id: str | None, owner: KernelOwner | None) -> bool:
        """True only for the owner of a bound kernel; no id, no owner or no binding is a no."""
        if kernel_id is None or owner is None:
            return False
        return self._owners.get(kernel_id) == owner

    def forget(self, kernel_id: str) -> None:
        self._owners.pop(kernel_id, None)

    def __len__(self) -> int:
        return len(self._owners)

    def count_bound(self, running: Collection[str]) -> int:
        """Kernels handed to someone that still run (a culled or shut-down one is gone)."""
        return sum(1 for kernel_id in self._owners if kernel_id in running)


def bindings_of(settings: Mapping[str, Any]) -> KernelBindings | None:
    """The app's registry, or None where kernels are not handed to app users (Jupyter Server)."""
    bindings = settings.get(SETTINGS_KEY)
    return bindings if isinstance(bindings, KernelBindings) else None


def kernel_id_of(handler: web.RequestHandler) -> str | None:
    """The kernel a request is about, from its route (named ``kernel_id`` or the first group)."""
    named = handler.path_kwargs.get("kernel_id") if handler.path_kwargs else None
    if isinstance(named, str) and named:
        return named
    if handler.path_args and isinstance(handler.path_args[0], str) and handler.path_args[0]:
        return str(handler.path_args[0])
    return None
