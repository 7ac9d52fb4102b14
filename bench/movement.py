"""The movement queries (issue 17) at a company's real size: waterfall, funnel, velocity and
forecast against quota, through the SQL guard and the read-only path the copilot uses.

    python bench/movement.py [--scale 1] [--backends postgresql,duckdb] [--runs 5]
                             [--seed 7] [--postgres-url URL]

Per backend: a fresh store (DuckDB: a temporary file; PostgreSQL: a scratch database, dropped at
the end) gets the sandbox company's HubSpot data (stage, amount and close-date history
included) through the real sync, and a quota per rep for the sandbox's quarter. Then each query
runs once to warm up and ``--runs`` times measured: p50 and p95 (nearest rank: of 5 runs, the
slowest), against the 500 ms goal. ``pipeline_by_stage``, a one-table verified query, is timed
in the same run as the baseline: what the read-only path itself costs on this machine now.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from datetime import date
from typing import Any

from sqlalchemy import text

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.intelligence.quotas import import_quotas
from revtops_kernel.store import Database
from revtops_kernel.store.deal_states import refresh_deal_states
from revtops_kernel.store.scratch import scratch_store

ORG = "bench-movement"
AS_OF = date(2026, 11, 1)  # the sandbox's anchor: its "today"
GOAL_S = 0.5
TRACK_Q4 = {"close_from": "2026-10-01", "close_to": "2026-12-31"}
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("baseline", "pipeline_by_stage", {}),
    ("forecast vs quota, per rep", "forecast_vs_quota", {}),
    ("forecast vs quota, per team", "forecast_vs_quota", {"group_by": "team"}),
    ("stage funnel, last year's deals", "stage_funnel", {}),
    ("sales velocity, per rep", "sales_velocity", {}),
    ("sales velocity, per account size", "sales_velocity", {"group_by": "account_size"}),
    ("waterfall QTD, per pipeline", "pipeline_waterfall", {}),
    ("waterfall QTD, Q4 closes, per rep", "pipeline_waterfall", {**TRACK_Q4, "group_by": "owner"}),
    ("waterfall of a year, in total", "pipeline_waterfall",
     {"start_date": "2025-11-01", "end_date": "2026-11-01", "group_by": "none"}),
]  # fmt: skip


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def nearest_rank(runs: list[float], share: float) -> float:
    ordered = sorted(runs)
    return ordered[math.ceil(share * len(ordered)) - 1]


class _DerivedSteps(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def load(db: Database, scale: float, seed: int) -> dict[str, int]:
    from revtops_sandbox.evals.sandbox_store import sync_sandbox

    started = time.perf_counter()
    steps = _DerivedSteps()
    logging.getLogger("revtops_kernel.store.deal_states").addHandler(steps)
    logging.getLogger("revtops_kernel.store.deal_states").setLevel(logging.INFO)
    sync_sandbox(db, org=ORG, scale=scale, seed=seed)
    progress(f"synced in {time.perf_counter() - started:.0f} s")
    for line in steps.lines:  # the sync's deal_states / deal_stage_visits refresh
        progress(f"  sync step: {line}")
    with db.begin() as conn:  # what the next sync's refresh costs when nothing changed
        began = time.perf_counter()
        rows = sum(refresh_deal_states(conn, ORG, "hubspot").values())
    progress(f"  a re-sync's refresh with nothing new: {rows:,} rows (the mark's lookback) in "
             f"{time.perf_counter() - began:.2f} s")  # fmt: skip
    with db.connect() as conn:
        emails = [
            r[0]
            for r in conn.execute(
                text("SELECT DISTINCT lower(email) FROM owners WHERE organization_id = :o"),
                {"o": ORG},
            )
        ]
        counts = {
            table: int(
                conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE organization_id = :o"), {"o": ORG}
                ).scalar_one()
            )
            for table in (
                "deals",
                "deal_stage_history",
                "deal_field_history",
                "deal_states",
                "deal_stage_visits",
            )
        }
    lines = ["owner_email,quarter,amount,team"]
    lines += [f"{e},2026-Q4,500000,Team {i % 5}" for i, e in enumerate(sorted(emails)) if e]
    import_quotas(db, ORG, "\n".join(lines) + "\n", source="bench quotas")
    counts["quotas"] = len(lines) - 1
    return counts


def measure(db: Database, runs: int) -> list[tuple[str, str, int, list[float]]]:
    out = []
    for label, name, params in CASES:
        result = run_verified(db, name, params, org=ORG, today=AS_OF, timeout=60)  # warm-up
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            run_verified(db, name, params, org=ORG, today=AS_OF, timeout=60)
            timings.append(time.perf_counter() - started)
        out.append((label, name, len(result.frame), timings))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="postgresql")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    failed = False
    for backend in args.backends.split(","):
        progress(f"{backend}: syncing the sandbox at scale {args.scale}")
        with scratch_store(backend, args.postgres_url, prefix="revtops_bench_movement") as db:
            counts = load(db, args.scale, args.seed)
            results = measure(db, args.runs)
        print(
            f"\n{backend}, scale {args.scale}: "
            + ", ".join(f"{v:,} {k}" for k, v in counts.items())
        )
        print(
            f"{'query':<38} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8}  "
            f"goal p95 <= {GOAL_S * 1000:.0f} ms"
        )
        for label, _name, rows, timings in results:
            p50, p95 = statistics.median(timings) * 1000, nearest_rank(timings, 0.95) * 1000
            ok = label == "baseline" or p95 <= GOAL_S * 1000
            failed |= not ok
            mark = "(baseline)" if label == "baseline" else "ok" if ok else "MISSED"
            print(f"{label:<38} {rows:>5} {p50:>8.0f} {p95:>8.0f}  {mark}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
