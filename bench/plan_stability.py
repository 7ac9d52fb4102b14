"""Plan stability of the verified and gold queries on PostgreSQL, over fresh statistics (issue 13).

    python bench/plan_stability.py --database-url URL [--org ORG] [--samples 8] [--runs 2]
                                   [--only NAME,...] [--tree PATH ...] [--timeout 10]
                                   [--quotas SCALE,SEED] [--json PATH]

PostgreSQL plans from statistics that ANALYZE computes on a random sample of each table (300 x
``default_statistics_target`` rows), so a plan that rests on a misestimate can flip from one
ANALYZE to the next: gold ``waterfall_opening_q4_by_pipeline`` ran 206 ms in one run of
bench/scale.py and 25.6 s in the next on stores built alike. One run of a query says little about
that; this bench samples it. For each of ``--samples`` rounds:

1. ``ANALYZE`` of the tables the queries read (new random samples: new estimates);
2. in a child per code tree (``--tree``: a frozen worktree of the code to measure, repeatable;
   default this checkout; the order alternates from round to round, so trees share the
   statistics and the load), every verified and gold query (bench/scale.py's ``query_specs``, or
   the ``--only`` ones): the shape of its plan (``EXPLAIN`` as the organization's role, with the
   read path's session settings), then one warm-up and ``--runs`` timed runs through
   ``run_guarded``, the copilot's path (the guard, the organization's role under row-level
   security, one prepared statement). A run over ``--timeout`` is cut there and counted at it.

Per query and tree: over the rounds, the min / median / max of each round's best run (the best
is the plan's cost; the load adds to the others), how many rounds were slower than the goal
(500 ms at scale 10), and how many distinct plan shapes the rounds gave (node types, join types,
relations and indexes; not costs), with each shape's rounds and times.

Run it on a copy of a store (``createdb -T``): ANALYZE writes the statistics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import progress
from scale import ORG, QUERY_P95_GOAL_S, query_specs

from revtops_kernel.store import Database

REPO = Path(__file__).resolve().parent.parent
# The read path's session settings of code that has no ``store.query.explain_read`` (before it):
# what ``_read_postgresql`` set in 1de9f95.
LEGACY_SETUP = (
    "SET TRANSACTION READ ONLY",
    "SELECT set_config('jit', 'off', true)",
    "SELECT set_config('work_mem', '16384kB', true) FROM pg_settings"
    " WHERE name = 'work_mem' AND setting::bigint < 16384",
)


@dataclass
class Sample:
    """One query in one round on one tree."""

    kind: str
    name: str
    plan: str  # the shape's digest
    runs_s: list[float]
    rows: int = 0
    timed_out: bool = False
    error: str | None = None

    @property
    def best_s(self) -> float:
        return min(self.runs_s) if self.runs_s else float("nan")


@dataclass
class Round:
    index: int
    tree: str
    analyze_s: float
    load: float
    samples: list[Sample]
    shapes: dict[str, str] = field(default_factory=dict)  # digest -> shape


# --- the child: one round of one tree ------------------------------------------------------------


def plan_shape(node: dict[str, Any]) -> str:
    """A plan without its numbers: node types, join types, relations, indexes, nesting."""
    parts = [
        node.get("Node Type", "?"),
        node.get("Join Type", ""),
        node.get("Strategy", ""),
        node.get("Relation Name") or node.get("CTE Name") or "",
        node.get("Index Name", ""),
    ]
    children = ",".join(plan_shape(child) for child in node.get("Plans", []))
    head = " ".join(p for p in parts if p)
    return f"{head}({children})" if children else head


def digest(shape: str) -> str:
    return hashlib.sha1(shape.encode()).hexdigest()[:8]


def explain(db: Database, sql: str, params: dict[str, Any] | None, org: str) -> dict[str, Any]:
    """EXPLAIN (FORMAT JSON) of ``sql`` guarded for ``org``, planned as the copilot's read runs
    it: the tree's own ``explain_read`` when it has one, else the same login and settings."""
    from revtops_kernel.agent.guard import DEFAULT_MAX_ROWS, guard_sql
    from revtops_kernel.store import query

    guarded = guard_sql(sql, dialect="postgres", org=org, max_rows=DEFAULT_MAX_ROWS)
    if hasattr(query, "explain_read"):
        plan: dict[str, Any] = query.explain_read(db, guarded.sql, params, org=org)
        return plan
    from revtops_kernel.store.database import driver_connection

    connection = query._connect_as_org(db, org)
    with connection:
        raw = driver_connection(connection)
        statement, bound = query._bind(guarded.sql, dict(params or {}), connection.dialect)
        try:
            with raw.cursor() as cursor:
                for setup in LEGACY_SETUP:
                    cursor.execute(setup)
                cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", bound)
                (document,) = cursor.fetchone() or (None,)
        finally:
            raw.rollback()
    if document is None:
        raise RuntimeError(f"EXPLAIN gave no plan for {sql[:60]!r}")
    parsed: Any = json.loads(document) if isinstance(document, str) else document
    return dict(parsed[0]["Plan"])


