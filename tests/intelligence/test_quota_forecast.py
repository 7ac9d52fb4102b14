"""Forecast against quota on hand-built deals, on both backends: one rep synced from two CRMs,
a rep with a quota and no deals, one with deals and no quota, an unowned deal, a deal's own
Omitted category, per rep, per team and in total, filtered by owner."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.intelligence.quotas import import_quotas
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata

ORG = "forecast-test"
T0 = datetime(2026, 1, 5, tzinfo=UTC)
STAGES = {  # label: (order, probability, forecast category, closed, won)
    "Discovery": (0, "0.1", "Pipeline", False, False),
    "Proposal": (1, "0.6", "Best Case", False, False),
    "Negotiation": (2, "0.8", "Commit", False, False),
    "Closed Won": (3, "1", "Closed", True, True),
    "Closed Lost": (4, "0", "Omitted", True, False),
}
OWNERS = [  # (key, source system, email, name)
    ("ana-hs", "hubspot", "ana@acme.test", "Ana Lopez"),
    ("ana-sf", "salesforce", "Ana@Acme.test", "Ana Lopez"),
    ("ben", "hubspot", "ben@acme.test", "Ben Okafor"),
    ("cy", "hubspot", "cy@acme.test", "Cy Young"),
]
DEALS = [  # (owner key, stage, amount, close date, own forecast category)
    ("ana-hs", "Closed Won", "100", "2026-10-15", None),
    ("ana-sf", "Closed Won", "50", "2026-11-02", None),
    ("ana-hs", "Negotiation", "200", "2026-12-01", None),
    ("ana-sf", "Proposal", "300", "2026-12-20", None),
    ("ana-hs", "Proposal", "1000", "2026-12-20", "Omitted"),  # taken out by its rep
    ("ben", "Discovery", "400", "2026-11-30", None),
    ("ben", "Closed Lost", "500", "2026-10-20", None),
    (None, "Discovery", "70", "2026-12-31", None),
    ("ana-hs", "Closed Won", "999", "2026-09-30", None),  # last quarter
]


def uid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts))


def base(system: str, source_id: str) -> dict[str, Any]:
    return {"organization_id": ORG, "source_system": system, "source_id": source_id,
            "created_at": T0, "updated_at": T0}  # fmt: skip


@pytest.fixture
def forecast_db(db: Database) -> Database:
    stages = [
        {**base("hubspot", label), "id": uid("s", label), "pipeline_id": uid("p"), "label": label,
         "display_order": order, "probability": Decimal(p), "forecast_category": category,
         "is_closed": closed, "is_won": won}
        for label, (order, p, category, closed, won) in STAGES.items()
    ]  # fmt: skip
    deals = []
    for n, (owner, stage, amount, close, category) in enumerate(DEALS):
        _, _, _, closed, won = STAGES[stage]
        deals.append(
            {**base("hubspot", str(n)), "id": uid("d", str(n)), "name": f"deal {n}",
             "amount": Decimal(amount), "close_date": date.fromisoformat(close),
             "pipeline_id": uid("p"), "stage_id": uid("s", stage), "stage_name": stage,
             "owner_id": uid("o", owner) if owner else None, "is_closed": closed, "is_won": won,
             "forecast_category": category}
        )  # fmt: skip
    with db.begin() as conn:
        conn.execute(
            insert(metadata.tables["owners"]),
            [{**base(system, key), "id": uid("o", key), "email": email, "full_name": name}
             for key, system, email, name in OWNERS],
        )  # fmt: skip
        conn.execute(
            insert(metadata.tables["pipelines"]),
            [{**base("hubspot", "p"), "id": uid("p"), "name": "New Business"}],
        )
        conn.execute(insert(metadata.tables["deal_stages"]), stages)
        conn.execute(insert(metadata.tables["deals"]), deals)
    import_quotas(
        db,
        ORG,
        "owner_email,quarter,amount,team\n"
        "ana@acme.test,2026-Q4,1000,East\ncy@acme.test,2026-Q4,500,East\n",
    )
    return db


def forecast(db: Database, **params: Any) -> list[dict[str, Any]]:
    params = {"start_date": "2026-10-01", "end_date": "2026-12-31", **params}
    frame = run_verified(db, "forecast_vs_quota", params, org=ORG).frame
    rows = []
    for record in frame.to_dict("records"):
        rows.append({k: _plain(v) for k, v in record.items()})
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, str) or value is None:
        return value
    if value != value:  # NaN: a NULL number
        return None
    return Decimal(str(value)).normalize()


def row(
    team: str, owner: str | None, reps: int, quota: Any, won: int, commit: int, best: int,
    pipe: int, weighted: str, remaining: Any, coverage: Any, attainment: Any,
) -> dict[str, Any]:  # fmt: skip
    def d(v: Any) -> Any:
        return None if v is None else Decimal(str(v)).normalize()

    return {"team": team, "owner": owner, "reps": d(reps), "quota": d(quota),
            "closed_won": d(won), "commit": d(commit), "best_case": d(best), "pipeline": d(pipe),
            "weighted": d(weighted), "open_pipeline": d(commit + best + pipe),
            "remaining_quota": d(remaining), "coverage": d(coverage),
            "attainment": d(attainment)}  # fmt: skip


def test_per_rep(forecast_db: Database) -> None:
    assert forecast(forecast_db) == [
        # Ana: both CRMs' deals; weighted 150 + 200 × 0.8 + 300 × 0.6; coverage 500 / 850.
        row("East", "Ana Lopez", 1, 1000, 150, 200, 300, 0, "490", 850, "0.59", "0.15"),
        row("East", "Cy Young", 1, 500, 0, 0, 0, 0, "0", 500, "0", "0"),
        row("(no team)", "Ben Okafor", 1, None, 0, 0, 0, 400, "40", None, None, None),
        row("(no team)", "(no owner)", 1, None, 0, 0, 0, 70, "7", None, None, None),
    ]


def test_per_team_and_in_total(forecast_db: Database) -> None:
    assert forecast(forecast_db, group_by="team") == [
        row("East", None, 2, 1500, 150, 200, 300, 0, "490", 1350, "0.37", "0.1"),
        row("(no team)", None, 2, None, 0, 0, 0, 470, "47", None, None, None),
    ]
    assert forecast(forecast_db, group_by="none") == [
        row("All", None, 4, 1500, 150, 200, 300, 470, "537", 1350, "0.72", "0.1"),
    ]


def test_filtered_to_one_rep_and_part_of_a_quarter(forecast_db: Database) -> None:
    assert forecast(forecast_db, owner="ana lopez") == [
        row("East", "Ana Lopez", 1, 1000, 150, 200, 300, 0, "490", 850, "0.59", "0.15"),
    ]
    # October alone: Ana's quarter quota counts 31/92 (336.96 of 1,000).
    october = forecast(forecast_db, owner="ana@acme.test", end_date="2026-10-31")
    assert october == [row("East", "Ana Lopez", 1, "336.96", 100, 0, 0, 0, "100", "236.96", 0,
                           "0.2968")]  # fmt: skip
