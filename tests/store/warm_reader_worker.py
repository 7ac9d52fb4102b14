"""A separate process for tests/store/test_duckdb_reader.py.

    python warm_reader_worker.py write PATH FIRST COUNT   upsert COUNT deals of acme, once
    python warm_reader_worker.py hold PATH                read (the handle stays warm), then
                                                          read again once PATH.go exists

Each prints JSON lines with what it saw.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from revtops_kernel.store import Database, duckdb_reader
from revtops_kernel.store.query import read_sql
from revtops_kernel.store.upsert import upsert

sys.path.insert(0, str(Path(__file__).parent))
from duckdb_worker import deals


def count(db: Database) -> int:
    return int(read_sql(db, "SELECT count(*) AS n FROM deals", org="acme").frame["n"][0])


def main() -> None:
    role, path = sys.argv[1], sys.argv[2]
    db = Database(f"duckdb:///{path}", lock_timeout=20)
    if role == "write":
        started = time.monotonic()
        with db.begin() as conn:
            upsert(conn, "deals", deals(int(sys.argv[3]), int(sys.argv[4])))
        print(json.dumps({"waited": time.monotonic() - started}), flush=True)
        return
    duckdb_reader.IDLE_SECONDS = 600  # only a writer's intent may close it
    print(json.dumps({"count": count(db), "opens": duckdb_reader.opens}), flush=True)
    go = Path(f"{path}.go")
    while not go.exists():
        time.sleep(0.02)
    print(json.dumps({"count": count(db), "opens": duckdb_reader.opens}), flush=True)


if __name__ == "__main__":
    main()