def child_main(
    url: str, org: str, runs: int, timeout: float, only: frozenset[str], out: Path
) -> int:
    from revtops_kernel.agent.guard import run_guarded
    from revtops_kernel.errors import QueryTimeoutError

    db = Database(url)
    samples: list[Sample] = []
    shapes: dict[str, str] = {}
    for spec in query_specs(db, org, only):
        sample = Sample(spec.kind, spec.name, "", [])
        try:
            shape = plan_shape(explain(db, spec.sql, spec.params, org))
            sample.plan = digest(shape)
            shapes[sample.plan] = shape
            for attempt in range(runs + 1):  # the first is the warm-up
                started = time.perf_counter()
                try:
                    result = run_guarded(db, spec.sql, org=org, params=spec.params, timeout=timeout)
                except QueryTimeoutError:
                    sample.timed_out = True
                    sample.runs_s.append(timeout)
                    break  # this plan is past any goal: its other runs would only cost time
                elapsed = time.perf_counter() - started
                sample.rows = result.row_count
                if attempt:
                    sample.runs_s.append(elapsed)
        except Exception as exc:  # one broken query must not lose the round's other figures
            sample.error = f"{type(exc).__name__}: {exc}"[:200]
        samples.append(sample)
    db.dispose()
    out.write_text(json.dumps({"samples": [asdict(s) for s in samples], "shapes": shapes}))
    return 0


# --- the parent ----------------------------------------------------------------------------------


def tables_read(db: Database, org: str, only: frozenset[str]) -> list[str]:
    """The business tables the measured queries read (the guard says which)."""
    from revtops_kernel.agent.guard import guard_sql

    read: set[str] = set()
    for spec in query_specs(db, org, only):
        read |= guard_sql(spec.sql, dialect="postgres", org=org, max_rows=10_000).tables
    return sorted(read)


def analyze(db: Database, tables: list[str]) -> float:
    from sqlalchemy import text

    started = time.monotonic()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE " + ", ".join(f'"{t}"' for t in tables)))
    return time.monotonic() - started


def run_tree(
    tree: Path, url: str, org: str, runs: int, timeout: float, only: frozenset[str]
) -> tuple[list[Sample], dict[str, str]]:
    """One round of ``tree``'s code, in a child whose imports come from the tree."""
    with tempfile.TemporaryDirectory(prefix="q1_plans_") as folder:
        out = Path(folder) / "round.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--org", org]
        command += ["--database-url", url]
        command += ["--runs", str(runs), "--timeout", str(timeout), "--child-out", str(out)]
        command += ["--only", ",".join(sorted(only))] if only else []
        environment = {**os.environ, "PYTHONPATH": str(tree)}
        completed = subprocess.run(command, check=False, env=environment)
        if completed.returncode != 0 or not out.exists():
            raise SystemExit(f"bench/plan_stability.py: the child of {tree} exited "
                             f"{completed.returncode}")  # fmt: skip
        raw = json.loads(out.read_text())
    return [Sample(**s) for s in raw["samples"]], raw["shapes"]


def import_quotas(db: Database, org: str, scale: float, seed: int) -> int:
    """The eval's quota plan for the sandbox company a store was synced from (bench/scale.py's
    step 3): the quota gold queries and forecast_vs_quota read it."""
    from revtops_sandbox.evals.quota_plan import load_quota_plan
    from revtops_sandbox.generate import generate_company

    return load_quota_plan(db, org, generate_company(scale, seed)).imported


