"""The SQL guard: every query the assistant (or a user, through ``revtops sql`` / ``sql()``)
writes passes here before it reaches the store.

1. Check: parse with sqlglot in the backend's dialect (a parse error is a refusal, never a
   fallback to the raw string); exactly one statement; every node of the tree must be an
   allowed node type (``guard_rules``), every function an allowed function, every table a
   readable business table named without catalog or schema, or a CTE in scope.
2. Rewrite: each business-table reference becomes a subquery filtered to the caller's
   organization, under the reference's own alias; every CTE is renamed to a fresh name, so a
   CTE named like a real table (``WITH deals AS (...)``) can neither hide a real table from the
   rewrite nor be mistaken for one; the outermost query gets a LIMIT of at most max_rows + 1
   (so a cut result is detectable). One rewrite is about plans, not access: a timestamptz
   column compared with a date constant gets the constant cast to TIMESTAMPTZ, the same value,
   so PostgreSQL can use the column's statistics under row-level security, and
   ``CAST(column AS DATE) = d`` becomes the same range on the column (``guard_dates``); on
   PostgreSQL a group's first row picked by ``row_number() OVER (PARTITION BY ... ORDER BY ...)
   = 1`` becomes the same ``DISTINCT ON``, which the planner can estimate
   (``guard_first_rows``).
3. The SQL that runs is generated from the checked, rewritten tree, never the input string.

``run_guarded`` then executes it on the read-only path (``store.query.read_sql``), which adds
the database-side boundaries: org roles with row-level security on PostgreSQL, org-scoped
temporary views on a read-only handle on DuckDB, timeouts on both.

Refusals are ``QueryRefusedError`` with a message written for the model: what was refused,
why, and what to write instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError, UnsupportedError

from revtops_kernel.agent.guard_dates import cast_date_constants, int_literal, is_comparison
from revtops_kernel.agent.guard_errors import in_user_terms
from revtops_kernel.agent.guard_first_rows import first_rows_as_distinct_on
from revtops_kernel.agent.guard_rules import (
    ALLOWED_FUNCTIONS,
    ALLOWED_NODES,
    ALLOWED_TABLE_FUNCTIONS,
)
from revtops_kernel.errors import QueryError, QueryRefusedError
from revtops_kernel.settings import (
    DEFAULT_QUERY_MAX_ROWS,
    DEFAULT_QUERY_TIMEOUT_SECONDS,
    ORG_ID_PATTERN,
)
from revtops_kernel.store.database import Backend, Database
from revtops_kernel.store.query import QueryResult, read_sql
from revtops_kernel.store.schema import readable_tables

# sqlglot warns on stderr when it falls back to a generic Command; we refuse those anyway.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECTS = tuple(backend.sqlglot_dialect for backend in Backend)  # duckdb, postgres
DEFAULT_MAX_ROWS = DEFAULT_QUERY_MAX_ROWS
DEFAULT_TIMEOUT_SECONDS = DEFAULT_QUERY_TIMEOUT_SECONDS
# Alias of the wrapper used when the outer LIMIT cannot be tightened in place.
RESULT_ALIAS = "revtops_result"
CTE_PREFIX = "revtops_cte_"
# Longer SQL is refused before parsing: it bounds the guard's own time and memory.
MAX_SQL_CHARS = 100_000
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GuardedQuery:
    sql: str  # the rewritten SQL to execute
    tables: frozenset[str]  # business tables it reads
    limit: int  # the row cap of the outermost query


def guard_sql(sql: str, *, dialect: str, org: str, max_rows: int) -> GuardedQuery:
    """Check ``sql`` and rewrite it to read only organization ``org``'s rows.

    Raises ``QueryRefusedError`` saying what was refused and why. The answer is a pure function
    of the arguments, so it is remembered: sqlglot parses ~0.1 ms a token, and a verified query
    of 3,000 tokens (``deal_risks``) would spend half a second here on every run.
    """
    return _guard_sql(sql, dialect, org, max_rows)


@lru_cache(maxsize=128)
def _guard_sql(sql: str, dialect: str, org: str, max_rows: int) -> GuardedQuery:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
    if not ORG_ID_PATTERN.match(org):
        raise QueryRefusedError(f"not an organization id: {org!r}")
    if max_rows < 1:
        raise ValueError("max_rows must be >= 1")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefusedError(
            f"refused: the query is {len(sql):,} characters long, over {MAX_SQL_CHARS:,}; "
            "write a shorter one (aggregate in SQL rather than listing values)"
        )
    try:
        tree = _parse_one(sql, dialect)
        comparisons, cte_names = _check_nodes(tree)
        cast_date_constants(comparisons, cte_names)
        if dialect == Backend.POSTGRESQL.sqlglot_dialect:
            # Plans, not answers: PostgreSQL estimates DISTINCT ON, never `row_number() = 1`.
            first_rows_as_distinct_on(tree)
        rewriter = _Rewriter(org=org, readable=_readable_scopes())
        tree = rewriter.rewrite(tree)
        tree, limit = _cap_rows(tree, max_rows + 1)
    except QueryRefusedError:
        raise
    except RecursionError as exc:
        raise QueryRefusedError(
            "refused: the query nests too deeply to check; flatten it with CTEs"
        ) from exc
    except Exception as exc:  # a tree shape the checks did not expect: refuse, never run it
        raise QueryRefusedError(
            f"refused: the query could not be checked ({type(exc).__name__}: {exc}); simplify it"
        ) from exc
    try:
        # No comments in the output: a comment re-rendered by the generator is text we did not
        # check (a line comment holding "*/" would close the block comment it becomes).
        generated = tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE, comments=False)
    except UnsupportedError as exc:
        raise QueryRefusedError(f"refused: {dialect} cannot run this construct ({exc})") from exc
    except Exception as exc:  # sqlglot failing on odd input must refuse, not crash the caller
        # (RecursionError included: the generator recurses as deeply as the parser did).
        raise QueryRefusedError(
            f"refused: the query could not be rewritten safely ({type(exc).__name__}: {exc}); "
            "simplify it"
        ) from exc
    return GuardedQuery(
        sql=generated,
        tables=frozenset(rewriter.tables),
        limit=limit,
    )


def run_guarded(
    db: Database,
    sql: str,
    *,
    org: str,
    params: Mapping[str, Any] | None = None,
    max_rows: int | None = None,
    timeout: float | None = None,
) -> QueryResult:
    """Guard ``sql`` for ``org`` and run it on the read-only path; ``:name`` binds ``params``."""
    rows = max_rows or DEFAULT_MAX_ROWS
    dialect = db.backend.sqlglot_dialect
    guarded = guard_sql(sql, dialect=dialect, org=org, max_rows=rows)
    try:
        return read_sql(
            db,
            guarded.sql,
            params,
            org=org,
            max_rows=rows,
            timeout=timeout or DEFAULT_TIMEOUT_SECONDS,
        )
    except QueryError as exc:
        # An unknown column is worded by the database about the rewrite (the org subquery,
        # the renamed CTE): say it in the terms of the SQL as written.
        worded = in_user_terms(exc, sql, dialect)
        if worded is exc:
            raise
        raise worded from exc


def readable_table_names() -> list[str]:
    return sorted(_readable_scopes())


# --- 1. parse and check ---------------------------------------------------------------------


def _parse_one(sql: str, dialect: str) -> exp.Expr:
    if not sql or not sql.strip():
        raise QueryRefusedError("refused: the query is empty; write one SELECT statement")
    try:
        statements = sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE)
    except (ParseError, TokenError) as exc:
        raise QueryRefusedError(
            f"refused: the query does not parse as {dialect} SQL ({_first_line(exc)}); "
            "fix the syntax and send one SELECT statement"
        ) from exc
    except SqlglotError as exc:
        raise QueryRefusedError(f"refused: the query could not be read ({exc})") from exc
    present = [s for s in statements if s is not None]
    if len(present) != 1:
        raise QueryRefusedError(
            f"refused: expected exactly one statement, got {len(present)}; "
            "send a single SELECT (combine parts with CTEs or UNION ALL)"
        )
    tree = present[0]
    if not isinstance(tree, exp.Query | exp.Values):
        raise QueryRefusedError(
            f"refused: only a read-only SELECT (or WITH ... SELECT, UNION, VALUES) can run, "
            f"not {_statement_kind(tree, sql)}"
        )
    return tree


def _check_nodes(tree: exp.Expr) -> tuple[list[exp.Expr], set[str]]:
    """Every node must be allowed; refuse the first one that is not, saying which and why.

    Returns, from the same walk, the comparisons and the CTE names (lowercase) for the date
    rewrite (``guard_dates``).
    """
    comparisons: list[exp.Expr] = []
    cte_names: set[str] = set()
    for node in tree.walk():
        if is_comparison(node):
            comparisons.append(node)
        elif isinstance(node, exp.CTE):
            cte_names.add(node.alias_or_name.lower())
        if type(node) not in ALLOWED_NODES:
            if isinstance(node, exp.Func):
                _check_function(node)
                continue
            raise QueryRefusedError(_node_refusal(node))
        if isinstance(node, exp.Select):
            _check_select(node)
        elif isinstance(node, exp.Table):
            _check_table_shape(node)
        elif isinstance(node, exp.Column) and (node.args.get("db") or node.args.get("catalog")):
            raise QueryRefusedError(
                f"refused: column {node.sql()!r} is qualified with a schema or catalog; "
                "qualify columns with the table name or alias only"
            )
        elif isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            raise QueryRefusedError(
                f"refused: schema-qualified function {node.sql()!r}; call functions by "
                "their plain name"
            )
        elif isinstance(node, exp.Placeholder) and not _is_named(node):
            raise QueryRefusedError(
                "refused: positional parameters ($1, ?) are not supported; use :name"
            )
    return comparisons, cte_names


def _check_select(select: exp.Select) -> None:
    if select.args.get("into"):
        raise QueryRefusedError("refused: SELECT ... INTO writes a table; remove the INTO clause")
    if select.args.get("locks"):
        raise QueryRefusedError(
            "refused: locking clauses (FOR UPDATE / FOR SHARE) are not allowed in read-only "
            "queries; remove them"
        )


def _check_table_shape(table: exp.Table) -> None:
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        raise QueryRefusedError(
            f"refused: {table.sql()!r} names a schema or catalog; use the bare table name "
            f"(one of: {', '.join(readable_table_names())})"
        )
    source = table.this
    if isinstance(source, exp.Func):
        name = _function_names(source)[0]
        if not any(n in ALLOWED_TABLE_FUNCTIONS for n in _function_names(source)):
            raise QueryRefusedError(
                f"refused: table function {name}() cannot be a row source; read from the "
                f"business tables ({', '.join(readable_table_names())}) or generate_series/unnest"
            )
    elif not isinstance(source, exp.Identifier):
        raise QueryRefusedError(f"refused: {table.sql()!r} is not a table name")
    for key in ("joins", "pivots", "laterals", "sample", "version", "when", "changes"):
        if table.args.get(key):
            raise QueryRefusedError(f"refused: {key} on a table reference is not supported")


def _check_function(func: exp.Func) -> None:
    names = _function_names(func)
    if not any(n in ALLOWED_FUNCTIONS for n in names):
        raise QueryRefusedError(
            f"refused: function {names[0]}() is not on the allowlist of read-only analytic "
            "functions (aggregates, window, date, string, math, JSON); rewrite without it"
        )


def _function_names(func: exp.Func) -> list[str]:
    if isinstance(func, exp.Anonymous):
        return [str(func.this).lower()]
    return [name.lower() for name in type(func).sql_names()] + [func.key.lower()]


def _is_named(node: exp.Placeholder) -> bool:
    return bool(PARAMETER_NAME.match(node.name or ""))


def _node_refusal(node: exp.Expr) -> str:
    kind = type(node).__name__
    if isinstance(node, exp.DML | exp.DDL | exp.Drop | exp.Alter | exp.TruncateTable):
        return (
            f"refused: {kind.upper()} changes data or schema ({node.sql()[:80]!r}); only "
            "read-only SELECT queries can run, including inside CTEs"
        )
    what = {
        "Command": "a command",
        "Lock": "a locking clause",
        "Into": "SELECT ... INTO",
        "Parameter": "a positional or session parameter",
        "SessionParameter": "a session variable",
        "TableSample": "TABLESAMPLE",
        "Pivot": "PIVOT",
    }.get(kind, kind)
    snippet = node.sql()[:80]
    return (
        f"refused: {what} ({snippet!r}) is not allowed in a read-only query; use plain "
        "SELECT syntax (joins, CTEs, window functions, CASE, casts)"
    )


def _statement_kind(tree: exp.Expr, sql: str) -> str:
    if isinstance(tree, exp.Command):
        return f"a {str(tree.this).upper()} command"
    return f"a {type(tree).__name__.upper()} statement"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


# --- 2. rewrite -----------------------------------------------------------------------------


def _readable_scopes() -> dict[str, str]:
    """Readable table -> the column holding its organization."""
    return {
        name: ("id" if name == "organizations" else "organization_id") for name in readable_tables()
    }


@dataclass
class _Rewriter:
    """Scope CTEs, rename them, and filter every business table to one organization."""

    org: str
    readable: dict[str, str]
    tables: set[str] = field(default_factory=set)
    placeholders: set[str] = field(default_factory=set)  # :name parameters seen
    _next_cte: int = 0

    def rewrite(self, tree: exp.Expr) -> exp.Expr:
        """Rewrite ``tree`` in place (the root, a query, is never itself replaced).

        Depth-first with an explicit stack, each node paired with the CTE names in scope there
        (name -> new name), so that long AND/OR chains do not exhaust Python's recursion.
        """
        stack: list[tuple[exp.Expr, dict[str, str]]] = [(tree, {})]
        while stack:
            node, ctes = stack.pop()
            if isinstance(node, exp.Table):
                replacement = self._table(node, ctes)
                if replacement is node:  # an allowed table function: its arguments next
                    stack.append((node.this, ctes))
                else:
                    node.replace(replacement)  # a scoped subquery or a renamed CTE: done
                continue
            if isinstance(node, exp.Placeholder):
                # Rendered as ``:name``, the style read_sql binds (a Var is emitted verbatim).
                self.placeholders.add(node.name)
                node.replace(exp.Var(this=f":{node.name}"))
                continue
            with_ = node.args.get("with_") or node.args.get("with")
            if isinstance(with_, exp.With):
                ctes = self._with(with_, ctes, stack)
            stack.extend((child, ctes) for child in node.iter_expressions() if child is not with_)
        return tree

    def _with(
        self, with_: exp.With, outer: dict[str, str], stack: list[tuple[exp.Expr, dict[str, str]]]
    ) -> dict[str, str]:
        """Rename the CTEs of ``with_``; queue each body with the names it can see.

        Returns the names the query under the WITH sees: the outer ones and all of these.
        """
        scope = dict(outer)
        ctes = [cte for cte in with_.expressions if isinstance(cte, exp.CTE)]
        fresh = {}
        for cte in ctes:
            self._next_cte += 1
            fresh[id(cte)] = f"{CTE_PREFIX}{self._next_cte}"
        if with_.args.get("recursive"):
            # WITH RECURSIVE: each CTE sees itself and its siblings.
            scope.update({cte.alias_or_name.lower(): fresh[id(cte)] for cte in ctes})
        for cte in ctes:
            stack.append((cte.this, dict(scope)))
            scope[cte.alias_or_name.lower()] = fresh[id(cte)]
            alias = cte.args.get("alias")
            columns = alias.args.get("columns") if isinstance(alias, exp.TableAlias) else None
            cte.set(
                "alias",
                exp.TableAlias(this=exp.to_identifier(fresh[id(cte)]), columns=columns),
            )
        return scope

    def _table(self, table: exp.Table, ctes: dict[str, str]) -> exp.Expr:
        source = table.this
        if not isinstance(source, exp.Identifier):  # an allowed table function
            return table
        name = source.name.lower()
        alias = table.args.get("alias")
        if name in ctes:
            renamed = exp.Table(this=exp.to_identifier(ctes[name]))
            renamed.set("alias", alias or exp.TableAlias(this=source.copy()))
            return renamed
        scope_column = self.readable.get(name)
        if scope_column is None:
            raise QueryRefusedError(
                f"refused: unknown table {source.sql()!r}; the readable tables are "
                f"{', '.join(sorted(self.readable))} (plus CTEs you define)"
            )
        self.tables.add(name)
        scoped = (
            exp.select("*")
            .from_(exp.Table(this=exp.to_identifier(name)))
            .where(
                exp.EQ(
                    this=exp.column(scope_column),
                    expression=exp.Literal.string(self.org),
                )
            )
        )
        return exp.Subquery(this=scoped, alias=alias or exp.TableAlias(this=source.copy()))


def _cap_rows(tree: exp.Expr, cap: int) -> tuple[exp.Expr, int]:
    """Put a LIMIT of at most ``cap`` on the outermost query; return it and the limit."""
    if isinstance(tree, exp.Select | exp.SetOperation) and not tree.args.get("fetch"):
        limit = tree.args.get("limit")
        if limit is None:
            tree.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
            return tree, cap
        current = int_literal(limit.expression) if isinstance(limit, exp.Limit) else None
        if current is not None:
            effective = max(0, min(current, cap))
            limit.set("expression", exp.Literal.number(effective))
            return tree, effective
    # A VALUES list, FETCH FIRST, or a LIMIT given as a parameter: cap from outside.
    inner = tree if isinstance(tree, exp.Subquery) else exp.Subquery(this=tree)
    inner.set("alias", exp.TableAlias(this=exp.to_identifier(RESULT_ALIAS)))
    wrapped = exp.select("*").from_(inner).limit(cap)
    return wrapped, cap
