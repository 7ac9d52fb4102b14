"""One read-only sandbox for the normalizer tests (tests that corrupt records start their own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from revtops_sandbox.server import SandboxServer

SCALE = 0.02  # ~50 accounts, ~100 deals, ~550 activities: every shape, in about a second
SEED = 7


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=SCALE, seed=SEED, freeze_gc=False) as server:
        yield server
