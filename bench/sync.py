"""Benchmark a HubSpot sync end to end (fetch, normalize, upsert) against ``dlt``, on both backends.

    python bench/sync.py [--scale 10] [--small-scale 1] [--rate-scale 1] [--seed 0]
                         [--backend duckdb|postgresql|all] [--postgres-url URL] [--no-dlt]
                         [--profile DIR] [--json PATH]

The parent process serves a ``SandboxServer`` (HubSpot emulation; rate limits off) in a thread;
every measured sync runs in a child process, so the sandbox has one core and the client the other,
and the child's peak RSS (``VmHWM``) is the sync's alone, without the sandbox's records.

1. At ``--scale``, for each backend, in a fresh store (DuckDB: a temporary file; PostgreSQL: a
   database ``revtops_bench_<hex>`` created through the admin URL and dropped at the end):
   ``upgrade`` (timed apart), then ``run_sync`` of companies, contacts and deals (pipelines come
   along: deals need the stage map) with a ``HubSpotConnector`` whose client has no rate budget.
   Figures: records/s end to end, API calls beside the page-size minimum, peak RSS.
2. Baseline, same sandbox, same records: ``dlt``, one ``dlt.resource`` per object type walking the
   same list endpoints (same page size, properties and associations, active then archived) with
   plain httpx and the same token, yielding the raw pages, ``write_disposition="merge"`` on
   ``id`` (an upsert, like ours), loaded by ``dlt.pipeline`` into DuckDB (parquet load files,
   dlt's fastest path there) or PostgreSQL (csv load files: COPY) in a fresh database.
3. At ``--small-scale``: our sync again, for the peak RSS against scale.
4. At ``--rate-scale`` with the sandbox's rate limits on (rolling 190 requests per 10 s): our
   connector as ``run_sync`` builds it (``HubSpotConnector.connect``: ``hubspot_budgets()``, which
   follows ``X-HubSpot-RateLimit-Max``), into DuckDB. Figures: the request rate achieved over the
   complete 10 s windows of the run (a client that keeps a budget spends it in a burst, then
   waits, so a partial last window would understate it) beside the allowed rate, and the 429s.

Rate-limited runs need at least two windows (~340 calls, scale ~1) for a meaningful figure.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import cpu_seconds, peak_rss_mib, progress
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url

import revtops_kernel
from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.hubspot import HubSpotClient, HubSpotConnector
from revtops_kernel.connectors.hubspot_streams import OBJECT_STREAM_BY_NAME
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_postgres, scratch_store
from revtops_kernel.sync import run_sync

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ORG = "bench"
STREAMS = ("companies", "contacts", "deals")
TABLES = {"companies": "accounts", "contacts": "contacts", "deals": "deals"}
TOKEN_VARIABLE = "REVTOPS_BENCH_TOKEN"  # the sandbox token reaches children here, not in argv
BACKENDS = ("duckdb", "postgresql")
DLT_FORMATS: dict[str, Any] = {"duckdb": "parquet", "postgresql": "csv"}  # dlt's fastest per target

GOAL_RECORDS_PER_S = 20_000  # into DuckDB, on 2 cores
GOAL_DLT_RATIO = 2.0  # records/s against dlt's in the same run (issue 13)
GOAL_RECORDS_PER_CPU_S = 25_000  # records per CPU-second of the sync process (issue 13)
GOAL_CALLS_RATIO = 1.05  # API calls / page-size minimum
GOAL_RSS_MIB = 1024.0  # peak RSS at --scale
GOAL_RSS_GROWTH = 1.5  # peak RSS at --scale / at --small-scale: "flat"
GOAL_RATE_SHARE = 0.90  # achieved / allowed request rate with rate limits on
RATE_WINDOW_S = 10.0


def current_rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- what a child reports ----------------------------------------------------------------------


@dataclass
class RunFigures:
    """One measured sync (ours or dlt's), as a child process saw it."""

    kind: str  # "ours", "dlt" or "rate"
    backend: str
    scale: float
    records: int = 0  # records of companies, contacts and deals fetched
    seconds: float = 0.0  # end to end: run_sync, or dlt's extract + normalize + load
    cpu_seconds: float = 0.0  # the child's CPU time over the same span
    api_calls: int = 0
    rate_limited: int = 0  # 429s the client received
    budget_wait_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    rss_before_mib: float = 0.0  # after imports and the empty store, before the sync
    setup_seconds: float = 0.0  # ours: upgrade(db); dlt: nothing (it creates tables in load)
    stored: dict[str, int] = field(default_factory=dict)  # rows per table after the run
    phases: dict[str, float] = field(default_factory=dict)  # dlt: extract/normalize/load
    calls_by_endpoint: dict[str, int] = field(default_factory=dict)
    sent_at: list[float] = field(default_factory=list)  # rate: send times of accepted calls
    status: str = "succeeded"
    error: str | None = None
    version: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


# --- stores ------------------------------------------------------------------------------------


def stored_rows(db: Database) -> dict[str, int]:
    counts: dict[str, int] = {}
    with db.connect() as conn:
        for table in TABLES.values():
            query = text(f"SELECT count(*) FROM {table} WHERE organization_id = :org")
            counts[table] = int(conn.execute(query, {"org": ORG}).scalar_one())
    return counts


# --- child: our sync ---------------------------------------------------------------------------


def run_ours(args: argparse.Namespace) -> RunFigures:
    """``run_sync`` of the three streams into a fresh store; ``rate``: with the rate budget."""
    figures = RunFigures(args.child, args.backend, args.scale)
    figures.version = revtops_kernel.__version__
    tokens = StaticToken("hubspot", SecretStr(os.environ[TOKEN_VARIABLE]))
    http = make_http_client()
    sent_at: list[float] = []

    def on_request(request: httpx.Request) -> None:
        request.extensions["revtops_bench_sent"] = time.monotonic()

    def on_response(response: httpx.Response) -> None:
        if response.status_code != 429:  # when the accepted request left (≈ reached the server)
            sent_at.append(response.request.extensions["revtops_bench_sent"])

    if args.child == "rate":
        http.event_hooks = {"request": [on_request], "response": [on_response]}
        connector = HubSpotConnector.connect(args.base_url, tokens, http)
    else:
        client = HubSpotClient("hubspot", args.base_url, tokens, http, budgets={})
        connector = HubSpotConnector(client)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with scratch_store(args.backend, args.postgres_url, prefix="revtops_bench") as db:
        started = time.perf_counter()
        upgrade(db)
        figures.setup_seconds = time.perf_counter() - started
        figures.rss_before_mib = current_rss_mib()
        profiler = cProfile.Profile() if args.profile else None
        cpu0, started = cpu_seconds(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = run_sync(
            db, settings, "hubspot", org=ORG, connector=connector, streams=STREAMS, progress=False
        )
        if profiler is not None:
            profiler.disable()
        figures.seconds = time.perf_counter() - started
        figures.cpu_seconds = cpu_seconds() - cpu0
        figures.peak_rss_mib = peak_rss_mib()
        if profiler is not None:
            folder = Path(args.profile)
            folder.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(folder / f"{args.child}-{args.backend}-scale{args.scale:g}.prof")
        figures.stored = stored_rows(db)
    http.close()
    figures.status, figures.error = result.status, result.error
    figures.records = sum(result.streams[s].fetched for s in STREAMS if s in result.streams)
    stats = connector.stats
    figures.api_calls, figures.rate_limited = stats.api_calls, stats.rate_limited
    figures.budget_wait_seconds = stats.budget_wait_seconds
    figures.calls_by_endpoint = dict(stats.by_endpoint)
    figures.sent_at = sent_at
    pipelines = result.streams.get("pipelines")
    if pipelines is not None:
        figures.notes.append(f"pipelines stream: {pipelines.fetched} records (in the time)")
    return figures


# --- child: the dlt baseline -------------------------------------------------------------------


def run_dlt(args: argparse.Namespace) -> RunFigures:
    """The same list walks as plain httpx generators, loaded by a ``dlt.pipeline``."""
    folder = Path(tempfile.mkdtemp(prefix="revtops_bench_dlt_"))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ["DLT_DATA_DIR"] = str(folder / "data")
    import dlt  # here: neither the parent nor our sync's child pays for importing it

    figures = RunFigures("dlt", args.backend, args.scale, version=dlt.__version__)
    token = os.environ[TOKEN_VARIABLE]
    http = httpx.Client(
        base_url=args.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
    )
    counted = {"calls": 0, "records": 0}

    def walk(stream_name: str) -> Iterator[list[dict[str, Any]]]:
        stream = OBJECT_STREAM_BY_NAME[stream_name]
        for archived in ("false", "true"):
            params: dict[str, Any] = {
                "limit": stream.list_page_size,
                "properties": ",".join(stream.properties),
                "archived": archived,
            }
            if stream.history:  # the same pages as ours: deals carry their stage history
                params["propertiesWithHistory"] = ",".join(stream.history)
            if stream.associations:
                params["associations"] = ",".join(stream.associations)
            after: str | None = None
            while True:
                query = {**params, "after": after} if after else params
                response = http.get(f"/crm/v3/objects/{stream.object_type}", params=query)
                response.raise_for_status()
                counted["calls"] += 1
                data = response.json()
                records = data.get("results", [])
                counted["records"] += len(records)
                if records:
                    yield records
                after = (data.get("paging") or {}).get("next", {}).get("after")
                if not after:
                    break

    file_format = DLT_FORMATS[args.backend]
    with _dlt_destination(args, folder) as destination:
        resources = [
            dlt.resource(walk(name), name=name, write_disposition="merge", primary_key="id")
            for name in STREAMS
        ]
        pipeline = dlt.pipeline(
            pipeline_name="revtops_bench",
            destination=destination,
            dataset_name="hubspot",
            pipelines_dir=str(folder / "pipelines"),
        )
        figures.rss_before_mib = current_rss_mib()
        cpu0, started = cpu_seconds(), time.perf_counter()
        pipeline.extract(resources, loader_file_format=file_format)
        extracted = time.perf_counter()
        pipeline.normalize()
        normalized = time.perf_counter()
        info = pipeline.load()
        loaded = time.perf_counter()
        figures.cpu_seconds = cpu_seconds() - cpu0
        figures.peak_rss_mib = peak_rss_mib()
        figures.seconds = loaded - started
        figures.phases = {
            "extract": extracted - started,
            "normalize": normalized - extracted,
            "load": loaded - normalized,
        }
        if info.has_failed_jobs:
            figures.status, figures.error = "failed", "dlt load package has failed jobs"
        with pipeline.sql_client() as client:
            for name in STREAMS:
                rows = client.execute_sql(f"SELECT count(*) FROM {name}")
                figures.stored[name] = int(rows[0][0]) if rows else 0
        figures.notes.append(
            f"dlt {dlt.__version__}: {file_format} load files, merge on id, "
            f"normalize workers 1 (default); nested associations go to child tables"
        )
    http.close()
    shutil.rmtree(folder, ignore_errors=True)
    figures.api_calls, figures.records = counted["calls"], counted["records"]
    return figures


@contextmanager
def _dlt_destination(args: argparse.Namespace, folder: Path) -> Iterator[Any]:
    import dlt

    if args.backend == "duckdb":
        yield dlt.destinations.duckdb(str(folder / "dlt.duckdb"))
        return
    with scratch_postgres(args.postgres_url, prefix="revtops_bench") as scratch:
        url = make_url(scratch).set(drivername="postgresql")
        if not url.password:  # dlt insists on one; trust authentication ignores it
            url = url.set(password="unused")
        yield dlt.destinations.postgres(url.render_as_string(hide_password=False))


# --- parent: sandbox, children, figures --------------------------------------------------------


@dataclass
class Sandbox:
    scale: float
    generate_seconds: float
    counts: dict[str, int]

    def minimum_calls(self) -> int:
        """Page-size minimum: the list walk of each stream at its page size (deals, read with
        ``propertiesWithHistory``, come 50 a page; the others 100), its archived listing (one
        call: a fresh sandbox has no archived records), and the pipelines the deals need."""
        walks = sum(
            math.ceil(self.counts[s] / OBJECT_STREAM_BY_NAME[s].list_page_size) for s in STREAMS
        )
        return walks + len(STREAMS) + 1

    def records(self) -> int:
        return sum(self.counts[s] for s in STREAMS)


def run_child(
    kind: str, backend: str, scale: float, base_url: str, token: str, args: argparse.Namespace
) -> tuple[RunFigures, float]:
    """Run one measured sync in a fresh interpreter; also return the parent's (the sandbox's) CPU
    seconds meanwhile: the parent's main thread only waits, so that is the server's work."""
    with tempfile.TemporaryDirectory(prefix="revtops_bench_") as folder:
        out = Path(folder) / "figures.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", kind]
        command += ["--backend", backend, "--scale", str(scale), "--base-url", base_url]
        command += ["--postgres-url", args.postgres_url, "--json", str(out)]
        if args.profile:
            command += ["--profile", str(args.profile)]
        env = {**os.environ, TOKEN_VARIABLE: token}
        server_cpu = time.process_time()
        completed = subprocess.run(command, env=env, check=False)
        server_cpu = time.process_time() - server_cpu
        if completed.returncode != 0 or not out.exists():
            failed = RunFigures(kind, backend, scale, status="failed")
            failed.error = f"child exited with {completed.returncode}"
            return failed, server_cpu
        raw = json.loads(out.read_text())
        return RunFigures(**raw), server_cpu


@contextmanager
def sandbox(scale: float, seed: int) -> Iterator[tuple[Any, Sandbox]]:
    from revtops_sandbox import SandboxServer

    progress(f"generating the sandbox company at scale {scale:g} (seed {seed})")
    started = time.perf_counter()
    server = SandboxServer(scale=scale, seed=seed)
    info = Sandbox(scale, time.perf_counter() - started, dict(server.company.counts()))
    progress(
        f"generated in {info.generate_seconds:.1f} s: "
        + ", ".join(f"{info.counts[s]:,} {s}" for s in STREAMS)
    )
    with server as sb:
        yield sb, info


@dataclass
class Measured:
    """Everything the parent gathered, for the table and the JSON."""

    config: dict[str, Any]
    sandboxes: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    rate: dict[str, Any] = field(default_factory=dict)
    lines: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)


