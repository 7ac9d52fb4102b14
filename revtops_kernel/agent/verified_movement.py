"""Verified queries of pipeline movement: waterfall between two dates, funnel and velocity,
forecast against quota.

Definitions, once (the catalogue repeats what the model needs):

- **A rep** is an owner's email, lowercased: the same person synced from HubSpot and
  Salesforce is one rep, and quotas (``quotas.owner_email``) join on it.
- **Quota in a window**: a quota whose period lies inside the window counts in full; one that
  straddles it counts pro rata by days (an annual quota in a quarter: 92/365 of it).
- **Forecast against quota**: deals with a close date in the window. Closed won: won deals.
  Commit, best case, pipeline: open deals by forecast category (the deal's, else its stage's;
  none or an unknown one counts as pipeline; Omitted is left out). Open pipeline = commit +
  best case + pipeline. Weighted = closed won + open amount × probability. Remaining quota =
  quota − closed won, at least 0. Coverage = open pipeline ÷ remaining quota. Attainment =
  closed won ÷ quota.
- **Funnel**: deals created in the window, in their current pipeline. A deal *reached* a stage
  if it entered that stage or a later open stage of its pipeline (stage history; its current
  stage when it has none), or was won. Conversion = deals that reached the next open stage
  (for the last open stage: were won) ÷ deals that reached this one; deals still open count as
  not (yet) advanced. Days in stage: calendar days from entering a stage to entering the next,
  over stage visits that ended.
- **Velocity** = open deals × win rate × average won amount ÷ average cycle days: revenue per
  day the open deals are expected to bring. Open deals: open today. Win rate, won amount and
  cycle (created → close date): deals closed in the window.
- **Waterfall**: a deal is *in the pipeline at instant t* when, as of t, it exists (created
  at or before t, not deleted today), its stage is open (stage history), its close date is in
  the tracked close window (``close_from``..``close_to``; when both are unset, any close date
  counts, so every open deal is in), and its pipeline matches the ``pipeline`` filter. Its
  value is its amount as of t (``deal_field_history``; none recorded: 0). Pipeline at t and
  stage at t come from ``deal_stage_history``; amount and close date from
  ``deal_field_history``; a deal without history keeps its current values since creation.
  The owner is today's (owner history is not synced). Closed deals that nothing happened to
  since the window began are skipped: they are out of the pipeline throughout. Opening is at
  ``start_date`` 00:00 UTC, closing at the end of ``end_date``. Every change in between moves
  the deal in, out or within a row, and each movement is classified where it happens:
  in → in the same row: amount ``increased`` or ``decreased``;
  out → in: ``created`` (its first moment), ``moved_in`` (it was in the pipeline in another
  row or another pipeline), ``reopened`` (it was closed), ``pulled_in`` (its close date moved
  into the window);
  in → out: ``won``, ``lost``, ``moved_out`` (still open in the window, in another row or
  pipeline), ``pushed_out`` (its close date left the window, later or earlier), each at the
  amount it leaves with (a change of amount at that same moment is an increase or decrease).
  So per row: opening + created + reopened + moved_in + pulled_in + increased − decreased −
  pushed_out − moved_out − won − lost = closing, to the cent. Opening and closing are read
  from the deals' states at those instants, the movements from the changes between them, so
  ``unexplained`` (opening + movements − closing) checks the classification: it is 0.
"""

from __future__ import annotations

from revtops_kernel.agent.verified_base import (
    DEAL_JOINS,
    FILTER_ARGS,
    OPEN,
    OWNER_MATCH,
    PIPELINE_MATCH,
    VerifiedQuery,
)
from revtops_kernel.agent.verified_params import (
    Param,
    end_param,
    owner_param,
    pipeline_param,
    start_param,
)

# An open deal's forecast bucket: its own category, else its stage's; unknown is pipeline.
_CATEGORY = "COALESCE(d.forecast_category, s.forecast_category)"
_PROBABILITY = "COALESCE(d.probability, s.probability, 0)"

