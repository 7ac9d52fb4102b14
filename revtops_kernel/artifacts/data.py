"""Rows for an artifact: each part's SQL through the guard, then checked and made plottable.

Charts need every row of their query (a cut-off chart would mislead), so a chart query that
returns more than ``MAX_CHART_ROWS`` rows is an error asking for aggregation; tables keep the
first ``MAX_TABLE_ROWS`` rows and say they were cut.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from revtops_kernel.agent.guard import run_guarded
from revtops_kernel.artifacts.specs import ChartSpec, TableSpec
from revtops_kernel.errors import ArtifactSpecError
from revtops_kernel.store.database import Database
from revtops_kernel.store.query import QueryResult
from revtops_kernel.timeutil import iso_z

MAX_CHART_ROWS = 5_000
MAX_TABLE_ROWS = 2_000
MAX_TRACES = 20


@dataclass(frozen=True)
class PartData:
    frame: pd.DataFrame  # plottable: numbers as floats, times as naive UTC, ids as text
    truncated: bool  # more rows existed than were fetched (tables only)


def run_part_query(db: Database, part: ChartSpec | TableSpec, *, org: str, path: str) -> PartData:
    """Run the part's query as ``org`` through the SQL guard and check the columns it names.

    A verified query runs by name through ``agent.verified`` (the same guard underneath).
    """
    limit = MAX_CHART_ROWS if isinstance(part, ChartSpec) else MAX_TABLE_ROWS
    result: QueryResult
    if part.verified_query is not None:
        from revtops_kernel.agent.verified import run_verified

        ref = part.verified_query
        result = run_verified(db, ref.name, dict(ref.params), org=org, max_rows=limit)
    else:
        result = run_guarded(db, part_sql(part), org=org, max_rows=limit)
    if isinstance(part, ChartSpec) and result.truncated:
        raise ArtifactSpecError(
            f"the query returned more than {MAX_CHART_ROWS} rows, too many to chart; "
            "aggregate in SQL (GROUP BY, date_trunc) or keep the top rows (ORDER BY ... LIMIT)",
            field=_join(path, "sql"),
        )
    # Tables keep dates and booleans as they are; charts need a time axis and numbers.
    frame = plottable(result.frame, for_chart=isinstance(part, ChartSpec))
    check_columns(part, frame, path=path)
    return PartData(frame, result.truncated)


def part_sql(part: ChartSpec | TableSpec) -> str:
    """The SQL behind a part: its own, or the trusted text of its verified query."""
    if part.verified_query is not None:
        from revtops_kernel.agent.verified import VERIFIED_QUERIES

        query = VERIFIED_QUERIES.get(part.verified_query.name)
        return query.sql if query is not None else ""
    return part.sql or ""


def check_columns(part: ChartSpec | TableSpec, frame: pd.DataFrame, *, path: str = "") -> None:
    """Every column the spec names is in the result; chart values are numbers."""
    returned = [str(column) for column in frame.columns]
    for field, column in part.columns_used():
        if column not in returned:
            raise ArtifactSpecError(
                f"column {column!r} is not in the query's result; the query returned: "
                f"{', '.join(returned) or '(no columns)'}. Use one of those names, or alias "
                f"the column in the SQL (... AS {column})",
                field=_join(path, field),
            )
    if not isinstance(part, ChartSpec) or frame.empty:  # no rows: no values to type-check
        return
    numeric = list(part.y) if part.type != "histogram" else [part.x]
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            axis = "x" if part.type == "histogram" else "y"
            raise ArtifactSpecError(
                f"column {column!r} holds {_kind_of_values(frame[column])}, not numbers; {axis} "
                "must be numeric (cast in SQL, or swap x and y)",
                field=_join(path, axis),
            )
    if part.series and frame[part.series].nunique(dropna=False) > MAX_TRACES:
        count = frame[part.series].nunique(dropna=False)
        raise ArtifactSpecError(
            f"series column {part.series!r} has {count} distinct values; at most {MAX_TRACES} "
            "fit in one chart: keep the top ones in SQL or group the rest as 'Other'",
            field=_join(path, "series"),
        )


def _kind_of_values(column: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(column):
        return "dates or times"
    return "text" if column.dtype == object or pd.api.types.is_string_dtype(column) else "values"


def plottable(frame: pd.DataFrame, *, for_chart: bool = True) -> pd.DataFrame:
    """Decimals to floats, aware times to naive UTC, UUIDs to text; for charts also dates to
    datetimes and booleans to 0/1."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            out[name] = column.dt.tz_convert("UTC").dt.tz_localize(None)
        elif column.dtype == object:
            out[name] = _plottable_objects(column, for_chart)
        elif for_chart and pd.api.types.is_bool_dtype(column):
            out[name] = column.astype("int64")
    return out


def _plottable_objects(column: pd.Series, for_chart: bool) -> pd.Series:
    values = column.dropna()
    if values.empty:
        return column
    numbers = all(isinstance(value, decimal.Decimal | int | float) for value in values)
    if numbers and (for_chart or not any(isinstance(value, bool) for value in values)):
        return pd.to_numeric(column.map(_decimal_to_float), errors="coerce")
    if all(isinstance(value, dt.datetime) for value in values):
        return pd.to_datetime(column, utc=True).dt.tz_localize(None)
    if for_chart and all(isinstance(value, dt.date) for value in values):
        return pd.to_datetime(column)
    if any(isinstance(value, uuid.UUID) for value in values):
        return column.map(lambda value: None if value is None else str(value))
    return column


def _decimal_to_float(value: Any) -> Any:
    return float(value) if isinstance(value, decimal.Decimal) else value


def json_value(value: Any) -> Any:
    """One cell as JSON: ISO 8601 Z times, numbers as numbers, NaN and NaT as null."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return iso_z(value)  # naive values are UTC by construction (see ``plottable``)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bool | int | str):
        return value
    return str(value)


def json_rows(frame: pd.DataFrame, limit: int | None = None) -> list[list[Any]]:
    subset = frame if limit is None else frame.head(limit)
    return [[json_value(value) for value in row] for row in subset.itertuples(index=False)]


def table_view(part: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a table shows, in order, under their labels."""
    shown = frame[list(part.columns)] if part.columns else frame
    return shown.rename(columns={key: value for key, value in part.labels.items()})


def table_from_spec(spec: TableSpec | Mapping[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    """A table spec over the rows of its query: the chosen columns, under their labels.

    Public and free of any database, like ``figure_from_spec``: exported notebooks call it.
    """
    from revtops_kernel.artifacts.specs import parse_spec

    table = spec if isinstance(spec, TableSpec) else parse_spec(spec)
    if not isinstance(table, TableSpec):
        raise ArtifactSpecError(f"expected a table spec, got a {table.kind}")
    check_columns(table, frame)
    return table_view(table, frame)


def humanize(column: str) -> str:
    """``total_amount`` -> ``Total amount``: an axis title when the spec gives none."""
    words = column.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else column


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def distinct_in_order(values: Sequence[Any]) -> list[Any]:
    seen: dict[Any, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)
