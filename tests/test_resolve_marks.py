"""A CRM row is marked for identity resolution only when a column resolution reads changes
(``schema.RESOLUTION_READS``, ``upsert._kept_mark``, both backends): an incremental CRM sync
rewrites mostly other fields (a contact's title, an account's size, a deal's amount), and each
marked row cost the resolution after it a search of the participants and meetings it might
affect. Each case ends where a full resolution of the same data ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.resolve import ResolveReport, resolve_identities
from revtops_kernel.store import Database
from revtops_kernel.store.schema import RESOLUTION_READS
from revtops_kernel.store.upsert import upsert

ORG = "northwind"
T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)
REP, BUYER = "rep@northwind.example", "buyer@acme.example"
ACME = record_id(ORG, "hubspot", "accounts", "acme")
BETA = record_id(ORG, "hubspot", "accounts", "beta")
DEAL = record_id(ORG, "hubspot", "deals", "d1")
EVENT = record_id(ORG, "google_calendar", "activities", "e1")
RESOLVED = (
    "SELECT 'p', id, contact_id, account_id, owner_id, is_internal, deleted_at, NULL "
    "FROM activity_participants WHERE organization_id = :org UNION ALL "
    "SELECT 'a', id, contact_id, account_id, owner_id, NULL, NULL, deal_id "
    "FROM activities WHERE organization_id = :org"
)
# Each CRM table's stored row: (source id, its values); the changes below start from these.
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "owners": ("rep", {"email": REP, "first_name": "Rae"}),
    "accounts": ("acme", {"name": "Acme", "domain": "acme.example", "employee_count": 40}),
    "contacts": ("buyer", {"email": BUYER, "account_id": ACME, "title": "CFO"}),
    "deals": (
        "d1",
        {
            "name": "Acme renewal",
            "account_id": ACME,
            "is_closed": False,
            "amount": 1000,
            "created_at": T0 - timedelta(days=60),
            "close_date": date(2026, 12, 1),
        },
    ),
}
# A column resolution does not read, per table, and a new value of each column it reads.
OTHER: dict[str, tuple[str, Any]] = {
    "owners": ("first_name", "Ray"),
    "accounts": ("employee_count", 45),
    "contacts": ("title", "CEO"),
    "deals": ("amount", 1200),
}
NEW_VALUES: dict[str, Any] = {
    "email": "Buyer@Acme.example",
    "domain": "acme-corp.example",
    "account_id": BETA,
    "deleted_at": T0,
    "created_at": T0 + timedelta(days=1),
    "is_closed": True,
    "close_date": date(2026, 10, 1),
}


def _row(source_id: str, system: str = "hubspot", **values: Any) -> dict[str, Any]:
    base = {"organization_id": ORG, "source_system": system, "source_id": source_id}
    return {**base, "updated_at": T0 - timedelta(days=90), **values}


def _company(db: Database) -> None:
    """A rep, Acme and Beta, a contact at Acme with an open deal, and a meeting of the rep and
    the contact; resolved."""
    with db.begin() as conn:
        for table, (source_id, values) in ROWS.items():
            upsert(conn, table, [_row(source_id, **values)])
        upsert(conn, "accounts", [_row("beta", name="Beta", domain="beta.example")])
        meeting = _row(
            "e1", "google_calendar", id=EVENT, activity_type="calendar_event", occurred_at=T0
        )
        upsert(conn, "activities", [{**meeting, "updated_at": T0}])
        attendees = [
            _row("e1:rep", "google_calendar", activity_id=EVENT, email=REP, updated_at=T0),
            _row("e1:buyer", "google_calendar", activity_id=EVENT, email=BUYER, updated_at=T0),
        ]
        upsert(conn, "activity_participants", attendees)
    assert _resolve(db).full
    with db.connect() as conn:
        assert conn.execute(text("SELECT deal_id FROM activities")).scalar_one() == DEAL


def _resolve(db: Database, *, full: bool = False) -> ResolveReport:
    with db.begin() as conn:
        return resolve_identities(conn, ORG, full=full)


def _rewrite(db: Database, table: str, **changes: Any) -> None:
    """The table's stored row written again with ``changes``, a newer version."""
    source_id, values = ROWS[table]
    with db.begin() as conn:
        upsert(conn, table, [_row(source_id, **{**values, **changes, "updated_at": T0})])


