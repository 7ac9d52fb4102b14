"""The change journal (store.change_journal) and the scoped ``deal_risk_facts`` and
``meeting_accounts`` refreshes it allows: on PostgreSQL, triggers journal the deals, meeting
accounts and meetings a write touches, old values and new, and a refresh derives only those
again. Whatever the writes, the result equals a rebuild from nothing; on DuckDB (no triggers)
every refresh derives everything."""

from __future__ import annotations

import random
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, text

from revtops_kernel.store import Database, change_journal, meeting_accounts, upgrade
from revtops_kernel.store.meeting_accounts import refresh_meeting_accounts
from revtops_kernel.store.risk_facts import _COLUMNS, TABLE, refresh_risk_facts
from tests.intelligence.risk_dataset import ORG, at, build

_ROW = ", ".join(f"CAST({c} AS TEXT)" for c in ("organization_id", *_COLUMNS))


def _facts(conn: Connection) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in conn.execute(text(f"SELECT {_ROW} FROM {TABLE}"))}


def _rebuilt(db: Database) -> set[tuple[Any, ...]]:
    """What a refresh from nothing derives now (rolled back: the store keeps its rows)."""
    with db.connect() as conn:
        transaction = conn.begin()
        conn.execute(text(f"DELETE FROM {TABLE} WHERE organization_id = :org"), {"org": ORG})
        refresh_risk_facts(conn, ORG, full=True)
        rows = _facts(conn)
        transaction.rollback()
    return rows


def _journal(db: Database, which: str = "meeting_id IS NULL") -> int:
    """The organization's entries: deal_risk_facts' (by default), meeting_accounts' or all."""
    with db.connect() as conn:
        return int(
            conn.execute(
                text(
                    f"SELECT count(*) FROM {change_journal.TABLE} "
                    f"WHERE organization_id = :org AND {which}"
                ),
                {"org": ORG},
            ).scalar_one()
        )


def _meetings(conn: Connection) -> set[tuple[Any, ...]]:
    columns = ", ".join(f"CAST({c} AS TEXT)" for c in meeting_accounts.COLUMNS)
    return {
        tuple(r)
        for r in conn.execute(
            text(f"SELECT {columns} FROM {meeting_accounts.TABLE} WHERE organization_id = :org"),
            {"org": ORG},
        )
    }


def _meetings_rebuilt(db: Database) -> set[tuple[Any, ...]]:
    with db.connect() as conn:
        transaction = conn.begin()
        refresh_meeting_accounts(conn, ORG, full=True)
        rows = _meetings(conn)
        transaction.rollback()
    return rows


def _postgres(db: Database) -> bool:
    return db.url.get_backend_name() == "postgresql"


def _refresh(db: Database) -> Any:
    with db.begin() as conn:
        return refresh_risk_facts(conn, ORG)


def _refresh_meetings(db: Database) -> Any:
    with db.begin() as conn:
        return refresh_meeting_accounts(conn, ORG)


def test_an_activity_moved_to_another_deal_refreshes_both(db: Database) -> None:
    """The deal that lost the email is in the scope, though nothing in the store points at it
    any more: the trigger journaled the old row's deal."""
    ids = build(db)
    with db.begin() as conn:
        email = conn.execute(
            text(
                "SELECT id FROM activities WHERE deal_id = :d AND activity_type = 'email' "
                "ORDER BY id LIMIT 1"
            ),
            {"d": ids["healthy"]},
        ).scalar_one()
        conn.execute(
            text("UPDATE activities SET deal_id = :d WHERE id = :id"),
            {"d": ids["ghosted"], "id": email},
        )
    before = _rebuilt(db)
    report = _refresh(db)
    with db.connect() as conn:
        assert _facts(conn) == before
    assert report.written > 0
    if _postgres(db):
        assert report.scope is not None and 2 <= report.scope <= 4  # the two, re-split ones
        assert _journal(db) == 0  # taken
    else:
        assert report.scope is None


def test_writes_that_change_nothing_the_rows_read_journal_nothing(db: Database) -> None:
    """Resolution clearing its marks, a provider stamp moving: no entry, nothing derived."""
    build(db)
    _refresh(db)
    _refresh_meetings(db)
    assert _journal(db, "TRUE") == 0
    with db.begin() as conn:
        conn.execute(text("UPDATE activities SET resolution_pending = NOT resolution_pending"))
        conn.execute(text("UPDATE deals SET updated_at = updated_at + INTERVAL '1 hour'"))
        conn.execute(text("UPDATE activity_participants SET resolution_pending = true"))
    assert _journal(db, "TRUE") == 0
    report, meetings = _refresh(db), _refresh_meetings(db)
    assert report.written == 0 and meetings.written == 0
    if _postgres(db):
        assert report.scope == 0 and meetings.scope == 0


