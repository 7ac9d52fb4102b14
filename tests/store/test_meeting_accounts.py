"""``meeting_accounts`` (store.meeting_accounts), on both backends: ``meetings_by_account`` read
from it answers as the SQL it replaced (from the activities and their participants) for any
window and ``min_meetings``; a refresh after changes writes only the changed rows and equals a
rebuild from nothing; the sync's call skips a run that changed nothing unless a refresh failed;
``revtops db upgrade`` builds the table for a store that predates it."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from revtops_kernel.agent.guard import run_guarded
from revtops_kernel.agent.verified import VERIFIED_QUERIES, resolve_params
from revtops_kernel.ids import record_id
from revtops_kernel.resolve import ResolveReport
from revtops_kernel.store import Database, meeting_accounts, upgrade
from revtops_kernel.store.bookkeeping import RunCounts
from revtops_kernel.store.meeting_accounts import (
    COLUMNS,
    TABLE,
    is_stale,
    refresh_after_sync,
    refresh_meeting_accounts,
)
from revtops_kernel.store.upsert import upsert

ORG = "meet-test"
OTHER_ORG = "meet-other"
SYSTEM = "google_calendar"
TODAY = date(2026, 11, 1)

# meetings_by_account as it read the activities and their participants before the rollup.
FORMER_SQL = """
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        CAST(:min_meetings AS INTEGER) AS min_meetings
),
meetings AS (
    SELECT a.id, a.occurred_at, a.account_id
    FROM activities a CROSS JOIN args
    WHERE a.deleted_at IS NULL AND a.activity_type IN ('meeting', 'calendar_event')
        AND a.occurred_at >= CAST(args.start_date AS TIMESTAMPTZ)
        AND a.occurred_at < CAST(args.end_date + 1 AS TIMESTAMPTZ)
),
people AS (
    SELECT ap.activity_id, ap.account_id, ap.contact_id
    FROM activity_participants ap JOIN meetings m ON m.id = ap.activity_id
    WHERE ap.deleted_at IS NULL AND (ap.account_id IS NOT NULL OR ap.contact_id IS NOT NULL)
),
meeting_accounts AS (
    SELECT m.id AS meeting_id, m.account_id FROM meetings m WHERE m.account_id IS NOT NULL
    UNION
    SELECT pe.activity_id, pe.account_id FROM people pe WHERE pe.account_id IS NOT NULL
)
SELECT acc.name AS account, count(DISTINCT ma.meeting_id) AS meetings,
    count(DISTINCT pe.contact_id) AS contacts_met, max(m.occurred_at) AS last_meeting_at
FROM meeting_accounts ma
JOIN meetings m ON m.id = ma.meeting_id
JOIN accounts acc ON acc.id = ma.account_id AND acc.deleted_at IS NULL
LEFT JOIN people pe ON pe.activity_id = ma.meeting_id AND pe.contact_id IS NOT NULL
CROSS JOIN args
GROUP BY acc.id, acc.name, args.min_meetings
HAVING count(DISTINCT ma.meeting_id) >= args.min_meetings
ORDER BY meetings DESC, last_meeting_at DESC, account"""

WINDOWS: list[dict[str, Any]] = [
    {},  # the last 90 days
    {"start_date": "2026-10-30", "end_date": "2026-10-30"},  # one day
    {"start_date": "2026-10-01", "end_date": "2026-10-31", "min_meetings": 2},
    {"start_date": "2020-01-01", "end_date": "2027-12-31"},
    {"start_date": "2020-01-01", "end_date": "2027-12-31", "min_meetings": 3},
]


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A time on day ``day`` of October 2026 (UTC); 31 is the last before TODAY."""
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


