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
- Pipeline movement in the period: ``pipeline_waterfall`` in one total row, from the open
  pipeline at the period's start (opening) to the end of its last day (closing): created,
  reopened, pulled in, increased, decreased, pushed out, won, lost (and moves between pipelines,
  zero in a total). It tracks the deals closing in the quarter of the period's end
  (``movement_window="quarter"``: a close date moved out of it is pushed out, into it pulled in)
  or every open deal (``"all"``: nothing is pushed or pulled). The query checks that opening +
  movements = closing (``unexplained`` = 0); the digest says so, or says by how much it is off.
- Stage conversion of the deals created in the period (``stage_funnel``).
- Deals closing in the period: open deals with an expected close date in it (``deals_closing``).
- Deals at risk at ``as_of`` (``deal_risks``: one row per deal and rule): every flagged deal
  counts in the headline; the list shows the ``risk_top`` riskiest, each with its reasons.
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
from revtops_kernel.reports.period import DigestPeriod, _quarter_end, _quarter_start, zone
from revtops_kernel.reports.waterfall import is_waterfall, movement_frame, waterfall_figure
from revtops_kernel.store.database import Database
from revtops_kernel.timeutil import utcnow

if TYPE_CHECKING:
    import plotly.graph_objects as go

TABLE_ROWS = 12  # rows of each list in the PDF; the headline counts them all
STALLED_DAYS = 30
GHOSTED_DAYS = 14
RISK_TOP = 10  # deals listed in "Deals at risk"; the headline counts every flagged deal
RISK_REASONS = 3  # reasons quoted per deal at risk; its other flags are named
MOVEMENT_WINDOWS = ("quarter", "all")
MOVEMENT_COLUMNS = (
    *("opening", "created", "reopened", "moved_in", "pulled_in", "increased", "decreased"),
    *("pushed_out", "moved_out", "won", "lost", "closing", "unexplained"),
)

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
    at_risk_deals: int  # open deals flagged by at least one risk rule
    at_risk_amount: float


