"""Does a result answer a golden question? The matcher behind both eval modes.

Tables (``match_table``): a result matches when it has the expected number of rows and, for
every expected column, some column of the result (any name, any position; extra columns are
allowed) holds the same values row for row. Rows are compared in order only when the question
asks for an order; otherwise as a multiset. Cells compare as:

- numbers (ints, floats, decimals, numeric strings): equal within ``rel_tol`` of the larger
  magnitude or ``abs_tol``; a column marked as a ratio also matches the value x 100 (a win
  rate of 0.25 shown as 25);
- dates and timestamps: by their ISO date (``2026-11-01``);
- text: case-insensitively, surrounding spaces ignored; NULL matches NULL (and NaN).

Text (``match_text``), the fallback for a model's final answer: every expected cell must appear
in the answer: numbers as written in prose (``$1,234,567.89``, ``1.2M``, ``25%``) within
``TEXT_REL_TOL`` (abbreviated figures such as ``$1.2M`` within half a unit of their last digit),
text by case-insensitive substring. Only for small answers (``TEXT_MAX_CELLS``), where it is
unlikely that numbers line up by accident.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from itertools import product
from typing import Any

TABLE_REL_TOL = 0.005  # a model's own rounding of averages and ratios
GOLD_REL_TOL = 1e-6  # gold SQL is exact: only float noise
TEXT_REL_TOL = 0.005
TEXT_MAX_CELLS = 12
_MAX_ASSIGNMENTS = 5_000


@dataclass(frozen=True)
class Expected:
    """An expected result: column names (for reading only) and rows of plain values."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    ordered: bool = False
    ratio_columns: frozenset[str] = field(default_factory=frozenset)

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "rows": [[_json_value(v) for v in row] for row in self.rows],
            "ordered": self.ordered,
        }


@dataclass(frozen=True)
class Match:
    ok: bool
    reason: str  # why not, or how it matched


def match_table(
    expected: Expected,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    rel_tol: float = TABLE_REL_TOL,
    abs_tol: float = 0.01,
) -> Match:
    if len(rows) != len(expected.rows):
        return Match(False, f"{len(rows)} rows, expected {len(expected.rows)}")
    width = len(expected.columns)
    if not expected.rows:
        return Match(True, "both empty")
    actual = [[_normal(v) for v in row] for row in rows]
    wanted = [[_normal(v) for v in row] for row in expected.rows]
    if any(len(row) != len(columns) for row in actual):
        return Match(False, "rows and columns disagree in length")
    ratio = [name in expected.ratio_columns for name in expected.columns]

    def same(a: Any, b: Any, j: int) -> bool:
        return _same(a, b, rel_tol, abs_tol) or (ratio[j] and _same_percent(a, b, rel_tol))

    candidates: list[list[int]] = []
    for j in range(width):
        column = [row[j] for row in wanted]
        found = [
            k
            for k in range(len(columns))
            if _same_multiset([row[k] for row in actual], column, lambda a, b, j=j: same(a, b, j))
        ]
        if not found:
            return Match(False, f"no column holds the expected {expected.columns[j]!r} values")
        candidates.append(found)
    tried = 0
    for assignment in product(*candidates):
        if len(set(assignment)) != width:
            continue
        tried += 1
        if tried > _MAX_ASSIGNMENTS:
            break
        if _rows_match(wanted, actual, assignment, same, expected.ordered):
            named = ", ".join(
                f"{e}={columns[k]}" for e, k in zip(expected.columns, assignment, strict=True)
            )
            return Match(True, f"columns {named}")
    order = "in order" if expected.ordered else "as a set"
    return Match(False, f"each column has the right values but the rows do not line up {order}")


def _rows_match(
    wanted: list[list[Any]],
    actual: list[list[Any]],
    assignment: tuple[int, ...],
    same: Any,
    ordered: bool,
) -> bool:
    def row_equal(w: list[Any], a: list[Any]) -> bool:
        return all(same(w[j], a[k], j) for j, k in enumerate(assignment))

    if ordered:
        return all(row_equal(w, a) for w, a in zip(wanted, actual, strict=True))
    unused = list(range(len(actual)))
    for w in wanted:
        hit = next((i for i in unused if row_equal(w, actual[i])), None)
        if hit is None:
            return False
        unused.remove(hit)
    return True


