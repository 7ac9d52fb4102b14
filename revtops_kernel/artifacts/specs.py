"""Declarative artifact specs: what the model may ask for, and nothing that runs as code.

A spec names a chart type, columns of a query's result and labels; the query itself goes
through the SQL guard like any other. ``parse_spec`` validates a model-written dict and turns
every problem into one ``ArtifactSpecError`` whose message says which field is wrong and what
is allowed, so the model can correct the spec in its next tool call.

``ARTIFACT_INPUT_SCHEMA`` is the JSON schema of the ``create_artifact`` tool's input. It is
built from the same constants as the models (a test holds the two together), and kept flat
and inline (no ``$ref``) so it reads well in a tool definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic import model_validator as _model_validator

from revtops_kernel.errors import ArtifactSpecError

KINDS = ("chart", "table", "report", "dashboard")
CHART_TYPES = ("bar", "stacked_bar", "line", "area", "scatter", "pie", "funnel", "histogram")
VALUE_FORMATS = ("number", "integer", "currency", "percent")
ORIENTATIONS = ("vertical", "horizontal")

ChartType = Literal["bar", "stacked_bar", "line", "area", "scatter", "pie", "funnel", "histogram"]
ValueFormat = Literal["number", "integer", "currency", "percent"]

MAX_SQL_CHARS = 20_000
MAX_MARKDOWN_CHARS = 50_000
MAX_PARTS = 12  # charts and tables in one report or dashboard


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


Title = Annotated[str, Field(min_length=1, max_length=200)]
Sql = Annotated[str, Field(min_length=1, max_length=MAX_SQL_CHARS)]
Column = Annotated[str, Field(min_length=1, max_length=200)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class VerifiedQueryRef(_Spec):
    """A verified query (trusted, parameterized SQL) by name, with its parameters."""

    name: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)

    def label(self) -> str:
        given = ", ".join(f"{key}={value}" for key, value in self.params.items())
        return f"verified query {self.name}({given})"


class _Sourced(_Spec):
    """A part fed by one query: its own SQL, or a verified query."""

    sql: Sql | None = None
    verified_query: VerifiedQueryRef | None = None

    @_model_validator(mode="after")
    def _one_source(self) -> _Sourced:
        if (self.sql is None) == (self.verified_query is None):
            raise ValueError(
                "give exactly one of sql (one SELECT) or verified_query ({name, params} of a "
                "verified query)"
            )
        return self

    def source_label(self) -> str:
        """The SQL, or the verified query's name and parameters, as shown under the part."""
        if self.verified_query is not None:
            return self.verified_query.label()
        return self.sql or ""


class ChartSpec(_Sourced):
    """One chart drawn from the rows of one query."""

    kind: Literal["chart"] = "chart"
    title: Title
    type: ChartType
    x: Column
    y: list[Column] = Field(default_factory=list, max_length=10)
    series: Column | None = None
    orientation: Literal["vertical", "horizontal"] = "vertical"
    x_title: str | None = Field(default=None, max_length=200)
    y_title: str | None = Field(default=None, max_length=200)
    value_format: ValueFormat = "number"
    currency: Currency = "USD"
    bins: int | None = Field(default=None, ge=2, le=200)
    description: str | None = Field(default=None, max_length=2_000)

    @field_validator("y", mode="before")
    @classmethod
    def _one_column_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @_model_validator(mode="after")
    def _columns_fit_the_type(self) -> ChartSpec:
        if self.type == "histogram":
            if self.y:
                raise ValueError(
                    "a histogram counts the values of x; leave y out "
                    "(or use type 'bar' with a GROUP BY count in the SQL)"
                )
        elif not self.y:
            raise ValueError(f"a {self.type} chart needs y: one or more numeric result columns")
        if self.type == "pie" and (len(self.y) != 1 or self.series):
            raise ValueError("a pie chart takes exactly one y column and no series")
        if self.series and len(self.y) > 1:
            raise ValueError(
                "use either several y columns (wide rows) or one y with series (long rows), "
                "not both"
            )
        if self.bins is not None and self.type != "histogram":
            raise ValueError("bins applies to histograms only")
        return self

    def columns_used(self) -> list[tuple[str, str]]:
        """(field, column) pairs this chart reads from the query's result."""
        used = [("x", self.x)] + [("y", column) for column in self.y]
        return used + ([("series", self.series)] if self.series else [])


