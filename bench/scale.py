"""The whole pipeline at a company's real size, on DuckDB and PostgreSQL, in one run (issue 13).

    python bench/scale.py [--scales 1,10] [--backends postgresql,duckdb] [--seed 0]
                          [--runs 5] [--postgres-url URL] [--json PATH]
    python bench/scale.py --queries-only --database-url URL [--database-url URL2 ...]
                          [--runs 5] [--only NAME,...] [--org bench] [--json PATH]

``--queries-only`` skips the sandbox and the syncs: it runs step 3 below (every verified and gold
query, or the ``--only`` ones) against stores that already hold a synced organization (``--org``,
by default ``bench``, the name this script syncs into), one child per URL, so a store built once
at scale 10 can be measured again after a change to the queries, the indexes or the read path.

For every scale and backend, a fresh ``SandboxServer(scale, seed)`` (scale 1: a ~50-rep company;
rate limits off, Slack's tier budget raised as ``revtops demo`` does; a fresh one per backend, so
both see the same data and the same changes) is served in a thread, and a fresh store is made
(DuckDB: a temporary file; PostgreSQL: a database ``revtops_bench_<hex>`` created through
``--postgres-url`` and dropped at the end). Then:

1. **first sync**, in a child process (its CPU time and peak RSS are the sync's own; the parent
   only serves the sandbox): ``db upgrade``, then what ``revtops demo --no-app`` runs: HubSpot,
   Slack and Google Calendar into one organization, Salesforce (the same company seen by the
   other CRM) into a second one. Per provider: wall and CPU time, records and records/s, the
   time of the fetch/normalize/write loop, of identity resolution and of planner-statistics
   refreshes (``SyncResult``), and what resolution examined;
2. **1% changes** in the sandbox (``mutate``: 1% of every CRM object modified; new Slack
   messages and late replies, moved, cancelled and new meetings, each ~1% of its kind), then an
   **incremental re-sync** of the four providers in a second child, measured the same way;
3. the eval's **quota plan** imported as a user would (no CRM holds quotas), then every
   **verified query** (default parameters, "today" the sandbox's anchor) and every
   **gold query** of the golden set, in a third child, through the SQL guard and the read-only
   path the copilot uses (on PostgreSQL the organization's role under row-level security, one
   prepared statement run to the end), ``--runs`` times each after one warm-up: p50 and p95 (of
   5 runs: the slowest);
4. a **full resolution** of the first organization beside the incremental ones the syncs ran,
   and the **database size**.

Every figure is printed beside its goal (issue 13) and a summary table ends the run. Wall times
on a shared machine swing with its load; CPU times are steadier and printed beside them.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from _common import cpu_seconds, peak_rss_mib, progress

from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.scratch import scratch_store

ORG = "bench"
OTHER_ORG = "bench-salesforce"
PROVIDERS = ("hubspot", "slack", "google_calendar", "salesforce")
CHANGED_PCT = 1.0
AS_OF = date(2026, 11, 1)  # the sandbox's anchor (revtops_sandbox.company.DEFAULT_ANCHOR)
# Goals of issue 13.
RESOLUTION_SHARE_GOAL = 0.05  # of each sync's wall time
POSTGRES_OVER_DUCKDB_GOAL = 1.5  # four-provider first sync, scale 10, same run
LINEAR_GOAL = 12.0  # scale 10 / scale 1 wall time
INCREMENTAL_SHARE_GOAL = 0.10  # re-sync after 1% changes / first sync
QUERY_P95_GOAL_S = 0.5  # every verified and gold query at scale 10
PEAK_RSS_GOAL_MIB = 1024.0  # a scale-10 sync
RECORDS_PER_CPU_GOAL = 25_000.0  # bench/sync.py's goal; shown here for the whole pipeline


# --- figures -----------------------------------------------------------------------------------


@dataclass
class ProviderFigures:
    provider: str
    status: str
    wall_s: float
    cpu_s: float
    fetched: int
    written: int
    api_calls: int
    resolution_s: float
    statistics_s: float
    participants_examined: int
    activities_examined: int
    analyzed: dict[str, int] = field(default_factory=dict)
    steps_cpu_s: dict[str, float] = field(default_factory=dict)  # --profile: CPU per step
    server_cpu_s: float = 0.0  # PostgreSQL: CPU of the sync's server backends (pooled ones)
    # Of resolution_s: the time batches spent resolving their own rows before writing them
    # (PostgreSQL, resolve.resolve_batch); the rest is the resolution after the sync.
    batch_resolution_s: float = 0.0

    @property
    def records_per_s(self) -> float:
        return self.fetched / self.wall_s if self.wall_s else 0.0

    @property
    def pipeline_s(self) -> float:
        """Fetch, normalize and write: what is left of the wall time."""
        return max(0.0, self.wall_s - self.resolution_s - self.statistics_s)

    @property
    def resolution_share(self) -> float:
        return self.resolution_s / self.wall_s if self.wall_s else 0.0


@dataclass
class SyncFigures:
    """One child's syncs of the four providers."""

    upgrade_s: float
    providers: list[ProviderFigures]
    cpu_s: float  # the child's, all of it
    peak_rss_mib: float
    sandbox_cpu_s: float = 0.0  # the parent's meanwhile: the sandbox serving the pages
    start_rss_mib: float = 0.0  # the child's RSS before its first sync: imports, the engine
    # How the child ran the providers (SYNC_MODES), and its wall time from the first sync's
    # start to the last one's end (side by side: less than the syncs' own times added up).
    mode: str = "one-at-a-time"
    elapsed_s: float = 0.0
    server_cpu_s: float = 0.0  # PostgreSQL: the child's backends' CPU over all its syncs

    @property
    def wall_s(self) -> float:
        return self.elapsed_s or sum(p.wall_s for p in self.providers)

    @property
    def fetched(self) -> int:
        return sum(p.fetched for p in self.providers)


