"""The weekly pipeline digest: what the pipeline looks like, what changed, what needs attention.

``build_digest`` runs the verified queries for one organization and one period
(``period.DigestPeriod``) and returns a ``Digest``: headline figures, and the charts and tables
as artifact parts (specs with their rows), so the notebook draws them with Plotly
(``Digest.figures``) and ``digest_pdf`` lays them out with the artifacts' PDF machinery.

What each section means:
- Open pipeline by stage: ``pipeline_by_stage`` (today's open deals).
- Changes in the period, against the previous period of the same length: pipeline created
  (``pipeline_created``), deals won and lost (``win_rate``: closed deals by close date); and
  stage moves: deals entering each stage in the period, from ``deal_stage_history`` (synced
  stage history: HubSpot ``propertiesWithHistory``, Salesforce ``OpportunityHistory``); a
  snapshot that repeats the stage of the deal's row before it is no entry.
- Deals closing in the period: open deals with an expected close date in it (``deals_closing``).
- Needs attention, measured at ``as_of`` (the period's end, or today if it is still running):
  slipped (open, close date already past: ``slipped_deals``), stalled (in the current stage
  for ``stalled_days``: ``stalled_deals``) and ghosted (no activity for ``ghosted_days``:
  ``deals_without_activity``).

Dates are whole days in the reader's time zone; the queries compare timestamps with those
dates at UTC midnight (as every verified query does), so an event near midnight may count in
the neighbouring day. Two sections are not verified queries (stage moves, the list of deals
closed): their SQL is in this module, runs through the same SQL guard, and is shown under them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from revtops_kernel.agent.guard import run_guarded
from revtops_kernel.agent.verified import run_verified
from revtops_kernel.artifacts.data import plottable
from revtops_kernel.artifacts.service import RenderedPart
from revtops_kernel.artifacts.specs import (
    ChartSpec,
    MarkdownBlock,
    TableSpec,
    VerifiedQueryRef,
)
from revtops_kernel.reports.period import DigestPeriod, zone
from revtops_kernel.store.database import Database
from revtops_kernel.timeutil import utcnow

if TYPE_CHECKING:
    import plotly.graph_objects as go

TABLE_ROWS = 12  # rows of each list in the PDF; the headline counts them all
STALLED_DAYS = 30
GHOSTED_DAYS = 14

# A row is an entry only when the deal's previous row had another stage: Salesforce's
# OpportunityHistory also writes a snapshot when only the amount or close date changes, and
# that row repeats the stage. The previous row may lie before the window, so LAG runs over the
# deal's history up to the window's end and the window filters after it.
STAGE_MOVES_SQL = """
WITH args AS (SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date),
history AS (
    SELECT h.deal_id, h.pipeline_id, h.stage_id, h.stage_name, h.entered_at,
        COALESCE(CAST(h.stage_id AS TEXT), h.stage_name) AS stage_key,
        lag(COALESCE(CAST(h.stage_id AS TEXT), h.stage_name))
            OVER (PARTITION BY h.deal_id ORDER BY h.entered_at, h.id) AS previous_key,
        lag(h.entered_at) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at, h.id) AS previous_at
    FROM deal_stage_history h CROSS JOIN args
    WHERE h.deleted_at IS NULL AND h.entered_at < args.end_date + 1
        AND h.deal_id IN (SELECT w.deal_id FROM deal_stage_history w CROSS JOIN args
            WHERE w.deleted_at IS NULL AND w.entered_at >= args.start_date
                AND w.entered_at < args.end_date + 1)
)
SELECT p.name AS pipeline, COALESCE(s.label, h.stage_name) AS stage,
    count(DISTINCT h.deal_id) AS deals
FROM history h CROSS JOIN args
LEFT JOIN pipelines p ON p.id = h.pipeline_id AND p.deleted_at IS NULL
LEFT JOIN deal_stages s ON s.id = h.stage_id AND s.deleted_at IS NULL
JOIN deals d ON d.id = h.deal_id AND d.deleted_at IS NULL
WHERE h.entered_at >= args.start_date
    AND (h.previous_at IS NULL OR h.previous_key IS DISTINCT FROM h.stage_key)