class TableSpec(_Sourced):
    """The rows of one query, optionally a subset of its columns, relabelled and formatted."""

    kind: Literal["table"] = "table"
    title: Title
    columns: list[Column] | None = Field(default=None, min_length=1, max_length=50)
    labels: dict[str, str] = Field(default_factory=dict)
    formats: dict[str, ValueFormat] = Field(default_factory=dict)
    currency: Currency = "USD"
    description: str | None = Field(default=None, max_length=2_000)

    def columns_used(self) -> list[tuple[str, str]]:
        used = [("columns", column) for column in self.columns or []]
        used += [("labels", column) for column in self.labels]
        return used + [("formats", column) for column in self.formats]


class MarkdownBlock(_Spec):
    """Text between the charts and tables of a report."""

    kind: Literal["markdown"] = "markdown"
    text: str = Field(min_length=1, max_length=MAX_MARKDOWN_CHARS)


Part = Annotated[ChartSpec | TableSpec, Field(discriminator="kind")]
Block = Annotated[ChartSpec | TableSpec | MarkdownBlock, Field(discriminator="kind")]


class ReportSpec(_Spec):
    """A written report: markdown, with charts and tables placed between paragraphs."""

    kind: Literal["report"] = "report"
    title: Title
    markdown: str = Field(default="", max_length=MAX_MARKDOWN_CHARS)
    blocks: list[Block] = Field(default_factory=list, max_length=2 * MAX_PARTS)

    @_model_validator(mode="after")
    def _has_content(self) -> ReportSpec:
        if not self.markdown and not self.blocks:
            raise ValueError("a report needs markdown, blocks, or both")
        if sum(1 for block in self.blocks if block.kind != "markdown") > MAX_PARTS:
            raise ValueError(f"a report holds at most {MAX_PARTS} charts and tables")
        return self


class DashboardSpec(_Spec):
    """Several charts and tables in a grid."""

    kind: Literal["dashboard"] = "dashboard"
    title: Title
    description: str | None = Field(default=None, max_length=2_000)
    items: list[Part] = Field(min_length=1, max_length=MAX_PARTS)
    grid_columns: int = Field(default=2, ge=1, le=3)


ArtifactSpec = ChartSpec | TableSpec | ReportSpec | DashboardSpec
_ADAPTER: TypeAdapter[ArtifactSpec] = TypeAdapter(
    Annotated[ArtifactSpec, Field(discriminator="kind")]
)
_TAGS = {*KINDS, "markdown"}


def parse_spec(spec: Mapping[str, Any] | ArtifactSpec) -> ArtifactSpec:
    """Validate a spec (as the model wrote it, or as stored); raise ``ArtifactSpecError``."""
    if isinstance(spec, ChartSpec | TableSpec | ReportSpec | DashboardSpec):
        return spec
    if not isinstance(spec, Mapping):
        raise ArtifactSpecError(f"the spec must be a JSON object, got {type(spec).__name__}")
    try:
        return _ADAPTER.validate_python(dict(spec))
    except ValidationError as exc:
        raise ArtifactSpecError(_explain(exc, spec)) from exc


def spec_parts(spec: ArtifactSpec) -> list[ChartSpec | TableSpec | MarkdownBlock]:
    """The charts, tables and markdown blocks of a spec, in reading order."""
    if isinstance(spec, ReportSpec):
        return list(spec.blocks)
    if isinstance(spec, DashboardSpec):
        return list(spec.items)
    return [spec]


def part_paths(spec: ArtifactSpec) -> list[str]:
    """Where each of ``spec_parts`` sits in the spec, for error messages (``items[1]``)."""
    if isinstance(spec, ReportSpec):
        return [f"blocks[{index}]" for index in range(len(spec.blocks))]
    if isinstance(spec, DashboardSpec):
        return [f"items[{index}]" for index in range(len(spec.items))]
    return [""]


def _explain(exc: ValidationError, spec: Mapping[str, Any]) -> str:
    kind = spec.get("kind")
    lines = []
    for error in exc.errors(include_url=False):
        path = _path(error["loc"])
        where = f"{path}.kind" if path else "kind"
        if error["type"] == "union_tag_invalid":
            context = error.get("ctx") or {}
            tag, expected = context.get("tag"), context.get("expected_tags", "")
            lines.append(f"{where}: {tag!r} is not allowed here; use one of {expected}")
        elif error["type"] == "union_tag_not_found":
            allowed = ", ".join(KINDS) if not path else "chart, table (report blocks: markdown)"
            lines.append(f"{where}: required, one of {allowed}")
        elif error["type"] == "extra_forbidden":
            field = path.rsplit(".", 1)[-1]
            lines.append(f"{path}: '{field}' is not a field of a {_kind_at(path, spec) or kind}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{path or kind or 'spec'}: {message}")
    return "invalid artifact spec: " + "; ".join(lines)


def _path(loc: tuple[int | str, ...]) -> str:
    """``('items', 1, 'chart', 'y')`` -> ``items[1].y`` (dropping pydantic's union tags)."""
    text = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in _TAGS and (position == 0 or isinstance(loc[position - 1], int)):
            continue
        else:
            text += f".{part}" if text else part
    return text


