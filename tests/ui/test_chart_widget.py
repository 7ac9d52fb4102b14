"""The app's chart widget: the figure travels as widget state, plotly.js on request (once a page
draws its first chart), and the views that draw charts use it (no plotly lab extension)."""

from __future__ import annotations

from typing import Any

from revtops_kernel.ui import chart_widget
from revtops_kernel.ui.chart_widget import PlotlyChart
from revtops_kernel.ui.chat_panel import plotly_js

FIGURE = {"data": [{"type": "bar", "x": ["a", "b"], "y": [1, 2]}], "layout": {"title": "T"}}


def test_the_figure_is_state_and_plotly_js_is_sent_when_asked(monkeypatch: Any) -> None:
    chart = PlotlyChart(FIGURE)
    assert chart.get_state()["figure"] == FIGURE
    assert "rt-chart" in chart._dom_classes
    sent: list[tuple[Any, Any]] = []
    monkeypatch.setattr(
        chart, "send", lambda content, buffers=None: sent.append((content, buffers))
    )
    chart._on_message(chart, {"t": "other"}, [])
    assert sent == []
    chart._on_message(chart, {"t": "plotly"}, [])
    ((content, buffers),) = sent
    assert content == {"t": "plotly"} and buffers == [plotly_js()]
    assert b"Plotly" in buffers[0][:5000]


def test_the_module_asks_the_kernel_for_plotly_and_draws_the_figure() -> None:
    module = (chart_widget.STATIC / "chart.js").read_text()
    assert "__revtopsPlotly" in module  # one plotly.js per page, shared with the chat
    assert 'send({t:"plotly"})' in module.replace(" ", "")
    assert "newPlot" in module and "change:figure" in module
