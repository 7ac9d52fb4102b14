"""The web app's "At risk" view: open deals the risk rules flag, riskiest first, with why.

The rows come from the ``deal_risks`` verified query (one row per deal and rule; the rules,
weights and thresholds live in ``agent/verified_risk.py``), run as the kernel's organization.
``group_risk_rows`` folds them into one ``RiskDeal`` per deal; ``filter_deals``,
``risk_table_html`` and ``reason_line`` are pure, so the page's logic is tested without a
browser. ``RiskView`` is the widget: owner and pipeline filters, one HTML table per page of
deals (not a widget per cell), a list to open a deal's timeline, and the deal's brief PDF as
a single link.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ipywidgets as widgets
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from revtops_kernel.errors import RevtopsError
from revtops_kernel.intelligence.timeline import (
    DealTimeline,
    EventKind,
    Participant,
    deal_timeline,
)
from revtops_kernel.store.bookkeeping import last_synced_at
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import Deal
from revtops_kernel.timeutil import as_day
from revtops_kernel.ui import views

ALL = "All"
NO_OWNER = "(no owner)"
PAGE_SIZE = 25

# Rule names as a person reads them (the order is the rules' order in verified_risk).
RULE_LABELS: dict[str, str] = {
    "ghosted": "Ghosted",
    "stalled": "Stalled",
    "close_date_pushed": "Close date pushed",
    "amount_dropped": "Amount dropped",
    "no_recent_meeting": "No recent meeting",
    "single_threaded": "Single-threaded",
    "past_due": "Past due",
}

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}

STYLE = """<style>
.rt-risk { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 13px;
  color: var(--jp-ui-font-color1, #1f2328); }
.rt-risk .rt-risk-count { color: var(--jp-ui-font-color2, #57606a); padding: 4px 8px; }
.rt-risk table.rt-risk-table { border-collapse: collapse; width: 100%; table-layout: fixed; }
.rt-risk-table th { background: var(--jp-layout-color2, #f6f8fa); text-align: left;
  font-weight: 600; padding: 6px 8px;
  border-bottom: 1px solid var(--jp-border-color1, #d0d7de); white-space: nowrap; }
.rt-risk-table td { padding: 6px 8px; border-bottom: 1px solid var(--jp-border-color2, #eaeef2);
  vertical-align: top;
  overflow-wrap: break-word; line-height: 1.4; }
.rt-risk-table tr:hover td { background: var(--jp-layout-color2, #f6f8fa); }
.rt-risk-table .rt-num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
.rt-risk .rt-sub { color: var(--jp-ui-font-color2, #57606a); font-size: 12px; }
.rt-risk .rt-deal-name { font-weight: 600; }
.rt-risk .rt-late { color: #cf222e; white-space: nowrap; }
.rt-risk .rt-pick-label { color: var(--jp-ui-font-color2, #57606a); margin: 10px 0 2px; }
.rt-score { display: inline-block; min-width: 30px; text-align: center; border-radius: 10px;
  padding: 1px 6px; font-weight: 700; font-variant-numeric: tabular-nums; }
.rt-score-high { background: #ffebe9; color: #a40e26; border: 1px solid #ff8182; }
.rt-score-mid { background: #fff1e5; color: #9a3412; border: 1px solid #fdba74; }
.rt-score-low { background: #fff8c5; color: #7d4e00; border: 1px solid #d4a72c; }
.rt-reasons { list-style: none; margin: 0; padding: 0; }
.rt-reasons li { margin: 0 0 3px; line-height: 1.4; }
.rt-reasons .rt-day { white-space: nowrap; }
.rt-chip { display: inline-block; border-radius: 10px; padding: 0 7px; font-size: 11px;
  font-weight: 600; margin-right: 4px; background: #ddf4ff; color: #0550ae;
  border: 1px solid #80ccff; white-space: nowrap; }
.rt-chip-ghosted, .rt-chip-stalled { background: #ffebe9; color: #a40e26; border-color: #ff8182; }
.rt-chip-close_date_pushed, .rt-chip-amount_dropped { background: #fff1e5; color: #9a3412;
  border-color: #fdba74; }
.rt-risk .rt-empty { border: 1px dashed var(--jp-border-color1, #d0d7de); border-radius: 6px;
  padding: 16px;
  color: var(--jp-ui-font-color2, #57606a); text-align: center; margin: 8px 0; }
.rt-deal-card h3 { margin: 4px 0; font-size: 16px; }
.rt-deal-card .rt-facts { color: var(--jp-ui-font-color2, #57606a); margin-bottom: 6px; }
.rt-deal-card a.rt-download { display: inline-block; margin: 6px 0; padding: 4px 12px;
  border-radius: 6px; background: #1f883d; color: #fff; text-decoration: none;
  font-weight: 600; }
.rt-timeline { max-height: 420px; overflow-y: auto;
  border: 1px solid var(--jp-border-color2, #eaeef2);
  border-radius: 6px; }
.rt-timeline table { border-collapse: collapse; width: 100%; }
.rt-timeline td { padding: 4px 8px; border-bottom: 1px solid var(--jp-border-color2, #eaeef2);
  vertical-align: top;
  line-height: 1.4; }
.rt-timeline td.rt-when { white-space: nowrap; color: #57606a;
  font-variant-numeric: tabular-nums; width: 1%; }
.rt-timeline td.rt-kind-cell { width: 1%; }
.rt-kind { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 11px;
  background: #eaeef2; color: var(--jp-ui-font-color1, #1f2328); white-space: nowrap; }
.rt-people-sides { display: flex; gap: 32px; flex-wrap: wrap; }
.rt-people-sides > div { flex: 1 1 280px; }
.rt-people { margin: 4px 0; padding-left: 18px; }
.rt-deal-view { margin-top: 12px; }
.rt-deal-view h4 { margin: 12px 0 4px; }
.rt-deal-view .rt-deal-card, .rt-deal-view .rt-people-sides { line-height: 1.45; }
.rt-deal-view .rt-deal-card { border-top: 2px solid var(--jp-border-color1, #d0d7de);
  padding-top: 8px; }
</style>"""


@dataclass(frozen=True)
class RiskFlag:
    rule: str
    reason: str
    weight: int
    since: date | None = None

    @property
    def label(self) -> str:
        return RULE_LABELS.get(self.rule, self.rule.replace("_", " ").capitalize())


@dataclass(frozen=True)
class RiskDeal:
    """One flagged deal and every rule that flags it, heaviest first."""

    deal_id: str
    deal: str
    account: str | None
    pipeline: str | None
    stage: str | None
    owner: str | None
    amount: Decimal | None
    close_date: date | None
    score: int
    flags: tuple[RiskFlag, ...]
    currency: str | None = None


# -- pure parts ------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


def group_risk_rows(rows: Iterable[Mapping[str, Any]]) -> list[RiskDeal]:
    """``deal_risks`` rows (one per deal and rule) as one ``RiskDeal`` per deal, in the
    query's order (highest score first), each deal's flags heaviest first."""
    order: list[str] = []
    heads: dict[str, Mapping[str, Any]] = {}
    flags: dict[str, list[RiskFlag]] = {}
    for row in rows:
        deal_id = str(row["deal_id"])
        if deal_id not in heads:
            order.append(deal_id)
            heads[deal_id] = row
            flags[deal_id] = []
        flags[deal_id].append(
            RiskFlag(
                rule=str(row["rule"]),
                reason=str(row["reason"] or ""),
                weight=int(row.get("weight") or 0),
                since=as_day(row.get("since")),
            )
        )
    deals = []
    for deal_id in order:
        head = heads[deal_id]
        deal_flags = sorted(flags[deal_id], key=lambda f: (-f.weight, f.rule))
        deals.append(
            RiskDeal(
                deal_id=deal_id,
                deal=_text(head.get("deal")) or "(unnamed deal)",
                account=_text(head.get("account")),
                pipeline=_text(head.get("pipeline")),
                stage=_text(head.get("stage")),
                owner=_text(head.get("owner")),
                amount=_decimal(head.get("amount")),
                close_date=as_day(head.get("close_date")),
                score=int(head.get("risk_score") or sum(f.weight for f in deal_flags)),
                flags=tuple(deal_flags),
            )
        )
    deals.sort(key=lambda d: -d.score)  # stable: the query's order within a score
    return deals


def filter_deals(
    deals: Sequence[RiskDeal], *, owner: str | None = None, pipeline: str | None = None
) -> list[RiskDeal]:
    """The deals of ``owner`` in ``pipeline`` (None or ``ALL``: any; ``NO_OWNER``: unowned)."""

    def matches(value: str | None, wanted: str | None, missing: str) -> bool:
        if wanted is None or wanted == ALL:
            return True
        return (value or missing) == wanted

    return [
        d
        for d in deals
        if matches(d.owner, owner, NO_OWNER) and matches(d.pipeline, pipeline, "(no pipeline)")
    ]


def filter_options(deals: Sequence[RiskDeal], field: str, missing: str) -> list[tuple[str, str]]:
    """Dropdown options (label, value) for ``field`` ("owner" or "pipeline"): "All" first,
    then each value with its number of deals at risk, by name."""
    counts: dict[str, int] = {}
    for deal in deals:
        value = getattr(deal, field) or missing
        counts[value] = counts.get(value, 0) + 1
    return [(f"{ALL} ({len(deals)})", ALL)] + [
        (f"{value} ({counts[value]})", value) for value in sorted(counts, key=str.casefold)
    ]


def format_money(amount: Decimal | float | int | None, currency: str | None = None) -> str:
    """``$14,800`` (cents only when there are any); other currencies by symbol or code."""
    if amount is None:
        return "—"
    value = Decimal(str(amount))
    text = f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"
    code = (currency or "USD").upper()
    symbol = CURRENCY_SYMBOLS.get(code)
    if symbol is None:
        return f"{text} {code}"
    return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"


_AMOUNTS = re.compile(r"(\d+(?:\.\d+)?) to (\d+(?:\.\d+)?)$")


def reason_line(flag: RiskFlag, currency: str | None = None) -> str:
    """The flag as one line: its label and its reason, amounts as money."""
    reason = flag.reason
    if flag.rule == "amount_dropped":  # "...: 24300.00 to 14800.00" -> "$24,300 to $14,800"
        reason = _AMOUNTS.sub(
            lambda m: (
                f"{format_money(Decimal(m.group(1)), currency)} to "
                f"{format_money(Decimal(m.group(2)), currency)}"
            ),
            reason,
        )
    return f"{flag.label}: {reason}"


def score_class(score: int) -> str:
    return "rt-score-high" if score >= 50 else "rt-score-mid" if score >= 30 else "rt-score-low"


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def today_in(timezone: str, *, now: datetime | None = None) -> date:
    """The user's today: deal risk is measured to the end of the day where they are."""
    moment = now or datetime.now(_zone("UTC"))
    return moment.astimezone(_zone(timezone)).date()


def format_when(moment: datetime, timezone: str) -> str:
    """A stored (UTC) time as the user's wall clock: ``2026-10-30 15:05``."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=_zone("UTC"))
    return aware.astimezone(_zone(timezone)).strftime("%Y-%m-%d %H:%M")


def _close_cell(deal: RiskDeal, today: date) -> str:
    if deal.close_date is None:
        return "<td>—</td>"
    days = (today - deal.close_date).days
    late = (
        f'<div class="rt-sub rt-late">{days} day{"s" if days != 1 else ""} ago</div>'
        if days > 0
        else ""
    )
    return f"<td>{deal.close_date.isoformat()}{late}</td>"


_ISO_DAY = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")


def _unbroken_days(escaped: str) -> str:
    """Dates in a reason do not break at their hyphens when the line wraps."""
    return _ISO_DAY.sub(r'<span class="rt-day">\1</span>', escaped)


def reasons_html(flags: Sequence[RiskFlag], currency: str | None = None) -> str:
    items = "".join(
        f'<li><span class="rt-chip rt-chip-{html.escape(f.rule)}" '
        f'title="adds {f.weight} to the score">{html.escape(f.label)}</span>'
        f"{_unbroken_days(html.escape(reason_line(f, currency).split(': ', 1)[1]))}</li>"
        for f in flags
    )
    return f'<ul class="rt-reasons">{items}</ul>'


def risk_table_html(deals: Sequence[RiskDeal], *, today: date) -> str:
    """One escaped HTML table of ``deals``: score, deal (its account under it), owner, stage
    (its pipeline under it), amount, close date and the reasons as chips with their evidence.
    Names and reasons get the width; everything else stays narrow."""
    rows = "".join(
        f'<tr data-deal-id="{html.escape(d.deal_id)}">'
        f'<td><span class="rt-score {score_class(d.score)}" title="risk score, 0-100">'
        f"{d.score}</span></td>"
        f'<td><div class="rt-deal-name">{html.escape(d.deal)}</div>'
        f'<div class="rt-sub rt-account">{html.escape(d.account or "no account")}</div></td>'
        f'<td class="rt-owner">{html.escape(d.owner or NO_OWNER)}</td>'
        f'<td>{html.escape(d.stage or "—")}<div class="rt-sub">'
        f"{html.escape(d.pipeline or '')}</div></td>"
        f'<td class="rt-num">{html.escape(format_money(d.amount, d.currency))}</td>'
        f"{_close_cell(d, today)}"
        f"<td>{reasons_html(d.flags, d.currency)}</td></tr>"
        for d in deals
    )
    return (
        '<table class="rt-risk-table"><colgroup><col style="width:56px"><col style="width:21%">'
        '<col style="width:11%"><col style="width:11%">'
        '<col style="width:84px"><col style="width:104px"><col></colgroup>'
        "<thead><tr><th>Score</th><th>Deal · account</th><th>Owner</th><th>Stage</th>"
        '<th class="rt-num">Amount</th><th>Close date</th><th>Why it is at risk</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def empty_html(*, any_at_risk: bool, owner: str | None, pipeline: str | None, today: date) -> str:
    if not any_at_risk:
        return (
            f'<div class="rt-empty">No deal is at risk as of {today.isoformat()}: every open '
            "deal passes the risk rules. (Deals come from your CRM: sync it under "
            "Integrations.)</div>"
        )
    scope = " and ".join(
        f"{what} {html.escape(value)}"
        for what, value in (("owner", owner), ("pipeline", pipeline))
        if value not in (None, ALL)
    )
    return f'<div class="rt-empty">No deal at risk for {scope}.</div>'


def deal_card_html(
    deal: RiskDeal, *, today: date, brief_href: str | None = None, days_in_stage: int | None = None
) -> str:
    """The opened deal's head: name, facts, score, its flags with evidence, the brief link."""
    stage = " / ".join(p for p in (deal.pipeline, deal.stage) if p)
    if stage and days_in_stage is not None:
        stage += f" ({days_in_stage} day{'s' if days_in_stage != 1 else ''} in stage)"
    facts = " · ".join(
        html.escape(part)
        for part in (
            deal.account or "",
            deal.owner or NO_OWNER,
            stage,
            format_money(deal.amount, deal.currency),
            f"closes {deal.close_date.isoformat()}" if deal.close_date else "",
        )
        if part
    )
    link = (
        f'<a class="rt-download" href="{html.escape(brief_href)}" '
        f'download="{html.escape(brief_filename(deal))}">Download brief (PDF)</a>'
        if brief_href
        else ""
    )
    return (
        f'<div class="rt-deal-card" data-deal-id="{html.escape(deal.deal_id)}">'
        f'<h3><span class="rt-score {score_class(deal.score)}">{deal.score}</span> '
        f'{html.escape(deal.deal)}</h3><div class="rt-facts">{facts}</div>'
        f"{reasons_html(deal.flags, deal.currency)}{link}</div>"
    )


KIND_LABELS: dict[EventKind, str] = {
    "created": "Created",
    "stage": "Stage",
    "closed": "Closed",
    "amount": "Amount",
    "close_date": "Close date",
    "meeting": "Meeting",
    "email": "Email",
    "call": "Call",
    "slack": "Slack",
}


def timeline_html(timeline: DealTimeline, *, timezone: str) -> str:
    """The deal's events in time order (oldest first), times on the user's clock."""
    if not timeline.events:
        return '<div class="rt-empty">No events recorded for this deal yet.</div>'
    rows = "".join(
        f'<tr class="rt-event" data-kind="{html.escape(e.kind)}">'
        f'<td class="rt-when">{html.escape(format_when(e.at, timezone))}</td>'
        f'<td class="rt-kind-cell"><span class="rt-kind">'
        f"{html.escape(KIND_LABELS.get(e.kind, e.kind))}</span></td>"
        f"<td>{html.escape(e.title)}"
        + (f'<div class="rt-sub">{html.escape(e.detail)}</div>' if e.detail else "")
        + "</td></tr>"
        for e in timeline.events
    )
    count = len(timeline.events)
    return (
        f'<h4>Events <span class="rt-sub">{count} event{"s" if count != 1 else ""}, times in '
        f'{html.escape(timezone)}</span></h4><div class="rt-timeline"><table>{rows}</table></div>'
    )


def people_html(timeline: DealTimeline, *, timezone: str) -> str:
    """Who is engaged: the customer's contacts and our people, with their last touch."""

    def person(p: Participant) -> str:
        title = f", {p.title}" if p.title else ""
        last = f", last {format_when(p.last_touch, timezone)[:10]}" if p.last_touch else ""
        touches = f"{p.touches} touch{'es' if p.touches != 1 else ''}"
        who = html.escape(f"{p.name}{title}")
        return f'<li>{who} <span class="rt-sub">({touches}{last})</span></li>'

    sides = []
    for side, heading in (("customer", "Customer"), ("internal", "Ours")):
        people = [p for p in timeline.participants if p.side == side]
        items = "".join(person(p) for p in people) or '<li class="rt-sub">nobody yet</li>'
        sides.append(f'<div><b>{heading}</b><ul class="rt-people">{items}</ul></div>')
    return f'<h4>People</h4><div class="rt-people-sides">{"".join(sides)}</div>'


def brief_filename(deal: RiskDeal) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", deal.deal).strip("-").lower() or "deal"
    return f"{slug}-brief.pdf"


def count_text(
    shown: int, total: int, *, page: int, pages: int, first: int, today: date | None = None
) -> str:
    what = f"{total} deal{'s' if total != 1 else ''} at risk"
    if today is not None:  # the day the rules measured to (the user's today)
        what += f" on {today.isoformat()}"
    if pages <= 1:
        return what
    return f"{what} · showing {first + 1}–{first + shown} (page {page + 1} of {pages})"


# -- the store -------------------------------------------------------------------------------


def load_risk_deals(db: Database, org: str, *, as_of: date) -> list[RiskDeal]:
    """Every deal at risk in ``org`` as of ``as_of``, riskiest first, with its currency."""
    from revtops_kernel.agent.verified import run_verified

    result = run_verified(db, "deal_risks", {"as_of": as_of}, org=org, max_rows=50_000)
    frame = result.frame.astype(object).where(result.frame.notna(), None)
    deals = group_risk_rows(frame.to_dict("records"))
    currencies = deal_currencies(db, org, [d.deal_id for d in deals])
    return [RiskDeal(**{**d.__dict__, "currency": currencies.get(d.deal_id)}) for d in deals]


def deal_currencies(db: Database, org: str, deal_ids: Sequence[str]) -> dict[str, str]:
    """The currency of each of ``deal_ids`` in ``org`` (``deal_risks`` does not carry it)."""
    if not deal_ids:
        return {}
    table = Deal.__table__
    ids = [uuid.UUID(i) for i in deal_ids]
    query = select(table.c.id, table.c.currency).where(
        table.c.organization_id == org, table.c.id.in_(ids)
    )
    with db.begin() as conn:
        return {str(row.id): row.currency for row in conn.execute(query) if row.currency}


# -- the widget ------------------------------------------------------------------------------


def _import_chart() -> None:
    import revtops_kernel.artifacts.timeline_chart  # noqa: F401


BriefLink = Callable[[RiskDeal, str], str]  # (deal, the user's timezone) -> URL


class RiskView(widgets.VBox):
    """The "At risk" tab: filters, the table of the current page, and the opened deal.

    ``brief_url(deal, timezone)`` gives the URL of the deal's brief PDF (the server's
    ``/revtops/api/deals/{id}/brief.pdf``, which answers for the signed-in organization);
    without it the PDF is rendered here when the deal opens and offered as a data: link.
    Either way the download is one click on a link that is ready when the deal shows.
    ``as_of`` fixes the day the rules measure to; by default it is the user's today.
    """

    def __init__(
        self,
        db: Database,
        *,
        org: str,
        author: str,
        timezone: str = "UTC",
        brief_url: BriefLink | None = None,
        page_size: int = PAGE_SIZE,
        as_of: date | None = None,
    ) -> None:
        super().__init__()
        self.add_class("rt-risk")
        self.db, self.org, self.author = db, org, author
        self.timezone = timezone
        self.brief_url = brief_url
        self.page_size = page_size
        self.deals: list[RiskDeal] = []
        self.shown: list[RiskDeal] = []
        self.synced_at: datetime | None = None  # the org's last sync when the list was read
        self.page = 0
        self._quiet = False
        self.as_of = as_of  # a fixed day to measure on (tests, a review of a past day)
        self.today = as_of or today_in(timezone)
        self.owner = widgets.Dropdown(description="Owner", options=[(ALL, ALL)], value=ALL)
        self.pipeline = widgets.Dropdown(description="Pipeline", options=[(ALL, ALL)], value=ALL)
        for dropdown in (self.owner, self.pipeline):
            dropdown.add_class(f"rt-filter-{dropdown.description.lower()}")
            dropdown.layout = widgets.Layout(width="280px")
            dropdown.observe(self._on_filter, names="value")
        self.count = widgets.HTML()
        self.count.add_class("rt-risk-count")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.previous_button = widgets.Button(description="Previous", icon="chevron-left")
        self.next_button = widgets.Button(description="Next", icon="chevron-right")
        self.previous_button.on_click(lambda _: self.turn(-1))
        self.next_button.on_click(lambda _: self.turn(1))
        self.table = widgets.HTML()
        self.table.add_class("rt-risk-list")
        self.picker = widgets.Select(options=[], rows=6, layout=widgets.Layout(width="100%"))
        self.pick_label = widgets.HTML(
            '<div class="rt-pick-label">Open a deal to see its timeline and brief:</div>'
        )
        self.picker.add_class("rt-risk-picker")
        self.picker.observe(self._on_pick, names="value")
        self.deal_view = widgets.VBox()
        self.deal_view.add_class("rt-deal-view")
        self.children = [
            widgets.HTML(STYLE),
            widgets.HBox(
                [self.owner, self.pipeline, self.refresh_button, self.count],
                layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
            ),
            self.table,
            widgets.HBox([self.previous_button, self.next_button]),
            self.pick_label,
            self.picker,
            self.deal_view,
        ]
        self.refresh()
        # The chart's plotting libraries take seconds to import: load them while the list is
        # read, so opening the first deal does not wait for them.
        threading.Thread(target=_import_chart, name="revtops-risk-warm", daemon=True).start()

    def refresh(self, *, synced_at: datetime | None = None) -> None:
        """Re-run the rules (after a sync, or on another day) and redraw; ``synced_at``, the
        organization's last sync when the caller already read it."""
        self.today = self.as_of or today_in(self.timezone)
        try:
            self.synced_at = synced_at or self._last_sync()
            self.deals = load_risk_deals(self.db, self.org, as_of=self.today)
        except RevtopsError as exc:  # e.g. a store not set up: say so in place of the table
            self.deals, self.shown = [], []
            self.count.value = ""
            self.table.value = views.error_card(f"Could not measure deal risk: {exc}")
            self.picker.options = []
            return
        owner, pipeline = self.owner.value, self.pipeline.value
        self._quiet = True  # one redraw below, not one per option change
        try:
            self.owner.options = filter_options(self.deals, "owner", NO_OWNER)
            self.pipeline.options = filter_options(self.deals, "pipeline", "(no pipeline)")
            known_owners = {value for _, value in self.owner.options}
            known_pipelines = {value for _, value in self.pipeline.options}
            self.owner.value = owner if owner in known_owners else ALL
            self.pipeline.value = pipeline if pipeline in known_pipelines else ALL
        finally:
            self._quiet = False
        self._filter()

    def refresh_if_stale(self) -> bool:
        """Refresh when a sync (in any process: the app, a scheduled run, the CLI) finished
        since the list was read, or the user's day changed; whether it did."""
        synced_at = self._last_sync()
        if synced_at != self.synced_at or (self.as_of or today_in(self.timezone)) != self.today:
            self.refresh(synced_at=synced_at)
            return True
        return False

    def _last_sync(self) -> datetime | None:
        if self.db.is_duckdb and not Path(self.db.duckdb_path).exists():
            return None  # opening would create an empty file; the read path says what to do
        try:
            with self.db.connect() as conn:
                return last_synced_at(conn, self.org)
        except (RevtopsError, SQLAlchemyError):  # a store not set up: refresh says so
            return None

    def _on_filter(self, _change: dict[str, Any]) -> None:
        if not self._quiet:
            self._filter()

    def _filter(self) -> None:
        self.shown = filter_deals(self.deals, owner=self.owner.value, pipeline=self.pipeline.value)
        self.page = 0
        self._draw()

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.shown) // self.page_size))

    def turn(self, step: int) -> None:
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self._draw()

    def _draw(self) -> None:
        first = self.page * self.page_size
        visible = self.shown[first : first + self.page_size]
        self.count.value = html.escape(
            count_text(
                len(visible),
                len(self.shown),
                page=self.page,
                pages=self.pages,
                first=first,
                today=self.today,
            )
        )
        if visible:
            self.table.value = risk_table_html(visible, today=self.today)
        else:
            self.table.value = empty_html(
                any_at_risk=bool(self.deals),
                owner=self.owner.value,
                pipeline=self.pipeline.value,
                today=self.today,
            )
        self.previous_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.pages - 1
        self.previous_button.layout.display = self.next_button.layout.display = (
            None if self.pages > 1 else "none"
        )
        with self.picker.hold_trait_notifications():
            self.picker.options = [
                (f"{d.deal} · {d.owner or NO_OWNER} · score {d.score}", d.deal_id) for d in visible
            ]
            self.picker.value = None
        self.picker.layout.display = self.pick_label.layout.display = None if visible else "none"

    def _on_pick(self, change: dict[str, Any]) -> None:
        if isinstance(change.get("new"), str):
            self.open_deal(change["new"])

    def deal(self, deal_id: str) -> RiskDeal | None:
        return next((d for d in self.deals if d.deal_id == deal_id), None)

    def open_deal(self, deal_id: str) -> None:
        """Show the deal: its flags, its timeline (events in time order, people, chart), and
        its brief PDF one click away."""
        deal = self.deal(deal_id)
        if deal is None:
            self.deal_view.children = [
                widgets.HTML(views.error_card(f"Deal {deal_id} is not at risk (any more).")),
            ]
            return
        self.deal_view.children = [
            widgets.HTML(f'<p class="rt-status">Opening {html.escape(deal.deal)} …</p>')
        ]
        try:
            timeline = deal_timeline(self.db, self.org, deal_id)
            href = self._brief_href(deal)
        except RevtopsError as exc:
            self.deal_view.children = [widgets.HTML(views.error_card(str(exc)))]
            return
        card = deal_card_html(
            deal, today=self.today, brief_href=href, days_in_stage=timeline.deal.days_in_stage(
                self.today
            ),
        )  # fmt: skip
        self.deal_view.children = [
            widgets.HTML(card),
            self._chart(timeline),
            widgets.HTML(timeline_html(timeline, timezone=self.timezone)),
            widgets.HTML(people_html(timeline, timezone=self.timezone)),
        ]

    def _brief_href(self, deal: RiskDeal) -> str:
        if self.brief_url is not None:
            return self.brief_url(deal, self.timezone)
        # No server to ask: the PDF is made now, so the link is ready when the deal shows.
        from revtops_kernel.reports.deal_brief import deal_brief_pdf

        pdf = deal_brief_pdf(
            self.db, self.org, deal.deal_id, timezone=self.timezone, author=self.author,
            today=self.today,
        )  # fmt: skip
        return "data:application/pdf;base64," + base64.b64encode(pdf).decode()

    def _chart(self, timeline: DealTimeline) -> widgets.Widget:
        """The timeline chart, drawn with plotly.js from the kernel (as the chat's charts)."""
        from revtops_kernel.artifacts.timeline_chart import timeline_figure
        from revtops_kernel.ui.chart_widget import PlotlyChart

        until = datetime.combine(self.today, time.max, tzinfo=UTC)
        return PlotlyChart(json.loads(timeline_figure(timeline, until=until).to_json()))
