"""A DuckDB sync's batches checkpoint as they commit once the write-ahead log passes the
sync's threshold, so the next unit of work does not replay them when it opens the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import sandbox_settings

from revtops_kernel import sync
from revtops_kernel.store import Database, upgrade
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer


def log_sizes_at_open(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer, threshold: str
) -> list[int]:
    path = tmp_path / f"store-{threshold}.duckdb"
    db = Database(f"duckdb:///{path}", lock_timeout=10)
    upgrade(db)
    wal = Path(f"{path}.wal")
    sizes: list[int] = []
    connect = duckdb.connect

    def spying(*args: Any, **kwargs: Any) -> Any:
        sizes.append(wal.stat().st_size if wal.exists() else 0)
        return connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", spying)
    monkeypatch.setattr(sync, "BATCH_CHECKPOINT_THRESHOLD", threshold)
    try:
        result = run_sync(db, sandbox_settings(sandbox, db, "hubspot", org="northwind"), "hubspot")
    finally:
        monkeypatch.undo()
        db.dispose()
    assert result.ok, result.error
    assert result.counts.upserted > 0 and len(sizes) > 5
    return sizes


def test_batches_past_the_threshold_are_not_replayed_by_the_next_open(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer
) -> None:
    kept = log_sizes_at_open(monkeypatch, tmp_path, sandbox, "1GB")
    checkpointed = log_sizes_at_open(monkeypatch, tmp_path, sandbox, "1KB")
    # Without checkpoints the log grows batch after batch and every open replays it.
    assert max(kept) > 256 * 1024, kept
    # With them, an open only finds what units of work other than batches left (bookkeeping).
    assert max(checkpointed) < max(kept) / 4, (checkpointed, kept)
    assert sum(checkpointed) < sum(kept) / 4
