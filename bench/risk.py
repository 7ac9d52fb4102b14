"""``deal_risks`` at a company's real size on PostgreSQL (issue 17: goal p95 <= 500 ms).

    python bench/risk.py [--scale 1] [--seed 0] [--runs 5] [--postgres-url URL] [--explain]
                         [--database-url URL [--sync]]

A fresh ``SandboxServer(scale, seed)`` is synced (HubSpot, Slack, Google Calendar: CRM
activities, Slack messages and calendar events with their resolved attendees, as ``revtops
demo`` does) into a scratch PostgreSQL database made through ``--postgres-url`` and dropped at
the end. Then ``deal_risks`` runs with its defaults ("today" the sandbox's anchor) through the
SQL guard and the read-only path the copilot uses, once to warm up and ``--runs`` times timed:
p50 and p95 (nearest rank: of 5 runs, the slowest). The baseline, measured in the same run the
same way, is two core verified queries over the same tables (``stalled_deals``,
``single_threaded_deals``). ``--explain`` also prints EXPLAIN ANALYZE of the rendered SQL (as
the store's owner, without row-level security). ``--database-url`` times an existing store
instead (synced first with ``--sync``), so a second look skips the sync (minutes at scale 1).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import text

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.settings import load_settings, normalize_database_url
from revtops_kernel.store import Database
from revtops_kernel.store.scratch import scratch_store
from revtops_sandbox import SandboxServer

ORG = "bench"
AS_OF = date(2026, 11, 1)  # the sandbox's anchor
GOAL_S = 0.5
PROVIDERS = ("hubspot", "slack", "google_calendar")
BASELINES = ("stalled_deals", "single_threaded_deals")


def sync(db: Database, sandbox: Any) -> dict[str, int]:
    from revtops_kernel.store import upgrade
    from revtops_kernel.sync import run_sync

    upgrade(db)
    settings = load_settings(
        REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        REVTOPS_SLACK_REQUESTS_PER_MINUTE="6000",
        REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
        REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        REVTOPS_SLACK_BASE_URL=sandbox.slack_base_url,
        REVTOPS_SLACK_TOKEN=sandbox.token,
        REVTOPS_GOOGLE_CALENDAR_BASE_URL=sandbox.google_calendar_base_url,
        REVTOPS_GOOGLE_CALENDAR_TOKEN=sandbox.token,
    )
    fetched = {}
    for provider in PROVIDERS:
        result = run_sync(db, settings, provider, org=ORG)
        if not result.ok:
            raise SystemExit(f"bench/risk.py: the {provider} sync failed: {result.error}")
        fetched[provider] = result.counts.fetched
    return fetched


def timed(run: Callable[[], Any], runs: int) -> tuple[int, list[float]]:
    rows = len(run().frame)  # warm-up: caches, the organization's role, the guard
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return rows, seconds


def p95(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def explain(db: Database) -> None:
    from revtops_kernel.agent.verified import render_sql, resolve_params

    sql = render_sql("deal_risks", resolve_params("deal_risks", None, today=AS_OF))
    # The guard would scope every table to the organization; the bench store holds only one.
    with db.begin() as conn:
        plan = conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")).scalars().all()
    print("\n".join(plan))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--database-url", help="an existing store to time instead")
    parser.add_argument("--sync", action="store_true", help="sync --database-url first")
    args = parser.parse_args(argv)
    if args.database_url:
        db = Database(normalize_database_url(args.database_url))
        if args.sync:
            with SandboxServer(scale=args.scale, seed=args.seed) as sandbox:
                synced(db, sandbox, args)
        measure(db, args)
        db.dispose()
        return 0
    with (
        SandboxServer(scale=args.scale, seed=args.seed) as sandbox,
        scratch_store("postgresql", args.postgres_url, prefix="revtops_bench_risk") as db,
    ):
        synced(db, sandbox, args)
        measure(db, args)
        db.dispose()
    return 0


def synced(db: Database, sandbox: Any, args: argparse.Namespace) -> None:
    started = time.monotonic()
    fetched = sync(db, sandbox)
    print(f"scale {args.scale:g} seed {args.seed}: synced {fetched} "
          f"in {time.monotonic() - started:.0f} s", flush=True)  # fmt: skip


def measure(db: Database, args: argparse.Namespace) -> None:
    with db.begin() as conn:
        counts = conn.execute(text(
            "SELECT (SELECT count(*) FROM deals), (SELECT count(*) FROM activities), "
            "(SELECT count(*) FROM activity_participants), "
            "(SELECT count(*) FROM deal_field_history), "
            "(SELECT count(*) FROM deal_stage_history)"
        )).one()  # fmt: skip
    print("deals {:,}, activities {:,}, participants {:,}, field history {:,}, "
          "stage history {:,}".format(*counts))  # fmt: skip
    print(f"\n{'query':<24} {'rows':>6} {'p50 ms':>8} {'p95 ms':>8}  goal p95 <= "
          f"{GOAL_S * 1000:.0f} ms")  # fmt: skip
    for name in ("deal_risks", *BASELINES):
        rows, seconds = timed(
            lambda n=name: run_verified(db, n, None, org=ORG, today=AS_OF), args.runs
        )
        mark = ("met" if p95(seconds) <= GOAL_S else "MISSED") if name == "deal_risks" else ""
        label = name if name == "deal_risks" else f"{name} (baseline)"
        print(f"{label:<24} {rows:>6} {statistics.median(seconds) * 1000:>8.0f} "
              f"{p95(seconds) * 1000:>8.0f}  {mark}")  # fmt: skip
    if args.explain:
        explain(db)


if __name__ == "__main__":
    sys.exit(main())
