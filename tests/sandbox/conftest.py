"""Sandbox fixtures: real servers on loopback, real httpx clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from revtops_sandbox.server import SandboxServer

SCALE = 0.05
SEED = 1


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    """A shared sandbox for tests that only read (scale 0.05: ~250 accounts, ~500 deals)."""
    with SandboxServer(scale=SCALE, seed=SEED, freeze_gc=False) as server:
        yield server


@pytest.fixture
def fresh() -> Iterator[Callable[..., SandboxServer]]:
    """A factory of private sandboxes for tests that mutate data, faults or tokens."""
    started: list[SandboxServer] = []

    def make(**kwargs: Any) -> SandboxServer:
        kwargs.setdefault("scale", SCALE)
        kwargs.setdefault("seed", SEED)
        server = SandboxServer(freeze_gc=False, **kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def hubspot_client(server: SandboxServer, token: str | None = None) -> httpx.Client:
    token = server.token_for("hubspot") if token is None else token
    return httpx.Client(
        base_url=server.hubspot_base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def salesforce_client(server: SandboxServer, token: str | None = None) -> httpx.Client:
    token = server.token_for("salesforce") if token is None else token
    return httpx.Client(
        base_url=server.salesforce_instance_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def client_for() -> Iterator[Callable[..., httpx.Client]]:
    """``client_for(server, "hubspot", token=None)``: an authorised client, closed afterwards."""
    clients: list[httpx.Client] = []

    def make(server: SandboxServer, provider: str, token: str | None = None) -> httpx.Client:
        factory = hubspot_client if provider == "hubspot" else salesforce_client
        client = factory(server, token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def hs(sb: SandboxServer) -> Iterator[httpx.Client]:
    with hubspot_client(sb) as client:
        yield client


@pytest.fixture
def sf(sb: SandboxServer) -> Iterator[httpx.Client]:
    with salesforce_client(sb) as client:
        yield client
