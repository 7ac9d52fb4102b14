"""One deal's timeline (JSON) and brief (PDF) on a real Jupyter Server, over the sandbox
company synced into DuckDB: the caller's organization only (another's deal id is 404, as an
unknown one), a session needed, a bad time zone named."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text

from revtops_kernel.store import Database, upgrade
from revtops_kernel.tenancy import create_organization
from revtops_sandbox.evals.sandbox_store import sync_sandbox

from .conftest import Server, launch, stop

pytestmark = pytest.mark.slow


@dataclass
class World:
    server: Server
    deal_id: str
    deal_name: str

    def get(self, email: str | None, path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.server.token(email)}"} if email else {}
        # The first request imports the PDF stack and runs the risk rules: slow on a busy host.
        url = f"{self.server.url}/revtops/api/deals/{path}"
        return httpx.get(url, headers=headers, params=params, timeout=180)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("deals-api")
    url = f"duckdb:///{home / 'store.duckdb'}"
    db = Database(url, lock_timeout=10)
    upgrade(db)
    acme = create_organization(db, name="Acme", domain="acme.com")["id"]
    create_organization(db, name="Globex", domain="globex.com")
    sync_sandbox(db, org=acme, scale=0.01, seed=3)
    with db.connect() as conn:
        deal_id, name = conn.execute(
            text(
                "SELECT d.id, d.name FROM deals d JOIN deal_field_history h ON h.deal_id = d.id "
                "WHERE d.organization_id = :org GROUP BY d.id, d.name "
                "ORDER BY count(*) DESC, d.id LIMIT 1"
            ),
            {"org": acme},
        ).one()
    db.dispose()
    server = launch(home, REVTOPS_DATABASE_URL=url)
    try:
        yield World(server, str(deal_id), name)
    finally:
        stop(server)


def test_the_timeline_as_json_for_the_callers_organization(world: World) -> None:
    response = world.get("ana@acme.com", f"{world.deal_id}/timeline", timezone="Europe/Paris")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deal"]["id"] == world.deal_id and body["deal"]["name"] == world.deal_name
    times = [event["at"] for event in body["events"]]
    assert times == sorted(times) and body["events"][0]["kind"] == "created"
    assert {"amount", "close_date"} & {event["kind"] for event in body["events"]}
    assert body["risk_score"] == sum(flag["weight"] for flag in body["flags"])
    assert all(flag["reason"] for flag in body["flags"])


def test_the_brief_as_a_pdf_attachment(world: World) -> None:
    response = world.get("ana@acme.com", f"{world.deal_id}/brief.pdf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.content.startswith(b"%PDF")


def test_another_organization_unknown_ids_and_no_session(world: World) -> None:
    other = world.get("gus@globex.com", f"{world.deal_id}/timeline")
    unknown = world.get("ana@acme.com", "00000000-0000-0000-0000-000000000000/brief.pdf")
    for response in (other, unknown):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["message"] == "no such deal"
    assert world.get(None, f"{world.deal_id}/timeline").status_code == 401
    bad_zone = world.get("ana@acme.com", f"{world.deal_id}/timeline", timezone="Mars/Base")
    assert bad_zone.status_code == 400 and "Mars/Base" in bad_zone.json()["error"]["message"]
