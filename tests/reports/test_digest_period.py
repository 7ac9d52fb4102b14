"""Digest periods: named windows read in the reader's time zone, explicit ones validated."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from revtops_kernel.reports.period import PeriodError, resolve_period

# Sunday 23:30 UTC is already Monday in Paris.
SUNDAY_NIGHT_UTC = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)


def test_weeks_start_on_monday_in_the_readers_time_zone() -> None:
    utc = resolve_period("this_week", timezone="UTC", now=SUNDAY_NIGHT_UTC)
    paris = resolve_period("this_week", timezone="Europe/Paris", now=SUNDAY_NIGHT_UTC)
    assert (utc.start, utc.end) == (date(2026, 11, 23), date(2026, 11, 29))
    assert (paris.start, paris.end) == (date(2026, 11, 30), date(2026, 12, 6))
    assert paris.today == date(2026, 11, 30) and paris.as_of == date(2026, 11, 30)

    last = resolve_period("last_week", timezone="Europe/Paris", now=SUNDAY_NIGHT_UTC)
    assert (last.start, last.end, last.as_of) == (
        date(2026, 11, 23),
        date(2026, 11, 29),
        date(2026, 11, 29),
    )
    assert last.previous() == (date(2026, 11, 16), date(2026, 11, 22))


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("last_7_days", date(2026, 3, 9), date(2026, 3, 15)),
        ("this_month", date(2026, 3, 1), date(2026, 3, 31)),
        ("last_month", date(2026, 2, 1), date(2026, 2, 28)),
    ],
)
def test_other_named_periods(name: str, start: date, end: date) -> None:
    period = resolve_period(name, now=datetime(2026, 3, 15, 12, tzinfo=UTC))
    assert (period.start, period.end, period.label) == (start, end, name)


def test_explicit_dates_win_and_the_previous_period_has_the_same_length() -> None:
    period = resolve_period(
        "this_week", period_start="2026-10-19", period_end="2026-11-15", timezone="UTC"
    )
    assert (period.start, period.end, period.label, period.days) == (
        date(2026, 10, 19),
        date(2026, 11, 15),
        "custom",
        28,
    )
    assert period.previous() == (date(2026, 9, 21), date(2026, 10, 18))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": "fortnight"}, "unknown period 'fortnight': use one of this_week"),
        ({"period_start": "2026-10-01"}, "give both period_start and period_end"),
        ({"period_start": "2026-10-05", "period_end": "2026-10-01"}, "is after period_end"),
        ({"period_start": "5 Oct", "period_end": "2026-10-10"}, "period_start must be a date"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_periods_say_what_is_wrong(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        resolve_period(**kwargs)  # type: ignore[arg-type]


# 2026-12-01 03:30 UTC: still November 30 in Los Angeles, already December 1 in Tokyo.
MONTH_TURN_UTC = datetime(2026, 12, 1, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timezone", "this_month", "previous"),
    [
        ("UTC", (date(2026, 12, 1), date(2026, 12, 31)), (date(2026, 11, 1), date(2026, 11, 30))),
        (
            "America/Los_Angeles",
            (date(2026, 11, 1), date(2026, 11, 30)),
            (date(2026, 10, 1), date(2026, 10, 31)),
        ),
        (
            "Asia/Tokyo",
            (date(2026, 12, 1), date(2026, 12, 31)),
            (date(2026, 11, 1), date(2026, 11, 30)),
        ),
    ],
)
def test_a_months_previous_period_is_the_whole_previous_month(
    timezone: str, this_month: tuple[date, date], previous: tuple[date, date]
) -> None:
    period = resolve_period("this_month", timezone=timezone, now=MONTH_TURN_UTC)
    assert (period.start, period.end) == this_month
    assert period.previous() == previous


def test_last_month_of_thirty_days_is_compared_with_all_thirty_one_of_october() -> None:
    period = resolve_period("last_month", timezone="Europe/Paris", now=MONTH_TURN_UTC)
    assert (period.start, period.end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert period.previous() == (date(2026, 10, 1), date(2026, 10, 31))
    march = resolve_period("last_month", now=datetime(2026, 4, 2, tzinfo=UTC))
    assert march.previous() == (date(2026, 2, 1), date(2026, 2, 28))


@pytest.mark.parametrize(
    ("now", "timezone", "quarter", "previous"),
    [
        (
            MONTH_TURN_UTC,
            "UTC",
            (date(2026, 10, 1), date(2026, 12, 31)),
            (date(2026, 7, 1), date(2026, 9, 30)),
        ),
        # New Year's Eve 20:00 in New York is already 2027 in UTC.
        (
            datetime(2027, 1, 1, 1, 0, tzinfo=UTC),
            "America/New_York",
            (date(2026, 10, 1), date(2026, 12, 31)),
            (date(2026, 7, 1), date(2026, 9, 30)),
        ),
        (
            datetime(2027, 1, 1, 1, 0, tzinfo=UTC),
            "UTC",
            (date(2027, 1, 1), date(2027, 3, 31)),
            (date(2026, 10, 1), date(2026, 12, 31)),
        ),
    ],
)
def test_quarters_in_the_readers_time_zone(
    now: datetime, timezone: str, quarter: tuple[date, date], previous: tuple[date, date]
) -> None:
    period = resolve_period("this_quarter", timezone=timezone, now=now)
    assert (period.start, period.end) == quarter
    assert period.previous() == previous
    last = resolve_period("last_quarter", timezone=timezone, now=now)
    assert (last.start, last.end) == previous


def test_an_explicit_calendar_month_or_quarter_compares_with_the_previous_one() -> None:
    november = resolve_period(period_start="2026-11-01", period_end="2026-11-30")
    assert november.previous() == (date(2026, 10, 1), date(2026, 10, 31))
    q2 = resolve_period(period_start="2026-04-01", period_end="2026-06-30")
    assert q2.previous() == (date(2026, 1, 1), date(2026, 3, 31))