def record_run(
    measured: Measured, figures: RunFigures, server_cpu: float, sb: Any, info: Sandbox
) -> None:
    data = asdict(figures)
    data.pop("sent_at")
    data["records_per_s"] = figures.records_per_s
    data["server_cpu_seconds"] = server_cpu
    data["server_requests"] = sb.stats.total("hubspot")
    measured.runs.append(data)
    what = f"{figures.kind} {figures.backend} scale {figures.scale:g}"
    if figures.status != "succeeded":
        measured.anomalies.append(f"{what}: {figures.status}: {figures.error}")
    if figures.records != info.records():
        measured.anomalies.append(
            f"{what}: fetched {figures.records:,}, expected {info.records():,}"
        )
    expected = {TABLES[s] if figures.kind != "dlt" else s: info.counts[s] for s in STREAMS}
    if figures.stored and figures.stored != expected:
        measured.anomalies.append(f"{what}: stored {figures.stored}, expected {expected}")
    if figures.kind != "dlt" and figures.api_calls != sb.stats.total("hubspot"):
        measured.anomalies.append(
            f"{what}: client counted {figures.api_calls} calls, sandbox {sb.stats.total('hubspot')}"
        )
    progress(
        f"{what}: {figures.records:,} records in {figures.seconds:.1f} s "
        f"({figures.records_per_s:,.0f}/s), {figures.api_calls} calls, "
        f"peak RSS {figures.peak_rss_mib:,.0f} MiB, client CPU {figures.cpu_seconds:.1f} s, "
        f"sandbox CPU {server_cpu:.1f} s"
    )