FORECAST_VS_QUOTA = VerifiedQuery(
    name="forecast_vs_quota",
    title="Forecast against quota",
    keywords=("quota", "quotas", "attainment", "coverage", "target", "targets"),
    phrasings=(
        "How are we tracking against quota this quarter?",
        "Forecast against quota by rep",
        "What's each rep's quota attainment?",
        "Pipeline coverage of the remaining quota",
        "Which reps are behind their quota?",
        "Quota attainment by team this quarter",
        "How much of our target have we closed?",
        "Do we have enough pipeline to hit quota?",
        "Commit and best case against each rep's quota",
    ),
    description="Per rep (or team) for deals closing in a window, against the quotas imported "
    "with `revtops quotas import`: quota, closed won, commit, best case, pipeline, weighted, "
    "open pipeline, remaining quota, coverage (open pipeline ÷ remaining quota) and attainment "
    "(closed won ÷ quota).",
    params=(
        start_param("start of this quarter", "close dates and quota periods from"),
        end_param("end of this quarter", "close dates and quota periods up to"),
        Param(
            "group_by",
            "choice",
            "One row per rep, per team (the quota file's team), or one in total.",
            default="owner",
            choices=("owner", "team", "none"),
        ),
        pipeline_param(),
        owner_param(),
    ),
    sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        CAST(:group_by AS TEXT) AS group_by, {FILTER_ARGS}
),
reps AS (
    SELECT o.id AS owner_id, COALESCE(lower(o.email), CAST(o.id AS TEXT)) AS rep, o.full_name
    FROM owners o CROSS JOIN args
    WHERE o.deleted_at IS NULL AND {OWNER_MATCH}
),
quota AS (
    SELECT q.owner_email AS rep, max(q.team) AS team,
        CAST(sum(CASE WHEN q.period_start >= args.start_date AND q.period_end <= args.end_date
            THEN q.amount
            ELSE q.amount * (least(q.period_end, args.end_date)
                - greatest(q.period_start, args.start_date) + 1)
                / (q.period_end - q.period_start + 1) END) AS NUMERIC(18, 2)) AS quota
    FROM quotas q CROSS JOIN args
    WHERE q.period_start <= args.end_date AND q.period_end >= args.start_date
        AND (args.owner IS NULL OR q.owner_email IN (SELECT r.rep FROM reps r))
    GROUP BY q.owner_email
),
booked AS (
    SELECT COALESCE(r.rep, '(no owner)') AS rep,
        COALESCE(sum(d.amount) FILTER (WHERE d.is_won), 0) AS closed_won,
        COALESCE(sum(d.amount) FILTER (WHERE {OPEN} AND {_CATEGORY} = 'Commit'), 0) AS commit,
        COALESCE(sum(d.amount) FILTER (WHERE {OPEN} AND {_CATEGORY} = 'Best Case'), 0)
            AS best_case,
        COALESCE(sum(d.amount) FILTER (WHERE {OPEN}
            AND COALESCE({_CATEGORY}, 'Pipeline') NOT IN ('Commit', 'Best Case', 'Omitted')), 0)
            AS pipeline,
        COALESCE(sum(d.amount * {_PROBABILITY}) FILTER (WHERE {OPEN}
            AND COALESCE({_CATEGORY}, 'Pipeline') <> 'Omitted'), 0) AS open_weighted
    FROM deals d CROSS JOIN args
    LEFT JOIN reps r ON r.owner_id = d.owner_id
    LEFT JOIN pipelines p ON p.id = d.pipeline_id AND p.deleted_at IS NULL
    LEFT JOIN deal_stages s ON s.id = d.stage_id AND s.deleted_at IS NULL
    WHERE d.deleted_at IS NULL AND d.close_date BETWEEN args.start_date AND args.end_date
        AND {PIPELINE_MATCH} AND (args.owner IS NULL OR r.rep IS NOT NULL)
    GROUP BY COALESCE(r.rep, '(no owner)')
),
per_rep AS (
    SELECT COALESCE(b.rep, q.rep) AS rep, q.team, q.quota,
        COALESCE(b.closed_won, 0) AS closed_won, COALESCE(b.commit, 0) AS commit,
        COALESCE(b.best_case, 0) AS best_case, COALESCE(b.pipeline, 0) AS pipeline,
        COALESCE(b.open_weighted, 0) AS open_weighted
    FROM booked b FULL OUTER JOIN quota q ON q.rep = b.rep
),
grouped AS (
    SELECT CASE args.group_by WHEN 'owner' THEN COALESCE(n.name, pr.rep) END AS owner,
        CASE args.group_by WHEN 'none' THEN 'All' ELSE COALESCE(pr.team, '(no team)') END AS team,
        count(*) AS reps, sum(pr.quota) AS quota, sum(pr.closed_won) AS closed_won,
        sum(pr.commit) AS commit, sum(pr.best_case) AS best_case, sum(pr.pipeline) AS pipeline,
        sum(pr.closed_won + pr.open_weighted) AS weighted,
        sum(pr.commit + pr.best_case + pr.pipeline) AS open_pipeline
    FROM per_rep pr CROSS JOIN args
    LEFT JOIN (SELECT r.rep, max(r.full_name) AS name FROM reps r GROUP BY r.rep) n
        ON n.rep = pr.rep
    GROUP BY CASE args.group_by WHEN 'owner' THEN COALESCE(n.name, pr.rep) END,
        CASE args.group_by WHEN 'none' THEN 'All' ELSE COALESCE(pr.team, '(no team)') END
)
SELECT team, owner, reps, quota, closed_won, commit, best_case, pipeline,
    round(weighted, 2) AS weighted, open_pipeline,
    CASE WHEN quota IS NULL THEN NULL WHEN quota > closed_won THEN quota - closed_won
        ELSE 0 END AS remaining_quota,
    round(open_pipeline / NULLIF(CASE WHEN quota > closed_won THEN quota - closed_won END, 0), 2)
        AS coverage,
    round(closed_won / NULLIF(quota, 0), 4) AS attainment
