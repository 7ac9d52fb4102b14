"""A deal's timeline as a chart: its stage path as steps, its amount as a line when it
changed, and its events as markers on lanes by kind, on one time axis.

``timeline_figure`` is the Plotly figure (the notebook, the web app); ``timeline_svg`` draws the
same picture with matplotlib as vector SVG for the deal brief PDF (no browser, no network).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import matplotlib
import plotly.graph_objects as go
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from plotly.subplots import make_subplots

from revtops_kernel.artifacts.style import FONT_FAMILY, GRID_COLOR, PALETTE, short_number
from revtops_kernel.artifacts.svg import _DRAWING, RC
from revtops_kernel.intelligence.timeline import DealTimeline, EventKind

# Lanes from top to bottom, and each kind's colour; stage moves and closing share a lane.
LANES: tuple[tuple[str, tuple[EventKind, ...]], ...] = (
    ("Stage", ("created", "stage", "closed")),
    ("Amount", ("amount",)),
    ("Close date", ("close_date",)),
    ("Meeting", ("meeting",)),
    ("Email", ("email",)),
    ("Call", ("call",)),
    ("Slack", ("slack",)),
)
KIND_COLORS: dict[EventKind, str] = {
    "created": PALETTE[0],
    "stage": PALETTE[0],
    "closed": PALETTE[2],
    "amount": PALETTE[1],
    "close_date": PALETTE[3],
    "meeting": PALETTE[4],
    "email": PALETTE[5],
    "call": PALETTE[6],
    "slack": PALETTE[7 % len(PALETTE)],
}


def _lanes(timeline: DealTimeline) -> list[tuple[str, list[datetime], list[str], str]]:
    """(lane label, times, hover texts, colour) for each lane that has events."""
    lanes = []
    for label, kinds in LANES:
        events = timeline.of_kind(*kinds)
        if events:
            colour = KIND_COLORS[events[-1].kind]
            texts = [f"{e.title}<br>{e.detail}" if e.detail else e.title for e in events]
            lanes.append((label, [e.at for e in events], texts, colour))
    return lanes


def _end(timeline: DealTimeline, until: datetime | None) -> datetime:
    """Where the lines stop: the last event, or ``until`` (today) for an open deal."""
    last = max(e.at for e in timeline.events) if timeline.events else None
    candidates = [t for t in (last, until if timeline.deal.is_open else None) if t is not None]
    return max(candidates) if candidates else datetime.now(UTC)


def _amount_series(timeline: DealTimeline, until: datetime | None) -> list[tuple[datetime, float]]:
    """The amount's steps, carried to the end so the line reaches today's value."""
    points = [(at, float(a)) for at, a in timeline.amounts if isinstance(a, Decimal | int)]
    if len(points) < 2:
        return []
    end = max(points[-1][0], _end(timeline, until))
    return [*points, (end, points[-1][1])]


def _stage_series(
    timeline: DealTimeline, until: datetime | None
) -> tuple[list[datetime], list[int], list[str]]:
    """Stage steps as (times, level, stage names), levels in the order the deal met them
    unless the pipeline's own order is known."""
    path = list(timeline.stage_path)
    if not path:
        return [], [], []
    names: list[str] = []
    for _, name, _order in sorted(path, key=lambda p: (p[2] is None, p[2] or 0, p[0])):
        if name not in names:
            names.append(name)
    levels = [names.index(name) for _, name, _ in path]
    end = max(path[-1][0], _end(timeline, until))
    return [*(at for at, _, _ in path), end], [*levels, levels[-1]], names