def rate_figures(sent_at: Sequence[float], window: float) -> dict[str, Any]:
    """Accepted requests over the complete windows from the first send, and the busiest window."""
    times = sorted(sent_at)
    if len(times) < 2:
        return {"calls": len(times), "windows": 0, "per_window": 0.0, "busiest": len(times)}
    span = times[-1] - times[0]
    windows = int(span // window)
    if windows:
        horizon = times[0] + windows * window
        in_windows = sum(1 for t in times if t < horizon)
        per_window = in_windows / windows
    else:  # shorter than one window: the plain average understates a bursty client
        per_window = (len(times) - 1) / span * window if span else float(len(times))
    busiest, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        busiest = max(busiest, end - start + 1)
    return {
        "calls": len(times),
        "span_s": span,
        "windows": windows,
        "per_window": per_window,
        "overall_per_window": (len(times) - 1) / span * window if span else 0.0,
        "busiest": busiest,
    }


def measure(args: argparse.Namespace) -> Measured:
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    config = {k: v for k, v in vars(args).items() if k not in ("json", "child", "base_url")}
    config["profile"] = str(args.profile) if args.profile else None
    measured = Measured(config)
    by_key: dict[tuple[str, str, float], RunFigures] = {}

    def one(kind: str, backend: str, sb: Any, info: Sandbox) -> RunFigures:
        sb.reset_stats()
        progress(f"{kind} -> {backend} at scale {info.scale:g}")
        figures, server_cpu = run_child(
            kind, backend, info.scale, sb.hubspot_base_url, sb.token, args
        )
        record_run(measured, figures, server_cpu, sb, info)
        by_key[(kind, backend, info.scale)] = figures
        return figures

    with sandbox(args.scale, args.seed) as (sb, big):
        measured.sandboxes["main"] = asdict(big)
        for backend in backends:
            one("ours", backend, sb, big)
            if not args.no_dlt:
                one("dlt", backend, sb, big)
    with sandbox(args.small_scale, args.seed) as (sb, small):
        measured.sandboxes["small"] = asdict(small)
        for backend in backends:
            one("ours", backend, sb, small)
        if args.rate_scale == args.small_scale:
            measure_rate(measured, sb, small, args, one)
    if args.rate_scale != args.small_scale:
        with sandbox(args.rate_scale, args.seed) as (sb, rated):
            measured.sandboxes["rate"] = asdict(rated)
            measure_rate(measured, sb, rated, args, one)
    assemble(measured, by_key, big, small, backends, args)
    return measured


def measure_rate(
    measured: Measured, sb: Any, info: Sandbox, args: argparse.Namespace, one: Any
) -> None:
    sb.faults.hubspot.rate_limits = True
    sb.reset_stats()
    figures: RunFigures = one("rate", "duckdb", sb, info)
    sb.faults.hubspot.rate_limits = False
    allowed = sb.faults.hubspot.ten_second_limit
    measured.rate = {
        "scale": info.scale,
        "allowed_per_window": allowed,
        "window_s": RATE_WINDOW_S,
        "client_429s": figures.rate_limited,
        "server_429s": sb.stats.rate_limited("hubspot"),
        "budget_wait_seconds": figures.budget_wait_seconds,
        "seconds": figures.seconds,
        **rate_figures(figures.sent_at, RATE_WINDOW_S),
    }


# --- the table ---------------------------------------------------------------------------------


def _line(
    measured: Measured,
    backend: str,
    figure: str,
    value: float | None,
    unit: str,
    baseline: str = "",
    base_value: float | None = None,
    ratio: float | None = None,
    goal: str = "(info)",
    met: bool | None = None,
) -> None:
    measured.lines.append(
        {
            "backend": backend,
            "figure": figure,
            "value": value,
            "unit": unit,
            "baseline": baseline,
            "baseline_value": base_value,
            "ratio": ratio,
            "goal": goal,
            "met": met,
        }
    )


def assemble(
    measured: Measured,
    runs: Mapping[tuple[str, str, float], RunFigures],
    big: Sandbox,
    small: Sandbox,
    backends: Sequence[str],
    args: argparse.Namespace,
) -> None:
    minimum = big.minimum_calls()
    for backend in backends:
        ours = runs.get(("ours", backend, big.scale))
        dlt_run = runs.get(("dlt", backend, big.scale))
        ours_small = runs.get(("ours", backend, small.scale))
        if ours is None:
            continue
        what = f"sync records/s, scale {big.scale:g} ({ours.records:,} rec)"
        if dlt_run is not None and dlt_run.seconds:
            ratio = ours.records_per_s / dlt_run.records_per_s
            _line(
                measured,
                backend,
                what,
                ours.records_per_s,
                "rec/s",
                f"dlt {dlt_run.version} ({DLT_FORMATS[backend]}, merge)",
                dlt_run.records_per_s,
                ratio,
                f">= {GOAL_DLT_RATIO:g}x dlt",
                ratio >= GOAL_DLT_RATIO,
            )
        if backend == "duckdb":
            ratio = ours.records_per_s / GOAL_RECORDS_PER_S
            _line(
                measured,
                backend,
                what,
                ours.records_per_s,
                "rec/s",
                "goal floor",
                GOAL_RECORDS_PER_S,
                ratio,
                f">= {GOAL_RECORDS_PER_S:,} rec/s",
                ratio >= 1.0,
            )
        elif dlt_run is None:
            _line(measured, backend, what, ours.records_per_s, "rec/s")
        if ours.cpu_seconds:
            # The machine is shared: records per CPU-second of the sync process is what one
            # quiet core would reach if nothing waited (the sandbox has the other core).
            per_cpu = ours.records / ours.cpu_seconds
            dlt_cpu = (
                dlt_run.records / dlt_run.cpu_seconds if dlt_run and dlt_run.cpu_seconds else None
            )
            _line(
                measured,
                backend,
                "sync records per client CPU-second",
                per_cpu,
                "rec/s",
                "dlt, same" if dlt_cpu else "",
                dlt_cpu,
                per_cpu / dlt_cpu if dlt_cpu else None,
                f">= {GOAL_RECORDS_PER_CPU_S:,}",
                per_cpu >= GOAL_RECORDS_PER_CPU_S,
            )
        ratio = ours.api_calls / minimum
        _line(
            measured,
            backend,
            "API calls",
            ours.api_calls,
            "calls",
            "page-size minimum",
            minimum,
            ratio,
            f"<= {GOAL_CALLS_RATIO:g}x",
            ratio <= GOAL_CALLS_RATIO,
        )
        if ours_small is not None and ours_small.peak_rss_mib:
            ratio = ours.peak_rss_mib / ours_small.peak_rss_mib
            met = ours.peak_rss_mib < GOAL_RSS_MIB and ratio <= GOAL_RSS_GROWTH
            _line(
                measured,
                backend,
                f"peak RSS, scale {big.scale:g}",
                ours.peak_rss_mib,
                "MiB",
                f"ours, scale {small.scale:g}",
                ours_small.peak_rss_mib,
                ratio,
                f"< {GOAL_RSS_MIB:,.0f} MiB, <= {GOAL_RSS_GROWTH:g}x",
                met,
            )
        if dlt_run is not None:
            _line(
                measured,
                backend,
                f"dlt peak RSS, scale {big.scale:g}",
                dlt_run.peak_rss_mib,
                "MiB",
            )
    rate = measured.rate
    if rate:
        allowed = rate["allowed_per_window"]
        share = rate["per_window"] / allowed
        # Under one complete window the budget never had to wait: no figure for the goal.
        enough = rate["windows"] >= 1
        _line(
            measured,
            "duckdb",
            f"rate-limited calls/10 s, scale {rate['scale']:g} ({rate['windows']} windows)",
            rate["per_window"],
            "calls",
            "allowed by the sandbox",
            allowed,
            share,
            f">= {GOAL_RATE_SHARE:.0%} of allowed"
            if enough
            else "(run shorter than 10 s: raise --rate-scale)",
            share >= GOAL_RATE_SHARE if enough else None,
        )
        _line(measured, "duckdb", "429s received (rate limits on)", rate["client_429s"], "")
    notes(measured, runs, big, small, backends, args)


def notes(
    measured: Measured,
    runs: Mapping[tuple[str, str, float], RunFigures],
    big: Sandbox,
    small: Sandbox,
    backends: Sequence[str],
    args: argparse.Namespace,
) -> None:
    add = measured.notes.append
    add(
        f"sandbox: scale {big.scale:g} generated in {big.generate_seconds:.1f} s; "
        f"records {big.records():,} ({', '.join(f'{big.counts[s]:,} {s}' for s in STREAMS)}); "
        "sandbox in the parent's thread, every sync in its own child process"
    )
    add(
        f"page-size minimum {big.minimum_calls()}: sum of ceil(n/page size) per stream "
        f"({', '.join(f'{s} {OBJECT_STREAM_BY_NAME[s].list_page_size}' for s in STREAMS)}), "
        f"+1 archived listing per stream, +1 pipelines"
    )
    for run in measured.runs:
        kind, backend, scale = run["kind"], run["backend"], run["scale"]
        wall, client, server = run["seconds"], run["cpu_seconds"], run["server_cpu_seconds"]
        if not wall:
            continue
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in run["phases"].items())
        extra = f"; {phases}" if phases else ""
        if run["setup_seconds"]:
            extra += f"; upgrade {run['setup_seconds']:.2f} s (not timed)"
        add(
            f"{kind} {backend} scale {scale:g}: {wall:.1f} s wall, client CPU {client:.1f} s "
            f"({client / wall:.0%}), sandbox CPU {server:.1f} s ({server / wall:.0%}), "
            f"{run['api_calls']} calls, RSS {run['rss_before_mib']:.0f} MiB before -> peak "
            f"{run['peak_rss_mib']:.0f} MiB{extra}"
        )
    rate = measured.rate
    if rate:
        add(
            f"rate-limited run: {rate['calls']} accepted calls over {rate.get('span_s', 0):.1f} s "
            f"({rate['seconds']:.1f} s sync), busiest 10 s window {rate['busiest']}, average "
            f"over the whole span {rate.get('overall_per_window', 0):.1f}/10 s; 429s: client "
            f"{rate['client_429s']}, sandbox {rate['server_429s']}; budget waits "
            f"{rate['budget_wait_seconds']:.1f} s"
        )
    if not args.no_dlt:
        add(
            "dlt: same endpoints, page size, properties and associations (active + archived "
            "listings), plain httpx; time = extract + normalize + load"
        )


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    digits = 1 if unit == "calls" and value != int(value) else 0
    return f"{value:,.{digits}f} {unit}".strip()


