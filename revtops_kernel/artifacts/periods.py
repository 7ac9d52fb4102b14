"""Turn the dates a conversation's SQL was written for into notebook parameters.

The model writes literal dates ("this quarter" becomes ``'2026-01-01'`` .. ``'2026-04-01'``).
For a notebook that papermill re-runs on schedule, those dates should be parameters. When all
the exported queries together use one or two distinct ISO dates, they become ``period_start``
(the earlier) and ``period_end``: each literal is replaced in the syntax tree by
``CAST(:period_start AS DATE)`` and the value is bound at run time. With more dates than that
the queries are exported as written: guessing which date means what would change answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_TYPES = {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ}
PARAMETER_NAMES = ("period_start", "period_end")


@dataclass(frozen=True)
class Period:
    """The dates found, by parameter name (empty when the queries are kept as written)."""

    defaults: dict[str, str]

    def rewrite(self, sql: str, dialect: str) -> tuple[str, list[str]]:
        """``sql`` with its date literals as parameters, and the parameters it now binds."""
        if not self.defaults:
            return sql, []
        tree = _parse(sql, dialect)
        if tree is None:
            return sql, []
        names = {value: name for name, value in self.defaults.items()}
        used: list[str] = []
        for literal, node in _date_literals(tree):
            name = names[literal.this]
            replacement = exp.Cast(this=exp.Var(this=f":{name}"), to=exp.DataType.build("date"))
            node.replace(replacement)
            if name not in used:
                used.append(name)
        if not used:
            return sql, []
        return tree.sql(dialect, pretty=True), sorted(used, key=PARAMETER_NAMES.index)


def find_period(sqls: list[str], dialect: str) -> Period:
    dates: set[str] = set()
    for sql in sqls:
        tree = _parse(sql, dialect)
        if tree is not None:
            dates |= {literal.this for literal, _ in _date_literals(tree)}
    if not 1 <= len(dates) <= len(PARAMETER_NAMES):
        return Period({})
    return Period(dict(zip(PARAMETER_NAMES, sorted(dates), strict=False)))


def _parse(sql: str, dialect: str) -> exp.Expr | None:
    try:
        tree: exp.Expr = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    return tree


def _date_literals(tree: exp.Expr) -> list[tuple[exp.Literal, exp.Expr]]:
    """ISO date string literals, each with the node to replace (its date cast, if any)."""
    found: list[tuple[exp.Literal, exp.Expr]] = []
    for literal in tree.find_all(exp.Literal):
        if not literal.is_string or not ISO_DATE.match(literal.this):
            continue
        parent = literal.parent
        if isinstance(parent, exp.Cast) and parent.to.this in DATE_TYPES:
            found.append((literal, parent))
        elif isinstance(parent, exp.Cast):
            continue  # cast to text or a number: not a date the query filters on
        else:
            found.append((literal, literal))
    return found
