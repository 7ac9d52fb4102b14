"""The ``revtops`` command. An edge: it reads the settings once and passes them down."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select

from revtops_kernel import __version__
from revtops_kernel.errors import RevtopsError, SettingsError
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.migrate import current_version
from revtops_kernel.store.schema import metadata

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.info_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
    except RevtopsError as exc:
        print(f"revtops: {exc}", file=sys.stderr)
        return 1


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
    info.set_defaults(handler=cmd_info)
    return parser


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    db = Database.from_settings(settings)
    report = upgrade(db)
    print(f"database: {db.display_url}")
    if report.created_tables:
        print(f"created {len(report.created_tables)} tables: {', '.join(report.created_tables)}")
    for column in report.added_columns:
        print(f"added column {column}")
    for migration in report.applied_migrations:
        print(f"applied migration {migration}")
    if not report.changed:
        print("schema already up to date")
    print(f"schema version {report.version}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace, settings: Settings) -> int:
    db = Database.from_settings(settings)
    facts = describe(db, settings)
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
    width = max(len(name) for name in facts["tables"])
    for name, count in facts["tables"].items():
        shown = "missing" if count is None else f"{count:,}"
        print(f"  {name:<{width}}  {shown:>12}")
    return 0


def describe(db: Database, settings: Settings) -> dict[str, Any]:
    """What ``revtops info`` reports, as data."""
    facts: dict[str, Any] = {
        "version": __version__,
        "database": db.display_url,
        "backend": db.backend.value,
        "organization": settings.org,
        "schema_version": None,
        "tables": {},
    }
    if db.is_duckdb and not Path(db.duckdb_path).exists():
        return facts  # don't create the file just to say it is empty
    facts["schema_version"] = current_version(db)
    if facts["schema_version"] is None:
        return facts
    with db.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for table in metadata.sorted_tables:
            if table.name in present:
                count = conn.execute(select(func.count()).select_from(table)).scalar_one()
                facts["tables"][table.name] = int(count)
            else:
                facts["tables"][table.name] = None
    return facts


if __name__ == "__main__":
    raise SystemExit(main())
