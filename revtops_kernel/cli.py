"""The ``revtops`` command. An edge: it reads the settings once and passes them down."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revtops_kernel import __version__
from revtops_kernel.errors import RevtopsError, SettingsError, UnknownOrganizationError
from revtops_kernel.providers import ALL_PROVIDERS
from revtops_kernel.settings import Settings, load_settings

if TYPE_CHECKING:
    from revtops_kernel.store import Database
    from revtops_kernel.sync import SyncResult

Command = Callable[[argparse.Namespace, Settings], int]

# Command groups that live in their own module, each with ``register(commands)`` adding its
# subparser and a handler. Registering only declares options: a module imports what its handler
# needs inside the handler, so that `revtops --help` and `revtops info` start fast.
COMMAND_MODULES: tuple[str, ...] = (
    "revtops_kernel.commands.app",
    "revtops_kernel.commands.sql",
    "revtops_kernel.commands.workflows",
    "revtops_kernel.commands.scheduler",
    "revtops_kernel.commands.worker",
    "revtops_kernel.commands.ask",
    "revtops_kernel.commands.export",
    "revtops_kernel.commands.listing",
    "revtops_kernel.commands.notebooks",
    "revtops_kernel.commands.quotas",
    "revtops_kernel.commands.deals",
    "revtops_kernel.commands.usage",
    "revtops_kernel.commands.status",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.info_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _plain_store_notices()
    handler: Command | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        settings = load_settings()
        return handler(args, settings)
    except SettingsError as exc:
        print(f"revtops: configuration error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `revtops info | head`: the reader left; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except UnknownOrganizationError as exc:  # bad input, like a bad setting
        print(f"revtops: {exc}", file=sys.stderr)
        return 2
    except RevtopsError as exc:
        print(f"revtops: {exc}", file=sys.stderr)
        return 1


def _plain_store_notices() -> None:
    """The store's notices (waiting for a locked DuckDB file) as one plain stderr line."""
    store_log = logging.getLogger("revtops_kernel.store.database")
    if not any(isinstance(h, _StderrLines) for h in store_log.handlers):
        handler = _StderrLines()
        handler.setFormatter(logging.Formatter("revtops: %(message)s"))
        store_log.addHandler(handler)
        store_log.propagate = False  # not twice (the root handler's format has a timestamp)