def _marked(db: Database, table: str) -> int:
    with db.connect() as conn:
        statement = f"SELECT count(*) FROM {table} WHERE resolution_pending"
        return int(conn.execute(text(statement)).scalar_one())


def _resolved(db: Database) -> set[tuple[Any, ...]]:
    with db.connect() as conn:
        return {tuple(row) for row in conn.execute(text(RESOLVED), {"org": ORG})}


def _a_full_resolution_changes_nothing(db: Database) -> None:
    before = _resolved(db)
    report = _resolve(db, full=True)
    assert report.rows_updated == 0, report
    assert _resolved(db) == before


def test_every_column_resolution_reads_has_a_change_here() -> None:
    assert set(OTHER) == set(RESOLUTION_READS)
    assert {c for columns in RESOLUTION_READS.values() for c in columns} == set(NEW_VALUES)


@pytest.mark.parametrize("table", sorted(OTHER))
def test_a_crm_write_of_columns_resolution_does_not_read_leaves_no_mark(
    db: Database, table: str
) -> None:
    _company(db)
    column, value = OTHER[table]
    _rewrite(db, table, **{column: value})
    with db.connect() as conn:  # written all the same
        updated = conn.execute(text(f"SELECT max(updated_at) FROM {table}")).scalar_one()
        assert updated.replace(tzinfo=UTC) == T0
    assert _marked(db, table) == 0
    report = _resolve(db)
    assert report == ResolveReport(consumer_domains=0, own_domains=report.own_domains)
    _a_full_resolution_changes_nothing(db)


@pytest.mark.parametrize(
    ("table", "column"),
    sorted((table, column) for table, columns in RESOLUTION_READS.items() for column in columns),
)
def test_a_crm_write_of_a_column_resolution_reads_is_marked_and_resolved(
    db: Database, table: str, column: str
) -> None:
    """Each read column's change marks the row, and the incremental resolution then leaves
    what a full one would (the participants and meeting it affects found from that row)."""
    _company(db)
    other, value = OTHER[table]
    _rewrite(db, table, **{other: value, column: NEW_VALUES[column]})
    assert _marked(db, table) == 1
    report = _resolve(db)
    assert report.written_rows == 1
    assert report.full == (table == "owners" and column == "email")  # own domains changed
    assert _marked(db, table) == 0
    _a_full_resolution_changes_nothing(db)


def test_a_row_still_marked_stays_marked_through_a_write_of_other_columns(db: Database) -> None:
    _company(db)
    _rewrite(db, "contacts", email="new@acme.example")
    with db.begin() as conn:  # a later version changing the title only, before a resolution
        source_id, values = ROWS["contacts"]
        later = {**values, "email": "new@acme.example", "title": "CEO"}
        upsert(conn, "contacts", [_row(source_id, **later, updated_at=T0 + timedelta(hours=1))])
    assert _marked(db, "contacts") == 1
    report = _resolve(db)
    assert report.written_rows == 1 and report.participants_updated == 1  # the buyer let go
    _a_full_resolution_changes_nothing(db)


def test_a_deal_closed_before_the_meeting_is_no_longer_its_deal(db: Database) -> None:
    """A deal's amount and close moving together (a deal won): marked for its close, and the
    meeting after the close loses it."""
    _company(db)
    _rewrite(db, "deals", amount=2000, is_closed=True, close_date=date(2026, 10, 1))
    report = _resolve(db)
    assert report.meetings_examined == 1 and report.meetings_updated == 1
    with db.connect() as conn:
        assert conn.execute(text("SELECT deal_id FROM activities")).scalar_one() is None
    _a_full_resolution_changes_nothing(db)