def test_a_later_touch_re_splits_deals_with_scheduled_meetings(db: Database) -> None:
    """A deal's row splits its contact days at the organization's last touch day: a new email
    on one deal, later than a scheduled meeting of another, changes the other's row too."""
    ids = build(db)
    with db.begin() as conn:
        contact = conn.execute(
            text("SELECT id FROM contacts WHERE organization_id = :org ORDER BY id LIMIT 1"),
            {"org": ORG},
        ).scalar_one()
        meeting = _insert_activity(conn, ids["healthy"], "meeting", at(-3))  # 3 days ahead
        _insert_participant(conn, meeting, contact)
    _refresh(db)
    with db.begin() as conn:
        _insert_activity(conn, ids["ghosted"], "email", at(-4), direction="outbound")
    expected = _rebuilt(db)
    report = _refresh(db)
    with db.connect() as conn:
        assert _facts(conn) == expected
        row = conn.execute(
            text(
                f"SELECT past_contact_day, next_contact_day FROM {TABLE} "
                "WHERE kind = 'deal' AND deal_id = :d"
            ),
            {"d": ids["healthy"]},
        ).one()
    assert row.next_contact_day is None and row.past_contact_day == at(-3).date()
    if _postgres(db):
        assert report.scope is not None and report.scope >= 2


# One random write of the kinds a sync and identity resolution make, old rows and new.
_WRITES = (
    "UPDATE activities SET deal_id = :deal WHERE id = :activity",
    "UPDATE activities SET deleted_at = now() WHERE id = :activity",
    "UPDATE activities SET occurred_at = occurred_at + :shift WHERE id = :activity",
    "UPDATE activities SET status = 'cancelled' WHERE id = :activity",
    "UPDATE activities SET account_id = :account, activity_type = 'meeting' WHERE id = :activity",
    "UPDATE activity_participants SET contact_id = :contact WHERE id = :participant",
    "UPDATE activity_participants SET account_id = :account, is_internal = false "
    "WHERE id = :participant",
    "UPDATE activity_participants SET deleted_at = now() WHERE id = :participant",
    "DELETE FROM activity_participants WHERE id = :participant",
    "UPDATE deals SET is_closed = NOT COALESCE(is_closed, false) WHERE id = :deal",
    "UPDATE deals SET account_id = :account WHERE id = :deal",
    "UPDATE deals SET is_won = NOT COALESCE(is_won, false), is_closed = true WHERE id = :deal",
    "UPDATE deal_field_history SET close_date = close_date + 9 WHERE id = :history",
    "UPDATE deal_field_history SET deleted_at = now() WHERE id = :history",
    "DELETE FROM activities WHERE id = :activity",
)


def test_random_writes_then_a_scoped_refresh_equal_a_rebuild(db: Database) -> None:
    build(db)
    _refresh(db)
    _refresh_meetings(db)
    pick = random.Random(20261207)
    scopes: list[int | None] = []
    meeting_scopes: list[int | None] = []
    for round_ in range(24):
        with db.begin() as conn:
            for _ in range(pick.randint(1, 3)):
                _random_write(conn, pick)
            if round_ % 4 == 0:  # a new dated touch now and then: the last touch day moves
                deal = _one(conn, "deals", pick)
                _insert_activity(conn, deal, "call", at(pick.randint(-5, 30)), direction="outbound")
        expected, expected_meetings = _rebuilt(db), _meetings_rebuilt(db)
        report, meetings = _refresh(db), _refresh_meetings(db)
        scopes.append(report.scope)
        meeting_scopes.append(meetings.scope)
        with db.connect() as conn:
            assert _facts(conn) == expected, f"round {round_}"
            assert _meetings(conn) == expected_meetings, f"round {round_}"
    if _postgres(db):
        assert all(s is not None for s in scopes)  # never fell back to every deal
        assert any(s is not None for s in meeting_scopes)  # few meetings: some rounds are 30%
        with db.connect() as conn:
            deals = conn.execute(text("SELECT count(*) FROM deals")).scalar_one()
        assert min(s for s in scopes if s is not None) < deals / 3


