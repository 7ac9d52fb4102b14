"""The guard's rewrite of "the first row of each group" into ``DISTINCT ON``, for PostgreSQL's
planner (issue 13). It changes plans, not answers.

The natural SQL for "each deal's stage as of a day" numbers each deal's rows and keeps the
first::

    WITH stage_then AS (SELECT h.deal_id, h.stage_id,
            row_number() OVER (PARTITION BY h.deal_id ORDER BY h.entered_at DESC) AS k
        FROM deal_stage_history h WHERE h.entered_at < DATE '2026-10-01')
    SELECT ... FROM deals d JOIN stage_then st ON st.deal_id = d.id AND st.k = 1

PostgreSQL has no statistics for a window function's result and rates ``k = 1`` at 0.5% of the
rows, whatever the groups: at scale 10 it planned 799 rows where 73,983 pass, then nested loops
that rescanned the window, and the gold query behind this example took 206 ms or 25.6 s
depending on the sample the last ANALYZE drew. Written as ``DISTINCT ON`` the same rows are
estimated from the partition columns' distinct counts::

    SELECT DISTINCT ON (h.deal_id) h.deal_id, h.stage_id, CAST(1 AS BIGINT) AS k
    FROM ... ORDER BY h.deal_id, h.entered_at DESC

and the filters ``k = 1`` become ``TRUE`` (every row left has k = 1; a filter kept on the
constant column would be rated at 0.5% again, PostgreSQL not pushing it into a DISTINCT ON).

The rewrite applies only where the answer cannot change: a CTE or a derived table whose SELECT
computes exactly one window function, ``row_number()`` with a PARTITION BY and an ORDER BY,
aliased, and nothing that DISTINCT ON or an ORDER BY would read differently (no DISTINCT,
GROUP BY, HAVING, ORDER BY, LIMIT, aggregate, other window, set-returning function, named
window or column list; no partition or order key that is a bare number or an unqualified name
an output column also has); and every reference to it keeps only ``alias.k = 1`` (or
``1 = alias.k``; an unqualified ``k`` when it is the SELECT's only source) as a top-level
conjunct of the WHERE of the SELECT reading it, or of the ON of the join that brings it in when
that join is inner or a LEFT join with it on the right. Other uses of ``k`` are then 1 (or NULL
where a LEFT join found none) both ways. Rows tied on the ORDER BY: either form keeps one of
them, which one is not defined by either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlglot import exp

log = logging.getLogger(__name__)

# Functions that return rows, not a value: in a SELECT list they run after the window and
# before DISTINCT, so a DISTINCT ON would see other rows.
SET_RETURNING = frozenset(
    {
        "unnest",
        "explode",
        "generate_series",
        "exploding_generate_series",
        "range",
        "regexp_matches",
        "regexp_split_to_table",
        "string_to_table",
        "json_each",
        "jsonb_each",
        "json_each_text",
        "jsonb_each_text",
        "json_array_elements",
        "jsonb_array_elements",
        "json_array_elements_text",
        "jsonb_array_elements_text",
        "json_object_keys",
        "jsonb_object_keys",
    }
)


@dataclass(frozen=True)
class _FirstRow:
    """A SELECT numbering its rows per group with ``row_number()`` as ``column``."""

    select: exp.Select
    alias: exp.Alias  # the select-list item ``row_number() OVER (...) AS column``
    window: exp.Window
    column: str  # lowercase


def first_rows_as_distinct_on(tree: exp.Expr) -> int:
    """Rewrite, in place, every first-row pick of ``tree`` that qualifies (module docstring);
    return how many. ``tree`` is the checked query, before the organization scoping."""
    rewritten = 0
    for with_ in list(tree.find_all(exp.With)):
        if with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            if isinstance(cte, exp.CTE):
                rewritten += _rewrite_if_first(cte)
    for subquery in list(tree.find_all(exp.Subquery)):
        if isinstance(subquery.parent, exp.From | exp.Join) and subquery.alias:
            rewritten += _rewrite_if_first(subquery)
    return rewritten


def _rewrite_if_first(source: exp.CTE | exp.Subquery) -> int:
    """Rewrite the query of ``source`` (a CTE or a derived table) if it is a first-row pick
    that every reader keeps to its first rows; 1 if it was. Everything is decided before
    anything changes, and a shape the checks did not expect is left as written (its SQL runs
    as the model wrote it)."""
    try:
        found = _first_row(source.this)
        if found is None or _has_columns(source.args.get("alias")):
            return 0
        references: list[exp.Expr] | None = (
            _cte_references(source) if isinstance(source, exp.CTE) else [source]
        )
        filters = [_first_filters(ref, found.column) for ref in references or []]
        if not references or not all(filters):
            return 0
    except Exception:  # an unexpected tree: no rewrite, and no refusal either
        log.debug("first-row rewrite skipped", exc_info=True)
        return 0
    _rewrite(found, [condition for found_in in filters for condition in found_in])
    return 1


# --- what qualifies ------------------------------------------------------------------------------


def _first_row(query: exp.Expr) -> _FirstRow | None:
    """``query`` as a first-row pick, or None if it is not one the rewrite may touch."""
    if not isinstance(query, exp.Select):
        return None
    for key in ("distinct", "group", "having", "order", "limit", "offset", "qualify", "windows"):
        if query.args.get(key):
            return None
    if query.args.get("with_") or query.args.get("with") or query.args.get("fetch"):
        return None
    windows = [w for w in query.find_all(exp.Window) if _nearest_select(w) is query]
    if len(windows) != 1 or any(
        _nearest_select(a) is query and a.find_ancestor(exp.Window) is None
        for a in query.find_all(exp.AggFunc)
    ):
        return None
    window = windows[0]
    alias = window.parent
    if not isinstance(alias, exp.Alias) or alias.parent is not query:
        return None
    if not isinstance(window.this, exp.RowNumber) or any(window.this.args.values()):
        return None
    partition = window.args.get("partition_by") or []
    order = window.args.get("order")
    if not partition or not isinstance(order, exp.Order) or not order.expressions:
        return None
    if window.args.get("alias") or window.args.get("spec") is not None:
        return None  # a named window or a frame: not the plain form
    column = alias.alias.lower()
    outputs = [item.alias_or_name.lower() for item in query.expressions]
    if not column or outputs.count(column) != 1:
        return None
    if any(_returns_rows(f) for f in query.find_all(exp.Func) if _nearest_select(f) is query):
        return None
    keys = [*partition, *(o.this if isinstance(o, exp.Ordered) else o for o in order.expressions)]
    named = {
        item.alias.lower()
        for item in query.expressions
        if isinstance(item, exp.Alias) and item is not alias
    }
    for key in keys:
        if isinstance(key, exp.Literal) or key.find(exp.Window, exp.AggFunc, exp.Placeholder):
            return None  # a number would become a column position in ORDER BY / DISTINCT ON
        for col in key.find_all(exp.Column):
            if not col.table and col.name.lower() in named:
                return None  # ORDER BY would read the output column of that name instead
    return _FirstRow(query, alias, window, column)


def _returns_rows(func: exp.Func) -> bool:
    if isinstance(func, exp.Anonymous):
        return str(func.this).lower() in SET_RETURNING
    names = {name.lower() for name in type(func).sql_names()} | {func.key.lower()}
    return bool(names & SET_RETURNING)


def _cte_references(cte: exp.CTE) -> list[exp.Expr] | None:
    """The tables of ``query`` that read ``cte``; None if a nested WITH reuses its name (the
    references are then not all this CTE's: left alone). The CTE's own body and the bodies of
    the CTEs before it cannot read it (a table of that name there is another one)."""
    name = cte.alias_or_name.lower()
    with_ = cte.parent
    query = with_.parent if with_ is not None else None
    if not isinstance(with_, exp.With) or query is None:
        return None
    siblings = with_.expressions
    unseen = {id(c.this) for c in siblings[: siblings.index(cte) + 1]}
    references: list[exp.Expr] = []
    for node in query.walk():
        if isinstance(node, exp.CTE) and node is not cte and node.alias_or_name.lower() == name:
            return None
        if (
            isinstance(node, exp.Table)
            and isinstance(node.this, exp.Identifier)
            and node.name.lower() == name
            and not node.args.get("db")
            and not _inside(node, unseen, query)
        ):
            references.append(node)
    return references


def _inside(node: exp.Expr, roots: set[int], top: exp.Expr) -> bool:
    """Whether ``node`` lies under one of the nodes whose ids are ``roots`` (up to ``top``)."""
    parent = node.parent
    while parent is not None and parent is not top:
        if id(parent) in roots:
            return True
        parent = parent.parent
    return False


def _first_filters(reference: exp.Expr, column: str) -> list[exp.Expr]:
    """The conjuncts ``alias.column = 1`` that keep ``reference`` to its first rows (empty if
    none does: then it is left alone)."""
    holder = reference.parent
    select = holder.parent if holder is not None else None
    if not isinstance(holder, exp.From | exp.Join) or not isinstance(select, exp.Select):
        return []
    if _has_columns(reference.args.get("alias")):
        return []  # ``AS st (a, b, k)`` renames the columns: ``st.k`` may be another one
    name = reference.alias_or_name.lower()
    alone = isinstance(holder, exp.From) and not select.args.get("joins")
    found = []
    where = select.args.get("where")
    if isinstance(where, exp.Where):
        found += [c for c in _conjuncts(where.this) if _is_first(c, name, column, alone)]
    if isinstance(holder, exp.Join) and _filters_in_on(holder):
        on = holder.args.get("on")
        if on is not None:
            found += [c for c in _conjuncts(on) if _is_first(c, name, column, False)]
    return found


def _filters_in_on(join: exp.Join) -> bool:
    """An ON conjunct drops this side's other rows only in an inner join, or in a LEFT join
    where this side is the joined (nullable) one."""
    side = (join.side or "").upper()
    kind = (join.kind or "").upper()
    return (side == "" and kind in ("", "INNER")) or (side == "LEFT" and kind in ("", "OUTER"))


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    while isinstance(condition, exp.Paren):
        condition = condition.this
    if isinstance(condition, exp.And):
        return _conjuncts(condition.left) + _conjuncts(condition.right)
    return [condition]


def _is_first(condition: exp.Expr, source: str, column: str, alone: bool) -> bool:
    if not isinstance(condition, exp.EQ):
        return False
    for col, value in ((condition.left, condition.right), (condition.right, condition.left)):
        if (
            isinstance(col, exp.Column)
            and col.name.lower() == column
            and not col.args.get("db")
            and ((col.table or "").lower() == source or (not col.table and alone))
            and isinstance(value, exp.Literal)
            and value.is_int
            and int(value.this) == 1
        ):
            return True
    return False


def _nearest_select(node: exp.Expr) -> exp.Expr | None:
    return node.find_ancestor(exp.Select)


def _has_columns(alias: exp.Expr | None) -> bool:
    return isinstance(alias, exp.TableAlias) and bool(alias.args.get("columns"))


# --- the rewrite ---------------------------------------------------------------------------------


def _rewrite(found: _FirstRow, filters: list[exp.Expr]) -> None:
    """DISTINCT ON the partition, ordered by it then the window's order; the number a constant
    1; the readers' ``k = 1`` filters TRUE."""
    window = found.window
    partition = [key.copy() for key in window.args["partition_by"]]
    order = [
        o.copy() if isinstance(o, exp.Ordered) else exp.Ordered(this=o.copy())
        for o in window.args["order"].expressions
    ]
    keys = [exp.Ordered(this=key.copy(), nulls_first=False) for key in partition]
    for condition in filters:
        condition.replace(exp.true())
    select = found.select
    select.set("distinct", exp.Distinct(on=exp.Tuple(expressions=partition)))
    select.set("order", exp.Order(expressions=keys + order))
    # row_number() is a bigint; the constant keeps the column's type for whoever reads it.
    window.replace(exp.Cast(this=exp.Literal.number(1), to=exp.DataType.build("BIGINT")))
