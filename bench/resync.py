"""An incremental re-sync after 1% changes on copies of one first-synced store, DuckDB or
PostgreSQL, code trees alternated: where a re-sync's time goes, per provider and per step.

    python bench/resync.py --scale 10 --backend postgresql --store revtops_s10
                           --trees old=/tmp/wt_old,new=/tmp/wt_new [--rounds 2]
                           [--seed 1] [--org default] [--other-org default-salesforce]
                           [--providers hubspot,...] [--postgres-url URL]
    python bench/resync.py --scale 1 --backend duckdb --store /tmp/s1.duckdb --trees ...

``--store`` is the first-synced store: a PostgreSQL database name (copied for each round with
``CREATE DATABASE … TEMPLATE``, so nobody may be connected to it) or a DuckDB file (copied).
When it does not exist, the four providers' first sync runs into it first (a child on the last
tree; Salesforce into ``--other-org``, as ``revtops demo`` and bench/scale.py do): name the tree
with the older schema last, since an older tree refuses a store a newer one has migrated. A store
made by ``revtops demo --no-app --scale 10`` is ``--seed 1 --org default --other-org
default-salesforce`` (the defaults here); bench/scale.py's stores are seed 0, orgs ``bench`` and
``bench-salesforce``.

The sandbox (``--scale``, ``--seed``, the default anchor) is served by this process: a fresh
server over the same company, so the stored cursors (HubSpot's modification times, Salesforce's
SystemModstamps, Slack's timestamps, Calendar's sync tokens) read only what changed. Then ~1% of
everything changes (bench/scale.py's ``change_one_percent``) and each round copies the store and
re-syncs the providers in a child per tree (each a frozen worktree, first on PYTHONPATH), the
trees' order reversed every other round. A child first runs ``db upgrade`` as ``revtops sync``
does (timed apart: a tree with a newer schema migrates its copy), then prints, per provider:
wall and CPU time, the records fetched and written, the API calls, identity resolution, planner
statistics, and the rollups' refreshes (``deal_states``, ``deal_risk_facts`` and
``meeting_accounts``, each with the rows it wrote; a tree whose ``deal_states`` refresh returns
nothing shows -1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import cpu_seconds, peak_rss_mib, progress, run_child
from scale import PROVIDERS, SYNC_MODES, change_one_percent, environment_for, server_cpu_seconds

from revtops_kernel.store import Database


def child_main(environment_file: Path, out: Path) -> int:
    import threading

    import revtops_kernel.sync as sync_module
    from revtops_kernel.settings import load_settings
    from revtops_kernel.store import upgrade

    environment: dict[str, str] = json.loads(environment_file.read_text())
    settings = load_settings(**environment)
    db = Database.from_settings(settings)
    started = time.monotonic()
    upgrade(db)  # as `revtops sync` does first: a tree whose schema is newer migrates the copy
    upgrade_s = time.monotonic() - started
    mode = environment.get("SYNC_MODE", "one-at-a-time")
    alone = mode == "one-at-a-time"
    refreshes: dict[str, dict[str, tuple[float, int]]] = {}  # provider -> its refreshes

    def timed(name: str, refresh: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            report = refresh(*args, **kwargs)
            # deal_states' refresh returns its rows; the others a report with them.
            written = (
                report
                if isinstance(report, int)
                else -1
                if report is None
                else getattr(report, "written", 0)
            )
            run = kwargs.get("run") or args[1]  # deal_states' refresh takes it second
            provider = run.provider
            refreshes.setdefault(provider, {})[name] = (time.monotonic() - started, written)
            return report

        return call

    sync_module.refresh_risk_facts_after_sync = timed(
        "risk", sync_module.refresh_risk_facts_after_sync
    )
    sync_module.refresh_meeting_accounts_after_sync = timed(
        "meetings", sync_module.refresh_meeting_accounts_after_sync
    )
    sync_module.refresh_after_sync = timed(
        "states",
        sync_module.refresh_after_sync,  # store.deal_states
    )
    figures_of: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def measured(db: Database, settings: Any, provider: str, **kwargs: Any) -> Any:
        """run_sync, measured: alone, the process's CPU and its backends'; side by side, the
        sync's thread CPU (the backends' only in the child's total)."""
        clock = cpu_seconds if alone else time.thread_time
        cpu0, server0 = clock(), server_cpu_seconds(db) if alone else 0.0
        result = sync_module.run_sync(db, settings, provider, **kwargs)
        with lock:
            figures_of[provider] = {
                "provider": provider,
                "status": str(result.status) if result.ok else f"{result.status}: {result.error}",
                "wall_s": result.seconds,
                "cpu_s": clock() - cpu0,
                "server_cpu_s": server_cpu_seconds(db) - server0 if alone else 0.0,
                "fetched": result.counts.fetched,
                "written": result.counts.upserted,
                "calls": result.counts.api_calls,
                "resolution_s": result.resolution_seconds + result.batch_resolution_seconds,
                "statistics_s": result.statistics_seconds,
                "refreshes": refreshes.get(provider, {}),
            }
        return result

    providers = environment["PROVIDERS"].split(",")
    orgs = {
        p: environment["OTHER_ORG"] if p == "salesforce" else environment["ORG"] for p in providers
    }
    server0, started = server_cpu_seconds(db), time.monotonic()
    if alone:  # as before sync_all, so that frozen trees without it run too
        for provider in providers:
            measured(db, settings, provider, org=orgs[provider])
    else:
        from revtops_kernel.sync_all import SyncJob, run_syncs

        run_syncs(
            db,
            settings,
            [SyncJob(p, orgs[p]) for p in providers],
            first_loads_side_by_side=mode == "all-side-by-side",
            runner=measured,
        )
    elapsed, server_cpu = time.monotonic() - started, server_cpu_seconds(db) - server0
    db.dispose()
    figures = {
        "providers": [figures_of[p] for p in providers],
        "peak_rss_mib": peak_rss_mib(),
        "cpu_s": cpu_seconds(),
        "upgrade_s": upgrade_s,
        "syncs_s": elapsed,
        "server_cpu_s": server_cpu,
        "mode": mode,
    }
    out.write_text(json.dumps(figures))
    return 0


