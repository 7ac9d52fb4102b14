"""One Plotly figure as an anywidget (``static/chart.js``): the app's Artifacts and At risk charts.

plotly.js comes from the kernel (the plotly package's own file) the first time a page draws a
chart, as the chat's charts do, so the web app's page loads no plotly lab extension: that
extension's 4.8 MB script was parsed on every first render, for a tab that may never open.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from revtops_kernel.ui.chat_panel import STATIC, plotly_js


class PlotlyChart(anywidget.AnyWidget):
    """``PlotlyChart(figure)``, ``figure`` being Plotly's JSON (``data`` and ``layout``)."""

    _esm = STATIC / "chart.js"
    figure = traitlets.Dict().tag(sync=True)

    def __init__(self, figure: dict[str, Any]) -> None:
        super().__init__(figure=figure)
        self.add_class("rt-chart")
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("t") == "plotly":
            self.send({"t": "plotly"}, [plotly_js()])
