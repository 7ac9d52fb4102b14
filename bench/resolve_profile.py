"""Where one identity resolution's time goes, statement by statement (PostgreSQL).

    # 1. the store as one provider's incremental re-sync after 1% changes leaves it just before
    #    its resolution (the sandbox and changes as bench/resync.py makes them)
    python bench/resolve_profile.py prepare --scale 10 --store revtops_s10 --pre resshare_pre
                                   [--provider hubspot] [--seed 1] [--org default]
    # 2. resolve copies of it, each statement timed (client wall), optionally with its plan
    #    (auto_explain, ANALYZE and BUFFERS, sent to this client as notices)
    python bench/resolve_profile.py resolve --pre resshare_pre [--runs 3] [--explain]
                                   [--org default] [--full]
    # 3. a provider's first sync (Calendar's) into copies of a store without it, in this
    #    process: resolve_batch's wall, client CPU and its backend's CPU, optionally profiled
    python bench/resolve_profile.py first --scale 10 --store resshare_nocal10
                                   [--provider google_calendar] [--runs 1] [--profile FILE]

``prepare`` copies ``--store`` (CREATE DATABASE TEMPLATE: nobody may be connected to it), serves
the sandbox (``--scale``/``--seed``) with bench/scale.py's ``change_one_percent``, and runs the
provider's sync into the copy with ``sync._resolve`` left out; the copy is then ``--pre``.
``resolve`` copies ``--pre`` per run and times ``resolve.resolve_identities`` on it (the code on
PYTHONPATH), dropping the copy afterwards. ``first`` copies ``--store`` per run (a store the
provider never synced: for Calendar, the lead's store minus its Calendar rows, cursor and runs)
and runs the provider's sync into the copy. Load average is printed beside every figure.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from _common import cpu_seconds, progress
from sqlalchemy import create_engine, event, text

from revtops_kernel.store import Database

BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"


def admin(statement: str) -> None:
    engine = create_engine(f"{BASE}/postgres", isolation_level="AUTOCOMMIT")
    for attempt in range(30):
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
            break
        except Exception as exc:  # a template in use: retry
            if attempt == 29 or "being accessed" not in str(exc):
                raise
            time.sleep(2)
    engine.dispose()


def copy(source: str, target: str) -> None:
    admin(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')


def prepare(args: argparse.Namespace) -> None:
    from scale import change_one_percent, environment_for

    import revtops_kernel.sync as sync_module
    from revtops_kernel.settings import load_settings
    from revtops_sandbox import SandboxServer

    copy(args.store, args.pre)
    with SandboxServer(scale=args.scale, seed=args.seed) as sandbox:
        db = Database(f"{BASE}/{args.pre}")
        environment = environment_for(sandbox, db)
        changes = change_one_percent(sandbox)
        print(f"changes: {changes}", flush=True)
        settings = load_settings(**environment)
        sync_module._resolve = lambda *a, **k: None  # type: ignore[assignment]
        started = time.monotonic()
        result = sync_module.run_sync(db, settings, args.provider, org=args.org)
        print(
            f"{args.provider} sync without its resolution: {result.status}, "
            f"{time.monotonic() - started:.1f} s, {result.counts.upserted:,} written",
            flush=True,
        )
        db.dispose()


class Timer:
    """Each statement's wall time on the connection (cursor execute to its end)."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, int, str]] = []
        self._started = 0.0

    def before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self._started = time.perf_counter()

    def after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seconds = time.perf_counter() - self._started
        self.rows.append((seconds, cursor.rowcount, " ".join(statement.split())))


