"""``deal_risk_facts`` (store.risk_facts), on both backends: a refresh after changes equals a
rebuild from nothing, writes only the changed deals' rows, and ``revtops db upgrade`` builds
the table for a store that predates it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.risk_facts import _COLUMNS, TABLE, refresh_risk_facts
from revtops_kernel.store.upsert import upsert
from tests.intelligence.risk_dataset import AS_OF, ORG, OTHER_ORG, SYSTEM, at, build

_ROW = ", ".join(f"CAST({c} AS TEXT)" for c in ("organization_id", *_COLUMNS))


def facts(db: Database) -> set[tuple[Any, ...]]:
    """Every row's values (not its id), as text."""
    with db.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {_ROW} FROM {TABLE}"))}


def deals_of(rows: set[tuple[Any, ...]]) -> set[str]:
    index = 1 + _COLUMNS.index("deal_id")
    return {row[index] for row in rows}


def test_a_refresh_writes_only_the_changed_deals_and_equals_a_rebuild(db: Database) -> None:
    ids = build(db)
    before = facts(db)
    kinds = {row[1] for row in before}
    assert kinds >= {"touch", "contact", "meeting", "won_stage", "push", "first_close"}
    assert {row[0] for row in before} == {ORG, OTHER_ORG}

    healthy, ghosted = ids["healthy"], ids["ghosted"]
    with db.begin() as conn:
        # A new outbound email on one deal, one of another deal's emails deleted.
        email = {
            "id": record_id(ORG, SYSTEM, "activities", "new-email"),
            "organization_id": ORG,
            "source_system": SYSTEM,
            "source_id": "new-email",
            "activity_type": "email",
            "direction": "outbound",
            "occurred_at": at(1),
            "deal_id": healthy,
            "raw": {},
        }
        upsert(conn, "activities", [email])
        deleted = conn.execute(
            text(
                "UPDATE activities SET deleted_at = :now WHERE deal_id = :deal "
                "AND activity_type = 'email' AND direction = 'outbound'"
            ),
            {"now": at(0), "deal": ghosted},
        ).rowcount
        assert deleted == 2
        report = refresh_risk_facts(conn, ORG)
    after = facts(db)
    changed = before ^ after
    assert changed, "nothing changed"
    assert deals_of(changed) == {str(healthy), str(ghosted)}
    assert report.written == len(changed)
    assert report.derived == len([row for row in after if row[0] == ORG])

    with db.begin() as conn:  # nothing changed since: nothing written
        assert refresh_risk_facts(conn, ORG).written == 0
        conn.execute(text(f"DELETE FROM {TABLE}"))
        rebuilt = (
            refresh_risk_facts(conn, ORG).inserted + refresh_risk_facts(conn, OTHER_ORG).inserted
        )
    assert facts(db) == after
    assert rebuilt == len(after)


def test_db_upgrade_builds_the_table_for_a_store_that_predates_it(db: Database) -> None:
    build(db)
    expected = facts(db)
    assert expected
    with db.begin() as conn:
        conn.execute(text(f"DROP TABLE {TABLE}"))
    report = upgrade(db)
    assert TABLE in report.created_tables
    assert facts(db) == expected


def test_days_are_whole_utc_days_of_the_windows(db: Database) -> None:
    """A touch late on a day and one early the next are two days' rows: the rules' windows
    end at midnight (``occurred_at < as_of + 1``)."""
    ids = build(db)
    late = at(AS_OF - timedelta(days=1), 23)
    with db.begin() as conn:
        upsert(
            conn,
            "activities",
            [
                {
                    "id": record_id(ORG, SYSTEM, "activities", f"late-{n}"),
                    "organization_id": ORG,
                    "source_system": SYSTEM,
                    "source_id": f"late-{n}",
                    "activity_type": "call",
                    "direction": "outbound",
                    "occurred_at": late + timedelta(hours=2 * n),
                    "deal_id": ids["undirected"],
                    "raw": {},
                }
                for n in range(2)
            ],
        )
        refresh_risk_facts(conn, ORG)
        days = conn.execute(
            text(
                f"SELECT CAST(day AS TEXT), calls_out FROM {TABLE} WHERE kind = 'touch' "
                "AND deal_id = :deal ORDER BY day"
            ),
            {"deal": ids["undirected"]},
        ).all()
    assert [tuple(d) for d in days] == [
        (str(AS_OF - timedelta(days=1)), 1),
        (str(AS_OF), 1),
    ]