@dataclass
class QueryFigures:
    kind: str  # verified | gold
    name: str
    rows: int
    runs_s: list[float]
    error: str | None = None

    @property
    def p50_s(self) -> float:
        return statistics.median(self.runs_s) if self.runs_s else math.nan

    @property
    def p95_s(self) -> float:  # nearest rank: of 5 runs, the slowest
        ordered = sorted(self.runs_s)
        return ordered[math.ceil(0.95 * len(ordered)) - 1] if ordered else math.nan


@dataclass
class BackendFigures:
    scale: float
    backend: str
    first: SyncFigures
    incremental: SyncFigures
    changes: dict[str, int]
    queries: list[QueryFigures]
    full_resolution_s: float
    full_participants_examined: int
    database_mib: float


# --- the child: one round of syncs ---------------------------------------------------------------


# How a child runs the providers: as `revtops sync --provider all` does (sync_all.run_syncs'
# policy: incremental syncs side by side, first loads one at a time beside them), one after the
# other (`--one-at-a-time`), or every sync side by side, first loads too.
SYNC_MODES = ("revtops-sync", "one-at-a-time", "all-side-by-side")


def child_main(
    environment_file: Path,
    out: Path,
    upgrade_first: bool,
    providers_run: tuple[str, ...] = PROVIDERS,
    profile: bool = False,
    mode: str = "revtops-sync",
) -> int:
    from revtops_kernel.store import upgrade
    from revtops_kernel.sync import run_sync

    environment: dict[str, str] = json.loads(environment_file.read_text())
    settings: Settings = load_settings(**environment)
    db = Database.from_settings(settings)  # as `revtops sync`: the DuckDB memory limit too
    started = time.monotonic()
    if upgrade_first:
        upgrade(db)
    upgrade_s = time.monotonic() - started
    start_rss = peak_rss_mib()
    alone = mode == "one-at-a-time"
    figures_of: dict[str, ProviderFigures] = {}

    def timed_sync(db: Database, settings: Settings, provider: str, **kwargs: Any) -> Any:
        """run_sync, measured: one at a time the process's CPU and its backends' over the
        sync; side by side the sync's thread CPU (its own Python and driver calls: DuckDB's
        worker threads and the server's backends only in the child's totals)."""
        clock = cpu_seconds if alone else time.thread_time
        cpu0, server0 = clock(), server_cpu_seconds(db) if alone else 0.0
        profiler = cProfile.Profile(time.process_time if alone else time.thread_time)
        if profile:
            profiler.enable()
        result = run_sync(db, settings, provider, **kwargs)
        if profile:
            profiler.disable()
        report = result.resolution
        figures_of[provider] = ProviderFigures(
            provider=provider,
            status=result.status if result.ok else f"{result.status}: {result.error}",
            wall_s=result.seconds,
            cpu_s=clock() - cpu0,
            fetched=result.counts.fetched,
            written=result.counts.upserted,
            api_calls=result.counts.api_calls,
            resolution_s=result.resolution_seconds + result.batch_resolution_seconds,
            batch_resolution_s=result.batch_resolution_seconds,
            statistics_s=result.statistics_seconds,
            participants_examined=report.participants_examined if report else 0,
            activities_examined=report.activities_examined if report else 0,
            analyzed=result.analyzed,
            steps_cpu_s=steps_cpu(profiler) if profile else {},
            server_cpu_s=server_cpu_seconds(db) - server0 if alone else 0.0,
        )
        return result

    jobs = [(p, OTHER_ORG if p == "salesforce" else ORG) for p in providers_run]
    server0, started = server_cpu_seconds(db), time.monotonic()
    try:
        from revtops_kernel.sync_all import SyncJob, run_syncs
    except ImportError:  # an older tree (bench/resync.py runs this beside frozen ones)
        if not alone:
            raise
        for provider, org in jobs:
            timed_sync(db, settings, provider, org=org)
    else:
        run_syncs(
            db,
            settings,
            [SyncJob(provider, org) for provider, org in jobs],
            side_by_side=not alone,
            first_loads_side_by_side=mode == "all-side-by-side",
            runner=timed_sync,
        )
    elapsed = time.monotonic() - started
    server_cpu = server_cpu_seconds(db) - server0
    db.dispose()
    figures = SyncFigures(
        upgrade_s,
        [figures_of[provider] for provider in providers_run],
        cpu_seconds(),
        peak_rss_mib(),
        start_rss_mib=start_rss,
        mode=mode,
        elapsed_s=elapsed,
        server_cpu_s=server_cpu,
    )
    payload = asdict(figures)
    for provider_figures in payload["providers"]:  # a parent of before the field reads it too
        if not provider_figures["server_cpu_s"]:
            del provider_figures["server_cpu_s"]
    out.write_text(json.dumps(payload))
    return 0


