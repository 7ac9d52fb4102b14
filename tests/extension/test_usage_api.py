"""The usage admin endpoints on a real Jupyter Server: the ledger summed, and an organization's
own caps set by an admin (the X-Admin-Key header; anyone else is refused)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import insert

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import LlmUsage, Organization

from .conftest import ADMIN_KEY, Server, launch, stop

pytestmark = pytest.mark.slow
ADMIN = {"X-Admin-Key": ADMIN_KEY}


@pytest.fixture(scope="module")
def usage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("usage-server")
    url = f"duckdb:///{home / 'store.duckdb'}"
    db = Database(url, lock_timeout=10)
    upgrade(db)
    now = datetime.now(UTC)
    with db.begin() as connection:
        connection.execute(insert(Organization).values(id="acme", name="Acme", created_at=now,
                                                       updated_at=now))  # fmt: skip
        for model, cost in (("claude-opus-4-6", "0.25"), ("claude-haiku-4-5", "0.05")):
            connection.execute(
                insert(LlmUsage).values(
                    id=uuid.uuid4(), organization_id="acme", model=model, status="done",
                    input_tokens=100, output_tokens=10, cost_usd=Decimal(cost), started_at=now,
                )
            )  # fmt: skip
    db.dispose()
    running = launch(home, REVTOPS_DATABASE_URL=url, REVTOPS_DAILY_COST_CAP_USD="10")
    yield running
    stop(running)


def test_admins_read_usage_and_set_an_organizations_caps(usage_server: Server) -> None:
    url = f"{usage_server.url}/revtops/api/admin/usage"
    report = httpx.get(url, params={"org": "acme", "by": "model"}, headers=ADMIN).json()
    assert [(line["key"], line["cost_usd"]) for line in report["lines"]] == [
        ("claude-opus-4-6", "0.250000"),
        ("claude-haiku-4-5", "0.050000"),
    ]
    assert report["total_cost_usd"] == "0.300000"
    daily = report["caps"][0]
    assert (daily["period"], daily["cap_usd"], daily["spent_usd"]) == ("day", "10", "0.300000")

    put = httpx.put(f"{url}/caps", json={"org": "acme", "daily_usd": 0.2}, headers=ADMIN)
    assert put.status_code == 200, put.text
    daily = put.json()["caps"][0]
    assert (daily["cap_usd"], daily["source"]) == ("0.20", "the organization's own cap")


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status", "message"),
    [
        ("GET", "", {"by": "team"}, None, 400, "'by' must be one of"),
        ("GET", "", {"since": "last week"}, None, 400, "'since' must be a date"),
        ("GET", "", {"org": "Not An Org"}, None, 400, "'org' must be an organization id"),
        ("PUT", "/caps", None, {"daily_usd": 1}, 400, "'org' is required"),
        ("PUT", "/caps", None, {"org": "acme", "daily_usd": -1}, 400, "between 0"),
        ("PUT", "/caps", None, {"org": "acme", "daily_usd": "lots"}, 400, "a number of USD"),
        ("PUT", "/caps", None, {"org": "initech", "daily_usd": 1}, None, "unknown organization"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    usage_server: Server,
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: dict[str, object] | None,
    status: int | None,
    message: str,
) -> None:
    url = f"{usage_server.url}/revtops/api/admin/usage{path}"
    answer = httpx.request(method, url, params=params, json=body, headers=ADMIN)
    assert answer.status_code == status if status else 400 <= answer.status_code < 500
    assert message in answer.json()["error"]["message"]


def test_without_the_admin_key_usage_is_refused(usage_server: Server) -> None:
    url = f"{usage_server.url}/revtops/api/admin/usage"
    assert httpx.get(url).status_code == 403
    assert httpx.get(url, headers={"X-Admin-Key": "wrong"}).status_code == 403
    assert httpx.put(f"{url}/caps", json={"org": "acme", "daily_usd": 100}).status_code == 403