GROUP BY p.name, p.display_order, COALESCE(s.label, h.stage_name), s.display_order
ORDER BY p.display_order, p.name, s.display_order, stage"""

CLOSED_DEALS_SQL = """
WITH args AS (SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date)
SELECT CASE WHEN d.is_won THEN 'Won' ELSE 'Lost' END AS outcome, d.name AS deal,
    acc.name AS account, o.full_name AS owner, d.amount, d.close_date
FROM deals d CROSS JOIN args
LEFT JOIN accounts acc ON acc.id = d.account_id AND acc.deleted_at IS NULL
LEFT JOIN owners o ON o.id = d.owner_id AND o.deleted_at IS NULL
WHERE d.deleted_at IS NULL AND d.is_closed
    AND d.close_date BETWEEN args.start_date AND args.end_date
ORDER BY outcome DESC, d.amount DESC NULLS LAST, deal"""


@dataclass(frozen=True)
class Headline:
    """The figures the digest opens with (and the Slack message says)."""

    open_deals: int
    open_amount: float
    weighted_amount: float
    created_deals: int
    created_amount: float
    previous_created_deals: int
    previous_created_amount: float
    won_deals: int
    won_amount: float
    lost_deals: int
    previous_won_deals: int
    previous_won_amount: float
    previous_lost_deals: int
    stage_moves: int  # (deal, stage entered) pairs in the period
    previous_stage_moves: int
    closing_deals: int
    closing_amount: float
    slipped_deals: int
    slipped_amount: float
    stalled_deals: int
    ghosted_deals: int


@dataclass(frozen=True)
class Digest:
    org: str
    org_name: str
    period: DigestPeriod
    timezone: str
    generated_at: datetime  # UTC
    headline: Headline
    frames: dict[str, pd.DataFrame]  # every section's full result, by section name
    parts: list[RenderedPart]  # what the PDF shows, in order (lists cut to TABLE_ROWS)
    stalled_days: int = STALLED_DAYS
    ghosted_days: int = GHOSTED_DAYS
    narrative: str | None = None  # written by the assistant, when a key is configured
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Pipeline digest · {self.period.describe()}"

    def charts(self) -> list[RenderedPart]:
        return [part for part in self.parts if isinstance(part.spec, ChartSpec)]

    def tables(self) -> list[RenderedPart]:
        return [part for part in self.parts if isinstance(part.spec, TableSpec)]

    def figures(self) -> list[go.Figure]:
        """The charts as Plotly figures, for a notebook."""
        from revtops_kernel.artifacts.figures import figure_from_spec

        return [
            figure_from_spec(part.spec, part.frame)
            for part in self.charts()
            if isinstance(part.spec, ChartSpec) and part.frame is not None
        ]

    def with_narrative(self, text: str | None) -> Digest:
        from dataclasses import replace

        return replace(self, narrative=text.strip() if text and text.strip() else None)

    def headline_markdown(self) -> str:
        """The headline figures as a markdown table: this period, the previous one."""
        h = self.headline
        start, end = self.period.previous()
        rows = [
            ("Pipeline created", _deals(h.created_deals, h.created_amount),
             _deals(h.previous_created_deals, h.previous_created_amount)),
            ("Won", _deals(h.won_deals, h.won_amount),
             _deals(h.previous_won_deals, h.previous_won_amount)),
            ("Lost", _count(h.lost_deals, "deal"), _count(h.previous_lost_deals, "deal")),
            ("Stages entered", _count(h.stage_moves, "move"),
             _count(h.previous_stage_moves, "move")),
        ]  # fmt: skip
        lines = [
            f"**Open pipeline:** {_deals(h.open_deals, h.open_amount)}, "
            f"{_money(h.weighted_amount)} weighted.  ",
            f"**Closing in the period:** {_deals(h.closing_deals, h.closing_amount)}. "
            f"**Needs attention** (as of {self.period.as_of:%d %b}): "
            f"{h.slipped_deals:,} slipped ({_money(h.slipped_amount)}), "
            f"{h.stalled_deals:,} stalled ({self.stalled_days}+ days in stage), "
            f"{h.ghosted_deals:,} with no activity in {self.ghosted_days} days.",
            "",
            f"| | This period | Previous ({start:%d %b} – {end:%d %b}) |",
            "|---|---:|---:|",
        ]
        lines += [f"| {label} | {now} | {before} |" for label, now, before in rows]
        return "\n".join(lines)

    def slack_text(self) -> str:
        """The Slack message: the headline in mrkdwn (synced names escaped)."""
        h = self.headline
        closing = self.frames["deals_closing"]
        top = [
            f"• {_slack_escape(str(row.deal))} ({_money(_num(row.amount))}, {row.close_date:%d %b})"
            for row in closing.head(3).itertuples()
        ]
        lines = [
            f"*{_slack_escape(self.title)}* — {_slack_escape(self.org_name)}",
            f"Open pipeline: *{_deals(h.open_deals, h.open_amount)}* "
            f"({_money(h.weighted_amount)} weighted)",
            f"Created: {_deals(h.created_deals, h.created_amount)} "
            f"(previous period {_deals(h.previous_created_deals, h.previous_created_amount)})",
            f"Won: {_deals(h.won_deals, h.won_amount)} · Lost: {_count(h.lost_deals, 'deal')} "
            f"(previous: {h.previous_won_deals:,} won, {h.previous_lost_deals:,} lost)",
            f"Closing in the period: {_deals(h.closing_deals, h.closing_amount)}",
            *top,
            f"Needs attention: {h.slipped_deals:,} slipped, {h.stalled_deals:,} stalled, "
            f"{h.ghosted_deals:,} without activity in {self.ghosted_days} days",
        ]
        if self.narrative:
            lines += ["", _slack_escape(self.narrative)]
        return "\n".join(lines)


def build_digest(
    db: Database,
    *,
    org: str,
    period: DigestPeriod,
    timezone: str = "UTC",
    stalled_days: int = STALLED_DAYS,
    ghosted_days: int = GHOSTED_DAYS,
) -> Digest:
    """Run the digest's queries for ``org`` over ``period`` (see ``period.resolve_period``)."""
    zone(timezone)  # an unknown zone fails here, not when the PDF is drawn
    start, end, as_of = period.start, period.end, period.as_of
    prev_start, prev_end = period.previous()
    today = period.today

    def verified(name: str, params: dict[str, Any]) -> pd.DataFrame:
        return plottable(
            run_verified(db, name, params, org=org, today=today).frame, for_chart=False
        )

    def window(name: str, first: date, last: date, **extra: Any) -> pd.DataFrame:
        return verified(name, {"start_date": first, "end_date": last, **extra})

    frames = {
        "pipeline_by_stage": verified("pipeline_by_stage", {}),
        "pipeline_created": window("pipeline_created", start, end, period="year"),
        "previous_pipeline_created": window(
            "pipeline_created", prev_start, prev_end, period="year"
        ),
        "win_rate": window("win_rate", start, end, period="year"),
        "previous_win_rate": window("win_rate", prev_start, prev_end, period="year"),
        "stage_moves": _guarded(db, STAGE_MOVES_SQL, org, start, end),
        "previous_stage_moves": _guarded(db, STAGE_MOVES_SQL, org, prev_start, prev_end),
        "closed_deals": _guarded(db, CLOSED_DEALS_SQL, org, start, end),
        "deals_closing": window("deals_closing", start, end),
        "slipped_deals": verified("slipped_deals", {"as_of": as_of}),
        "stalled_deals": verified("stalled_deals", {"days": stalled_days, "as_of": as_of}),
        "deals_without_activity": verified(
            "deals_without_activity", {"days": ghosted_days, "as_of": as_of}
        ),
    }  # fmt: skip
    headline = _headline(frames)
    dates = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    as_of_text = as_of.isoformat()
    parts = [
        _chart(
            frames["pipeline_by_stage"],
            ChartSpec(
                title="Open pipeline by stage",
                type="stacked_bar",
                orientation="horizontal",
                x="stage",
                y=["amount"],
                series="pipeline",
                value_format="currency",
                x_title="Stage",
                y_title="Amount",
                description="Open deals today, in stage order.",
                verified_query=VerifiedQueryRef(name="pipeline_by_stage"),
            ),
        ),
        _table(
            frames["pipeline_by_stage"],
            TableSpec(
                title="Open pipeline by stage",
                columns=["pipeline", "stage", "deals", "amount", "weighted_amount"],
                formats={"amount": "currency", "weighted_amount": "currency", "deals": "integer"},
                verified_query=VerifiedQueryRef(name="pipeline_by_stage"),
            ),
        ),
        _chart(
            frames["stage_moves"],
            ChartSpec(
                title="Stage moves in the period",
                type="stacked_bar",
                orientation="horizontal",
                x="stage",
                y=["deals"],
                series="pipeline",
                value_format="integer",
                x_title="Stage entered",
                y_title="Deals",
                description="Deals that entered each stage in the period, from the synced "
                "stage history (a new deal enters its first stage). A deal moved to Closed Won "
                "counts as won in the period only if its close date is in it.",
                sql=STAGE_MOVES_SQL.strip(),
            ),
        ),
        _table(
            frames["closed_deals"],
            TableSpec(
                title="Deals won and lost in the period",
                columns=["outcome", "deal", "account", "owner", "amount", "close_date"],
                formats={"amount": "currency"},
                description="Closed deals whose close date is in the period.",
                sql=CLOSED_DEALS_SQL.strip(),
            ),
        ),
        _table(
            frames["deals_closing"],
            TableSpec(
                title="Deals closing in the period",
                columns=["deal", "account", "stage", "owner", "amount", "close_date"],
                formats={"amount": "currency"},
                description="Open deals with an expected close date in the period, soonest first.",
                verified_query=VerifiedQueryRef(name="deals_closing", params=dates),
            ),
        ),
        _table(
            frames["slipped_deals"],
            TableSpec(
                title="Slipped deals",
                columns=[
                    *("deal", "account", "stage", "owner", "amount", "close_date"),
                    "days_overdue",
                ],
                formats={"amount": "currency", "days_overdue": "integer"},
                description="Open deals whose expected close date has passed, biggest first.",
                verified_query=VerifiedQueryRef(name="slipped_deals", params={"as_of": as_of_text}),
            ),
        ),
        _table(
            frames["stalled_deals"],
            TableSpec(
                title="Stalled deals",
                columns=["deal", "account", "stage", "owner", "amount", "days_in_stage"],
                labels={"days_in_stage": "Days in stage"},
                formats={"amount": "currency", "days_in_stage": "integer"},
                description=f"In their stage {stalled_days} days or more, longest first.",
                verified_query=VerifiedQueryRef(
                    name="stalled_deals", params={"days": stalled_days, "as_of": as_of_text}
                ),
            ),
        ),
        _table(
            frames["deals_without_activity"],
            TableSpec(
                title="Ghosted deals (no recent activity)",
                columns=["deal", "account", "stage", "owner", "amount", "days_since_activity"],
                labels={"days_since_activity": "Days since activity"},
                formats={"amount": "currency", "days_since_activity": "integer"},
                description=f"Open deals with no meeting, call, email, note, task or message in "
                f"the {ghosted_days} days up to {as_of:%d %b}; never-touched deals first "
                "(blank days).",
                verified_query=VerifiedQueryRef(
                    name="deals_without_activity",
                    params={"days": ghosted_days, "as_of": as_of_text},
                ),
            ),
        ),
    ]
    return Digest(
        org=org,
        org_name=_org_name(db, org),
        period=period,
        timezone=timezone,
        generated_at=utcnow(),
        headline=headline,
        frames=frames,
        parts=[part for part in parts if part is not None],
        stalled_days=stalled_days,
        ghosted_days=ghosted_days,
    )


