"""Layers 1 and 2 of the SQL guard, without a database: what is refused, and the rewrite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from revtops_kernel.agent.guard import guard_sql
from revtops_kernel.agent.guard_rules import ALLOWED_FUNCTIONS, ALLOWED_TABLE_FUNCTIONS
from revtops_kernel.errors import QueryRefusedError

DIALECTS = ["duckdb", "postgres"]


def guarded(sql: str, dialect: str = "duckdb", *, org: str = "acme", max_rows: int = 100) -> str:
    return guard_sql(sql, dialect=dialect, org=org, max_rows=max_rows).sql


def scoped_sources(sql: str, dialect: str) -> list[tuple[str, str]]:
    """(table, org literal) for every real-table read in the generated SQL."""
    found = []
    for table in sqlglot.parse_one(sql, read=dialect).find_all(exp.Table):
        select = table.parent.parent if table.parent else None
        where = select.args.get("where") if isinstance(select, exp.Select) else None
        literal = where.find(exp.Literal) if where else None
        found.append((table.name, literal.this if literal else ""))
    return found


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_business_table_is_filtered_to_the_org(dialect: str) -> None:
    sql = guarded(
        "WITH won AS (SELECT account_id, sum(amount) AS total FROM deals WHERE is_won "
        "GROUP BY 1) SELECT a.name, w.total FROM accounts a JOIN won w ON w.account_id = a.id "
        "WHERE EXISTS (SELECT 1 FROM contacts c WHERE c.account_id = a.id) "
        "UNION ALL SELECT name, NULL FROM owners",
        dialect,
    )
    sources = [s for s in scoped_sources(sql, dialect) if not s[0].startswith("revtops_cte_")]
    assert sorted(t for t, _ in sources) == ["accounts", "contacts", "deals", "owners"]
    assert {org for _, org in sources} == {"acme"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_organizations_is_filtered_on_its_id(dialect: str) -> None:
    sql = guarded("SELECT name FROM organizations", dialect)
    assert "WHERE id = 'acme'" in sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_cte_named_like_a_table_reads_the_filtered_table(dialect: str) -> None:
    sql = guarded("WITH deals AS (SELECT * FROM deals) SELECT count(*) FROM deals", dialect)
    tree = sqlglot.parse_one(sql, read=dialect)
    names = [t.name for t in tree.find_all(exp.Table)]
    # The CTE was renamed; the only real table read is the org-filtered one inside it.
    assert "deals" in names and any(n.startswith("revtops_cte_") for n in names)
    assert sql.count("organization_id = 'acme'") == 1
    cte_names = [cte.alias for cte in tree.find_all(exp.CTE)]
    assert cte_names == ["revtops_cte_1"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_recursive_cte_refers_to_itself(dialect: str) -> None:
    sql = guarded(
        "WITH RECURSIVE deals(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM deals WHERE n < 5) "
        "SELECT n FROM deals",
        dialect,
    )
    assert "organization_id" not in sql  # every `deals` here is the CTE, not the table


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_cte_is_out_of_scope_outside_its_query(dialect: str) -> None:
    sql = guarded(
        "SELECT * FROM (WITH deals AS (SELECT 1 AS x) SELECT x FROM deals) s, deals", dialect
    )
    assert sql.count("organization_id = 'acme'") == 1  # the second `deals` is the table


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_outer_limit_is_capped(dialect: str) -> None:
    assert guard_sql("SELECT 1", dialect=dialect, org="acme", max_rows=10).limit == 11
    small = guard_sql("SELECT * FROM deals LIMIT 3", dialect=dialect, org="acme", max_rows=10)
    assert (small.limit, small.sql.endswith("LIMIT 3")) == (3, True)
    big = guard_sql("SELECT * FROM deals LIMIT 1e9", dialect=dialect, org="acme", max_rows=10)
    assert big.limit == 11
    union = guarded("SELECT 1 UNION SELECT 2 LIMIT 500", dialect, max_rows=10)
    assert union.endswith("LIMIT 11")
    param = guarded("SELECT * FROM deals LIMIT :n", dialect, max_rows=10)
    assert param.endswith("AS revtops_result LIMIT 11") and "LIMIT :n" in param


@pytest.mark.parametrize("dialect", DIALECTS)
def test_named_parameters_survive_as_colon_names(dialect: str) -> None:
    sql = guarded("SELECT name FROM deals WHERE amount > :low AND stage = :stage", dialect)
    assert ":low" in sql and ":stage" in sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_org_is_a_quoted_literal_and_checked(dialect: str) -> None:
    with pytest.raises(QueryRefusedError, match="organization id"):
        guarded("SELECT 1", dialect, org="acme' OR '1'='1")
    assert "'org-2_b'" in guarded("SELECT * FROM deals", dialect, org="org-2_b")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM deals", "only a read-only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("WITH x AS (UPDATE deals SET name = 'x' RETURNING *) SELECT * FROM x", "UPDATE"),
        ("SELECT * INTO stolen FROM deals", "INTO"),
        ("SELECT * FROM deals FOR UPDATE", "FOR UPDATE"),
        ("SELECT * FROM main.deals", "schema or catalog"),
        ("SELECT * FROM users", "unknown table 'users'"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT set_config('revtops.org_id', 'globex', true)", "set_config"),
        ("SELECT pg_catalog.lower(name) FROM deals", "schema-qualified function"),
        ("SET ROLE postgres", "SET"),
        ("SELEC 1", "does not parse"),
        ("", "empty"),
    ],
)
def test_refusals_say_what_and_why(dialect: str, sql: str, reason: str) -> None:
    with pytest.raises(QueryRefusedError, match="refused") as caught:
        guarded(sql, dialect)
    assert reason.lower() in str(caught.value).lower()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_executed_sql_is_generated_not_the_input(dialect: str) -> None:
    sql = guarded("SELECT name /* ; DELETE FROM deals */ FROM deals -- trailing", dialect)
    assert "DELETE" not in sql and "--" not in sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_allowlisted_function_passes_as_sqlglot_parses_it(dialect: str) -> None:
    # sqlglot maps many names onto its own classes (position -> StrPosition); each allowed
    # name must still pass once parsed, whatever class it lands in.
    refused = []
    for name in sorted(ALLOWED_FUNCTIONS - ALLOWED_TABLE_FUNCTIONS):
        for args in ("x", "x, y", "x, y, z"):
            try:
                sqlglot.parse_one(f"SELECT {name}({args})", read=dialect)
            except sqlglot.errors.SqlglotError:
                continue
            try:
                guard_sql(f"SELECT {name}({args}) FROM deals", dialect=dialect, org="a", max_rows=1)
            except QueryRefusedError as exc:
                if "function" in str(exc):
                    refused.append(name)
            break
    assert refused == []


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "name",
    [
        "set_config",
        "current_setting",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "lo_import",
        "lo_export",
        "dblink",
        "dblink_exec",
        "pg_sleep",
        "read_csv",
        "read_csv_auto",
        "read_parquet",
        "read_json",
        "read_text",
        "read_blob",
        "glob",
        "query_table",
        "query",
        "query_to_xml",
        "ts_stat",
        "getenv",
        "pg_advisory_lock",
        "pg_terminate_backend",
        "nextval",
        "setval",
        "txid_current",
        "version",
        "current_user",
        "pg_stat_get_activity",
        "duckdb_settings",
        "sniff_csv",
        "system",
        "current_database",
        "inet_server_addr",
    ],
)
def test_dangerous_functions_are_not_allowed(dialect: str, name: str) -> None:
    with pytest.raises(QueryRefusedError):
        guarded(f"SELECT {name}('x')", dialect)


def test_long_and_or_chains_pass_and_huge_input_is_refused() -> None:
    chain = "SELECT name FROM deals WHERE " + " OR ".join(f"amount = {i}" for i in range(3000))
    assert guarded(chain, "postgres").count(" OR ") == 2999
    with pytest.raises(QueryRefusedError, match="characters long"):
        guarded("SELECT 1 " + " " * 200_000)
    nested = "SELECT " + "(" * 300 + "1" + ")" * 300
    with pytest.raises(QueryRefusedError, match="nests too deeply"):
        guarded(nested)


def test_run_guarded_executes_the_generated_sql_not_the_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from revtops_kernel.agent import guard
    from revtops_kernel.store import Database

    seen: dict[str, Any] = {}

    def fake_read_sql(db: Database, sql: str, params: Any, **kwargs: Any) -> str:
        seen.update(sql=sql, params=params, **kwargs)
        return "result"

    monkeypatch.setattr(guard, "read_sql", fake_read_sql)
    db = Database(f"duckdb:///{tmp_path / 'unused.duckdb'}")
    source = "SELECT name /* c */ FROM deals WHERE amount > :low"
    assert guard.run_guarded(db, source, org="acme", params={"low": 5}, max_rows=9) == "result"
    expected = guard_sql(source, dialect="duckdb", org="acme", max_rows=9).sql
    assert seen == {
        "sql": expected,
        "params": {"low": 5},
        "org": "acme",
        "max_rows": 9,
        "timeout": guard.DEFAULT_TIMEOUT_SECONDS,
    }
    assert "organization_id = 'acme'" in seen["sql"] and "/*" not in seen["sql"]
