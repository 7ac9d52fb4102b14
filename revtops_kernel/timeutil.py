"""UTC conventions: every stored time is an aware UTC datetime, every serialized time ISO 8601 Z.

Providers hand us many shapes (ISO with ``Z``, Salesforce's ``+0000``, epoch milliseconds,
naive local wall-clock times); ``to_utc`` turns each into one aware UTC ``datetime`` and
``iso_z`` writes it back out as ``2026-02-04T18:00:00Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

# Salesforce writes offsets without a colon (+0000); Python < 3.12 fromisoformat wants +00:00.
_COMPACT_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(
    value: datetime | date | str,
    *,
    assume_tz: tzinfo | str = UTC,
) -> datetime:
    """Return ``value`` as an aware datetime in UTC.

    Naive datetimes (and ISO strings without an offset) are wall-clock times in ``assume_tz``
    (UTC unless said otherwise). Wall-clock times that a DST change makes ambiguous resolve to
    the first occurrence (``fold=0``, the earlier instant); times that do not exist (skipped by
    a spring-forward gap) move forward by the gap, as the clock on the wall would.
    A ``date`` is midnight of that day in ``assume_tz``.
    """
    zone = ZoneInfo(assume_tz) if isinstance(assume_tz, str) else assume_tz
    if isinstance(value, str):
        value = _parse_iso(value)
    if not isinstance(value, datetime):
        if not isinstance(value, date):
            raise TypeError(f"to_utc() expects a datetime, date or ISO string, got {value!r}")
        value = datetime.combine(value, time())
    if value.tzinfo is None or value.utcoffset() is None:
        value = _localize(value, zone)
    return value.astimezone(UTC)


def from_epoch_ms(value: int | float | str) -> datetime:
    """Epoch milliseconds (as HubSpot sends ``hs_timestamp`` filters) to aware UTC."""
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def to_epoch_ms(value: datetime) -> int:
    return int(to_utc(value).timestamp() * 1000)


def as_day(value: object) -> date | None:
    """A query result's cell as a calendar day: a date, a datetime's date (pandas' Timestamp
    included), ISO text's first ten characters; None for NULL, NaN, NaT or anything else."""
    try:
        if value is None or bool(value != value):  # NaN and NaT are not equal to themselves
            return None
    except TypeError:  # pandas' NA has no truth value
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def iso_z(value: datetime | date | str) -> str:
    """Serialize as ISO 8601 UTC with ``Z``: seconds, or milliseconds when there are some."""
    moment = to_utc(value)
    timespec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def _parse_iso(text: str) -> datetime:
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    cleaned = _COMPACT_OFFSET.sub(r"\1:\2", cleaned) if "T" in cleaned else cleaned
    try:
        return datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from exc


def _localize(naive: datetime, zone: tzinfo) -> datetime:
    first = naive.replace(tzinfo=zone, fold=0)
    # A wall time that does not exist does not survive the round trip through UTC.
    round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip == naive:
        return first
    gap = (first.utcoffset() or timedelta()) - (
        naive.replace(tzinfo=zone, fold=1).utcoffset() or timedelta()
    )
    return (naive + abs(gap)).replace(tzinfo=zone)
