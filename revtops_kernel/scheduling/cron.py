"""Due times of a cron schedule read in a time zone, DST-correct, as UTC instants.

A cron expression names wall-clock times. We walk them with croniter on *naive* local times
(croniter's own handling of aware datetimes across DST changes has a history of bugs) and map
each one to a UTC instant ourselves:

- a wall time inside a spring-forward gap (02:30 on the day clocks jump from 02:00 to 03:00)
  does not exist; it runs at the instant it would have been without the jump (03:30 local),
  once: the day's run moves, it is not lost;
- a wall time inside a fall-back fold (01:30 happens twice) runs at its first occurrence only,
  like a fixed-time job in Vixie cron. An expression that fires every hour (hour field ``*``)
  also fires in the repeated hour, so an hourly job keeps running hourly in real time;
- two wall times that land on the same instant (02:30 in the gap, shifted to 03:30, and 03:30
  itself) are one due time.

``Schedule`` reads five fields, or six with seconds last (croniter's convention), which the
tests use to get due times a couple of seconds apart. A workflow's schedule is stricter
(``workflow_cron``): five fields, the common ``@daily``-style macros spelled out, and a minimum
interval between consecutive due times, so nobody schedules a notebook every second.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from revtops_kernel.errors import ScheduleError

# Further than any UTC offset change (the largest DST shift in use is 2 hours): naive local
# times within this distance of an instant's own local time cover every wall time that can
# map onto it.
_SLACK = timedelta(hours=3)


# The macros a workflow may use, and the five fields each stands for (stored spelled out, so a
# stored schedule always has five fields). ``@reboot`` has no meaning for a scheduled notebook.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_EXPRESSION_LENGTH = 200
# How many upcoming due times ``workflow_cron`` measures the interval over.
INTERVAL_SAMPLE = 200


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ScheduleError`` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Paris",
            field="timezone",
        ) from exc


def validate(expression: str, timezone: str = "UTC") -> None:
    """Raise ``ScheduleError`` naming the problem if the schedule cannot be used."""
    zone(timezone)
    fields = expression.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(expression):
        raise ScheduleError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week), or 6 with seconds last"
        )


def workflow_cron(expression: str, timezone: str, min_interval: timedelta) -> str:
    """A workflow's schedule as stored: five fields, due times at least ``min_interval`` apart.

    Macros (``@daily``…) come back spelled out; anything else raises ``ScheduleError`` naming
    the problem. The interval is measured within a day (every firing day has the same times)
    and over the next ``INTERVAL_SAMPLE`` due times, which covers the gaps across midnight.
    """
    text = expression.strip()
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ScheduleError(f"a cron expression is at most {MAX_EXPRESSION_LENGTH} characters")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            known = ", ".join(MACROS)
            raise ScheduleError(
                f"unsupported cron macro {text!r}: use five fields, or one of {known}"
            )
        text = MACROS[text.lower()]
    fields = text.split()
    if len(fields) != 5 or not croniter.is_valid(text):
        raise ScheduleError(
            f"invalid cron expression {expression!r}: a workflow's schedule has exactly 5 fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 7 * * 1-5'"
        )
    validate(text, timezone)
    shortest = _shortest_gap(text)
    if shortest < min_interval:
        minutes = int(min_interval.total_seconds() // 60)
        raise ScheduleError(
            f"cron expression {expression!r} runs {_plain_gap(shortest)} apart; workflows run "
            f"at most every {minutes} minutes (REVTOPS_WORKFLOW_MIN_INTERVAL_MINUTES)"
        )
    return " ".join(fields)


def _shortest_gap(expression: str) -> timedelta:
    """The shortest time between two consecutive due times (wall clock), as far as we look."""
    minutes, hours = croniter(expression).expanded[:2]
    minute_set = range(60) if minutes == ["*"] else [int(m) for m in minutes]
    hour_set = range(24) if hours == ["*"] else [int(h) for h in hours]
    times = sorted(h * 60 + m for h in hour_set for m in minute_set)
    gaps = [timedelta(minutes=b - a) for a, b in itertools.pairwise(times)]
    walker = croniter(expression, datetime(2000, 1, 1))
    try:
        previous = walker.get_next(datetime)
        for _ in range(INTERVAL_SAMPLE):
            current = walker.get_next(datetime)
            gaps.append(current - previous)
            previous = current
    except CroniterBadDateError as exc:  # e.g. "0 0 31 2 *": February has no 31st
        raise ScheduleError(f"cron expression {expression!r} never comes due") from exc
    return min(gaps)


def _plain_gap(gap: timedelta) -> str:
    minutes = int(gap.total_seconds() // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class Schedule:
    """A cron expression in a time zone; all inputs and outputs are aware UTC datetimes."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        validate(expression, timezone)
        self.expression = expression
        self.zone = zone(timezone)
        # Hour field "*": the job is periodic within the day, so it also fires in a repeated hour.
        hours = croniter(expression).expanded[1]
        self._hourly = hours == ["*"] or len(hours) == 24

    def __repr__(self) -> str:
        return f"Schedule({self.expression!r}, {self.zone.key!r})"

    def instants(self, wall: datetime) -> list[datetime]:
        """The UTC instant(s) a naive local wall time stands for (see the module docstring)."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        found = [first]
        if self._hourly:
            second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
            if second != first and _exists(wall, self.zone):
                found.append(second)
        return found

    def next_after(self, after: datetime) -> datetime:
        """The first due time strictly after ``after``."""
        after = _utc(after)
        horizon = self._local(after) + _SLACK
        best: datetime | None = None
        walker = croniter(self.expression, self._local(after) - _SLACK)
        while True:
            wall = walker.get_next(datetime)
            if best is not None and wall > horizon:
                return best
            for instant in self.instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant

    def latest_at_or_before(self, now: datetime) -> datetime | None:
        """The most recent due time at or before ``now`` (None if the schedule never fired)."""
        now = _utc(now)
        floor = self._local(now) - _SLACK
        best: datetime | None = None
        walker = croniter(self.expression, self._local(now) + _SLACK + timedelta(seconds=1))
        for _ in range(1_000_000):
            try:
                wall = walker.get_prev(datetime)
            except (StopIteration, ValueError):  # before year 1 or croniter's range
                return best
            if best is not None and wall < floor:
                return best
            for instant in self.instants(wall):
                if instant <= now and (best is None or instant > best):
                    best = instant
        return best

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Due times in ``(start, end]``, in order (for display and tests; may be many)."""
        current = _utc(start)
        end = _utc(end)
        while True:
            current = self.next_after(current)
            if current > end:
                return
            yield current

    def _local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None)


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether a naive wall time happens at all in ``tz`` (False inside a spring-forward gap)."""
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ScheduleError(f"expected an aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)
