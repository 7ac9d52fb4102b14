"""Quotas: the CSV format, its errors (every problem named by line and column), and imports
that are all or nothing on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from revtops_kernel.errors import QuotaImportError
from revtops_kernel.intelligence.quotas import (
    import_quotas,
    list_quotas,
    parse_quotas,
    quarter_bounds,
)
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata

ORG = "quota-test"
T0 = datetime(2026, 1, 5, tzinfo=UTC)
OWNERS = {"ana@acme.test": "Ana Lopez", "ben@acme.test": "Ben Okafor"}


def add_owners(db: Database, org: str = ORG, owners: dict[str, str] = OWNERS) -> None:
    rows = [
        {
            "id": uuid.uuid4(),
            "organization_id": org,
            "source_system": "hubspot",
            "source_id": email,
            "email": email,
            "full_name": name,
            "created_at": T0,
            "updated_at": T0,
        }
        for email, name in owners.items()
    ]
    with db.begin() as conn:
        conn.execute(insert(metadata.tables["owners"]), rows)


def count_quotas(db: Database) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(metadata.tables["quotas"])).scalar()
        )


# --- the format --------


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("2026-Q4", (date(2026, 10, 1), date(2026, 12, 31))),
        ("q1 2027", (date(2027, 1, 1), date(2027, 3, 31))),
        ("2026Q2", (date(2026, 4, 1), date(2026, 6, 30))),
        ("Q3-2026", (date(2026, 7, 1), date(2026, 9, 30))),
    ],
)
def test_quarters_in_the_ways_people_write_them(text: str, bounds: tuple[date, date]) -> None:
    assert quarter_bounds(text) == bounds


def test_a_file_with_quarters_and_one_with_date_ranges() -> None:
    rows = parse_quotas(
        "Owner_Email,Quarter,Amount,Team\n"
        'ANA@acme.test,2026-Q4,"$250,000",West\n'
        "\n"
        "ben@acme.test,2026-Q4,180000.50,\n"
    )
    assert [
        (r.owner_email, r.period_start, r.period_end, r.amount, r.team, r.line) for r in rows
    ] == [
        ("ana@acme.test", date(2026, 10, 1), date(2026, 12, 31), Decimal("250000.00"), "West", 2),
        ("ben@acme.test", date(2026, 10, 1), date(2026, 12, 31), Decimal("180000.50"), None, 4),
    ]
    ranges = parse_quotas(
        "email,period_start,period_end,quota\nana@acme.test,2026-01-01,2026-12-31,900000\n"
    )
    assert (ranges[0].period_start, ranges[0].period_end) == (date(2026, 1, 1), date(2026, 12, 31))


def test_every_problem_of_a_file_is_named_by_line_and_column() -> None:
    text = (
        "owner_email,quarter,amount\n"
        "ana@acme.test,2026-Q5,100\n"
        "not-an-email,2026-Q4,100\n"
        "ben@acme.test,2026-Q4,ten thousand\n"
        "ben@acme.test,2026-Q3,-5\n"
        "ben@acme.test,2026-Q2,1.005\n"
        "ana@acme.test,2026-Q4\n"
    )
    with pytest.raises(QuotaImportError) as caught:
        parse_quotas(text, source="q.csv")
    problems = caught.value.problems
    assert problems == [
        "line 2, column quarter: '2026-Q5' is not a quarter; write it like 2026-Q4",
        "line 3, column owner_email: 'not-an-email' is not an email",
        "line 4, column amount: 'ten thousand' is not a number",
        "line 5, column amount: '-5' must be between 0 and 9,999,999,999,999,999.99",
        "line 6, column amount: '1.005' has more than two decimals",
        "line 7: 2 cells, the header has 3",
    ]
    assert str(caught.value).startswith("q.csv: nothing imported")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty"),
        ("owner_email,quarter,amount\n", "a header but no quotas"),
        ("owner_email,quarter,ammount\n", "unknown column(s) 'ammount'"),
        ("owner_email,amount\n", "no period"),
        ("quarter,amount\n", "no owner_email column"),
        ("email,owner_email,quarter,amount\n", "given twice: owner_email"),
        ("owner_email,quarter,period_start,period_end,amount\n", "either a quarter column"),
        (
            "owner_email,period_start,period_end,amount\na@b.co,2026-02-01,2026-01-31,1\n",
            "line 2: period_end 2026-01-31 is before period_start 2026-02-01",
        ),
        (
            "owner_email,period_start,period_end,amount\na@b.co,2026-02-30,2026-03-31,1\n",
            "line 2, column period_start: '2026-02-30' is not a date",
        ),
        (
            "owner_email,quarter,amount\na@b.co,2026-Q4,1\na@b.co,2026-q4,2\n",
            "lines 2 and 3: a@b.co's periods overlap",
        ),
    ],
)
def test_a_bad_header_or_period_is_refused(text: str, problem: str) -> None:
    with pytest.raises(QuotaImportError) as caught:
        parse_quotas(text)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


# --- imports, on both backends --------


def test_import_then_reimport_updates_and_lists_with_owner_names(db: Database) -> None:
    add_owners(db)
    text = "owner_email,quarter,amount,team\nana@acme.test,2026-Q4,250000,West\n"
    first = import_quotas(db, ORG, text)
    assert (first.inserted, first.updated, first.replaced) == (1, 0, 0)
    again = import_quotas(
        db, ORG, b"owner_email,quarter,amount,team\nana@acme.test,2026-Q4,300000,East\n"
        b"ben@acme.test,2026-Q4,120000,East\n",
    )  # fmt: skip
    assert (again.inserted, again.updated) == (1, 1)
    quotas = list_quotas(db, ORG)
    assert [(q.owner, q.team, q.amount) for q in quotas] == [
        ("Ana Lopez", "East", Decimal("300000.00")),
        ("Ben Okafor", "East", Decimal("120000.00")),
    ]
    assert list_quotas(db, ORG, start=date(2027, 1, 1)) == []
    assert list_quotas(db, "another-org") == []


def test_unknown_owner_emails_are_listed_and_nothing_is_imported(db: Database) -> None:
    add_owners(db)
    add_owners(db, "another-org", {"zoe@other.test": "Zoe"})  # another org's rep is unknown here
    text = (
        "owner_email,quarter,amount\n"
        "ana@acme.test,2026-Q4,100\n"
        "zoe@other.test,2026-Q4,100\n"
        "max@acme.test,2026-Q4,100\n"
        "max@acme.test,2027-Q1,100\n"
    )
    with pytest.raises(QuotaImportError) as caught:
        import_quotas(db, ORG, text, source="q4.csv")
    assert caught.value.unknown_owners == ["max@acme.test", "zoe@other.test"]
    assert "max@acme.test (line(s) 4, 5)" in str(caught.value)
    assert count_quotas(db) == 0  # ana's valid line was not stored either


def test_overlapping_a_stored_quota_needs_replace(db: Database) -> None:
    add_owners(db)
    import_quotas(db, ORG, "owner_email,quarter,amount\nana@acme.test,2026-Q4,300000\n")
    monthly = (
        "owner_email,period_start,period_end,amount\n"
        "ana@acme.test,2026-11-01,2026-11-30,100000\n"
        "ben@acme.test,2026-11-01,2026-11-30,50000\n"
    )
    with pytest.raises(
        QuotaImportError, match=r"overlaps the stored quota 2026-10-01\.\.2026-12-31"
    ):
        import_quotas(db, ORG, monthly)
    assert count_quotas(db) == 1
    result = import_quotas(db, ORG, monthly, replace=True)
    assert (result.inserted, result.replaced) == (2, 1)
    assert [(q.owner_email, q.period_start) for q in list_quotas(db, ORG)] == [
        ("ana@acme.test", date(2026, 11, 1)),
        ("ben@acme.test", date(2026, 11, 1)),
    ]


def test_a_file_that_cannot_be_read_is_a_clear_error(db: Database, tmp_path: Path) -> None:
    with pytest.raises(QuotaImportError, match="cannot read the file"):
        import_quotas(db, ORG, tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("owner_email,quarter,amount\njosé@acme.test,2026-Q4,1\n".encode("latin-1"))
    with pytest.raises(QuotaImportError, match="not UTF-8"):
        import_quotas(db, ORG, latin)
