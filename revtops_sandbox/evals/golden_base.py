"""What every golden question is made of: the question record and the helpers that derive
expected answers (``golden`` and ``golden_history`` hold the questions)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from revtops_sandbox.evals.match import Expected
from revtops_sandbox.evals.truth import DealFact, Truth, day_start

AS_OF = date(2026, 11, 1)  # the sandbox's anchor: questions are asked "as of" this day


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    question: str
    sql: str
    expected: Callable[[Truth], Expected]
    category: str
    note: str | None = None  # how the question is read, where it could be read two ways


def money(values: Iterable[Decimal | None]) -> Decimal:
    return sum((v for v in values if v is not None), Decimal(0))


def open_deals(t: Truth) -> list[DealFact]:
    return [d for d in t.deals if d.is_open]


def closed_between(t: Truth, start: date, end: date) -> list[DealFact]:
    return [d for d in t.deals if d.is_closed and start <= d.close_date <= end]


def within(moment: datetime, start: date, end_exclusive: date) -> bool:
    return day_start(start) <= moment < day_start(end_exclusive)


def one(columns: tuple[str, ...], *values: Any, ratio: Iterable[str] = ()) -> Expected:
    return Expected(columns, (tuple(values),), ratio_columns=frozenset(ratio))


def table(
    columns: tuple[str, ...],
    rows: Iterable[tuple[Any, ...]],
    *,
    ordered: bool = False,
    ratio: Iterable[str] = (),
) -> Expected:
    return Expected(columns, tuple(rows), ordered=ordered, ratio_columns=frozenset(ratio))


OPEN_SQL = "deleted_at IS NULL AND NOT is_closed"
OPEN_D = "d.deleted_at IS NULL AND NOT d.is_closed"
