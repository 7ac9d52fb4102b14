"""The eval matcher: fair to a model's presentation, strict about the values."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from revtops_sandbox.evals.match import Expected, match_table, match_text, numbers_in

TOTALS = Expected(("deals", "amount"), ((12, Decimal("1234567.89")),))
BY_STAGE = Expected(
    ("stage", "deals", "amount"),
    (("Discovery", 3, Decimal("300.00")), ("Proposal", 2, Decimal("250.50"))),
    ordered=True,
)
RATES = Expected(
    ("owner", "win_rate"),
    (("Ann Lee", 0.25), ("Bo Chen", 0.5)),
    ratio_columns=frozenset({"win_rate"}),
)


def test_columns_match_by_values_in_any_order_and_under_any_name() -> None:
    assert match_table(TOTALS, ["total", "n"], [[1234567.89, 12]]).ok
    assert match_table(TOTALS, ["n", "extra", "total"], [[np.int64(12), "x", "1,234,567.89"]]).ok


def test_numbers_match_within_tolerance_only() -> None:
    assert match_table(TOTALS, ["n", "total"], [[12, 1234000]]).ok  # a model's rounding
    wrong = match_table(TOTALS, ["n", "total"], [[12, 1200000]])
    assert not wrong.ok
    assert "amount" in wrong.reason
    assert not match_table(TOTALS, ["n", "total"], [[13, 1234567.89]]).ok


def test_row_order_counts_only_for_ordered_questions() -> None:
    rows = [["Proposal", 2, 250.5], ["Discovery", 3, 300]]
    assert not match_table(BY_STAGE, ["stage", "deals", "amount"], rows).ok
    assert match_table(BY_STAGE, ["stage", "deals", "amount"], rows[::-1]).ok
    assert match_table(RATES, ["win_rate", "owner"], [[0.5, "bo chen"], [0.25, "ANN LEE "]]).ok


def test_rows_must_line_up_not_just_columns() -> None:
    swapped = [["Ann Lee", 0.5], ["Bo Chen", 0.25]]
    result = match_table(RATES, ["owner", "win_rate"], swapped)
    assert not result.ok
    assert "do not line up" in result.reason


def test_row_counts_must_agree() -> None:
    result = match_table(RATES, ["owner", "win_rate"], [["Ann Lee", 0.25]])
    assert (result.ok, result.reason) == (False, "1 rows, expected 2")


def test_ratios_may_be_percentages() -> None:
    assert match_table(RATES, ["owner", "pct"], [["Ann Lee", 25.0], ["Bo Chen", 50]]).ok
    assert not match_table(TOTALS, ["n", "total"], [[1200, 1234567.89]]).ok  # not a ratio column


def test_dates_nulls_and_timestamps() -> None:
    expected = Expected(("day", "value"), ((date(2026, 10, 1), None),))
    assert match_table(expected, ["d", "v"], [[datetime(2026, 10, 1, tzinfo=UTC), float("nan")]]).ok
    assert match_table(expected, ["d", "v"], [["2026-10-01T00:00:00Z", None]]).ok
    assert not match_table(expected, ["d", "v"], [["2026-10-02", None]]).ok


def test_empty_expected_matches_only_an_empty_result() -> None:
    empty = Expected(("account", "meetings"), ())
    assert match_table(empty, ["a"], []).ok
    assert not match_table(empty, ["a"], [["x"]]).ok


def test_prose_numbers_are_read_with_their_precision() -> None:
    found = numbers_in("We have 1,234 deals worth $1.2M (25.5% of target), -3 slipped.")
    assert [(n.value, n.percent) for n in found] == [
        (1234.0, False),
        (1_200_000.0, False),
        (25.5, True),
        (-3.0, False),
    ]
    assert found[1].slack == 50_000.0


def test_prose_answers() -> None:
    assert match_text(TOTALS, "There are 12 open deals worth $1,234,567.89.").ok
    assert match_text(TOTALS, "12 open deals, about $1.23M in total.").ok
    assert not match_text(TOTALS, "12 open deals, about $1.3M in total.").ok
    assert match_text(RATES, "Ann Lee wins 25% of deals, Bo Chen 50%.").ok
    missing = match_text(RATES, "Ann Lee wins 25% of deals.")
    assert not missing.ok
    assert "Bo Chen" in missing.reason


def test_prose_is_not_used_for_large_answers() -> None:
    big = Expected(("n",), tuple((i,) for i in range(20)))
    result = match_text(big, " ".join(str(i) for i in range(20)))
    assert not result.ok
    assert "too many" in result.reason


@pytest.mark.parametrize("value", [Decimal("0.1"), 0.1, np.float64(0.1), "0.1"])
def test_every_numeric_type_compares_as_a_number(value: object) -> None:
    assert match_table(Expected(("x",), ((0.1,),)), ["x"], [[value]]).ok
