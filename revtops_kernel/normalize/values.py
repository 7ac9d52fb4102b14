"""Value parsers the normalizers share: provider value -> column value, or ``RecordRejected``.

Every parser takes ``(value, field)`` and returns ``None`` for a missing value (``None`` or
``""``); a value it cannot read raises ``RecordRejected`` naming ``field``, so the quarantine
says which field of the record was wrong.

Bounds follow the columns: amounts are rounded to cents and must fit NUMERIC(18,2),
probabilities are rounded to 4 places for NUMERIC(5,4), counts must fit INTEGER. A value out of
range would make the store's cast fail for the whole batch, not just for its record.

Speed (a sync normalizes hundreds of thousands of records): the ISO times providers send
(``...Z``, ``...+0000``) and calendar dates take ``fromisoformat`` directly, dates and
probabilities and amounts are memoized per distinct string, and so are the ids of linked records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, TypeVar

from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import NormalizeContext, RecordRejected
from revtops_kernel.timeutil import from_epoch_ms, to_utc

_ZERO, _ONE, _HUNDRED = Decimal(0), Decimal(1), Decimal(100)
_CENT, _BASIS_POINT = Decimal("0.01"), Decimal("0.0001")
MONEY_DIGITS = 16  # NUMERIC(18,2) holds 16 digits before the point
INT_LIMIT = 2**31  # INTEGER columns on PostgreSQL
# Suffixes of the UTC times providers send (HubSpot ``Z``, Salesforce ``+0000``), which 3.11's
# datetime.fromisoformat reads as they are.
_UTC_SUFFIXES = ("Z", "+0000")
_STATUS_ALIASES = {"canceled": "cancelled"}

_T = TypeVar("_T")


def _memo_strings(parse: Callable[[Any, str], _T]) -> Callable[[Any, str], _T]:
    """``parse(value, field)``, computed once per distinct string: close dates and stage
    probabilities repeat across thousands of records, and their results are immutable. Other
    values (and every failure, which lru_cache does not keep) go through ``parse`` itself."""
    cached = lru_cache(maxsize=4096)(parse)

    def memoized(value: Any, field: str) -> _T:
        return cached(value, field) if value.__class__ is str else parse(value, field)

    return memoized


# --- links -------------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 15)
def linked_id(organization_id: str, source_system: str, table: str, source_id: str) -> uuid.UUID:
    """``record_id``, memoized: owners, pipelines and accounts repeat across thousands of
    records, and the MD5 + UUID of record_id is most of a record's cost."""
    return record_id(organization_id, source_system, table, source_id)


def link(ctx: NormalizeContext, table: str, source_id: Any) -> uuid.UUID | None:
    """The row id of a linked record, ``None`` when there is no link (= ``ctx.id_for``)."""
    if source_id is None or source_id == "":
        return None
    return linked_id(ctx.organization_id, ctx.source_system, table, str(source_id))


def is_object(value: Any) -> bool:
    """A JSON object (dicts skip the slower ABC check)."""
    return value.__class__ is dict or isinstance(value, Mapping)


# --- times and dates ---------------------------------------------------------------------------


def parse_time(value: Any, field: str) -> datetime | None:
    """An ISO 8601 string (any offset), or epoch milliseconds as HubSpot sometimes sends."""
    if value.__class__ is str and value.endswith(_UTC_SUFFIXES):
        try:  # the providers' own shapes; anything else, and errors, take the general path
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:  # 3.11 drops the offset of a bare date (...+0000)
                return moment
        except ValueError:
            pass
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if text.isdigit():
            return from_epoch_ms(text)
        return to_utc(text)
    except (ValueError, OverflowError):
        raise RecordRejected(f"{field} is not a date-time: {value!r}") from None


@_memo_strings
def parse_date(value: Any, field: str) -> date | None:
    """A date or a date-time, as its UTC date (HubSpot's closedate is midnight UTC); what
    parse_time cannot read is rejected as not a date-time."""
    moment = parse_time(value, field)
    return None if moment is None else moment.date()


