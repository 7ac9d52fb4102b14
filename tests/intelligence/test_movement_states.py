"""``deal_states`` and ``deal_stage_visits`` kept incrementally (store.deal_states) equal a
full rebuild, on both backends: after new stage and amount changes, a deal row changed without
history, a history row deleted, and a stage's definition changed, the refresh rebuilds only the
deals they touch."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, text, update

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.deal_states import (
    LOOKBACK,
    TABLE,
    VISITS,
    build_all,
    refresh_deal_states,
)
from revtops_kernel.store.schema import metadata
from tests.intelligence.test_movement_waterfall import DEALS, NB, ORG, at, load, uid

_COLUMNS = (
    "deal_id, valid_from, valid_to, seq, pipeline_id, stage_state, amount, close_date, "
    "prev_pipeline_id, prev_stage_state, prev_amount, prev_close_date"
)
_VISIT_COLUMNS = "history_id, deal_id, stage_id, entered_at, left_at, furthest_order, days_in_stage"


def snapshot(db: Database) -> list[tuple[str, ...]]:
    """Both derived tables' rows (the bookkeeping mark left out), in one sorted list."""
    with db.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {_COLUMNS} FROM {TABLE} WHERE organization_id = :org"), {"org": ORG}
        ).all()
        rows += conn.execute(
            text(f"SELECT {_VISIT_COLUMNS} FROM {VISITS} WHERE organization_id = :org"),
            {"org": ORG},
        ).all()
    return sorted(tuple(str(v) for v in row) for row in rows)


def _history(deal: str, day: str, stage: str, updated: str) -> dict[str, Any]:
    return {
        "id": uid("h", deal, day), "organization_id": ORG, "source_system": "hubspot",
        "source_id": f"{deal}/{day}", "created_at": at(updated), "updated_at": at(updated),
        "deal_id": uid("d", deal), "pipeline_id": uid("p", NB), "stage_id": uid("s", NB, stage),
        "stage_name": stage, "entered_at": at(day),
    }  # fmt: skip


def test_an_incremental_refresh_equals_a_full_rebuild(db: Database) -> None:
    load(db, DEALS)  # builds the states, as a sync would
    built = snapshot(db)
    assert len({row[0] for row in built if len(row) > 7}) == len(DEALS)
    changed = "2026-10-20"
    h, f, d = (metadata.tables[n] for n in ("deal_stage_history", "deal_field_history", "deals"))
    with db.begin() as conn:
        # B is won, H's amount rises, G (no history) changes its amount, C's raise is deleted.
        conn.execute(insert(h), [_history("B pushed out then pulled in", "2026-10-15",
                                          "Closed Won", changed)])  # fmt: skip
        conn.execute(
            insert(f),
            [{"id": uid("f", "H", "x"), "organization_id": ORG, "source_system": "hubspot",
              "source_id": "H/amount/x", "created_at": at(changed), "updated_at": at(changed),
              "deal_id": uid("d", "H lowered"), "field": "amount", "amount": Decimal(90),
              "close_date": None, "changed_at": at("2026-10-12")}],
        )  # fmt: skip
        conn.execute(
            update(d)
            .where(d.c.id == uid("d", "G without history"))
            .values(amount=Decimal(55), updated_at=at(changed))
        )
        conn.execute(
            update(f)
            .where(f.c.id == uid("f", "C raised then lost", "amount", "2026-07-05"))
            .values(deleted_at=at(changed), updated_at=at(changed))
        )
        written = refresh_deal_states(conn, ORG, "hubspot")[TABLE]
    incremental = snapshot(db)
    assert incremental != built
    # Only the touched deals (and those stamped within LOOKBACK of the mark: F) were rebuilt.
    assert 0 < written < len([row for row in built if len(row) > 7]) / 2
    with db.begin() as conn:
        build_all(conn)
    assert snapshot(db) == incremental


def furthest(db: Database, deal: str) -> Any:
    """The deal's furthest stage as the refresh left it (on its first visit only)."""
    with db.connect() as conn:
        return conn.execute(
            text(
                "SELECT max(furthest_order), count(furthest_order) "
                f"FROM {VISITS} WHERE deal_id = :d"
            ),
            {"d": uid("d", deal)},
        ).one()