def first_sync_child(environment: dict[str, str], tree: Path) -> None:
    """The first sync into the store, as ``revtops demo --no-app`` runs it (db upgrade first)."""
    code = (
        "import json, sys\n"
        "from revtops_kernel.settings import load_settings\n"
        "from revtops_kernel.store import Database, upgrade\n"
        "from revtops_kernel.sync import run_sync\n"
        "env = json.loads(sys.argv[1])\n"
        "settings = load_settings(**{k: v for k, v in env.items() if k.startswith('REVTOPS_')})\n"
        "db = Database.from_settings(settings)\n"
        "upgrade(db)\n"
        "for provider in env['PROVIDERS'].split(','):\n"
        "    org = env['OTHER_ORG'] if provider == 'salesforce' else env['ORG']\n"
        "    result = run_sync(db, settings, provider, org=org)\n"
        "    print(f'first sync {provider}: {result.status} {result.seconds:.1f} s', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-c", code, json.dumps(environment)], check=True, env=env)


def print_figures(title: str, figures: dict[str, Any]) -> None:
    load = os.getloadavg()[0]
    syncs = f"syncs {figures['syncs_s']:.1f} s wall, " if "syncs_s" in figures else ""
    server = f"server CPU {figures['server_cpu_s']:.1f} s, " if "server_cpu_s" in figures else ""
    print(f"\n{title}: {syncs}child {figures['wall_s']:.1f} s wall (its start and a "
          f"{figures['upgrade_s']:.1f} s db upgrade too), client CPU {figures['cpu_s']:.1f} s, "
          f"{server}peak RSS {figures['peak_rss_mib']:,.0f} MiB, load {load:.1f}")  # fmt: skip
    alone = figures.get("mode", "one-at-a-time") == "one-at-a-time"
    cpu = "CPU s" if alone else "thr CPU"  # side by side: the sync's thread's
    columns = ("wall s", cpu, "srv CPU", "fetched", "written", "calls", "resol s", "stats s")
    header = " ".join(f"{c:>8}" for c in columns)
    print(f"  {'provider':<16} {header}  refreshes (s, rows)")
    for p in figures["providers"]:
        refreshes = ", ".join(
            f"{name} {seconds:.2f} s {rows:,}" for name, (seconds, rows) in p["refreshes"].items()
        )
        print(f"  {p['provider']:<16} {p['wall_s']:8.1f} {p['cpu_s']:8.1f} "
              f"{p['server_cpu_s']:8.1f} {p['fetched']:8,} {p['written']:8,} {p['calls']:8,} "
              f"{p['resolution_s']:8.2f} {p['statistics_s']:8.2f}  {refreshes or '-'}  "
              f"{p['status']}")  # fmt: skip
    sys.stdout.flush()


