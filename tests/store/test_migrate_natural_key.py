"""On DuckDB a synced table's one unique index is its primary key on ``id`` (the md5 of the
natural key): the natural key's UNIQUE constraint, which pinned as much index memory again, is
PostgreSQL's only (``schema._natural_key``). ``db upgrade`` rebuilds the tables of a store made
before, which DuckDB cannot alter in place."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.schema import CreateTable

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.database import driver_connection
from revtops_kernel.store.schema import NATURAL_KEY, metadata, synced_tables
from revtops_kernel.store.upsert import upsert

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
SYNCED = sorted(synced_tables())


def _contacts(source_ids: list[str], email: str, updated_at: datetime) -> pa.Table:
    count = len(source_ids)
    return pa.table(
        {
            "organization_id": ["acme"] * count,
            "source_system": ["hubspot"] * count,
            "source_id": source_ids,
            "email": [f"{email}{i}@example.com" for i in range(count)],
            "updated_at": pa.array([updated_at] * count, pa.timestamp("us", tz="UTC")),
            "raw": ['{"id": 1}'] * count,
        }
    )


def _old_schema_store(path: Path) -> Database:
    """A DuckDB store's synced tables as ``db upgrade`` made them before: the natural key's
    UNIQUE constraint beside the primary key (the rest of the schema is left to upgrade)."""
    engine = create_engine(f"duckdb:///{path}")
    with engine.begin() as conn:
        for name in SYNCED:
            ddl = str(CreateTable(metadata.tables[name]).compile(dialect=engine.dialect))
            head, _, _ = ddl.rstrip().rpartition(")")
            conn.execute(text(f"{head}, UNIQUE ({', '.join(NATURAL_KEY)}))"))
    engine.dispose()
    db = Database(f"duckdb:///{path}")
    assert _unique_keys(db) == {name: [list(NATURAL_KEY)] for name in SYNCED}
    return db


def _unique_keys(db: Database) -> dict[str, list[list[str]]]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE database_name = current_database() AND constraint_type = 'UNIQUE' "
                "ORDER BY table_name"
            )
        ).all()
    found: dict[str, list[list[str]]] = {}
    for table, columns in rows:
        if table in SYNCED:
            found.setdefault(table, []).append(list(columns))
    return found


def _primary_keys(db: Database) -> dict[str, list[str]]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY'"
            )
        ).all()
    return {table: list(columns) for table, columns in rows if table in SYNCED}


def _rows(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(text(sql))]


def test_a_fresh_duckdb_store_has_one_unique_index_per_synced_table(tmp_path: Path) -> None:
    db = Database(f"duckdb:///{tmp_path / 'fresh.duckdb'}")
    try:
        upgrade(db)
        assert _unique_keys(db) == {}
        assert _primary_keys(db) == {name: ["id"] for name in SYNCED}
    finally:
        db.dispose()


def test_upgrade_rebuilds_an_old_store_keeping_rows_columns_and_indexes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = _old_schema_store(tmp_path / "old.duckdb")
    try:
        with db.begin() as conn:
            assert upsert(conn, "contacts", _contacts(["c1", "c2", "c3"], "old", T0)).written == 3
            deal = {"source_system": "salesforce", "source_id": "d1", "name": "Big deal"}
            assert upsert(conn, "deals", [{"organization_id": "acme", **deal}]).written == 1
            # What an operator may have added: a column of their own and an index.
            conn.execute(text("ALTER TABLE contacts ADD COLUMN note VARCHAR"))
            conn.execute(text("COMMENT ON COLUMN contacts.note IS 'an operator''s note'"))
            conn.execute(text("UPDATE contacts SET note = 'vip' WHERE source_id = 'c2'"))
            conn.execute(text("CREATE INDEX ix_contacts_by_email ON contacts (email)"))
        with db.connect() as conn:
            before = _rows(conn, "SELECT * EXCLUDE (note) FROM contacts ORDER BY source_id")
        with caplog.at_level(logging.WARNING, logger="revtops_kernel.store.migrate"):
            report = upgrade(db)
        assert report.rebuilt_tables == SYNCED
        assert report.changed
        assert "rebuilding contacts (3 rows)" in caplog.text
        assert _unique_keys(db) == {}
        assert _primary_keys(db) == {name: ["id"] for name in SYNCED}
        with db.connect() as conn:
            assert _rows(conn, "SELECT * EXCLUDE (note) FROM contacts ORDER BY source_id") == before
            assert _rows(conn, "SELECT source_id, note FROM contacts ORDER BY source_id") == [
                ("c1", None),
                ("c2", "vip"),
                ("c3", None),
            ]
            assert _rows(conn, "SELECT source_id, name FROM deals") == [("d1", "Big deal")]
            comments = dict(
                _rows(
                    conn,
                    "SELECT column_name, comment FROM duckdb_columns() "
                    "WHERE table_name = 'contacts'",
                )
            )
            assert comments["note"] == "an operator's note"
            assert comments["email"] == "Email, lowercase."
            indexes = _rows(
                conn, "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'contacts'"
            )
            assert indexes == [("ix_contacts_by_email",)]
            leftovers = _rows(
                conn, "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%revtops_old'"
            )
            assert leftovers == []
        assert not Path(f"{db.duckdb_path}.wal").exists()  # checkpointed after the rebuild
        # Idempotent: nothing left to rebuild.
        again = upgrade(db)
        assert again.rebuilt_tables == [] and not again.changed
    finally:
        db.dispose()


def test_upserts_into_a_rebuilt_table_update_and_never_duplicate(tmp_path: Path) -> None:
    db = _old_schema_store(tmp_path / "old.duckdb")
    try:
        with db.begin() as conn:
            upsert(conn, "contacts", _contacts(["c1", "c2"], "old", T0))
        upgrade(db)
        later = T0 + timedelta(days=1)
        with db.begin() as conn:
            # c1 changed, c2 stale (older: ignored), c3 new, c3 twice in the batch.
            batch = pa.concat_tables(
                [
                    _contacts(["c1"], "new", later),
                    _contacts(["c2"], "stale", T0 - timedelta(days=1)),
                    _contacts(["c3"], "first", later),
                    _contacts(["c3"], "second", later),
                ]
            )
            assert upsert(conn, "contacts", batch).written == 2
        with db.begin() as conn:  # the same batch again: nothing to write
            assert upsert(conn, "contacts", batch).written == 0
        with db.connect() as conn:
            rows = _rows(conn, "SELECT source_id, email FROM contacts ORDER BY source_id")
            assert rows == [
                ("c1", "new0@example.com"),
                ("c2", "old1@example.com"),
                ("c3", "second0@example.com"),
            ]
            keys = _rows(
                conn,
                "SELECT count(*), count(DISTINCT (organization_id, source_system, source_id)), "
                "count(DISTINCT id) FROM contacts",
            )
            assert keys == [(3, 3, 3)]
            # The primary key still refuses a second row of a key (its derived id).
            with pytest.raises(Exception, match=r"(?i)duplicate key|constraint"):
                driver_connection(conn).execute(
                    "INSERT INTO contacts (id, organization_id, source_system, source_id) "
                    "SELECT id, organization_id, source_system, source_id FROM contacts "
                    "WHERE source_id = 'c1'"
                )
    finally:
        db.dispose()


def test_a_rebuilt_table_pins_less_index_memory_for_scattered_changes(tmp_path: Path) -> None:
    """What the change is for: a batch of changed rows at keys all over the table loads the
    ART nodes of one index instead of two, and DuckDB keeps them pinned until a checkpoint."""
    stored, changed = 60_000, 1_000

    def pinned_after_changes(db: Database) -> float:
        with db.begin() as conn:
            upsert(conn, "contacts", _contacts([f"c{i}" for i in range(stored)], "old", T0))
        with db.connect() as conn:
            driver_connection(conn).execute("CHECKPOINT")
        step = stored // changed
        batch = _contacts([f"c{i}" for i in range(0, stored, step)], "new", T0 + timedelta(1))
        with db.begin() as conn:
            assert upsert(conn, "contacts", batch).written == changed
            pinned = driver_connection(conn).execute(
                "SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'ART_INDEX'"
            )
            return float(pinned.fetchall()[0][0])

    old = _old_schema_store(tmp_path / "old.duckdb")
    new = Database(f"duckdb:///{tmp_path / 'new.duckdb'}")
    try:
        upgrade(new)
        with_both, with_one = pinned_after_changes(old), pinned_after_changes(new)
    finally:
        old.dispose()
        new.dispose()
    assert with_both > 0
    assert with_one < 0.6 * with_both, (with_one, with_both)


def test_revtops_db_upgrade_says_what_it_rebuilds(tmp_path: Path) -> None:
    """The command a user runs: a line per table while it works, and what it rebuilt."""
    path = tmp_path / "old.duckdb"
    _old_schema_store(path).dispose()
    revtops = shutil.which("revtops") or str(Path(sys.executable).with_name("revtops"))
    env = {**os.environ, "REVTOPS_DATABASE_URL": f"duckdb:///{path}"}
    first = subprocess.run(
        [revtops, "db", "upgrade"], capture_output=True, text=True, env=env, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert "rebuilding activities (0 rows)" in first.stderr
    assert "rebuilt activities without its natural key's UNIQUE index" in first.stdout
    again = subprocess.run(
        [revtops, "db", "upgrade"], capture_output=True, text=True, env=env, timeout=120
    )
    assert "rebuil" not in again.stdout + again.stderr
    assert "schema already up to date" in again.stdout


def test_a_rebuild_that_outgrows_the_memory_limit_is_retried_table_by_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At scale 10 all the tables in one transaction pinned their new indexes together and ran
    out of the 256MiB limit; each table is its own transaction, checkpointed, and one that
    still runs out is retried with the base doubled."""
    path = tmp_path / "old.duckdb"
    old = _old_schema_store(path)
    try:
        with old.begin() as conn:
            upsert(conn, "contacts", _contacts([f"c{i}" for i in range(200_000)], "old", T0))
            upsert(conn, "accounts", [{"organization_id": "acme", "source_system": "hubspot",
                                       "source_id": f"a{i}"} for i in range(50_000)])  # fmt: skip
    finally:
        old.dispose()
    db = Database(f"duckdb:///{path}", duckdb_memory_limit="4MiB")
    try:
        with caplog.at_level(logging.WARNING):
            report = upgrade(db)
        assert report.rebuilt_tables == SYNCED
        assert "DuckDB ran out of memory" in caplog.text  # it did need the retry
        assert _unique_keys(db) == {}
        with db.connect() as conn:
            assert _rows(conn, "SELECT count(*), count(DISTINCT id) FROM contacts") == [
                (200_000, 200_000)
            ]
            assert _rows(conn, "SELECT count(*) FROM accounts") == [(50_000,)]
    finally:
        db.dispose()