def report_parts(digest: Digest) -> list[RenderedPart]:
    """The PDF's blocks: the headline (and narrative) first, then the charts and tables."""
    texts = [digest.headline_markdown()]
    if digest.narrative:
        texts.append(f"**Summary** (written by the assistant)\n\n{digest.narrative}")
    head = [RenderedPart(MarkdownBlock(text=text)) for text in texts]
    return head + digest.parts


# --- steps -------------------------------------------------------------------------------------


def _guarded(db: Database, sql: str, org: str, start: date, end: date) -> pd.DataFrame:
    params = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    return plottable(run_guarded(db, sql, org=org, params=params).frame, for_chart=False)


def _headline(frames: dict[str, pd.DataFrame]) -> Headline:
    by_stage = frames["pipeline_by_stage"]
    slipped = frames["slipped_deals"]
    closing = frames["deals_closing"]
    return Headline(
        open_deals=_sum(by_stage, "deals"),
        open_amount=_total(by_stage, "amount"),
        weighted_amount=_total(by_stage, "weighted_amount"),
        created_deals=_sum(frames["pipeline_created"], "deals"),
        created_amount=_total(frames["pipeline_created"], "amount"),
        previous_created_deals=_sum(frames["previous_pipeline_created"], "deals"),
        previous_created_amount=_total(frames["previous_pipeline_created"], "amount"),
        won_deals=_sum(frames["win_rate"], "won"),
        won_amount=_total(frames["win_rate"], "won_amount"),
        lost_deals=_sum(frames["win_rate"], "lost"),
        previous_won_deals=_sum(frames["previous_win_rate"], "won"),
        previous_won_amount=_total(frames["previous_win_rate"], "won_amount"),
        previous_lost_deals=_sum(frames["previous_win_rate"], "lost"),
        stage_moves=_sum(frames["stage_moves"], "deals"),
        previous_stage_moves=_sum(frames["previous_stage_moves"], "deals"),
        closing_deals=len(closing),
        closing_amount=_total(closing, "amount"),
        slipped_deals=len(slipped),
        slipped_amount=_total(slipped, "amount"),
        stalled_deals=len(frames["stalled_deals"]),
        ghosted_deals=len(frames["deals_without_activity"]),
    )