class Stores:
    """The first-synced store and its per-round copy, on either backend."""

    def __init__(self, backend: str, store: str, postgres_url: str, prefix: str = "") -> None:
        self.backend, self.store, self.postgres_url = backend, store, postgres_url
        if backend == "postgresql":
            self.copy_name = f"{prefix}{store}_resync_{os.getpid()}"
        else:
            path = Path(store)
            self.copy_name = str(path.with_name(path.stem + "_resync.duckdb"))

    def url(self, name: str) -> str:
        if self.backend == "duckdb":
            return f"duckdb:///{name}"
        base = self.postgres_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        return f"{base}/{name}"

    def _admin(self, statement: str) -> Any:
        from sqlalchemy import create_engine, text

        engine = create_engine(
            self.postgres_url.replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        with engine.connect() as conn:
            executed = conn.execute(text(statement))
            result = executed.all() if executed.returns_rows else []
        engine.dispose()
        return result

    def exists(self) -> bool:
        if self.backend == "duckdb":
            return Path(self.store).exists()
        return bool(self._admin(f"SELECT 1 FROM pg_database WHERE datname = '{self.store}'"))

    def create_first(self) -> None:
        if self.backend == "postgresql":
            self._admin(f'CREATE DATABASE "{self.store}"')

    def copy(self) -> str:
        self.drop_copy()
        if self.backend == "postgresql":
            from sqlalchemy.exc import OperationalError

            # Nobody may be connected to the template, another bench's copy neither: retry.
            deadline = time.monotonic() + 600
            while True:
                try:
                    self._admin(f'CREATE DATABASE "{self.copy_name}" TEMPLATE "{self.store}"')
                    break
                except OperationalError as exc:
                    if "being accessed" not in str(exc) or time.monotonic() > deadline:
                        raise
                    progress(f"{self.store} is in use; copying it again in 10 s")
                    time.sleep(10)
        else:
            for suffix in ("", ".wal"):
                source = Path(f"{self.store}{suffix}")
                if source.exists():
                    shutil.copyfile(source, f"{self.copy_name}{suffix}")
        return self.copy_name

    def drop_copy(self) -> None:
        if self.backend == "postgresql":
            self._admin(f'DROP DATABASE IF EXISTS "{self.copy_name}" WITH (FORCE)')
        else:
            for suffix in ("", ".wal"):
                Path(f"{self.copy_name}{suffix}").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--backend", choices=("postgresql", "duckdb"), default="postgresql")
    parser.add_argument("--store", help="first-synced store: database name or DuckDB file")
    parser.add_argument("--trees", default="", help="name=worktree,... (old first)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="the sandbox seed of the store")
    parser.add_argument("--org", default="default")
    parser.add_argument("--other-org", default="default-salesforce", help="Salesforce's org")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument(
        "--modes",
        default="one-at-a-time",
        help=f"how the children run the providers, each tree in each ({', '.join(SYNC_MODES)}; "
        "revtops-sync: as `revtops sync` does, which trees without sync_all cannot)",
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--copy-prefix", default="", help="prefix of the copies' database names")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_out)
    trees = [tuple(item.split("=", 1)) for item in args.trees.split(",") if "=" in item]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.store is None or not trees:
        parser.error("--store and --trees are needed")
    if not modes or set(modes) - set(SYNC_MODES):
        parser.error(f"--modes takes {', '.join(SYNC_MODES)}")
    # Every tree in every mode, alternated as the trees are.
    contenders = [
        (name if len(modes) == 1 else f"{name} {mode}", tree, mode)
        for name, tree in trees
        for mode in modes
    ]
    from revtops_sandbox import SandboxServer

    print(f"bench/resync.py {time.strftime('%Y-%m-%d %H:%M')} UTC: scale {args.scale:g} "
          f"{args.backend}, store {args.store}, seed {args.seed}, trees {trees}, modes {modes}, "
          f"load {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    stores = Stores(args.backend, args.store, args.postgres_url, args.copy_prefix)
    progress(f"scale {args.scale:g}: generating the sandbox company")
    with SandboxServer(scale=args.scale, seed=args.seed) as sandbox:
        environment = environment_for(sandbox, Database(stores.url(args.store)))
        environment.update(PROVIDERS=args.providers, ORG=args.org, OTHER_ORG=args.other_org)
        if not stores.exists():
            progress(f"first sync into {args.store} ({trees[-1][0]} tree)")
            stores.create_first()
            first_sync_child(environment, Path(trees[-1][1]))
        changes = change_one_percent(sandbox)
        print(f"changes: {changes}", flush=True)
        try:
            for round_ in range(args.rounds):
                for name, tree, mode in contenders if round_ % 2 == 0 else contenders[::-1]:
                    run_env = {**environment, "REVTOPS_DATABASE_URL": stores.url(stores.copy())}
                    run_env["SYNC_MODE"] = mode
                    progress(f"round {round_ + 1}: incremental re-sync, {name} tree")
                    figures = run_child(__file__, run_env, Path(tree))
                    print_figures(f"round {round_ + 1} {name}: incremental re-sync", figures)
        finally:
            stores.drop_copy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
