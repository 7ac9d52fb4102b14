"""``revtops sql "SELECT …"``: run one query through the assistant's SQL guard, print the rows.

A refused query exits 1 with the reason on stderr (the same message the model would get).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from revtops_kernel.settings import Settings

FORMATS = ("table", "csv", "json")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sql", help="run a read-only SELECT through the SQL guard and print the rows"
    )
    parser.add_argument("query", help="one SELECT statement (quote it)")
    parser.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument(
        "--max-rows", type=int, default=None, help="rows at most (default: REVTOPS_QUERY_MAX_ROWS)"
    )
    parser.set_defaults(handler=cmd_sql)


def cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.agent.guard import run_guarded
    from revtops_kernel.errors import QueryError
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store.database import Database

    if args.max_rows is not None and args.max_rows < 1:
        print("revtops sql: --max-rows must be at least 1", file=sys.stderr)
        return 2
    max_rows = args.max_rows or settings.query_max_rows
    db = Database.from_settings(settings)
    org = args.org or settings.org
    require_known_org(db, org)  # a mistyped --org is an error (exit 2), not zero rows
    try:
        result = run_guarded(
            db,
            args.query,
            org=org,
            max_rows=max_rows,
            timeout=settings.query_timeout,
        )
    except QueryError as exc:
        print(f"revtops sql: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(result.frame, args.format))
    if result.truncated:
        print(f"(showing the first {max_rows:,} rows; more exist)", file=sys.stderr)
    return 0


def render(frame: pd.DataFrame, fmt: str) -> str:
    """The rows as an aligned table, CSV, or JSON records (ISO 8601 Z times, numbers).

    Money keeps its exact value (``Decimal``) in every format: 1000.00 prints as such.
    """
    frame = frame.rename(columns=readable_column)
    if fmt == "csv":
        return str(frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ"))
    if fmt == "json":
        records = [
            {str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")
        ]
        return json.dumps(records, ensure_ascii=False) + "\n"
    if frame.empty:
        return "(no rows)\n" if len(frame.columns) else "(no columns)\n"
    shown = frame.astype(object)
    shown = shown.where(frame.notna().to_numpy(), "")  # NULL is an empty cell, not NaN/NaT
    count = f"({len(frame):,} row{'' if len(frame) == 1 else 's'})"
    return str(shown.to_string(index=False)) + f"\n{count}\n"


# DuckDB's names for unnamed aggregates, as the user wrote them.
_DUCKDB_NAMES = {"count_star()": "count(*)"}


def readable_column(name: object) -> str:
    """A column header as the user would write it (``count(*)``, not ``count_star()``)."""
    text = str(name)
    return _DUCKDB_NAMES.get(text, text)


def _json_value(value: Any) -> Any:
    """One cell as JSON: datetimes ISO 8601 in UTC with Z, decimals as numbers, NaN as null."""
    import pandas as pd

    from revtops_kernel.timeutil import iso_z

    if value is None or (not isinstance(value, list | dict | str) and bool(pd.isna(value))):
        return None
    if isinstance(value, pd.Timestamp):
        return iso_z(value.to_pydatetime())
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str | int | float | bool | list | dict):
        return value
    if hasattr(value, "item") and not isinstance(value, pd.Timedelta):  # numpy scalars
        return _json_value(value.item())
    return str(value)  # UUID, bytes, intervals
