"""Identity resolution is incremental: after a sync it looks at the rows the sync wrote (and
what a written CRM row affects), never the whole organization, and ends where a full
resolution of the same data ends. Real syncs against the sandbox, on both backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import statements_of
from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.resolve import ResolveReport, resolve_batch, resolve_identities
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.locks import lock_resolution
from revtops_kernel.store.upsert import upsert
from revtops_kernel.sync import run_sync
from revtops_kernel.timeutil import utcnow
from revtops_sandbox import SandboxServer

ORG = "northwind"
CRM_STREAMS = ("owners", "pipelines", "companies", "contacts", "deals")
# What a sync writes into a participant or activity (the resolved columns are not among them).
PARTICIPANT_SYNCED = "email, display_name, role, response_status, updated_at, activity_id"
ACTIVITY_SYNCED = "activity_type, subject, occurred_at, status, updated_at, deleted_at"
RESOLVED = (
    "SELECT 'p' AS kind, id, contact_id, account_id, owner_id, is_internal, deleted_at, "
    "NULL AS deal_id FROM activity_participants WHERE organization_id = :org "
    "UNION ALL SELECT 'a', id, contact_id, account_id, owner_id, NULL, NULL, deal_id "
    "FROM activities WHERE organization_id = :org"
)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.02, seed=3) as server:
        yield server


def settings_for(sandbox: SandboxServer, db: Database) -> Settings:
    return load_settings(
        REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        REVTOPS_ORG=ORG,
        REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
        REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        REVTOPS_SLACK_BASE_URL=sandbox.slack_base_url,
        REVTOPS_SLACK_TOKEN=sandbox.token,
        REVTOPS_SLACK_REQUESTS_PER_MINUTE="6000",
        REVTOPS_GOOGLE_CALENDAR_BASE_URL=sandbox.google_calendar_base_url,
        REVTOPS_GOOGLE_CALENDAR_TOKEN=sandbox.token,
    )


def synced_state(db: Database, table: str, columns: str) -> dict[Any, tuple[Any, ...]]:
    with db.connect() as conn:
        rows = conn.execute(
            text(f"SELECT id, {columns} FROM {table} WHERE organization_id = :org"), {"org": ORG}
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def written_between(before: dict[Any, Any], after: dict[Any, Any]) -> set[Any]:
    return {row_id for row_id, values in after.items() if before.get(row_id) != values}


def resolved(db: Database) -> set[tuple[Any, ...]]:
    with db.connect() as conn:
        return {tuple(row) for row in conn.execute(text(RESOLVED), {"org": ORG})}


def resolve(db: Database, *, full: bool = False) -> ResolveReport:
    with db.begin() as conn:
        return resolve_identities(conn, ORG, full=full)


def assert_full_resolution_changes_nothing(db: Database) -> None:
    incremental = resolved(db)
    report = resolve(db, full=True)
    assert report.full
    assert report.rows_updated == 0, report
    assert resolved(db) == incremental


def pending(db: Database) -> int:
    tables = ("owners", "accounts", "contacts", "deals", "activities", "activity_participants")
    with db.connect() as conn:
        return sum(
            int(
                conn.execute(
                    text(f"SELECT count(*) FROM {t} WHERE resolution_pending")
                ).scalar_one()
            )
            for t in tables
        )


@pytest.mark.slow
def test_resolution_after_an_incremental_sync_touches_only_what_it_wrote(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    crm = run_sync(db, settings, "hubspot", streams=CRM_STREAMS)
    assert crm.ok, crm.error
    assert crm.resolution is not None and crm.resolution.full  # never resolved before
    slack = run_sync(db, settings, "slack")
    assert slack.ok, slack.error
    first = run_sync(db, settings, "google_calendar")
    assert first.ok, first.error
    assert first.resolution is not None and not first.resolution.full
    assert pending(db) == 0  # every mark a sync left was seen and cleared
    participants = synced_state(db, "activity_participants", PARTICIPANT_SYNCED)
    activities = synced_state(db, "activities", ACTIVITY_SYNCED)
    calendar_participants = _count(
        db, "SELECT count(*) FROM activity_participants WHERE source_system = 'google_calendar'"
    )
    if db.is_duckdb:  # the first calendar sync's resolution resolved its own rows, not Slack's
        assert first.resolution.participants_examined == calendar_participants
    else:
        # The first calendar sync's batches wrote its rows resolved (resolve.resolve_batch): the
        # resolution after it had none of them to look at, and a full one changes none of them.
        assert first.batch_resolved["activity_participants"] >= calendar_participants
        resolution = first.resolution
        assert (resolution.participants_examined, resolution.activities_examined) == (0, 0)
    assert_full_resolution_changes_nothing(db)

    sandbox.mutate_calendar(moved=4, cancelled=3, new=3, seed=2)
    second = run_sync(db, settings, "google_calendar")
    assert second.ok, second.error
    report = second.resolution
    assert report is not None and not report.full
    new_participants = written_between(
        participants, synced_state(db, "activity_participants", PARTICIPANT_SYNCED)
    )
    new_activities = written_between(activities, synced_state(db, "activities", ACTIVITY_SYNCED))
    assert new_participants and new_activities
    touched_activities = new_activities | {
        row[-1]
        for row_id, row in synced_state(db, "activity_participants", PARTICIPANT_SYNCED).items()
        if row_id in new_participants
    }
    # The sync's batches wrote the participants resolved (DuckDB too: an incremental sync's
    # batches are resolved there as well), and made the stored attendees that moved events no
    # longer have stale themselves (rule 1); what they could not settle was left marked, and
    # the resolution after the sync looked at exactly that. Counts are of rows handed to the
    # upsert: an event on two calendars, or one stored newer, counts without being written.
    batch, left = second.batch_resolved, second.batch_left
    assert batch["activity_participants"] == len(new_participants)
    assert (left["activity_participants"], report.participants_examined) == (0, 0)
    assert batch["activities"] + left["activities"] >= len(touched_activities)
    assert report.activities_examined == report.written_rows <= left["activities"]
    assert second.batch_stale + report.participants_stale > 0
    assert second.batch_stale > 0
    assert_full_resolution_changes_nothing(db)

    # A re-run with nothing new looks at nothing, and runs none of the scope's statements.
    statements = statements_of(db, resolve)
    again = resolve(db)
    assert (again.full, again.participants_examined, again.activities_examined) == (False, 0, 0)
    assert not [s for s in statements if "_resolve_" in s], statements
    assert len(statements) <= 5, statements


@pytest.mark.slow
def test_a_contact_added_later_is_matched_to_old_participants(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    assert run_sync(db, settings, "hubspot", streams=CRM_STREAMS).ok
    assert run_sync(db, settings, "google_calendar").ok
    # An external attendee no contact has, on a company's domain (not a consumer mailbox).
    email, meetings = _unmatched_attendee(db)
    contact_id = record_id(ORG, "hubspot", "contacts", "added-later")
    accounts = "SELECT id, account_id FROM activity_participants WHERE email = :email"
    accounts_before = _rows(db, accounts, email=email)
    activities = _count(
        db,
        "SELECT count(DISTINCT activity_id) FROM activity_participants WHERE email = :email",
        email=email,
    )
    with db.begin() as conn:
        upsert(
            conn,
            "contacts",
            [
                {
                    "organization_id": ORG,
                    "source_system": "hubspot",
                    "source_id": "added-later",
                    "email": email,
                    "full_name": "Added Later",
                    "updated_at": utcnow(),
                }
            ],
        )
    report = resolve(db)
    assert not report.full
    assert report.written_rows == 1
    assert report.participants_examined == meetings  # the attendee's rows, nothing else
    assert report.participants_updated == meetings
    matched = _count(
        db,
        "SELECT count(*) FROM activity_participants WHERE email = :email AND contact_id = :c",
        email=email,
        c=contact_id,
    )
    assert matched == meetings
    assert _rows(db, accounts, email=email) == accounts_before  # by domain: the contact has none
    assert report.activities_examined == activities  # the meetings they attended, no others
    assert_full_resolution_changes_nothing(db)

    # The contact is deleted in the CRM: its old matches are let go, incrementally too.
    with db.begin() as conn:
        upsert(
            conn,
            "contacts",
            [
                {
                    "organization_id": ORG,
                    "source_system": "hubspot",
                    "source_id": "added-later",
                    "email": email,
                    "full_name": "Added Later",
                    "updated_at": utcnow(),
                    "deleted_at": utcnow(),
                }
            ],
        )
    gone = resolve(db)
    assert not gone.full and gone.participants_updated == meetings
    linked = "SELECT count(*) FROM activity_participants WHERE contact_id = :c"
    assert _count(db, linked, c=contact_id) == 0
    assert_full_resolution_changes_nothing(db)


def _unmatched_attendee(db: Database) -> tuple[str, int]:
    with db.connect() as conn:
        row = conn.execute(
            text(
                "SELECT email, count(*) AS n FROM activity_participants "
                "WHERE organization_id = :org AND source_system = 'google_calendar' "
                "AND contact_id IS NULL AND account_id IS NOT NULL AND NOT is_internal "
                "GROUP BY email ORDER BY count(*) DESC, email LIMIT 1"
            ),
            {"org": ORG},
        ).one()
    return str(row.email), int(row.n)


def _rows(db: Database, sql: str, **params: Any) -> set[tuple[Any, ...]]:
    with db.connect() as conn:
        return {tuple(row) for row in conn.execute(text(sql), params)}


def _count(db: Database, sql: str, **params: Any) -> int:
    with db.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


@pytest.mark.slow
def test_a_deal_written_later_takes_over_its_accounts_meetings(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    assert run_sync(db, settings, "hubspot", streams=CRM_STREAMS).ok
    assert run_sync(db, settings, "google_calendar").ok
    # An account whose calendar meetings are linked to a deal gets a newer open deal: by rule 5
    # it takes over (some of) them; the resolution looks at that account's meetings only.
    with db.connect() as conn:
        account_id, meetings, first_at = conn.execute(
            text(
                "SELECT account_id, count(*), min(occurred_at) FROM activities "
                "WHERE organization_id = :org AND source_system = 'google_calendar' "
                "AND deal_id IS NOT NULL AND account_id IS NOT NULL "
                "GROUP BY account_id ORDER BY count(*) DESC, account_id LIMIT 1"
            ),
            {"org": ORG},
        ).one()
        on_account = _count(
            db,
            "SELECT count(*) FROM activities WHERE organization_id = :org "
            "AND activity_type = 'calendar_event' AND account_id = :a",
            org=ORG,
            a=account_id,
        )
    deal_id = record_id(ORG, "hubspot", "deals", "written-later")
    assert meetings > 0
    with db.begin() as conn:
        upsert(
            conn,
            "deals",
            [
                {
                    "organization_id": ORG,
                    "source_system": "hubspot",
                    "source_id": "written-later",
                    "name": "Written later",
                    "account_id": account_id,
                    "is_closed": False,
                    # Open since just before the account's first meeting: the most recently
                    # created open deal at least at that meeting.
                    "created_at": first_at - timedelta(seconds=1),
                    "updated_at": utcnow(),
                }
            ],
        )
    report = resolve(db)
    assert not report.full and report.written_rows == 1
    assert report.participants_examined == 0
    # The account's meetings (and those linked to the deal: none yet), nothing else.
    assert report.meetings_examined == on_account
    assert report.meetings_updated > 0
    taken = _count(db, "SELECT count(*) FROM activities WHERE deal_id = :d", d=deal_id)
    assert taken == report.meetings_updated
    assert_full_resolution_changes_nothing(db)


def test_a_batch_resolved_before_its_write_waits_for_a_running_resolution(db: Database) -> None:
    """A batch reads the CRM rows it resolves against, then commits: a resolution running
    between the two would miss its rows (a contact it just committed, the participants not
    yet there), so the batch takes the resolution lock shared and waits for one in progress."""
    if db.is_duckdb:
        pytest.skip("DuckDB: one writing transaction at a time in a process already")
    activity = {
        "id": record_id(ORG, "google_calendar", "activities", "e1"),
        "organization_id": ORG,
        "source_system": "google_calendar",
        "source_id": "e1",
        "activity_type": "calendar_event",
        "occurred_at": utcnow(),
        "updated_at": utcnow(),
    }
    done = threading.Event()

    def batch() -> None:
        with db.begin() as conn:
            resolve_batch(conn, ORG, {"activities": [activity]})
        done.set()

    with db.engine.connect() as holder:
        holder.begin()
        lock_resolution(holder, ORG)
        worker = threading.Thread(target=batch)
        worker.start()
        assert not done.wait(1.0)  # waits while the resolution holds the lock
        holder.rollback()
    assert done.wait(30)
    worker.join()
    assert activity["resolution_pending"] is False


def _crm_row(source_id: str, **values: Any) -> dict[str, Any]:
    base = {"organization_id": ORG, "source_system": "hubspot", "source_id": source_id}
    return {**base, "updated_at": utcnow(), **values}


def _marked(db: Database, table: str) -> int:
    return _count(db, f"SELECT count(*) FROM {table} WHERE resolution_pending")


def test_crm_rows_written_before_the_first_resolution_are_left_unmarked(db: Database) -> None:
    """On PostgreSQL a CRM load into an organization never resolved writes its rows unmarked:
    the first resolution is a full pass, which reads every row anyway, and clearing the marks
    was most of it after a first load (an UPDATE of each wide row). It resolves as before, and
    rows written after it are marked again. DuckDB marks them all (cheap to clear there)."""
    acme = record_id(ORG, "hubspot", "accounts", "acme")
    event = record_id(ORG, "google_calendar", "activities", "e1")
    buyer = "buyer@acme.example"
    with db.begin() as conn:
        upsert(conn, "owners", [_crm_row("rep", email="rep@northwind.example")])
        upsert(conn, "accounts", [_crm_row("acme", name="Acme", domain="acme.example")])
        upsert(conn, "contacts", [_crm_row("buyer", email=buyer, account_id=acme)])
        activity = {"id": event, "activity_type": "calendar_event", "occurred_at": utcnow()}
        upsert(
            conn, "activities", [{**_crm_row("e1", **activity), "source_system": "google_calendar"}]
        )
        attendee = {"activity_id": event, "email": buyer, "role": "attendee"}
        upsert(
            conn,
            "activity_participants",
            [{**_crm_row("e1:buyer", **attendee), "source_system": "google_calendar"}],
        )
    crm = ("owners", "accounts", "contacts")
    assert [_marked(db, t) for t in crm] == ([1, 1, 1] if db.is_duckdb else [0, 0, 0])
    assert _marked(db, "activity_participants") == 1  # Calendar rows are marked all the same
    report = resolve(db)
    assert report.full
    assert report.participants_updated == 1
    contact = record_id(ORG, "hubspot", "contacts", "buyer")
    linked = "SELECT count(*) FROM activity_participants WHERE contact_id = :c AND account_id = :a"
    assert _count(db, linked, c=contact, a=acme) == 1
    assert pending(db) == 0
    with db.begin() as conn:  # resolved once: a title, which resolution does not read
        upsert(conn, "contacts", [_crm_row("buyer", email=buyer, account_id=acme, title="VP")])
    assert _marked(db, "contacts") == 0
    with db.begin() as conn:  # ... and an email it reads: marked again
        new_email = "Buyer@acme.example"
        upsert(conn, "contacts", [_crm_row("buyer", email=new_email, account_id=acme, title="VP")])
    assert _marked(db, "contacts") == 1
    report = resolve(db)
    assert not report.full and report.written_rows == 1
    assert_full_resolution_changes_nothing(db)


def test_an_unmarked_crm_write_waits_for_a_first_resolution_in_progress(db: Database) -> None:
    """A CRM batch that finds the organization never resolved takes the resolution lock shared
    before it decides to leave its rows unmarked: a first resolution running meanwhile (it
    would not see the batch's rows) ends first, and the batch then marks them."""
    if db.is_duckdb:
        pytest.skip("PostgreSQL only: DuckDB always marks")
    done = threading.Event()

    def batch() -> None:
        with db.begin() as conn:
            upsert(conn, "contacts", [_crm_row("late", email="late@acme.example")])
        done.set()

    with db.engine.connect() as holder:
        holder.begin()
        lock_resolution(holder, ORG)  # a first resolution, about to record itself
        worker = threading.Thread(target=batch)
        worker.start()
        assert not done.wait(1.0)
        holder.execute(
            text(
                "INSERT INTO identity_resolutions (organization_id, own_domains, resolved_at) "
                "VALUES (:org, '', :now)"
            ),
            {"org": ORG, "now": utcnow()},
        )
        holder.commit()
    assert done.wait(30)
    worker.join()
    assert _marked(db, "contacts") == 1


@pytest.mark.slow
def test_an_incremental_slack_sync_is_resolved_in_its_batches(
    db: Database, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first load, a Slack sync's few new messages are resolved in their batches on
    both backends (DuckDB too: a few lookups instead of a resolution's ~17 statements): the
    resolution after the sync finds nothing marked and sends no scope statement. On DuckDB a
    batch above ``resolve.DUCKDB_BATCH_MAX`` participants is left to that resolution instead.
    Either way a full resolution afterwards changes nothing."""
    settings = settings_for(sandbox, db)
    assert run_sync(db, settings, "hubspot", streams=CRM_STREAMS).ok
    first = run_sync(db, settings, "slack")
    assert first.ok, first.error
    if db.is_duckdb:  # a first load on DuckDB: the set-based resolution after the sync
        assert not first.batch_resolved["activity_participants"]
    sandbox.mutate_slack(new_messages=6, late_replies=3, seed=5)
    results: list[Any] = []
    statements = statements_of(db, lambda d: results.append(run_sync(d, settings, "slack")))
    second = results[0]
    assert second.ok, second.error
    assert second.batch_resolved["activity_participants"] > 0
    assert second.batch_left["activity_participants"] == 0
    assert second.resolution is not None and second.resolution.written_rows == 0
    assert not [s for s in statements if "_resolve_" in s]
    assert pending(db) == 0
    assert_full_resolution_changes_nothing(db)
    if not db.is_duckdb:
        return
    monkeypatch.setattr("revtops_kernel.resolve.DUCKDB_BATCH_MAX", 0)
    sandbox.mutate_slack(new_messages=6, late_replies=3, seed=6)
    third = run_sync(db, settings, "slack")
    assert third.ok, third.error
    assert not third.batch_resolved["activity_participants"]
    assert third.resolution is not None and third.resolution.participants_examined > 0
    assert pending(db) == 0
    assert_full_resolution_changes_nothing(db)
    # A long incremental sync (here a commit every 2 records): its first DUCKDB_BATCHES
    # batches are resolved in the batch, the rest left to the resolution after the sync.
    monkeypatch.undo()
    monkeypatch.setattr("revtops_kernel.sync.COMMIT_EVERY_RECORDS", 2)
    monkeypatch.setattr("revtops_kernel.sync.DUCKDB_BATCHES", 1)
    sandbox.mutate_slack(new_messages=6, late_replies=3, seed=7)
    fourth = run_sync(db, settings, "slack")
    assert fourth.ok, fourth.error
    assert fourth.batch_resolved["activity_participants"] > 0
    assert fourth.resolution is not None and fourth.resolution.participants_examined > 0
    assert pending(db) == 0
    assert_full_resolution_changes_nothing(db)
