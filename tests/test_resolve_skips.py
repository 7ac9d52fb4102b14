"""A resolution sends only the statements its scope needs (``resolve._resolve_in_scope``): a
small sync's resolution is mostly statements' fixed costs, so a step whose scope is empty is
not run. Counted on the statements sent to the driver; each case ends where a full resolution
of the same data ends (both backends)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import statements_of
from sqlalchemy import text

from revtops_kernel import resolve
from revtops_kernel.ids import record_id
from revtops_kernel.resolve import ResolveReport, resolve_identities
from revtops_kernel.store import Database
from revtops_kernel.store.upsert import upsert

ORG = "northwind"
T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
REP, BUYER = "rep@northwind.example", "buyer@acme.example"
ACME = record_id(ORG, "hubspot", "accounts", "acme")
EVENT = record_id(ORG, "google_calendar", "activities", "e1")
RESOLVED = (
    "SELECT 'p', id, contact_id, account_id, owner_id, is_internal, deleted_at, NULL "
    "FROM activity_participants WHERE organization_id = :org UNION ALL "
    "SELECT 'a', id, contact_id, account_id, owner_id, NULL, NULL, deal_id "
    "FROM activities WHERE organization_id = :org"
)
# Statements of the participants' and activities' steps, by what they write or fill.
PARTICIPANT_STEPS = ("INSERT INTO _resolve_participants", "UPDATE activity_participants SET")
ACTIVITY_STEPS = ("INSERT INTO _resolve_activities", "INSERT INTO _resolve_live")
LINK_STEPS = ("INSERT INTO _resolve_links", "UPDATE _resolve_links", "UPDATE activities SET o")


def _row(source_id: str, system: str = "hubspot", **values: Any) -> dict[str, Any]:
    base = {"organization_id": ORG, "source_system": system, "source_id": source_id}
    return {**base, "updated_at": T0 - timedelta(days=90), **values}


def _attendee(source_id: str, email: str, updated_at: datetime) -> dict[str, Any]:
    return _row(
        source_id,
        "google_calendar",
        activity_id=EVENT,
        email=email,
        role="attendee",
        updated_at=updated_at,
    )


def _company(db: Database) -> None:
    """A rep, Acme with a contact and an open deal, and a meeting of the two; resolved."""
    with db.begin() as conn:
        upsert(conn, "owners", [_row("rep", email=REP)])
        upsert(conn, "accounts", [_row("acme", name="Acme", domain="acme.example")])
        upsert(conn, "contacts", [_row("buyer", email=BUYER, account_id=ACME)])
        deal = _row("d1", name="Acme renewal", account_id=ACME, is_closed=False)
        upsert(conn, "deals", [{**deal, "created_at": T0 - timedelta(days=60)}])
        meeting = _row(
            "e1", "google_calendar", id=EVENT, activity_type="calendar_event", occurred_at=T0
        )
        upsert(conn, "activities", [{**meeting, "updated_at": T0}])
        upsert(
            conn,
            "activity_participants",
            [_attendee("e1:rep", REP, T0), _attendee("e1:buyer", BUYER, T0)],
        )
    assert _resolve(db).full


def _resolve(db: Database, *, full: bool = False) -> ResolveReport:
    with db.begin() as conn:
        return resolve_identities(conn, ORG, full=full)


def _statements_of(db: Database, run: Callable[[Database], object]) -> list[str]:
    """The statements sent, each on one line (the steps below are matched as substrings)."""
    return [" ".join(statement.split()) for statement in statements_of(db, run)]


def _sent(statements: list[str], steps: tuple[str, ...]) -> list[str]:
    return [s for s in statements if any(part in s for part in steps)]


def _resolved(db: Database) -> set[tuple[Any, ...]]:
    with db.connect() as conn:
        return {tuple(row) for row in conn.execute(text(RESOLVED), {"org": ORG})}


def _a_full_resolution_changes_nothing(db: Database) -> None:
    before = _resolved(db)
    report = _resolve(db, full=True)
    assert report.rows_updated == 0, report
    assert _resolved(db) == before


def test_nothing_written_sends_no_scope_statement(db: Database) -> None:
    _company(db)
    statements = _statements_of(db, _resolve)
    assert not [s for s in statements if "_resolve_" in s], statements
    # The lock (PostgreSQL) and one statement that finds nothing marked; no write (the last
    # resolution's record stands).
    assert len(statements) == (1 if db.is_duckdb else 2), statements
    assert not [s for s in statements if "identity_resolutions (" in s]


def test_a_contact_no_participant_has_runs_no_participant_or_activity_step(db: Database) -> None:
    _company(db)
    with db.begin() as conn:
        upsert(conn, "contacts", [_row("nobody", email="nobody@elsewhere.example")])
    reports: list[ResolveReport] = []
    statements = _statements_of(db, lambda d: reports.append(_resolve(d)))
    report = reports[0]
    assert (report.written_rows, report.participants_examined, report.activities_examined) == (
        1,
        0,
        0,
    )
    # The affected participants are looked for (none), and nothing is run over none of them.
    assert _sent(statements, PARTICIPANT_STEPS) == [
        s for s in statements if s.startswith("INSERT INTO _resolve_participants")
    ]
    assert len(_sent(statements, PARTICIPANT_STEPS)) == 1
    assert not _sent(statements, ACTIVITY_STEPS + LINK_STEPS), statements
    assert not [s for s in statements if s.startswith("SELECT DISTINCT domain")]
    _a_full_resolution_changes_nothing(db)


def test_a_deal_written_runs_the_meetings_steps_only(db: Database) -> None:
    """A deal's write reaches its account's meetings (rule 5), not any participant."""
    _company(db)
    with db.begin() as conn:
        newer = _row("d2", name="Acme expansion", account_id=ACME, is_closed=False)
        upsert(conn, "deals", [{**newer, "created_at": T0 - timedelta(days=1)}])
    reports: list[ResolveReport] = []
    statements = _statements_of(db, lambda d: reports.append(_resolve(d)))
    report = reports[0]
    assert not _sent(statements, PARTICIPANT_STEPS + ACTIVITY_STEPS), statements
    assert (report.meetings_examined, report.meetings_updated) == (1, 1)
    # Only the scope tables those steps use are created: the written rows' and the links'.
    created = [c.split()[0] for s in statements for c in s.split("CREATE TEMPORARY TABLE ")[1:]]
    assert created == ["_resolve_written", "_resolve_links"], statements
    with db.connect() as conn:
        deal = conn.execute(text("SELECT deal_id FROM activities WHERE id = :e"), {"e": EVENT})
        assert deal.scalar_one() == record_id(ORG, "hubspot", "deals", "d2")
    _a_full_resolution_changes_nothing(db)


def test_a_new_attendee_is_resolved_with_its_meeting(db: Database) -> None:
    """A participant written alone (no activity, no CRM row): its step, its activity's links."""
    _company(db)
    other = "other@acme.example"
    with db.begin() as conn:
        upsert(conn, "activity_participants", [_attendee("e1:other", other, T0)])
    report = _resolve(db)
    assert (report.participants_examined, report.participants_updated) == (1, 1)
    assert report.activities_examined == 1
    with db.connect() as conn:
        account = conn.execute(
            text("SELECT account_id FROM activity_participants WHERE email = :e"), {"e": other}
        ).scalar_one()
    assert account == ACME  # by its domain
    _a_full_resolution_changes_nothing(db)


