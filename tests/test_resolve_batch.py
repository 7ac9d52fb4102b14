"""Resolution in the batch (``resolve.resolve_batch``, PostgreSQL): what a sync's batches know
of the activities they wrote stands in for asking the store, and rows that come in a batch in
two versions are settled as the upsert collapses them. Each scenario ends where a full
resolution of the same data ends. Hand-made Calendar events through the real normalizer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from revtops_kernel import resolve
from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import NormalizeContext
from revtops_kernel.normalize.google_calendar import normalize_event
from revtops_kernel.resolve import BatchLookups, resolve_batch, resolve_identities
from revtops_kernel.store import Database
from revtops_kernel.store.locks import resolution_shared
from revtops_kernel.store.upsert import upsert

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("db", ["postgresql"], indirect=True),  # batches resolve there only
]

ORG = "northwind"
CTX = NormalizeContext(ORG, "google_calendar")
T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
REP, BUYER, OTHER = "rep@northwind.example", "buyer@acme.example", "other@acme.example"
# The probe of stored activities that the batches' own knowledge replaces.
PROBE = "SELECT id, updated_at FROM activities"
RESOLVED = (
    "SELECT 'p', id, contact_id, account_id, owner_id, is_internal, deleted_at, NULL "
    "FROM activity_participants WHERE organization_id = :org UNION ALL "
    "SELECT 'a', id, contact_id, account_id, owner_id, NULL, NULL, deal_id "
    "FROM activities WHERE organization_id = :org"
)


def crm(db: Database) -> None:
    """A rep (owner), Acme (account, domain acme.example) with a contact and an open deal;
    resolved once, so that no mark is left."""

    def row(table: str, source_id: str, **values: Any) -> dict[str, Any]:
        base = {"organization_id": ORG, "source_system": "hubspot", "source_id": source_id}
        return {**base, "updated_at": T0 - timedelta(days=90), **values}

    acme = record_id(ORG, "hubspot", "accounts", "acme")
    with db.begin() as conn:
        upsert(conn, "owners", [row("owners", "rep", email=REP)])
        upsert(conn, "accounts", [row("accounts", "acme", name="Acme", domain="acme.example")])
        upsert(conn, "contacts", [row("contacts", "buyer", email=BUYER, account_id=acme)])
        deal = row("deals", "d1", name="Acme renewal", account_id=acme, is_closed=False)
        upsert(conn, "deals", [{**deal, "created_at": T0 - timedelta(days=60)}])
        resolve_identities(conn, ORG)
        conn.execute(text("ANALYZE contacts, accounts"))  # estimates resolve.READ_ALL_SHARE reads


def event_rows(event_id: str, updated: datetime, *emails: str) -> dict[str, list[Any]]:
    """One Calendar event on one calendar, normalized: its activity and participants."""
    payload = {
        "id": event_id,
        "status": "confirmed",
        "summary": "Sync",
        "start": {"dateTime": (T0 + timedelta(days=1)).isoformat()},
        "end": {"dateTime": (T0 + timedelta(days=1, hours=1)).isoformat()},
        "created": (T0 - timedelta(days=3)).isoformat(),
        "updated": updated.isoformat(),
        "organizer": {"email": REP},
        "attendees": [{"email": email} for email in emails],
    }
    return normalize_event({"event": payload, "calendar": {"id": REP}}, CTX)


def batch_of(*events: dict[str, list[Any]]) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {"activities": [], "activity_participants": []}
    for one in events:
        for table, table_rows in one.items():
            rows[table].extend(table_rows)
    return rows


def pending_of(rows: dict[str, list[Any]], event_id: str) -> bool:
    """The mark resolve_batch gave the event's activity (every copy gets the same)."""
    marks = {a["resolution_pending"] for a in rows["activities"] if a["source_id"] == event_id}
    assert len(marks) == 1, marks
    return marks.pop()


def write_batches(
    db: Database, batches: list[dict[str, list[Any]]], *, kept: bool = True
) -> list[str]:
    """resolve_batch and upsert each batch in its transaction, as a sync does (lookups kept
    across them under the shared lock when ``kept``); the SQL statements sent."""

    def run() -> None:
        with resolution_shared(db, ORG) as pid:
            lookups = BatchLookups(ORG, pid) if kept else None
            for rows in batches:
                with db.begin() as conn:
                    resolve_batch(conn, ORG, rows, {}, lookups)
                    for table, table_rows in rows.items():
                        upsert(conn, table, table_rows)

    return statements_of(db, run)


def statements_of(db: Database, run: Callable[[], object]) -> list[str]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return sent