def _same_multiset(values: list[Any], expected: list[Any], same: Any) -> bool:
    unused = list(range(len(values)))
    for e in expected:
        hit = next((i for i in unused if same(e, values[i])), None)
        if hit is None:
            return False
        unused.remove(hit)
    return True


def _normal(value: Any) -> Any:
    """A cell as float, ISO date string, casefolded text or None."""
    if value is None:
        return None
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        number = float(value)  # type: ignore[arg-type]  # bool, int, Decimal, numpy scalars
        return None if math.isnan(number) else number
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return str(value.isoformat())[:10]
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ].*)?", text):
        return text[:10]
    parsed = _number(text)
    if parsed is not None:
        return parsed
    lowered = text.casefold()
    return None if lowered in ("", "nan", "nat", "none", "null") else lowered


def _number(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").strip()
    if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", cleaned):
        return float(cleaned)
    return None


def _same(a: Any, b: Any, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    return bool(a == b)


def _same_percent(a: Any, b: Any, rel_tol: float) -> bool:
    if not (isinstance(a, float) and isinstance(b, float)):
        return False
    # Percent shown with one or two decimals: half a unit of 0.01% is enough slack.
    return math.isclose(a * 100, b, rel_tol=rel_tol, abs_tol=0.05) or math.isclose(
        a, b * 100, rel_tol=rel_tol, abs_tol=0.05
    )


# --- numbers in prose ---------------------------------------------------------------------------

_PROSE_NUMBER = re.compile(
    r"(?<![\w.])[-−]?\$?\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s?([kKmMbB]|thousand|million|billion)?"
    r"(?![\w])\s?(%)?"
)
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "b": 1e9, "billion": 1e9}


@dataclass(frozen=True)
class ProseNumber:
    value: float
    slack: float  # half a unit of the last digit written, in the number's own scale
    percent: bool


def numbers_in(text: str) -> list[ProseNumber]:
    """Every number written in ``text``, with how precisely it was written."""
    found = []
    for m in _PROSE_NUMBER.finditer(text):
        whole, fraction, suffix, percent = m.groups()
        digits = whole.replace(",", "") + (fraction or "")
        value = float(digits)
        decimals = len(fraction) - 1 if fraction else 0
        scale = _SCALE.get((suffix or "").lower(), 1.0)
        if m.group(0).lstrip().startswith(("-", "−")):
            value = -value
        slack = 0.5 * 10 ** (-decimals) * scale if suffix else 0.0
        found.append(ProseNumber(value * scale, slack, percent is not None))
    return found


def match_text(expected: Expected, text: str, *, rel_tol: float = TEXT_REL_TOL) -> Match:
    cells = [(v, expected.columns[j]) for row in expected.rows for j, v in enumerate(row)]
    if not cells:
        return Match(False, "an empty result cannot be checked in prose")
    if len(cells) > TEXT_MAX_CELLS:
        return Match(False, f"{len(cells)} values are too many to check in prose")
    numbers = numbers_in(text)
    folded = text.casefold()
    for value, column in cells:
        cell = _normal(value)
        if cell is None:
            continue
        if isinstance(cell, float):
            ratio = column in expected.ratio_columns
            if not any(_prose_equal(cell, n, rel_tol, ratio) for n in numbers):
                return Match(False, f"{column}={value} is not in the answer")
        elif str(cell) not in folded:
            return Match(False, f"{column}={value!r} is not in the answer")
    return Match(True, "every expected value appears in the answer")


def _prose_equal(expected: float, written: ProseNumber, rel_tol: float, ratio: bool) -> bool:
    targets = [expected * 100, expected] if ratio else [expected]
    for target in targets:
        tolerance = max(written.slack, rel_tol * abs(target), 0.005)
        if abs(target - written.value) <= tolerance:
            return True
    return False


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
