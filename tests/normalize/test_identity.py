"""Identity resolution: the pure rules, and the SQL that applies them, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from helpers import row_ids_any_system
from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.normalize.identity import (
    DealFacts,
    account_domain_allowed,
    consumer_domains,
    latest_first,
    mentioned_user_ids,
    open_deal_at,
    own_domains,
)
from revtops_kernel.resolve import resolve_identities
from revtops_kernel.store import Database
from revtops_kernel.store.upsert import upsert

ORG = "northwind"
MEETING_AT = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)


def test_mentions_are_read_in_order_once() -> None:
    text_ = "<@U1> and <@W2|bo> then <@U1> again, not <#C1> or <!here>"
    assert mentioned_user_ids(text_) == ["U1", "W2"]
    assert mentioned_user_ids(None) == []


def test_consumer_and_own_domains_never_resolve_to_accounts() -> None:
    assert consumer_domains(["gmail.com", "acme.example", "yahoo.co.uk", "gmx.de", None]) == [
        "gmail.com",
        "gmx.de",
        "yahoo.co.uk",
    ]
    assert own_domains(["ann@northwind.example", "x@gmail.com", None]) == {"northwind.example"}
    assert account_domain_allowed("acme.example")
    assert not account_domain_allowed("hotmail.fr")
    assert not account_domain_allowed("northwind.example", {"northwind.example"})
    assert not account_domain_allowed(None)


def deal(n: int, created_days: int, closed: bool | None, close: date | None) -> DealFacts:
    return DealFacts(uuid.UUID(int=n), MEETING_AT + timedelta(days=created_days), closed, close)


def test_the_deal_open_at_meeting_time_is_the_latest_created_before_it() -> None:
    later = deal(1, +1, False, None)  # created after the meeting
    closed_before = deal(2, -30, True, date(2026, 11, 1))
    closed_after = deal(3, -20, True, date(2026, 11, 20))  # still open at the meeting
    open_old = deal(4, -40, False, None)
    in_order = latest_first([open_old, closed_after, later, closed_before])
    assert in_order == [later, closed_after, closed_before, open_old]
    assert open_deal_at(MEETING_AT, in_order) == closed_after.id
    assert open_deal_at(MEETING_AT, latest_first([later, closed_before])) is None
    twin = deal(0, -20, False, None)  # same creation time: the smallest id
    assert open_deal_at(MEETING_AT, latest_first([closed_after, twin])) == twin.id
    undated = DealFacts(uuid.UUID(int=5), None, False, None)  # never open at any moment
    assert latest_first([undated, open_old]) == [open_old]


# --- the SQL, on both backends ----------------------------------------------------------------


def row(table: str, system: str, source_id: str, **values: Any) -> dict[str, Any]:
    stamp = datetime(2026, 10, 1, tzinfo=UTC)
    return {
        "id": record_id(ORG, system, table, source_id),
        "organization_id": ORG,
        "source_system": system,
        "source_id": source_id,
        "created_at": stamp,
        "updated_at": stamp,
        "deleted_at": None,
        "raw": None,
        **values,
    }


rid = row_ids_any_system(ORG)


def seed_crm(db: Database) -> None:
    with db.begin() as conn:
        upsert(conn, "owners", [row("owners", "hubspot", "o1", email="ann@northwind.example")])
        upsert(
            conn,
            "accounts",
            [
                row("accounts", "hubspot", "a1", name="Acme", domain="acme.example"),
                row("accounts", "salesforce", "a1sf", name="Acme", domain="acme.example"),
                row("accounts", "hubspot", "a2", name="Globex", domain="globex.example"),
                row("accounts", "hubspot", "a3", name="Gmail Inc", domain="gmail.com"),
            ],
        )
        upsert(
            conn,
            "contacts",
            [
                row(
                    "contacts",
                    "salesforce",
                    "c1sf",
                    email="bo@acme.example",
                    account_id=rid("salesforce", "accounts", "a1sf"),
                ),
                row(
                    "contacts",
                    "hubspot",
                    "c1",
                    email="BO@acme.example",
                    account_id=rid("hubspot", "accounts", "a1"),
                ),
                row(
                    "contacts",
                    "hubspot",
                    "c9",
                    email="gone@acme.example",
                    account_id=None,
                    deleted_at=datetime(2026, 10, 2, tzinfo=UTC),
                ),
            ],
        )
        created = datetime(2026, 10, 1, tzinfo=UTC)
        upsert(
            conn,
            "deals",
            [
                row(
                    "deals",
                    "hubspot",
                    "d1",
                    account_id=rid("hubspot", "accounts", "a1"),
                    is_closed=False,
                    amount=1000,
                    created_at=created,
                ),
                row(
                    "deals",
                    "hubspot",
                    "d2",
                    account_id=rid("hubspot", "accounts", "a1"),
                    is_closed=True,
                    close_date=date(2026, 10, 15),
                    amount=500,
                    created_at=created + timedelta(days=1),
                ),
            ],
        )


def seed_meeting(db: Database, attendees: list[str], updated: datetime | None = None) -> None:
    stamp = updated or datetime(2026, 10, 1, tzinfo=UTC)
    activity = row("activities", "google_calendar", "evt1", activity_type="calendar_event",
                   occurred_at=MEETING_AT, status="confirmed", updated_at=stamp)  # fmt: skip
    people = [
        row("activity_participants", "google_calendar", f"evt1:{email}", email=email,
            activity_id=activity["id"], role="attendee", updated_at=stamp)
        for email in attendees
    ]  # fmt: skip
    with db.begin() as conn:
        upsert(conn, "activities", [activity])
        upsert(conn, "activity_participants", people)


def participants(db: Database) -> dict[str, Any]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT email, contact_id, account_id, owner_id, is_internal, deleted_at "
                "FROM activity_participants"
            )
        ).all()
    return {r.email: r for r in rows}


def activity(db: Database) -> Any:
    with db.connect() as conn:
        return conn.execute(
            text("SELECT owner_id, contact_id, account_id, deal_id FROM activities")
        ).one()


def test_participants_resolve_to_contacts_accounts_and_owners(db: Database) -> None:
    seed_crm(db)
    attendees = [
        "ann@northwind.example",  # an owner: internal
        "bo@acme.example",  # a contact in both CRMs: HubSpot's wins
        "new.person@globex.example",  # no contact: the account by domain
        "friend@gmail.com",  # consumer: nothing, even with an account on gmail.com
        "gone@acme.example",  # a deleted contact: account by domain instead
        "nobody@unknown.example",
    ]
    seed_meeting(db, attendees)
    with db.begin() as conn:
        resolve_identities(conn, ORG)
    got = participants(db)
    assert got["ann@northwind.example"].owner_id == rid("hubspot", "owners", "o1")
    assert got["ann@northwind.example"].is_internal is True
    assert got["ann@northwind.example"].account_id is None
    assert got["bo@acme.example"].contact_id == rid("hubspot", "contacts", "c1")
    assert got["bo@acme.example"].account_id == rid("hubspot", "accounts", "a1")
    assert got["new.person@globex.example"].contact_id is None
    assert got["new.person@globex.example"].account_id == rid("hubspot", "accounts", "a2")
    assert got["friend@gmail.com"].account_id is None
    assert got["gone@acme.example"].contact_id is None
    assert got["gone@acme.example"].account_id == rid("hubspot", "accounts", "a1")
    assert got["nobody@unknown.example"].account_id is None
    assert not got["nobody@unknown.example"].is_internal
    # The activity takes them: the internal organizer, the contact, the account most of its
    # external people belong to (acme: 2 of them), and the deal open at meeting time (d1; d2
    # was created later but closed before the meeting).
    linked = activity(db)
    assert linked.owner_id == rid("hubspot", "owners", "o1")
    assert linked.contact_id == rid("hubspot", "contacts", "c1")
    assert linked.account_id == rid("hubspot", "accounts", "a1")
    assert linked.deal_id == rid("hubspot", "deals", "d1")
    # Idempotent: a second pass changes nothing.
    before = participants(db), activity(db)
    with db.begin() as conn:
        resolve_identities(conn, ORG)
    assert (participants(db), activity(db)) == before


def test_a_removed_attendee_is_marked_deleted_and_no_longer_links(db: Database) -> None:
    seed_crm(db)
    seed_meeting(db, ["ann@northwind.example", "new.person@globex.example"])
    with db.begin() as conn:
        resolve_identities(conn, ORG)
    assert activity(db).account_id == rid("hubspot", "accounts", "a2")
    # The event changes: globex is off the invite, acme is on.
    seed_meeting(
        db, ["ann@northwind.example", "bo@acme.example"], datetime(2026, 10, 5, tzinfo=UTC)
    )
    with db.begin() as conn:
        resolve_identities(conn, ORG)
    got = participants(db)
    assert got["new.person@globex.example"].deleted_at == datetime(2026, 10, 5, tzinfo=UTC)
    assert got["bo@acme.example"].deleted_at is None
    assert activity(db).account_id == rid("hubspot", "accounts", "a1")
