"""The app's pool refills wait for the visitor's page to start (revtops_server.pool_refill)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from revtops_server.pool_refill import RefillGate

HOLD = 0.4


class FakePoolManager:
    """Voila's preheating manager as the gate sees it: ``_initialize`` starts a pool kernel
    (kernel id None) or re-initializes one (a restart); it records when each call ran."""

    def __init__(self) -> None:
        self.started: list[tuple[str | None, float]] = []

    async def _initialize(self, notebook_path: str, kernel_id: str | None = None, **_: Any) -> str:
        self.started.append((kernel_id, time.monotonic()))
        return kernel_id or f"k{len(self.started)}"


def test_the_first_fill_is_not_held() -> None:
    gate = RefillGate(hold=HOLD)
    manager = FakePoolManager()
    gate.install(manager)
    began = time.monotonic()
    assert asyncio.run(manager._initialize("app.ipynb")) == "k1"
    assert manager.started[0][1] - began < HOLD / 2


def test_a_refill_waits_the_hold_after_its_visitor_arrived() -> None:
    gate = RefillGate(hold=HOLD)
    manager = FakePoolManager()
    gate.install(manager)
    arrived = time.monotonic()
    gate.visitor_arrived()
    asyncio.run(manager._initialize("app.ipynb", path="."))
    waited = manager.started[0][1] - arrived
    assert HOLD * 0.9 <= waited < HOLD + 0.3
    assert gate.held == 0


def test_another_visitor_releases_held_refills_and_holds_its_own() -> None:
    gate = RefillGate(hold=HOLD)
    manager = FakePoolManager()
    gate.install(manager)

    async def burst() -> tuple[float, float]:
        gate.visitor_arrived()
        first = asyncio.ensure_future(manager._initialize("app.ipynb"))
        await asyncio.sleep(0.05)
        assert gate.held == 1 and not manager.started
        second_arrived = time.monotonic()
        gate.visitor_arrived()  # the pool is needed: the held refill starts now
        second = asyncio.ensure_future(manager._initialize("app.ipynb"))
        await first
        released = manager.started[0][1] - second_arrived
        await second
        held = manager.started[1][1] - second_arrived
        return released, held

    released, held = asyncio.run(burst())
    assert released < HOLD / 2
    assert held >= HOLD * 0.9


def test_a_restart_is_not_held() -> None:
    gate = RefillGate(hold=HOLD)
    manager = FakePoolManager()
    gate.install(manager)
    gate.visitor_arrived()
    began = time.monotonic()
    assert asyncio.run(manager._initialize("app.ipynb", "kernel-7")) == "kernel-7"
    assert manager.started[0][1] - began < HOLD / 2
