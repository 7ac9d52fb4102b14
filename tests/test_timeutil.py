from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from revtops_kernel.timeutil import from_epoch_ms, iso_z, to_epoch_ms, to_utc

NEW_YORK = ZoneInfo("America/New_York")


def test_naive_datetime_is_read_as_utc_by_default() -> None:
    assert to_utc(datetime(2026, 2, 4, 18, 0)) == datetime(2026, 2, 4, 18, 0, tzinfo=UTC)


def test_naive_datetime_in_a_given_zone() -> None:
    assert to_utc(datetime(2026, 2, 4, 13, 0), assume_tz="America/New_York") == datetime(
        2026, 2, 4, 18, 0, tzinfo=UTC
    )


def test_aware_datetime_is_converted_not_reinterpreted() -> None:
    paris = datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert to_utc(paris, assume_tz="America/New_York") == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    fixed = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert to_utc(fixed) == datetime(2026, 7, 1, 6, 30, tzinfo=UTC)


def test_spring_forward_gap_moves_forward_by_the_gap() -> None:
    # 02:30 does not exist in New York on 2026-03-08: the clock jumps from 02:00 to 03:00.
    result = to_utc(datetime(2026, 3, 8, 2, 30), assume_tz=NEW_YORK)
    assert result == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    # The minutes on either side of the gap are untouched.
    assert to_utc(datetime(2026, 3, 8, 1, 59), assume_tz=NEW_YORK).hour == 6
    assert to_utc(datetime(2026, 3, 8, 3, 0), assume_tz=NEW_YORK) == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )


def test_fall_back_ambiguity_takes_the_first_occurrence() -> None:
    # 01:30 happens twice in New York on 2026-11-01; the first is still EDT (UTC-4).
    assert to_utc(datetime(2026, 11, 1, 1, 30), assume_tz=NEW_YORK) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK)
    assert to_utc(second) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-04T18:00:00Z", datetime(2026, 2, 4, 18, 0, tzinfo=UTC)),
        ("2026-02-04T18:00:00.123Z", datetime(2026, 2, 4, 18, 0, 0, 123000, tzinfo=UTC)),
        # Salesforce: milliseconds and an offset without a colon.
        ("2011-12-16T18:54:00.000+0000", datetime(2011, 12, 16, 18, 54, tzinfo=UTC)),
        ("2011-12-16T10:54:00.000-0800", datetime(2011, 12, 16, 18, 54, tzinfo=UTC)),
        ("2026-02-04T19:00:00+01:00", datetime(2026, 2, 4, 18, 0, tzinfo=UTC)),
        ("2026-02-04", datetime(2026, 2, 4, tzinfo=UTC)),
    ],
)
def test_iso_strings_from_providers(text: str, expected: datetime) -> None:
    assert to_utc(text) == expected


def test_date_is_midnight_in_the_assumed_zone() -> None:
    assert to_utc(date(2026, 6, 30), assume_tz=NEW_YORK) == datetime(2026, 6, 30, 4, tzinfo=UTC)


def test_garbage_is_refused_with_the_value_named() -> None:
    with pytest.raises(ValueError, match="12,5O0"):
        to_utc("12,5O0")
    with pytest.raises(TypeError):
        to_utc(12345)  # type: ignore[arg-type]


def test_iso_z_writes_utc_with_z() -> None:
    moment = datetime(2026, 2, 4, 19, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert iso_z(moment) == "2026-02-04T18:00:00Z"
    assert iso_z(datetime(2026, 2, 4, 18, 0, 0, 250000, tzinfo=UTC)) == "2026-02-04T18:00:00.250Z"
    assert iso_z("2011-12-16T18:54:00.000+0000") == "2011-12-16T18:54:00Z"


def test_epoch_milliseconds_round_trip() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    assert to_epoch_ms(moment) == 1704067200000
    assert from_epoch_ms("1704067200000") == moment
    assert from_epoch_ms(1704067200123).microsecond == 123000


def test_as_day_reads_query_cells() -> None:
    import pandas as pd

    from revtops_kernel.timeutil import as_day

    assert as_day(pd.Timestamp("2026-12-06 23:30")) == date(2026, 12, 6)
    assert as_day(datetime(2026, 1, 2, 3)) == date(2026, 1, 2)
    assert as_day(date(2026, 1, 3)) == date(2026, 1, 3)
    assert as_day("2026-01-04T00:00:00Z") == date(2026, 1, 4)
    for missing in (None, float("nan"), pd.NaT, pd.NA, "soon", 5):
        assert as_day(missing) is None