# The steps of a sync, as the profiler names their functions: (file suffix, function) -> step.
# Cumulative CPU of each (they nest: the write includes the upsert, the fetch the JSON decode).
PROFILED_STEPS = {
    ("httpx/_client.py", "send"): "fetch: HTTP (httpx send)",
    ("revtops_kernel/jsoncodec.py", "loads"): "fetch: JSON decode",
    ("revtops_kernel/jsoncodec.py", "dumps_sorted"): "write: raw JSON encode",
    ("normalize/base.py", "normalize_page"): "normalize",
    ("store/retry.py", "in_transaction"): "write: batch transaction",
    ("store/upsert.py", "upsert"): "write: upsert",
    ("revtops_kernel/sync.py", "_refresh_statistics"): "statistics",
    ("revtops_kernel/sync.py", "_resolve"): "resolution",
    ("revtops_kernel/sync.py", "_vacuum"): "vacuum",
}


def server_cpu_seconds(db: Database) -> float:
    """CPU seconds so far of this process's PostgreSQL backends (same machine only: /proc).

    The pool keeps a sync's connections open, so their backends' CPU is the server's share of
    its work (a backend closed meanwhile is missed). 0 on DuckDB, whose work is this process's.
    """
    if db.is_duckdb:
        return 0.0
    from sqlalchemy import text

    with db.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'revtops'"
            )
        ).scalars()
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # another machine, or the backend just ended
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def steps_cpu(profiler: cProfile.Profile) -> dict[str, float]:
    """CPU seconds per step of a profiled ``run_sync`` (profiler timer: process time)."""
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    steps: dict[str, float] = {}
    for (filename, _line, function), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
        for (suffix, name), step in PROFILED_STEPS.items():
            if function == name and filename.replace("\\", "/").endswith(suffix):
                steps[step] = steps.get(step, 0.0) + cumulative
    return steps


def sync_in_child(
    environment: dict[str, str],
    *,
    upgrade_first: bool,
    providers: tuple[str, ...] = PROVIDERS,
    profile: bool = False,
    nice: int = 0,
    mode: str = "revtops-sync",
) -> SyncFigures:
    with tempfile.TemporaryDirectory(prefix="revtops_bench_") as folder:
        env_file, out = Path(folder) / "environment.json", Path(folder) / "figures.json"
        env_file.write_text(json.dumps(environment))
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(env_file)]
        command += ["--child-out", str(out)] + (["--upgrade"] if upgrade_first else [])
        command += ["--providers", ",".join(providers)] + (["--profile"] if profile else [])
        command += ["--sync-mode", mode]
        command = ["nice", "-n", str(nice), *command] if nice else command
        parent_cpu = time.process_time()
        completed = subprocess.run(command, check=False)
        parent_cpu = time.process_time() - parent_cpu
        if completed.returncode != 0 or not out.exists():
            raise SystemExit(f"bench/scale.py: the sync child exited with {completed.returncode}")
        raw = json.loads(out.read_text())
    known = {f.name for f in fields(ProviderFigures)}  # a newer child's figures too
    raw["providers"] = [
        ProviderFigures(**{k: v for k, v in p.items() if k in known}) for p in raw["providers"]
    ]
    return SyncFigures(**{**raw, "sandbox_cpu_s": parent_cpu})


# --- the parent ----------------------------------------------------------------------------------


def environment_for(sandbox: Any, db: Database) -> dict[str, str]:
    env = {
        "REVTOPS_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "REVTOPS_SLACK_REQUESTS_PER_MINUTE": "6000",
    }
    for provider, variable, value in (
        ("hubspot", "REVTOPS_HUBSPOT_BASE_URL", sandbox.hubspot_base_url),
        ("salesforce", "REVTOPS_SALESFORCE_INSTANCE_URL", sandbox.salesforce_instance_url),
        ("slack", "REVTOPS_SLACK_BASE_URL", sandbox.slack_base_url),
        ("google_calendar", "REVTOPS_GOOGLE_CALENDAR_BASE_URL", sandbox.google_calendar_base_url),
    ):
        env[variable] = value
        env[f"REVTOPS_{provider.upper()}_TOKEN"] = sandbox.token
    return env