def _chart(frame: pd.DataFrame, spec: ChartSpec) -> RenderedPart | None:
    if frame.empty:
        return RenderedPart(MarkdownBlock(text=f"**{spec.title}:** nothing in this period."))
    return RenderedPart(spec, frame=frame)


def _table(frame: pd.DataFrame, spec: TableSpec) -> RenderedPart:
    if frame.empty:
        return RenderedPart(MarkdownBlock(text=f"**{spec.title}:** none."))
    shown = frame.head(TABLE_ROWS)
    if len(frame) > TABLE_ROWS:
        spec = spec.model_copy(
            update={"description": f"{spec.description or ''} Top {TABLE_ROWS} of {len(frame):,}."}
        )
    return RenderedPart(spec, frame=shown, truncated=len(frame) > TABLE_ROWS)


def _org_name(db: Database, org: str) -> str:
    from sqlalchemy import select

    from revtops_kernel.store.schema import Organization

    with db.connect() as connection:
        name = connection.execute(
            select(Organization.name).where(Organization.id == org)
        ).scalar_one_or_none()
    return name or org


def _num(value: Any) -> float:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _sum(frame: pd.DataFrame, column: str) -> int:
    return int(sum(_num(value) for value in frame[column])) if len(frame) else 0


def _total(frame: pd.DataFrame, column: str) -> float:
    return float(sum(_num(value) for value in frame[column])) if len(frame) else 0.0


def _money(value: float) -> str:
    """Whole currency units: a headline has no use for cents."""
    from revtops_kernel.artifacts.style import currency_prefix

    sign = "-" if value < 0 else ""
    return f"{sign}{currency_prefix('USD')}{abs(round(value)):,}"


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun if count == 1 else noun + 's'}"


def _deals(count: int, amount: float) -> str:
    return f"{_count(count, 'deal')}, {_money(amount)}"


def _slack_escape(text: str) -> str:
    """Slack mrkdwn treats <, > and & as markup (links, mentions): synced text stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
