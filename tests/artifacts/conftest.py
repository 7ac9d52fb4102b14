"""Sales rows for artifact tests: two organizations, so every test also sees the org scope."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from revtops_kernel.store import Database
from revtops_kernel.store.upsert import upsert

T0 = datetime(2026, 1, 5, tzinfo=UTC)
STAGES = ("Discovery", "Proposal", "Negotiation", "Closed Won")
OWNERS = ("ana", "ben")


def acme_deals() -> list[dict[str, object]]:
    """24 deals: stage i % 4, owner i % 2, amount 1000 * (i + 1), closing in Jan-Mar 2026."""
    return [
        {
            "organization_id": "acme",
            "source_system": "hubspot",
            "source_id": f"d{i}",
            "name": f"Acme deal {i}",
            "amount": 1000 * (i + 1),
            "stage_name": STAGES[i % 4],
            "deal_type": OWNERS[i % 2],  # stands in for an owner name: no join needed
            "close_date": date(2026, 1 + i % 3, 1 + i),
            "is_won": i % 4 == 3,
            "updated_at": T0,
        }
        for i in range(24)
    ]


def globex_deals() -> list[dict[str, object]]:
    # Another organization's deals, in a stage of its own and with huge amounts: any leak shows.
    return [
        {
            "organization_id": "globex",
            "source_system": "hubspot",
            "source_id": f"g{i}",
            "name": f"Globex deal {i}",
            "amount": 9_000_000,
            "stage_name": "Globex Only",
            "updated_at": T0,
        }
        for i in range(5)
    ]


@pytest.fixture
def sales(db: Database) -> Database:
    with db.begin() as conn:
        upsert(conn, "deals", acme_deals() + globex_deals())
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, domain, created_at, updated_at) VALUES "
                "('acme', 'Acme Corp', 'acme.com', :t, :t), "
                "('globex', 'Globex', 'globex.com', :t, :t)"
            ),
            {"t": T0},
        )
    return db


def stage_totals() -> dict[str, float]:
    totals: dict[str, float] = {}
    for deal in acme_deals():
        stage = str(deal["stage_name"])
        totals[stage] = totals.get(stage, 0) + float(deal["amount"])  # type: ignore[arg-type]
    return totals
