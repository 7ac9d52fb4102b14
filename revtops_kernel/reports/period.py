"""The window a digest reports on, named (``this_week``) or explicit (start and end dates).

Names are read in the reader's time zone: on Monday 00:30 in Europe/Paris, ``this_week`` is
the week that just began there, even though it is still Sunday in UTC. Dates are whole days,
both ends included. The previous period is the previous calendar month for a month, else the
window of the same length just before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from revtops_kernel.errors import PeriodError

PERIODS = (
    "this_week",
    "last_week",
    "last_7_days",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
)


@dataclass(frozen=True)
class DigestPeriod:
    start: date
    end: date
    label: str  # "this_week" or "custom"
    today: date  # in the reader's time zone, when the digest was built

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def as_of(self) -> date:
        """The day stalled, ghosted and slipped deals are measured at: the period's end, or
        today for a period still running."""
        return min(self.end, self.today)

    def previous(self) -> tuple[date, date]:
        """The window just before this one: the previous calendar month for a month period
        (October 1-31 before November 1-30, not October 2-31), the previous quarter for a quarter,
        otherwise the window of the same
        length that ends the day before this one starts."""
        end = self.start - timedelta(days=1)
        if self.label in ("this_quarter", "last_quarter") or _whole_quarter(self.start, self.end):
            return _quarter_start(end), end
        if self.label in ("this_month", "last_month") or _whole_month(self.start, self.end):
            return end.replace(day=1), end
        return end - timedelta(days=self.days - 1), end

    def describe(self) -> str:
        return f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"


def _whole_month(start: date, end: date) -> bool:
    """True for an explicit window that is exactly one calendar month."""
    following = (start + timedelta(days=32)).replace(day=1)
    return start.day == 1 and end == following - timedelta(days=1)


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _quarter_end(day: date) -> date:
    start = _quarter_start(day)
    following = date(start.year + (start.month == 10), (start.month + 2) % 12 + 1, 1)
    return following - timedelta(days=1)


def _whole_quarter(start: date, end: date) -> bool:
    """True for an explicit window that is exactly one calendar quarter."""
    return start == _quarter_start(start) and end == _quarter_end(start)


def zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PeriodError(
            f"unknown time zone {timezone!r}: use an IANA name such as Europe/Paris"
        ) from exc


def resolve_period(
    period: str | None = "this_week",
    *,
    period_start: str | date | None = None,
    period_end: str | date | None = None,
    timezone: str = "UTC",
    now: datetime | None = None,
) -> DigestPeriod:
    """The digest window: explicit ``period_start``/``period_end`` (YYYY-MM-DD, both or
    neither) win over ``period``, which is one of ``PERIODS``."""
    today = (now or datetime.now(zone(timezone))).astimezone(zone(timezone)).date()
    if period_start is not None or period_end is not None:
        if period_start is None or period_end is None:
            raise PeriodError("give both period_start and period_end (YYYY-MM-DD), or neither")
        start, end = _day(period_start, "period_start"), _day(period_end, "period_end")
        if start > end:
            raise PeriodError(f"period_start {start} is after period_end {end}")
        return DigestPeriod(start, end, "custom", today)
    name = (period or "this_week").strip().lower()
    monday = today - timedelta(days=today.weekday())
    first = today.replace(day=1)
    if name == "this_week":
        return DigestPeriod(monday, monday + timedelta(days=6), name, today)
    if name == "last_week":
        return DigestPeriod(monday - timedelta(days=7), monday - timedelta(days=1), name, today)
    if name == "last_7_days":
        return DigestPeriod(today - timedelta(days=6), today, name, today)
    if name == "this_month":
        following = (first + timedelta(days=32)).replace(day=1)
        return DigestPeriod(first, following - timedelta(days=1), name, today)
    if name == "last_month":
        last_end = first - timedelta(days=1)
        return DigestPeriod(last_end.replace(day=1), last_end, name, today)
    if name == "this_quarter":
        return DigestPeriod(_quarter_start(today), _quarter_end(today), name, today)
    if name == "last_quarter":
        last_end = _quarter_start(today) - timedelta(days=1)
        return DigestPeriod(_quarter_start(last_end), last_end, name, today)
    raise PeriodError(
        f"unknown period {period!r}: use one of {', '.join(PERIODS)}, "
        "or period_start and period_end"
    )


def _day(value: str | date, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise PeriodError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from exc