def change_one_percent(sandbox: Any) -> dict[str, int]:
    """~1% of every kind of record changes, as between two scheduled syncs."""
    crm = sandbox.mutate(modified_pct=CHANGED_PCT, seed=13)
    company = sandbox.company
    messages = sum(len(c.messages) for c in company.slack.channels)
    events = len(company.calendars.events)
    share = CHANGED_PCT / 100
    slack = sandbox.mutate_slack(
        new_messages=max(1, round(messages * share * 0.8)),
        late_replies=max(1, round(messages * share * 0.2)),
        seed=13,
    )
    per_kind = max(1, round(events * share / 3))
    calendar = sandbox.mutate_calendar(moved=per_kind, cancelled=per_kind, new=per_kind, seed=13)
    changes = {f"crm {kind}": len(ids) for kind, ids in crm.modified.items()}
    changes["slack messages"] = len(slack.slack_new) + len(slack.slack_replies)
    changes["calendar events"] = (
        len(calendar.events_moved) + len(calendar.events_cancelled) + len(calendar.events_new)
    )
    return changes


BUSIEST_OPEN_DEAL = (
    "SELECT d.id FROM deals d JOIN activities a ON a.deal_id = d.id "
    "WHERE d.deleted_at IS NULL AND NOT d.is_closed AND a.deleted_at IS NULL "
    "GROUP BY d.id ORDER BY count(*) DESC, CAST(d.id AS TEXT) LIMIT 1"
)


@dataclass(frozen=True)
class QuerySpec:
    """One timed query: its SQL as the copilot sends it to the guard, and its parameters."""

    kind: str  # verified | gold
    name: str
    sql: str
    params: dict[str, Any] | None = None


def query_specs(
    db: Database, org: str = ORG, only: frozenset[str] = frozenset()
) -> list[QuerySpec]:
    """Every verified query (default parameters, "today" the sandbox's anchor), every gold
    query, and ``deal_risks`` for one deal; or the ``only`` ones."""
    from revtops_kernel.agent.guard import run_guarded
    from revtops_kernel.agent.verified import VERIFIED_QUERIES, resolve_params
    from revtops_sandbox.evals.golden import GOLDEN

    specs = [
        QuerySpec("verified", name, query.sql, resolve_params(name, None, today=AS_OF))
        for name, query in VERIFIED_QUERIES.items()
    ]
    specs += [QuerySpec("gold", q.id, q.sql) for q in GOLDEN]
    # One deal's flags, as the timeline, the brief and the At risk view ask for them: the open
    # deal with the most activities (the most evidence to read).
    busiest = run_guarded(db, BUSIEST_OPEN_DEAL, org=org).frame
    if len(busiest):
        one = {"deal_id": str(busiest.iloc[0, 0])}
        sql = VERIFIED_QUERIES["deal_risks"].sql
        params = resolve_params("deal_risks", one, today=AS_OF)
        specs.append(QuerySpec("verified", "deal_risks:one_deal", sql, params))
    return [spec for spec in specs if spec.name in only] if only else specs


def time_queries(
    db: Database, runs: int, org: str = ORG, only: frozenset[str] = frozenset()
) -> list[QueryFigures]:
    """Run in a child too: a fresh interpreter reads the query modules as they are now.

    Each runs as ``run_verified`` / the copilot's SQL tool run it: ``run_guarded``."""
    from revtops_kernel.agent.guard import run_guarded

    measured: list[QueryFigures] = []
    for spec in query_specs(db, org, only):
        figures = QueryFigures(spec.kind, spec.name, 0, [])

        def run(spec: QuerySpec = spec) -> Any:
            return run_guarded(db, spec.sql, org=org, params=spec.params)

        try:
            figures.rows = len(run().frame)  # warm-up: caches, the org role, the guard
            for _ in range(runs):
                started = time.perf_counter()
                run()
                figures.runs_s.append(time.perf_counter() - started)
        except Exception as exc:  # one broken query must not lose the run's other figures
            figures.error = f"{type(exc).__name__}: {exc}"[:200]
        measured.append(figures)
    return measured


def queries_child_main(
    url: str, runs: int, out: Path, org: str = ORG, only: frozenset[str] = frozenset()
) -> int:
    db = Database(url)
    measured = time_queries(db, runs, org, only)
    db.dispose()
    out.write_text(json.dumps([asdict(q) for q in measured]))
    return 0


def queries_in_child(
    db: Database, runs: int, org: str = ORG, only: frozenset[str] = frozenset()
) -> list[QueryFigures]:
    with tempfile.TemporaryDirectory(prefix="revtops_bench_") as folder:
        out = Path(folder) / "queries.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child-queries"]
        command += [db.url.render_as_string(hide_password=False), "--runs", str(runs)]
        command += ["--child-out", str(out), "--org", org]
        command += ["--only", ",".join(sorted(only))] if only else []
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0 or not out.exists():
            raise SystemExit(f"bench/scale.py: the query child exited with {completed.returncode}")
        return [QueryFigures(**q) for q in json.loads(out.read_text())]


