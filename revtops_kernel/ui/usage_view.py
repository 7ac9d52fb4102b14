"""A small usage view for the app: what the model cost this organization, and its caps.

``usage_html(report)`` renders ``agent.ledger_report.usage_report``'s JSON (the admin
endpoint's) as escaped HTML; ``usage_view(db, settings, org)`` is that as a widget.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from revtops_kernel.agent.ledger_report import GroupBy, usage_report
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database


def usage_html(report: dict[str, Any]) -> str:
    by = html.escape(str(report.get("by", "")))
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(str(line['key']))}</td><td>{line['calls']:,}</td>"
        f"<td>{line['input_tokens'] + line['cache_read_tokens'] + line['cache_creation_tokens']:,}"
        f"</td><td>{line['output_tokens']:,}</td><td>${float(line['cost_usd']):,.4f}</td>"
        "</tr>"
        for line in report.get("lines", [])
    )
    caps = "".join(f"<li>{html.escape(_cap_text(cap))}</li>" for cap in report.get("caps", []))
    total = float(report.get("total_cost_usd", 0))
    return (
        '<div class="rt-usage"><table><thead><tr>'
        f"<th>{by}</th><th>calls</th><th>input tokens</th><th>output tokens</th><th>cost</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        f"<p>Total: ${total:,.4f} in {report.get('total_calls', 0):,} calls</p>"
        f"<ul>{caps}</ul></div>"
    )


def usage_view(db: Database, settings: Settings, org: str, *, by: GroupBy = "day") -> widgets.HTML:
    return widgets.HTML(usage_html(usage_report(db, settings, org=org, by=by)))


def _cap_text(cap: dict[str, Any]) -> str:
    name = "Daily" if cap["period"] == "day" else "Monthly"
    spent = float(cap["spent_usd"])
    if float(cap["cap_usd"]) <= 0:
        return f"{name} cap: none (${spent:,.4f} spent)"
    return (
        f"{name} cap: ${spent:,.4f} of ${float(cap['cap_usd']):,.2f} "
        f"({cap['source']}); resets {cap['resets_at']}"
    )