def _kind_at(path: str, spec: Mapping[str, Any]) -> str | None:
    """The ``kind`` of the part a path points into, to name it in a message."""
    if "[" not in path:
        return None
    container, _, rest = path.partition("[")
    index = int(rest.split("]")[0])
    parts = spec.get(container)
    if isinstance(parts, list) and index < len(parts) and isinstance(parts[index], Mapping):
        found = parts[index].get("kind")
        return str(found) if found else None
    return None


# --- the tool's input schema -------------------------------------------------------------------

_COLUMN_NOTE = "a column name exactly as the SQL returns it (alias with AS)"

_CHART_PROPERTIES: dict[str, Any] = {
    "sql": {
        "type": "string",
        "description": "chart/table: one SELECT, same rules as run_sql_query; it is re-run to "
        "re-render. Aggregate in SQL (GROUP BY) and ORDER BY the x order you want.",
    },
    "verified_query": {
        "type": "object",
        "description": "chart/table: instead of sql, a verified query {name, params} (as for "
        "run_verified_query); the artifact is then labelled verified.",
        "properties": {"name": {"type": "string"}, "params": {"type": "object"}},
        "required": ["name"],
    },
    "type": {"type": "string", "enum": list(CHART_TYPES), "description": "chart only."},
    "x": {
        "type": "string",
        "description": f"chart: {_COLUMN_NOTE} for the categories or time axis (pie: slice "
        "labels; funnel: stages; histogram: the numeric column to bin).",
    },
    "y": {
        "type": "array",
        "items": {"type": "string"},
        "description": "chart: numeric column(s), one trace each (pie: exactly one; histogram: "
        "omit).",
    },
    "series": {
        "type": "string",
        "description": "chart: optional column whose values split one y into traces "
        "(long rows: x, series, y). Not with several y.",
    },
    "orientation": {
        "type": "string",
        "enum": list(ORIENTATIONS),
        "description": "bar and stacked_bar: horizontal puts categories on the left.",
    },
    "x_title": {"type": "string"},
    "y_title": {"type": "string"},
    "value_format": {
        "type": "string",
        "enum": list(VALUE_FORMATS),
        "description": "how y values read; percent expects fractions (0.25 = 25%).",
    },
    "currency": {"type": "string", "description": "ISO code for currency values; default USD."},
    "bins": {"type": "integer", "description": "histogram: number of bins."},
}
_TABLE_PROPERTIES: dict[str, Any] = {
    "columns": {
        "type": "array",
        "items": {"type": "string"},
        "description": "table: columns to show, in order (default: all).",
    },
    "labels": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "table: column -> header label.",
    },
    "formats": {
        "type": "object",
        "additionalProperties": {"type": "string", "enum": list(VALUE_FORMATS)},
        "description": "table: column -> value format.",
    },
}
# Parts of reports and dashboards take the very fields of a top-level chart or table; saying so
# instead of repeating them keeps the tool definition about half as long.
_PART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A chart or table with the same fields as a top-level one (kind, title, "
    "sql, type, x, y, ...). In report blocks also {kind: markdown, text}.",
    "properties": {
        "kind": {"type": "string", "enum": ["chart", "table", "markdown"]},
        "title": {"type": "string"},
        "sql": {"type": "string"},
        "text": {"type": "string", "description": "markdown block: its text."},
    },
    "required": ["kind"],
}

ARTIFACT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A declarative artifact saved with the SQL behind it. Every chart and "
    "table carries its own SQL, fed through the same guard as run_sql_query.",
    "properties": {
        "kind": {
            "type": "string",
            "enum": list(KINDS),
            "description": "chart: one chart of one query; table: the rows of one query; "
            "report: markdown with charts/tables in between (blocks); dashboard: charts/tables "
            "in a grid (items).",
        },
        "title": {"type": "string", "description": "Shown above the artifact."},
        **_CHART_PROPERTIES,
        **_TABLE_PROPERTIES,
        "description": {"type": "string", "description": "chart/table/dashboard: a caption."},
        "markdown": {"type": "string", "description": "report: the text before its blocks."},
        "blocks": {
            "type": "array",
            "items": _PART_SCHEMA,
            "description": "report: charts, tables and markdown blocks, in order.",
        },
        "items": {
            "type": "array",
            "items": _PART_SCHEMA,
            "description": f"dashboard: 1-{MAX_PARTS} charts/tables, each with title and sql.",
        },
        "grid_columns": {"type": "integer", "description": "dashboard: 1-3 columns, default 2."},
    },
    "required": ["kind", "title"],
}
