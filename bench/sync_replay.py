"""The HubSpot sync's client CPU offline: captured sandbox pages replayed into ``run_sync``.

    python bench/sync_replay.py capture --scale 1 --out /tmp/hubspot-s1.pickle
    python bench/sync_replay.py run --pages /tmp/hubspot-s1.pickle --backend duckdb [--runs 3]
                                    [--profile out.prof] [--keep-store PATH]

``capture`` serves a ``SandboxServer(scale, seed)`` and runs bench/sync.py's sync (companies,
contacts, deals, pipelines; no rate budget) once, keeping every response (status, headers,
body) by method and URL. ``run`` replays them through ``httpx.MockTransport`` into ``run_sync``
in a fresh store: no sandbox and no network, so the CPU time measured is the client's alone
(JSON decoding, httpx's own work per call, normalizing, Arrow, the store's statements) and does
not move with another process's load as much as bench/sync.py's does. Each run is in its own
child process (fresh interpreter, fresh store); it prints the run's CPU seconds and records
per CPU-second. ``--keep-store`` keeps the DuckDB file (or, for PostgreSQL, the database named
by ``--postgres-url`` must be empty and is kept) for comparing stored rows before and after a
change:

    python bench/sync_replay.py compare --stores /tmp/old.duckdb /tmp/new.duckdb

``compare`` reads every synced table of two stores (DuckDB paths or database URLs) in key
order and prints, per table, the row counts and whether every column of every row is equal;
it exits non-zero on any difference.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import cpu_seconds, peak_rss_mib, progress
from pydantic import SecretStr

ORG = "bench"
STREAMS = ("companies", "contacts", "deals")


def hubspot_connector(base_url: str, token: str, http: httpx.Client) -> Any:
    """The HubSpot connector a sync uses, over ``http`` (the sandbox's, or the replay's)."""
    from revtops_kernel.connectors.credentials import StaticToken
    from revtops_kernel.connectors.hubspot import HubSpotClient, HubSpotConnector

    tokens = StaticToken("hubspot", SecretStr(token))
    return HubSpotConnector(HubSpotClient("hubspot", base_url, tokens, http, budgets={}))


def sync_streams(db: Any, connector: Any) -> Any:
    """``run_sync`` of the benchmark's streams into ``db``: what both modes time."""
    from revtops_kernel.settings import Settings
    from revtops_kernel.sync import run_sync

    return run_sync(
        db,
        Settings(_env_file=None),
        "hubspot",
        org=ORG,  # type: ignore[call-arg]
        connector=connector,
        streams=STREAMS,
    )


def capture(args: argparse.Namespace) -> None:
    from revtops_kernel.connectors.http import make_http_client
    from revtops_kernel.store import Database, upgrade
    from revtops_sandbox import SandboxServer

    pages: dict[tuple[str, str], tuple[int, list[tuple[str, str]], bytes]] = {}

    def keep(response: httpx.Response) -> None:
        response.read()
        request = response.request
        pages[(request.method, str(request.url))] = (
            response.status_code,
            list(response.headers.multi_items()),
            response.content,
        )

    with SandboxServer(scale=args.scale, seed=args.seed) as sb:
        http = make_http_client()
        http.event_hooks = {"request": [], "response": [keep]}
        connector = hubspot_connector(sb.hubspot_base_url, sb.token, http)
        db = Database(f"duckdb:///{args.out}.tmp.duckdb")
        upgrade(db)
        result = sync_streams(db, connector)
        db.dispose()
        for suffix in ("", ".wal"):
            Path(f"{args.out}.tmp.duckdb{suffix}").unlink(missing_ok=True)
        http.close()
    records = sum(result.streams[s].fetched for s in STREAMS)
    Path(args.out).write_bytes(
        pickle.dumps({"base_url": sb.hubspot_base_url, "token": sb.token, "pages": pages})
    )
    progress(f"captured {len(pages)} responses, {records:,} records -> {args.out}")


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    # Imported before the timed region, so the figure counts the sync, not its imports.
    import revtops_kernel.settings
    import revtops_kernel.sync  # noqa: F401
    from revtops_kernel.connectors.http import make_http_client
    from revtops_kernel.store import Database, upgrade

    captured = pickle.loads(Path(args.pages).read_bytes())
    pages = captured["pages"]

    def respond(request: httpx.Request) -> httpx.Response:
        status, headers, body = pages[(request.method, str(request.url))]
        return httpx.Response(status, headers=headers, content=body)

    http = make_http_client(transport=httpx.MockTransport(respond))
    connector = hubspot_connector(captured["base_url"], captured["token"], http)
    if args.backend == "duckdb":
        path = args.keep_store or f"/tmp/revtops_replay_{os.getpid()}.duckdb"
        url = f"duckdb:///{path}"
    else:
        url = args.postgres_url
    db = Database(url)
    upgrade(db)
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = sync_streams(db, connector)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    db.dispose()
    if args.backend == "duckdb" and not args.keep_store:
        for suffix in ("", ".wal"):
            Path(path + suffix).unlink(missing_ok=True)
    records = sum(result.streams[s].fetched for s in STREAMS)
    return {
        "status": str(result.status),
        "records": records,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "records_per_cpu_s": records / cpu,
        "peak_rss_mib": peak_rss_mib(),
        "api_calls": connector.stats.api_calls,
    }


