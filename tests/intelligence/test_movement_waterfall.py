"""The pipeline waterfall on hand-built deals whose every movement is known, on both backends:
created and won inside the window, pushed out then pulled in, raised then lost, reopened, moved
between pipelines, won with a last-minute amount change, pulled out early, no history at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.store import Database
from revtops_kernel.store.deal_states import refresh_deal_states
from revtops_kernel.store.schema import metadata

ORG = "waterfall-test"
Q3 = {"start_date": "2026-07-01", "end_date": "2026-09-30"}
TRACK_Q3 = {**Q3, "close_from": "2026-07-01", "close_to": "2026-09-30"}
COLUMNS = ("opening", "created", "reopened", "moved_in", "pulled_in", "increased", "decreased",
           "pushed_out", "moved_out", "won", "lost", "closing")  # fmt: skip


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def uid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts))


# (pipeline, stage) -> (order, is_closed, is_won)
STAGES = {
    ("New Business", "Discovery"): (0, False, False),
    ("New Business", "Proposal"): (1, False, False),
    ("New Business", "Closed Won"): (2, True, True),
    ("New Business", "Closed Lost"): (3, True, False),
    ("Renewals", "Upcoming"): (0, False, False),
    ("Renewals", "Closed Won"): (1, True, True),
    ("Renewals", "Closed Lost"): (2, True, False),
}
NB, RN = "New Business", "Renewals"
OWNERS = {"Ana Lopez": "ana@acme.test", "Ben Okafor": "ben@acme.test"}


@dataclass
class Deal:
    name: str
    owner: str
    created: str
    stages: list[tuple[str, str, str]]  # (day, pipeline, stage), first at creation
    amounts: list[tuple[str, str]] = field(default_factory=list)  # (day, amount)
    closes: list[tuple[str, str]] = field(default_factory=list)  # (day, close date)
    deleted: bool = False
    current: tuple[str, str, str, str] | None = None  # no history: pipeline, stage, amount, close


DEALS = [
    Deal("A created and won", "Ana Lopez", "2026-07-10",
         [("2026-07-10", NB, "Discovery"), ("2026-08-20", NB, "Closed Won")],
         [("2026-07-10", "100"), ("2026-08-01", "120")], [("2026-07-10", "2026-09-15")]),
    Deal("B pushed out then pulled in", "Ben Okafor", "2026-05-01",
         [("2026-05-01", NB, "Discovery")], [("2026-05-01", "200")],
         [("2026-05-01", "2026-08-15"), ("2026-07-15", "2026-10-15"),
          ("2026-08-10", "2026-09-20")]),
    Deal("C raised then lost", "Ana Lopez", "2026-04-01",
         [("2026-04-01", NB, "Proposal"), ("2026-08-01", NB, "Closed Lost")],
         [("2026-04-01", "300"), ("2026-07-05", "350")], [("2026-04-01", "2026-09-01")]),
    Deal("D reopened", "Ben Okafor", "2026-03-01",
         [("2026-03-01", NB, "Discovery"), ("2026-06-01", NB, "Closed Lost"),
          ("2026-07-20", NB, "Proposal")],
         [("2026-03-01", "400")], [("2026-03-01", "2026-09-10")]),
    Deal("E moved to Renewals", "Ana Lopez", "2026-06-01",
         [("2026-06-01", NB, "Discovery"), ("2026-08-05", RN, "Upcoming")],
         [("2026-06-01", "500")], [("2026-06-01", "2026-09-05")]),
    Deal("F created after the window", "Ana Lopez", "2026-10-05",
         [("2026-10-05", NB, "Discovery")], [("2026-10-05", "600")],
         [("2026-10-05", "2026-09-20")]),
    Deal("G without history", "Ben Okafor", "2026-03-01", [],
         current=(NB, "Discovery", "50", "2026-09-10")),
    Deal("H lowered", "Ana Lopez", "2026-06-15",
         [("2026-06-15", NB, "Discovery")],
         [("2026-06-15", "80"), ("2026-09-01", "60")], [("2026-06-15", "2026-09-25")]),
    Deal("I deleted", "Ana Lopez", "2026-06-01",
         [("2026-06-01", NB, "Discovery")], [("2026-06-01", "900")],
         [("2026-06-01", "2026-09-01")], deleted=True),
    Deal("J lost before the window", "Ben Okafor", "2026-01-01",
         [("2026-01-01", NB, "Discovery"), ("2026-03-01", NB, "Closed Lost")],
         [("2026-01-01", "700")], [("2026-01-01", "2026-03-01")]),
    Deal("L won with a last change", "Ben Okafor", "2026-05-01",
         [("2026-05-01", RN, "Upcoming"), ("2026-09-15", RN, "Closed Won")],
         [("2026-05-01", "1000"), ("2026-09-15", "1100")], [("2026-05-01", "2026-09-30")]),
    Deal("M pulled out early", "Ben Okafor", "2026-06-01",
         [("2026-06-01", NB, "Discovery")], [("2026-06-01", "70")],
         [("2026-06-01", "2026-07-20"), ("2026-07-02", "2026-06-30")]),
]  # fmt: skip


def _common(source_id: str, created: datetime) -> dict[str, Any]:
    return {
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": source_id,
        "created_at": created,
        "updated_at": created,
    }


def load(db: Database, deals: list[Deal]) -> None:
    t0 = at("2025-01-01")
    rows: dict[str, list[dict[str, Any]]] = {
        "owners": [
            {**_common(email, t0), "id": uid("o", name), "email": email, "full_name": name}
            for name, email in OWNERS.items()
        ],
        "pipelines": [
            {**_common(name, t0), "id": uid("p", name), "name": name, "display_order": i}
            for i, name in enumerate(("New Business", "Renewals"))
        ],
        "deal_stages": [
            {
                **_common(f"{pipe}/{label}", t0),
                "id": uid("s", pipe, label),
                "pipeline_id": uid("p", pipe),
                "label": label,
                "display_order": order,
                "is_closed": closed,
                "is_won": won,
            }
            for (pipe, label), (order, closed, won) in STAGES.items()
        ],
        "deals": [],
        "deal_stage_history": [],
        "deal_field_history": [],
    }
    for deal in deals:
        deal_id = uid("d", deal.name)
        created = at(deal.created)
        if deal.current:
            pipe, stage, amount, close = deal.current
        else:
            _, pipe, stage = deal.stages[-1]
            amount, close = deal.amounts[-1][1], deal.closes[-1][1]
        _, closed, won = STAGES[(pipe, stage)]
        rows["deals"].append(
            {**_common(deal.name, created), "id": deal_id, "name": deal.name,
             "amount": Decimal(amount), "close_date": date.fromisoformat(close),
             "pipeline_id": uid("p", pipe), "stage_id": uid("s", pipe, stage), "stage_name": stage,
             "owner_id": uid("o", deal.owner), "is_closed": closed, "is_won": won,
             "deleted_at": at("2026-09-01") if deal.deleted else None}
        )  # fmt: skip
        for day, pipe, stage in deal.stages:
            rows["deal_stage_history"].append(
                {**_common(f"{deal.name}/{day}", created), "id": uid("h", deal.name, day),
                 "deal_id": deal_id, "pipeline_id": uid("p", pipe),
                 "stage_id": uid("s", pipe, stage), "stage_name": stage, "entered_at": at(day)}
            )  # fmt: skip
        for kind, changes in (("amount", deal.amounts), ("close_date", deal.closes)):
            for day, value in changes:
                rows["deal_field_history"].append(
                    {**_common(f"{deal.name}/{kind}/{day}", created),
                     "id": uid("f", deal.name, kind, day), "deal_id": deal_id, "field": kind,
                     "amount": Decimal(value) if kind == "amount" else None,
                     "close_date": date.fromisoformat(value) if kind == "close_date" else None,
                     "changed_at": at(day)}
                )  # fmt: skip
    with db.begin() as conn:
        for table, values in rows.items():
            conn.execute(insert(metadata.tables[table]), values)
        refresh_deal_states(conn, ORG, "hubspot")  # as the sync does after writing them


@pytest.fixture
def movements(db: Database) -> Iterator[Database]:
    load(db, DEALS)
    yield db


def waterfall(db: Database, **params: Any) -> dict[str, dict[str, Decimal]]:
    result = run_verified(db, "pipeline_waterfall", params, org=ORG, today=date(2026, 11, 1))
    rows = {}
    for record in result.frame.to_dict("records"):
        rows[record["grouping"]] = {c: Decimal(str(record[c])) for c in (*COLUMNS, "unexplained")}
    return rows


def expect(**values: int) -> dict[str, Decimal]:
    return {c: Decimal(values.get(c, 0)) for c in (*COLUMNS, "unexplained")}


def test_per_pipeline_with_a_tracked_close_window(movements: Database) -> None:
    got = waterfall(movements, **TRACK_Q3)
    assert got == {
        # opening B 200 + C 300 + E 500 + G 50 + H 80 + M 70; created A; reopened D; pulled in
        # B; raised A 20 and C 50; lowered H; pushed out B and M (moved before the window);
        # E moved to Renewals; won A at 120; lost C at 350; closing B, D, G, H.
        "New Business": expect(opening=1200, created=100, reopened=400, pulled_in=200,
                               increased=70, decreased=20, pushed_out=270, moved_out=500,
                               won=120, lost=350, closing=710),
        # opening L; E moved in; L raised to 1,100 as it was won.
        "Renewals": expect(opening=1000, moved_in=500, increased=100, won=1100, closing=500),
    }  # fmt: skip


def test_all_open_deals_in_total_and_per_owner(movements: Database) -> None:
    total = waterfall(movements, **Q3, group_by="none")
    # No close window: pushes and pipeline moves change nothing; M stays in.
    assert total == {
        "All": expect(opening=2200, created=100, reopened=400, increased=170, decreased=20,
                      won=1220, lost=350, closing=1280)
    }  # fmt: skip
    assert waterfall(movements, **Q3, group_by="owner") == {
        "Ana Lopez": expect(opening=880, created=100, increased=70, decreased=20, won=120,
                            lost=350, closing=560),
        "Ben Okafor": expect(opening=1320, reopened=400, increased=100, won=1100, closing=720),
    }  # fmt: skip


def test_filters_narrow_to_a_pipeline_or_an_owner(movements: Database) -> None:
    renewals = waterfall(movements, **TRACK_Q3, group_by="none", pipeline="renewals")
    assert renewals == {
        "All": expect(opening=1000, moved_in=500, increased=100, won=1100, closing=500)
    }
    assert set(waterfall(movements, **Q3, group_by="owner", owner="ben@acme.test")) == {
        "Ben Okafor"
    }


def test_consecutive_windows_chain_and_the_present_matches_the_deals(movements: Database) -> None:
    first = waterfall(movements, start_date="2026-01-01", end_date="2026-06-30", group_by="none")
    second = waterfall(movements, start_date="2026-07-01", end_date="2026-11-01", group_by="none")
    assert first["All"]["closing"] == second["All"]["opening"] == Decimal(2200)
    # Closing today = today's open deals (B, D, E, F, G, H, M): history agrees with the deals.
    assert second["All"]["closing"] == Decimal(200 + 400 + 500 + 600 + 50 + 60 + 70)
    assert all(row["unexplained"] == 0 for row in (*first.values(), *second.values()))


def test_a_window_before_any_deal_is_empty(movements: Database) -> None:
    assert waterfall(movements, start_date="2024-01-01", end_date="2024-03-31") == {}
