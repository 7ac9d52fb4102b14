"""An unknown column in guarded SQL is reported in the terms of the SQL as written (the alias,
its table or CTE, that table's columns), not of the guard's rewrite, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from revtops_kernel.agent.guard import run_guarded
from revtops_kernel.agent.guard_errors import explain_missing_column
from revtops_kernel.errors import QueryError, QueryRefusedError
from revtops_kernel.store import Database
from revtops_kernel.store.schema import readable_tables
from revtops_kernel.store.upsert import upsert

T0 = datetime(2026, 1, 5, tzinfo=UTC)
ORG = "guard-errors"


@pytest.fixture
def loaded(db: Database) -> Database:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, domain, created_at, updated_at) "
                "VALUES (:org, 'Guard errors', 'guard-errors.example', :t, :t)"
            ),
            {"org": ORG, "t": T0},
        )
        upsert(conn, "deals", [
            {"organization_id": ORG, "source_system": "hubspot", "source_id": "1",
             "name": "First deal", "amount": 100, "updated_at": T0},
        ])  # fmt: skip
    return db


def _error(db: Database, sql: str) -> str:
    with pytest.raises(QueryError) as caught:
        run_guarded(db, sql, org=ORG)
    assert type(caught.value) is QueryError
    return str(caught.value)


def _columns(table: str) -> str:
    return ", ".join(column.name for column in readable_tables()[table].columns)


def test_an_unknown_column_names_the_alias_its_table_and_the_columns(loaded: Database) -> None:
    message = _error(loaded, "SELECT o.name FROM owners o")
    assert message.startswith('column "name" does not exist in o (the owners table). Did you ')
    assert "o.full_name" in message and "o.last_name" in message
    assert message.endswith(f"Columns of o (the owners table): {_columns('owners')}.")
    # Nothing of the rewrite: no subquery wording, no organization filter, no SQL echoed.
    for leak in ("Values list", "organization_id =", "LINE 1", "SELECT *"):
        assert leak not in message

    joined = _error(
        loaded,
        "SELECT d.nme, o.full_name FROM deals AS d JOIN owners AS o ON o.id = d.owner_id",
    )
    assert joined.startswith(
        'column "nme" does not exist in d (the deals table). Did you mean d.name?'
    )
    assert joined.endswith(f"Columns of d (the deals table): {_columns('deals')}.")

    unaliased = _error(loaded, "SELECT deals.nmae FROM deals")
    assert unaliased.startswith('column "nmae" does not exist in the deals table. Did you mean ')

    in_where = _error(loaded, "SELECT o.full_name FROM owners AS o WHERE o.emial = 'x'")
    assert in_where.startswith('column "emial" does not exist in o (the owners table). Did you '
                               "mean o.email?")  # fmt: skip


def test_an_unqualified_or_cte_column_is_explained_too(loaded: Database) -> None:
    unqualified = _error(loaded, "SELECT nme FROM deals")
    assert unqualified.startswith(
        'column "nme" is not a column of any table in the query. Did you mean deals.name? '
    )
    assert f"Columns of the deals table: {_columns('deals')}." in unqualified
    cte = _error(loaded, "WITH w AS (SELECT name AS deal, amount FROM deals) SELECT w.name FROM w")
    assert cte == 'column "name" does not exist in the CTE w. Columns of the CTE w: deal, amount.'


def test_other_errors_keep_their_wording(loaded: Database) -> None:
    assert len(run_guarded(loaded, "SELECT d.name FROM deals d", org=ORG).frame) == 1
    with pytest.raises(QueryRefusedError, match="unknown table"):
        run_guarded(loaded, "SELECT x FROM nowhere", org=ORG)
    with pytest.raises(QueryError) as caught:
        run_guarded(loaded, "SELECT CAST('x' AS INTEGER) AS n", org=ORG)
    assert "does not exist in" not in str(caught.value)


def test_messages_the_translation_leaves_alone() -> None:
    sql = "SELECT o.name FROM owners o"
    assert explain_missing_column("Conversion Error: bad number", sql, "duckdb") is None
    # An alias the written SQL does not have (the database spoke of something else).
    assert explain_missing_column("column q.name does not exist", sql, "postgres") is None
    assert explain_missing_column('column "o"."name" does not exist', sql, "postgres") == (
        explain_missing_column("column o.name does not exist", sql, "postgres")
    )
