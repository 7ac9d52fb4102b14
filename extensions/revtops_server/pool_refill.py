"""When the preheated pool refills: after the visitor's page has started, not while it starts.

Voila refills its pool ``fill_delay`` (1 s) after a visitor takes a kernel. Starting a kernel
takes the server's event loop for a moment (the process, its connection, the notebook's
renderer) and the machine's CPU for seconds (the kernel's imports and `webapp.preload`), and
1 s after the page was served is exactly when the visitor's browser starts Voila's front end and
connects to its kernel: on this 2-core machine the kernel websocket's handshake then took
170-340 ms instead of 10-50 ms, and the live chat widget came ~0.5 s later (warm visits,
fill_delay 1 s against 10 s, alternated: 1.7-3.1 s against 1.2-1.8 s to the question box).

`RefillGate` holds each refill for `REFILL_HOLD_SECONDS` after the visitor who triggered it
arrived. If another visitor arrives while refills are held, they start at once (a burst needs
the kernels more than a page needs a quiet machine), and that visitor's own refill is held.
The pool's first fill, when the app starts, is not held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

# A warm visit's front end starts and draws the chat in ~2.5 s on a quiet machine, 4-6 s under
# load; a kernel that starts later no longer competes with it.
REFILL_HOLD_SECONDS = 6.0
POLL_SECONDS = 0.1


class RefillGate:
    """Holds the pool's refills while the visitor who emptied a slot starts their page."""

    def __init__(
        self, hold: float = REFILL_HOLD_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.hold = hold
        self._clock = clock
        self._hold_until = 0.0  # refills that start waiting now wait until then
        self._released_at = float("-inf")  # refills waiting since before this go at once
        self.held = 0  # refills waiting right now

    def visitor_arrived(self) -> None:
        """A visitor is taking a kernel from the pool: release the refills held for earlier
        visitors, and hold the one this visitor triggers."""
        now = self._clock()
        if self.held:
            self._released_at = now
        self._hold_until = now + self.hold

    async def wait(self) -> None:
        """Return when the refill that calls it may start the kernel."""
        since = self._clock()
        until = self._hold_until
        self.held += 1
        try:
            while self._clock() < until and self._released_at < since:
                await asyncio.sleep(min(POLL_SECONDS, max(0.0, until - self._clock())))
        finally:
            self.held -= 1

    def install(self, kernel_manager: Any) -> None:
        """Gate ``kernel_manager``'s refills (Voila's preheating manager): each new pool kernel
        (``_initialize`` without a kernel id, what its ``fill_if_needed`` schedules) waits for
        the gate first. Voila's own ``fill_delay`` is set to 0 by the app: this is the wait."""
        initialize: Callable[..., Awaitable[Any]] = kernel_manager._initialize

        async def gated(notebook_path: str, kernel_id: str | None = None, **kwargs: Any) -> Any:
            if kernel_id is None:
                await self.wait()
            return await initialize(notebook_path, kernel_id, **kwargs)

        kernel_manager._initialize = gated
