from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text

from revtops_kernel.errors import SchemaError
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.migrate import (
    MIGRATIONS,
    Migration,
    current_version,
    schema_versions,
    target_version,
)
from revtops_kernel.store.schema import metadata, readable_tables, synced_tables


def schema_snapshot(db: Database) -> dict[str, Any]:
    """Tables, columns (type, nullability, comment), unique constraints and indexes."""
    if db.is_duckdb:
        return duckdb_snapshot(db)
    with db.connect() as conn:
        inspector = inspect(conn)
        snapshot: dict[str, Any] = {}
        for name in sorted(inspector.get_table_names()):
            snapshot[name] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c.get("comment"))
                    for c in inspector.get_columns(name)
                ],
                "unique": sorted(
                    tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)
                ),
                "indexes": sorted(i["name"] for i in inspector.get_indexes(name)),
            }
    return snapshot


def duckdb_snapshot(db: Database) -> dict[str, Any]:
    # duckdb-engine reflects columns but not constraints: read DuckDB's own catalog.
    snapshot: dict[str, Any] = {}
    with db.connect() as conn:
        for table, column, kind, nullable, comment in conn.execute(
            text(
                "SELECT table_name, column_name, data_type, is_nullable, comment "
                "FROM duckdb_columns() WHERE database_name = current_database() "
                "ORDER BY table_name, column_index"
            )
        ):
            entry = snapshot.setdefault(table, {"columns": [], "unique": [], "indexes": []})
            entry["columns"].append((column, kind, nullable, comment))
        for table, kind, columns in conn.execute(
            text(
                "SELECT table_name, constraint_type, constraint_column_names "
                "FROM duckdb_constraints() WHERE database_name = current_database()"
            )
        ):
            if kind == "UNIQUE":
                snapshot[table]["unique"].append(tuple(columns))
    return snapshot


def test_every_model_column_has_a_comment() -> None:
    # The assistant's schema prompt is generated from these comments.
    missing = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if not column.comment
    ]
    assert missing == []


def test_synced_tables_share_the_natural_key() -> None:
    assert set(synced_tables()) == {
        "owners",
        "accounts",
        "contacts",
        "pipelines",
        "deal_stages",
        "deals",
        "deal_stage_history",
        "deal_field_history",
        "deal_contacts",
        "activities",
        "activity_participants",
    }
    for table in synced_tables().values():
        keys = [tuple(c.name for c in u.columns) for u in table.constraints if u.columns]
        assert ("organization_id", "source_system", "source_id") in keys, table.name
        for column in ("raw", "created_at", "updated_at", "deleted_at"):
            assert column in table.columns, (table.name, column)


def test_upgrade_twice_on_a_fresh_database_leaves_the_same_schema(tmp_path: Path) -> None:
    db = Database(f"duckdb:///{tmp_path / 'fresh.duckdb'}")
    first = upgrade(db)
    assert set(first.created_tables) == set(metadata.tables)
    before = schema_snapshot(db)
    second = upgrade(db)
    assert not second.changed
    assert schema_snapshot(db) == before
    assert current_version(db) == target_version()
    # On DuckDB the primary key on id is a synced table's one unique index (schema._natural_key).
    assert before["deals"]["unique"] == []
    comments = {c[0]: c[3] for c in before["deals"]["columns"]}
    assert comments["amount"] == "Deal amount in its currency."


@pytest.mark.postgres
def test_upgrade_twice_on_postgresql_leaves_the_same_schema(postgres_url: str) -> None:
    db = Database(postgres_url)
    upgrade(db)  # the session fixture may have run it already: either way it is idempotent
    before = schema_snapshot(db)
    assert not upgrade(db).changed
    assert schema_snapshot(db) == before
    comments = {c[0]: c[3] for c in before["deals"]["columns"]}
    assert comments["amount"] == "Deal amount in its currency."
    assert "ix_deals_organization_id_account_id" in before["deals"]["indexes"]
    with db.connect() as conn:
        policies = conn.execute(
            text("SELECT tablename FROM pg_policies WHERE policyname = 'revtops_org_scope'")
        ).scalars()
        assert set(policies) == set(readable_tables())
    db.dispose()


