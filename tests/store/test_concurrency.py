"""Several processes share the embedded DuckDB file: one syncing, one querying."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from revtops_kernel.store import Database, upgrade

WORKER = str(Path(__file__).with_name("duckdb_worker.py"))


def start(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def fresh_file(tmp_path: Path) -> Path:
    path = tmp_path / "shared.duckdb"
    upgrade(Database(f"duckdb:///{path}"))
    return path


def test_a_sync_and_a_query_process_share_the_file(tmp_path: Path) -> None:
    path = fresh_file(tmp_path)
    batches, rows = 12, 2_000
    reader = start("reader", path, 120)
    writer = start("writer", path, batches, rows)
    written = finish(writer)
    Path(f"{path}.stop").touch()
    seen = finish(reader)["counts"]

    assert written["batches"] == batches
    # The reader got turns while the writer was running, not only before or after it. (How
    # many turns depends on the machine's load: CI under load saw 2, a quiet machine ~10.)
    assert any(0 < n < batches * rows for n in seen)
    # Every read saw whole batches, in order: never a half-written transaction.
    assert seen == sorted(seen)
    assert all(n % rows == 0 for n in seen)


def test_a_lock_held_too_long_gives_a_clear_error(tmp_path: Path) -> None:
    path = fresh_file(tmp_path)
    holder = start("holder", path, 90)
    assert holder.stdout is not None
    assert json.loads(holder.stdout.readline()) == {"holding": True}

    impatient = finish(start("contender", path, 0.5))
    assert "locked by another process" in impatient["locked"]
    assert f"PID {holder.pid}" in impatient["locked"]
    assert "REVTOPS_DB_LOCK_TIMEOUT" in impatient["locked"]

    patient = start("contender", path, 60)
    assert patient.stdout is not None
    assert json.loads(patient.stdout.readline()) == {"trying": True}
    time.sleep(1.5)  # let it meet the lock and retry for a while
    Path(f"{path}.release").touch()
    assert finish(holder) == {"released": True}
    outcome = finish(patient)
    assert outcome["written"] is True
    assert outcome["waited"] > 1.0  # it waited for the holder instead of failing