def database_mib(db: Database) -> float:
    if db.is_duckdb:
        path = Path(db.duckdb_path)
        wal = path.with_name(path.name + ".wal")
        return sum(p.stat().st_size for p in (path, wal) if p.exists()) / 2**20
    with db.begin() as conn:
        from sqlalchemy import text

        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return int(size) / 2**20


def run_backend(
    scale: float, seed: int, backend: str, postgres_url: str, runs: int, mode: str = "revtops-sync"
) -> BackendFigures:
    from revtops_kernel.resolve import resolve_identities
    from revtops_kernel.store.retry import in_transaction
    from revtops_sandbox import SandboxServer
    from revtops_sandbox.evals.quota_plan import load_quota_plan

    progress(f"scale {scale:g} {backend}: generating the sandbox company")
    with (
        SandboxServer(scale=scale, seed=seed) as sandbox,
        scratch_store(backend, postgres_url, prefix="revtops_bench") as db,
    ):
        environment = environment_for(sandbox, db)
        progress(f"scale {scale:g} {backend}: first sync")
        first = sync_in_child(environment, upgrade_first=True, mode=mode)
        print_sync(f"scale {scale:g} {backend} first sync", first)
        changes = change_one_percent(sandbox)
        progress(f"scale {scale:g} {backend}: incremental sync after {changes}")
        incremental = sync_in_child(environment, upgrade_first=False, mode=mode)
        print_sync(f"scale {scale:g} {backend} incremental re-sync after 1% changes", incremental)
        # Quotas come from a file a user imports, not from a CRM: the eval's plan, imported as a
        # user would, so the quota and forecast questions are timed on a team's real quotas.
        quotas = load_quota_plan(db, ORG, sandbox.state.company)
        progress(f"scale {scale:g} {backend}: queries ({quotas.imported} quotas imported)")
        queries = queries_in_child(db, runs)
        started = time.monotonic()
        # As a sync runs it (store.retry): on DuckDB a full resolution at scale 10 outgrows the
        # 256MiB default and is retried with a raised memory base.
        full = in_transaction(
            db, lambda conn: resolve_identities(conn, ORG, full=True), what="full resolution"
        )
        full_s = time.monotonic() - started
        size = database_mib(db)
        db.dispose()
    figures = BackendFigures(
        scale, backend, first, incremental, changes, queries, full_s,
        full.participants_examined, size,
    )  # fmt: skip
    print_backend(figures)
    return figures


def run_syncs_only(
    scale: float,
    seed: int,
    backend: str,
    postgres_url: str,
    providers: tuple[str, ...],
    *,
    profile: bool,
    nice: int,
) -> list[SyncFigures]:
    """First syncs only, each provider in a child of its own (its peak RSS is its own), in the
    order given, into one fresh store; the sandbox is served by this process meanwhile."""
    from revtops_sandbox import SandboxServer

    progress(f"scale {scale:g} {backend}: generating the sandbox company")
    rounds: list[SyncFigures] = []
    with (
        SandboxServer(scale=scale, seed=seed) as sandbox,
        scratch_store(backend, postgres_url, prefix="revtops_bench") as db,
    ):
        environment = environment_for(sandbox, db)
        for index, provider in enumerate(providers):
            progress(f"scale {scale:g} {backend}: first sync of {provider} (load "
                     f"{os.getloadavg()[0]:.1f})")  # fmt: skip
            figures = sync_in_child(
                environment,
                upgrade_first=index == 0,
                providers=(provider,),
                profile=profile,
                nice=nice,
                mode="one-at-a-time",  # alone anyway: its CPU is the process's
            )
            print_sync(f"scale {scale:g} {backend} first sync of {provider}, load "
                       f"{os.getloadavg()[0]:.1f}", figures)  # fmt: skip
            rounds.append(figures)
        db.dispose()
    print_per_provider(scale, backend, rounds)
    return rounds


# --- the report ----------------------------------------------------------------------------------


