"""Due times: cron in a time zone, across DST changes, and coalescing after downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from revtops_kernel.scheduling.cron import Schedule, ScheduleError

NEW_YORK = "America/New_York"  # 2025: spring forward Mar 9 02:00, fall back Nov 2 02:00
PARIS = "Europe/Paris"  # 2025: spring forward Mar 30 02:00, fall back Oct 26 03:00


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def days(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    return list(schedule.between(start, end))


def test_daily_run_at_0230_on_spring_forward_day_runs_once_after_the_jump() -> None:
    schedule = Schedule("30 2 * * *", NEW_YORK)
    due = days(schedule, utc(2025, 3, 8, 0), utc(2025, 3, 11, 0))
    # Mar 8 02:30 EST, Mar 9 02:30 does not exist → 03:30 EDT, Mar 10 02:30 EDT
    assert due == [utc(2025, 3, 8, 7, 30), utc(2025, 3, 9, 7, 30), utc(2025, 3, 10, 6, 30)]


def test_daily_run_at_0130_on_fall_back_day_runs_once_at_its_first_occurrence() -> None:
    schedule = Schedule("30 1 * * *", NEW_YORK)
    due = days(schedule, utc(2025, 11, 1, 0), utc(2025, 11, 4, 0))
    # Nov 2 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST): only the first runs.
    assert due == [utc(2025, 11, 1, 5, 30), utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)]


def test_hourly_job_keeps_running_hourly_in_real_time_through_both_changes() -> None:
    hourly = Schedule("30 * * * *", NEW_YORK)
    fall = days(hourly, utc(2025, 11, 2, 3, 0), utc(2025, 11, 2, 9, 0))
    assert fall == [utc(2025, 11, 2, h, 30) for h in range(3, 9)]  # 01:30 EDT and 01:30 EST
    spring = days(hourly, utc(2025, 3, 9, 4, 0), utc(2025, 3, 9, 9, 0))
    # The skipped 02:30 lands on 03:30 EDT, which is also a due time itself: one run.
    assert spring == [utc(2025, 3, 9, h, 30) for h in range(4, 9)]


def test_paris_daily_runs_through_both_changes() -> None:
    schedule = Schedule("15 2 * * *", PARIS)
    spring = days(schedule, utc(2025, 3, 29, 0), utc(2025, 3, 31, 12))
    assert spring == [utc(2025, 3, 29, 1, 15), utc(2025, 3, 30, 1, 15), utc(2025, 3, 31, 0, 15)]
    autumn = days(schedule, utc(2025, 10, 25, 0), utc(2025, 10, 27, 12))
    assert autumn == [utc(2025, 10, 25, 0, 15), utc(2025, 10, 26, 0, 15), utc(2025, 10, 27, 1, 15)]


def test_latest_due_after_downtime_is_the_one_missed_run() -> None:
    schedule = Schedule("0 9 * * 1-5", "UTC")
    back_up = utc(2025, 6, 13, 8, 0)  # Friday 08:00, down since Monday
    assert schedule.latest_at_or_before(back_up) == utc(2025, 6, 12, 9, 0)
    assert schedule.latest_at_or_before(utc(2025, 6, 12, 9, 0)) == utc(2025, 6, 12, 9, 0)
    assert schedule.next_after(utc(2025, 6, 12, 9, 0)) == utc(2025, 6, 13, 9, 0)
    assert schedule.next_after(utc(2025, 6, 13, 10, 0)) == utc(2025, 6, 16, 9, 0)  # Monday


def test_latest_due_of_a_rare_schedule_looks_far_back() -> None:
    yearly = Schedule("0 0 1 1 *", "Asia/Tokyo")
    assert yearly.latest_at_or_before(utc(2025, 6, 1)) == utc(2024, 12, 31, 15, 0)


def test_six_fields_put_seconds_last() -> None:
    every_two = Schedule("* * * * * */2", "UTC")
    start = utc(2025, 1, 1, 0, 0, 1)
    assert days(every_two, start, start + timedelta(seconds=5)) == [
        utc(2025, 1, 1, 0, 0, 2),
        utc(2025, 1, 1, 0, 0, 4),
        utc(2025, 1, 1, 0, 0, 6),
    ]


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("61 * * * *", "UTC", "invalid cron expression"),
        ("* * *", "UTC", "invalid cron expression"),
        ("0 9 * * *", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(cron: str, zone: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Schedule(cron, zone)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ScheduleError, match="aware"):
        Schedule("0 9 * * *").next_after(datetime(2025, 1, 1))