def test_new_triggers_make_the_next_refresh_derive_every_deal(db: Database) -> None:
    """Writes before the triggers existed were never journaled: installing them leaves an
    entry per organization that asks for a full refresh; an upgrade with them in place adds
    none."""
    if not _postgres(db):
        pytest.skip("DuckDB has no triggers: every refresh derives every deal")
    ids = build(db)
    _refresh(db)
    with db.begin() as conn:
        for table in change_journal.JOURNALED:
            for op in ("insert", "update", "delete"):
                conn.execute(text(f"DROP TRIGGER revtops_journal_{table}_{op} ON {table}"))
        conn.execute(
            text("UPDATE activities SET deal_id = NULL WHERE deal_id = :d"), {"d": ids["healthy"]}
        )
        assert not change_journal.installed(conn)
    assert _journal(db) == 0  # unseen
    upgrade(db)
    with db.connect() as conn:
        assert change_journal.installed(conn)
    expected = _rebuilt(db)
    report = _refresh(db)
    assert report.scope is None and report.written > 0
    assert _refresh_meetings(db).scope is None  # every meeting, as asked
    with db.connect() as conn:
        assert _facts(conn) == expected
    upgrade(db)
    assert _journal(db, "TRUE") == 0


def _random_write(conn: Connection, pick: random.Random) -> None:
    statement = pick.choice(_WRITES)
    params = {
        "deal": _one(conn, "deals", pick),
        "activity": _one(conn, "activities", pick),
        "participant": _one(conn, "activity_participants", pick),
        "history": _one(conn, "deal_field_history", pick),
        "contact": _one(conn, "contacts", pick),
        "account": _one(conn, "accounts", pick),
        "shift": timedelta(days=pick.randint(-20, 20)),
    }
    used = {k: v for k, v in params.items() if f":{k}" in statement}
    conn.execute(text(statement), used)


def _one(conn: Connection, table: str, pick: random.Random) -> Any:
    count = conn.execute(
        text(f"SELECT count(*) FROM {table} WHERE organization_id = :org"), {"org": ORG}
    ).scalar_one()
    return conn.execute(
        text(f"SELECT id FROM {table} WHERE organization_id = :org ORDER BY id LIMIT 1 OFFSET :n"),
        {"org": ORG, "n": pick.randrange(max(count, 1))},
    ).scalar()


def _insert_activity(
    conn: Connection, deal: Any, kind: str, when: Any, *, direction: str | None = None
) -> uuid.UUID:
    activity = uuid.uuid4()
    conn.execute(
        text(
            "INSERT INTO activities (id, organization_id, source_system, source_id, "
            "activity_type, direction, occurred_at, deal_id, raw, created_at, updated_at) "
            "VALUES (:id, :org, 'hubspot', :source, :kind, :direction, :at, :deal, '{}', :at, "
            ":at)"
        ),
        {
            "id": activity,
            "org": ORG,
            "source": f"t-{activity}",
            "kind": kind,
            "direction": direction,
            "at": when,
            "deal": deal,
        },
    )
    return activity


def _insert_participant(conn: Connection, activity: uuid.UUID, contact: Any) -> None:
    conn.execute(
        text(
            "INSERT INTO activity_participants (id, organization_id, source_system, source_id, "
            "activity_id, contact_id, role, is_internal, raw, created_at, updated_at) "
            "VALUES (:id, :org, 'hubspot', :source, :activity, :contact, 'attendee', false, "
            "'{}', now(), now())"
        ),
        {
            "id": uuid.uuid4(),
            "org": ORG,
            "source": f"p-{activity}",
            "activity": activity,
            "contact": contact,
        },
    )


def test_every_kind_is_compared_by_a_scoped_refresh() -> None:
    """A scoped refresh compares the scope's rows of the per-deal kinds and every row of the
    others: each kind the derivation writes, and the bookkeeping ones, is in one list."""
    from revtops_kernel.store import risk_facts

    derived = set(re.findall(r"'([a-z_]+)' AS kind", risk_facts.DERIVED_SQL))
    assert derived == {"touch", "contact", "deal", "won_stage", "push"}
    per_deal, whole = set(risk_facts._PER_DEAL), set(risk_facts._WHOLE_KINDS)
    assert not per_deal & whole
    assert derived <= per_deal | whole
    listed = risk_facts._stored_in_scope()[0]
    assert all(f"'{k}'" in listed for k in (risk_facts.STALE, *risk_facts.RETIRED_KINDS))


def test_an_organization_with_no_rows_stored_is_derived_in_full(db: Database) -> None:
    """Nothing stored to scope against (rows lost, a table emptied): every deal again."""
    build(db)
    expected = _rebuilt(db)
    with db.begin() as conn:
        conn.execute(text(f"DELETE FROM {TABLE} WHERE organization_id = :org"), {"org": ORG})
    report = _refresh(db)
    assert report.scope is None
    with db.connect() as conn:
        assert _facts(conn) == expected
