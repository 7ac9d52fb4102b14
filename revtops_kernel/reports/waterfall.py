"""The digest's pipeline movement as a waterfall: a Plotly ``go.Waterfall`` for the notebook, and
the same bars drawn as SVG with matplotlib for the PDF.

The artifacts' chart types have no waterfall, so the digest carries the movement as a chart
part over the rows built here (``movement_frame``: one row per step, signed amounts) and both
renderers read those rows. The SVG uses the artifacts' matplotlib settings (``svg.RC``: text
stays text, no mathtext, same fonts and palette) and their drawing lock, so it looks like the
digest's other charts and needs no browser or network.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from revtops_kernel.artifacts.specs import ChartSpec, MarkdownBlock, TableSpec
from revtops_kernel.artifacts.style import AXIS_COLOR, GRID_COLOR, PALETTE, TEXT_COLOR, format_tick
from revtops_kernel.artifacts.svg import _DRAWING, CHAR_WIDTH_INCHES, RC

if TYPE_CHECKING:
    import plotly.graph_objects as go

QUERY = "pipeline_waterfall"
TOTAL_COLOR = PALETTE[0]
UP_COLOR = PALETTE[2]
DOWN_COLOR = PALETTE[3]

# The steps in the order the waterfall walks them: (column of the verified query, label, sign).
# Moves between pipelines net to nothing in the digest's single total row (group_by none), so
# moved_in/moved_out only show when they are not zero.
STEPS: tuple[tuple[str, str, int], ...] = (
    ("created", "Created", 1),
    ("reopened", "Reopened", 1),
    ("moved_in", "Moved in", 1),
    ("pulled_in", "Pulled in", 1),
    ("increased", "Increased", 1),
    ("decreased", "Decreased", -1),
    ("pushed_out", "Pushed out", -1),
    ("moved_out", "Moved out", -1),
    ("won", "Won", -1),
    ("lost", "Lost", -1),
)
ALWAYS_SHOWN = frozenset({"created", "pulled_in", "increased", "decreased", "pushed_out", "won",
                          "lost"})  # fmt: skip


def movement_frame(row: dict[str, float]) -> pd.DataFrame:
    """The waterfall's rows from the verified query's total row: opening, each movement (signed:
    what leaves the pipeline is negative), closing. ``measure`` is Plotly's word for each."""
    steps: list[dict[str, Any]] = [
        {"movement": "Opening", "amount": row["opening"], "measure": "absolute"}
    ]
    for column, label, sign in STEPS:
        if column in ALWAYS_SHOWN or row[column]:
            steps.append({"movement": label, "amount": sign * row[column], "measure": "relative"})
    steps.append({"movement": "Closing", "amount": row["closing"], "measure": "total"})
    return pd.DataFrame(steps)


def is_waterfall(spec: ChartSpec | TableSpec | MarkdownBlock) -> bool:
    """Whether a digest part is the movement chart (drawn here, not by the artifacts)."""
    return (
        isinstance(spec, ChartSpec)
        and spec.verified_query is not None
        and spec.verified_query.name == QUERY
    )


def waterfall_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """The movement as a Plotly waterfall, in the artifacts' template."""
    import plotly.graph_objects as go

    from revtops_kernel.artifacts.figures import TEMPLATE

    figure = go.Figure(
        go.Waterfall(
            x=list(frame["movement"]),
            y=[float(value) for value in frame["amount"]],
            measure=list(frame["measure"]),
            text=[_label(row) for row in frame.itertuples()],
            textposition="outside",
            connector={"line": {"color": GRID_COLOR}},
            increasing={"marker": {"color": UP_COLOR}},
            decreasing={"marker": {"color": DOWN_COLOR}},
            totals={"marker": {"color": TOTAL_COLOR}},
            hovertemplate="%{x}: $%{y:,.2f}<extra></extra>",
        ),
        layout={"template": TEMPLATE, "title": {"text": title}},
    )
    figure.update_layout(
        showlegend=False, yaxis={"title": {"text": "Amount"}, "tickprefix": "$", "tickformat": "~s"}
    )
    return figure


def waterfall_svg(frame: pd.DataFrame, *, width_inches: float, height_inches: float) -> str:
    """The movement as an SVG document: totals from zero, each movement floating from the
    running total, its signed amount above it."""
    labels = list(frame["movement"])
    amounts = [float(value) for value in frame["amount"]]
    bottoms: list[float] = []
    heights: list[float] = []
    colors: list[str] = []
    ends: list[float] = []  # the running total after each bar
    running = 0.0
    for measure, amount in zip(frame["measure"], amounts, strict=True):
        if measure == "relative":
            bottoms.append(running if amount >= 0 else running + amount)
            heights.append(abs(amount))
            colors.append(UP_COLOR if amount >= 0 else DOWN_COLOR)
            running += amount
        else:
            bottoms.append(0.0)
            heights.append(amount)
            colors.append(TOTAL_COLOR)
            running = amount
        ends.append(running)
    with _DRAWING, matplotlib.rc_context(RC):  # type: ignore[arg-type]
        figure = Figure(figsize=(width_inches, height_inches))
        axes = figure.add_subplot()
        positions = range(len(labels))
        axes.bar(positions, heights, bottom=bottoms, color=colors, width=0.6)
        top = max(b + h for b, h in zip(bottoms, heights, strict=True)) or 1.0
        for x, (row, bottom, height) in enumerate(
            zip(frame.itertuples(), bottoms, heights, strict=True)
        ):
            axes.text(x, bottom + height + top * 0.015, _label(row), ha="center", va="bottom",
                      fontsize=7.5, color=TEXT_COLOR)  # fmt: skip
        for x in range(len(labels) - 1):  # connectors: each bar's end to the next one's start
            axes.plot([x + 0.3, x + 0.7], [ends[x], ends[x]], color=AXIS_COLOR, linewidth=0.6)
        axes.set_ylim(min(0.0, *bottoms), top * 1.12)  # room for the labels above the bars
        # Two-word steps on two lines when the longest word fits its slot (DejaVu at 9 pt, with
        # the margin the page's scaling needs), else one line each, slanted.
        slot = width_inches / len(labels)
        longest = max(len(word) for label in labels for word in label.split())
        if (longest + 1) * CHAR_WIDTH_INCHES * 1.3 <= slot:
            axes.set_xticks(list(positions), [label.replace(" ", "\n") for label in labels])
        else:
            axes.set_xticks(list(positions), labels)
            for tick in axes.get_xticklabels():
                tick.set_rotation(30)
                tick.set_horizontalalignment("right")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_tick(v, "currency")))
        axes.set_ylabel("Amount")
        axes.grid(axis="y", color=GRID_COLOR)
        axes.set_axisbelow(True)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()


def _label(row: Any) -> str:
    text = format_tick(float(row.amount), "currency")
    return f"+{text}" if row.measure == "relative" and row.amount > 0 else text
