"""The one-page deal brief a manager opens before a deal review.

For one deal: its header (account, owner, stage and days in it, amount, close date), its risk
flags with their evidence (the ``deal_risks`` verified query run for that deal alone: the
same rules, thresholds and wording as the risk list), key numbers (amount and close-date
changes, touches), the chart of its timeline, its latest events, and the people engaged on
both sides with their last touch. Laid out by the artifacts' PDF machinery (WeasyPrint, same
page header and footer as every PDF of the product), on one A4 page: lists are cut to what fits
and say how many more there are.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.artifacts import pdf as artifact_pdf
from revtops_kernel.artifacts.timeline_chart import timeline_svg
from revtops_kernel.intelligence.timeline import (
    DealTimeline,
    Participant,
    TimelineEvent,
    deal_timeline,
    money,
)
from revtops_kernel.reports.period import zone
from revtops_kernel.store.database import Database
from revtops_kernel.timeutil import as_day, utcnow

DEFAULT_AUTHOR = "Revtops deal brief"
LAST_EVENTS = 10  # the latest events on the page
PEOPLE_PER_SIDE = 6
DETAIL_CHARS = 90  # an event's detail on the page (the timeline has the rest)
RECENT_DAYS = 30  # "touches in the last N days"


@dataclass(frozen=True)
class RiskFlag:
    rule: str
    reason: str  # one line quoting the evidence
    weight: int
    since: date | None  # the day the evidence dates from


@dataclass(frozen=True)
class DealBrief:
    timeline: DealTimeline
    flags: tuple[RiskFlag, ...]
    risk_score: int
    today: date  # the day the risk rules were measured on, in the reader's zone

    @property
    def deal(self) -> Any:
        return self.timeline.deal


def deal_risk_flags(
    db: Database, org: str, deal_id: str, *, today: date | None = None
) -> tuple[tuple[RiskFlag, ...], int]:
    """The risk flags of one deal, riskiest first, and its risk score (0 for a closed deal
    or one no rule flags): ``deal_risks`` run for that deal alone."""
    result = run_verified(db, "deal_risks", {"deal_id": str(deal_id)}, org=org, today=today)
    flags = tuple(
        RiskFlag(
            rule=str(row["rule"]),
            reason=str(row["reason"]),
            weight=int(row["weight"]),
            since=as_day(row["since"]),
        )
        for row in result.frame.to_dict("records")
    )
    score = int(result.frame["risk_score"].max()) if len(result.frame) else 0
    return flags, score


def deal_brief(
    db: Database, org: str, deal_id: str, *, timezone: str = "UTC", today: date | None = None
) -> DealBrief:
    """Everything the brief shows. Raises ``DealNotFoundError`` for an unknown deal."""
    timeline = deal_timeline(db, org, deal_id)
    day = today or utcnow().astimezone(zone(timezone)).date()
    flags, score = deal_risk_flags(db, org, timeline.deal.id, today=day)
    return DealBrief(timeline, flags, score, day)


def deal_brief_html(
    brief: DealBrief, *, org_name: str, timezone: str = "UTC", author: str = DEFAULT_AUTHOR
) -> str:
    """The HTML that ``deal_brief_pdf`` lays out."""
    deal = brief.deal
    local = utcnow().astimezone(zone(timezone))
    zone_name = local.tzname() or timezone
    generated = f"{local:%Y-%m-%d %H:%M} {zone_name}"
    title = f"Deal brief: {deal.name or deal.id}"
    page = artifact_pdf.PageInfo(org_name, author, generated, title)
    end_of_today = datetime.combine(brief.today, datetime.max.time(), zone(timezone))
    svg = timeline_svg(brief.timeline, until=end_of_today) if brief.timeline.events else None
    events = brief.timeline.events
    shown = events[-LAST_EVENTS:][::-1]
    customers = [p for p in brief.timeline.participants if p.side == "customer"]
    ours = [p for p in brief.timeline.participants if p.side == "internal"]
    template = artifact_pdf._template("deal_brief.html.j2")
    return str(
        template.render(
            page=page,
            deal=deal,
            facts=_facts(brief),
            flags=brief.flags,
            risk_score=brief.risk_score,
            numbers=_numbers(brief),
            chart_uri=_svg_uri(svg) if svg else None,
            events=[_event_row(e, timezone) for e in shown],
            more_events=len(events) - len(shown),
            customers=[_person_row(p, timezone) for p in customers[:PEOPLE_PER_SIDE]],
            more_customers=max(len(customers) - PEOPLE_PER_SIDE, 0),
            ours=[_person_row(p, timezone) for p in ours[:PEOPLE_PER_SIDE]],
            more_ours=max(len(ours) - PEOPLE_PER_SIDE, 0),
            today=brief.today.isoformat(),
            timezone=timezone,
        )
    )


def deal_brief_pdf(
    db: Database,
    org: str,
    deal_id: str,
    *,
    timezone: str = "UTC",
    author: str = DEFAULT_AUTHOR,
    today: date | None = None,
) -> bytes:
    """Deal ``deal_id``'s one-page brief as PDF bytes (A4, the chart as vector SVG)."""
    brief = deal_brief(db, org, deal_id, timezone=timezone, today=today)
    org_name = artifact_pdf._page_info(
        db, org=org, author=author, timezone=timezone, title=""
    ).org_name
    html = deal_brief_html(brief, org_name=org_name, timezone=timezone, author=author)
    return artifact_pdf.html_to_pdf(html)