def render(measured: Measured) -> str:
    head = ["backend", "figure", "value", "|", "baseline", "value", "ratio", "goal"]
    rows: list[list[str]] = [head]
    for ln in measured.lines:
        verdict = "" if ln["met"] is None else (" MET" if ln["met"] else " MISSED")
        ratio = "-" if ln["ratio"] is None else f"{ln['ratio']:.2f}x"
        rows.append(
            [
                ln["backend"],
                ln["figure"],
                _cell(ln["value"], ln["unit"]),
                "|",
                ln["baseline"] or "-",
                _cell(ln["baseline_value"], ln["unit"]),
                ratio,
                f"{ln['goal']}{verdict}",
            ]
        )
    right = {2, 5, 6}
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = []
    for index, row in enumerate(rows):
        cells = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)
        ]
        out.append(" ".join(cells).rstrip())
        if index == 0:
            out.append("-" * (sum(widths) + len(widths) - 1))
    out += [f"note: {n}" for n in measured.notes]
    out += [f"ANOMALY: {a}" for a in measured.anomalies]
    out.append("goals:")
    for ln in measured.lines:
        if ln["met"] is not None:
            verdict = "MET" if ln["met"] else "MISSED"
            out.append(f"  {ln['backend']:<10} {ln['figure']}: {ln['goal']} -> {verdict}")
    return "\n".join(out)


# --- entry point -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0, help="sandbox scale of the main run")
    parser.add_argument("--small-scale", type=float, default=1.0, help="scale for the RSS check")
    parser.add_argument("--rate-scale", type=float, default=1.0, help="scale, rate limits on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("REVTOPS_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL: the benchmark creates and drops its own databases there",
    )
    parser.add_argument("--no-dlt", action="store_true", help="skip the dlt baseline")
    parser.add_argument("--profile", type=Path, help="cProfile our syncs into this folder")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", choices=("ours", "dlt", "rate"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.scale, args.small_scale, args.rate_scale) <= 0:
        parser.error("scales must be positive")
    if args.child and (args.backend == "all" or not args.base_url or not args.json):
        parser.error("a child needs --backend, --base-url and --json")
    return args


def child_main(args: argparse.Namespace) -> int:
    figures = run_dlt(args) if args.child == "dlt" else run_ours(args)
    args.json.write_text(json.dumps(asdict(figures)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    wall = time.perf_counter()
    measured = measure(args)
    print(render(measured))
    print(f"total wall time {time.perf_counter() - wall:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(asdict(measured), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