def test_a_column_missing_from_an_older_database_is_added(db: Database) -> None:
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE deals DROP COLUMN lead_source"))
    report = upgrade(db)
    assert report.added_columns == ["deals.lead_source"]
    with db.connect() as conn:
        columns = {c["name"]: c for c in inspect(conn).get_columns("deals")}
    assert columns["lead_source"]["comment"] == "Where the deal came from."
    assert not upgrade(db).changed


def test_numbered_migrations_run_once_in_order(db: Database) -> None:
    calls: list[int] = []

    def step(version: int) -> Migration:
        def apply(conn: Connection) -> None:
            calls.append(version)
            conn.execute(text("UPDATE deals SET currency = 'USD' WHERE currency IS NULL"))

        return Migration(version, f"backfill {version}", apply)

    first, second = target_version() + 1, target_version() + 2  # after the product's own
    steps = [*MIGRATIONS, step(second), step(first)]
    report = upgrade(db, migrations=steps)
    assert calls == [first, second]
    # (the product's own may run first: the shared PostgreSQL test store forgets them between
    # tests, and dropping what is already dropped is no change)
    assert report.applied_migrations[-2:] == [
        f"{first} backfill {first}",
        f"{second} backfill {second}",
    ]
    assert report.version == second
    upgrade(db, migrations=steps)
    assert calls == [first, second]


def test_a_database_newer_than_the_code_is_refused(db: Database) -> None:
    with db.begin() as conn:
        conn.execute(schema_versions.insert().values(version=99, name="future", applied_at=_now()))
    with pytest.raises(SchemaError, match="version 99"):
        upgrade(db)


def _now() -> Any:
    from revtops_kernel.timeutil import utcnow

    return utcnow()


@pytest.mark.postgres
def test_an_upgrade_beside_live_readers_takes_no_table_lock(postgres_url: str) -> None:
    """A second upgrade leaves row-level security and policies that stand as they are: it
    re-created them all before, taking ACCESS EXCLUSIVE locks table by table, and deadlocked
    with a reader joining two tables (seen against a live scale-10 store). A policy whose
    definition changed (here: its digest tampered with) is re-created."""
    db = Database(postgres_url)
    upgrade(db)
    with db.connect() as reader:
        reader.execute(text("SELECT count(*) FROM deals"))  # holds ACCESS SHARE till it ends
        reader.execute(text("SELECT count(*) FROM organizations"))
        done: list[object] = []
        thread = threading.Thread(target=lambda: done.append(upgrade(db)), daemon=True)
        thread.start()
        thread.join(60)  # blocked behind the reader, it would wait for the rollback below
        assert done, "the upgrade waited for a table lock a reader holds"
        reader.rollback()
    with db.begin() as conn:
        conn.execute(text("COMMENT ON POLICY revtops_org_scope ON deals IS 'edited'"))
    upgrade(db)
    with db.connect() as conn:
        comment = conn.execute(
            text(
                "SELECT obj_description(p.oid, 'pg_policy') FROM pg_policy p "
                "WHERE p.polrelid = 'deals'::regclass AND p.polname = 'revtops_org_scope'"
            )
        ).scalar_one()
    assert comment.startswith("revtops:")
    db.dispose()


@pytest.mark.postgres
def test_upgrade_vacuums_the_derived_tables_it_builds(postgres_url: str) -> None:
    """Built or rebuilt derived tables are vacuumed by the upgrade (the visibility map is what
    lets the read path's index-only scans skip their rows; autovacuum may be off or late)."""
    from sqlalchemy.engine import make_url

    from revtops_kernel.store import deal_states, meeting_accounts, risk_facts
    from revtops_kernel.store.scratch import scratch_postgres

    with scratch_postgres(make_url(postgres_url).set(database="postgres"), prefix="p_vac") as url:
        db = Database(url)
        try:
            derived = {*deal_states.DERIVED, risk_facts.TABLE, meeting_accounts.TABLE}
            assert set(upgrade(db).vacuumed) == derived  # a fresh store builds them all
            assert upgrade(db).vacuumed == []  # nothing built: nothing vacuumed
            with db.begin() as conn:
                conn.execute(text("ALTER TABLE deal_stage_visits DROP COLUMN days_in_stage"))
            assert set(upgrade(db).vacuumed) == set(deal_states.DERIVED)  # rebuilt
        finally:
            db.dispose()