# --- the page's parts ---------------------------------------------------------------------------


def _facts(brief: DealBrief) -> list[tuple[str, str]]:
    deal = brief.deal
    stage = deal.stage or "unknown"
    days = deal.days_in_stage(brief.today)
    if days is not None and deal.is_open:
        stage += f" ({days} day{'' if days == 1 else 's'} in stage)"
    status = "Open" if deal.is_open else ("Won" if deal.is_won else "Lost")
    close = deal.close_date.isoformat() if deal.close_date else "none"
    if deal.is_open and deal.close_date and deal.close_date < brief.today:
        close += " (past)"
    return [
        ("Account", deal.account or "none"),
        ("Owner", deal.owner or "unassigned"),
        ("Pipeline", deal.pipeline or "none"),
        ("Stage", stage),
        ("Amount", money(deal.amount, deal.currency)),
        ("Close date", close),
        ("Created", deal.created_at.date().isoformat() if deal.created_at else "unknown"),
        ("Status", status),
    ]


def _numbers(brief: DealBrief) -> list[tuple[str, str]]:
    timeline = brief.timeline
    deal = timeline.deal
    numbers: list[tuple[str, str]] = []
    amounts = [a for _, a in timeline.amounts]
    changes = len(timeline.of_kind("amount"))
    if amounts and amounts[0] is not None and deal.amount is not None:
        first = amounts[0]
        text = f"{money(first, deal.currency)} → {money(deal.amount, deal.currency)}"
        if first:
            delta = (deal.amount - first) * 100 / first
            text += f" ({'+' if delta >= 0 else '−'}{abs(delta):.0f}%)"
        numbers.append(("Amount since creation", f"{text}, {_times(changes, 'change')}"))
    moves = [e for e in timeline.of_kind("close_date") if "pushed" in e.title]
    pulls = [e for e in timeline.of_kind("close_date") if "pulled in" in e.title]
    if moves or pulls:
        numbers.append(
            ("Close date", f"pushed {_times(len(moves), 'time')}, pulled in {len(pulls)}")
        )
    since = datetime.combine(brief.today - timedelta(days=RECENT_DAYS), datetime.min.time(), UTC)
    for label, kind in (("Meetings", "meeting"), ("Emails", "email"), ("Calls", "call")):
        all_ = timeline.of_kind(kind)  # type: ignore[arg-type]
        recent = [e for e in all_ if e.at >= since]
        if all_:
            numbers.append((label, f"{len(all_)} in all, {len(recent)} in {RECENT_DAYS} days"))
    slack = timeline.of_kind("slack")
    if slack:
        numbers.append(("Slack mentions", str(len(slack))))
    customers = [p for p in timeline.participants if p.side == "customer" and p.touches]
    numbers.append(("Customer contacts engaged", str(len(customers))))
    return numbers


def _times(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _event_row(event: TimelineEvent, timezone: str) -> dict[str, str]:
    detail = event.detail
    if len(detail) > DETAIL_CHARS:
        detail = detail[: DETAIL_CHARS - 1].rstrip() + "…"
    local = event.at.astimezone(zone(timezone))
    return {
        "date": f"{local:%Y-%m-%d}",
        "kind": event.kind.replace("_", " "),
        "title": event.title,
        "detail": detail,
    }


def _person_row(person: Participant, timezone: str) -> dict[str, str]:
    last = (
        person.last_touch.astimezone(zone(timezone)).date().isoformat()
        if person.last_touch
        else "—"
    )
    return {
        "name": person.name,
        "title": person.title or "",
        "touches": str(person.touches),
        "last": last,
    }


def _svg_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


__all__ = [
    "DEFAULT_AUTHOR",
    "DealBrief",
    "RiskFlag",
    "deal_brief",
    "deal_brief_html",
    "deal_brief_pdf",
    "deal_risk_flags",
]