class _StderrLines(logging.Handler):
    """Writes to the current ``sys.stderr`` (not the one at setup, which tests replace)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")
        sys.stderr.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revtops", description="Revtops Workbench: a revenue copilot built around Jupyter."
    )
    parser.add_argument("--version", action="version", version=f"revtops {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log", dest="info_log", action="store_true", help="info logging")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    db = commands.add_parser("db", help="manage the database schema")
    db_commands = db.add_subparsers(title="db commands", metavar="DB_COMMAND")
    up = db_commands.add_parser("upgrade", help="create or migrate the schema (idempotent)")
    up.set_defaults(handler=cmd_db_upgrade)

    info = commands.add_parser("info", help="version, database in use, tables and row counts")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--org", help="count this organization's rows (default: REVTOPS_ORG)")
    info.add_argument(
        "--all", action="store_true", help="count the rows of every organization together"
    )
    info.set_defaults(handler=cmd_info)

    sync = commands.add_parser("sync", help="sync CRM data into the store")
    sync.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    sync.add_argument(
        "--provider", choices=[*ALL_PROVIDERS, "all"], default="all", help="which CRM to sync"
    )
    sync.add_argument("--full-refresh", action="store_true", help="re-read everything")
    sync.add_argument(
        "--create",
        action="store_true",
        help="sync into a new organization even if its id is close to a known one",
    )
    sync.add_argument(
        "--stream", action="append", dest="streams", help="only this stream (repeatable)"
    )
    sync.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="sync the providers one after the other (default: incremental syncs side by side, "
        "first loads one at a time beside them)",
    )
    sync.set_defaults(handler=cmd_sync)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    _register_plugins(commands)
    return parser


# Commands another distribution adds through this entry-point group (the sandbox's `demo`,
# `sandbox` and `eval`); the product never imports them by name.
PLUGIN_GROUP = "revtops.commands"
SANDBOX_COMMANDS = {
    "demo": "start the sandbox, connect the default org to it and sync everything",
    "sandbox": "the local emulation of the providers' APIs",
    "eval": "run the golden set against the sandbox's ground truth",
}
SANDBOX_INSTALL_HINT = "pip install 'revtops-kernel[sandbox]'"


def _register_plugins(commands: argparse._SubParsersAction) -> None:
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=PLUGIN_GROUP):
        entry_point.load()(commands)
    for name, help_text in SANDBOX_COMMANDS.items():
        if name not in commands.choices:
            # Any arguments are taken (no option parsing), so the answer is the install hint.
            missing = commands.add_parser(
                name, help=f"{help_text} (needs the sandbox extra)", prefix_chars="\0"
            )
            missing.add_argument("arguments", nargs="*", help=argparse.SUPPRESS)
            missing.set_defaults(handler=_needs_sandbox(name))


def _needs_sandbox(name: str) -> Command:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        print(
            f"revtops {name}: needs the sandbox, which is not installed; {SANDBOX_INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2

    return handler


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.store import Database, upgrade

    db = Database.from_settings(settings)
    report = upgrade(db)
    print(f"database: {db.display_url}")
    if report.created_tables:
        print(f"created {len(report.created_tables)} tables: {', '.join(report.created_tables)}")
    for column in report.added_columns:
        print(f"added column {column}")
    for migration in report.applied_migrations:
        print(f"applied migration {migration}")
    for index in report.dropped_indexes:
        print(f"dropped retired index {index}")
    for index in report.created_indexes:
        print(f"created index {index}")
    for table in report.rebuilt_tables:
        print(f"rebuilt {table} without its natural key's UNIQUE index (DuckDB: id's is enough)")
    if report.vacuumed:
        print(f"built and vacuumed {', '.join(report.vacuumed)}")
    if not report.changed:
        print("schema already up to date")
    print(f"schema version {report.version}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.store import Database

    db = Database.from_settings(settings)
    every = getattr(args, "all", False)
    org = None if every else (getattr(args, "org", None) or settings.org)
    facts = describe(db, settings, org=org)
    known = facts["organizations"]
    if getattr(args, "org", None) and known and args.org not in known:
        raise UnknownOrganizationError(args.org, known)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    print(f"revtops {facts['version']}")
    print(f"database: {facts['database']} ({facts['backend']})")
    print(f"organization: {facts['organization']}")
    if facts["schema_version"] is None:
        print("schema: not created yet; run `revtops db upgrade`")
        return 0
    print(f"schema version: {facts['schema_version']}")
    if not every and known and facts["organization"] not in known:
        print(f"note: organization {facts['organization']!r} (REVTOPS_ORG) has no data yet")
    others = [name for name in known if name != facts["organization"]]
    if others:
        print(f"other organizations: {', '.join(others)}")
    if facts["tables"]:
        scope = (
            "rows of every organization"
            if every
            else f"rows of organization {facts['organization']} (--all: every organization; "
            "tables marked * are not per organization)"
        )
        print(f"{scope}:")
    width = max(len(name) for name in facts["tables"])
    for name, count in facts["tables"].items():
        shown = "missing" if count is None else f"{count:,}"
        mark = "*" if name in facts["shared_tables"] and not every else " "
        print(f"  {name:<{width}}{mark} {shown:>12}")
    return 0


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.store import Database, upgrade
    from revtops_kernel.sync import configured_providers
    from revtops_kernel.sync_all import SyncJob, run_syncs

    db = Database.from_settings(settings)
    upgrade(db)
    if args.org is not None and not _may_sync_into(db, args.org, create=args.create):
        return 2
    everything = args.provider == "all"
    providers = configured_providers(settings, db, args.org) if everything else (args.provider,)
    streams = tuple(args.streams) if args.streams else None
    jobs = [
        SyncJob(p, args.org, full_refresh=args.full_refresh, streams=streams) for p in providers
    ]
    side_by_side = not args.one_at_a_time and len(jobs) > 1
    stop = threading.Event()
    try:
        with ctrl_c_stops(stop):
            results = run_syncs(
                db,
                settings,
                jobs,
                side_by_side=side_by_side,
                progress=True,
                on_result=lambda result: _print_above_bars(summarize_sync(result)),
                stop=stop,
            )
    except KeyboardInterrupt:
        return sync_interrupted(db)
    return 0 if all(result.ok for result in results) else 1


@contextmanager
def ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C sets ``stop``: the syncs end at their next page or step; a second one
    leaves at once. Python's own handler raises KeyboardInterrupt in whatever line runs, a
    finalizer's too (a progress bar's ``__del__``), where it is swallowed ("Exception ignored
    in ...") and the sync went on to the end."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(
            "\nrevtops: stopping the sync at its next page (Ctrl-C again to leave now)",
            file=sys.stderr,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_above_bars(line: str) -> None:
    """A line on stdout above the progress bars on stderr (tqdm clears and redraws them)."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)