@_memo_strings
def parse_iso_date(value: Any, field: str) -> date | None:
    """A date field (Salesforce's): a ten-character value is a ``YYYY-MM-DD`` date or rejected
    as not a date; any other value (a date-time) is read by parse_date."""
    if value.__class__ is str and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise RecordRejected(f"{field} is not a date: {value!r}") from None
    return parse_date(value, field)


# --- numbers -----------------------------------------------------------------------------------


def parse_decimal(value: Any, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:  # Decimal() skips the surrounding white space of a string itself
        number = Decimal(value if value.__class__ is str else str(value).strip())
    except InvalidOperation:
        raise RecordRejected(f"{field} is not a number: {value!r}") from None
    if not number.is_finite():
        raise RecordRejected(f"{field} is not a finite number: {value!r}")
    return number


@_memo_strings
def parse_money(value: Any, field: str) -> Decimal | None:
    """An amount, rounded to cents; NUMERIC(18,2) bounds it. Memoized: a deal's amount
    history repeats its few values (scale 1: 12,941 versions, 1,777 distinct texts), and the
    deal's own amount is its latest version's."""
    number = parse_decimal(value, field)
    if number is None:
        return None
    if number.adjusted() >= MONEY_DIGITS:
        raise RecordRejected(f"{field} is out of range: {value!r}")
    return number.quantize(_CENT)


@_memo_strings
def parse_probability(value: Any, field: str) -> Decimal | None:
    """A probability given as a fraction (``0.75``), rounded to 4 places."""
    number = parse_decimal(value, field)
    if number is None:
        return None
    if number < _ZERO or number > _ONE:  # Decimal constants: no int conversion per compare
        raise RecordRejected(f"{field} is not a probability between 0 and 1: {value!r}")
    return number.quantize(_BASIS_POINT)


def parse_percent(value: Any, field: str) -> Decimal | None:
    """A probability given as a percent (``75.0``), as a fraction (``0.7500``)."""
    number = parse_decimal(value, field)
    if number is None:
        return None
    if number < _ZERO or number > _HUNDRED:
        raise RecordRejected(f"{field} is not a percentage between 0 and 100: {value!r}")
    return (number / _HUNDRED).quantize(_BASIS_POINT)


def parse_int(value: Any, field: str) -> int | None:
    number = parse_decimal(value, field)
    if number is None:
        return None
    if number.adjusted() >= 19:
        # Wider than any integer column; and int() of "1e1000000" would take a minute.
        raise RecordRejected(f"{field} is too large: {value!r}")
    if number != number.to_integral_value():
        raise RecordRejected(f"{field} is not a whole number: {value!r}")
    return int(number)


def parse_count(value: Any, field: str) -> int | None:
    """A whole number that fits an INTEGER column."""
    number = parse_int(value, field)
    if number is not None and not -INT_LIMIT < number < INT_LIMIT:
        raise RecordRejected(f"{field} is out of range: {value!r}")
    return number


def parse_bool(value: Any, field: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise RecordRejected(f"{field} is not a boolean: {value!r}")


# --- text --------------------------------------------------------------------------------------


def parse_status(value: Any) -> str | None:
    """A status in snake case (``Not Started`` -> ``not_started``), US spelling folded."""
    if not value:
        return None
    status = str(value).strip().lower().replace(" ", "_")
    return _STATUS_ALIASES.get(status, status)


def full_name(first: Any, last: Any, name: Any = None) -> str | None:
    """``name`` when the record has one, else first and last name joined."""
    if name:
        return name
    if first.__class__ is str and last.__class__ is str:  # the usual pair: no generator
        if first and last:
            return f"{first} {last}"
        return first or last or None
    return " ".join(part for part in (first, last) if part) or None


def web_domain(value: Any) -> str | None:
    """A host name, lowercase, without scheme, path, port or ``www.`` (``acme.com``)."""
    if not value or not isinstance(value, str):
        return None
    host = value.strip().lower()
    if "//" in host:
        host = host.split("//", 1)[1]
    host = host.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    if host.startswith("www."):
        host = host[4:]
    return host or None


def clean_email(value: Any) -> str | None:
    if not value or not isinstance(value, str) or "@" not in value:
        return None
    return value.strip().lower()


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].lower()