@dataclass(frozen=True)
class Movement:
    """The period's pipeline movement: ``pipeline_waterfall``'s total row."""

    opening: float
    created: float
    reopened: float
    moved_in: float
    pulled_in: float
    increased: float
    decreased: float
    pushed_out: float
    moved_out: float
    won: float
    lost: float
    closing: float
    unexplained: float  # opening + movements - closing: 0 when every change is classified
    close_from: date | None  # the tracked close-date window (None: every open deal)
    close_to: date | None

    @property
    def net(self) -> float:
        return self.closing - self.opening

    @property
    def reconciles(self) -> bool:
        return abs(self.unexplained) < 0.005

    def scope(self) -> str:
        if self.close_from is None or self.close_to is None:
            return "all open deals"
        return f"deals closing {self.close_from:%d %b} – {self.close_to:%d %b %Y}"

    def check(self) -> str:
        if self.reconciles:
            return "Reconciles: opening + movements = closing, to the cent."
        return (
            f"Does not reconcile: {_money(self.unexplained)} of the change is unexplained "
            "(opening + movements − closing); some change was not classified."
        )


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
    movement: Movement | None = None
    risk_top: int = RISK_TOP
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
            waterfall_figure(part.frame, part.spec.title)
            if is_waterfall(part.spec)
            else figure_from_spec(part.spec, part.frame)
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
            f"{h.ghosted_deals:,} with no activity in {self.ghosted_days} days; "
            f"{self.risk_line()}.",
            "",
            f"| | This period | Previous ({start:%d %b} – {end:%d %b}) |",
            "|---|---:|---:|",
        ]
        lines += [f"| {label} | {now} | {before} |" for label, now, before in rows]
        if self.movement is not None:
            lines += ["", f"**Pipeline movement** ({self.movement.scope()}): "
                      f"{self.movement_line()}. {self.movement.check()}"]  # fmt: skip
        return "\n".join(lines)

    def risk_line(self) -> str:
        """ "12 deals at risk ($1.4M)"."""
        h = self.headline
        return f"{_count(h.at_risk_deals, 'deal')} at risk ({_short(h.at_risk_amount)})"

    def movement_line(self) -> str:
        """ "pipeline +$320k net (created $900k, won $410k, lost $120k, pushed $50k)"."""
        m = self.movement
        if m is None:
            return "pipeline movement not computed"
        net = _short(m.net)
        parts = [f"created {_short(m.created)}", f"won {_short(m.won)}", f"lost {_short(m.lost)}"]
        if m.close_from is not None:
            parts += [f"pushed {_short(m.pushed_out)}", f"pulled in {_short(m.pulled_in)}"]
        return f"pipeline {'+' if m.net >= 0 else ''}{net} net ({', '.join(parts)})"

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
            _upper_first(self.risk_line()),
            _upper_first(self.movement_line()),
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
    risk_top: int = RISK_TOP,
    movement_window: str = "quarter",
) -> Digest:
    """Run the digest's queries for ``org`` over ``period`` (see ``period.resolve_period``).

    ``risk_top``: deals listed under "Deals at risk"; ``movement_window``: ``"quarter"`` tracks
    the pipeline closing in the quarter of the period's end, ``"all"`` every open deal.
    """
    zone(timezone)  # an unknown zone fails here, not when the PDF is drawn
    if isinstance(risk_top, bool) or not isinstance(risk_top, int) or not 1 <= risk_top <= 100:
        raise ValueError(f"risk_top must be a whole number from 1 to 100, got {risk_top!r}")
    if movement_window not in MOVEMENT_WINDOWS:
        raise ValueError(
            f"movement_window must be one of {', '.join(MOVEMENT_WINDOWS)}, got {movement_window!r}"
        )
    start, end, as_of = period.start, period.end, period.as_of
    prev_start, prev_end = period.previous()
    today = period.today

    def verified(name: str, params: dict[str, Any]) -> pd.DataFrame:
        return plottable(
            run_verified(db, name, params, org=org, today=today).frame, for_chart=False
        )

    def window(name: str, first: date, last: date, **extra: Any) -> pd.DataFrame:
        return verified(name, {"start_date": first, "end_date": last, **extra})

    close_window: dict[str, date | None] = {"close_from": None, "close_to": None}
    if movement_window == "quarter":
        close_window = {"close_from": _quarter_start(end), "close_to": _quarter_end(end)}
    frames = {
        "pipeline_by_stage": verified("pipeline_by_stage", {}),
        "pipeline_waterfall": window(
            "pipeline_waterfall", start, end, group_by="none", **close_window
        ),
        "stage_funnel": window("stage_funnel", start, end),
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
        # Scores are whole numbers; PostgreSQL returns the window sum as NUMERIC, DuckDB as an
        # integer: the same frame either way.
        "deal_risks": _whole(verified("deal_risks", {"as_of": as_of}), "risk_score", "weight"),
    }  # fmt: skip
    frames["deals_at_risk"] = _deals_at_risk(frames["deal_risks"])
    headline = _headline(frames)
    movement = _movement(frames["pipeline_waterfall"], **close_window)
    dates = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    as_of_text = as_of.isoformat()
    movement_params: dict[str, Any] = {**dates, "group_by": "none"}
    movement_params.update({k: v.isoformat() for k, v in close_window.items() if v is not None})
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
        *_movement_parts(movement, movement_params),
        _table(
            frames["stage_funnel"],
            TableSpec(
                title="Stage conversion of the deals created in the period",
                columns=[
                    *("pipeline", "stage", "reached", "advanced", "conversion_rate"),
                    "median_days_in_stage",
                ],
                labels={"conversion_rate": "Converted", "median_days_in_stage": "Median days"},
                formats={
                    "reached": "integer",
                    "advanced": "integer",
                    "conversion_rate": "percent",
                    "median_days_in_stage": "number",
                },
                description="Of the deals created in the period, how many reached each stage "
                "and went on to the next (the last open stage: were won); deals still open count "
                "as not yet advanced.",
                verified_query=VerifiedQueryRef(name="stage_funnel", params=dates),
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
            frames["deals_at_risk"],
            TableSpec(
                title="Deals at risk",
                columns=["deal", "owner", "amount", "risk_score", "reasons"],
                labels={"risk_score": "Score"},
                formats={"amount": "currency", "risk_score": "integer"},
                description=f"{_upper_first(_risk_text(headline))} as of {as_of:%d %b}: open "
                "deals flagged by the risk rules, riskiest first; the score (0-100) sums the "
                "weights of a deal's flags, each reason quotes its evidence.",
                verified_query=VerifiedQueryRef(name="deal_risks", params={"as_of": as_of_text}),
            ),
            rows=risk_top,
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
        movement=movement,
        risk_top=risk_top,
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
        at_risk_deals=len(frames["deals_at_risk"]),
        at_risk_amount=_total(frames["deals_at_risk"], "amount"),
    )


def _deals_at_risk(flags: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged deal, in ``deal_risks``' order (riskiest first), its reasons joined
    in the query's order (heaviest flag first)."""
    columns = ["deal_id", "deal", "account", "stage", "owner", "amount", "close_date"]
    if flags.empty:
        return pd.DataFrame(columns=[*columns, "risk_score", "flags", "reasons"])
    grouped = flags.groupby("deal_id", sort=False)
    deals = grouped[[*columns[1:], "risk_score"]].first()
    deals["flags"] = grouped["rule"].agg(", ".join)
    deals["reasons"] = grouped[["rule", "reason"]].apply(_reasons)
    return deals.reset_index()[[*columns, "risk_score", "flags", "reasons"]]


def _whole(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = frame[column].astype("int64")
    return frame


def _reasons(flags: pd.DataFrame) -> str:
    """The heaviest ``RISK_REASONS`` flags' reasons (the query lists them heaviest first), then
    the other flags by name: a list of ten deals stays on one page."""
    reasons = "; ".join(str(reason) for reason in flags["reason"].head(RISK_REASONS))
    more = [str(rule) for rule in flags["rule"].iloc[RISK_REASONS:]]
    return f"{reasons}; also {', '.join(more)}" if more else reasons


def _movement(frame: pd.DataFrame, close_from: date | None, close_to: date | None) -> Movement:
    if len(frame) > 1:
        raise ValueError(f"pipeline_waterfall with group_by=none gave {len(frame)} rows, not 1")
    row = frame.iloc[0] if len(frame) else {}  # no deal at all: every figure is 0
    values = {name: _num(row[name]) if name in row else 0.0 for name in MOVEMENT_COLUMNS}
    return Movement(**values, close_from=close_from, close_to=close_to)


def _movement_parts(movement: Movement, params: dict[str, Any]) -> list[RenderedPart]:
    steps = movement_frame({name: getattr(movement, name) for name in MOVEMENT_COLUMNS})
    ref = VerifiedQueryRef(name="pipeline_waterfall", params=params)
    about = (
        f"The open pipeline ({movement.scope()}) from the start of the period to the end of its "
        f"last day; pushed out and pulled in are close dates that left or entered that window. "
        f"{movement.check()}"
        if movement.close_from is not None
        else f"The open pipeline (all open deals) from the start of the period to the end of its "
        f"last day. {movement.check()}"
    )
    chart = ChartSpec(
        title="Pipeline movement in the period",
        type="bar",
        x="movement",
        y=["amount"],
        value_format="currency",
        x_title="Movement",
        y_title="Amount",
        description=about,
        verified_query=ref,
    )
    table = TableSpec(
        title="Pipeline movement in the period",
        columns=["movement", "amount"],
        formats={"amount": "currency"},
        description=f"What left the pipeline is negative. {movement.check()}",
        verified_query=ref,
    )
    return [RenderedPart(chart, frame=steps), RenderedPart(table, frame=steps)]


def _risk_text(h: Headline) -> str:
    return f"{_count(h.at_risk_deals, 'deal')} at risk ({_money(h.at_risk_amount)})"


def _chart(frame: pd.DataFrame, spec: ChartSpec) -> RenderedPart | None:
    if frame.empty:
        return RenderedPart(MarkdownBlock(text=f"**{spec.title}:** nothing in this period."))
    return RenderedPart(spec, frame=frame)


def _table(frame: pd.DataFrame, spec: TableSpec, rows: int = TABLE_ROWS) -> RenderedPart:
    if frame.empty:
        return RenderedPart(MarkdownBlock(text=f"**{spec.title}:** none."))
    shown = frame.head(rows)
    if len(frame) > rows:
        spec = spec.model_copy(
            update={"description": f"{spec.description or ''} Top {rows} of {len(frame):,}."}
        )
    return RenderedPart(spec, frame=shown, truncated=len(frame) > rows)


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


def _short(value: float) -> str:
    """$1.4M, $320k: the Slack line's amounts."""
    from revtops_kernel.artifacts.style import format_tick

    return format_tick(round(value), "currency")


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun if count == 1 else noun + 's'}"


def _deals(count: int, amount: float) -> str:
    return f"{_count(count, 'deal')}, {_money(amount)}"


def _slack_escape(text: str) -> str:
    """Slack mrkdwn treats <, > and & as markup (links, mentions): synced text stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