def print_per_provider(scale: float, backend: str, rounds: list[SyncFigures]) -> None:
    """One line per provider's child: peak RSS and CPU per 1,000 records, and steps' CPU."""
    print(f"\nscale {scale:g} {backend}, one child per provider (peak RSS goal < "
          f"{PEAK_RSS_GOAL_MIB:,.0f} MiB at scale 10):")  # fmt: skip
    print(f"  {'provider':<16} {'records':>9} {'wall s':>8} {'CPU s':>7} {'CPU ms/1k':>9} "
          f"{'server CPU s':>12} {'peak RSS MiB':>12} {'start MiB':>9} {'KiB/rec':>7}  "
          "steps' CPU s (cumulative; they nest)")  # fmt: skip
    for figures in rounds:
        for p in figures.providers:
            per_k = 1000 * figures.cpu_s / p.fetched if p.fetched else 0.0
            steps = ", ".join(f"{k} {v:.1f}" for k, v in sorted(p.steps_cpu_s.items()))
            # Growth of the peak over the child's start, per record synced.
            grown = figures.peak_rss_mib - figures.start_rss_mib
            growth = 1024 * grown / p.fetched if p.fetched else 0.0
            print(f"  {p.provider:<16} {p.fetched:9,} {p.wall_s:8.1f} {figures.cpu_s:7.1f} "
                  f"{per_k * 1000:9.0f} {p.server_cpu_s:12.1f} {figures.peak_rss_mib:12,.0f} "
                  f"{figures.start_rss_mib:9,.0f} {growth:7.2f}  {steps or '-'} "
                  f"({verdict(figures.peak_rss_mib < PEAK_RSS_GOAL_MIB)})", flush=True)  # fmt: skip


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_sync(title: str, s: SyncFigures) -> None:
    added = sum(p.wall_s for p in s.providers)
    side = f" (the syncs' own {added:,.1f} s added up)" if s.mode != "one-at-a-time" else ""
    server = f", server CPU {s.server_cpu_s:,.1f} s" if s.server_cpu_s else ""
    print(f"\n{title}, {s.mode}: {s.wall_s:,.1f} s wall{side}, load "
          f"{os.getloadavg()[0]:.1f}{server}")  # fmt: skip
    print(f"  {s.fetched:,} records "
          f"({s.fetched / s.wall_s if s.wall_s else 0:,.0f}/s), client CPU {s.cpu_s:,.1f} s "
          f"({s.fetched / s.cpu_s if s.cpu_s else 0:,.0f} records/CPU-s), sandbox CPU "
          f"{s.sandbox_cpu_s:,.1f} s, peak RSS {s.peak_rss_mib:,.0f} MiB, upgrade "
          f"{s.upgrade_s:.1f} s", flush=True)  # fmt: skip
    cpu = "CPU s" if s.mode == "one-at-a-time" else "thr CPU"  # side by side: its thread's
    print(f"  {'provider':<16} {'wall s':>8} {cpu:>7} {'records':>9} {'rec/s':>7} "
          f"{'calls':>6} {'f/n/w s':>8} {'resol. s':>8} {'share':>6} {'stats s':>7}  "
          "participants examined  status")  # fmt: skip
    for p in s.providers:
        print(f"  {p.provider:<16} {p.wall_s:8.1f} {p.cpu_s:7.1f} {p.fetched:9,} "
              f"{p.records_per_s:7,.0f} {p.api_calls:6,} {p.pipeline_s:8.1f} "
              f"{p.resolution_s:8.2f} {p.resolution_share:6.1%} {p.statistics_s:7.2f}  "
              f"{p.participants_examined:>21,}  {p.status}{_in_batches(p)} "
              f"(resolution goal <= {RESOLUTION_SHARE_GOAL:.0%}: "
              f"{verdict(p.resolution_share <= RESOLUTION_SHARE_GOAL)})", flush=True)  # fmt: skip


def _in_batches(p: ProviderFigures) -> str:
    if not p.batch_resolution_s:
        return ""
    return f" (resolution {p.batch_resolution_s:.2f} s of it in the batches)"


def print_queries(queries: list[QueryFigures]) -> None:
    for q in queries:
        if q.error:
            print(f"  {q.kind:<8} {q.name:<40} FAILED: {q.error}")
            continue
        print(f"  {q.kind:<8} {q.name:<40} p50 {q.p50_s * 1000:8.1f} ms  p95 "
              f"{q.p95_s * 1000:8.1f} ms  {q.rows:6,} rows  "
              f"{verdict(q.p95_s <= QUERY_P95_GOAL_S)}", flush=True)  # fmt: skip


def queries_only(urls: list[str], runs: int, org: str, only: frozenset[str]) -> list[Any]:
    """Step 3 alone, against existing stores: the queries of each, then one line per store."""
    results: list[Any] = []
    for url in urls:
        db = Database(url)
        progress(f"queries on {db.display_url} (org {org})")
        load = os.getloadavg()[0]
        queries = queries_in_child(db, runs, org, only)
        db.dispose()
        goal = f"goal p95 <= {QUERY_P95_GOAL_S * 1000:.0f} ms at scale 10"
        print(f"\n{db.display_url}, org {org}: {len(queries)} queries, {runs} runs after a "
              f"warm-up, load average {load:.1f} -> {os.getloadavg()[0]:.1f} ({goal}):",
              flush=True)  # fmt: skip
        print_queries(queries)
        results.append({"url": db.display_url, "queries": [asdict(q) for q in queries]})
    print("\n| store | queries | p95 <= 500 ms | slowest p95 | failed |")
    print("| --- | --- | --- | --- | --- |")
    for result in results:
        figures = [QueryFigures(**q) for q in result["queries"]]
        timed = [q for q in figures if not q.error]
        slow = max(timed, key=lambda q: q.p95_s) if timed else None
        fast = sum(q.p95_s <= QUERY_P95_GOAL_S for q in timed)
        print(f"| {result['url']} | {len(figures)} | {fast} | "
              + (f"{slow.p95_s * 1000:,.0f} ms ({slow.kind} {slow.name})" if slow else "-")
              + f" | {', '.join(q.name for q in figures if q.error) or '-'} |")  # fmt: skip
    return results