def timeline_figure(timeline: DealTimeline, *, until: datetime | None = None) -> go.Figure:
    """The timeline as a Plotly figure: stage steps (and the amount) above, events below;
    an open deal's lines run to ``until`` (now, if not given)."""
    until = until or datetime.now(UTC)
    times, levels, names = _stage_series(timeline, until)
    amounts = _amount_series(timeline, until)
    lanes = _lanes(timeline)
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.5, 0.5],
        vertical_spacing=0.08,
        specs=[[{"secondary_y": True}], [{}]],
    )
    if times:
        figure.add_trace(
            go.Scatter(
                x=times,
                y=levels,
                mode="lines+markers",
                line={"shape": "hv", "color": PALETTE[0], "width": 2},
                name="Stage",
                text=[names[k] for k in levels],
                hovertemplate="%{text}<br>%{x|%Y-%m-%d}<extra>Stage</extra>",
            ),
            row=1,
            col=1,
        )
        figure.update_yaxes(
            tickvals=list(range(len(names))), ticktext=names, row=1, col=1, secondary_y=False
        )
    if amounts:
        figure.add_trace(
            go.Scatter(
                x=[at for at, _ in amounts],
                y=[value for _, value in amounts],
                mode="lines",
                line={"shape": "hv", "color": PALETTE[1], "dash": "dot"},
                name="Amount",
                hovertemplate="%{y:$,.0f}<br>%{x|%Y-%m-%d}<extra>Amount</extra>",
            ),
            row=1,
            col=1,
            secondary_y=True,
        )
        figure.update_yaxes(
            tickformat="$,.2s",
            title_text="Amount",
            rangemode="tozero",  # a cut reads at its true size
            row=1,
            col=1,
            secondary_y=True,
        )
    for label, at, texts, colour in lanes:
        figure.add_trace(
            go.Scatter(
                x=at,
                y=[label] * len(at),
                mode="markers",
                marker={"size": 9, "color": colour, "line": {"width": 1, "color": "white"}},
                name=label,
                text=texts,
                hovertemplate="%{text}<br>%{x|%Y-%m-%d %H:%M} UTC<extra></extra>",
                showlegend=False,
            ),
            row=2,
            col=1,
        )
    figure.update_yaxes(
        categoryorder="array",
        categoryarray=[label for label, *_ in reversed(lanes)],
        row=2,
        col=1,
    )
    figure.update_layout(
        title={"text": f"Timeline: {timeline.deal.name or timeline.deal.id}", "x": 0},
        font={"family": FONT_FAMILY, "size": 12},
        height=480,
        margin={"l": 130, "r": 70, "t": 60, "b": 40},  # room for stage names and amounts
        plot_bgcolor="white",
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        hovermode="closest",
    )
    figure.update_xaxes(gridcolor=GRID_COLOR, automargin=True)
    figure.update_yaxes(gridcolor=GRID_COLOR, automargin=True)
    return figure


def timeline_svg(
    timeline: DealTimeline,
    *,
    until: datetime | None = None,
    width_inches: float = 7.0,
    height_inches: float = 2.3,
) -> str:
    """The same picture as vector SVG (matplotlib), for PDFs."""
    until = until or datetime.now(UTC)
    times, levels, names = _stage_series(timeline, until)
    amounts = _amount_series(timeline, until)
    lanes = _lanes(timeline)
    with _DRAWING, matplotlib.rc_context(RC):  # type: ignore[arg-type]
        figure = Figure(figsize=(width_inches, height_inches))
        top, bottom = figure.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1], "hspace": 0.12}
        )
        if times:
            top.step(times, levels, where="post", color=PALETTE[0], linewidth=1.6)
            top.plot(times[:-1], levels[:-1], "o", color=PALETTE[0], markersize=3.5)
            top.set_yticks(range(len(names)), names, fontsize=7)
            top.set_ylim(-0.5, max(len(names) - 0.5, 0.5))
        top.grid(axis="x", color=GRID_COLOR, linewidth=0.5)
        if amounts:
            twin = top.twinx()
            twin.step(
                [at for at, _ in amounts],
                [v for _, v in amounts],
                where="post",
                color=PALETTE[1],
                linestyle=":",
                linewidth=1.4,
            )
            twin.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: "$" + short_number(v)))
            twin.tick_params(axis="y", labelsize=7, colors=PALETTE[1])
            twin.spines["right"].set_visible(True)
            twin.spines["top"].set_visible(False)
            low = min(v for _, v in amounts)
            twin.set_ylim(0, max(v for _, v in amounts) * 1.15 if low >= 0 else None)
        for row, (_label, at, _texts, colour) in enumerate(reversed(lanes)):
            bottom.scatter(at, [row] * len(at), s=16, color=colour, edgecolors="white", zorder=3)
        bottom.set_yticks(range(len(lanes)), [label for label, *_ in reversed(lanes)], fontsize=7)
        bottom.set_ylim(-0.6, max(len(lanes) - 0.4, 0.6))
        bottom.grid(color=GRID_COLOR, linewidth=0.5)
        locator = AutoDateLocator(minticks=4, maxticks=8)
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        bottom.tick_params(axis="x", labelsize=7)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buffer.getvalue()
