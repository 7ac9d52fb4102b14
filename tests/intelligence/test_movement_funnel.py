"""The stage funnel and sales velocity on hand-built deals, on both backends: a skipped stage
counts as reached, a deal without history counts at its current stage, a retired stage moves
nothing forward, a won deal reached every stage; velocity's formula on known numbers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.store import Database
from revtops_kernel.store.deal_states import refresh_deal_states
from revtops_kernel.store.schema import metadata

ORG = "funnel-test"
STAGES = {  # label: (order, closed, won, active)
    "Discovery": (0, False, False, True),
    "Qualified": (1, False, False, True),
    "Proposal": (2, False, False, True),
    "Closed Won": (3, True, True, True),
    "Closed Lost": (4, True, False, True),
    "Legal Review": (5, False, False, False),  # retired
}
DEALS = {  # name: (created, [(day, stage)], current stage when no history, amount, close)
    "won": ("2026-03-01", [("2026-03-01", "Discovery"), ("2026-03-03", "Qualified"),
            ("2026-03-06", "Proposal"), ("2026-03-11", "Closed Won")], None, "1000", "2026-03-11"),
    "skipped": ("2026-03-02", [("2026-03-02", "Discovery"), ("2026-03-06", "Proposal"),
                ("2026-03-20", "Closed Lost")], None, "500", "2026-03-20"),
    "open": ("2026-04-01", [("2026-04-01", "Discovery")], None, "300", "2026-12-01"),
    "no history": ("2026-04-02", [], "Qualified", "200", "2026-12-15"),
    "retired": ("2026-04-03", [("2026-04-03", "Discovery"), ("2026-04-07", "Legal Review"),
                ("2026-04-09", "Closed Lost")], None, "100", "2026-04-09"),
    "old": ("2025-01-01", [("2025-01-01", "Discovery")], None, "50", "2025-02-01"),
}  # fmt: skip


def uid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts))


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


def base(source_id: str, created: datetime) -> dict[str, Any]:
    return {"organization_id": ORG, "source_system": "hubspot", "source_id": source_id,
            "created_at": created, "updated_at": created}  # fmt: skip


def load(db: Database) -> None:
    t0 = at("2024-01-01")
    deals, history = [], []
    for name, (created, path, current, amount, close) in DEALS.items():
        stage = path[-1][1] if path else current
        assert stage is not None
        _, closed, won, _ = STAGES[stage]
        deals.append(
            {**base(name, at(created)), "id": uid("d", name), "name": name,
             "amount": Decimal(amount), "close_date": date.fromisoformat(close),
             "pipeline_id": uid("p"), "stage_id": uid("s", stage), "stage_name": stage,
             "owner_id": uid("o"), "is_closed": closed, "is_won": won}
        )  # fmt: skip
        history += [
            {**base(f"{name}/{day}", at(created)), "id": uid("h", name, day),
             "deal_id": uid("d", name), "pipeline_id": uid("p"), "stage_id": uid("s", label),
             "stage_name": label, "entered_at": at(day)}
            for day, label in path
        ]  # fmt: skip
    with db.begin() as conn:
        conn.execute(
            insert(metadata.tables["owners"]),
            [{**base("o", t0), "id": uid("o"), "email": "ana@acme.test", "full_name": "Ana"}],
        )
        conn.execute(
            insert(metadata.tables["pipelines"]),
            [{**base("p", t0), "id": uid("p"), "name": "New Business", "display_order": 0}],
        )
        conn.execute(
            insert(metadata.tables["deal_stages"]),
            [
                {**base(label, t0), "id": uid("s", label), "pipeline_id": uid("p"),
                 "label": label, "display_order": order, "is_closed": closed, "is_won": won,
                 "is_active": active}
                for label, (order, closed, won, active) in STAGES.items()
            ],
        )  # fmt: skip
        conn.execute(insert(metadata.tables["deals"]), deals)
        conn.execute(insert(metadata.tables["deal_stage_history"]), history)
        refresh_deal_states(conn, ORG, "hubspot")  # the stage visits, as the sync keeps them


def test_reached_advanced_and_days_in_stage(db: Database) -> None:
    load(db)
    params = {"start_date": "2026-01-01", "end_date": "2026-06-30"}
    frame = run_verified(db, "stage_funnel", params, org=ORG).frame
    got = {
        r["stage"]: (r["reached"], None if r["advanced"] != r["advanced"] else r["advanced"],
                     r["median_days_in_stage"], r["completed_visits"])
        for r in frame.to_dict("records")
    }  # fmt: skip
    assert [r["stage"] for r in frame.to_dict("records")] == [
        "Discovery",
        "Qualified",
        "Proposal",
        "Closed Won",
    ]
    assert got["Discovery"][:2] == (5, 3)  # won, skipped, no history advanced; open, retired not
    assert got["Qualified"][:2] == (3, 2)  # skipped reached it by passing it
    assert got["Proposal"][:2] == (2, 1)
    assert got["Closed Won"][:2] == (1, None)
    # Discovery visits that ended: won 2 days, skipped 4, retired 4; Proposal: 5 and 14.
    assert (got["Discovery"][2], got["Discovery"][3]) == (4, 3)
    assert (got["Proposal"][2], got["Proposal"][3]) == (9.5, 2)
    conversion = {r["stage"]: r["conversion_rate"] for r in frame.to_dict("records")}
    assert float(conversion["Discovery"]) == 0.6


def test_velocity_is_open_deals_times_win_rate_times_won_amount_over_cycle(db: Database) -> None:
    load(db)
    params = {"start_date": "2026-01-01", "end_date": "2026-06-30", "group_by": "none"}
    (row,) = run_verified(db, "sales_velocity", params, org=ORG).frame.to_dict("records")
    # Open today: "open", "no history", "old"; closed in the window: won, skipped, retired.
    assert (row["open_deals"], row["won_deals"], row["closed_deals"]) == (3, 1, 3)
    assert float(row["avg_won_amount"]) == 1000 and float(row["avg_cycle_days"]) == 10
    assert float(row["velocity_per_day"]) == round(3 * (1 / 3) * 1000 / 10, 2)


def test_a_repeated_snapshot_is_not_a_new_visit(db: Database) -> None:
    """Salesforce writes an OpportunityHistory snapshot for an amount or close-date change
    alone, repeating the stage: the deal stays in one visit of that stage."""
    load(db)
    params = {"start_date": "2026-01-01", "end_date": "2026-06-30"}
    before = run_verified(db, "stage_funnel", params, org=ORG).frame
    repeat = {
        **base("won/2026-03-02", at("2026-03-01")), "id": uid("h", "won", "repeat"),
        "deal_id": uid("d", "won"), "pipeline_id": uid("p"), "stage_id": uid("s", "Discovery"),
        "stage_name": "Discovery", "entered_at": at("2026-03-02"),
    }  # fmt: skip
    with db.begin() as conn:
        conn.execute(insert(metadata.tables["deal_stage_history"]), [repeat])
        refresh_deal_states(conn, ORG, "hubspot", full=True)
    after = run_verified(db, "stage_funnel", params, org=ORG).frame
    columns = ["stage", "reached", "median_days_in_stage", "completed_visits"]
    assert after[columns].fillna(-1).to_dict("records") == before[columns].fillna(-1).to_dict(
        "records"
    )
