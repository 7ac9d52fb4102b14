"""A separate process that shares one DuckDB file, for tests/store/test_concurrency.py.

    python duckdb_worker.py writer PATH BATCHES ROWS   upsert BATCHES batches of ROWS new deals
    python duckdb_worker.py reader PATH SECONDS        count deals through read_sql until told
    python duckdb_worker.py holder PATH SECONDS        hold a write transaction open until
                                                       PATH.release exists (SECONDS at most)
    python duckdb_worker.py contender PATH TIMEOUT     one short write, waiting up to TIMEOUT

Each prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from revtops_kernel.errors import DatabaseLockedError
from revtops_kernel.store import Database
from revtops_kernel.store.query import read_sql
from revtops_kernel.store.upsert import upsert


def deals(start: int, count: int) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {
            "organization_id": "acme",
            "source_system": "hubspot",
            "source_id": str(i),
            "name": f"Deal {i}",
            "amount": i,
            "updated_at": now,
            "raw": {"id": str(i)},
        }
        for i in range(start, start + count)
    ]


def writer(db: Database, batches: int, rows: int) -> dict[str, object]:
    started = time.monotonic()
    for batch in range(batches):
        with db.begin() as conn:
            upsert(conn, "deals", deals(batch * rows, rows))
        time.sleep(0.25)  # a sync between pages: the file is free for readers meanwhile
    return {"batches": batches, "seconds": time.monotonic() - started}


def reader(db: Database, seconds: float, stop_file: Path) -> dict[str, object]:
    counts: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop_file.exists():
        frame = read_sql(db, "SELECT count(*) AS n FROM deals", org="acme").frame
        counts.append(int(frame["n"][0]))
    return {"counts": counts}


def holder(db: Database, seconds: float, release_file: Path) -> dict[str, object]:
    with db.begin() as conn:
        upsert(conn, "deals", deals(0, 1))
        print(json.dumps({"holding": True}), flush=True)
        deadline = time.monotonic() + seconds
        while not release_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        conn.execute(text("SELECT 1"))
    return {"released": True}


def contender(db: Database) -> dict[str, object]:
    print(json.dumps({"trying": True}), flush=True)
    started = time.monotonic()
    try:
        with db.begin() as conn:
            upsert(conn, "deals", deals(1000, 1))
    except DatabaseLockedError as exc:
        return {"locked": str(exc), "waited": time.monotonic() - started}
    return {"written": True, "waited": time.monotonic() - started}


def main() -> None:
    role, path = sys.argv[1], sys.argv[2]
    lock_timeout = float(sys.argv[3]) if role == "contender" else 60.0
    db = Database(f"duckdb:///{path}", lock_timeout=lock_timeout)
    if role == "writer":
        outcome = writer(db, int(sys.argv[3]), int(sys.argv[4]))
    elif role == "reader":
        outcome = reader(db, float(sys.argv[3]), Path(path + ".stop"))
    elif role == "holder":
        outcome = holder(db, float(sys.argv[3]), Path(path + ".release"))
    else:
        outcome = contender(db)
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
