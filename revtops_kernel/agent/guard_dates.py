"""The guard's date rewrites, for PostgreSQL's planner: a timestamptz column compared with a
date (or a timestamp without time zone) constant gets that constant cast to TIMESTAMPTZ, and the
column's day compared with a date constant becomes a range on the column.

Why: under row-level security PostgreSQL uses a column's statistics, and its indexes, only
through leakproof operators. ``timestamptz >= timestamptz`` is leakproof; the cross-type
operators ``timestamptz >= date`` and ``timestamptz >= timestamp`` are not. So
``occurred_at >= DATE '2026-10-01'`` run as an org role was estimated at one row (the default
0.005 of a range), and a plan built on that guess ran 2-30 s (bench/results/
scale-queries-2026-12-06.txt, finding 3). ``occurred_at >= CAST(DATE '2026-10-01' AS
TIMESTAMPTZ)`` is planned from the column's histogram.

Same result, always: PostgreSQL compares a timestamptz with a date (or a timestamp) by
converting the date to a timestamptz in the session's TimeZone, which is exactly what the cast
does; the read path sets TimeZone to UTC on both backends (store.database), and DuckDB's casts
and comparisons follow its TimeZone the same way. The one difference is overflow: the cross-type
operators compare a date past timestamptz's range (294276 AD) correctly, where the cast raises.
So only constants known to be in range are cast: ISO date literals of years 1-9999,
CURRENT_DATE, those plus or minus a bounded number of days or a bounded interval, and ISO
timestamp literals.

Only columns that certainly are timestamptz columns of a business table qualify (the schema
says which): a qualified column whose qualifier names a business table in scope (not a CTE, a
subquery or a renamed column list), or an unqualified one that exactly one table of its own
SELECT has, all of whose sources are business tables. Anything else is left as written.

A second form reads the column as a day: ``CAST(occurred_at AS DATE) >= d`` (or ``=``, ``<``,
``BETWEEN``...) with ``d`` such a date constant. There the column sits inside a cast the planner
has no statistics for, so the comparison becomes a range on the column itself:
``occurred_at >= CAST(d AS TIMESTAMPTZ)``; ``= d`` is ``>= d AND < d + 1``; ``> d`` is
``>= d + 1``; ``<= d`` is ``< d + 1``. A timestamptz's date is the day whose midnight, in the
session TimeZone, is the last one at or before it, so the two agree in any TimeZone whose
midnights all exist (no daylight-saving jump at 00:00), UTC included, the read path's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache

from sqlalchemy import DateTime
from sqlglot import exp

from revtops_kernel.store.schema import readable_tables

COMPARISONS: tuple[type[exp.Expr], ...] = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Between,
    exp.In,
)
_COMPARISON_TYPES = frozenset(COMPARISONS)

_DATE = exp.DataType.Type.DATE
_TIMESTAMPS = frozenset({exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ})
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")
_ISO_TIMESTAMP = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?\s*$")
# Days added to a date constant, in all: year 9999 + 10^8 days stays under 294276 AD.
_MAX_DAYS = 100_000_000
_MAX_INTERVAL_NUMBER = 100_000  # each number of an interval literal ('100000 years' at most)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@lru_cache(maxsize=1)
def _schema() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """(business table -> its timestamptz columns, business table -> all its columns)."""
    tz: dict[str, frozenset[str]] = {}
    columns: dict[str, frozenset[str]] = {}
    for name, table in readable_tables().items():
        columns[name] = frozenset(c.name for c in table.columns)
        tz[name] = frozenset(
            c.name for c in table.columns if isinstance(c.type, DateTime) and c.type.timezone
        )
    return tz, columns


def cast_date_constants(candidates: list[exp.Expr], cte_names: set[str]) -> int:
    """Rewrite, in place, the comparisons among ``candidates`` (nodes of COMPARISONS types, as
    the guard's check walk collected them) that put a timestamptz column against a date or
    timestamp constant. ``cte_names``: every CTE name of the query, lowercase (a table reference
    with one of these names may be a CTE, so its columns are unknown). Returns how many
    constants were cast."""
    cast = 0
    for node in candidates:
        if _as_day_range(node, cte_names):
            cast += 1
        elif isinstance(node, exp.Between):
            sides = [node.args.get("low"), node.args.get("high")]
            if _is_timestamptz_column(node.this, node, cte_names):
                cast += _cast_all(s for s in sides if s is not None)
        elif isinstance(node, exp.In):
            values = node.expressions
            if (
                values
                and not node.args.get("query")
                and not node.args.get("unnest")
                and not node.args.get("field")
                and all(_constant_kind(v) for v in values)
                and _is_timestamptz_column(node.this, node, cte_names)
            ):
                cast += _cast_all(list(values))
        else:
            left, right = node.this, node.expression
            if _constant_kind(right) and _is_timestamptz_column(left, node, cte_names):
                cast += _cast_all([right])
            elif _constant_kind(left) and _is_timestamptz_column(right, node, cte_names):
                cast += _cast_all([left])
    return cast


def _cast_all(nodes: Iterable[exp.Expr | None]) -> int:
    count = 0
    for node in list(nodes):
        if node is not None and _constant_kind(node):
            node.replace(exp.Cast(this=node.copy(), to=exp.DataType.build("timestamptz")))
            count += 1
    return count


def _as_day_range(node: exp.Expr, cte_names: set[str]) -> bool:
    """Rewrite ``CAST(<timestamptz column> AS DATE) <op> <date constant>`` (either way round,
    or BETWEEN two date constants) into a range on the column; True if it did."""
    if isinstance(node, exp.Between):
        day, low, high = node.this, node.args.get("low"), node.args.get("high")
        if node.args.get("symmetric") or not _is_day_of_column(day, node, cte_names):
            return False
        if _constant_kind(low) != "date" or _constant_kind(high) != "date":
            return False
        assert isinstance(day, exp.Cast) and low is not None and high is not None
        column = day.this
        node.replace(
            exp.Paren(
                this=exp.And(
                    this=exp.GTE(this=column.copy(), expression=_at_midnight(low)),
                    expression=exp.LT(this=column.copy(), expression=_at_midnight(high, 1)),
                )
            )
        )
        return True
    if type(node) not in _DAY_OPS:
        return False
    left, right = node.this, node.expression
    op = type(node)
    if _is_day_of_column(left, node, cte_names) and _constant_kind(right) == "date":
        day, constant = left, right
    elif _is_day_of_column(right, node, cte_names) and _constant_kind(left) == "date":
        day, constant, op = right, left, _FLIPPED[op]
    else:
        return False
    assert isinstance(day, exp.Cast)
    column = day.this
    replacement: exp.Expr
    if op is exp.EQ:
        replacement = exp.Paren(
            this=exp.And(
                this=exp.GTE(this=column.copy(), expression=_at_midnight(constant)),
                expression=exp.LT(this=column.copy(), expression=_at_midnight(constant, 1)),
            )
        )
    elif op is exp.GTE:
        replacement = exp.GTE(this=column.copy(), expression=_at_midnight(constant))
    elif op is exp.GT:
        replacement = exp.GTE(this=column.copy(), expression=_at_midnight(constant, 1))
    elif op is exp.LT:
        replacement = exp.LT(this=column.copy(), expression=_at_midnight(constant))
    else:  # LTE
        replacement = exp.LT(this=column.copy(), expression=_at_midnight(constant, 1))
    node.replace(replacement)
    return True


_DAY_OPS = frozenset({exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE})
_FLIPPED: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.EQ: exp.EQ,
    exp.GT: exp.LT,
    exp.GTE: exp.LTE,
    exp.LT: exp.GT,
    exp.LTE: exp.GTE,
}


def _is_day_of_column(node: exp.Expr | None, at: exp.Expr, cte_names: set[str]) -> bool:
    """``CAST(<timestamptz column> AS DATE)`` (``::date`` too), exactly a cast (not TRY_CAST)."""
    if type(node) is not exp.Cast:
        return False
    to = node.args.get("to")
    if not isinstance(to, exp.DataType) or to.this is not _DATE:
        return False
    return _is_timestamptz_column(node.this, at, cte_names)


def _at_midnight(day: exp.Expr, plus_days: int = 0) -> exp.Expr:
    """``CAST(<day> [+ n] AS TIMESTAMPTZ)``: the start of that day in the session TimeZone. An
    ISO literal's next day is written out (``DATE '2026-10-02'``, not ``... + 1``)."""
    value = day.copy()
    if plus_days:
        inner = value.this if type(value) is exp.Cast else None
        if isinstance(inner, exp.Literal) and inner.is_string and _iso_date(inner.this):
            following = date.fromisoformat(inner.this.strip()) + timedelta(days=plus_days)
            value = exp.Cast(this=exp.Literal.string(following.isoformat()), to=value.args["to"])
        else:
            value = exp.Add(this=exp.Paren(this=value), expression=exp.Literal.number(plus_days))
    return exp.Cast(this=value, to=exp.DataType.build("timestamptz"))


# --- the constant side ------------------------------------------------------------------------


def _constant_kind(node: exp.Expr | None, budget: list[int] | None = None) -> str | None:
    """'date' or 'timestamp' when ``node`` is a constant of that type whose cast to timestamptz
    cannot overflow; None for anything else (including timestamptz, which needs no cast)."""
    if node is None:
        return None
    days = budget if budget is not None else [0]
    kind = type(node)
    if kind is exp.Paren:
        return _constant_kind(node.this, days)
    if kind is exp.CurrentDate:
        return "date"
    if kind is exp.Cast:  # exactly a cast: TRY_CAST may give NULL (harmless) but keep it plain
        to = node.args.get("to")
        target = to.this if isinstance(to, exp.DataType) else None
        inner = node.this
        if target is _DATE:
            if isinstance(inner, exp.Literal) and inner.is_string and _iso_date(inner.this):
                return "date"
            if isinstance(inner, exp.CurrentDate | exp.CurrentTimestamp) or (
                isinstance(inner, exp.Anonymous) and str(inner.this).lower() == "now"
            ):  # DuckDB reads now() as a function sqlglot does not know
                return "date"
            return None
        if target in _TIMESTAMPS:
            if isinstance(inner, exp.Literal) and inner.is_string and _iso_timestamp(inner.this):
                return "timestamp"
            return None
        return None
    if kind is exp.Add or kind is exp.Sub:
        left, right = node.this, node.expression
        if _is_interval(right):
            return "timestamp" if _constant_kind(left, days) else None
        if kind is exp.Add and _is_interval(left):
            return "timestamp" if _constant_kind(right, days) else None
        for base, offset in ((left, right), (right, left)) if kind is exp.Add else ((left, right),):
            number = int_literal(offset)
            if number is not None:
                days[0] += abs(number)
                if days[0] > _MAX_DAYS:
                    return None
                return "date" if _constant_kind(base, days) == "date" else None
        return None
    return None


def _iso_date(text: str) -> bool:
    match = _ISO_DATE.match(text)
    if not match:
        return False
    try:
        date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return int(match[1]) >= 1


def _iso_timestamp(text: str) -> bool:
    match = _ISO_TIMESTAMP.match(text)
    if not match:
        return False
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def int_literal(node: exp.Expr | None) -> int | None:
    """The value of a plain integer literal, else None."""
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    return None


def _is_interval(node: exp.Expr | None) -> bool:
    if not isinstance(node, exp.Interval):
        return False
    value = node.this
    if not isinstance(value, exp.Literal):
        return False
    numbers = _NUMBER.findall(str(value.this))
    return bool(numbers) and all(float(n) <= _MAX_INTERVAL_NUMBER for n in numbers)


# --- the column side --------------------------------------------------------------------------


def _is_timestamptz_column(
    node: exp.Expr | None, at: exp.Expr, cte_names: set[str], depth: int = 0
) -> bool:
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        return False
    if node.args.get("db") or node.args.get("catalog"):
        return False
    name = _plain(node.this)
    if name is None:
        return False
    qualifier = node.args.get("table")
    tz, columns = _schema()
    select = at.find_ancestor(exp.Select)
    if qualifier is None:
        # Unqualified: only within its own SELECT, and only when that SELECT reads business
        # tables alone, exactly one of which has the column (otherwise it may be an outer
        # reference, an output alias (DuckDB binds those in WHERE), or ambiguous).
        if select is None:
            return False
        sources = _sources(select, cte_names)
        if sources is None or any(table is None for table in sources.values()):
            return False
        having = [t for t in sources.values() if t is not None and name in columns[t]]
        if len(having) != 1 or _is_output_alias(select, name):
            return False
        return name in tz[having[0]]
    alias = _plain(qualifier) if isinstance(qualifier, exp.Identifier) else None
    if alias is None:
        return False
    # Qualified: the innermost enclosing SELECT that has a source of that name.
    while select is not None:
        sources = _sources(select, cte_names)
        if sources is None:
            return False
        if alias in sources:
            table = sources[alias]
            if table is None:
                return _is_timestamptz_cte_column(select, alias, name, cte_names, depth)
            return name in tz[table]
        select = select.find_ancestor(exp.Select)
    return False


_MAX_CTE_DEPTH = 8  # CTEs reading CTEs, followed this far


def _is_timestamptz_cte_column(
    select: exp.Select, alias: str, name: str, cte_names: set[str], depth: int
) -> bool:
    """``alias.name`` where ``alias`` is a CTE of the query whose output column ``name`` is a
    timestamptz column as it stands (``WITH steps AS (SELECT h.entered_at, lag(...) OVER ...
    FROM deal_stage_history h) ... WHERE st.entered_at >= DATE '2026-01-01'``): its values pass
    through unchanged (beside a window, under GROUP BY), so the cast is the same comparison. A
    filter over a window's output cannot go below it and is planned from the column's
    statistics through the CTE only with a leakproof operator (gold funnel_lost_from_stage_2026
    at scale 10: the 1-row guess put 225k rows through a nested loop). Anything but one plain
    column projection of that name (a UNION, renamed columns, ``*``, an expression) is left."""
    if depth >= _MAX_CTE_DEPTH:
        return False
    cte = _cte_named(select, alias, cte_names)
    if cte is None:
        return False
    body = cte.this
    cte_alias = cte.args.get("alias")
    if not isinstance(body, exp.Select) or (
        isinstance(cte_alias, exp.TableAlias) and cte_alias.args.get("columns")
    ):
        return False
    named = [p for p in body.expressions if p.alias_or_name.lower() == name]
    if len(named) != 1 or any(isinstance(p, exp.Star) for p in body.expressions):
        return False
    projection = named[0]
    column = projection.this if isinstance(projection, exp.Alias) else projection
    return _is_timestamptz_column(column, projection, cte_names, depth + 1)


def _cte_named(select: exp.Select, alias: str, cte_names: set[str]) -> exp.CTE | None:
    """The CTE that source ``alias`` of ``select`` reads (a plain table reference whose name
    is a CTE's), from the innermost WITH that defines it; None for anything else."""
    from_ = select.args.get("from_")
    items = [from_.this] if isinstance(from_, exp.From) else []
    items += [join.this for join in select.args.get("joins") or []]
    target: str | None = None
    for item in items:
        if not isinstance(item, exp.Table) or not isinstance(item.this, exp.Identifier):
            continue
        if item.args.get("db") or item.args.get("catalog"):
            continue
        table = _plain(item.this)
        item_alias = item.args.get("alias")
        if isinstance(item_alias, exp.TableAlias) and isinstance(item_alias.this, exp.Identifier):
            key = _plain(item_alias.this)
        else:
            key = table
        if key == alias and table in cte_names:
            target = table
    if target is None:
        return None
    scope: exp.Expr | None = select
    while scope is not None:
        with_ = scope.args.get("with_")
        if isinstance(with_, exp.With) and not with_.args.get("recursive"):
            for cte in with_.expressions:
                if isinstance(cte, exp.CTE) and cte.alias_or_name.lower() == target:
                    return cte
        elif isinstance(with_, exp.With):
            return None  # WITH RECURSIVE: a CTE's rows may come from itself
        scope = scope.parent
    return None


def _plain(identifier: exp.Identifier) -> str | None:
    """The identifier as the database folds it, or None if case makes that dialect-dependent
    (a quoted name with capitals: PostgreSQL keeps them, DuckDB ignores them)."""
    name = str(identifier.this)
    if identifier.args.get("quoted") and name != name.lower():
        return None
    return name.lower()


def _sources(select: exp.Select, cte_names: set[str]) -> dict[str, str | None] | None:
    """Alias -> business table (None: a CTE, subquery, function or renamed columns) for the
    FROM and JOINs of ``select``; None if a source's name cannot be told."""
    found: dict[str, str | None] = {}
    from_ = select.args.get("from_")
    items = [from_.this] if isinstance(from_, exp.From) else []
    items += [join.this for join in select.args.get("joins") or []]
    items += list(select.args.get("laterals") or [])
    _, columns = _schema()
    for item in items:
        alias = item.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.args.get("columns"):
            table_name: str | None = None  # FROM t AS a(x, y): columns renamed
        elif isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
            plain = _plain(item.this)
            table_name = plain if plain in columns and plain not in cte_names else None
        else:
            table_name = None
        if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
            key = _plain(alias.this)
        elif isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
            key = _plain(item.this)
        else:
            key = ""  # an unaliased subquery or function: no name, still a source
        if key is None:
            return None
        if key in found:
            return None  # the same name twice: leave it to the database to complain
        found[key] = table_name
    return found


def _is_output_alias(select: exp.Select, name: str) -> bool:
    for projection in select.expressions:
        if isinstance(projection, exp.Alias) and projection.alias.lower() == name:
            inner = projection.this
            if not (isinstance(inner, exp.Column) and inner.name.lower() == name):
                return True
    return False


def is_comparison(node: exp.Expr) -> bool:
    return type(node) in _COMPARISON_TYPES