def print_backend(b: BackendFigures) -> None:
    share = b.incremental.wall_s / b.first.wall_s if b.first.wall_s else math.nan
    print(f"\nscale {b.scale:g} {b.backend}: incremental / first sync {share:.1%} (goal <= "
          f"{INCREMENTAL_SHARE_GOAL:.0%}: {verdict(share <= INCREMENTAL_SHARE_GOAL)}); "
          f"changes {b.changes}")  # fmt: skip
    print(f"full resolution of {ORG}: {b.full_resolution_s:.2f} s over "
          f"{b.full_participants_examined:,} participants; "
          f"database {b.database_mib:,.0f} MiB")  # fmt: skip
    print(f"queries ({len(b.queries[0].runs_s) if b.queries else 0} runs after a warm-up; "
          f"goal p95 <= {QUERY_P95_GOAL_S * 1000:.0f} ms at scale 10):")  # fmt: skip
    print_queries(b.queries)


def summary(results: list[BackendFigures]) -> list[tuple[str, str, str, str]]:
    """(figure, value, goal, verdict) rows."""
    rows: list[tuple[str, str, str, str]] = []
    by = {(r.scale, r.backend): r for r in results}
    for r in results:
        tag = f"scale {r.scale:g} {r.backend}"
        f, inc = r.first, r.incremental
        rows.append((f"{tag}: first sync wall (4 providers)", f"{f.wall_s:,.1f} s "
                     f"({f.fetched / f.wall_s:,.0f} rec/s)", "", ""))  # fmt: skip
        rows.append((f"{tag}: first sync client CPU", f"{f.cpu_s:,.1f} s "
                     f"({f.fetched / f.cpu_s:,.0f} rec/CPU-s)",
                     f">= {RECORDS_PER_CPU_GOAL:,.0f} rec/CPU-s (bench/sync.py's)",
                     verdict(f.fetched / f.cpu_s >= RECORDS_PER_CPU_GOAL)))  # fmt: skip
        worst = max(f.providers + inc.providers, key=lambda p: p.resolution_share)
        rows.append((f"{tag}: resolution share, worst sync", f"{worst.resolution_share:.1%} "
                     f"({worst.provider}, {worst.resolution_s:.2f} s)",
                     f"<= {RESOLUTION_SHARE_GOAL:.0%}",
                     verdict(worst.resolution_share <= RESOLUTION_SHARE_GOAL)))  # fmt: skip
        failed = [f"{which} {p.provider}" for which, syncs in (("first", f), ("incremental", inc))
                  for p in syncs.providers if p.status != "succeeded"]  # fmt: skip
        rows.append((f"{tag}: syncs that did not succeed", ", ".join(failed) or "none",
                     "none", verdict(not failed)))  # fmt: skip
        share = inc.wall_s / f.wall_s
        rows.append((f"{tag}: incremental re-sync after 1%", f"{inc.wall_s:,.1f} s "
                     f"({share:.1%} of first)", f"<= {INCREMENTAL_SHARE_GOAL:.0%}",
                     verdict(share <= INCREMENTAL_SHARE_GOAL)))  # fmt: skip
        timed = [q for q in r.queries if not q.error]
        failed = [q.name for q in r.queries if q.error]
        if timed:
            slow = max(timed, key=lambda q: q.p95_s)
            rows.append((f"{tag}: slowest query p95 (of {len(timed)})",
                         f"{slow.p95_s * 1000:,.0f} ms ({slow.kind} {slow.name})",
                         f"<= {QUERY_P95_GOAL_S * 1000:.0f} ms at scale 10",
                         verdict(slow.p95_s <= QUERY_P95_GOAL_S)
                         + (f"; failed: {', '.join(failed)}" if failed else "")))  # fmt: skip
        rss = max(f.peak_rss_mib, inc.peak_rss_mib)
        rows.append((f"{tag}: peak RSS of the sync", f"{rss:,.0f} MiB",
                     f"< {PEAK_RSS_GOAL_MIB:,.0f} MiB at scale 10",
                     verdict(rss < PEAK_RSS_GOAL_MIB)))  # fmt: skip
        rows.append((f"{tag}: database size", f"{r.database_mib:,.0f} MiB", "", ""))
    scales = sorted({r.scale for r in results})
    backends = sorted({r.backend for r in results})
    for scale in scales:
        pg, duck = by.get((scale, "postgresql")), by.get((scale, "duckdb"))
        if pg and duck:
            ratio = pg.first.wall_s / duck.first.wall_s
            rows.append((f"scale {scale:g}: PostgreSQL / DuckDB first sync wall", f"{ratio:.2f}x",
                         f"<= {POSTGRES_OVER_DUCKDB_GOAL}x at scale 10",
                         verdict(ratio <= POSTGRES_OVER_DUCKDB_GOAL)))  # fmt: skip
    if len(scales) >= 2:
        low, high = scales[0], scales[-1]
        for backend in backends:
            a, b = by.get((low, backend)), by.get((high, backend))
            if a and b:
                ratio = b.first.wall_s / a.first.wall_s
                cpu_ratio = b.first.cpu_s / a.first.cpu_s
                records = b.first.fetched / a.first.fetched
                rows.append((f"{backend}: scale {high:g} / scale {low:g} first sync wall",
                             f"{ratio:.1f}x (CPU {cpu_ratio:.1f}x, records {records:.1f}x)",
                             f"<= {LINEAR_GOAL:g}x", verdict(ratio <= LINEAR_GOAL)))  # fmt: skip
    return rows


