"""A DuckDB store's incremental re-sync after 1% changes, code trees alternated on copies of one
first-synced store: does it succeed under REVTOPS_DUCKDB_MEMORY_LIMIT, and at what peak RSS.

    python bench/resync_memory.py --scale 10 --store /tmp/d1_s10.duckdb
                                  --trees old=/tmp/d1_old,new=/tmp/d1_new
                                  [--rounds 2] [--reuse] [--providers hubspot,...]
                                  [--first-per-tree]

The sandbox (``--scale``, seed 0) is served by this process. Unless ``--reuse`` finds the store,
the four providers' first sync runs into ``--store`` (a child on the last of ``--trees``, as
bench/scale.py: Salesforce into a second organization). Then 1% of everything changes
(bench/scale.py's ``change_one_percent``) and each round copies the first-synced store and
re-syncs the four providers in a child per tree (each a frozen worktree, first on PYTHONPATH),
the trees' order reversed every other round. A child reports, per provider, the status and how
much ART index memory DuckDB held pinned after each upsert (the most), and its own peak RSS
(VmHWM) and CPU time.

``--first-per-tree``: each tree makes its own first-synced store (``<store>_<name>.duckdb``,
kept with ``--reuse``), measured the same way, and re-syncs copies of it: for a change to the
schema or to the first load, whose store the other tree's code would not have made.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds, peak_rss_mib, progress, run_child
from scale import ORG, OTHER_ORG, PROVIDERS, change_one_percent, environment_for

from revtops_kernel.store import Database


def child_main(environment_file: Path, out: Path, upgrade_first: bool) -> int:
    import revtops_kernel.sync as sync_module
    from revtops_kernel.settings import load_settings
    from revtops_kernel.store import upgrade
    from revtops_kernel.store.database import driver_connection

    environment: dict[str, str] = json.loads(environment_file.read_text())
    settings = load_settings(**environment)
    db = Database.from_settings(settings)
    if upgrade_first:
        upgrade(db)
    pinned: list[float] = []
    loads: dict[str, tuple[float, int]] = {}  # table -> most ART one upsert added, its rows
    upsert = sync_module.upsert

    def art_mib(conn: Any) -> float:
        memory = driver_connection(conn).execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
            "WHERE tag = 'ART_INDEX'"
        )
        return int(memory.fetchall()[0][0]) / 2**20

    def traced(conn: Any, table: Any, rows: Any) -> Any:  # the same on either tree
        before = art_mib(conn)
        result = upsert(conn, table, rows)
        after = art_mib(conn)
        pinned.append(after)
        name = table if isinstance(table, str) else table.name
        if after - before > loads.get(name, (0.0, 0))[0]:
            stored = driver_connection(conn).execute(
                "SELECT estimated_size FROM duckdb_tables() WHERE table_name = ?", [name]
            )
            loads[name] = (after - before, int(stored.fetchall()[0][0]))
        return result

    sync_module.upsert = traced  # type: ignore[assignment]
    providers = []
    for provider in environment["PROVIDERS"].split(","):
        pinned.clear()
        loads.clear()
        cpu0 = cpu_seconds()
        result = sync_module.run_sync(
            db, settings, provider, org=OTHER_ORG if provider == "salesforce" else ORG
        )
        providers.append(
            {
                "provider": provider,
                "status": str(result.status) if result.ok else f"{result.status}: {result.error}",
                "wall_s": result.seconds,
                "cpu_s": cpu_seconds() - cpu0,
                "fetched": result.counts.fetched,
                "written": result.counts.upserted,
                "max_art_mib": max(pinned, default=0.0),
                "upserts": len(pinned),
                "peak_rss_mib": peak_rss_mib(),  # the process's so far
                "loads": sorted(loads.items(), key=lambda item: -item[1][0])[:4],
            }
        )
    base = getattr(db, "duckdb_memory_base", None)  # the base after any raise (new tree only)
    db.dispose()
    figures = {
        "providers": providers,
        "peak_rss_mib": peak_rss_mib(),
        "cpu_s": cpu_seconds(),
        "memory_base_mib": base / 2**20 if base else None,
    }
    out.write_text(json.dumps(figures))
    return 0


def print_figures(title: str, figures: dict[str, Any]) -> None:
    base = figures.get("memory_base_mib")
    print(f"\n{title}: {figures['wall_s']:.1f} s wall, client CPU {figures['cpu_s']:.1f} s, "
          f"peak RSS {figures['peak_rss_mib']:,.0f} MiB, memory_limit base at the end "
          f"{f'{base:,.0f} MiB' if base else 'n/a'}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    for p in figures["providers"]:
        print(f"  {p['provider']:<16} {p['wall_s']:7.1f} s  CPU {p['cpu_s']:6.1f} s  "
              f"{p['fetched']:>9,} fetched {p['written']:>9,} written  most ART pinned "
              f"{p['max_art_mib']:6.1f} MiB, {p['upserts']:>4} upserts, peak RSS so far "
              f"{p.get('peak_rss_mib', 0):,.0f} MiB  {p['status']}")  # fmt: skip
        loads = ", ".join(
            f"{table} +{mib:.1f} MiB of {rows:,} rows" for table, (mib, rows) in p["loads"]
        )
        print(f"{'':20}largest index loads by one upsert: {loads}")
    sys.stdout.flush()


def copy_store(source: Path, target: Path) -> None:
    for suffix in ("", ".wal"):
        src, dst = Path(f"{source}{suffix}"), Path(f"{target}{suffix}")
        dst.unlink(missing_ok=True)
        if src.exists():
            shutil.copyfile(src, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--store", type=Path, help="the first-synced store")
    parser.add_argument("--trees", default="", help="name=worktree,... (old first)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep --store if it exists")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument(
        "--first-per-tree", action="store_true", help="a first-synced store per tree"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--upgrade", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_out, args.upgrade)
    trees = [tuple(item.split("=", 1)) for item in args.trees.split(",") if "=" in item]
    if args.store is None or not trees:
        parser.error("--store and --trees are needed")
    from revtops_sandbox import SandboxServer

    print(f"bench/resync_memory.py {time.strftime('%Y-%m-%d %H:%M')} UTC: scale {args.scale:g}, "
          f"trees {trees}, load {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, "
          f"REVTOPS_DUCKDB_MEMORY_LIMIT {os.environ.get('REVTOPS_DUCKDB_MEMORY_LIMIT', 'unset')}",
          flush=True)  # fmt: skip
    run_path = args.store.with_name(args.store.stem + "_run.duckdb")
    # Each tree's first-synced store: one for all (synced by the last tree), or one per tree.
    stores = {
        name: args.store.with_name(f"{args.store.stem}_{name}.duckdb")
        if args.first_per_tree
        else args.store
        for name, _tree in trees
    }
    progress(f"scale {args.scale:g}: generating the sandbox company")
    with SandboxServer(scale=args.scale, seed=0) as sandbox:
        environment = environment_for(sandbox, Database(f"duckdb:///{args.store}"))
        environment["PROVIDERS"] = args.providers
        for name, tree in trees if args.first_per_tree else trees[-1:]:
            store = stores[name]
            if args.reuse and store.exists():
                print(f"\nfirst sync ({name} tree): reusing {store}", flush=True)
                continue
            copy_store(Path("/nonexistent"), store)  # removes a stale file and log
            progress(f"first sync ({name} tree)")
            first_env = {**environment, "REVTOPS_DATABASE_URL": f"duckdb:///{store}"}
            first = run_child(__file__, first_env, Path(tree), "--upgrade")
            print_figures(f"first sync ({name} tree)", first)
        changes = change_one_percent(sandbox)
        print(f"changes: {changes}", flush=True)
        run_env = {**environment, "REVTOPS_DATABASE_URL": f"duckdb:///{run_path}"}
        for round_ in range(args.rounds):
            for name, tree in trees if round_ % 2 == 0 else trees[::-1]:
                copy_store(stores[name], run_path)
                progress(f"round {round_ + 1}: incremental re-sync, {name} tree")
                figures = run_child(__file__, run_env, Path(tree))
                print_figures(f"round {round_ + 1} {name}: incremental re-sync", figures)
        copy_store(Path("/nonexistent"), run_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