FROM grouped
ORDER BY team = '(no team)', team, attainment DESC NULLS LAST, closed_won DESC,
    owner = '(no owner)', owner""",
    note="Quota comes from `revtops quotas import`; reps are matched by email. Coverage is open "
    "pipeline ÷ (quota − closed won); weighted = closed won + open amount × probability.",
)

# The cohort's joins: DEAL_JOINS without the account, which the funnel does not read (DuckDB
# would still join it).
_COHORT_JOINS = """
LEFT JOIN pipelines p ON p.id = d.pipeline_id AND p.deleted_at IS NULL
LEFT JOIN deal_stages s ON s.id = d.stage_id AND s.deleted_at IS NULL
LEFT JOIN owners o ON o.id = d.owner_id AND o.deleted_at IS NULL"""
# A stage visit (deal_stage_visits, kept by the sync: store.deal_states) is a run of a deal's
# stage changes into the same stage (Salesforce repeats a snapshot of an unchanged stage); an
# unknown stage is a visit of its own. It ends where the next visit starts. Read from the table,
# the funnel needs no window pass over the cohort's stage history (lag, then lead: 1.1 s at
# scale 10 on PostgreSQL). The refresh also keeps each deal's furthest stage (furthest_order, on
# its first visit) and each visit's calendar days (days_in_stage), so the funnel neither groups
# the cohort's visits by deal nor sorts them for the medians.

STAGE_FUNNEL = VerifiedQuery(
    name="stage_funnel",
    title="Stage funnel: conversion and days in stage",
    keywords=("conversion", "convert", "converts", "advance", "advanced"),
    phrasings=(
        "What are our conversion rates from one stage to the next?",
        "How many deals convert from each stage to the next?",
        "Conversion rate by stage this year",
        "How long do deals take to advance through the stages?",
        "Median days to convert to the next stage",
        "At which stage do deals stop advancing?",
        "Stage conversion and time in stage for New Business",
        "What share of deals advance past each stage?",
    ),
    description="Deals created in a window, per pipeline and open stage in order: how many "
    "reached the stage, how many advanced to the next (the last open stage: were won), the "
    "conversion rate, the win rate from the stage, and the median and average calendar days "
    "in the stage; then the won stage.",
    params=(
        start_param("one year ago", "deals created from"),
        end_param("today", "deals created up to"),
        pipeline_param(),
        owner_param(),
    ),
    sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        {FILTER_ARGS}
),
cohort AS (
    SELECT d.id, d.pipeline_id, COALESCE(d.is_won, false) AS is_won,
        CASE WHEN NOT COALESCE(s.is_closed, false) THEN s.display_order END AS current_order
    FROM deals d CROSS JOIN args{_COHORT_JOINS}
    WHERE d.deleted_at IS NULL AND d.created_at >= CAST(args.start_date AS TIMESTAMPTZ)
        AND d.created_at < CAST(args.end_date + 1 AS TIMESTAMPTZ) AND {PIPELINE_MATCH}
        AND {OWNER_MATCH}
),
stages AS (
    SELECT s.id, s.pipeline_id, s.label, s.display_order,
        lead(s.display_order) OVER (PARTITION BY s.pipeline_id ORDER BY s.display_order)
            AS next_order
    FROM deal_stages s
    WHERE s.deleted_at IS NULL AND COALESCE(s.is_active, true)
        AND NOT COALESCE(s.is_closed, false)
),
furthest AS (
    SELECT v.deal_id, v.furthest_order AS furthest FROM deal_stage_visits v
    WHERE v.furthest_order IS NOT NULL
),
progress AS (
    SELECT c.pipeline_id, c.is_won, COALESCE(f.furthest, c.current_order) AS furthest,
        count(*) AS deals
    FROM cohort c LEFT JOIN furthest f ON f.deal_id = c.id
    GROUP BY c.pipeline_id, c.is_won, COALESCE(f.furthest, c.current_order)
),
day_counts AS (
    SELECT v.stage_id, v.days_in_stage AS days, count(*) AS n
    FROM deal_stage_visits v JOIN cohort c ON c.id = v.deal_id
    WHERE v.days_in_stage IS NOT NULL
    GROUP BY v.stage_id, v.days_in_stage
),
day_ranks AS (
    SELECT dc.stage_id, dc.days, dc.n,
        sum(dc.n) OVER (PARTITION BY dc.stage_id ORDER BY dc.days ROWS UNBOUNDED PRECEDING)
            AS upto,
        sum(dc.n) OVER (PARTITION BY dc.stage_id) AS total
    FROM day_counts dc
),
-- percentile_cont(0.5) from the counts of visits per number of days: the days at ranks
-- floor((N + 1) / 2) and floor(N / 2) + 1 (the same rank when N is odd), halfway between.
stage_days AS MATERIALIZED (
    SELECT r.stage_id, CAST(sum(r.n) AS BIGINT) AS visits,
        CAST(min(r.days) FILTER (WHERE 2 * r.upto >= r.total) + min(r.days)
            FILTER (WHERE 2 * r.upto > r.total) AS DOUBLE PRECISION) / 2 AS median_days,
        round(CAST(sum(r.days * r.n) AS NUMERIC) / sum(r.n), 1) AS avg_days
    FROM day_ranks r
    GROUP BY r.stage_id
),
funnel AS (
    SELECT st.pipeline_id, st.id AS stage_id, st.label, st.display_order,
        CAST(COALESCE(sum(pr.deals) FILTER (WHERE pr.is_won OR pr.furthest >= st.display_order),
            0) AS BIGINT) AS reached,
        CAST(COALESCE(sum(pr.deals) FILTER (WHERE pr.is_won OR pr.furthest >= st.next_order),
            0) AS BIGINT) AS advanced,
        CAST(COALESCE(sum(pr.deals) FILTER (WHERE pr.is_won), 0) AS BIGINT) AS won
    FROM stages st LEFT JOIN progress pr ON pr.pipeline_id = st.pipeline_id
    GROUP BY st.pipeline_id, st.id, st.label, st.display_order
    UNION ALL
    SELECT s.pipeline_id, s.id, s.label, s.display_order,
        CAST(COALESCE(sum(pr.deals) FILTER (WHERE pr.is_won), 0) AS BIGINT), NULL,
        CAST(COALESCE(sum(pr.deals) FILTER (WHERE pr.is_won), 0) AS BIGINT)
    FROM deal_stages s LEFT JOIN progress pr ON pr.pipeline_id = s.pipeline_id
    WHERE s.deleted_at IS NULL AND s.is_won
    GROUP BY s.pipeline_id, s.id, s.label, s.display_order
)
SELECT p.name AS pipeline, f.label AS stage, f.display_order AS stage_order, f.reached,
    f.advanced, round(CAST(f.advanced AS NUMERIC) / NULLIF(f.reached, 0), 4) AS conversion_rate,
    round(CAST(f.won AS NUMERIC) / NULLIF(f.reached, 0), 4) AS win_rate_from_stage,
    sd.median_days AS median_days_in_stage, sd.avg_days AS avg_days_in_stage,
    COALESCE(sd.visits, 0) AS completed_visits
FROM funnel f CROSS JOIN args
JOIN pipelines p ON p.id = f.pipeline_id AND p.deleted_at IS NULL
LEFT JOIN stage_days sd ON sd.stage_id = f.stage_id
WHERE {PIPELINE_MATCH} AND f.reached > 0
ORDER BY p.display_order, p.name, f.display_order""",
    note="A deal reached a stage if it entered it or a later open stage, or was won; deals "
    "still open count as not yet advanced. Days in stage are calendar days.",
)

