"""The pass that derives Salesforce's deal_field_history from its OpportunityHistory snapshots
(``store.deal_field_history``), on each backend: a row where a value differs from the
snapshot before, re-runs that write nothing, deletions that follow the snapshots."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.store import Database, deal_field_history
from revtops_kernel.store.deal_field_history import derive_salesforce_field_history
from revtops_kernel.store.upsert import upsert

ORG = "org_pass"
T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


def snapshot(
    n: int, deal: str, hours: int, amount: str | None, close: date | None
) -> dict[str, Any]:
    source_id = f"0085g0000000{n:03d}AAA"
    at = T0 + timedelta(hours=hours)
    return {
        "id": record_id(ORG, "salesforce", "deal_stage_history", source_id),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": source_id,
        "deal_id": record_id(ORG, "salesforce", "deals", deal),
        "pipeline_id": None,
        "stage_id": None,
        "stage_name": "Qualification",
        "entered_at": at,
        "amount": None if amount is None else Decimal(amount),
        "probability": None,
        "forecast_category": None,
        "close_date": close,
        "created_at": at,
        "updated_at": at,
        "deleted_at": None,
        "raw": None,
    }


D1, D2 = date(2024, 6, 30), date(2024, 8, 31)
SNAPSHOTS = [
    snapshot(1, "A", 0, "100.00", D1),
    snapshot(2, "A", 5, "100.00", D1),  # a stage change alone
    snapshot(3, "A", 9, "80.00", D1),  # the amount cut
    snapshot(4, "A", 20, "80.00", D2),  # the close date pushed
    snapshot(5, "B", 1, None, D1),  # no amount at creation
    snapshot(6, "B", 2, "500.00", D1),
]


def history(db: Database) -> list[tuple[Any, ...]]:
    sql = """
        SELECT source_id, field, amount, close_date, changed_at, deleted_at IS NOT NULL AS gone
        FROM deal_field_history WHERE organization_id = :org ORDER BY source_id"""
    with db.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), {"org": ORG})]


@pytest.fixture(autouse=True, params=[1, deal_field_history.DEALS_PER_PASS], ids=["1", "default"])
def deals_per_pass(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every test once with the deals derived one at a time (a range per deal, as a large
    organization's are in ranges of DEALS_PER_PASS) and once in one range."""
    monkeypatch.setattr(deal_field_history, "DEALS_PER_PASS", request.param)
    return int(request.param)


def run_pass(db: Database) -> int:
    with db.begin() as conn:
        return derive_salesforce_field_history(conn, ORG)


def test_rows_where_values_change_and_nothing_on_a_rerun(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "deal_stage_history", SNAPSHOTS)
    assert run_pass(db) == 6
    at = lambda hours: T0 + timedelta(hours=hours)  # noqa: E731
    assert [(s, f, a, c, w.astimezone(UTC), g) for s, f, a, c, w, g in history(db)] == [
        ("0085g0000000001AAA:amount", "amount", Decimal("100.00"), None, at(0), False),
        ("0085g0000000001AAA:close_date", "close_date", None, D1, at(0), False),
        ("0085g0000000003AAA:amount", "amount", Decimal("80.00"), None, at(9), False),
        ("0085g0000000004AAA:close_date", "close_date", None, D2, at(20), False),
        ("0085g0000000005AAA:close_date", "close_date", None, D1, at(1), False),
        ("0085g0000000006AAA:amount", "amount", Decimal("500.00"), None, at(2), False),
    ]
    assert run_pass(db) == 0


def test_later_passes_look_at_deals_with_new_snapshots(db: Database) -> None:
    with db.begin() as conn:  # and deal C, created four days after the others
        upsert(conn, "deal_stage_history", [*SNAPSHOTS, snapshot(8, "C", 96, "9.00", D2)])
    run_pass(db)
    # Deal B's amount changes five days on; deals stamped over a day (LOOKBACK) before the
    # newest derived row (C's) are not looked at again.
    later = snapshot(7, "B", 120, "450.00", D1)
    with db.begin() as conn:
        upsert(conn, "deal_stage_history", [later])
        conn.execute(text("DELETE FROM deal_field_history WHERE source_id LIKE '%001AAA:amount'"))
    assert run_pass(db) == 1  # B's new amount; A's deleted first row is outside the scope
    assert "0085g0000000007AAA:amount" in [r[0] for r in history(db)]
    with db.begin() as conn:
        assert derive_salesforce_field_history(conn, ORG, full=True) == 1  # A's, by a full pass


def test_deleted_snapshots_take_their_rows_along(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "deal_stage_history", SNAPSHOTS)
    run_pass(db)
    # Opportunity A deleted: queryAll sends its snapshots with IsDeleted and a newer stamp.
    gone = T0 + timedelta(days=3)
    deleted = [
        {**s, "deleted_at": gone, "updated_at": gone}
        for s in SNAPSHOTS
        if s["deal_id"] == record_id(ORG, "salesforce", "deals", "A")
    ]
    with db.begin() as conn:
        upsert(conn, "deal_stage_history", deleted)
    assert run_pass(db) == 4
    assert [g for s, *_, g in history(db) if s.startswith("0085g000000000")] == [True] * 4 + [
        False
    ] * 2
    # A snapshot that disappears altogether (purged) leaves no stamp behind: a full pass
    # retires what derived from it.
    with db.begin() as conn:
        conn.execute(text("DELETE FROM deal_stage_history WHERE source_id = '0085g0000000006AAA'"))
    assert run_pass(db) == 0
    with db.begin() as conn:
        assert derive_salesforce_field_history(conn, ORG, full=True) == 1
    assert history(db)[-1][0] == "0085g0000000006AAA:amount" and history(db)[-1][-1] is True
    assert run_pass(db) == 0


def test_a_full_pass_retires_the_rows_of_a_deal_whose_snapshots_are_all_gone(
    db: Database, deals_per_pass: int
) -> None:
    """The ranges cover every deal id, so a deal that has no snapshot left (not listed by
    any range's bounds) still has its derived rows retired, one deal per range too."""
    with db.begin() as conn:
        upsert(conn, "deal_stage_history", [*SNAPSHOTS, snapshot(8, "C", 96, "9.00", D2)])
    assert run_pass(db) == 8
    with db.begin() as conn:
        assert len(deal_field_history.deal_ranges(conn, ORG)) == (4 if deals_per_pass == 1 else 1)
        conn.execute(text("DELETE FROM deal_stage_history WHERE deal_id = :a"),
                     {"a": record_id(ORG, "salesforce", "deals", "A")})  # fmt: skip
        assert derive_salesforce_field_history(conn, ORG, full=True) == 4  # A's four rows
    gone = {source_id[:18] for source_id, *_, deleted in history(db) if deleted}
    assert gone == {"0085g0000000001AAA", "0085g0000000003AAA", "0085g0000000004AAA"}
