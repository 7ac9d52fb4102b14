"""The digest's stage moves on hand-built Salesforce-like history, on both backends: a snapshot
that repeats the deal's stage (an amount or close-date change alone) is no entry, even when the
row it repeats lies before the window; a deal that leaves a stage and comes back enters it
again."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from revtops_kernel.reports.digest import STAGE_MOVES_SQL, _guarded
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata

ORG = "moves-test"
STAGES = ("Prospecting", "Qualification", "Proposal", "Closed Won")
HISTORY = {  # deal: [(day, stage, amount)], as OpportunityHistory writes them
    # entered Qualification in the window, then two snapshots for amount and close date alone
    "repeats": [("2026-09-20", "Prospecting", "100"), ("2026-10-05", "Qualification", "100"),
                ("2026-10-10", "Qualification", "150"), ("2026-10-12", "Qualification", "120")],
    # in Proposal since before the window; only its amount changed in it: no entry at all
    "amount only": [("2026-09-01", "Proposal", "500"), ("2026-10-15", "Proposal", "450")],
    # left Proposal and came back: two entries to count (one deal per stage)
    "back and forth": [("2026-10-02", "Proposal", "80"), ("2026-10-08", "Qualification", "80"),
                       ("2026-10-20", "Proposal", "80"), ("2026-10-21", "Proposal", "90")],
    # a new deal whose first row is in the window enters its first stage
    "new": [("2026-10-03", "Prospecting", "60"), ("2026-10-03", "Prospecting", "70")],
    # after the window: nothing
    "later": [("2026-09-01", "Prospecting", "10"), ("2026-11-02", "Closed Won", "10")],
}  # fmt: skip
WINDOW = ("2026-10-01", "2026-10-31")


def uid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts))


def at(day: str, n: int) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, minute=n, tzinfo=UTC)


def base(source_id: str, created: datetime) -> dict[str, Any]:
    return {"organization_id": ORG, "source_system": "salesforce", "source_id": source_id,
            "created_at": created, "updated_at": created}  # fmt: skip


def load(db: Database) -> None:
    t0 = at("2024-01-01", 0)
    deals, history = [], []
    for name, rows in HISTORY.items():
        last = rows[-1][1]
        deals.append(
            {**base(name, at(rows[0][0], 0)), "id": uid("d", name), "name": name,
             "amount": Decimal(rows[-1][2]), "pipeline_id": uid("p"), "stage_id": uid("s", last),
             "stage_name": last, "is_closed": last == "Closed Won",
             "is_won": last == "Closed Won"}
        )  # fmt: skip
        history += [
            {**base(f"{name}/{n}", at(day, n)), "id": uid("h", name, str(n)),
             "deal_id": uid("d", name), "pipeline_id": uid("p"), "stage_id": uid("s", stage),
             "stage_name": stage, "entered_at": at(day, n), "amount": Decimal(amount),
             "close_date": date(2026, 12, 1)}
            for n, (day, stage, amount) in enumerate(rows)
        ]  # fmt: skip
    with db.begin() as conn:
        conn.execute(
            insert(metadata.tables["pipelines"]),
            [{**base("p", t0), "id": uid("p"), "name": "Opportunities", "display_order": 0}],
        )
        conn.execute(
            insert(metadata.tables["deal_stages"]),
            [
                {**base(label, t0), "id": uid("s", label), "pipeline_id": uid("p"),
                 "label": label, "display_order": order, "is_closed": label == "Closed Won",
                 "is_won": label == "Closed Won"}
                for order, label in enumerate(STAGES)
            ],
        )  # fmt: skip
        conn.execute(insert(metadata.tables["deals"]), deals)
        conn.execute(insert(metadata.tables["deal_stage_history"]), history)


def test_a_repeated_stage_is_no_entry(db: Database) -> None:
    load(db)
    first, last = (date.fromisoformat(day) for day in WINDOW)
    frame = _guarded(db, STAGE_MOVES_SQL, ORG, first, last)
    got = {row["stage"]: int(row["deals"]) for row in frame.to_dict("records")}
    # Prospecting: "new" (its second snapshot repeats it); Qualification: "repeats" and
    # "back and forth"; Proposal: "back and forth" (twice, one deal). Not "amount only".
    assert got == {"Prospecting": 1, "Qualification": 2, "Proposal": 1}
    assert list(frame["stage"]) == ["Prospecting", "Qualification", "Proposal"]  # stage order


def test_the_previous_row_before_the_window_counts(db: Database) -> None:
    load(db)
    frame = _guarded(db, STAGE_MOVES_SQL, ORG, date(2026, 10, 10), date(2026, 10, 31))
    got = {row["stage"]: int(row["deals"]) for row in frame.to_dict("records")}
    # "repeats" rows of 10 and 12 Oct repeat the row of 5 Oct, outside this window.
    assert got == {"Proposal": 1}