class Rows:
    """One organization's rows, written with the store's own upsert."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, table: str, key: str, **values: Any) -> uuid.UUID:
        row_id = record_id(self.org, SYSTEM, table, key)
        self.rows[table].append(
            {
                "id": row_id,
                "organization_id": self.org,
                "source_system": SYSTEM,
                "source_id": key,
                "deleted_at": None,
                "raw": {},
                **values,
            }
        )
        return row_id

    def meeting(self, key: str, when: datetime | None, **values: Any) -> uuid.UUID:
        values.setdefault("activity_type", "meeting")
        return self.add("activities", key, occurred_at=when, **values)

    def person(self, meeting: uuid.UUID, key: str, **values: Any) -> uuid.UUID:
        values.setdefault("is_internal", False)
        return self.add("activity_participants", key, activity_id=meeting, **values)

    def write(self, db: Database) -> None:
        with db.begin() as conn:
            for table in ("accounts", "contacts", "activities", "activity_participants"):
                upsert(conn, table, self.rows[table])


def build(db: Database) -> dict[str, uuid.UUID]:
    """Meetings of every shape the query distinguishes, in two organizations; refreshed."""
    ids: dict[str, uuid.UUID] = {}
    for org in (ORG, OTHER_ORG):
        r = Rows(org)
        acme = r.add("accounts", "acme", name="Acme")
        globex = r.add("accounts", "globex", name="Globex")
        gone = r.add("accounts", "gone", name="Gone Inc", deleted_at=at(1))
        twin = r.add("accounts", "twin", name="Acme")  # same name, another account
        ann, bob, cy, dee = (r.add("contacts", k, email=f"{k}@x.example") for k in "abcd")
        # Linked to Acme; a contact of Acme, one resolved to Globex, an internal rep.
        m1 = r.meeting("m1", at(30, 9), account_id=acme)
        r.person(m1, "m1-ann", contact_id=ann, account_id=acme)
        r.person(m1, "m1-bob", contact_id=bob, account_id=globex)
        r.person(m1, "m1-rep", is_internal=True)
        # A calendar event linked to nothing: counts for its people's account only.
        m2 = r.meeting("m2", at(30, 15), activity_type="calendar_event")
        r.person(m2, "m2-cy", contact_id=cy, account_id=globex)
        r.person(m2, "m2-cy-again", contact_id=cy, account_id=globex)  # the same contact twice
        # No people: counts for Acme, no contact met.
        m3 = r.meeting("m3", at(2), account_id=acme)
        # A contact with no account, on a meeting linked to the twin.
        m4 = r.meeting("m4", at(10), account_id=twin)
        r.person(m4, "m4-dee", contact_id=dee)
        # An internal person resolved to an account and a contact counts like anyone.
        m5 = r.meeting("m5", at(10, 18), activity_type="calendar_event")
        r.person(m5, "m5-rep", is_internal=True, contact_id=ann, account_id=acme)
        # Left out: deleted, undated, not a meeting, a deleted person; a deleted account's.
        r.meeting("deleted", at(20), account_id=acme, deleted_at=at(21))
        r.meeting("undated", None, account_id=acme)
        r.add("activities", "email", activity_type="email", occurred_at=at(5), account_id=acme)
        m6 = r.meeting("m6", at(31, 23, 59), account_id=globex)
        r.person(m6, "m6-gone", contact_id=bob, account_id=globex, deleted_at=at(31))
        r.meeting("m7", at(3), account_id=gone)
        # A year ago, and one at midnight on the last day of a window.
        r.meeting("old", datetime(2025, 10, 2, tzinfo=UTC), account_id=globex)
        m8 = r.meeting("m8", datetime(2026, 10, 30, 0, 0, tzinfo=UTC), account_id=twin)
        r.person(m8, "m8-ann", contact_id=ann)
        r.write(db)
        if org == ORG:
            ids.update(m1=m1, m2=m2, m3=m3, m4=m4, acme=acme, globex=globex, bob=bob, cy=cy)
    with db.begin() as conn:
        for org in (ORG, OTHER_ORG):
            refresh_meeting_accounts(conn, org)
    return ids


def rows(db: Database) -> set[tuple[Any, ...]]:
    """Every row's values (not its id), as text."""
    listed = ", ".join(f"CAST({c} AS TEXT)" for c in ("organization_id", *COLUMNS))
    with db.connect() as conn:
        return {tuple(r) for r in conn.execute(text(f"SELECT {listed} FROM {TABLE}"))}


