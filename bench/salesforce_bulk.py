"""Benchmark a full Salesforce sync of Tasks: REST (``queryAll`` pages of 2,000) against the Bulk
API 2.0 (a ``queryAll`` job, CSV sets of 50,000 rows), from the same sandbox in the same run.

    python bench/salesforce_bulk.py [--tasks 1000000] [--seed 0] [--mode read|sync]
                                    [--processing-s 1.0] [--json PATH]

The parent process generates the sandbox company at the scale that holds ``--tasks`` Tasks
(about 43,000 per scale unit, deleted ones included: ``queryAll`` returns them) and serves it in
a thread; each measured sync runs in a child process, so the sandbox has one core and the client
the other. Each child builds a ``SalesforceConnector`` (REST: ``bulk_threshold=0``; Bulk:
``bulk_threshold=1``, so the Bulk run pays its ``COUNT()`` and ``describe`` calls too) and

- ``--mode read`` (default): reads the Task stream and normalizes every page
  (``normalize_page`` with ``raw`` as ``run_sync`` passes it: each record's JSON text for the
  ``raw`` column): what a sync spends outside the store, which is the same code for both;
- ``--mode sync``: ``run_sync`` of the Task stream (and OpportunityStage, which deals need) into
  a fresh DuckDB file: fetch, normalize, upsert, statistics, identity resolution.

Figures per path: records, API calls (the sandbox's count), wall seconds, records per second,
the client's CPU seconds and peak RSS, the sandbox's CPU seconds (the parent's, which only
serves while a child runs); then the ratios beside the goals (issue 13): Bulk makes
>= 10x fewer calls than REST and reaches >= 3x its records/s. The job's time in ``InProgress``
is ``--processing-s`` (a real org takes seconds to minutes for a million rows; it is wall time
in the Bulk figure, never CPU). On loopback a call costs nothing but the CPU that renders and
parses its records, which is the same work for both paths; ``--latency-ms`` adds the same
server time to every query call of both (a real org's round trip and query), which is where
REST's 2,000 records a call cost a real sync its time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds, peak_rss_mib, progress
from pydantic import SecretStr

TASKS_PER_SCALE = 43_000  # Tasks (incl. deleted) per scale unit; the run prints the real count
GOAL_CALLS, GOAL_SPEED = 10.0, 3.0


# --- the child: one measured sync ------------------------------------------------------------


def child(path: str, instance_url: str, token: str, mode: str) -> dict[str, Any]:
    from revtops_kernel.connectors.credentials import StaticToken
    from revtops_kernel.connectors.http import make_http_client
    from revtops_kernel.connectors.salesforce import SalesforceConnector

    http = make_http_client()
    made = SalesforceConnector.connect(
        instance_url, StaticToken("salesforce", SecretStr(token)), http
    )
    made.client.budgets.clear()  # the sandbox enforces no rate here; measure the API, not a wait
    conn = SalesforceConnector(made.client, bulk_threshold=0 if path == "rest" else 1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    records = _read_and_normalize(conn) if mode == "read" else _sync(conn)
    wall = time.perf_counter() - wall0
    http.close()
    return {
        "path": path,
        "records": records,
        "api_calls": conn.stats.api_calls,
        "by_endpoint": dict(conn.stats.by_endpoint),
        "wall_s": wall,
        "records_per_s": records / wall if wall else 0.0,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_mib": peak_rss_mib(),
    }


def _read_and_normalize(conn: Any) -> int:
    from revtops_kernel.normalize.base import NormalizeContext, normalize_page
    from revtops_kernel.normalize.salesforce import NORMALIZERS
    from revtops_kernel.store.upsert import _dump_json

    ctx = NormalizeContext("bench", "salesforce")
    records = 0
    for page in conn.read("Task", None):
        # raw as run_sync passes it for Salesforce streams: each record's JSON text is made
        # as it is normalized (a columnar normalizer's rows then stay tuples for the upsert)
        normalize_page(
            "Task", page.records, NORMALIZERS["Task"], ctx, id_field="Id", raw=_dump_json
        )
        records += len(page.records)
    return records


def _sync(conn: Any) -> int:
    from revtops_kernel.settings import load_settings
    from revtops_kernel.store import Database, upgrade
    from revtops_kernel.sync import run_sync

    with tempfile.TemporaryDirectory(prefix="revtops-sf-bench-") as tmp:
        db = Database(f"duckdb:///{tmp}/store.duckdb", lock_timeout=60)
        upgrade(db)
        settings = load_settings(REVTOPS_ORG="bench", REVTOPS_SALESFORCE_TOKEN="unused")
        result = run_sync(db, settings, "salesforce", connector=conn, streams=("Task",))
        db.dispose()
        if not result.ok:
            raise SystemExit(f"sync failed: {result.error}")
        return result.streams["Task"].fetched


# --- the parent --------------------------------------------------------------------------------


def run_child(path: str, sb: Any, mode: str) -> dict[str, Any]:
    progress(f"{path}: full sync of Tasks ({mode})")
    before = sb.stats.total("salesforce")
    server_cpu = cpu_seconds()  # this process only serves the sandbox while the child runs
    out = subprocess.run(
        [sys.executable, __file__, "--child", path, sb.salesforce_instance_url,
         sb.token_for("salesforce"), mode],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["sandbox_calls"] = sb.stats.total("salesforce") - before
    figures["server_cpu_s"] = cpu_seconds() - server_cpu
    progress(
        f"{path}: {figures['records']:,} records, {figures['api_calls']} calls, "
        f"{figures['wall_s']:.1f} s, {figures['records_per_s']:,.0f} records/s"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="Tasks to sync (about)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=("read", "sync"), default="read")
    parser.add_argument("--processing-s", type=float, default=1.0, help="job InProgress time")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="server time of every query call, REST and Bulk alike (default 0: loopback)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--child", nargs=4, metavar=("PATH", "URL", "TOKEN", "MODE"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    from revtops_sandbox.company import MEETING
    from revtops_sandbox.salesforce_bulk import bulk_knobs
    from revtops_sandbox.server import SandboxServer

    scale = args.tasks / TASKS_PER_SCALE
    progress(f"generating the company at scale {scale:.2f} (~{args.tasks:,} Tasks)")
    started = time.perf_counter()
    with SandboxServer(scale=scale, seed=args.seed) as sb:
        tasks = sum(1 for a in sb.company.activities if a.kind != MEETING)
        progress(
            f"generated in {time.perf_counter() - started:.1f} s: {tasks:,} Tasks; "
            f"parent peak RSS {peak_rss_mib():,.0f} MiB"
        )
        bulk_knobs(sb.state).processing_s = args.processing_s
        bulk_knobs(sb.state).latency_s = args.latency_ms / 1000
        rest = run_child("rest", sb, args.mode)
        bulk = run_child("bulk", sb, args.mode)
    calls_ratio = rest["api_calls"] / max(1, bulk["api_calls"])
    speed_ratio = bulk["records_per_s"] / max(1e-9, rest["records_per_s"])
    report = {
        "tasks": tasks,
        "scale": scale,
        "mode": args.mode,
        "processing_s": args.processing_s,
        "latency_ms": args.latency_ms,
        "rest": rest,
        "bulk": bulk,
        "calls_ratio": calls_ratio,
        "speed_ratio": speed_ratio,
    }
    print(
        f"\nSalesforce full sync of {tasks:,} Tasks ({args.mode}), sandbox scale {scale:.2f}, "
        f"{args.latency_ms:g} ms per call, job InProgress {args.processing_s:g} s"
    )
    print(f"{'path':<6}{'records':>11}{'calls':>8}{'wall s':>9}{'records/s':>12}"
          f"{'client CPU s':>14}{'sandbox CPU s':>15}{'peak RSS MiB':>14}")  # fmt: skip
    for f in (rest, bulk):
        print(
            f"{f['path']:<6}{f['records']:>11,}{f['api_calls']:>8}{f['wall_s']:>9.1f}"
            f"{f['records_per_s']:>12,.0f}{f['cpu_s']:>14.1f}{f['server_cpu_s']:>15.1f}"
            f"{f['peak_rss_mib']:>14,.0f}"
        )
    ok_calls, ok_speed = calls_ratio >= GOAL_CALLS, speed_ratio >= GOAL_SPEED
    print(f"calls: REST/Bulk = {calls_ratio:.1f}x  (goal >= {GOAL_CALLS:.0f}x: "
          f"{'met' if ok_calls else 'MISSED'})")  # fmt: skip
    print(f"records/s: Bulk/REST = {speed_ratio:.2f}x  (goal >= {GOAL_SPEED:.0f}x: "
          f"{'met' if ok_speed else 'MISSED'})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
