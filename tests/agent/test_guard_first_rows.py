"""The guard's first-row rewrite (``guard_first_rows``), without a database: which SQL becomes
``DISTINCT ON`` and which is left as written. Its answers and plans on PostgreSQL are
``test_guard_first_rows_plans``'."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from revtops_kernel.agent.guard import guard_sql

STAGE_THEN = (
    "WITH stage_then AS (SELECT h.deal_id, h.stage_id, row_number() OVER "
    "(PARTITION BY h.deal_id ORDER BY h.entered_at DESC) AS k FROM deal_stage_history h "
    "WHERE h.deleted_at IS NULL) "
)


def guarded(sql: str, dialect: str = "postgres") -> exp.Expr:
    return sqlglot.parse_one(
        guard_sql(sql, dialect=dialect, org="acme", max_rows=100).sql, read=dialect
    )


def rewritten(tree: exp.Expr) -> bool:
    """The tree picks first rows with DISTINCT ON and numbers none with row_number()."""
    distinct = [d for d in tree.find_all(exp.Distinct) if d.args.get("on")]
    return bool(distinct) and not list(tree.find_all(exp.RowNumber))


def test_the_as_of_cte_becomes_distinct_on_and_its_filters_true() -> None:
    tree = guarded(
        STAGE_THEN + "SELECT count(*) FROM deals d JOIN stage_then st ON st.deal_id = d.id "
        "AND st.k = 1 WHERE d.deleted_at IS NULL"
    )
    assert rewritten(tree)
    (distinct,) = [d for d in tree.find_all(exp.Distinct) if d.args.get("on")]
    assert [c.sql() for c in distinct.args["on"].expressions] == ["h.deal_id"]
    select = distinct.parent
    assert isinstance(select, exp.Select)
    order = [o.sql(dialect="postgres") for o in select.args["order"].expressions]
    assert order == ["h.deal_id", "h.entered_at DESC"]
    # The filter is gone (a kept `k = 1` would be rated at 0.5% again), the column is 1.
    assert not [
        eq
        for eq in tree.find_all(exp.EQ)
        if isinstance(eq.left, exp.Column) and eq.left.name == "k"
    ]
    assert "CAST(1 AS BIGINT) AS k" in tree.sql(dialect="postgres")
    # Still scoped to the caller's organization.
    assert "deal_stage_history WHERE organization_id = 'acme'" in tree.sql(dialect="postgres")


@pytest.mark.parametrize(
    "sql",
    [
        # unqualified k, the CTE the only source
        STAGE_THEN + "SELECT deal_id FROM stage_then WHERE k = 1 AND stage_id IS NOT NULL",
        # 1 = k, in WHERE, beside a join
        STAGE_THEN + "SELECT d.name FROM deals d, stage_then st WHERE st.deal_id = d.id "
        "AND 1 = st.k",
        # a LEFT join bringing it in, the filter in its ON
        STAGE_THEN + "SELECT d.name, st.stage_id FROM deals d LEFT JOIN stage_then st "
        "ON st.deal_id = d.id AND st.k = 1",
        # a derived table, several partition keys, the CTE read twice, both filtered
        "SELECT d.name FROM deals d JOIN (SELECT f.deal_id, f.amount, row_number() OVER "
        "(PARTITION BY f.deal_id, f.field ORDER BY f.changed_at DESC, f.id) AS rn FROM "
        "deal_field_history f) a ON a.deal_id = d.id AND a.rn = 1",
        STAGE_THEN + "SELECT count(*) FROM stage_then a JOIN stage_then b ON a.deal_id = "
        "b.deal_id AND b.k = 1 WHERE a.k = 1",
    ],
    ids=["unqualified", "one-equals-k", "left-join", "derived-table", "read-twice"],
)
def test_first_row_picks_that_are_rewritten(sql: str) -> None:
    assert rewritten(guarded(sql))


@pytest.mark.parametrize(
    "sql",
    [
        # rank() keeps ties; DISTINCT ON would not
        STAGE_THEN.replace("row_number()", "rank()") + "SELECT * FROM stage_then WHERE k = 1",
        # no PARTITION BY: one row in all
        STAGE_THEN.replace("PARTITION BY h.deal_id ", "") + "SELECT * FROM stage_then WHERE k = 1",
        # another rank than the first
        STAGE_THEN + "SELECT * FROM stage_then WHERE k = 2",
        # the filter under an OR keeps other rows
        STAGE_THEN + "SELECT * FROM stage_then WHERE k = 1 OR stage_id IS NULL",
        # one of two readers keeps every row
        STAGE_THEN + "SELECT a.deal_id FROM stage_then a JOIN stage_then b ON a.deal_id = "
        "b.deal_id WHERE a.k = 1",
        # the CTE on the preserved side of a LEFT join: its other rows come through
        STAGE_THEN + "SELECT st.deal_id FROM stage_then st LEFT JOIN deals d "
        "ON d.id = st.deal_id AND st.k = 1",
        # a FULL join keeps them too
        STAGE_THEN + "SELECT d.name FROM deals d FULL JOIN stage_then st "
        "ON st.deal_id = d.id AND st.k = 1",
        # a second window in the same SELECT
        "WITH x AS (SELECT h.deal_id, count(*) OVER (PARTITION BY h.deal_id) AS n, "
        "row_number() OVER (PARTITION BY h.deal_id ORDER BY h.entered_at) AS k "
        "FROM deal_stage_history h) SELECT * FROM x WHERE k = 1",
        # grouped rows
        "WITH x AS (SELECT h.deal_id, max(h.entered_at) AS m, row_number() OVER (PARTITION BY "
        "h.deal_id ORDER BY max(h.entered_at)) AS k FROM deal_stage_history h GROUP BY "
        "h.deal_id) SELECT * FROM x WHERE k = 1",
        # a set-returning function in the list
        "WITH x AS (SELECT h.deal_id, unnest(ARRAY[1, 2]) AS u, row_number() OVER (PARTITION "
        "BY h.deal_id ORDER BY h.entered_at) AS k FROM deal_stage_history h) "
        "SELECT * FROM x WHERE k = 1",
        # an unqualified order key that an output column renames: ORDER BY would read that one
        "WITH x AS (SELECT h.stage_id AS entered_at, row_number() OVER (PARTITION BY h.deal_id "
        "ORDER BY entered_at DESC) AS k FROM deal_stage_history h) SELECT * FROM x WHERE k = 1",
        # a constant key: a column position in ORDER BY
        "WITH x AS (SELECT h.deal_id, row_number() OVER (PARTITION BY h.deal_id ORDER BY 1) "
        "AS k FROM deal_stage_history h) SELECT * FROM x WHERE k = 1",
        # a reader renaming the columns: its k is the deal
        STAGE_THEN + "SELECT * FROM stage_then AS st (k, s, n) WHERE st.k = 1",
        # a column list on the CTE
        "WITH x (d, k) AS (SELECT h.deal_id, row_number() OVER (PARTITION BY h.deal_id "
        "ORDER BY h.entered_at) FROM deal_stage_history h) SELECT * FROM x WHERE k = 1",
    ],
    ids=[
        "rank",
        "no-partition",
        "k-2",
        "or",
        "unfiltered-reader",
        "preserved-side",
        "full-join",
        "two-windows",
        "group-by",
        "set-returning",
        "renamed-key",
        "constant-key",
        "renamed-by-reader",
        "column-list",
    ],
)
def test_sql_that_is_left_as_written(sql: str) -> None:
    tree = guarded(sql)
    assert list(tree.find_all(exp.Window)), "the window was rewritten"
    assert not [d for d in tree.find_all(exp.Distinct) if d.args.get("on")]


def test_a_name_that_only_later_is_a_cte_is_the_table_before() -> None:
    """In ``WITH a AS (... FROM deals ...), deals AS (...)`` the first CTE reads the table:
    its filter is not the CTE's to drop (the CTE's own reader still is rewritten)."""
    sql = (
        "WITH a AS (SELECT d.id FROM deals d WHERE d.probability = 1), deals AS ("
        "SELECT h.deal_id AS id, row_number() OVER (PARTITION BY h.deal_id ORDER BY "
        "h.entered_at) AS probability FROM deal_stage_history h) "
        "SELECT a.id FROM a JOIN deals x ON x.id = a.id AND x.probability = 1"
    )
    tree = guarded(sql)
    assert rewritten(tree)
    kept = [
        eq
        for eq in tree.find_all(exp.EQ)
        if isinstance(eq.left, exp.Column) and eq.left.name == "probability"
    ]
    assert len(kept) == 1 and kept[0].left.table == "d"


def test_duckdb_sql_is_left_as_written() -> None:
    """DuckDB plans without sampled statistics: the rewrite is PostgreSQL's alone."""
    tree = guarded(STAGE_THEN + "SELECT * FROM stage_then WHERE k = 1", "duckdb")
    assert list(tree.find_all(exp.RowNumber))
    assert not [d for d in tree.find_all(exp.Distinct) if d.args.get("on")]