def test_an_unchanged_rewrite_sends_no_activity_update(db: Database) -> None:
    """A meeting written again as it was: its links are worked out and found unchanged, and no
    UPDATE of activities is sent for it (its mark is cleared all the same)."""
    _company(db)
    with db.begin() as conn:
        meeting = _row(
            "e1", "google_calendar", id=EVENT, activity_type="calendar_event", occurred_at=T0
        )
        upsert(conn, "activities", [{**meeting, "updated_at": T0, "subject": "Renewal call"}])
    reports: list[ResolveReport] = []
    statements = _statements_of(db, lambda d: reports.append(_resolve(d)))
    report = reports[0]
    assert (report.activities_examined, report.activities_updated, report.meetings_updated) == (
        1,
        0,
        0,
    )
    assert not [s for s in statements if s.startswith("UPDATE activities SET owner_id")]
    with db.connect() as conn:
        marked = conn.execute(text("SELECT count(*) FROM activities WHERE resolution_pending"))
        assert marked.scalar_one() == 0
    _a_full_resolution_changes_nothing(db)


def test_the_affected_participants_one_scan_finds_what_the_union_finds(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small CRM write finds the participants it affects in one scan (hashed sets of the
    written rows); a large one through the union of index-friendly branches. Both reach the
    same participants and write the same links: a contact whose email changed (its old
    participants let go, by contact_id), a new contact with an attendee's email, an account
    whose domain an attendee has."""
    _company(db)
    with db.begin() as conn:
        upsert(
            conn,
            "activity_participants",
            [
                _attendee("e1:new", "new@acme.example", T0),
                _attendee("e1:beta", "ceo@beta.example", T0),
            ],
        )
    _resolve(db)
    with db.begin() as conn:
        upsert(conn, "contacts", [_row("buyer", email="buyer@acme-corp.example", account_id=ACME)])
        upsert(conn, "contacts", [_row("new", email="new@acme.example", account_id=ACME)])
        upsert(conn, "accounts", [_row("beta", name="Beta", domain="beta.example")])

    def resolved_with(one_scan_max: int) -> tuple[tuple[Any, ...], set[tuple[Any, ...]], list[str]]:
        monkeypatch.setattr(resolve, "AFFECTED_ONE_SCAN_MAX", one_scan_max)
        reports: list[ResolveReport] = []
        rows: set[tuple[Any, ...]] = set()

        def run(d: Database) -> None:
            with d.connect() as conn:
                conn.begin()
                reports.append(resolve_identities(conn, ORG))
                rows.update(tuple(r) for r in conn.execute(text(RESOLVED), {"org": ORG}))
                conn.rollback()  # the next form starts from the same marks

        statements = _statements_of(db, run)
        r = reports[0]
        essence = (r.participants_examined, r.participants_updated, r.activities_updated)
        return essence, rows, [s for s in statements if "INSERT INTO _resolve_participants" in s]

    one_scan = resolved_with(resolve.AFFECTED_ONE_SCAN_MAX)
    union = resolved_with(0)
    assert any("OR split_part" in s for s in one_scan[2])
    assert not any("OR split_part" in s for s in union[2])
    assert one_scan[:2] == union[:2]
    # The old buyer row let go of, the new contact's and Beta's attendees matched.
    assert one_scan[0][0] == 3 and one_scan[0][1] == 3
    assert _resolve(db).participants_updated == 3
    _a_full_resolution_changes_nothing(db)
