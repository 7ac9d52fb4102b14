"""Evaluating SOQL against records: typed literals, WHERE comparisons and ORDER BY.

Salesforce is strict about literal types (an unquoted datetime for a dateTime field, a quoted
string for an Id), so every comparison checks its literal against the field's type first and
raises the INVALID_FIELD error Salesforce would. Strings compare case-insensitively, as SOQL
does; relative date literals (TODAY, LAST_N_DAYS:n) resolve against the company's clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from revtops_sandbox.company import DAY_MS, Company, sf_id, sf_seq
from revtops_sandbox.salesforce_schema import Field
from revtops_sandbox.soql import Comparison, Literal, SOQLError

_STRINGY = {"id", "reference", "string", "picklist", "textarea", "email", "url", "phone"}
_NUMERIC = {"currency", "percent", "double", "int"}


def order_rows(rows: list[Any], order: list[tuple[Callable[[Any], Any], bool, bool]]) -> list[Any]:
    """ORDER BY: stable sorts from the last key to the first; nulls first unless NULLS LAST."""
    for get, descending, nulls_last in reversed(order):
        keyed = [(get(r), r) for r in rows]
        present = [(v.lower() if isinstance(v, str) else v, r) for v, r in keyed if v is not None]
        present.sort(key=lambda p: p[0], reverse=descending)
        missing = [r for v, r in keyed if v is None]
        ordered = [r for _, r in present]
        rows = ordered + missing if nulls_last else missing + ordered
    return rows


def _type_error(fld: Field, lit: Literal) -> SOQLError:
    if fld.type in ("datetime", "date"):
        kind = "dateTime" if fld.type == "datetime" else "date"
        text = f"must be of type {kind} and should not be enclosed in quotes"
    elif fld.type == "boolean":
        text = "must be of type boolean and should not be enclosed in quotes"
    elif fld.type in _NUMERIC:
        kind = "integer" if fld.type == "int" else "double"
        text = f"must be of type {kind} and should not be enclosed in quotes"
    else:
        text = "must be of type string and should be enclosed in quotes"
    return SOQLError(
        f"value of filter criterion for field '{fld.name}' {text}", "INVALID_FIELD", lit.pos + 1
    )


def _coerce(fld: Field, lit: Literal, company: Company) -> Any:
    """The literal as a comparable value: a scalar, or a half-open (lo, hi) range."""
    if lit.kind == "null":
        return None
    t = fld.type
    if t == "datetime":
        if lit.kind == "datetime":
            return lit.value
        if lit.kind == "relative":
            return _relative(lit.value, company.clock_ms, DAY_MS)
    elif t == "date":
        if lit.kind == "date":
            return lit.value
        if lit.kind == "relative":
            lo, hi = _relative(lit.value, company.clock_ms, DAY_MS)
            return (lo // DAY_MS, hi // DAY_MS)
    elif t == "boolean":
        if lit.kind == "boolean":
            return lit.value
    elif t in _NUMERIC:
        if lit.kind == "number":
            return lit.value
    elif lit.kind == "string":
        if t in ("id", "reference"):
            return _normalize_id(lit)
        return lit.value.lower()
    raise _type_error(fld, lit)


def _normalize_id(lit: Literal) -> str:
    value = str(lit.value)
    if not re.fullmatch(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?", value):
        raise SOQLError(f"invalid ID field: {value}", "INVALID_QUERY_FILTER_OPERATOR", lit.pos + 1)
    if len(value) == 15:
        seq = sf_seq(value)
        if seq is not None:
            value = sf_id(value[:3], seq)
    return value.lower()


def _relative(value: tuple[str, int], now_ms: int, day: int) -> tuple[int, int]:
    word, n = value
    today = now_ms - now_ms % day
    ranges = {
        "TODAY": (today, today + day),
        "YESTERDAY": (today - day, today),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_N_DAYS": (today - n * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
    }
    return ranges[word]


def compile_comparison(
    get: Callable[[Any], Any], fld: Field, cond: Comparison, company: Company
) -> Callable[[Any], bool]:
    op = cond.op
    values = [_coerce(fld, lit, company) for lit in cond.values]
    stringy = fld.type in _STRINGY

    def norm(v: Any) -> Any:
        return v.lower() if stringy and isinstance(v, str) else v

    if op == "LIKE":
        if not stringy:
            raise SOQLError(f"invalid operator on {fld.name}: LIKE", "INVALID_FIELD", cond.pos + 1)
        pattern = re.escape(values[0]).replace("%", ".*").replace("_", ".")
        rx = re.compile(f"^{pattern}$", re.IGNORECASE | re.DOTALL)
        return lambda r: (v := get(r)) is not None and rx.match(v) is not None
    if op in ("IN", "NOT IN"):
        wanted = set(values)
        if op == "IN":
            return lambda r: norm(get(r)) in wanted
        return lambda r: norm(get(r)) not in wanted
    x = values[0]
    if x is None:
        if op not in ("=", "!="):
            raise SOQLError(f"invalid operator for null: {op}", "MALFORMED_QUERY", cond.pos + 1)
        return (lambda r: get(r) is None) if op == "=" else (lambda r: get(r) is not None)
    if isinstance(x, tuple):  # a relative date range [lo, hi)
        lo, hi = x
        tests: dict[str, Callable[[Any], bool]] = {
            "=": lambda v: lo <= v < hi,
            "!=": lambda v: not lo <= v < hi,
            "<": lambda v: v < lo,
            "<=": lambda v: v < hi,
            ">": lambda v: v >= hi,
            ">=": lambda v: v >= lo,
        }
    else:
        tests = {
            "=": lambda v: v == x,
            "!=": lambda v: v != x,
            "<": lambda v: v < x,
            "<=": lambda v: v <= x,
            ">": lambda v: v > x,
            ">=": lambda v: v >= x,
        }
    test = tests[op]
    if op == "!=":
        return lambda r: (v := norm(get(r))) is None or test(v)
    return lambda r: (v := norm(get(r))) is not None and test(v)
