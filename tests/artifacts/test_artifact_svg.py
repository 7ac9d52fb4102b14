"""Charts drawn as SVG for PDFs: every type, text kept as text, data labels printed verbatim."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pandas as pd
import pytest

from revtops_kernel.artifacts.svg import chart_svg

ROWS = pd.DataFrame(
    {
        "stage": ["Discovery", "$5k-$10k deals", "Closed Won", "Discovery"],
        "owner": ["ana", "ana", "ben", "ben"],
        "total": [125_000.0, 80_000.0, 2_500_000.0, 40_000.0],
        "rate": [0.1, 0.25, 0.5, 0.9],
        "month": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"]),
    }
)


def chart(**fields: Any) -> dict[str, Any]:
    base = {"kind": "chart", "title": "T", "sql": "SELECT 1", "type": "bar", "x": "stage"}
    return {**base, "y": ["total"], **fields}


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "bar"},
        {"type": "stacked_bar", "series": "owner"},
        {"type": "bar", "orientation": "horizontal", "series": "owner"},
        {"type": "line", "series": "owner"},
        {"type": "area", "series": "owner"},
        {"type": "scatter", "x": "rate"},
        {"type": "pie"},
        {"type": "funnel"},
        {"type": "histogram", "x": "total", "y": [], "bins": 5},
        {"type": "line", "x": "month"},
    ],
)
def test_every_chart_type_draws_a_vector_svg(fields: dict[str, Any]) -> None:
    svg = chart_svg(chart(**fields), ROWS)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "<image" not in svg  # no embedded raster
    assert texts(svg)  # labels stay text: crisp, selectable, searchable


def test_labels_from_data_print_verbatim_without_mathtext() -> None:
    labels = texts(chart_svg(chart(), ROWS))
    assert "$5k-$10k deals" in labels  # two dollar signs are not a formula
    assert "Stage" in labels and "Total" in labels


def test_value_formats_label_the_value_axis() -> None:
    currency = texts(chart_svg(chart(value_format="currency"), ROWS))
    assert "$2.5M" in currency or "$2M" in currency
    percent = texts(chart_svg(chart(y=["rate"], value_format="percent"), ROWS))
    assert "20%" in percent and "0%" in percent


def test_the_same_chart_gives_the_same_svg() -> None:
    assert chart_svg(chart(), ROWS) == chart_svg(chart(), ROWS)