def print_summary(rows: list[tuple[str, str, str, str]]) -> None:
    print("\n| figure | value | goal | verdict |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated sandbox scales")
    parser.add_argument("--backends", default="postgresql,duckdb", help="postgresql, duckdb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each query")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--queries-only", action="store_true", help="only the query phase, on --database-url"
    )
    parser.add_argument(
        "--database-url", action="append", default=[], help="an existing store (repeatable)"
    )
    parser.add_argument("--org", default=ORG, help="the synced organization (--queries-only)")
    parser.add_argument("--only", default="", help="comma-separated query names (--queries-only)")
    parser.add_argument(
        "--syncs-only",
        action="store_true",
        help="only first syncs, one child per provider (--providers): peak RSS per provider",
    )
    parser.add_argument(
        "--providers", default=",".join(PROVIDERS), help="comma-separated (--syncs-only)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="CPU per step of each sync (cProfile; slower)"
    )
    parser.add_argument("--nice", type=int, default=0, help="run the sync children at this nice")
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="run the providers one after the other (default: as `revtops sync` does)",
    )
    parser.add_argument(
        "--all-side-by-side",
        action="store_true",
        help="run every sync side by side, first loads too",
    )
    parser.add_argument("--sync-mode", choices=SYNC_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-queries", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--upgrade", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    providers = tuple(p.strip() for p in args.providers.split(",") if p.strip())
    if args.one_at_a_time and args.all_side_by_side:
        parser.error("--one-at-a-time or --all-side-by-side, not both")
    mode = args.sync_mode or (
        "one-at-a-time"
        if args.one_at_a_time
        else "all-side-by-side"
        if args.all_side_by_side
        else "revtops-sync"
    )
    if args.child:
        return child_main(args.child, args.child_out, args.upgrade, providers, args.profile, mode)
    only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    if args.child_queries:
        return queries_child_main(args.child_queries, args.runs, args.child_out, args.org, only)
    if args.queries_only:
        if not args.database_url or args.runs < 1:
            parser.error("--queries-only needs --database-url (one or more) and --runs >= 1")
        print(f"bench/scale.py --queries-only {time.strftime('%Y-%m-%d %H:%M')} UTC: load "
              f"average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)  # fmt: skip
        measured = queries_only(args.database_url, args.runs, args.org, only)
        if args.json:
            args.json.write_text(json.dumps(measured, indent=2, default=str))
        return 0
    try:
        scales = [float(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--scales: not a list of numbers: {args.scales!r}")
    aliases = {"postgres": "postgresql", "pg": "postgresql", "postgresql": "postgresql",
               "duckdb": "duckdb"}  # fmt: skip
    names = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in aliases]
    if unknown or not names or not scales or min(scales) <= 0 or args.runs < 1:
        parser.error("--backends takes postgresql and/or duckdb; --scales positive numbers; "
                     "--runs at least 1")  # fmt: skip
    backends = [aliases[b] for b in names]
    if args.syncs_only:
        unknown_providers = [p for p in providers if p not in PROVIDERS]
        if unknown_providers or not providers:
            parser.error(f"--providers takes {', '.join(PROVIDERS)}")
        print(f"bench/scale.py --syncs-only {time.strftime('%Y-%m-%d %H:%M')} UTC: scales "
              f"{scales}, backends {backends}, providers {list(providers)}, seed {args.seed}, "
              f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs",
              flush=True)  # fmt: skip
        rounds = {
            f"scale {scale:g} {backend}": run_syncs_only(
                scale,
                args.seed,
                backend,
                args.postgres_url,
                providers,
                profile=args.profile,
                nice=args.nice,
            )
            for scale in scales
            for backend in backends
        }
        if args.json:
            per_round = {key: [asdict(r) for r in value] for key, value in rounds.items()}
            args.json.write_text(json.dumps(per_round, indent=2, default=str))
        return 0
    print(f"bench/scale.py {time.strftime('%Y-%m-%d %H:%M')} UTC: scales {scales}, backends "
          f"{backends}, seed {args.seed}, providers run {mode}, load average "
          f"{os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    results = [
        run_backend(scale, args.seed, backend, args.postgres_url, args.runs, mode)
        for scale in scales
        for backend in backends
    ]
    print_summary(summary(results))
    if args.json:
        payload = [
            {
                **asdict(r),
                "first_wall_s": r.first.wall_s,
                "incremental_wall_s": r.incremental.wall_s,
            }
            for r in results
        ]
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