def resolve(args: argparse.Namespace) -> None:
    from revtops_kernel.resolve import resolve_identities

    for run in range(args.runs):
        target = f"{args.pre}_run"
        copy(args.pre, target)
        db = Database(f"{BASE}/{target}")
        timer = Timer()
        notices: list[str] = []
        event.listen(db.engine, "before_cursor_execute", timer.before)
        event.listen(db.engine, "after_cursor_execute", timer.after)
        with db.begin() as conn:
            if args.explain:
                raw = conn.connection.driver_connection
                raw.add_notice_handler(partial(_notice, notices))
                conn.exec_driver_sql(
                    "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
                    "SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; "
                    "SET auto_explain.log_nested_statements = on; "
                    "SET auto_explain.log_level = notice"
                )
            # The session's own statistics start, and the server CPU of this backend.
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            timer.rows.clear()
            cpu0, server0 = cpu_seconds(), _backend_cpu(pid)
            started = time.perf_counter()
            report = resolve_identities(conn, args.org, full=args.full, analyze=False)
            wall = time.perf_counter() - started
            cpu, server = cpu_seconds() - cpu0, _backend_cpu(pid) - server0
        db.dispose()
        admin(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        print(
            f"\nrun {run + 1}: resolution {wall:.3f} s wall, client CPU {cpu:.3f} s, server CPU "
            f"{server:.3f} s, {len(timer.rows)} statements, load {os.getloadavg()[0]:.1f}; "
            f"participants examined {report.participants_examined:,}, updated "
            f"{report.participants_updated:,}, stale {report.participants_stale:,}; activities "
            f"examined {report.activities_examined:,}, updated {report.activities_updated:,}; "
            f"meetings {report.meetings_examined:,}/{report.meetings_updated:,}; written "
            f"{report.written_rows:,} {dict(report.marks_cleared)}",
            flush=True,
        )
        for seconds, rows, statement in sorted(timer.rows, reverse=True)[: args.top]:
            print(f"  {seconds * 1000:8.1f} ms {rows:>8} rows  {statement[: args.width]}")
        if args.explain:
            for notice in notices:
                if "duration" in notice:
                    print(notice)
        sys.stdout.flush()


def first(args: argparse.Namespace) -> None:
    import cProfile

    import revtops_kernel.sync as sync_module
    from revtops_kernel.settings import load_settings
    from revtops_kernel.store.database import driver_connection

    resolve_batch = sync_module.resolve_batch
    spent = {"wall": 0.0, "cpu": 0.0, "server": 0.0, "calls": 0}
    profiler = cProfile.Profile(time.process_time) if args.profile else None

    statements = Timer()

    def timed(conn: Any, *rest: Any, **kwargs: Any) -> Any:
        pid = driver_connection(conn).info.backend_pid
        server0, cpu0, wall0 = _backend_cpu(pid), time.process_time(), time.perf_counter()
        event.listen(conn, "before_cursor_execute", statements.before)
        event.listen(conn, "after_cursor_execute", statements.after)
        if profiler is not None:
            profiler.enable()
        try:
            return resolve_batch(conn, *rest, **kwargs)
        finally:
            if profiler is not None:
                profiler.disable()
            event.remove(conn, "before_cursor_execute", statements.before)
            event.remove(conn, "after_cursor_execute", statements.after)
            spent["wall"] += time.perf_counter() - wall0
            spent["cpu"] += time.process_time() - cpu0
            spent["server"] += _backend_cpu(pid) - server0
            spent["calls"] += 1

    sync_module.resolve_batch = timed  # type: ignore[assignment]
    # The sandbox in a process of its own, as bench/scale.py serves it: in this one its threads
    # would hold the interpreter's lock while the sync's batches resolve.
    context = multiprocessing.get_context("spawn")
    urls: Any = context.Queue()
    stop = context.Event()
    server = context.Process(target=_serve, args=(args.scale, args.seed, urls, stop))
    server.start()
    try:
        environment: dict[str, str] = urls.get(timeout=600)
        for run in range(args.runs):
            target = f"{args.store}_first"
            copy(args.store, target)
            db = Database(f"{BASE}/{target}")
            url = db.url.render_as_string(hide_password=False)
            settings = load_settings(**{**environment, "REVTOPS_DATABASE_URL": url})
            spent.update(wall=0.0, cpu=0.0, server=0.0, calls=0)
            statements.rows.clear()
            load0, cpu0 = os.getloadavg()[0], time.process_time()
            result = sync_module.run_sync(db, settings, args.provider, org=args.org)
            cpu = time.process_time() - cpu0
            resolution = result.resolution_seconds + result.batch_resolution_seconds
            print(
                f"\nrun {run + 1}: {args.provider} first sync {result.status}, "
                f"{result.seconds:.1f} s wall, client CPU {cpu:.1f} s, "
                f"{result.counts.upserted:,} written, load "
                f"{load0:.1f}->{os.getloadavg()[0]:.1f}; resolution {resolution:.2f} s "
                f"({100 * resolution / result.seconds:.1f}%): after the sync "
                f"{result.resolution_seconds:.2f} s, resolve_batch {spent['calls']} calls "
                f"{spent['wall']:.2f} s wall, client CPU {spent['cpu']:.2f} s, its backend's "
                f"CPU {spent['server']:.2f} s",
                flush=True,
            )
            by_kind: dict[str, list[float]] = {}
            for seconds, _, statement in statements.rows:
                by_kind.setdefault(statement[:70], []).append(seconds)
            print(f"  resolve_batch's statements (SQLAlchemy's): {len(statements.rows)}")
            for kind, times in sorted(by_kind.items(), key=lambda item: -sum(item[1])):
                print(f"  {sum(times):7.2f} s {len(times):5} x  {kind}")
            db.dispose()
            admin(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    finally:
        stop.set()
        server.join(60)
    if profiler is not None:
        profiler.dump_stats(args.profile)


def _serve(scale: float, seed: int, urls: Any, stop: Any) -> None:
    from scale import environment_for

    from revtops_sandbox import SandboxServer

    with SandboxServer(scale=scale, seed=seed) as sandbox:
        urls.put(environment_for(sandbox, Database(f"{BASE}/postgres")))
        stop.wait()


def _notice(notices: list[str], diagnostic: Any) -> None:
    notices.append(diagnostic.message_primary or "")


def _backend_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("prepare", "resolve", "first"))
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", default="revtops_s10")
    parser.add_argument("--pre", help="the database before the resolution")
    parser.add_argument("--profile", help="first: cProfile resolve_batch into this file")
    parser.add_argument("--provider", default="hubspot")
    parser.add_argument("--org", default="default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--width", type=int, default=160)
    args = parser.parse_args()
    print(
        f"bench/resolve_profile.py {args.mode} {time.strftime('%Y-%m-%d %H:%M')} UTC, "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    progress(args.mode)
    {"prepare": prepare, "resolve": resolve, "first": first}[args.mode](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
