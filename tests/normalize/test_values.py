"""The value parsers both providers share: what each reads, and the reason each rejection gives."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from revtops_kernel.normalize.base import NormalizeContext, RecordRejected
from revtops_kernel.normalize.rows import source_id_reader
from revtops_kernel.normalize.values import (
    clean_email,
    email_domain,
    full_name,
    link,
    parse_bool,
    parse_count,
    parse_date,
    parse_decimal,
    parse_int,
    parse_iso_date,
    parse_money,
    parse_percent,
    parse_probability,
    parse_status,
    parse_time,
    web_domain,
)
from revtops_kernel.timeutil import to_utc


def rejection(parse: Callable[[Any, str], Any], value: Any) -> str:
    with pytest.raises(RecordRejected) as caught:
        parse(value, "f")
    return caught.value.reason


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-20T16:00:00.000Z",  # HubSpot
        "2011-12-16T18:54:00.000+0000",  # Salesforce
        "2024-06-30 10:00:00+0000",
        "2024-06-30+0000",  # a bare date: 3.11's fromisoformat would drop the offset
        "2024-06-30T10:00:00+02:00",
        "2024-06-30T10:00:00",
        "2024-06-30",
    ],
)
def test_parse_time_reads_iso_strings_as_utc(text: str) -> None:
    moment = parse_time(text, "f")
    assert moment == to_utc(text)
    assert moment is not None and moment.utcoffset() is not None


def test_parse_time_reads_epoch_milliseconds_and_names_the_field_it_rejects() -> None:
    assert parse_time("1771603200000", "f") == datetime(2026, 2, 20, 16, tzinfo=UTC)
    assert parse_time(None, "f") is None and parse_time("", "f") is None
    assert rejection(parse_time, "2026-02-30T00:00:00Z") == (
        "f is not a date-time: '2026-02-30T00:00:00Z'"
    )


def test_parse_date_and_parse_iso_date() -> None:
    for parse in (parse_date, parse_iso_date):
        assert parse("2024-06-30", "f") == date(2024, 6, 30)
        assert parse("2024-06-30T23:30:00.000-0200", "f") == date(2024, 7, 1)  # the UTC date
        assert parse(None, "f") is None
    assert rejection(parse_date, "2025-02-31") == "f is not a date-time: '2025-02-31'"
    # A date field (parse_iso_date) says "date"; a failure is never memoized.
    for _ in range(2):
        assert rejection(parse_iso_date, "2025-02-31") == "f is not a date: '2025-02-31'"


def test_numbers() -> None:
    assert parse_decimal(" 12.50 ", "f") == Decimal("12.50")
    assert parse_decimal(75.0, "f") == Decimal("75.0")
    assert parse_decimal("", "f") is None
    assert rejection(parse_decimal, "12,5O0") == "f is not a number: '12,5O0'"
    assert rejection(parse_decimal, "NaN") == "f is not a finite number: 'NaN'"
    assert str(parse_money("1234.565", "f")) == "1234.56"  # half-even, to cents
    assert parse_money("9999999999999999.99", "f") == Decimal("9999999999999999.99")
    assert rejection(parse_money, 1e16) == "f is out of range: 1e+16"  # NUMERIC(18,2)
    assert str(parse_probability("0.75", "f")) == "0.7500"
    assert rejection(parse_probability, "75") == ("f is not a probability between 0 and 1: '75'")
    assert str(parse_percent(75.0, "f")) == "0.7500"
    assert rejection(parse_percent, 175.0) == ("f is not a percentage between 0 and 100: 175.0")
    assert parse_count("2147483647", "f") == 2**31 - 1
    assert rejection(parse_count, 2**31) == f"f is out of range: {2**31}"  # INTEGER
    assert rejection(parse_count, "2.5") == "f is not a whole number: '2.5'"
    assert (parse_bool("TRUE", "f"), parse_bool("0", "f"), parse_bool("", "f")) == (
        True,
        False,
        None,
    )
    assert rejection(parse_bool, "maybe") == "f is not a boolean: 'maybe'"


def test_text() -> None:
    assert parse_status("Not Started") == "not_started"
    assert parse_status("Canceled") == "cancelled"
    assert parse_status("") is None
    assert full_name("Lee", "Chen") == "Lee Chen"
    assert full_name(None, "Chen") == "Chen"
    assert full_name("Lee", "Chen", "Dr. Lee Chen") == "Dr. Lee Chen"
    assert full_name(None, "", "") is None
    assert web_domain("https://www.Acme.co.uk:8443/en?x=1") == "acme.co.uk"
    assert web_domain("www.") is None
    assert clean_email(" Lee.Chen@Acme.com ") == "lee.chen@acme.com"
    assert clean_email("not an email") is None
    assert email_domain("lee.chen@acme.com") == "acme.com"


def test_link_is_the_context_id() -> None:
    ctx = NormalizeContext("org_test", "hubspot")
    assert link(ctx, "owners", 52550101) == ctx.id_for("owners", "52550101")
    assert link(ctx, "owners", "") is None and link(ctx, "owners", None) is None


def test_source_id_reader() -> None:
    hubspot_id, salesforce_id = source_id_reader("id", integers=True), source_id_reader("Id")
    assert hubspot_id({"id": 42}) == "42"
    assert salesforce_id({"Id": "006x"}) == "006x"
    for read, record, reason in [
        (salesforce_id, {"Id": 42}, "Id is not a string: 42"),
        (hubspot_id, {"id": ""}, "missing id"),
        (hubspot_id, [], "record is not a JSON object but list"),
    ]:
        with pytest.raises(RecordRejected) as caught:
            read(record)
        assert caught.value.reason == reason


def test_huge_exponents_are_refused_at_once() -> None:
    started = time.monotonic()
    for text in ("1e1000000", "9" * 25):
        with pytest.raises(RecordRejected, match="too large"):
            parse_int(text, "num_associated_contacts")
    assert parse_count("1e3", "employees") == 1000
    assert time.monotonic() - started < 1.0