def resolved(db: Database) -> set[tuple[Any, ...]]:
    with db.connect() as conn:
        return {tuple(row) for row in conn.execute(text(RESOLVED), {"org": ORG})}


def assert_full_resolution_agrees(db: Database) -> None:
    """The resolution after the sync, then a full one: the full one changes nothing."""
    with db.begin() as conn:
        resolve_identities(conn, ORG)
    after_sync = resolved(db)
    with db.begin() as conn:
        report = resolve_identities(conn, ORG, full=True)
    assert report.rows_updated == 0, report
    assert resolved(db) == after_sync


@pytest.fixture
def store(db: Database) -> Iterator[Database]:
    crm(db)
    yield db


@pytest.mark.parametrize("read_all", [False, True], ids=["keys-looked-up", "all-read"])
def test_a_first_load_knows_what_its_batches_wrote(
    store: Database, read_all: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No activity of the provider in the store: no batch asks it about one, yet an event that
    lost an attendee, or comes again in an older version, is left to the resolution. The same
    whether the batches look up their emails or read every contact at once."""
    share = 0.0 if read_all else float("inf")
    monkeypatch.setattr(resolve, "READ_ALL_SHARE", share)
    monkeypatch.setattr(resolve, "READ_ALL_FIRST_LOAD_SHARE", share)  # a first load's batches
    t0, t1, t2 = T0 - timedelta(hours=1), T0, T0 + timedelta(hours=2)
    first = batch_of(event_rows("e1", t1, BUYER, OTHER), event_rows("e2", t1, BUYER))
    # e1 again from a second calendar, the same version; e3 new.
    second = batch_of(event_rows("e1", t1, BUYER, OTHER), event_rows("e3", t1, OTHER))
    third = batch_of(event_rows("e1", t2, BUYER))  # a newer version: OTHER was removed
    fourth = batch_of(event_rows("e2", t0, BUYER))  # a calendar behind: older than stored
    statements = write_batches(store, [first, second, third, fourth])
    assert not [s for s in statements if s.startswith(PROBE)], "the store was asked"
    keyed = [s for s in statements if "FROM contacts JOIN unnest" in s]
    assert len(keyed) == (0 if read_all else 1), keyed  # the first batch met every email
    assert (pending_of(first, "e1"), pending_of(first, "e2")) == (False, False)
    assert (pending_of(second, "e1"), pending_of(second, "e3")) == (False, False)
    assert pending_of(third, "e1") is True  # a live participant the batch lacks
    assert pending_of(fourth, "e2") is True  # stored newer
    with store.connect() as conn:
        deal = conn.execute(text("SELECT deal_id FROM activities WHERE source_id = 'e2'"))
        assert deal.scalar_one() == record_id(ORG, "hubspot", "deals", "d1")
    assert_full_resolution_agrees(store)
    with store.connect() as conn:
        stale = conn.execute(
            text("SELECT deleted_at FROM activity_participants WHERE source_id = :s"),
            {"s": f"e1:{OTHER}"},
        ).scalar_one()
    assert stale == t2  # rule 1 after the sync: OTHER left e1


def test_a_first_loads_batches_read_every_row_at_their_own_share(
    store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider's first load reads every contact, owner, account and deal once its batch's
    new keys reach ``READ_ALL_FIRST_LOAD_SHARE`` (its batches go on to meet most of them;
    looked up batch by batch, scale 10's cost 20 s of waits on a fresh store); a later sync's
    batches keep looking up their keys below ``READ_ALL_SHARE``. The same links either way."""
    monkeypatch.setattr(resolve, "READ_ALL_SHARE", float("inf"))
    monkeypatch.setattr(resolve, "READ_ALL_FIRST_LOAD_SHARE", 0.0)
    first = write_batches(store, [batch_of(event_rows("e1", T0, BUYER, OTHER, REP))])
    assert not [s for s in first if "FROM contacts JOIN unnest" in s], first
    assert [s for s in first if "array_agg(lower(email))" in s], first  # every contact read
    later = write_batches(store, [batch_of(event_rows("e2", T0, BUYER))])
    assert [s for s in later if "FROM contacts JOIN unnest" in s], later
    assert_full_resolution_agrees(store)


def test_two_versions_in_one_batch_and_a_store_that_held_events(store: Database) -> None:
    """Within a batch: identical copies are settled, a newer copy that drops an attendee is
    not. Across syncs: events a previous sync wrote are read from the store."""
    t1, t2 = T0, T0 + timedelta(hours=2)
    batch = batch_of(
        event_rows("e1", t1, BUYER),
        event_rows("e1", t1, BUYER),  # the same event on a second calendar
        event_rows("e2", t2, BUYER),  # newer first: the upsert keeps it whatever the order
        event_rows("e2", t1, BUYER, OTHER),
    )
    write_batches(store, [batch])
    assert (pending_of(batch, "e1"), pending_of(batch, "e2")) == (False, True)
    assert_full_resolution_agrees(store)

    # A later sync: e1 is in the store with BUYER; a newer version without them is settled in
    # the batch, which makes BUYER's stored row stale itself (rule 1: older than the version).
    later = batch_of(event_rows("e1", t2), event_rows("e4", t2, OTHER))
    statements = write_batches(store, [later])
    assert [s for s in statements if s.startswith(PROBE)], "the store must be asked"
    assert (pending_of(later, "e1"), pending_of(later, "e4")) == (False, False)
    assert [s for s in statements if s.startswith("UPDATE activity_participants SET deleted_at")]
    with store.connect() as conn:
        stale = conn.execute(
            text("SELECT deleted_at FROM activity_participants WHERE source_id = :s"),
            {"s": f"e1:{BUYER}"},
        ).scalar_one()
    assert stale == t2
    assert_full_resolution_agrees(store)

    # A version as old as the attendee it drops: rule 1 leaves them live (not older than it),
    # so the batch cannot settle the event alone and leaves it to the resolution after.
    write_batches(store, [batch_of(event_rows("e5", t2, BUYER, OTHER))])
    same_time = batch_of(event_rows("e5", t2, OTHER))
    write_batches(store, [same_time])
    assert pending_of(same_time, "e5") is True
    assert_full_resolution_agrees(store)

    # Without kept lookups every batch reads afresh; the marks are the same.
    again = batch_of(event_rows("e4", t2 + timedelta(hours=1), OTHER))
    write_batches(store, [again], kept=False)
    assert pending_of(again, "e4") is False
    assert_full_resolution_agrees(store)


@pytest.mark.parametrize("read_all", [False, True], ids=["keys-looked-up", "all-read"])
def test_ties_are_broken_as_the_full_resolution_breaks_them(
    store: Database, read_all: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event with one attendee at each of two accounts takes the smaller account id, and of
    two deals opened at the same moment on it the smaller deal id: the batch reads ids as text
    and deals in the server's order, and must agree with the full resolution's SQL. The read
    of every contact raises work_mem for itself only."""
    share = 0.0 if read_all else float("inf")
    monkeypatch.setattr(resolve, "READ_ALL_SHARE", share)
    monkeypatch.setattr(resolve, "READ_ALL_FIRST_LOAD_SHARE", share)  # a first load's batches
    acme = record_id(ORG, "hubspot", "accounts", "acme")
    beta = record_id(ORG, "hubspot", "accounts", "beta")
    winner = min(acme, beta)
    opened = T0 - timedelta(days=10)
    base = {"organization_id": ORG, "source_system": "hubspot", "updated_at": opened}
    with store.begin() as conn:
        upsert(conn, "accounts", [{**base, "source_id": "beta", "domain": "beta.example"}])
        upsert(
            conn,
            "contacts",
            [{**base, "source_id": "b1", "email": "b1@beta.example", "account_id": beta}],
        )
        deals = [
            {**base, "source_id": f"tie{n}", "account_id": winner, "is_closed": False}
            for n in range(4)
        ]
        upsert(conn, "deals", [{**d, "created_at": opened} for d in deals])
        resolve_identities(conn, ORG)
    batch = batch_of(event_rows("e1", T0, BUYER, "b1@beta.example"))
    write_batches(store, [batch])
    assert pending_of(batch, "e1") is False
    tied = min(record_id(ORG, "hubspot", "deals", f"tie{n}") for n in range(4))
    with store.connect() as conn:
        links = conn.execute(text("SELECT account_id, deal_id FROM activities")).one()
    assert tuple(links) == (winner, tied)
    assert_full_resolution_agrees(store)

    with store.begin() as conn:
        before = conn.execute(text("SHOW work_mem")).scalar_one()
        again = batch_of(event_rows("e2", T0, "new@beta.example"))
        resolve_batch(conn, ORG, again, {}, None)
        assert conn.execute(text("SHOW work_mem")).scalar_one() == before


@pytest.mark.parametrize("read_all", [False, True], ids=["keys-looked-up", "all-read"])
def test_an_email_or_domain_on_several_rows_takes_the_first_by_precedence_then_id(
    store: Database, read_all: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same email on contacts of two CRMs and twice in one, and a domain on two accounts:
    the batch takes the CRM first in precedence, then the smallest id, as the full resolution's
    SQL ranks them, whether it looked the keys up (ranked by the server) or read every row
    unsorted (ranked in Python)."""
    share = 0.0 if read_all else float("inf")
    monkeypatch.setattr(resolve, "READ_ALL_SHARE", share)
    monkeypatch.setattr(resolve, "READ_ALL_FIRST_LOAD_SHARE", share)  # a first load's batches
    opened = T0 - timedelta(days=10)
    shared, twice = "pat@gamma.example", "lee@delta.example"

    def crm_row(system: str, source_id: str, **values: Any) -> dict[str, Any]:
        base = {"organization_id": ORG, "source_system": system, "source_id": source_id}
        return {**base, "updated_at": opened, **values}

    accounts = {
        (system, name): record_id(ORG, system, "accounts", name)
        for system in ("hubspot", "salesforce")
        for name in ("g1", "g2", "d1", "d2")
    }
    with store.begin() as conn:
        for (system, name), _ in accounts.items():
            domain = "gamma.example" if name.startswith("g") else "delta.example"
            upsert(conn, "accounts", [crm_row(system, name, domain=domain)])
        contacts = [
            crm_row(
                "salesforce",
                "sf-pat",
                email=shared.upper(),
                account_id=accounts["salesforce", "g1"],
            ),
            crm_row("hubspot", "hs-pat", email=shared, account_id=accounts["hubspot", "g2"]),
            crm_row("hubspot", "lee-a", email=twice, account_id=accounts["hubspot", "d1"]),
            crm_row("hubspot", "lee-b", email=twice, account_id=accounts["hubspot", "d2"]),
        ]
        for contact in contacts:
            upsert(conn, "contacts", [contact])
        resolve_identities(conn, ORG)
    batch = batch_of(event_rows("e1", T0, shared, twice, "new@gamma.example"))
    write_batches(store, [batch])
    assert pending_of(batch, "e1") is False
    by_email = {p["email"]: p for p in batch["activity_participants"]}
    pat = record_id(ORG, "hubspot", "contacts", "hs-pat")
    assert str(by_email[shared]["contact_id"]) == str(pat)
    assert str(by_email[shared]["account_id"]) == str(accounts["hubspot", "g2"])
    lee = min(record_id(ORG, "hubspot", "contacts", s) for s in ("lee-a", "lee-b"))
    assert str(by_email[twice]["contact_id"]) == str(lee)
    gamma = min(accounts["hubspot", "g1"], accounts["hubspot", "g2"])  # by domain
    assert str(by_email["new@gamma.example"]["account_id"]) == str(gamma)
    assert_full_resolution_agrees(store)


SET_BY_RESOLUTION = ("contact_id", "account_id", "owner_id", "is_internal", "resolution_pending")


def set_values(rows: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """What resolve_batch set on each row, in batch order."""
    activity_links = ("owner_id", "contact_id", "account_id", "deal_id", "resolution_pending")
    return [tuple(p.get(k) for k in SET_BY_RESOLUTION) for p in rows["activity_participants"]] + [
        tuple(a.get(k) for k in activity_links) for a in rows["activities"]
    ]


def test_a_retried_batch_and_rows_without_optional_fields_are_resolved_alike(
    store: Database,
) -> None:
    """resolve_batch reads each row's fields in one pass (``_columns``): rows lacking the fields
    a caller may leave out (role, deleted_at, is_internal) are read as None, like dict.get; a
    batch resolved again (a retry on a fresh connection) gets the same values."""
    crm(store)
    batch = batch_of(event_rows("e1", T0, BUYER, "new@acme.example", "x@gmail.com"))
    sparse = batch_of(event_rows("e1", T0, BUYER, "new@acme.example", "x@gmail.com"))
    for participant in sparse["activity_participants"]:
        for field in ("role", "deleted_at", "is_internal"):
            del participant[field]
    # The rep (organizer) is the only owner: a role read as None changes no link here.
    normalized: dict[int, Any] = {}
    with store.begin() as conn:
        resolve_batch(conn, ORG, batch, normalized, None)
        first = set_values(batch)
        resolve_batch(conn, ORG, batch, normalized, None)  # the retry: same rows again
        assert set_values(batch) == first
        resolve_batch(conn, ORG, sparse, {}, None)
        assert set_values(sparse) == first
    by_email = {p["email"]: p for p in batch["activity_participants"]}
    assert by_email[REP]["is_internal"] is True and by_email[BUYER]["is_internal"] is False
    assert by_email[BUYER]["contact_id"] is not None
    assert by_email["new@acme.example"]["account_id"] is not None
    assert batch["activities"][0]["deal_id"] is not None
