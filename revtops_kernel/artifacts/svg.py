"""A chart spec drawn as SVG with matplotlib: vector charts for PDFs, with no browser.

Plotly's own static export needs kaleido and a Chrome build, which a fresh machine lacks. The
spec is declarative, so it is drawn a second time here from the same traces
(``figures.chart_traces``), palette and number formats as the Plotly figure. Text stays text in
the SVG (``svg.fonttype: none``): crisp at any zoom, selectable and searchable in the PDF.
Labels come from data, so mathtext is off: a deal named "$5k-$10k" prints as written.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import matplotlib
import pandas as pd
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from revtops_kernel.artifacts.data import check_columns, distinct_in_order, plottable
from revtops_kernel.artifacts.figures import (
    Trace,
    as_chart,
    category_title,
    chart_traces,
    value_title,
)
from revtops_kernel.artifacts.specs import ChartSpec
from revtops_kernel.artifacts.style import AXIS_COLOR, GRID_COLOR, PALETTE, TEXT_COLOR, format_tick

_DRAWING = threading.Lock()
CHAR_WIDTH_INCHES = 0.075  # an average DejaVu Sans character at 9 pt
RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "revtops",  # stable ids: the same chart gives the same SVG
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "text.color": TEXT_COLOR,
    "axes.labelcolor": TEXT_COLOR,
    "axes.edgecolor": AXIS_COLOR,
    "axes.prop_cycle": cycler(color=list(PALETTE)),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": TEXT_COLOR,
    "ytick.color": TEXT_COLOR,
    "legend.frameon": False,
}


def chart_svg(
    spec: ChartSpec | dict[str, Any],
    frame: pd.DataFrame,
    *,
    width_inches: float = 7.0,
    height_inches: float = 3.4,
) -> str:
    """The chart as an SVG document (title left to the page around it)."""
    chart = as_chart(spec)
    data = plottable(frame)
    check_columns(chart, data)
    traces = chart_traces(chart, data)
    # rc_context swaps process-wide settings: one chart at a time (a server may export PDFs
    # from several threads).
    with _DRAWING, matplotlib.rc_context(RC):  # type: ignore[arg-type]
        figure = Figure(figsize=(width_inches, height_inches))
        axes = figure.add_subplot()
        DRAW[chart.type](axes, chart, traces)
        if len(traces) > 1 and chart.type != "pie":
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(len(traces), 5))
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


# --- one drawer per chart type -------------------------------------------------------------------


def _draw_bars(axes: Axes, chart: ChartSpec, traces: list[Trace]) -> None:
    categories = _categories(traces)
    positions = {category: index for index, category in enumerate(categories)}
    horizontal = chart.orientation == "horizontal"
    stacked = chart.type == "stacked_bar"
    width = 0.8 if stacked else 0.8 / len(traces)
    base = [0.0] * len(categories)
    for number, trace in enumerate(traces):
        slots = [positions[_category(x)] for x in trace.x]
        values = [value or 0.0 for value in trace.y]
        offset = 0.0 if stacked else (number - (len(traces) - 1) / 2) * width
        starts = [base[slot] for slot in slots] if stacked else [0.0] * len(slots)
        where = [slot + offset for slot in slots]
        if horizontal:
            axes.barh(where, values, height=width, left=starts, label=trace.name)
        else:
            axes.bar(where, values, width=width, bottom=starts, label=trace.name)
        if stacked:
            for slot, value in zip(slots, values, strict=True):
                base[slot] += value
    if horizontal:
        axes.set_yticks(range(len(categories)), categories)
        axes.invert_yaxis()
        _value_axis(axes.xaxis, chart)
        axes.set_ylabel(category_title(chart))
        axes.set_xlabel(value_title(chart))
        axes.grid(axis="x", color=GRID_COLOR)
    else:
        _category_ticks(axes, categories)
        _label_axes(axes, chart)


def _draw_lines(axes: Axes, chart: ChartSpec, traces: list[Trace]) -> None:
    categorical = not _continuous(traces)
    positions = {c: i for i, c in enumerate(_categories(traces))} if categorical else {}
    if chart.type == "area":
        xs = list(positions.values()) if categorical else _union_x(traces)
        keys = list(positions) if categorical else xs
        matrix = [_aligned(trace, keys, categorical) for trace in traces]
        axes.stackplot(xs, *matrix, labels=[t.name for t in traces], alpha=0.85)
    for trace in traces if chart.type != "area" else []:
        xs = [positions[_category(x)] for x in trace.x] if categorical else trace.x
        values = [float("nan") if value is None else value for value in trace.y]
        if chart.type == "scatter":
            axes.scatter(xs, values, label=trace.name, s=18)
        else:
            axes.plot(xs, values, marker="o", markersize=3.5, linewidth=1.8, label=trace.name)
    if categorical:
        _category_ticks(axes, list(positions))
    elif any(isinstance(x, datetime) for x in trace_xs(traces)):
        locator = AutoDateLocator(maxticks=8)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    _label_axes(axes, chart)


def _draw_pie(axes: Axes, chart: ChartSpec, traces: list[Trace]) -> None:
    (trace,) = traces
    pairs = [(_category(x), y) for x, y in zip(trace.x, trace.y, strict=True) if y and y > 0]
    axes.pie(
        [value for _, value in pairs],
        labels=[label for label, _ in pairs],
        colors=[PALETTE[i % len(PALETTE)] for i in range(len(pairs))],
        autopct="%1.0f%%",
        startangle=90,
        counterclock=False,
        wedgeprops={"linewidth": 1, "edgecolor": "white"},
        textprops={"fontsize": 8},
    )
    axes.set_aspect("equal")


def _draw_funnel(axes: Axes, chart: ChartSpec, traces: list[Trace]) -> None:
    categories = _categories(traces)
    height = 0.8 / len(traces)
    for number, trace in enumerate(traces):
        offset = (number - (len(traces) - 1) / 2) * height
        for x, value in zip(trace.x, trace.y, strict=True):
            slot = categories.index(_category(x)) + offset
            width = value or 0.0
            axes.barh(
                slot,
                width,
                left=-width / 2,
                height=height * 0.9,
                color=PALETTE[number % len(PALETTE)],
            )
            label = format_tick(width, chart.value_format, chart.currency)
            axes.text(0, slot, label, ha="center", va="center", color="white", fontsize=8)
    axes.set_yticks(range(len(categories)), categories)
    axes.invert_yaxis()
    axes.xaxis.set_visible(False)
    axes.spines["bottom"].set_visible(False)
    axes.set_ylabel(category_title(chart))


def _draw_histogram(axes: Axes, chart: ChartSpec, traces: list[Trace]) -> None:
    for trace in traces:
        axes.hist(trace.x, bins=chart.bins or "auto", alpha=0.85 if len(traces) == 1 else 0.6,
                  label=trace.name or None)  # fmt: skip
    axes.set_xlabel(category_title(chart))
    axes.set_ylabel(value_title(chart))
    axes.grid(axis="y", color=GRID_COLOR)
    axes.set_axisbelow(True)


DRAW: dict[str, Callable[[Axes, ChartSpec, list[Trace]], None]] = {
    "bar": _draw_bars,
    "stacked_bar": _draw_bars,
    "line": _draw_lines,
    "area": _draw_lines,
    "scatter": _draw_lines,
    "pie": _draw_pie,
    "funnel": _draw_funnel,
    "histogram": _draw_histogram,
}


# --- helpers -----------------------------------------------------------------------------------


def trace_xs(traces: list[Trace]) -> list[Any]:
    return [x for trace in traces for x in trace.x if x is not None]


def _continuous(traces: list[Trace]) -> bool:
    """True when x is numbers or times (a real axis), False for categories."""
    values = trace_xs(traces)
    return bool(values) and all(
        isinstance(x, int | float | datetime) and not isinstance(x, bool) for x in values
    )


def _category(value: Any) -> str:
    if isinstance(value, datetime):
        return (
            value.strftime("%Y-%m-%d")
            if value.time() != datetime.min.time()
            else (value.strftime("%b %Y") if value.day == 1 else value.strftime("%Y-%m-%d"))
        )
    return "(none)" if value is None else str(value)


def _categories(traces: list[Trace]) -> list[str]:
    return distinct_in_order([_category(x) for trace in traces for x in trace.x])


def _union_x(traces: list[Trace]) -> list[Any]:
    return sorted({x for trace in traces for x in trace.x if x is not None})


def _aligned(trace: Trace, keys: list[Any], categorical: bool) -> list[float]:
    by_x = {(_category(x) if categorical else x): y for x, y in zip(trace.x, trace.y, strict=True)}
    return [float(by_x.get(key) or 0.0) for key in keys]


def _category_ticks(axes: Axes, categories: list[str]) -> None:
    # Rotate when the labels, side by side, would need more than the axis' width.
    figure = axes.get_figure()
    width = figure.get_figwidth() if isinstance(figure, Figure) else 7.0
    needed = sum(len(category) + 2 for category in categories) * CHAR_WIDTH_INCHES
    crowded = needed > width * 0.8
    axes.set_xticks(range(len(categories)), categories)
    if crowded:
        for label in axes.get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")


def _value_axis(axis: Any, chart: ChartSpec) -> None:
    axis.set_major_formatter(
        FuncFormatter(lambda value, _: format_tick(value, chart.value_format, chart.currency))
    )


def _label_axes(axes: Axes, chart: ChartSpec) -> None:
    _value_axis(axes.yaxis, chart)
    axes.set_xlabel(category_title(chart))
    axes.set_ylabel(value_title(chart))
    axes.grid(axis="y", color=GRID_COLOR)
    axes.set_axisbelow(True)
