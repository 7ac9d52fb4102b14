"""One look for every chart: the palette, fonts and number formats Plotly and matplotlib share.

The screen (Plotly) and the PDF (matplotlib SVG) draw the same spec; these constants and the
tick formatter keep them visibly the same chart.
"""

from __future__ import annotations

import math

PALETTE = (
    "#2f6fde",
    "#f28e2b",
    "#3aa57a",
    "#e15759",
    "#8a63d2",
    "#edc948",
    "#4eb6c4",
    "#b07aa1",
    "#9c755f",
    "#79706e",
)
FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif"
TEXT_COLOR = "#1f2933"
GRID_COLOR = "#e4e7eb"
AXIS_COLOR = "#9aa5b1"

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}


def currency_prefix(currency: str) -> str:
    return CURRENCY_SYMBOLS.get(currency, f"{currency} ")


def short_number(value: float) -> str:
    """1234567 -> 1.2M, 25000 -> 25k, 12.5 -> 12.5: compact tick labels."""
    if math.isnan(value) or math.isinf(value):
        return ""
    magnitude = abs(value)
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.3g}" if magnitude else "0"


def format_tick(value: float, value_format: str, currency: str = "USD") -> str:
    """An axis tick label for ``value`` in the spec's value format."""
    if value_format == "percent":
        return f"{value * 100:.0f}%" if math.isfinite(value) else ""
    text = short_number(value)
    if value_format == "currency" and text:
        sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
        return f"{sign}{currency_prefix(currency)}{digits}"
    return text


def format_value(value: object, value_format: str, currency: str = "USD") -> str:
    """A table cell in the spec's value format (full precision, thousands separated)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not isinstance(value, int | float):
        return str(value)
    if value_format == "percent":
        return f"{value * 100:.1f}%"
    if value_format == "currency":
        sign = "-" if value < 0 else ""
        return f"{sign}{currency_prefix(currency)}{abs(value):,.2f}"
    if value_format == "integer":
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"
