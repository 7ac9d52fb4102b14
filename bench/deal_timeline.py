"""One deal's timeline, risk flags and brief on PostgreSQL (issue 17's deal timeline and brief).

    python bench/deal_timeline.py [--scale 0.2] [--seed 0] [--deals 10] [--runs 3]
                                  [--postgres-url URL] [--explain]

A fresh ``SandboxServer(scale, seed)`` is synced (HubSpot, Slack, Google Calendar, as
``bench/risk.py`` does) into a scratch PostgreSQL database, dropped at the end. Then, for the
``--deals`` deals with the most activities, it times (p50 and p95, nearest rank, after one
warm-up): ``intelligence.timeline.deal_timeline``; the ``deal_timeline`` verified query by id
(through the guard and the read-only path, as the copilot runs it); ``deal_risks`` for that
deal alone (``deal_id``), beside ``deal_risks`` for every deal as the baseline measured in the
same run; and the brief PDF (``--runs`` deals). Goal: the timeline and one deal's flags within
500 ms each, the brief within 2 s. ``--explain`` prints each statement ``deal_timeline``
sends with its PostgreSQL plan's scan lines (which index each lookup uses).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from risk import ORG, p95, sync  # bench/risk.py: the same sync and percentile
from sqlalchemy import event, text

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.intelligence.timeline import deal_timeline
from revtops_kernel.reports.deal_brief import deal_brief_pdf
from revtops_kernel.store import Database
from revtops_kernel.store.scratch import scratch_store
from revtops_sandbox import SandboxServer

AS_OF = date(2026, 11, 1)  # the sandbox's anchor
GOALS_S = {"timeline": 0.5, "timeline query": 0.5, "risks (one deal)": 0.5, "brief PDF": 2.0}


def busiest_deals(db: Database, n: int) -> list[str]:
    with db.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT deal_id FROM activities WHERE deal_id IS NOT NULL AND deleted_at IS NULL "
                "GROUP BY deal_id ORDER BY count(*) DESC, deal_id LIMIT :n"
            ),
            {"n": n},
        ).scalars()
        return [str(r) for r in rows]


def timed_each(run: Callable[[str], Any], deals: list[str]) -> list[float]:
    run(deals[0])  # warm-up: caches, the organization's role, the guard, fonts
    seconds = []
    for deal in deals:
        started = time.perf_counter()
        run(deal)
        seconds.append(time.perf_counter() - started)
    return seconds


def explain(db: Database, deal: str) -> None:
    statements: list[tuple[str, Any]] = []

    def collect(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", collect)
    try:
        deal_timeline(db, ORG, deal)
    finally:
        event.remove(db.engine, "before_cursor_execute", collect)
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            plan = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars().all()
            first = " ".join(statement.split())[:90]
            scans = [line.strip() for line in plan if "Scan" in line]
            print(f"\n{first}…\n  " + "\n  ".join(scans))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deals", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    with (
        SandboxServer(scale=args.scale, seed=args.seed) as sandbox,
        scratch_store("postgresql", args.postgres_url, prefix="revtops_bench_timeline") as db,
    ):
        started = time.monotonic()
        fetched = sync(db, sandbox)
        print(f"scale {args.scale:g} seed {args.seed}: synced {fetched} "
              f"in {time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
        deals = busiest_deals(db, args.deals)
        figures = {
            "timeline": timed_each(lambda d: deal_timeline(db, ORG, d), deals),
            "timeline query": timed_each(
                lambda d: run_verified(db, "deal_timeline", {"deal": d}, org=ORG), deals
            ),
            "risks (one deal)": timed_each(
                lambda d: run_verified(db, "deal_risks", {"deal_id": d}, org=ORG, today=AS_OF),
                deals,
            ),
            "risks, all deals (baseline)": timed_each(
                lambda _d: run_verified(db, "deal_risks", None, org=ORG, today=AS_OF),
                deals[: args.runs],
            ),
            "brief PDF": timed_each(
                lambda d: deal_brief_pdf(db, ORG, d, today=AS_OF), deals[: args.runs]
            ),
        }
        events = [len(deal_timeline(db, ORG, d).events) for d in deals]
        print(f"{len(deals)} busiest deals: {min(events)}-{max(events)} events each\n")
        print(f"{'what':<28} {'p50 ms':>8} {'p95 ms':>8}  goal")
        for name, seconds in figures.items():
            goal = GOALS_S.get(name)
            mark = "" if goal is None else (
                f"p95 <= {goal * 1000:.0f} ms: " + ("met" if p95(seconds) <= goal else "MISSED")
            )  # fmt: skip
            print(f"{name:<28} {statistics.median(seconds) * 1000:>8.0f} "
                  f"{p95(seconds) * 1000:>8.0f}  {mark}")  # fmt: skip
        if args.explain:
            explain(db, deals[0])
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
