"""A chart spec and its rows -> a Plotly figure (the screen) or its traces (shared with the PDF).

``chart_traces`` is the one place that decides what is drawn: which rows feed which trace, in
which order, under which name. Plotly (here) and matplotlib (``svg.py``) only differ in how
they draw those traces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from revtops_kernel.artifacts.data import check_columns, distinct_in_order, humanize, plottable
from revtops_kernel.artifacts.specs import ChartSpec, parse_spec
from revtops_kernel.artifacts.style import (
    AXIS_COLOR,
    FONT_FAMILY,
    GRID_COLOR,
    PALETTE,
    TEXT_COLOR,
    currency_prefix,
)
from revtops_kernel.errors import ArtifactSpecError


@dataclass(frozen=True)
class Trace:
    """One line, bar group, slice set or histogram: its name, categories and values."""

    name: str
    x: list[Any]
    y: list[float]  # empty for histograms (their values are in ``x``)


def as_chart(spec: ChartSpec | Mapping[str, Any]) -> ChartSpec:
    chart = parse_spec(spec) if not isinstance(spec, ChartSpec) else spec
    if not isinstance(chart, ChartSpec):
        raise ArtifactSpecError(f"expected a chart spec, got a {chart.kind}")
    return chart


def chart_traces(chart: ChartSpec, frame: pd.DataFrame) -> list[Trace]:
    """The traces a chart draws from ``frame`` (already checked and plottable)."""
    if chart.type == "histogram":
        groups = _split(frame, chart.series)
        return [Trace(name, _values(rows[chart.x].dropna()), []) for name, rows in groups]
    if chart.series:
        (column,) = chart.y
        return [
            Trace(name, _values(rows[chart.x]), _values(rows[column]))
            for name, rows in _split(frame, chart.series)
        ]
    return [
        Trace(humanize(column), _values(frame[chart.x]), _values(frame[column]))
        for column in chart.y
    ]


def _split(frame: pd.DataFrame, series: str | None) -> list[tuple[str, pd.DataFrame]]:
    if not series:
        return [("", frame)]
    keys = distinct_in_order(list(frame[series]))
    return [(_label(key), frame[_matches(frame[series], key)]) for key in keys]


def _matches(column: pd.Series, key: Any) -> pd.Series:
    return column.isna() if pd.isna(key) else column == key


def _label(key: Any) -> str:
    return "(none)" if pd.isna(key) else str(key)


def _values(column: pd.Series) -> list[Any]:
    return [None if pd.isna(value) else value for value in column.tolist()]


def value_title(chart: ChartSpec) -> str:
    if chart.y_title:
        return chart.y_title
    if chart.type == "histogram":
        return "Count"
    return humanize(chart.y[0]) if len(chart.y) == 1 else ""


def category_title(chart: ChartSpec) -> str:
    return chart.x_title or humanize(chart.x)


# --- Plotly ------------------------------------------------------------------------------------

TEMPLATE = go.layout.Template(
    layout={
        "colorway": list(PALETTE),
        "font": {"family": FONT_FAMILY, "color": TEXT_COLOR, "size": 13},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {"gridcolor": GRID_COLOR, "linecolor": AXIS_COLOR, "zeroline": False},
        "yaxis": {"gridcolor": GRID_COLOR, "linecolor": AXIS_COLOR, "zeroline": False},
        "legend": {"orientation": "h", "y": -0.2},
        "margin": {"l": 60, "r": 24, "t": 56, "b": 56},
    }
)


def figure_from_spec(spec: ChartSpec | Mapping[str, Any], frame: pd.DataFrame) -> go.Figure:
    """Draw a chart spec over the rows of its query as a Plotly figure.

    Public and free of any database: an exported notebook calls it on the DataFrame its cell
    just queried, so the notebook redraws exactly the chart the assistant made.
    """
    chart = as_chart(spec)
    data = plottable(frame)
    check_columns(chart, data)
    traces = chart_traces(chart, data)
    figure = go.Figure(layout={"template": TEMPLATE, "title": {"text": chart.title}})
    for trace in traces:
        figure.add_trace(_plotly_trace(chart, trace))
    _lay_out(figure, chart, len(traces))
    return figure


def figure_json(figure: go.Figure) -> dict[str, Any]:
    """A figure as plain JSON types (numpy arrays and dates serialized), for events and storage."""
    result: dict[str, Any] = json.loads(figure.to_json())
    return result


def _plotly_trace(chart: ChartSpec, trace: Trace) -> Any:
    horizontal = chart.orientation == "horizontal" and chart.type in ("bar", "stacked_bar")
    hover = _hover_value(chart, "x" if horizontal else "y")
    name = trace.name or None
    if chart.type in ("bar", "stacked_bar"):
        if horizontal:
            return go.Bar(x=trace.y, y=trace.x, name=name, orientation="h", hovertemplate=hover)
        return go.Bar(x=trace.x, y=trace.y, name=name, hovertemplate=hover)
    if chart.type in ("line", "area", "scatter"):
        mode = {"line": "lines+markers", "area": "lines", "scatter": "markers"}[chart.type]
        extra: dict[str, Any] = {"stackgroup": "one"} if chart.type == "area" else {}
        return go.Scatter(x=trace.x, y=trace.y, mode=mode, name=name, hovertemplate=hover, **extra)
    if chart.type == "pie":
        return go.Pie(
            labels=trace.x,
            values=trace.y,
            sort=False,
            marker={"colors": list(PALETTE)},
            hovertemplate=_hover_value(chart, "value"),
        )
    if chart.type == "funnel":
        return go.Funnel(
            y=trace.x,
            x=trace.y,
            name=name,
            textinfo="value+percent initial",
            hovertemplate=_hover_value(chart, "x"),
        )
    return go.Histogram(x=trace.x, name=name, nbinsx=chart.bins or 0, opacity=0.85)


def _hover_value(chart: ChartSpec, axis: str) -> str:
    label = "label" if chart.type == "pie" else ("y" if axis == "x" else "x")
    value = "%{" + axis + ":" + _d3_format(chart) + "}"
    if chart.value_format == "currency":
        value = currency_prefix(chart.currency) + value
    return "%{" + label + "}: " + value + "<extra>%{fullData.name}</extra>"


def _d3_format(chart: ChartSpec) -> str:
    return {"percent": ".1%", "integer": ",.0f", "currency": ",.2f"}.get(
        chart.value_format, ",.4~g"
    )


def _value_axis(chart: ChartSpec) -> dict[str, Any]:
    axis: dict[str, Any] = {"title": {"text": value_title(chart)}}
    if chart.value_format == "percent":
        axis["tickformat"] = ".0%"
    elif chart.value_format == "currency":
        axis["tickprefix"] = currency_prefix(chart.currency)
        axis["tickformat"] = "~s"
    elif chart.value_format == "integer":
        axis["tickformat"] = "~s"
    return axis


def _lay_out(figure: go.Figure, chart: ChartSpec, trace_count: int) -> None:
    category = {"title": {"text": category_title(chart)}}
    values = _value_axis(chart)
    figure.update_layout(showlegend=trace_count > 1 or chart.type == "pie")
    if chart.type == "pie":
        return
    if chart.type == "histogram":
        figure.update_layout(xaxis=category, yaxis={"title": {"text": value_title(chart)}})
        if trace_count > 1:
            figure.update_layout(barmode="overlay")
        return
    if chart.type == "funnel":
        figure.update_layout(yaxis={"title": {"text": category_title(chart)}})
        return
    if chart.type in ("bar", "stacked_bar"):
        figure.update_layout(barmode="stack" if chart.type == "stacked_bar" else "group")
    if chart.orientation == "horizontal" and chart.type in ("bar", "stacked_bar"):
        figure.update_layout(xaxis=values, yaxis={**category, "autorange": "reversed"})
    else:
        figure.update_layout(xaxis=category, yaxis=values)
