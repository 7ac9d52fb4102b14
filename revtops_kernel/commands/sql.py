"""``revtops sql "SELECT …"``: run one query through the assistant's SQL guard, print the rows.

A refused query exits 1 with the reason on stderr (the same message the model would get).

A one-shot command pays for every import on its path, so this one prints the rows as the store
returns them (``store.query.read_rows``: Python values) and never loads pandas; ``render`` takes
a DataFrame too (``revtops ask`` prints a verified query's frame through it).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
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
    from revtops_kernel.agent.guard import guard_sql
    from revtops_kernel.errors import QueryError
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store.database import Database
    from revtops_kernel.store.query import read_rows

    if args.max_rows is not None and args.max_rows < 1:
        print("revtops sql: --max-rows must be at least 1", file=sys.stderr)
        return 2
    max_rows = args.max_rows or settings.query_max_rows
    db = Database.from_settings(settings)
    org = args.org or settings.org
    require_known_org(db, org)  # a mistyped --org is an error (exit 2), not zero rows
    try:
        # guard.run_guarded's two steps, with the rows read as Python values (no DataFrame).
        guarded = guard_sql(
            args.query, dialect=db.backend.sqlglot_dialect, org=org, max_rows=max_rows
        )
        result = read_rows(
            db, guarded.sql, org=org, max_rows=max_rows, timeout=settings.query_timeout
        )
    except QueryError as exc:
        from revtops_kernel.agent.guard_errors import in_user_terms

        # An unknown column in the terms of the query as typed, not of the guard's rewrite.
        explained = in_user_terms(exc, args.query, db.backend.sqlglot_dialect)
        print(f"revtops sql: {explained}", file=sys.stderr)
        return 1
    sys.stdout.write(render_rows(result.columns, result.rows, args.format))
    if result.truncated:
        print(f"(showing the first {max_rows:,} rows; more exist)", file=sys.stderr)
    return 0


def render(frame: pd.DataFrame, fmt: str) -> str:
    """A DataFrame's rows as ``render_rows`` prints them."""
    return render_rows([str(c) for c in frame.columns], _frame_rows(frame), fmt)


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """The rows as an aligned table, CSV, or JSON records (ISO 8601 Z times, numbers).

    Money keeps its exact value (``Decimal``) in every format: 1000.00 prints as such. NULL is
    an empty cell (table, CSV) or ``null`` (JSON).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    names = [readable_column(c) for c in columns]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_csv_cell(v) for v in row] for row in rows)
        return out.getvalue()
    if fmt == "json":
        records = [{n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in rows]
        return json.dumps(records, ensure_ascii=False) + "\n"
    if not rows:
        return "(no rows)\n" if names else "(no columns)\n"
    return _table(names, rows) + f"({len(rows):,} row{'' if len(rows) == 1 else 's'})\n"


def _table(names: list[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns two spaces apart; numbers right-aligned (headers too), the rest left-aligned."""
    cells = [[_table_cell(v) for v in row] for row in rows]
    numeric = [
        all(_is_number(row[i]) for row in rows if row[i] is not None) for i in range(len(names))
    ]
    widths = [max(len(names[i]), *(len(c[i]) for c in cells)) for i in range(len(names))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip() + "\n"

    return line(names) + "".join(line(c) for c in cells)


# DuckDB's names for unnamed aggregates, as the user wrote them.
_DUCKDB_NAMES = {"count_star()": "count(*)"}


def readable_column(name: object) -> str:
    """A column header as the user would write it (``count(*)``, not ``count_star()``)."""
    text = str(name)
    return _DUCKDB_NAMES.get(text, text)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _table_cell(value: Any) -> str:
    if _is_null(value):
        return ""
    if isinstance(value, list | dict):
        return json.dumps(_json_value(value), ensure_ascii=False)
    return str(value).replace("\n", " ")  # one line per row


def _csv_cell(value: Any) -> Any:
    if _is_null(value):
        return ""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo is not None else value
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, list | dict):
        return json.dumps(_json_value(value), ensure_ascii=False)
    return value


def _json_value(value: Any) -> Any:
    """One cell as JSON: datetimes ISO 8601 in UTC with Z, decimals as numbers, NaN as null."""
    from revtops_kernel.timeutil import iso_z

    if _is_null(value):
        return None
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)  # UUID, bytes, intervals


def _frame_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """A DataFrame's rows as the Python values the store's rows are (no NaN, NaT, numpy)."""
    return [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)]


def _plain(value: Any) -> Any:
    import pandas as pd

    if pd.api.types.is_scalar(value) and bool(pd.isna(value)):
        return None  # None, NaN, NaT, pd.NA
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, pd.Timedelta):
        return value.to_pytimedelta()
    if hasattr(value, "item") and not isinstance(value, str | bytes | Decimal):
        return value.item()  # numpy scalars, 0-d arrays
    if hasattr(value, "tolist"):
        return value.tolist()  # arrays (a list column)
    return value