def test_a_stage_redefined_rebuilds_the_deals_that_entered_it(db: Database) -> None:
    load(db, DEALS)
    before = furthest(db, "C raised then lost")
    s = metadata.tables["deal_stages"]
    with db.begin() as conn:  # Proposal becomes a closed stage
        conn.execute(
            update(s)
            .where(s.c.id == uid("s", NB, "Proposal"))
            .values(is_closed=True, updated_at=at("2026-10-20"))
        )
        refresh_deal_states(conn, ORG, "hubspot")
    incremental = snapshot(db)
    with db.begin() as conn:
        refresh_deal_states(conn, ORG, "hubspot", full=True)
    assert snapshot(db) == incremental
    with db.connect() as conn:  # C entered Proposal at creation: closed from the start now
        state = conn.execute(
            text(f"SELECT stage_state FROM {TABLE} WHERE deal_id = :d AND seq = 1"),
            {"d": uid("d", "C raised then lost")},
        ).scalar_one()
    assert state == 1
    # Its furthest stage (stage_funnel's "reached") no longer counts the now closed Proposal.
    after = furthest(db, "C raised then lost")
    assert before == (1, 1) and after == (None, 0), (before, after)


def test_upgrade_adds_and_fills_the_furthest_stage_of_an_existing_store(db: Database) -> None:
    """A store built before deal_stage_visits.furthest_order: ``db upgrade`` adds the column
    and rebuilds the derived tables, so the funnel reads every deal's furthest stage."""
    load(db, DEALS)
    built = snapshot(db)
    with db.begin() as conn:
        conn.execute(text(f"ALTER TABLE {VISITS} DROP COLUMN furthest_order"))
    report = upgrade(db)
    assert f"{VISITS}.furthest_order" in report.added_columns
    assert snapshot(db) == built


def _newest(db: Database) -> Any:
    with db.connect() as conn:
        return conn.execute(
            text("SELECT max(updated_at) FROM deals WHERE organization_id = :org"), {"org": ORG}
        ).scalar_one()


def test_a_syncs_refresh_looks_back_its_running_time_not_a_day(db: Database) -> None:
    """A refresh that knows how long its sync ran leaves the mark at the newest stamp less
    that time and ``LOOKBACK``: the next one rebuilds the deals stamped since, not a day of
    them, and still sees a row that commits late (stamped just before the newest)."""
    load(db, DEALS)  # not a sync's refresh: the next one looks back a day
    newest = _newest(db)
    ran = timedelta(minutes=3)
    d = metadata.tables["deals"]
    with db.begin() as conn:  # G was edited two hours before the newest stamp
        conn.execute(
            update(d)
            .where(d.c.id == uid("d", "G without history"))
            .values(amount=Decimal(55), updated_at=newest - timedelta(hours=2))
        )
    with db.begin() as conn:
        a_day = refresh_deal_states(conn, ORG, "hubspot", elapsed=ran)[TABLE]
    with db.connect() as conn:
        since = conn.execute(text("SELECT since FROM derived_marks")).scalar_one()
        # The states of the deals stamped since the mark: the newest deal's alone.
        within = conn.execute(
            text(
                f"SELECT count(*) FROM {TABLE} WHERE deal_id IN "
                "(SELECT id FROM deals WHERE updated_at >= :since)"
            ),
            {"since": since},
        ).scalar_one()
    assert since.replace(tzinfo=None) == (newest - ran - LOOKBACK).replace(tzinfo=None)
    with db.begin() as conn:
        assert refresh_deal_states(conn, ORG, "hubspot", elapsed=ran)[TABLE] == within
    assert 0 < within < a_day, (within, a_day)  # G, stamped hours before, is left alone now
    late = newest - timedelta(minutes=4)  # committed after that sync read the deals
    h = metadata.tables["deal_stage_history"]
    with db.begin() as conn:
        conn.execute(
            insert(h),
            [_history("B pushed out then pulled in", "2026-10-15", "Closed Won", "2026-10-20")
             | {"updated_at": late}],
        )  # fmt: skip
        written = refresh_deal_states(conn, ORG, "hubspot", elapsed=ran)[TABLE]
    incremental = snapshot(db)
    with db.connect() as conn:
        b_states = conn.execute(
            text(f"SELECT count(*) FROM {TABLE} WHERE deal_id = :d"),
            {"d": uid("d", "B pushed out then pulled in")},
        ).scalar_one()
    assert written == within + b_states, (written, within, b_states)  # and B's alone
    with db.begin() as conn:
        build_all(conn)
    assert snapshot(db) == incremental