def run(args: argparse.Namespace) -> None:
    for index in range(args.runs):
        command = [sys.executable, __file__, "child", "--pages", args.pages]
        command += ["--backend", args.backend, "--postgres-url", args.postgres_url or ""]
        if args.profile:
            command += ["--profile", args.profile]
        if args.keep_store:
            command += ["--keep-store", args.keep_store]
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        load = os.getloadavg()[0]
        print(
            f"{args.label} {args.backend} run {index + 1}: {figures['records']:,} records, "
            f"CPU {figures['cpu_seconds']:.2f} s, {figures['records_per_cpu_s']:,.0f} rec/CPU-s, "
            f"wall {figures['wall_seconds']:.2f} s, RSS {figures['peak_rss_mib']:.0f} MiB, "
            f"{figures['api_calls']} calls, {figures['status']}, load {load:.1f}",
            flush=True,
        )


def _store_url(store: str) -> str:
    return store if "://" in store else f"duckdb:///{store}"


def _table_digest(db: Any, table: Any) -> tuple[int, str, dict[str, Any]]:
    """(rows, SHA-256 of every row in key order, the first row of each key) of ``table``."""
    import hashlib

    from sqlalchemy import select

    digest, count, first = hashlib.sha256(), 0, {}
    with db.connect() as conn:
        rows = conn.execute(
            select(table).order_by(
                table.c.organization_id, table.c.source_system, table.c.source_id
            )
        )
        for row in rows:
            values = row._tuple()
            digest.update(repr(values).encode())
            first.setdefault(row.source_id, values)
            count += 1
    return count, digest.hexdigest(), first


def compare(args: argparse.Namespace) -> None:
    from revtops_kernel.store import Database
    from revtops_kernel.store.schema import synced_tables

    left, right = (Database(_store_url(store)) for store in args.stores)
    differ = 0
    for name, table in sorted(synced_tables().items()):
        (n1, d1, rows1), (n2, d2, rows2) = _table_digest(left, table), _table_digest(right, table)
        same = n1 == n2 and d1 == d2
        differ += not same
        note = ""
        if not same:
            changed = [
                key for key in rows1.keys() | rows2.keys() if rows1.get(key) != rows2.get(key)
            ]
            note = f" differing keys {len(changed)}, e.g. {sorted(changed)[:3]}"
        print(f"{name:28s} {n1:8,} {n2:8,} {'equal' if same else 'DIFFERENT'}{note}", flush=True)
    left.dispose()
    right.dispose()
    if differ:
        sys.exit(f"{differ} table(s) differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("capture", "run", "child", "compare"))
    parser.add_argument("--stores", nargs=2, help="compare: two DuckDB paths or database URLs")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/hubspot-pages.pickle")
    parser.add_argument("--pages", default="/tmp/hubspot-pages.pickle")
    parser.add_argument("--backend", choices=("duckdb", "postgresql"), default="duckdb")
    parser.add_argument("--postgres-url", default="")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile")
    parser.add_argument("--keep-store")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    if args.mode == "capture":
        capture(args)
    elif args.mode == "run":
        run(args)
    elif args.mode == "compare":
        compare(args)
    else:
        print(json.dumps(run_child(args)))


if __name__ == "__main__":
    main()
