"""Identity resolution after each sync, replayed old against new on one store (issue 13).

    python bench/resolve_replay.py build --backend duckdb --scale 1 --store PATH_OR_URL
    python bench/resolve_replay.py run --store PATH_OR_URL --old OLD_TREE/revtops_kernel/resolve.py
                                       [--rounds 7] [--only 'incremental slack,...']

``build`` syncs the sandbox company (HubSpot, Slack, Google Calendar into ``bench``, as
``bench/scale.py`` does), changes ~1% of it (``scale.change_one_percent``) and syncs the three
again. Before each sync's resolution it records what that resolution starts from: the rows the
sync left marked (``resolution_pending``), the resolved columns of its participants and
activities as they were, and whether the resolution was a full pass. The store (a DuckDB file,
or a PostgreSQL database URL, created if missing) and ``<store>.scenarios.json`` stay.

``run`` puts each scenario back (marks set, those columns restored, committed), then runs the
resolution of the current code and of ``--old`` (another ``resolve.py``, e.g. from a frozen
worktree: only that module differs) alternately on it, each in a transaction rolled back
afterwards, so every run starts from the same rows. Printed per scenario: the median wall time
of ``resolve_identities`` (as ``run_sync`` calls it, ``analyze=False``; the commit left out),
its statements, and the run's load average. The same report from both (what changed) is
checked: a faster resolution that resolves differently is no faster.

On PostgreSQL the Slack and Calendar syncs resolve their rows in their batches
(``resolve.resolve_batch``) before this step; that part is not replayed here (``bench/scale.py``
reports both).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import progress
from scale import ORG, change_one_percent, environment_for
from sqlalchemy import Connection, event, text

from revtops_kernel.store import Database
from revtops_kernel.store.schema import PENDING_COLUMN, RESOLUTION_INPUTS

PROVIDERS = ("hubspot", "slack", "google_calendar")
# What a resolution writes, restored before each run (None: a CRM table, marks only).
RESOLVED_COLUMNS: dict[str, tuple[str, ...]] = {
    "activity_participants": ("contact_id", "account_id", "owner_id", "is_internal", "deleted_at"),
    "activities": ("owner_id", "contact_id", "account_id", "deal_id"),
}
CHUNK = 500  # rows per restoring UPDATE


def _store(location: str) -> Database:
    if "://" in location:
        return Database(location)
    return Database(f"duckdb:///{Path(location).resolve()}")


def _create_postgres_database(url: str) -> None:
    import psycopg
    from sqlalchemy import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{target.database}"')


def _state_before(conn: Connection) -> dict[str, Any]:
    """The rows the coming resolution starts from: marked ids, and the resolved columns."""
    state: dict[str, Any] = {}
    for table in RESOLUTION_INPUTS:
        columns = RESOLVED_COLUMNS.get(table, ())
        selected = ", ".join(("CAST(id AS VARCHAR)", *columns))
        rows = conn.execute(
            text(
                f"SELECT {selected} FROM {table} WHERE organization_id = :org AND {PENDING_COLUMN}"
            ),
            {"org": ORG},
        ).all()
        state[table] = [
            [None if v is None else v if isinstance(v, bool) else str(v) for v in row]
            for row in rows
        ]
    return state


CRM_STREAMS = ("owners", "pipelines", "companies", "contacts", "deals")


def build(
    backend: str,
    scale: float,
    location: str,
    seed: int,
    *,
    crm_only: bool = False,
    phases: tuple[str, ...] = ("first", "incremental"),
    providers: tuple[str, ...] = PROVIDERS,
) -> None:
    import revtops_kernel.sync as sync_module
    from revtops_kernel.settings import load_settings
    from revtops_kernel.store import upgrade
    from revtops_kernel.sync import run_sync
    from revtops_sandbox import SandboxServer

    if backend == "postgresql":
        _create_postgres_database(location)
    db = _store(location)
    scenarios: dict[str, Any] = {}
    current: list[str] = [""]
    original = sync_module._resolve

    def recording(db_: Database, result: Any, refresh: Any) -> None:
        with db_.connect() as conn:
            previous = conn.execute(
                text("SELECT own_domains FROM identity_resolutions WHERE organization_id = :o"),
                {"o": ORG},
            ).first()
            state = _state_before(conn)
        original(db_, result, refresh)
        report = result.resolution
        scenarios[current[0]] = {
            "full": previous is None or bool(report and report.full),
            "state": state,
            "sync_wall_s": None,
            "resolution_s": result.resolution_seconds,
            "batch_resolution_s": result.batch_resolution_seconds,
        }

    batches: dict[str, list[bytes]] = {}
    original_batch = sync_module.resolve_batch

    def capturing(conn: Connection, org: str, rows: Any, *args: Any, **kwargs: Any) -> Any:
        if current[0].startswith("first"):  # a first load's batches, as resolve_batch gets them
            batches.setdefault(current[0], []).append(pickle.dumps(rows))
        return original_batch(conn, org, rows, *args, **kwargs)

    sync_module._resolve = recording  # type: ignore[assignment]
    sync_module.resolve_batch = capturing  # type: ignore[assignment]
    try:
        with SandboxServer(scale=scale, seed=seed) as sandbox:
            upgrade(db)
            settings = load_settings(**environment_for(sandbox, db))
            for phase in phases:
                if phase == "incremental":
                    progress(f"changes: {change_one_percent(sandbox)}")
                for provider in providers:
                    current[0] = f"{phase} {provider}"
                    progress(f"sync: {current[0]}")
                    # --crm-only: HubSpot's CRM objects alone (what resolution reads of it).
                    streams = CRM_STREAMS if crm_only and provider == "hubspot" else None
                    result = run_sync(db, settings, provider, org=ORG, streams=streams)
                    if not result.ok:
                        raise SystemExit(f"{current[0]} failed: {result.error}")
                    scenarios[current[0]]["sync_wall_s"] = result.seconds
    finally:
        sync_module._resolve = original  # type: ignore[assignment]
        sync_module.resolve_batch = original_batch  # type: ignore[assignment]
        db.dispose()
    _scenarios_path(location).write_text(json.dumps(scenarios))
    if batches:
        _batches_path(location).write_bytes(pickle.dumps(batches))
    for name, scenario in scenarios.items():
        marked = {t: len(rows) for t, rows in scenario["state"].items() if rows}
        spent = scenario["resolution_s"] + scenario["batch_resolution_s"]
        print(f"{name:<28} full={scenario['full']!s:<5} sync {scenario['sync_wall_s']:.2f} s "
              f"resolution {spent:.3f} s (in batches {scenario['batch_resolution_s']:.3f} s; "
              f"{spent / scenario['sync_wall_s']:.1%}) marked {marked}")  # fmt: skip


def _scenarios_path(location: str) -> Path:
    """Beside the DuckDB file; for a PostgreSQL URL, in the working directory."""
    if "://" in location:
        name = location.split("?")[0].rsplit("/", 1)[-1]
        return Path(f"{name}.scenarios.json")
    return Path(f"{location}.scenarios.json")


def _batches_path(location: str) -> Path:
    return _scenarios_path(location).with_suffix(".batches.pickle")


def _restore(conn: Connection, state: dict[str, Any]) -> None:
    """Marks and resolved columns as the scenario's resolution found them."""
    for table in RESOLUTION_INPUTS:
        conn.execute(text(f"UPDATE {table} SET {PENDING_COLUMN} = FALSE WHERE {PENDING_COLUMN}"))
    for table, rows in state.items():
        columns = RESOLVED_COLUMNS.get(table, ())
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            params: dict[str, Any] = {}
            values = []
            for i, row in enumerate(chunk):
                names = [f"v{i}_{j}" for j in range(len(row))]
                params.update(zip(names, row, strict=True))
                values.append("(" + ", ".join(f":{n}" for n in names) + ")")
            aliases = ["id", *columns]
            sets = [f"{PENDING_COLUMN} = TRUE"]
            for column in columns:
                kind = {"is_internal": "BOOLEAN", "deleted_at": "TIMESTAMPTZ"}.get(column, "UUID")
                sets.append(f"{column} = CAST(v.{column} AS {kind})")
            conn.execute(
                text(
                    f"UPDATE {table} SET {', '.join(sets)} FROM (VALUES {', '.join(values)}) "
                    f"AS v({', '.join(aliases)}) WHERE {table}.id = CAST(v.id AS UUID)"
                ),
                params,
            )


