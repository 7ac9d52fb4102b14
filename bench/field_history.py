"""What amount and close-date history costs a sync (issue 17's deal_field_history).

    python bench/field_history.py [--scale 1] [--backends postgresql,duckdb] [--seed 7]
                                  [--postgres-url URL]

Per backend, against the sandbox company on loopback:

- HubSpot: the deals stream read in full into a fresh store with
  ``propertiesWithHistory=dealstage`` (the baseline: what the sync read before) and with
  ``dealstage,closedate,amount`` (now), in the same run; records, rows and seconds of each.
- Salesforce: a full sync, then the pass that derives deal_field_history from the
  OpportunityHistory snapshots, timed cold (its rows deleted first) and warm (a re-run, which
  writes nothing), beside the whole sync's time.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

from _common import progress
from sqlalchemy import text

import revtops_kernel.connectors.hubspot as hubspot_connector
from revtops_kernel.connectors.hubspot_streams import OBJECT_STREAM_BY_NAME
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.deal_field_history import derive_salesforce_field_history
from revtops_kernel.store.migrate import upgrade
from revtops_kernel.store.scratch import scratch_store
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer

ORG = "bench-history"


def settings_for(server: SandboxServer, db: Database) -> Settings:
    return load_settings(
        REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        REVTOPS_ORG=ORG,
        REVTOPS_HUBSPOT_BASE_URL=server.hubspot_base_url,
        REVTOPS_HUBSPOT_TOKEN=server.token,
        REVTOPS_SALESFORCE_INSTANCE_URL=server.salesforce_instance_url,
        REVTOPS_SALESFORCE_TOKEN=server.token,
    )


def count(db: Database, table: str) -> int:
    with db.connect() as conn:
        sql = f"SELECT count(*) FROM {table} WHERE organization_id = :o"
        return int(conn.execute(text(sql), {"o": ORG}).scalar_one())


def hubspot_deals(
    server: SandboxServer, backend: str, admin: str, history: tuple[str, ...]
) -> dict[str, Any]:
    """The deals stream read in full with ``history``, into a fresh store."""
    streams = dict(OBJECT_STREAM_BY_NAME)
    streams["deals"] = replace(streams["deals"], history=history)
    hubspot_connector.OBJECT_STREAM_BY_NAME = streams  # this read's history list
    try:
        with scratch_store(backend, admin, prefix="bench_history") as db:
            upgrade(db)
            started = time.perf_counter()
            result = run_sync(db, settings_for(server, db), "hubspot", streams=("deals",))
            seconds = time.perf_counter() - started
            assert result.ok, result.error
            return {
                "seconds": seconds,
                "calls": result.counts.api_calls,
                "deals": count(db, "deals"),
                "field rows": count(db, "deal_field_history"),
            }
    finally:
        hubspot_connector.OBJECT_STREAM_BY_NAME = OBJECT_STREAM_BY_NAME


def salesforce_pass(server: SandboxServer, backend: str, admin: str) -> dict[str, Any]:
    with scratch_store(backend, admin, prefix="bench_history") as db:
        upgrade(db)
        started = time.perf_counter()
        result = run_sync(db, settings_for(server, db), "salesforce")
        sync_seconds = time.perf_counter() - started
        assert result.ok, result.error
        with db.begin() as conn:
            conn.execute(text("DELETE FROM deal_field_history"))
        timings = []
        for _ in range(2):  # cold, then warm
            started = time.perf_counter()
            with db.begin() as conn:
                written = derive_salesforce_field_history(conn, ORG)
            timings.append((time.perf_counter() - started, written))
        return {
            "sync seconds": sync_seconds,
            "snapshots": count(db, "deal_stage_history"),
            "cold": timings[0],
            "warm": timings[1],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backends", default="postgresql,duckdb")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    with SandboxServer(scale=args.scale, seed=args.seed) as server:
        server.company  # noqa: B018 - generate before timing anything
        for backend in args.backends.split(","):
            progress(f"{backend}: HubSpot deals, stage history only (baseline)")
            base = hubspot_deals(server, backend, args.postgres_url, ("dealstage",))
            progress(f"{backend}: HubSpot deals, stage, close-date and amount history")
            full = ("dealstage", "closedate", "amount")
            now = hubspot_deals(server, backend, args.postgres_url, full)
            progress(f"{backend}: Salesforce sync and the field-history pass")
            sf = salesforce_pass(server, backend, args.postgres_url)
            print(f"scale {args.scale}, {backend}")
            print(
                f"  HubSpot deals stream, baseline (dealstage history): {base['seconds']:.1f} s, "
                f"{base['calls']} calls, {base['deals']} deals, {base['field rows']} field rows"
            )
            print(
                f"  HubSpot deals stream, + closedate, amount history:   {now['seconds']:.1f} s, "
                f"{now['calls']} calls, {now['deals']} deals, {now['field rows']} field rows "
                f"({now['seconds'] / base['seconds']:.2f}x)"
            )
            cold, warm = sf["cold"], sf["warm"]
            print(f"  Salesforce full sync (pass included): {sf['sync seconds']:.1f} s; pass over "
                  f"{sf['snapshots']} snapshots: cold {cold[0]:.2f} s ({cold[1]} rows), "
                  f"warm {warm[0]:.2f} s ({warm[1]} rows)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
