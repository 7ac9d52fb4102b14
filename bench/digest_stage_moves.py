"""The digest's stage moves on a Salesforce store: entries counted with repeated snapshots
collapsed (``digest.STAGE_MOVES_SQL``) against the former query that counted every history row
in the window, as the same run's baseline.

    python bench/digest_stage_moves.py [--scale 1] [--backends duckdb,postgresql] [--runs 5]
                                       [--postgres-url URL]

Per backend: a scratch store gets the sandbox company's Salesforce data through the real sync
(its OpportunityHistory writes a snapshot for an amount or close-date change alone); then, for
two windows, each query runs ``--runs`` times through the SQL guard: entries found, p50 and max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date

from sqlalchemy import text

from revtops_kernel.reports.digest import STAGE_MOVES_SQL, _guarded
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_store
from revtops_kernel.sync import run_sync

ORG = "bench-moves"
WINDOWS = [(date(2026, 10, 1), date(2026, 10, 31)), (date(2026, 7, 1), date(2026, 9, 30))]
# The query before repeats were collapsed: every row in the window was an entry.
BASELINE_SQL = """
WITH args AS (SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date)
SELECT p.name AS pipeline, COALESCE(s.label, h.stage_name) AS stage,
    count(DISTINCT h.deal_id) AS deals
FROM deal_stage_history h CROSS JOIN args
LEFT JOIN pipelines p ON p.id = h.pipeline_id AND p.deleted_at IS NULL
LEFT JOIN deal_stages s ON s.id = h.stage_id AND s.deleted_at IS NULL
JOIN deals d ON d.id = h.deal_id AND d.deleted_at IS NULL
WHERE h.deleted_at IS NULL AND h.entered_at >= args.start_date
    AND h.entered_at < args.end_date + 1
GROUP BY p.name, p.display_order, COALESCE(s.label, h.stage_name), s.display_order
ORDER BY p.display_order, p.name, s.display_order, stage"""
REPEATS_SQL = """
SELECT count(*) FILTER (WHERE previous = stage_id), count(*) FROM (
    SELECT stage_id, lag(stage_id) OVER (PARTITION BY deal_id ORDER BY entered_at, id) AS previous
    FROM deal_stage_history) AS h"""


def load(db: Database, scale: float, seed: int) -> tuple[int, int]:
    from revtops_sandbox import SandboxServer  # the bench is an edge: it may use the sandbox

    upgrade(db)
    with SandboxServer(scale=scale, seed=seed) as sandbox:
        settings = load_settings(
            REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False),
            REVTOPS_ORG=ORG,
            REVTOPS_SALESFORCE_INSTANCE_URL=sandbox.salesforce_instance_url,
            REVTOPS_SALESFORCE_TOKEN=sandbox.token,
        )
        result = run_sync(db, settings, "salesforce", org=ORG)
        if not result.ok:
            raise SystemExit(f"sync failed: {result.error}")
    with db.connect() as connection:
        repeats, rows = connection.execute(text(REPEATS_SQL)).one()
    return int(repeats), int(rows)


def timed(db: Database, sql: str, first: date, last: date, runs: int) -> tuple[int, list[float]]:
    entries = int(_guarded(db, sql, ORG, first, last)["deals"].sum())  # warm-up
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        _guarded(db, sql, ORG, first, last)
        timings.append((time.perf_counter() - started) * 1000)
    return entries, timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        with scratch_store(backend, args.postgres_url, prefix="revtops_bench_moves") as db:
            repeats, rows = load(db, args.scale, args.seed)
            print(f"\n{backend}, scale {args.scale}: {rows:,} history rows, {repeats:,} repeat "
                  "the stage of the row before")  # fmt: skip
            print(f"{'window':<24} {'query':<10} {'entries':>8} {'p50 ms':>8} {'max ms':>8}")
            for first, last in WINDOWS:
                for label, sql in (("baseline", BASELINE_SQL), ("collapsed", STAGE_MOVES_SQL)):
                    entries, timings = timed(db, sql, first, last, args.runs)
                    print(f"{f'{first} – {last}':<24} {label:<10} {entries:>8,} "
                          f"{statistics.median(timings):>8.1f} {max(timings):>8.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
