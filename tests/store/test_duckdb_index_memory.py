"""DuckDB's ART indexes (every primary key and UNIQUE constraint) pin the nodes a write loads
until a checkpoint: counted against memory_limit, never evicted. A scale-10 incremental sync
failed at the 256MiB default that way ("Out of Memory" on HubSpot's and Salesforce's re-sync,
reported as "transaction is aborted"); these reproduce it small, under a limit of a few MiB.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import Connection, text

from revtops_kernel.errors import SettingsError, StoreError
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.database import driver_connection, memory_size_bytes
from revtops_kernel.store.retry import in_transaction
from revtops_kernel.store.upsert import upsert
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer

STORED = 300_000  # contacts: their one index (id) pins ~15 MiB once a batch has loaded it
CHANGED = 3_000  # stored contacts the batch changes, at keys spread over the whole index
NEW = 3_000
LOW_LIMIT = "8MiB"
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


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


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of STORED contacts, checkpointed (no index held in memory when it opens)."""
    path = tmp_path_factory.mktemp("index_memory") / "store.duckdb"
    db = Database(f"duckdb:///{path}")
    try:
        upgrade(db)
        ids = [f"c{i}" for i in range(STORED)]
        with db.begin() as conn:  # a first load: one plain INSERT, at the default limit
            assert upsert(conn, "contacts", _contacts(ids, "old", T0)).written == STORED
        with db.connect() as conn:
            driver_connection(conn).execute("CHECKPOINT")
    finally:
        db.dispose()
    return path


@pytest.fixture
def store(big_store: Path, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "store.duckdb"
    path.write_bytes(big_store.read_bytes())
    yield path


def _changes() -> pa.Table:
    step = STORED // CHANGED  # spread: a batch's changed rows sit all over the key space
    changed = [f"c{i}" for i in range(0, STORED, step)][:CHANGED]
    new = [f"n{i}" for i in range(NEW)]
    return _contacts(changed + new, "new", T0 + timedelta(days=1))


def _write(conn: Connection) -> int:
    return upsert(conn, "contacts", _changes()).written


def _art_mib(conn: Connection) -> float:
    pinned = driver_connection(conn).execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'ART_INDEX'"
    )
    return int(pinned.fetchall()[0][0]) / 2**20


def test_an_incremental_batch_whose_indexes_outgrow_the_limit_is_written(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sync's unit of work (in_transaction + upsert) under a limit below what the indexes
    pin: it fails with "Out of Memory" on the code before the fix, whatever the retries."""
    db = Database(f"duckdb:///{store}", duckdb_memory_limit=LOW_LIMIT)
    try:
        with caplog.at_level(logging.WARNING):
            written = in_transaction(db, _write, what="contacts batch")
        assert written == CHANGED + NEW
        with db.connect() as conn:
            counts = conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE email LIKE 'new%'), "
                    "count(DISTINCT id) FROM contacts"
                )
            ).one()
            pinned = _art_mib(conn)
        assert tuple(counts) == (STORED + NEW, CHANGED + NEW, STORED + NEW)
        # The indexes really outgrew the setting: what they pin is not a rounding error.
        assert pinned > 1.5 * memory_size_bytes(LOW_LIMIT) / 2**20
        assert db.duckdb_memory_limit == LOW_LIMIT  # the setting itself is left as it was
    finally:
        db.dispose()


def test_a_write_ahead_log_whose_replay_outgrows_the_limit_opens(store: Path) -> None:
    """The batch above left in the write-ahead log (no checkpoint when a connection closes):
    the next process's open replays it into the indexes, pinning them again, under its own
    limit. It opens, with the base raised, instead of failing to connect."""
    writer = Database(f"duckdb:///{store}", duckdb_memory_limit="512MiB")
    try:
        assert in_transaction(writer, _write, what="contacts batch") == CHANGED + NEW
    finally:
        writer.dispose()
    assert store.with_name(store.name + ".wal").stat().st_size > 500_000
    db = Database(f"duckdb:///{store}", duckdb_memory_limit=LOW_LIMIT)
    try:
        with db.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM contacts")).scalar_one() == (
                STORED + NEW
            )
        assert db.duckdb_memory_base > memory_size_bytes(LOW_LIMIT)
    finally:
        db.dispose()


def test_a_later_unit_gets_the_base_on_top_of_the_pinned_indexes(store: Path) -> None:
    """Once a unit has pinned an index, the next one starts with the limit raised by that
    much (the held connection of a sync keeps what its units pinned)."""
    db = Database(f"duckdb:///{store}", duckdb_memory_limit="512MiB")
    try:
        with db.writer_held():
            with db.begin() as conn:
                assert _write(conn) == CHANGED + NEW
            with db.begin() as conn:
                pinned = _art_mib(conn)
                limit = conn.execute(text("SELECT current_setting('memory_limit')")).scalar_one()
        assert pinned > 10
        assert memory_size_bytes(str(limit)) / 2**20 == pytest.approx(512 + pinned, abs=16)
    finally:
        db.dispose()


def test_the_limit_comes_back_to_the_base_once_a_checkpoint_unpins(store: Path) -> None:
    """A checkpoint writes the indexes out and lets go of their memory: the next unit's limit
    is the base again, so the cache does not keep the room the indexes had."""
    db = Database(f"duckdb:///{store}", duckdb_memory_limit="64MiB")
    try:
        with db.writer_held():
            with db.begin() as conn:
                assert _write(conn) == CHANGED + NEW
            with db.connect() as conn:
                raised = conn.execute(text("SELECT current_setting('memory_limit')")).scalar_one()
                driver_connection(conn).execute("CHECKPOINT")
            with db.begin() as conn:
                pinned = _art_mib(conn)
                limit = conn.execute(text("SELECT current_setting('memory_limit')")).scalar_one()
        assert memory_size_bytes(str(raised)) > memory_size_bytes("64MiB") + 10 * 2**20
        assert pinned < 1
        assert memory_size_bytes(str(limit)) == memory_size_bytes("64MiB")
    finally:
        db.dispose()


def test_the_out_of_memory_error_is_the_one_raised(store: Path) -> None:
    """Outside the retry, the statement's own error reaches the caller, not the "transaction
    is aborted" of unregistering the batch afterwards."""
    db = Database(f"duckdb:///{store}", duckdb_memory_limit=LOW_LIMIT)
    try:
        with pytest.raises(duckdb.OutOfMemoryException), db.begin() as conn:
            _write(conn)
    finally:
        db.dispose()


def test_past_the_cap_one_line_names_the_setting(store: Path) -> None:
    db = Database(f"duckdb:///{store}", duckdb_memory_limit=LOW_LIMIT)
    db.duckdb_memory_cap = memory_size_bytes("16MiB")  # below what the indexes need
    try:
        with pytest.raises(StoreError) as raised:
            in_transaction(db, _write, what="contacts batch")
        message = str(raised.value)
        assert "\n" not in message
        assert "contacts batch: DuckDB ran out of memory" in message
        assert "REVTOPS_DUCKDB_MEMORY_LIMIT" in message
        assert "Out of Memory Error" in message
        with db.connect() as conn:  # nothing of the batch was written
            assert conn.execute(text("SELECT count(*) FROM contacts")).scalar_one() == STORED
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("value", "size"),
    [("256MiB", 256 * 2**20), ("1GB", 10**9), ("256.0 MiB", 256 * 2**20), ("2 GiB", 2**31)],
)
def test_memory_sizes_read_as_duckdb_reads_them(value: str, size: int) -> None:
    assert memory_size_bytes(value) == size


