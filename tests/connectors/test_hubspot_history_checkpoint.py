"""A HubSpot deals checkpoint names the properties it was read with history for; one written
before closedate and amount joined dealstage lists the deals once more (the backfill)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.hubspot import HubSpotConnector
from revtops_sandbox import SandboxServer

HISTORY = ["dealstage", "closedate", "amount"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.01, seed=11) as server:
        yield server


@pytest.fixture
def connector(sandbox: SandboxServer) -> Iterator[HubSpotConnector]:
    with make_http_client() as http:
        token = StaticToken("hubspot", SecretStr(sandbox.token))
        yield HubSpotConnector.connect(sandbox.hubspot_base_url, token, http)


def listed_again(sandbox: SandboxServer, connector: HubSpotConnector, history: object) -> bool:
    """Whether a search-phase checkpoint carrying ``history`` reads by listing again."""
    checkpoint = json.dumps({"phase": "search", "since_ms": 1, "history": history})
    sandbox.reset_stats()
    pages = list(connector.read("deals", checkpoint))
    assert json.loads(pages[-1].checkpoint or "{}")["history"] == HISTORY
    searched = sandbox.stats.count("hubspot POST /crm/v3/objects/deals/search")
    listed = sandbox.stats.count("hubspot GET /crm/v3/objects/deals")
    assert bool(searched) != (listed > 1)  # one way or the other (the archived walk lists too)
    return listed > 1


@pytest.mark.parametrize(
    ("history", "again"),
    [
        (HISTORY, False),
        (list(reversed(HISTORY)), False),  # order does not matter
        (True, True),  # the mark written when only dealstage was read with history
        (["dealstage"], True),
        (None, True),  # from before any history
    ],
)
def test_a_checkpoint_read_with_fewer_histories_lists_again(
    sandbox: SandboxServer, connector: HubSpotConnector, history: object, again: bool
) -> None:
    assert listed_again(sandbox, connector, history) is again


def test_history_pages_carry_the_amount_and_close_date_versions(
    sandbox: SandboxServer, connector: HubSpotConnector
) -> None:
    records = [r for page in connector.read("deals", None) for r in page.records]
    with_history = [r for r in records if "propertiesWithHistory" in r]
    assert with_history and all(
        set(r["propertiesWithHistory"]) >= {"dealstage", "closedate"} for r in with_history
    )
    assert any(len(r["propertiesWithHistory"]["closedate"]) >= 3 for r in with_history)