_SEGMENT = """CASE args.group_by
        WHEN 'owner' THEN COALESCE(o.full_name, o.email, '(no owner)')
        WHEN 'deal_type' THEN COALESCE(d.deal_type, '(no type)')
        WHEN 'pipeline' THEN COALESCE(p.name, '(no pipeline)')
        WHEN 'account_size' THEN CASE WHEN acc.employee_count IS NULL THEN '(size unknown)'
            WHEN acc.employee_count < 200 THEN 'SMB (under 200)'
            WHEN acc.employee_count < 2000 THEN 'Mid-market (200-1,999)'
            ELSE 'Enterprise (2,000+)' END
        ELSE 'All' END"""

SALES_VELOCITY = VerifiedQuery(
    name="sales_velocity",
    title="Sales velocity",
    keywords=("velocity", "speed", "fast"),
    phrasings=(
        "What's our sales velocity?",
        "Sales velocity by rep",
        "How fast is revenue moving through the pipeline?",
        "Sales velocity by deal type",
        "Velocity by company size",
        "Velocity of revenue per rep",
    ),
    description="Sales velocity = open deals × win rate × average won amount ÷ average cycle "
    "days (revenue per day), per rep, deal type, pipeline, account size or overall: open deals "
    "today; win rate, average won amount and average cycle (created → close) of deals closed in "
    "a window.",
    params=(
        start_param("one year ago", "close dates from"),
        end_param("today", "close dates up to"),
        Param(
            "group_by",
            "choice",
            "Segment: rep, deal type, pipeline, account size (employees: under 200, "
            "200-1,999, 2,000+) or overall.",
            default="owner",
            choices=("owner", "deal_type", "pipeline", "account_size", "none"),
        ),
        pipeline_param(),
        owner_param(),
    ),
    sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        CAST(:group_by AS TEXT) AS group_by, {FILTER_ARGS}
),
scoped AS (
    SELECT {_SEGMENT} AS segment,
        {OPEN} AS is_open,
        COALESCE(d.is_closed, false) AND d.close_date BETWEEN args.start_date AND args.end_date
            AS closed_in_window,
        COALESCE(d.is_won, false) AS is_won, d.amount,
        d.close_date - CAST(d.created_at AS DATE) AS cycle_days
    FROM deals d CROSS JOIN args{DEAL_JOINS}
    WHERE d.deleted_at IS NULL AND {PIPELINE_MATCH} AND {OWNER_MATCH}
),
measured AS (
    SELECT segment, count(*) FILTER (WHERE is_open) AS open_deals,
        count(*) FILTER (WHERE closed_in_window AND is_won) AS won_deals,
        count(*) FILTER (WHERE closed_in_window) AS closed_deals,
        CAST(count(*) FILTER (WHERE closed_in_window AND is_won) AS NUMERIC)
            / NULLIF(count(*) FILTER (WHERE closed_in_window), 0) AS win_rate,
        avg(amount) FILTER (WHERE closed_in_window AND is_won) AS avg_won_amount,
        avg(cycle_days) FILTER (WHERE closed_in_window AND is_won) AS avg_cycle_days
    FROM scoped
    GROUP BY segment
)
SELECT segment, open_deals, won_deals, closed_deals, round(win_rate, 4) AS win_rate,
    round(avg_won_amount, 2) AS avg_won_amount, round(avg_cycle_days, 1) AS avg_cycle_days,
    round(open_deals * win_rate * avg_won_amount / NULLIF(avg_cycle_days, 0), 2)
        AS velocity_per_day
