"""DuckDB: a sync's statistics refresh checkpoints what the sync wrote, so the opens after it
(identity resolution's, every query's read-only handle) have no write-ahead log to replay."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.statistics import BATCH_SHARE, StatisticsRefresh
from revtops_kernel.store.upsert import upsert


def wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_refresh_checkpoints_duckdb_after_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    db = Database(f"duckdb:///{path}")
    upgrade(db)
    rows = [
        {
            "organization_id": "acme",
            "source_system": "hubspot",
            "source_id": str(i),
            "name": f"Account {i}",
            "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
        for i in range(2_000)
    ]
    try:
        with db.begin() as conn:
            upsert(conn, "accounts", rows)
        assert wal_bytes(path) > 0  # the store does not checkpoint on close
        refresh = StatisticsRefresh(db)
        refresh.note("accounts", len(rows))
        assert refresh.refresh_due(BATCH_SHARE) == []  # between batches: left to DuckDB
        assert wal_bytes(path) > 0
        refresh.refresh_due()  # before resolution, at the end of the sync
        assert wal_bytes(path) == 0
        assert refresh.unchecked_rows == 0 and refresh.seconds > 0
        spent = refresh.seconds
        refresh.refresh_due()  # nothing written since: no checkpoint
        assert refresh.seconds == spent
    finally:
        db.dispose()