def _load_old(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("revtops_resolve_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["revtops_resolve_old"] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def _counting(db: Database) -> Iterator[list[tuple[str, float]]]:
    """The statements sent meanwhile, each with its time (from the driver's call to its end)."""
    sent: list[tuple[str, float]] = []
    started: list[float] = [0.0]

    def before(*_a: Any) -> None:
        started[0] = time.perf_counter()

    def after(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        sent.append((statement, time.perf_counter() - started[0]))

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)


STATEMENT_TIMES: dict[str, dict[str, list[float]]] = {}


def _once(
    db: Database, resolve: Callable[..., Any], full: bool, label: str
) -> tuple[float, int, Any]:
    with db.connect() as conn, _counting(db) as sent:
        conn.begin()
        started = time.perf_counter()
        report = resolve(conn, ORG, full=full, analyze=False)
        seconds = time.perf_counter() - started
        conn.rollback()
    by_statement = STATEMENT_TIMES.setdefault(label, {})
    for statement, spent in sent:
        by_statement.setdefault(" ".join(statement.split())[:100], []).append(spent)
    return seconds, len(sent), report


def _essence(report: Any) -> tuple[Any, ...]:
    return (
        report.full,
        report.written_rows,
        report.participants_examined,
        report.participants_updated,
        report.participants_stale,
        report.activities_examined,
        report.activities_updated,
        report.meetings_examined,
        report.meetings_updated,
    )


def run(location: str, old_path: str, rounds: int, only: set[str], statements: int = 0) -> None:
    from revtops_kernel import resolve as new_module

    old_module = _load_old(old_path)
    scenarios = json.loads(_scenarios_path(location).read_text())
    db = _store(location)
    print(f"bench/resolve_replay.py {time.strftime('%Y-%m-%d %H:%M')} UTC, store {location}, "
          f"old {old_path}, {rounds} rounds each, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    with db.writer_held():
        for name, scenario in scenarios.items():
            if only and name not in only:
                continue
            with db.begin() as conn:
                _restore(conn, scenario["state"])
            times: dict[str, list[float]] = {"old": [], "new": []}
            counts: dict[str, int] = {}
            reports: dict[str, Any] = {}
            for i in range(rounds):
                order = (("old", old_module), ("new", new_module))
                for label, module in order if i % 2 == 0 else reversed(order):
                    seconds, count, report = _once(
                        db, module.resolve_identities, scenario["full"], label
                    )
                    times[label].append(seconds)
                    counts[label] = count
                    reports[label] = _essence(report)
            same = "same report" if reports["old"] == reports["new"] else (
                f"REPORTS DIFFER: old {reports['old']} new {reports['new']}")  # fmt: skip
            old_ms = statistics.median(times["old"]) * 1000
            new_ms = statistics.median(times["new"]) * 1000
            wall = scenario["sync_wall_s"]
            print(f"{name:<26} old {old_ms:7.1f} ms ({counts['old']:2} stmts) new {new_ms:7.1f} ms "
                  f"({counts['new']:2} stmts) {new_ms / old_ms - 1:+6.1%}; of the sync's "
                  f"{wall:.2f} s: old {old_ms / 1000 / wall:5.1%} new {new_ms / 1000 / wall:5.1%}; "
                  f"{same}; load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
            print(f"    old runs {[round(t * 1000, 1) for t in times['old']]}, new runs "
                  f"{[round(t * 1000, 1) for t in times['new']]}", flush=True)  # fmt: skip
            for label in ("old", "new") if statements else ():
                spent = STATEMENT_TIMES.pop(label, {})
                total = {k: sum(v) / rounds for k, v in spent.items()}
                for statement, ms in sorted(total.items(), key=lambda kv: -kv[1])[:statements]:
                    print(f"      {label} {ms * 1000:6.1f} ms/run  {statement}")
            STATEMENT_TIMES.clear()
    db.dispose()


def _batch_once(db: Database, module: Any, batches: list[bytes]) -> tuple[float, float, str]:
    """resolve_batch over a sync's captured batches, with fresh lookups, as a first load
    (nothing of the provider stored before), in a transaction rolled back: wall and process
    CPU seconds, and a digest of what it set on the rows."""
    everything = [pickle.loads(batch) for batch in batches]  # fresh rows: it sets them in place
    with db.connect() as conn:
        conn.begin()
        lookups = module.BatchLookups(ORG)
        lookups.bind(conn)
        systems = {
            row["source_system"] for rows in everything for row in rows.get("activities", [])
        }
        lookups.empty_before = dict.fromkeys(systems, True)
        wall, cpu = time.perf_counter(), time.process_time()
        for rows in everything:
            module.resolve_batch(conn, ORG, rows, {}, lookups)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        conn.rollback()
    digest = hashlib.sha256()
    for rows in everything:
        for table, columns in RESOLVED_COLUMNS.items():
            for row in rows.get(table, []):
                values = (row["id"], row.get(PENDING_COLUMN), *(row.get(c) for c in columns))
                digest.update(repr(values).encode())
    return wall, cpu, digest.hexdigest()[:16]


def run_batches(location: str, old_path: str, rounds: int) -> None:
    from revtops_kernel import resolve as new_module

    path = _batches_path(location)
    if not path.exists():
        return
    old_module = sys.modules.get("revtops_resolve_old") or _load_old(old_path)
    db = _store(location)
    for name, batches in pickle.loads(path.read_bytes()).items():
        results: dict[str, list[tuple[float, float, str]]] = {"old": [], "new": []}
        for i in range(rounds):
            order = (("old", old_module), ("new", new_module))
            for label, module in order if i % 2 == 0 else reversed(order):
                results[label].append(_batch_once(db, module, batches))
        wall = {k: statistics.median(r[0] for r in v) * 1000 for k, v in results.items()}
        cpu = {k: statistics.median(r[1] for r in v) * 1000 for k, v in results.items()}
        digests = {k: {r[2] for r in v} for k, v in results.items()}
        same = "same rows" if digests["old"] == digests["new"] and len(digests["old"]) == 1 else (
            f"ROWS DIFFER: {digests}")  # fmt: skip
        print(f"resolve_batch, {name} ({len(batches)} batches): wall old {wall['old']:.1f} new "
              f"{wall['new']:.1f} ms ({wall['new'] / wall['old'] - 1:+.1%}), process CPU old "
              f"{cpu['old']:.1f} new {cpu['new']:.1f} ms ({cpu['new'] / cpu['old'] - 1:+.1%}); "
              f"{same}; load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        print(f"    old wall {[round(r[0] * 1000, 1) for r in results['old']]}, new wall "
              f"{[round(r[0] * 1000, 1) for r in results['new']]}", flush=True)  # fmt: skip
    db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("build", "run"))
    parser.add_argument("--store", required=True, help="a DuckDB file path or a PostgreSQL URL")
    parser.add_argument("--backend", default="duckdb", choices=("duckdb", "postgresql"))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--old", help="the resolve.py to compare with (run)")
    parser.add_argument("--crm-only", action="store_true", help="HubSpot's CRM streams (build)")
    parser.add_argument("--phases", default="first,incremental", help="(build)")
    parser.add_argument("--providers", default=",".join(PROVIDERS), help="in order (build)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="", help="comma-separated scenario names (run)")
    parser.add_argument("--batches-only", action="store_true", help="only resolve_batch (run)")
    parser.add_argument("--statements", type=int, default=0, help="print the N costliest (run)")
    args = parser.parse_args(argv)
    if args.mode == "build":
        phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
        providers = tuple(p.strip() for p in args.providers.split(",") if p.strip())
        build(
            args.backend,
            args.scale,
            args.store,
            args.seed,
            crm_only=args.crm_only,
            phases=phases,
            providers=providers,
        )
        return 0
    if not args.old:
        parser.error("run needs --old")
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if not args.batches_only:
        run(args.store, args.old, args.rounds, only, args.statements)
    run_batches(args.store, args.old, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