def answer(db: Database, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    bound = resolve_params("meetings_by_account", params, today=TODAY)
    result = run_guarded(db, sql, org=ORG, params=bound, max_rows=1000, timeout=60)
    frame = result.frame.astype(object).where(result.frame.notna(), None)
    return [tuple(row) for row in frame.itertuples(index=False)]


def assert_same_answers(db: Database) -> None:
    query = VERIFIED_QUERIES["meetings_by_account"].sql
    for params in WINDOWS:
        former = answer(db, FORMER_SQL, params)
        # Two accounts both named Acme may tie on every sort key: compare as multisets.
        assert sorted(map(repr, answer(db, query, params))) == sorted(map(repr, former)), params
        assert [r[1:] for r in answer(db, query, params)] == [r[1:] for r in former], params


def test_the_rollup_answers_as_the_former_sql(db: Database) -> None:
    build(db)
    assert_same_answers(db)
    everything = answer(db, VERIFIED_QUERIES["meetings_by_account"].sql, WINDOWS[3])
    # Acme: m1, m3, m5; Globex: m1, m2, m6, old; the twin: m4, m8. Gone Inc is deleted.
    # Contacts met are a meeting's, whichever account they resolve to (Ann and Bob on m1).
    assert sorted((r[0], r[1], r[2]) for r in everything) == [
        ("Acme", 2, 2),
        ("Acme", 3, 2),
        ("Globex", 4, 3),
    ]


def test_a_refresh_writes_only_the_changes_and_equals_a_rebuild(db: Database) -> None:
    ids = build(db)
    before = rows(db)
    assert {r[0] for r in before} == {ORG, OTHER_ORG}
    with db.begin() as conn:
        # m1 moves a day later; m2's person is resolved to Acme instead; m3 gets a person;
        # m4 is deleted.
        conn.execute(
            text("UPDATE activities SET occurred_at = :when WHERE id = :id"),
            {"when": at(31, 9), "id": ids["m1"]},
        )
        conn.execute(
            text("UPDATE activity_participants SET account_id = :acme WHERE activity_id = :m2"),
            {"acme": ids["acme"], "m2": ids["m2"]},
        )
        conn.execute(text("UPDATE activities SET deleted_at = :now WHERE id = :id"),
                     {"now": at(31), "id": ids["m4"]})  # fmt: skip
        r = Rows(ORG)
        r.person(ids["m3"], "m3-cy", contact_id=ids["cy"])
        upsert(conn, "activity_participants", r.rows["activity_participants"])
        report = refresh_meeting_accounts(conn, ORG)
    after = rows(db)
    changed = before ^ after
    meetings = {row[1] for row in changed}
    assert meetings == {str(ids[m]) for m in ("m1", "m2", "m3", "m4")}
    assert report.written == len(changed)
    assert report.derived == len([row for row in after if row[0] == ORG])
    assert_same_answers(db)

    with db.begin() as conn:  # nothing changed since: nothing written
        assert refresh_meeting_accounts(conn, ORG).written == 0
        conn.execute(text(f"DELETE FROM {TABLE}"))
        rebuilt = meeting_accounts.rebuild_all(conn)
    assert rows(db) == after
    assert rebuilt == len(after)


def _run(changed: bool) -> SimpleNamespace:
    """A sync's result as ``refresh_after_sync`` reads it: rows written, or nothing."""
    counts = RunCounts(upserted=3 if changed else 0)
    return SimpleNamespace(counts=counts, resolution=ResolveReport(0, ()))


def test_the_sync_skips_a_run_that_changed_nothing_unless_a_refresh_failed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = build(db)
    with db.begin() as conn:
        conn.execute(text("UPDATE activities SET deleted_at = :now WHERE id = :id"),
                     {"now": at(31), "id": ids["m3"]})  # fmt: skip
    report = refresh_after_sync(db, ORG, run=_run(changed=False))
    assert report is not None and report.derived == 0  # skipped: the run wrote nothing

    def broken(conn: Any, org: str) -> None:
        raise RuntimeError("the refresh broke")

    monkeypatch.setattr(meeting_accounts, "refresh_meeting_accounts", broken)
    assert refresh_after_sync(db, ORG, run=_run(changed=True)) is None
    with db.connect() as conn:
        assert is_stale(conn, ORG)
    query = VERIFIED_QUERIES["meetings_by_account"].sql
    # The rows as the last refresh left them (m3 still counted); the marker is in no window.
    assert ("Acme", 3, 2) in [r[:3] for r in answer(db, query, WINDOWS[3])]
    monkeypatch.undo()

    report = refresh_after_sync(db, ORG, run=_run(changed=False))  # stale: refreshed anyway
    assert report is not None and report.written > 0
    with db.connect() as conn:
        assert not is_stale(conn, ORG)
    assert ("Acme", 3, 2) not in [r[:3] for r in answer(db, query, WINDOWS[3])]
    assert_same_answers(db)


def test_db_upgrade_builds_the_table_for_a_store_that_predates_it(db: Database) -> None:
    build(db)
    expected = rows(db)
    with db.begin() as conn:
        conn.execute(text(f"DROP TABLE {TABLE}"))
    report = upgrade(db)
    assert TABLE in report.created_tables
    assert rows(db) == expected


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_two_refreshes_of_one_organization_take_turns(db: Database) -> None:
    """Syncs of two providers of one organization refresh one after the other: side by side,
    each would insert the rows it found missing, the other's too (duplicates)."""
    build(db)
    expected = rows(db)
    with db.begin() as conn:
        conn.execute(text(f"DELETE FROM {TABLE} WHERE organization_id = :org"), {"org": ORG})
    done: list[int] = []
    with db.begin() as first:
        assert refresh_meeting_accounts(first, ORG).inserted > 0  # uncommitted till the block ends

        def second() -> None:
            with db.begin() as conn:
                done.append(refresh_meeting_accounts(conn, ORG).inserted)

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive() and not done, "the second refresh did not wait for the first"
    thread.join(60)
    assert done == [0]  # it saw the first one's rows: nothing left to insert
    with db.connect() as conn:
        stored = conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
    assert rows(db) == expected and stored == len(expected)
