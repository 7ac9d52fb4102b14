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
