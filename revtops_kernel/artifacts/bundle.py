"""A Plotly figure as a Jupyter display bundle (light: no plotly or pandas import).

JupyterLab and Voila draw the bundle with plotly's mime renderer (the jupyterlab-plotly
extension): the figure's JSON travels once and no plotly.js is fetched from anywhere.
"""

from __future__ import annotations

from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def figure_bundle(figure: dict[str, Any]) -> dict[str, Any]:
    """``figure`` (Plotly JSON) as the bundle ``display(..., raw=True)`` takes."""
    layout = figure.get("layout") or {}
    title = layout.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    return {
        PLOTLY_MIME: {
            "data": figure.get("data") or [],
            "layout": layout,
            "config": {"displaylogo": False, "responsive": True},
        },
        "text/plain": f"<Plotly chart: {text or 'untitled'}>",
    }
