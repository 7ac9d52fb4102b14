"""Chart specs drawn as Plotly figures: every type, series, orientation and value formats."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from revtops_kernel.artifacts import figure_from_spec
from revtops_kernel.artifacts.figures import figure_json
from revtops_kernel.errors import ArtifactSpecError

ROWS = pd.DataFrame(
    {
        "stage": ["Discovery", "Proposal", "Discovery", "Proposal"],
        "owner": ["ana", "ana", "ben", "ben"],
        "total": [Decimal("1000.50"), Decimal("2000"), Decimal("3000"), None],  # as PostgreSQL
        "deals": [1, 2, 3, 4],
        "won_rate": [0.25, 0.5, 0.75, 1.0],
        "month": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"], utc=True),
    }
)


def chart(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "chart",
        "title": "T",
        "sql": "SELECT 1",
        "type": "bar",
        "x": "stage",
        "y": ["deals"],
        **fields,
    }


@pytest.mark.parametrize(
    ("chart_type", "trace_type", "extra"),
    [
        ("bar", "bar", {}),
        ("stacked_bar", "bar", {}),
        ("line", "scatter", {"mode": "lines+markers"}),
        ("area", "scatter", {"stackgroup": "one"}),
        ("scatter", "scatter", {"mode": "markers"}),
        ("pie", "pie", {}),
        ("funnel", "funnel", {}),
    ],
)
def test_each_chart_type_draws_its_trace(
    chart_type: str, trace_type: str, extra: dict[str, Any]
) -> None:
    figure = figure_json(figure_from_spec(chart(type=chart_type, y=["deals"]), ROWS))
    (trace,) = figure["data"]
    assert trace["type"] == trace_type
    for key, value in extra.items():
        assert trace[key] == value
    if chart_type == "pie":
        assert trace["labels"] == list(ROWS["stage"]) and trace["values"] == [1, 2, 3, 4]
    elif chart_type == "funnel":
        assert trace["y"] == list(ROWS["stage"]) and trace["x"] == [1, 2, 3, 4]
    else:
        assert trace["x"] == list(ROWS["stage"]) and trace["y"] == [1, 2, 3, 4]
    assert figure["layout"]["title"]["text"] == "T"
    json.dumps(figure)  # JSON-safe as is


def test_bar_modes_group_and_stack() -> None:
    grouped = figure_from_spec(chart(type="bar", y=["deals", "total"]), ROWS)
    stacked = figure_from_spec(chart(type="stacked_bar", y=["deals", "total"]), ROWS)
    assert grouped.layout.barmode == "group"
    assert stacked.layout.barmode == "stack"
    assert [trace.name for trace in grouped.data] == ["Deals", "Total"]
    assert grouped.layout.showlegend is True


def test_series_splits_long_rows_into_one_trace_per_value_in_order() -> None:
    figure = figure_json(figure_from_spec(chart(type="line", series="owner"), ROWS))
    assert [(t["name"], t["x"], t["y"]) for t in figure["data"]] == [
        ("ana", ["Discovery", "Proposal"], [1, 2]),
        ("ben", ["Discovery", "Proposal"], [3, 4]),
    ]


def test_decimals_become_numbers_and_nulls_gaps() -> None:
    figure = figure_json(figure_from_spec(chart(y=["total"]), ROWS))
    assert figure["data"][0]["y"] == [1000.5, 2000.0, 3000.0, None]


def test_times_are_drawn_as_utc_dates() -> None:
    figure = figure_json(figure_from_spec(chart(type="line", x="month"), ROWS))
    assert figure["data"][0]["x"][0].startswith("2026-01-01")
    assert figure["layout"]["xaxis"]["title"]["text"] == "Month"


def test_horizontal_bars_put_categories_on_the_left_in_query_order() -> None:
    figure = figure_json(
        figure_from_spec(chart(orientation="horizontal", value_format="currency"), ROWS)
    )
    trace = figure["data"][0]
    assert trace["orientation"] == "h"
    assert trace["y"] == list(ROWS["stage"])
    assert figure["layout"]["xaxis"]["tickprefix"] == "$"
    assert figure["layout"]["yaxis"]["autorange"] == "reversed"


def test_value_formats_reach_the_value_axis_and_hover() -> None:
    percent = figure_json(figure_from_spec(chart(y=["won_rate"], value_format="percent"), ROWS))
    assert percent["layout"]["yaxis"]["tickformat"] == ".0%"
    assert ":.1%}" in percent["data"][0]["hovertemplate"]
    euros = figure_json(
        figure_from_spec(chart(y=["total"], value_format="currency", currency="EUR"), ROWS)
    )
    assert euros["layout"]["yaxis"]["tickprefix"] == "€"
    assert "€%{y:,.2f}" in euros["data"][0]["hovertemplate"]


def test_titles_default_to_the_column_names_and_can_be_set() -> None:
    default = figure_from_spec(chart(y=["won_rate"]), ROWS)
    assert default.layout.xaxis.title.text == "Stage"
    assert default.layout.yaxis.title.text == "Won rate"
    named = figure_from_spec(chart(x_title="Stage name", y_title="Deals open"), ROWS)
    assert (named.layout.xaxis.title.text, named.layout.yaxis.title.text) == (
        "Stage name",
        "Deals open",
    )


def test_histogram_bins_the_values_of_x() -> None:
    figure = figure_json(
        figure_from_spec(chart(type="histogram", x="deals", y=[], bins=4, series="owner"), ROWS)
    )
    assert [(t["type"], t["name"], t["x"]) for t in figure["data"]] == [
        ("histogram", "ana", [1, 2]),
        ("histogram", "ben", [3, 4]),
    ]
    assert figure["data"][0]["nbinsx"] == 4
    assert figure["layout"]["barmode"] == "overlay"


def test_a_missing_column_names_the_columns_the_query_returned() -> None:
    with pytest.raises(ArtifactSpecError) as caught:
        figure_from_spec(chart(y=["amount"]), ROWS)
    message = str(caught.value)
    assert message.startswith("y: column 'amount' is not in the query's result")
    assert "stage, owner, total, deals, won_rate, month" in message
    assert "AS amount" in message
    assert caught.value.field == "y"


def test_text_values_on_the_value_axis_are_refused() -> None:
    with pytest.raises(ArtifactSpecError, match="'owner' holds text, not numbers"):
        figure_from_spec(chart(y=["owner"]), ROWS)


def test_too_many_series_are_refused_with_a_way_out() -> None:
    rows = pd.DataFrame({"stage": ["a"] * 30, "owner": [f"o{i}" for i in range(30)], "deals": 1})
    with pytest.raises(ArtifactSpecError, match="has 30 distinct values; at most 20"):
        figure_from_spec(chart(series="owner"), rows)