def sync_interrupted(db: Database) -> int:
    """Ctrl-C: record the run as interrupted (not 'running' until the next sync), one line."""
    from revtops_kernel.store.bookkeeping import interrupt_own_runs

    marked = 0
    try:
        with db.begin() as conn:
            marked = interrupt_own_runs(conn, "interrupted by the user (Ctrl-C)")
    except (Exception, KeyboardInterrupt):  # a second Ctrl-C or a lost store: still exit 130
        pass
    saved = "; what was committed is kept, the next sync resumes" if marked else ""
    print(f"\nrevtops sync: interrupted{saved}", file=sys.stderr)
    return 130


def _may_sync_into(db: Database, org: str, *, create: bool) -> bool:
    """A new organization is synced into with a note; one a letter away from a known one is
    refused as a likely typo unless ``--create`` says it is meant."""
    from revtops_kernel.known_orgs import require_known_org

    try:
        require_known_org(db, org)
    except UnknownOrganizationError as exc:
        if exc.suggestion is not None and not create:
            print(
                f"revtops sync: {exc} Pass --create to sync into a new organization {org!r}.",
                file=sys.stderr,
            )
            return False
        print(f"revtops sync: {org!r} is a new organization; syncing into it", file=sys.stderr)
    return True


def summarize_sync(result: SyncResult) -> str:
    counts = result.counts
    line = (
        f"{result.provider}: {result.status} in {result.seconds:.1f}s — {counts.fetched:,} "
        f"fetched, {counts.upserted:,} written, {counts.deleted:,} deleted, "
        f"{counts.quarantined:,} quarantined, {counts.api_calls:,} API calls, "
        f"{counts.rate_limited:,} rate limited"
    )
    return line + (f"\n  error: {result.error}" if result.error else "")


def describe(db: Database, settings: Settings, *, org: str | None = None) -> dict[str, Any]:
    """What ``revtops info`` reports, as data: row counts of ``org``, or of all (None).

    ``shared_tables`` are those without an organization column, counted whole either way.
    """
    from sqlalchemy import func, inspect, select

    from revtops_kernel.known_orgs import known_organizations
    from revtops_kernel.store.migrate import current_version
    from revtops_kernel.store.schema import metadata

    facts: dict[str, Any] = {
        "version": __version__,
        "database": db.display_url,
        "backend": db.backend.value,
        "organization": settings.org if org is None else org,
        "counted": "all" if org is None else org,
        "organizations": [],
        "schema_version": None,
        "tables": {},
        "shared_tables": [],
    }
    if db.is_duckdb and not Path(db.duckdb_path).exists():
        return facts  # don't create the file just to say it is empty
    facts["schema_version"] = current_version(db)
    if facts["schema_version"] is None:
        return facts
    facts["organizations"] = known_organizations(db)
    with db.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for table in metadata.sorted_tables:
            if "organization_id" not in table.c:
                facts["shared_tables"].append(table.name)
            if table.name not in present:
                facts["tables"][table.name] = None
                continue
            query = select(func.count()).select_from(table)
            if org is not None and "organization_id" in table.c:
                query = query.where(table.c.organization_id == org)
            facts["tables"][table.name] = int(conn.execute(query).scalar_one())
    return facts


if __name__ == "__main__":
    raise SystemExit(main())