def test_a_limit_without_a_unit_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="REVTOPS_DUCKDB_MEMORY_LIMIT"):
        load_settings(REVTOPS_DUCKDB_MEMORY_LIMIT="512")  # DuckDB refuses it too


def _settings(path: Path, sandbox: SandboxServer, limit: str) -> Settings:
    """The DuckDB store at ``path`` under ``limit``; HubSpot and Google Calendar from
    ``sandbox``."""
    return load_settings(
        REVTOPS_DATABASE_URL=f"duckdb:///{path}",
        REVTOPS_DUCKDB_MEMORY_LIMIT=limit,
        REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
        REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        REVTOPS_GOOGLE_CALENDAR_BASE_URL=sandbox.google_calendar_base_url,
        REVTOPS_GOOGLE_CALENDAR_TOKEN=sandbox.token,
    )


def _first_syncs(path: Path, sandbox: SandboxServer, *providers: str) -> Database:
    """A new store at ``path``, first-synced from ``providers`` at the default limit."""
    settings = _settings(path, sandbox, "256MiB")
    db = Database.from_settings(settings)
    upgrade(db)
    for provider in providers:
        first = run_sync(db, settings, provider, org="acme")
        assert first.ok, first.error
    return db


def test_an_incremental_sync_under_a_small_limit_succeeds(tmp_path: Path) -> None:
    """The whole path: a HubSpot first sync, 1% of the CRM changed, and the re-sync under a
    limit below what its writes pin in indexes over its units of work (~17 MiB here)."""
    path = tmp_path / "store.duckdb"
    with SandboxServer(scale=0.2, seed=3) as sandbox:
        _first_syncs(path, sandbox, "hubspot").dispose()
        changed = sandbox.mutate(modified_pct=1.0, seed=13)
        assert sum(len(ids) for ids in changed.modified.values()) > 100
        low = _settings(path, sandbox, "12MiB")
        db = Database.from_settings(low)
        try:
            result = run_sync(db, low, "hubspot", org="acme")
            assert result.ok, result.error
            assert result.counts.upserted >= 100
        finally:
            db.dispose()


def test_a_syncs_steps_after_its_streams_outgrow_the_limit_and_succeed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Identity resolution and the derived tables' refreshes run in transactions of their own
    after the streams; one that outgrows the limit is retried with a raised base, as a batch
    is. A full resolution at scale 10 ran out at the 256MiB default and failed the sync, and
    with no resolution recorded every later sync resolved in full and failed again."""
    path = tmp_path / "store.duckdb"
    with SandboxServer(scale=0.2, seed=3) as sandbox:
        db = _first_syncs(path, sandbox, "hubspot", "google_calendar")
        try:
            with db.begin() as conn:  # as if the rules changed: the next resolution is full
                conn.execute(text("DELETE FROM identity_resolutions"))
                conn.execute(text("DELETE FROM derived_marks"))  # deal states rebuilt too
        finally:
            db.dispose()
        low = _settings(path, sandbox, "8MiB")
        db = Database.from_settings(low)
        try:
            with caplog.at_level(logging.WARNING):
                result = run_sync(db, low, "hubspot", org="acme")
            assert result.ok, result.error
            assert result.resolution is not None and result.resolution.full
            assert result.resolution.participants_examined > 1_000
            assert db.duckdb_memory_base > memory_size_bytes("8MiB")  # raised on the way
            failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert failures == []
        finally:
            db.dispose()
