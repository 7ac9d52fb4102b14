"""Spec validation: good specs parse; bad ones fail with a message the model can act on."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from revtops_kernel.artifacts.specs import (
    ARTIFACT_INPUT_SCHEMA,
    CHART_TYPES,
    KINDS,
    VALUE_FORMATS,
    ChartSpec,
    DashboardSpec,
    MarkdownBlock,
    ReportSpec,
    TableSpec,
    parse_spec,
)
from revtops_kernel.errors import ArtifactSpecError, RevtopsError

SQL = "SELECT stage_name, sum(amount) AS total FROM deals GROUP BY 1"


def chart(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "chart",
        "title": "Pipeline",
        "sql": SQL,
        "type": "bar",
        "x": "stage_name",
        "y": ["total"],
        **fields,
    }


def test_a_chart_parses_and_one_y_column_may_be_a_string() -> None:
    spec = parse_spec(chart(y="total", value_format="currency"))
    assert isinstance(spec, ChartSpec)
    assert spec.y == ["total"]
    assert spec.value_format == "currency"
    assert spec.columns_used() == [("x", "stage_name"), ("y", "total")]


def test_every_kind_parses() -> None:
    table = {
        "kind": "table",
        "title": "Deals",
        "sql": SQL,
        "columns": ["stage_name"],
        "labels": {"stage_name": "Stage"},
        "formats": {"total": "currency"},
    }
    report = {
        "kind": "report",
        "title": "Q1",
        "markdown": "# Summary",
        "blocks": [chart(), {"kind": "markdown", "text": "Then:"}, table],
    }
    dashboard = {
        "kind": "dashboard",
        "title": "Board",
        "items": [chart(), table],
        "grid_columns": 3,
    }
    assert isinstance(parse_spec(table), TableSpec)
    parsed_report = parse_spec(report)
    assert isinstance(parsed_report, ReportSpec)
    assert [type(block) for block in parsed_report.blocks] == [ChartSpec, MarkdownBlock, TableSpec]
    parsed_dashboard = parse_spec(dashboard)
    assert isinstance(parsed_dashboard, DashboardSpec)
    assert parsed_dashboard.grid_columns == 3


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"title": "x"}, "kind: required, one of chart, table, report, dashboard"),
        ({"kind": "graph", "title": "x"}, "kind: 'graph' is not allowed here"),
        (chart(type="donut"), "type: Input should be 'bar', 'stacked_bar'"),
        (chart(colour="red"), "colour: 'colour' is not a field of a chart"),
        (chart(y=[]), "chart: a bar chart needs y: one or more numeric result columns"),
        (chart(type="pie", y=["a", "b"]), "a pie chart takes exactly one y column"),
        (chart(type="histogram"), "a histogram counts the values of x; leave y out"),
        (chart(y=["a", "b"], series="owner"), "use either several y columns"),
        (chart(bins=10), "bins applies to histograms only"),
        (chart(title=""), "title: String should have at least 1 character"),
        (chart(currency="dollars"), "currency: String should match pattern"),
        ({"kind": "report", "title": "r"}, "report: a report needs markdown, blocks, or both"),
        (chart(verified_query={"name": "win_rate"}), "give exactly one of sql (one SELECT) or"),
        (chart(sql=None), "give exactly one of sql (one SELECT) or verified_query"),
        (
            {
                "kind": "dashboard",
                "title": "d",
                "items": [chart(), {"kind": "markdown", "text": "x"}],
            },
            "items[1].kind: 'markdown' is not allowed here; use one of 'chart', 'table'",
        ),
        (
            {"kind": "dashboard", "title": "d", "items": [chart(), chart(x=None)]},
            "items[1].x: Input should be a valid string",
        ),
        (
            {
                "kind": "report",
                "title": "r",
                "blocks": [{"kind": "table", "title": "t", "sql": SQL, "colour": 1}],
            },
            "blocks[0].colour: 'colour' is not a field of a table",
        ),
        ({"kind": "dashboard", "title": "d", "items": []}, "items: List should have at least 1"),
    ],
)
def test_bad_specs_say_which_field_and_what_is_allowed(spec: dict[str, Any], expected: str) -> None:
    with pytest.raises(ArtifactSpecError) as caught:
        parse_spec(spec)
    assert expected in str(caught.value)
    assert isinstance(caught.value, RevtopsError)


def test_a_spec_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ArtifactSpecError, match="must be a JSON object, got list"):
        parse_spec([chart()])  # type: ignore[arg-type]


def test_the_tool_schema_matches_the_models() -> None:
    properties = ARTIFACT_INPUT_SCHEMA["properties"]
    assert ARTIFACT_INPUT_SCHEMA["type"] == "object"
    assert ARTIFACT_INPUT_SCHEMA["required"] == ["kind", "title"]
    assert properties["kind"]["enum"] == list(KINDS)
    assert properties["type"]["enum"] == list(CHART_TYPES)
    assert properties["value_format"]["enum"] == list(VALUE_FORMATS)
    assert list(CHART_TYPES) == list(typing.get_args(ChartSpec.model_fields["type"].annotation))
    fields = set()
    for model in (ChartSpec, TableSpec, ReportSpec, DashboardSpec):
        fields |= set(model.model_fields)
    assert set(properties) == fields  # every field offered, nothing offered that is refused
    part = properties["items"]["items"]["properties"]
    assert set(part) <= set(ChartSpec.model_fields) | set(TableSpec.model_fields) | {"text"}
    assert "same fields as a top-level one" in properties["items"]["items"]["description"]
    assert "$ref" not in str(ARTIFACT_INPUT_SCHEMA)  # inline: reads well in a tool definition


def test_a_stored_spec_round_trips() -> None:
    spec = parse_spec({"kind": "dashboard", "title": "d", "items": [chart(), chart(type="line")]})
    assert parse_spec(spec.model_dump(mode="json", exclude_none=True)) == spec
