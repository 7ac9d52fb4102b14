"""A query's unknown-column error in the terms of the SQL that was written, not of its rewrite.

The guard runs a rewritten query: each business table becomes an org-filtered subquery under the
reference's alias, each CTE gets a fresh name. When a column does not exist, the database words
its error about that rewrite: DuckDB says ``Values list "o" does not have a column named
"name"`` (the subquery), PostgreSQL quotes the rewritten SQL after ``LINE 1:``. Neither names
the table the alias stands for, nor its columns. ``explain_missing_column`` reads which column
the error is about, finds what the alias (or the query's tables, for an unqualified column)
refers to in the SQL as written, and says: the column, the alias and its table or CTE, the
columns it has (from the schema the guard allows, or the CTE's select list), and the closest
names.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from revtops_kernel.errors import QueryError
from revtops_kernel.store.schema import readable_tables

_PATTERNS = (
    # DuckDB, column qualified by an alias: the alias names the rewrite's subquery.
    re.compile(
        r'(?:Values list|Table) "(?P<alias>[^"]+)" does not have a column named "(?P<column>[^"]+)"'
    ),
    # DuckDB, unqualified column.
    re.compile(r'Referenced column "(?P<column>[^"]+)" not found in FROM clause'),
    # PostgreSQL (UndefinedColumn): ``column o.name does not exist``, ``column "nme" ...``.
    re.compile(
        r'column (?:(?P<alias>"[^"]+"|[^\s."]+)\.)?(?P<column>"[^"]+"|[^\s"]+) does not exist'
    ),
)
SHOWN_COLUMNS = 60  # a wide table's columns are listed in full up to here


@dataclass(frozen=True)
class _Source:
    """One thing a query reads from, as written: a table or CTE under an alias."""

    alias: str
    name: str  # the table's or CTE's name
    kind: str  # "table", "CTE" or "subquery"
    columns: tuple[str, ...] | None  # None: not known (a CTE selecting *)

    def describe(self) -> str:
        what = f"the {self.name} table" if self.kind == "table" else f"the {self.kind} {self.name}"
        if self.kind == "subquery":
            what = "a subquery"
        return what if self.alias.lower() == self.name.lower() else f"{self.alias} ({what})"


def in_user_terms(exc: QueryError, sql: str, dialect: str) -> QueryError:
    """``exc`` reworded for ``sql`` as written when it is about an unknown column, else itself
    (refusals and timeouts keep their own wording)."""
    if type(exc) is not QueryError:
        return exc
    explained = explain_missing_column(str(exc), sql, dialect)
    return exc if explained is None else QueryError(explained)


def explain_missing_column(message: str, sql: str, dialect: str) -> str | None:
    """The user-facing wording of an unknown-column ``message`` for ``sql`` (as written), or
    None when the message is about something else or the alias cannot be found."""
    found = _match(message)
    if found is None:
        return None
    alias, column = found
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    sources = _sources(tree)
    if alias is not None:
        source = next((s for s in sources if s.alias.lower() == alias.lower()), None)
        if source is None:
            return None
        return _qualified(alias, column, source)
    return _unqualified(column, sources)


def _match(message: str) -> tuple[str | None, str] | None:
    for pattern in _PATTERNS:
        hit = pattern.search(message)
        if hit is not None:
            alias = hit.groupdict().get("alias")
            return (alias.strip('"') if alias else None), hit.group("column").strip('"')
    return None


def _sources(tree: exp.Expr) -> list[_Source]:
    schema = readable_tables()
    ctes = {
        cte.alias_or_name.lower(): _named(cte.this) for cte in tree.find_all(exp.CTE)
    }  # fmt: skip
    sources: list[_Source] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function
        name = table.name
        alias = table.alias_or_name
        if name.lower() in ctes:
            sources.append(_Source(alias, name, "CTE", ctes[name.lower()]))
        elif name.lower() in schema:
            columns = tuple(column.name for column in schema[name.lower()].columns)
            sources.append(_Source(alias, name, "table", columns))
    for subquery in tree.find_all(exp.Subquery):
        if subquery.alias:
            sources.append(_Source(subquery.alias, subquery.alias, "subquery", _named(subquery)))
    return sources


def _named(query: exp.Expr) -> tuple[str, ...] | None:
    select = query.unnest() if isinstance(query, exp.Subquery) else query
    if not isinstance(select, exp.Query):
        return None
    names = select.named_selects
    return None if "*" in names or not names else tuple(names)


def _qualified(alias: str, column: str, source: _Source) -> str:
    text = f'column "{column}" does not exist in {source.describe()}'
    if source.columns is None:
        return text + "."
    return f"{text}. {_close(column, source.columns, source.alias)}{_listing(source)}"


def _unqualified(column: str, sources: list[_Source]) -> str | None:
    known = [s for s in sources if s.columns is not None]
    if not known:
        return None
    everything = [(s, c) for s in known for c in s.columns or ()]
    names = {f"{s.alias}.{c}": c for s, c in everything}
    close = difflib.get_close_matches(column.lower(), [c.lower() for c in names.values()], n=3)
    hint = ""
    if close:
        picks = [q for match in close for q, c in names.items() if c.lower() == match][:3]
        hint = f"Did you mean {' or '.join(picks)}? "
    listing = " ".join(_listing(s) for s in known)
    return f'column "{column}" is not a column of any table in the query. {hint}{listing}'


def _close(column: str, columns: tuple[str, ...], alias: str) -> str:
    close = difflib.get_close_matches(column.lower(), [c.lower() for c in columns], n=3)
    if not close:
        return ""
    by_lower = {c.lower(): c for c in columns}
    picks = [f"{alias}.{by_lower[c]}" for c in close]  # best match first
    return f"Did you mean {' or '.join(picks)}? "


def _listing(source: _Source) -> str:
    columns = list(source.columns or ())
    shown = ", ".join(columns[:SHOWN_COLUMNS])
    more = f" and {len(columns) - SHOWN_COLUMNS} more" if len(columns) > SHOWN_COLUMNS else ""
    return f"Columns of {source.describe()}: {shown}{more}."
