"""The first sync of all four providers at a company's real size, on DuckDB and PostgreSQL.

    python bench/scale.py [--scale 1] [--seed 0] [--backend duckdb|postgresql|all]
                          [--postgres-url URL] [--json PATH]

Serves a ``SandboxServer(scale, seed)`` (scale 1: a ~50-rep company; rate limits off, Slack's
tier budget raised as ``revtops demo`` does) in a thread and, for each backend, in a fresh
store (DuckDB: a temporary file; PostgreSQL: a database ``revtops_bench_<hex>`` created through
``--postgres-url`` and dropped at the end), runs what ``revtops demo --no-app`` runs: HubSpot,
Slack and Google Calendar into one organization, Salesforce (the same company seen by the other
CRM) into a second one. Per provider: wall time, records fetched and records/s, the time of
identity resolution and of planner-statistics refreshes inside it (``SyncResult``), and what
resolution examined. Then, once, a full resolution of the first organization beside the
incremental one its last sync ran. Figures are printed beside their goals (issue 13).

This is the first part of issue 13's ``bench/scale.py``: scale 10, the incremental re-sync,
the query timings and peak RSS are not measured yet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from revtops_kernel.resolve import resolve_identities
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_store
from revtops_kernel.sync import SyncResult, run_sync
from revtops_sandbox import SandboxServer

ORG = "bench"
OTHER_ORG = "bench-salesforce"
PROVIDERS = ("hubspot", "slack", "google_calendar", "salesforce")
# Goals of issue 13, checked on what this run measures.
RESOLUTION_SHARE_GOAL = 0.05  # of each sync's wall time
POSTGRES_OVER_DUCKDB_GOAL = 1.5  # four-provider wall time, same run


@dataclass
class ProviderFigures:
    provider: str
    status: str
    wall_s: float
    fetched: int
    written: int
    resolution_s: float
    statistics_s: float
    participants_examined: int
    activities_examined: int
    analyzed: dict[str, int] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.fetched / self.wall_s if self.wall_s else 0.0


@dataclass
class BackendFigures:
    backend: str
    upgrade_s: float
    providers: list[ProviderFigures]
    full_resolution_s: float
    full_participants_examined: int

    @property
    def wall_s(self) -> float:
        return sum(p.wall_s for p in self.providers)


def environment(sandbox: SandboxServer, db: Database) -> dict[str, str]:
    url = db.url.render_as_string(hide_password=False)
    env = {"REVTOPS_DATABASE_URL": url, "REVTOPS_SLACK_REQUESTS_PER_MINUTE": "6000"}
    for provider, variable, value in (
        ("hubspot", "REVTOPS_HUBSPOT_BASE_URL", sandbox.hubspot_base_url),
        ("salesforce", "REVTOPS_SALESFORCE_INSTANCE_URL", sandbox.salesforce_instance_url),
        ("slack", "REVTOPS_SLACK_BASE_URL", sandbox.slack_base_url),
        ("google_calendar", "REVTOPS_GOOGLE_CALENDAR_BASE_URL", sandbox.google_calendar_base_url),
    ):
        env[variable] = value
        env[f"REVTOPS_{provider.upper()}_TOKEN"] = sandbox.token
    return env


def figures_of(result: SyncResult) -> ProviderFigures:
    report = result.resolution
    return ProviderFigures(
        provider=result.provider,
        status=result.status if result.ok else f"{result.status}: {result.error}",
        wall_s=result.seconds,
        fetched=result.counts.fetched,
        written=result.counts.upserted,
        resolution_s=result.resolution_seconds,
        statistics_s=result.statistics_seconds,
        participants_examined=report.participants_examined if report else 0,
        activities_examined=report.activities_examined if report else 0,
        analyzed=result.analyzed,
    )


def run_backend(db: Database, sandbox: SandboxServer) -> BackendFigures:
    started = time.monotonic()
    upgrade(db)
    upgrade_s = time.monotonic() - started
    settings: Settings = load_settings(**environment(sandbox, db))
    providers = []
    for provider in PROVIDERS:
        org = OTHER_ORG if provider == "salesforce" else ORG
        result = run_sync(db, settings, provider, org=org)
        providers.append(figures_of(result))
        print(f"  {describe(providers[-1])}", flush=True)
    started = time.monotonic()
    with db.begin() as conn:
        full = resolve_identities(conn, ORG, full=True)
    return BackendFigures(
        db.backend.value,
        upgrade_s,
        providers,
        time.monotonic() - started,
        full.participants_examined,
    )


def describe(p: ProviderFigures) -> str:
    share = p.resolution_s / p.wall_s if p.wall_s else 0.0
    verdict = "ok" if share <= RESOLUTION_SHARE_GOAL else "MISSED"
    return (
        f"{p.provider:<16} {p.wall_s:7.1f} s  {p.fetched:>8,} records  {p.records_per_s:8,.0f}/s  "
        f"resolution {p.resolution_s:5.2f} s ({share:.1%} of the sync; goal <= "
        f"{RESOLUTION_SHARE_GOAL:.0%}: {verdict}, {p.participants_examined:,} participants "
        f"examined)  statistics {p.statistics_s:5.2f} s  [{p.status}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("duckdb", "postgresql", "all"), default="all")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    backends = ("duckdb", "postgresql") if args.backend == "all" else (args.backend,)
    results: list[BackendFigures] = []
    print(f"sandbox at scale {args.scale}, seed {args.seed}", flush=True)
    with SandboxServer(scale=args.scale, seed=args.seed) as sandbox:
        for backend in backends:
            print(f"{backend}:", flush=True)
            with scratch_store(backend, args.postgres_url, prefix="revtops_bench") as db:
                figures = run_backend(db, sandbox)
            results.append(figures)
            print(
                f"  four providers {figures.wall_s:.1f} s (upgrade {figures.upgrade_s:.1f} s); "
                f"full resolution of {ORG}: {figures.full_resolution_s:.2f} s over "
                f"{figures.full_participants_examined:,} participants",
                flush=True,
            )
    by_backend = {r.backend: r for r in results}
    if {"duckdb", "postgresql"} <= by_backend.keys():
        ratio = by_backend["postgresql"].wall_s / by_backend["duckdb"].wall_s
        verdict = "ok" if ratio <= POSTGRES_OVER_DUCKDB_GOAL else "MISSED"
        print(
            f"PostgreSQL / DuckDB wall time: {ratio:.2f}x "
            f"(goal <= {POSTGRES_OVER_DUCKDB_GOAL}x at scale 10: {verdict})"
        )
    if args.json:
        payload: dict[str, Any] = {
            "scale": args.scale,
            "seed": args.seed,
            "backends": [
                {**asdict(r), "wall_s": r.wall_s, "providers": [asdict(p) for p in r.providers]}
                for r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
