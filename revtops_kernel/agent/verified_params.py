"""Parameters of verified queries: their types, defaults and validation.

A parameter arrives from the model as JSON (strings, numbers, null) or from Python (``date``
objects); ``Param.coerce`` turns it into the one Python type the SQL binds, or raises
``VerifiedQueryError`` naming the parameter and saying what would be accepted. Date defaults
are relative to "today" (UTC), resolved when the query runs, so a cached tool description never
goes stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from revtops_kernel.errors import VerifiedQueryError

ParamKind = Literal["date", "integer", "text", "choice"]

# Relative date defaults, by name (the name is what the catalogue shows).
DATE_DEFAULTS: dict[str, Callable[[date], date]] = {
    "today": lambda today: today,
    "start of this quarter": lambda today: date(today.year, 3 * ((today.month - 1) // 3) + 1, 1),
    "end of this quarter": lambda today: _quarter_end(today),
    "start of this year": lambda today: date(today.year, 1, 1),
    "end of this year": lambda today: date(today.year, 12, 31),
    "one year ago": lambda today: _years_before(today, 1),
    "90 days ago": lambda today: today - timedelta(days=90),
    "start of this month": lambda today: today.replace(day=1),
    "end of next month": lambda today: _month_end(_month_end(today) + timedelta(days=1)),
}
TEXT_MAX_LENGTH = 200
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _quarter_end(day: date) -> date:
    first_month_next = 3 * ((day.month - 1) // 3) + 4
    if first_month_next > 12:
        return date(day.year, 12, 31)
    return date(day.year, first_month_next, 1) - timedelta(days=1)


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@dataclass(frozen=True)
class Param:
    """One named parameter (``:name`` in the SQL)."""

    name: str
    kind: ParamKind
    description: str
    default: Any = None  # a value, a DATE_DEFAULTS name for dates, or None (optional, unset)
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if (
            self.kind == "date"
            and isinstance(self.default, str)
            and (self.default not in DATE_DEFAULTS)
        ):
            raise ValueError(f"{self.name}: unknown relative date {self.default!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice parameter needs choices")

    def resolve_default(self, today: date) -> Any:
        if self.kind == "date" and isinstance(self.default, str):
            return DATE_DEFAULTS[self.default](today)
        return self.default

    def coerce(self, query: str, value: Any) -> Any:
        """The value as the SQL binds it; None stays None (the SQL treats it as "any")."""
        if value is None:
            return None
        if self.kind == "date":
            return self._date(query, value)
        if self.kind == "integer":
            return self._integer(query, value)
        if self.kind == "choice":
            text = str(value).strip().lower() if isinstance(value, str) else None
            if text not in self.choices:
                raise VerifiedQueryError(
                    query, f"{value!r} is not one of {', '.join(self.choices)}", param=self.name
                )
            return text
        if not isinstance(value, str):
            raise VerifiedQueryError(
                query, f"expected text, got {type(value).__name__}", param=self.name
            )
        text = value.strip()
        if not text:
            return None
        if len(text) > TEXT_MAX_LENGTH:
            raise VerifiedQueryError(
                query, f"longer than {TEXT_MAX_LENGTH} characters", param=self.name
            )
        return text

    def _date(self, query: str, value: Any) -> date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str) and _ISO_DATE.match(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError as exc:
                raise VerifiedQueryError(query, f"{value!r}: {exc}", param=self.name) from exc
        raise VerifiedQueryError(
            query, f"{value!r} is not a date; use YYYY-MM-DD (e.g. 2026-03-31)", param=self.name
        )

    def _integer(self, query: str, value: Any) -> int:
        number: int | None = None
        whole_float = isinstance(value, float) and value.is_integer()
        digits = isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value)
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif whole_float or digits:
            number = int(value)
        if number is None:
            raise VerifiedQueryError(query, f"{value!r} is not a whole number", param=self.name)
        low = self.minimum if self.minimum is not None else -(2**31)
        high = self.maximum if self.maximum is not None else 2**31 - 1
        if not low <= number <= high:
            raise VerifiedQueryError(
                query, f"{number} is out of range ({low} to {high})", param=self.name
            )
        return number

    def short(self) -> str:
        """``days (integer 1-3650, default 30)``: the catalogue's compact form."""
        if self.kind == "integer" and self.minimum is not None and self.maximum is not None:
            kind = f"{self.minimum}-{self.maximum}"
        elif self.kind == "choice":
            kind = "|".join(self.choices)
        else:
            kind = self.kind
        return f"{self.name} ({kind}" + (f", default {self.default})" if self.default else ")")


# Parameters several queries share.
def owner_param() -> Param:
    return Param("owner", "text", "Only deals owned by this rep: full name or email.")


def pipeline_param() -> Param:
    return Param("pipeline", "text", "Only this pipeline, by name (e.g. New Business).")


def as_of_param() -> Param:
    return Param("as_of", "date", "The day to measure from.", default="today")


def start_param(default: str, what: str) -> Param:
    return Param("start_date", "date", f"First day of the window ({what}).", default=default)


def end_param(default: str, what: str) -> Param:
    return Param(
        "end_date", "date", f"Last day of the window, inclusive ({what}).", default=default
    )