FROM measured
WHERE open_deals > 0 OR closed_deals > 0
ORDER BY velocity_per_day DESC NULLS LAST, segment""",
    note="Velocity = open deals × win rate × average won amount ÷ average cycle days, a revenue "
    "rate per day; the segment is the rep, deal type, pipeline or account size.",
)

# A deal's state after each moment something changed: one row per deal and instant, each
# attribute carried forward from its last change. Changes after the window never matter.
_WINDOW_IN = """(args.close_from IS NULL OR st.close_date >= args.close_from)
            AND (args.close_to IS NULL OR st.close_date <= args.close_to)"""
_WINDOW_IN_B = _WINDOW_IN.replace("st.close_date", "st.prev_close_date")

# Which change of one attribute a moment's value comes from: the count of that attribute's
# changes so far (the running sum of its flag), a moment before the first change counting as
# after it (GREATEST(..., 1): it takes the first value). The moments of one group share that
# change's value (max over the group: the one row with the change); a deal with no change of
# the attribute has none in its only group and keeps its current value. Running sums over the
# moments' one order, then groups within each deal: PostgreSQL sorts the moments once and each
# group's window only within a deal (an incremental sort), where looking each value up at the
# moment of its last change took three sorts and merge joins of all the moments.
_GROUP = "GREATEST(sum(m.{flag}) OVER w, 1)"
_CARRIED = "max(t.{column}) OVER (PARTITION BY t.deal_id, t.{group})"

PIPELINE_WATERFALL = VerifiedQuery(
    name="pipeline_waterfall",
    title="Pipeline waterfall",
    keywords=("waterfall", "bridge", "walk", "pulled", "reconcile"),
    phrasings=(
        "Show the pipeline waterfall for this quarter",
        "How did our pipeline move since the start of the quarter?",
        "Pipeline movement: created, won, lost, pushed and pulled in",
        "Pipeline bridge from opening to closing",
        "What moved in and out of the pipeline this month?",
        "Opening and closing pipeline and the movements in between",
        "Pipeline walk by rep",
        "How much pipeline was pushed out or pulled in?",
    ),
    description="How the open pipeline went from its value at `start_date` (opening) to its "
    "value at the end of `end_date` (closing), per pipeline, rep or overall: + created + "
    "reopened + moved_in + pulled_in + increased − decreased − pushed_out − moved_out − won − "
    "lost, from stage, amount and close-date history; reconciles to the cent (unexplained = "
    "0). With close_from/close_to, only deals whose close date (at each moment) is in that "
    "window count as pipeline, and close-date moves across it are pulled_in/pushed_out.",
    params=(
        start_param("start of this quarter", "opening pipeline at 00:00 UTC of this day"),
        end_param("today", "closing pipeline at the end of this day"),
        Param(
            "close_from",
            "date",
            "Track only deals closing from this day (with close_to); unset: all open deals.",
        ),
        Param("close_to", "date", "Track only deals closing up to this day (with close_from)."),
        Param(
            "group_by",
            "choice",
            "One row per pipeline (as of each moment), per rep (today's owner), or in total.",
            default="pipeline",
            choices=("pipeline", "owner", "none"),
        ),
        pipeline_param(),
        owner_param(),
    ),
    sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        CAST(:close_from AS DATE) AS close_from, CAST(:close_to AS DATE) AS close_to,
        CAST(:group_by AS TEXT) AS group_by, {FILTER_ARGS}
),
scoped AS (
    SELECT d.id, COALESCE(d.is_closed, false) AS is_closed,
        COALESCE(o.full_name, o.email, '(no owner)') AS owner
    FROM deals d CROSS JOIN args
    LEFT JOIN owners o ON o.id = d.owner_id AND o.deleted_at IS NULL
    WHERE d.deleted_at IS NULL AND d.created_at < CAST(args.end_date + 1 AS TIMESTAMPTZ)
        AND {OWNER_MATCH}
),
-- Each state that overlaps the window, beside the state before it (the _b columns). A closed
-- deal whose last change came before the window is out of the pipeline throughout: its one
-- overlapping state (its current one) is skipped.
steps AS (
    SELECT st.deal_id, st.valid_from AS at, st.seq, st.valid_to AS next_at, st.stage_state,
        COALESCE(st.amount, 0) AS amount,
        COALESCE(st.stage_state = 0 AND {_WINDOW_IN}, false) AS live,
        COALESCE(st.stage_state = 0 AND {_WINDOW_IN}
            AND (args.pipeline IS NULL OR lower(p.name) = args.pipeline), false) AS inside,
        CASE args.group_by WHEN 'pipeline' THEN COALESCE(p.name, '(no pipeline)')
            WHEN 'owner' THEN c.owner ELSE 'All' END AS grouping,
        COALESCE(st.prev_stage_state = 0 AND {_WINDOW_IN_B}, false) AS live_b,
        COALESCE(st.prev_stage_state = 0 AND {_WINDOW_IN_B}
            AND (args.pipeline IS NULL OR lower(pb.name) = args.pipeline), false) AS inside_b,
        CASE args.group_by WHEN 'pipeline' THEN COALESCE(pb.name, '(no pipeline)')
            WHEN 'owner' THEN c.owner ELSE 'All' END AS grouping_b,
        CASE WHEN st.seq > 1 THEN COALESCE(st.prev_amount, 0) END AS amount_b,
        st.prev_stage_state AS state_b
    FROM deal_states st CROSS JOIN args
    JOIN scoped c ON c.id = st.deal_id
    LEFT JOIN pipelines p ON p.id = st.pipeline_id AND p.deleted_at IS NULL
    LEFT JOIN pipelines pb ON pb.id = st.prev_pipeline_id AND pb.deleted_at IS NULL
    WHERE st.valid_from < CAST(args.end_date + 1 AS TIMESTAMPTZ)
        AND (st.valid_to >= CAST(args.start_date AS TIMESTAMPTZ)
            OR (st.valid_to IS NULL AND st.stage_state = 0)
            OR (st.valid_to IS NULL AND st.valid_from >= CAST(args.start_date AS TIMESTAMPTZ)))
        AND NOT (c.is_closed AND st.valid_to IS NULL
            AND st.valid_from < CAST(args.start_date AS TIMESTAMPTZ))
),
-- Each state on two sides: its own row (side 1: opening, closing, and what came in with it)
-- and the row it left (side 2: amount changes and what went out with it). One pass, no
-- materialized CTE scanned five times.
sides AS (
    SELECT 1 AS side
    UNION ALL
    SELECT 2
),
flows AS (
    SELECT CASE x.side WHEN 1 THEN s.grouping ELSE s.grouping_b END AS grouping,
        s.at >= args.start_date AND s.at < args.end_date + 1 AS in_window, s.amount,
        CASE WHEN x.side = 1 AND s.inside AND s.at < args.start_date
            AND (s.next_at IS NULL OR s.next_at >= args.start_date) THEN s.amount END AS opening,
        CASE WHEN x.side = 1 AND s.inside AND s.at < args.end_date + 1
            AND (s.next_at IS NULL OR s.next_at >= args.end_date + 1) THEN s.amount END AS closing,
        CASE WHEN x.side = 1 AND s.inside AND NOT (s.inside_b AND s.grouping = s.grouping_b)
            THEN CASE WHEN s.seq = 1 THEN 'created' WHEN s.live_b THEN 'moved_in'
                WHEN s.state_b <> 0 THEN 'reopened' ELSE 'pulled_in' END END AS came,
        CASE WHEN x.side = 2 AND s.inside_b AND s.amount <> s.amount_b
            AND ((s.inside AND s.grouping = s.grouping_b) OR NOT s.live)
            THEN s.amount - s.amount_b END AS change,
        CASE WHEN x.side = 2 AND s.inside_b AND NOT (s.inside AND s.grouping = s.grouping_b)
            THEN CASE WHEN s.live THEN 'moved_out' WHEN s.stage_state = 2 THEN 'won'
                WHEN s.stage_state = 1 THEN 'lost' ELSE 'pushed_out' END END AS went,
        CASE WHEN s.live THEN s.amount_b ELSE s.amount END AS went_value
    FROM steps s CROSS JOIN args CROSS JOIN sides x
),
totals AS (
    SELECT grouping,
        COALESCE(sum(opening), 0) AS opening,
        COALESCE(sum(amount) FILTER (WHERE in_window AND came = 'created'), 0) AS created,
        COALESCE(sum(amount) FILTER (WHERE in_window AND came = 'reopened'), 0) AS reopened,
        COALESCE(sum(amount) FILTER (WHERE in_window AND came = 'moved_in'), 0) AS moved_in,
        COALESCE(sum(amount) FILTER (WHERE in_window AND came = 'pulled_in'), 0) AS pulled_in,
        COALESCE(sum(change) FILTER (WHERE in_window AND change > 0), 0) AS increased,
        COALESCE(-sum(change) FILTER (WHERE in_window AND change < 0), 0) AS decreased,
        COALESCE(sum(went_value) FILTER (WHERE in_window AND went = 'pushed_out'), 0)
            AS pushed_out,
        COALESCE(sum(went_value) FILTER (WHERE in_window AND went = 'moved_out'), 0)
            AS moved_out,
        COALESCE(sum(went_value) FILTER (WHERE in_window AND went = 'won'), 0) AS won,
        COALESCE(sum(went_value) FILTER (WHERE in_window AND went = 'lost'), 0) AS lost,
        COALESCE(sum(closing), 0) AS closing
    FROM flows
    WHERE opening IS NOT NULL OR closing IS NOT NULL
        OR (in_window AND (came IS NOT NULL OR change IS NOT NULL OR went IS NOT NULL))
    GROUP BY grouping
)
SELECT grouping, opening, created, reopened, moved_in, pulled_in, increased, decreased,
    pushed_out, moved_out, won, lost, closing,
    opening + created + reopened + moved_in + pulled_in + increased - decreased - pushed_out
        - moved_out - won - lost - closing AS unexplained
FROM totals
ORDER BY grouping""",
    note="Pipeline at an instant = open deals (stage history) whose close date then was in the "
    "tracked window (all open deals when none is given), valued at their amount then; owner is "
    "today's. opening + created + reopened + moved_in + pulled_in + increased − decreased − "
    "pushed_out − moved_out − won − lost = closing.",
)

MOVEMENT_QUERIES: tuple[VerifiedQuery, ...] = (
    FORECAST_VS_QUOTA,
    STAGE_FUNNEL,
    SALES_VELOCITY,
    PIPELINE_WATERFALL,
)