def report(rounds: list[Round], trees: list[str]) -> list[dict[str, Any]]:
    goal_ms = QUERY_P95_GOAL_S * 1000
    shapes = {k: v for r in rounds for k, v in r.shapes.items()}
    # A verified and a gold query may share a name (slipped_deals): keyed by both.
    keys = list(dict.fromkeys((s.kind, s.name) for r in rounds for s in r.samples))
    rows: list[dict[str, Any]] = []
    print(f"\nper query and tree, over {len({r.index for r in rounds})} ANALYZE rounds: each "
          f"round's best run (ms), rounds slower than {goal_ms:.0f} ms, plan shapes")  # fmt: skip
    for kind, name in keys:
        for tree in trees:
            samples = [
                s
                for r in rounds
                if r.tree == tree
                for s in r.samples
                if (s.kind, s.name) == (kind, name)
            ]
            failed = [s.error for s in samples if s.error]
            best = [s.best_s * 1000 for s in samples if not s.error and s.runs_s]
            if not best:
                print(f"  {kind:<8} {name:<40} {Path(tree).name:<10} FAILED: {failed[:1]}")
                continue
            slow = sum(b > goal_ms for b in best)
            by_plan: dict[str, list[float]] = {}
            for s in samples:
                if not s.error and s.runs_s:
                    by_plan.setdefault(s.plan, []).append(s.best_s * 1000)
            plans = "; ".join(
                f"{p} x{len(t)} {min(t):,.0f}-{max(t):,.0f}"
                for p, t in sorted(by_plan.items(), key=lambda kv: -len(kv[1]))
            )
            timeouts = sum(s.timed_out for s in samples)
            print(f"  {kind:<8} {name:<40} {Path(tree).name:<10} min {min(best):8,.0f} "
                  f"med {statistics.median(best):8,.0f} max {max(best):8,.0f}  slow {slow}/"
                  f"{len(best)}{f' (timeouts {timeouts})' if timeouts else ''}  plans "
                  f"{len(by_plan)}: {plans}{'  FAILED ' + str(len(failed)) if failed else ''}",
                  flush=True)  # fmt: skip
            rows.append({"name": name, "kind": kind, "tree": tree, "best_ms": best,
                         "slow": slow, "plans": by_plan, "failed": len(failed)})  # fmt: skip
    print("\n| tree | queries | with a round > 500 ms | rounds > 500 ms | with > 1 plan shape |")
    print("| --- | --- | --- | --- | --- |")
    for tree in trees:
        mine = [r for r in rows if r["tree"] == tree]
        print(f"| {tree} | {len(mine)} | {sum(r['slow'] > 0 for r in mine)} | "
              f"{sum(r['slow'] for r in mine)} of {sum(len(r['best_ms']) for r in mine)} | "
              f"{sum(len(r['plans']) > 1 for r in mine)} |")  # fmt: skip
    unstable = {p for r in rows if len(r["plans"]) > 1 or r["slow"] for p in r["plans"]}
    if unstable:
        print("\nshapes of the plans of queries with a slow round or several shapes:")
        for plan in sorted(unstable):
            print(f"  {plan}: {shapes.get(plan, '?')}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL store (a copy)")
    parser.add_argument("--org", default=ORG, help="the synced organization")
    parser.add_argument("--samples", type=int, default=8, help="ANALYZE rounds")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per query and round")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a run may take")
    parser.add_argument("--only", default="", help="comma-separated query names")
    parser.add_argument(
        "--tree", action="append", type=Path, default=[], help="a code tree (repeatable)"
    )
    parser.add_argument("--quotas", default="", help="SCALE,SEED: import the eval's quota plan")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    if args.child:
        return child_main(
            args.database_url, args.org, args.runs, args.timeout, only, args.child_out
        )
    if args.samples < 1 or args.runs < 1 or args.timeout <= 0:
        parser.error("--samples and --runs take at least 1, --timeout a positive number")
    trees = [t.resolve() for t in args.tree] or [REPO]
    missing = [str(t) for t in trees if not (t / "revtops_kernel").is_dir()]
    if missing:
        parser.error(f"--tree: no revtops_kernel in {', '.join(missing)}")
    db = Database(args.database_url)
    if db.is_duckdb:
        parser.error("--database-url: a PostgreSQL store (DuckDB plans do not come from samples)")
    print(f"bench/plan_stability.py {time.strftime('%Y-%m-%d %H:%M')} UTC: {db.display_url}, "
          f"org {args.org}, {args.samples} rounds x {args.runs} runs, trees "
          f"{[str(t) for t in trees]}, load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs", flush=True)  # fmt: skip
    if args.quotas:
        scale, seed = args.quotas.split(",")
        progress(f"importing the quota plan of scale {scale}, seed {seed}")
        print(f"quotas imported: {import_quotas(db, args.org, float(scale), int(seed))}")
    tables = tables_read(db, args.org, only)
    rounds: list[Round] = []
    for index in range(args.samples):
        analyze_s = analyze(db, tables)
        order = trees if index % 2 == 0 else trees[::-1]
        for tree in order:
            load = os.getloadavg()[0]
            progress(f"round {index + 1}/{args.samples} ({tree.name}, load {load:.1f}), "
                     f"ANALYZE of {len(tables)} tables {analyze_s:.1f} s")  # fmt: skip
            samples, shapes = run_tree(tree, args.database_url, args.org, args.runs,
                                       args.timeout, only)  # fmt: skip
            rounds.append(Round(index, str(tree), analyze_s, load, samples, shapes))
    db.dispose()
    rows = report(rounds, [str(t) for t in trees])
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(
            json.dumps({"rounds": [asdict(r) for r in rounds], "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
