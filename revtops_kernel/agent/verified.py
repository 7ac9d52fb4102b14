"""Verified queries: trusted, parameterized SQL for the questions RevOps asks every week.

The model calls them through the ``run_verified_query`` tool (input: ``VERIFIED_TOOL_SCHEMA``,
description: ``catalogue()``); answers built on them are labelled as verified. Each query is
one SQL text that runs unchanged on DuckDB and PostgreSQL (only functions both have:
``date_trunc``, ``CAST``, ``COALESCE``, ``FILTER (WHERE ...)``, ``percentile_cont``, date minus
date = days, date minus integer = date), and goes through the same SQL guard as the model's own
SQL: the guard adds the organization scope, so no query filters on ``organization_id`` itself.

Conventions every query follows:
- current data only: ``deleted_at IS NULL`` on every synced table;
- an open deal is one whose ``is_closed`` is not true; a won deal has ``is_won`` true;
- windows are inclusive of both days (``close_date BETWEEN start AND end``; timestamps from
  ``start`` 00:00 UTC up to the end of ``end``);
- parameters are bound (``:name``), each appears once, in an ``args`` CTE that casts it, so
  PostgreSQL never has to guess a parameter's type and ``NULL`` means "any";
  the CTE is ``NOT MATERIALIZED``: PostgreSQL then inlines it where it is used and plans with
  the values (``args.pipeline IS NULL`` folds away); materialized, its columns are opaque, every
  filter on them is a guess, and at scale deal_risks' nested loops over mis-estimated CTEs ran
  87 s instead of 1.5 s (DuckDB accepts the keyword too);
- a window on a timestamp compares it with timestamps (``a.occurred_at >= CAST(args.start_date
  AS TIMESTAMPTZ)``), not with the dates: PostgreSQL's timestamptz-to-date
  operators are not leakproof, and under row-level security the planner then ignores the
  column's statistics and guesses 1 row for the window (nested loops at 28 s for
  meetings_by_account at scale 1); the comparison itself is the same (dates are UTC midnights);
- ``owner`` matches a rep's full name or email, ``pipeline`` a pipeline's name, ignoring case.

Approximations, said where they are made:
- Time in stage: ``stalled_deals`` counts days since ``deals.stage_entered_at`` (the entry of
  the current stage in the synced stage history: HubSpot ``propertiesWithHistory=dealstage``,
  Salesforce ``OpportunityHistory``). A deal whose provider sent no stage history has no entry
  time and is not listed.
- Slipped deals: without close-date history, "slipped" means open with an expected close date
  already past (the deal missed its date and nobody moved it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from revtops_kernel.agent.verified_base import (
    DEAL_COLUMNS,
    DEAL_JOINS,
    FILTER_ARGS,
    OPEN,
    OWNER_MATCH,
    PIPELINE_MATCH,
    VerifiedQuery,
)
from revtops_kernel.agent.verified_movement import MOVEMENT_QUERIES
from revtops_kernel.agent.verified_params import (
    Param,
    as_of_param,
    end_param,
    owner_param,
    pipeline_param,
    start_param,
)
from revtops_kernel.agent.verified_risk import RISK_QUERIES
from revtops_kernel.agent.verified_timeline import TIMELINE_QUERIES
from revtops_kernel.errors import VerifiedQueryError
from revtops_kernel.store.database import Database
from revtops_kernel.store.query import QueryResult

_CORE_QUERIES: tuple[VerifiedQuery, ...] = (
    VerifiedQuery(
        name="pipeline_by_stage",
        title="Open pipeline by stage",
        keywords=("stage", "weighted"),
        phrasings=(
            "What's our open pipeline by stage?",
            "How much pipeline do we have in each stage?",
            "Show me the funnel by stage",
            "Open deals per stage with amounts",
            "Where are our open deals sitting in the pipeline?",
            "Weighted pipeline by stage",
            "Pipeline breakdown by deal stage",
            "How many open opportunities are in each stage?",
            "Total open pipeline value",
            "Stage distribution of the open deals",
        ),
        description="Open deals per pipeline and stage, in stage order: count, amount and "
        "probability-weighted amount.",
        params=(pipeline_param(), owner_param()),
        sql=f"""
WITH args AS NOT MATERIALIZED (SELECT {FILTER_ARGS})
SELECT p.name AS pipeline, COALESCE(s.label, d.stage_name) AS stage,
    s.display_order AS stage_order, count(*) AS deals,
    COALESCE(sum(d.amount), 0) AS amount,
    COALESCE(sum(d.amount * COALESCE(d.probability, s.probability)), 0) AS weighted_amount
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE {OPEN} AND {PIPELINE_MATCH} AND {OWNER_MATCH}
GROUP BY p.name, p.display_order, COALESCE(s.label, d.stage_name), s.display_order
ORDER BY p.display_order, p.name, s.display_order, stage""",
    ),
    VerifiedQuery(
        name="forecast_by_category",
        title="Forecast by category",
        keywords=("forecast", "commit", "committed", "committing", "category", "landing"),
        phrasings=(
            "What's the forecast by category this quarter?",
            "What's in commit and best case?",
            "Show the forecast call: commit, best case, pipeline",
            "How much is committed for the quarter?",
            "Forecast categories breakdown for deals closing",
            "Where will we land this quarter?",
            "What's our quarter forecast?",
            "Commit and best case numbers",
        ),
        description="Deals expected to close (or closed) in a window, by forecast category "
        "(Closed, Commit, Best Case, Pipeline, Omitted): count, amount, weighted amount.",
        params=(
            start_param("start of this quarter", "close dates from"),
            end_param("end of this quarter", "close dates up to"),
            pipeline_param(),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        {FILTER_ARGS}
)
SELECT COALESCE(d.forecast_category, s.forecast_category, 'Uncategorized') AS forecast_category,
    count(*) AS deals, COALESCE(sum(d.amount), 0) AS amount,
    COALESCE(sum(d.amount * COALESCE(d.probability, s.probability)), 0) AS weighted_amount
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE d.deleted_at IS NULL AND d.close_date BETWEEN args.start_date AND args.end_date
    AND {PIPELINE_MATCH} AND {OWNER_MATCH}
GROUP BY COALESCE(d.forecast_category, s.forecast_category, 'Uncategorized')
ORDER BY CASE COALESCE(d.forecast_category, s.forecast_category, 'Uncategorized')
    WHEN 'Closed' THEN 1 WHEN 'Commit' THEN 2 WHEN 'Best Case' THEN 3 WHEN 'Pipeline' THEN 4
    WHEN 'Omitted' THEN 5 ELSE 6 END""",
    ),
    VerifiedQuery(
        name="win_rate",
        title="Win rate by period",
        keywords=("win", "won", "lost", "lose", "loss", "rate", "percentage"),
        phrasings=(
            "What's our win rate by quarter?",
            "What's our win rate?",
            "What is the close rate over time?",
            "How often do we win the deals we close out?",
            "Win rate trend by month",
            "Won versus lost deals per quarter",
            "What percentage of deals do we win?",
            "Win loss ratio over the last year",
            "Win rate by amount per year",
        ),
        description="Deals closed in a window, per month, quarter or year of their close date: "
        "won, lost, win rate by count and by amount.",
        params=(
            Param(
                "period",
                "choice",
                "Bucket of the close date.",
                default="quarter",
                choices=("month", "quarter", "year"),
            ),
            start_param("one year ago", "close dates from"),
            end_param("today", "close dates up to"),
            pipeline_param(),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:period AS TEXT) AS period, CAST(:start_date AS DATE) AS start_date,
        CAST(:end_date AS DATE) AS end_date, {FILTER_ARGS}
)
SELECT CAST(date_trunc(args.period, CAST(d.close_date AS TIMESTAMP)) AS DATE) AS period_start,
    count(*) FILTER (WHERE d.is_won) AS won,
    count(*) FILTER (WHERE NOT COALESCE(d.is_won, false)) AS lost,
    round(CAST(count(*) FILTER (WHERE d.is_won) AS NUMERIC) / count(*), 4) AS win_rate,
    COALESCE(sum(d.amount) FILTER (WHERE d.is_won), 0) AS won_amount,
    round(COALESCE(sum(d.amount) FILTER (WHERE d.is_won), 0)
        / NULLIF(sum(d.amount), 0), 4) AS win_rate_by_amount
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE d.deleted_at IS NULL AND d.is_closed
    AND d.close_date BETWEEN args.start_date AND args.end_date
    AND {PIPELINE_MATCH} AND {OWNER_MATCH}
GROUP BY CAST(date_trunc(args.period, CAST(d.close_date AS TIMESTAMP)) AS DATE)
ORDER BY period_start""",
    ),
    VerifiedQuery(
        name="win_rate_by_owner",
        title="Win rate by rep",
        keywords=("win", "won", "lost", "loss", "rate", "percentage"),
        phrasings=(
            "What's the win rate by rep?",
            "Which reps have the best win rate?",
            "Win rate per sales rep",
            "Close rate for each rep on the team",
            "Won and lost deals per owner",
            "Who on the team wins the most of their deals?",
            "Win loss by salesperson",
        ),
        description="Deals closed in a window, per owner: won, lost, win rate by count, won "
        "amount.",
        params=(
            start_param("one year ago", "close dates from"),
            end_param("today", "close dates up to"),
            pipeline_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        lower(CAST(:pipeline AS TEXT)) AS pipeline
)
SELECT COALESCE(o.full_name, o.email, '(no owner)') AS owner,
    count(*) FILTER (WHERE d.is_won) AS won,
    count(*) FILTER (WHERE NOT COALESCE(d.is_won, false)) AS lost,
    round(CAST(count(*) FILTER (WHERE d.is_won) AS NUMERIC) / count(*), 4) AS win_rate,
    COALESCE(sum(d.amount) FILTER (WHERE d.is_won), 0) AS won_amount
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE d.deleted_at IS NULL AND d.is_closed
    AND d.close_date BETWEEN args.start_date AND args.end_date AND {PIPELINE_MATCH}
GROUP BY COALESCE(o.full_name, o.email, '(no owner)')
ORDER BY win_rate DESC, won_amount DESC, owner""",
    ),
    VerifiedQuery(
        name="average_sales_cycle",
        title="Average sales cycle",
        keywords=("cycle", "velocity", "long", "median", "average"),
        phrasings=(
            "What's our average sales cycle?",
            "How long does it take to close a deal?",
            "Average days to close won deals",
            "Median sales cycle length",
            "Time from deal creation to close",
            "How many days do won deals take to close?",
            "Sales cycle length by rep",
            "Deal velocity: days from open to won",
        ),
        description="Won deals closed in a window: how many, and the average and median days "
        "from creation to close, overall or per pipeline or owner.",
        params=(
            start_param("one year ago", "close dates from"),
            end_param("today", "close dates up to"),
            Param(
                "group_by",
                "choice",
                "One row overall, or one per pipeline or owner.",
                default="pipeline",
                choices=("none", "pipeline", "owner"),
            ),
            pipeline_param(),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        CAST(:group_by AS TEXT) AS group_by, {FILTER_ARGS}
),
cycles AS (
    SELECT CASE args.group_by WHEN 'pipeline' THEN p.name WHEN 'owner' THEN o.full_name
            ELSE 'All' END AS grouping,
        d.close_date - CAST(d.created_at AS DATE) AS days, d.amount
    FROM deals d CROSS JOIN args{DEAL_JOINS}
    WHERE d.deleted_at IS NULL AND d.is_won AND d.created_at IS NOT NULL
        AND d.close_date BETWEEN args.start_date AND args.end_date
        AND {PIPELINE_MATCH} AND {OWNER_MATCH}
)
SELECT grouping, count(*) AS won_deals, round(avg(days), 1) AS avg_days,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median_days,
    round(avg(amount), 2) AS avg_amount
FROM cycles
GROUP BY grouping
ORDER BY won_deals DESC, grouping""",
        note="Days run from the deal's creation to its close date.",
    ),
    VerifiedQuery(
        name="stalled_deals",
        title="Stalled deals",
        keywords=("stalled", "stuck", "stagnant", "moved", "budged", "progress"),
        phrasings=(
            "Which deals are stalled?",
            "Deals stuck in the same stage for 30 days",
            "What deals haven't moved in a month?",
            "Show stuck opportunities",
            "Deals that have not changed in weeks",
            "Which opportunities are stagnant in their stage?",
            "Open deals sitting in stage too long",
            "Deals with no progress or updates",
        ),
        description="Open deals that have been in their current stage for at least `days` "
        "days (since they entered it, from stage history), longest first.",
        params=(
            Param("days", "integer", "Minimum days in the current stage.", 30, 1, 3650),
            as_of_param(),
            pipeline_param(),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:days AS INTEGER) AS days, CAST(:as_of AS DATE) AS as_of, {FILTER_ARGS}
)
SELECT {DEAL_COLUMNS},
    CAST(d.stage_entered_at AS DATE) AS stage_entered,
    args.as_of - CAST(d.stage_entered_at AS DATE) AS days_in_stage
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE {OPEN} AND {PIPELINE_MATCH} AND {OWNER_MATCH} AND d.stage_entered_at IS NOT NULL
    AND args.as_of - CAST(d.stage_entered_at AS DATE) >= args.days
ORDER BY days_in_stage DESC, d.amount DESC NULLS LAST, deal""",
        note="Days in stage count from the day the deal entered its current stage (stage "
        "history); deals without stage history are left out.",
    ),
    VerifiedQuery(
        name="deals_without_activity",
        title="Deals with no recent activity",
        keywords=("activity", "touched", "dark", "engagement", "quiet", "neglected"),
        phrasings=(
            "Which deals have had no activity in the last two weeks?",
            "Deals nobody has touched recently",
            "Open deals with no meetings, calls or emails lately",
            "Which deals have gone dark?",
            "Deals without any recent engagement",
            "Opportunities with no logged activity",
            "Neglected deals with no follow up",
            "When was the last activity on our open deals?",
        ),
        description="Open deals with no activity (meeting, call, email, note, task, Slack "
        "message, calendar event) in the `days` days up to `as_of`, with their last activity.",
        params=(
            Param("days", "integer", "Days without activity.", 14, 1, 3650),
            as_of_param(),
            pipeline_param(),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:days AS INTEGER) AS days, CAST(:as_of AS DATE) AS as_of, {FILTER_ARGS}
),
last_touch AS (
    SELECT a.deal_id, max(a.occurred_at) AS last_activity_at
    FROM deals od
    JOIN activities a ON a.deal_id = od.id
    CROSS JOIN args
    WHERE od.deleted_at IS NULL AND NOT COALESCE(od.is_closed, false) AND a.deleted_at IS NULL
        AND a.occurred_at < CAST(args.as_of + 1 AS TIMESTAMPTZ)
    GROUP BY a.deal_id
)
SELECT {DEAL_COLUMNS}, t.last_activity_at,
    args.as_of - CAST(t.last_activity_at AS DATE) AS days_since_activity
FROM deals d CROSS JOIN args{DEAL_JOINS}
LEFT JOIN last_touch t ON t.deal_id = d.id
WHERE {OPEN} AND {PIPELINE_MATCH} AND {OWNER_MATCH}
    AND (t.last_activity_at IS NULL OR t.last_activity_at < args.as_of - args.days + 1)
ORDER BY t.last_activity_at NULLS FIRST, d.amount DESC NULLS LAST, deal""",
        note="Days count back from the end of `as_of`: `days` = 14 means nothing from "
        "as_of - 13 through as_of. Activities due later (open tasks) do not count.",
    ),
    VerifiedQuery(
        name="single_threaded_deals",
        title="Single-threaded deals",
        keywords=("single", "threaded", "contact", "contacts", "stakeholders", "champion"),
        phrasings=(
            "Which deals are single-threaded?",
            "Deals where we only talk to one contact",
            "Open deals with just one person engaged",
            "Which opportunities have only a single contact involved?",
            "Deals with no contacts engaged yet",
            "Deals that need more stakeholders engaged",
            "Deals relying on one champion",
        ),
        description="Open deals with at most `max_contacts` distinct customer contacts engaged "
        "in their activities (0 = nobody engaged yet), biggest first.",
        params=(
            Param("max_contacts", "integer", "Most contacts engaged.", 1, 0, 10),
            pipeline_param(),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:max_contacts AS INTEGER) AS max_contacts, {FILTER_ARGS}
),
others AS (
    -- What the rollup leaves out, and not among the deal's rolled-up contacts already: rare
    -- people, each looked up among the deal's contact rows (a count, not NOT EXISTS: as an
    -- anti-join PostgreSQL would hash every contact row of the organization for them)...
    SELECT pairs.deal_id, count(*) AS contacts
    FROM (
        -- ...the organization's own people resolved to a contact (their partial index holds
        -- only them), each one's activity looked up...
        SELECT a.deal_id, ap.contact_id
        FROM activity_participants ap
        JOIN activities a ON a.id = ap.activity_id
        WHERE a.deleted_at IS NULL AND a.deal_id IS NOT NULL AND ap.deleted_at IS NULL
            AND ap.contact_id IS NOT NULL AND ap.is_internal
        UNION
        -- ...and the people of activities without a time. Not joined to the open deals here
        -- (engaged joins them): joined, PostgreSQL read every open deal's activities to probe
        -- the few internal people by activity (150k probes at scale 10).
        SELECT a.deal_id, ap.contact_id
        FROM activities a
        JOIN activity_participants ap ON ap.activity_id = a.id
        WHERE a.deleted_at IS NULL AND a.occurred_at IS NULL AND a.deal_id IS NOT NULL
            AND ap.deleted_at IS NULL AND ap.contact_id IS NOT NULL
    ) pairs
    WHERE (
        SELECT count(*) FROM deal_risk_facts f
        WHERE f.kind = 'contact' AND f.deal_id = pairs.deal_id AND f.contact_id = pairs.contact_id
    ) = 0
    GROUP BY pairs.deal_id
),
engaged AS (
    -- Customer contacts of dated activities: deal_risk_facts rolls them up per deal, day and
    -- contact at each sync's end, after resolution, and counts each open deal's distinct
    -- ones in its deal row (one row per open deal at scale 10's 29.6k, where counting its
    -- 120k contact rows read 413k, and its activities' people meant scanning 600k). A deal
    -- without a deal row (opened since the last refresh) counts its contact rows: each
    -- contact's first one has no previous day.
    SELECT d.id AS deal_id, COALESCE(dr.contacts, (
            SELECT count(*) FROM deal_risk_facts c
            WHERE c.kind = 'contact' AND c.deal_id = d.id AND c.previous_day IS NULL
        )) + COALESCE(x.contacts, 0) AS contacts_engaged
    FROM deals d
    LEFT JOIN deal_risk_facts dr ON dr.kind = 'deal' AND dr.deal_id = d.id
    LEFT JOIN others x ON x.deal_id = d.id
    WHERE {OPEN}
)
SELECT {DEAL_COLUMNS}, e.contacts_engaged
FROM deals d CROSS JOIN args{DEAL_JOINS}
JOIN engaged e ON e.deal_id = d.id
WHERE {OPEN} AND {PIPELINE_MATCH} AND {OWNER_MATCH}
    AND e.contacts_engaged <= args.max_contacts
ORDER BY d.amount DESC NULLS LAST, deal""",
        note="Engaged = a participant, resolved to a contact, of an activity linked to the deal.",
    ),
    VerifiedQuery(
        name="meetings_by_account",
        title="Meetings by account",
        keywords=("meeting", "meetings", "met"),
        phrasings=(
            "How many meetings did we have with each account?",
            "Which accounts did we meet with most?",
            "Meetings per account in the last 90 days",
            "Which customers have we been meeting with?",
            "Accounts ranked by number of meetings",
            "Meeting count by company",
            "Who have we met with recently, by account?",
        ),
        description="Meetings (CRM meetings and calendar events) per account in a window: "
        "count, distinct contacts met, last meeting; most meetings first.",
        params=(
            start_param("90 days ago", "meetings from"),
            end_param("today", "meetings up to"),
            Param("min_meetings", "integer", "Only accounts with at least this many.", 1, 1, 1000),
        ),
        sql="""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        CAST(:min_meetings AS INTEGER) AS min_meetings
),
per_account AS (
    -- meeting_accounts (kept by the sync after identity resolution: store.meeting_accounts)
    -- has a row per live meeting, account it counts for and contact among its live people, at
    -- the meeting's start: the window is a range of it, not every meeting's resolved people;
    -- counted per account before the names are joined (a narrower sort).
    SELECT ma.account_id, count(DISTINCT ma.meeting_id) AS meetings,
        count(DISTINCT ma.contact_id) AS contacts_met, max(ma.occurred_at) AS last_meeting_at
    FROM meeting_accounts ma CROSS JOIN args
    WHERE ma.occurred_at >= CAST(args.start_date AS TIMESTAMPTZ)
        AND ma.occurred_at < CAST(args.end_date + 1 AS TIMESTAMPTZ)
    GROUP BY ma.account_id
)
SELECT acc.name AS account, pa.meetings, pa.contacts_met, pa.last_meeting_at
FROM per_account pa
JOIN accounts acc ON acc.id = pa.account_id AND acc.deleted_at IS NULL
CROSS JOIN args
WHERE pa.meetings >= args.min_meetings
ORDER BY meetings DESC, last_meeting_at DESC, account""",
        note="A meeting counts for its linked account and for every account its participants "
        "resolve to.",
    ),
    VerifiedQuery(
        name="rep_leaderboard",
        title="Rep leaderboard",
        keywords=("leaderboard", "bookings", "booked", "performing"),
        phrasings=(
            "Show the rep leaderboard",
            "Who are our top reps this quarter?",
            "Which reps closed the most revenue?",
            "Rank the sales team by bookings",
            "Best performing sellers by won amount",
            "Top sales reps by deals won",
            "How is each rep performing: wins, pipeline and activity?",
            "Who's leading the team in deals won?",
            "Who closed the most business this quarter?",
        ),
        description="Per rep: deals won and amount won in a window, closed deals and win rate, "
        "open pipeline today, and activities logged in the window; top sellers first.",
        params=(
            start_param("start of this quarter", "from"),
            end_param("today", "up to"),
        ),
        sql="""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date
),
closed AS (
    SELECT d.owner_id, count(*) FILTER (WHERE d.is_won) AS won_deals,
        COALESCE(sum(d.amount) FILTER (WHERE d.is_won), 0) AS won_amount, count(*) AS closed_deals
    FROM deals d CROSS JOIN args
    WHERE d.deleted_at IS NULL AND d.is_closed
        AND d.close_date BETWEEN args.start_date AND args.end_date
    GROUP BY d.owner_id
),
open_pipeline AS (
    SELECT d.owner_id, count(*) AS open_deals, COALESCE(sum(d.amount), 0) AS open_amount
    FROM deals d
    WHERE d.deleted_at IS NULL AND NOT COALESCE(d.is_closed, false)
    GROUP BY d.owner_id
),
touches AS (
    SELECT a.owner_id, count(*) AS activities
    FROM activities a CROSS JOIN args
    WHERE a.deleted_at IS NULL AND a.occurred_at >= CAST(args.start_date AS TIMESTAMPTZ)
        AND a.occurred_at < CAST(args.end_date + 1 AS TIMESTAMPTZ)
    GROUP BY a.owner_id
)
SELECT COALESCE(o.full_name, o.email) AS owner,
    COALESCE(c.won_deals, 0) AS won_deals, COALESCE(c.won_amount, 0) AS won_amount,
    COALESCE(c.closed_deals, 0) AS closed_deals,
    round(CAST(c.won_deals AS NUMERIC) / NULLIF(c.closed_deals, 0), 4) AS win_rate,
    COALESCE(op.open_deals, 0) AS open_deals, COALESCE(op.open_amount, 0) AS open_amount,
    COALESCE(t.activities, 0) AS activities
FROM owners o
LEFT JOIN closed c ON c.owner_id = o.id
LEFT JOIN open_pipeline op ON op.owner_id = o.id
LEFT JOIN touches t ON t.owner_id = o.id
WHERE o.deleted_at IS NULL
    AND (c.owner_id IS NOT NULL OR op.owner_id IS NOT NULL OR t.owner_id IS NOT NULL)
ORDER BY won_amount DESC, won_deals DESC, owner""",
    ),
    VerifiedQuery(
        name="pipeline_created",
        title="Pipeline created",
        keywords=("created", "create", "generated", "generate", "creation", "pipegen"),
        phrasings=(
            "How much pipeline did we create this quarter?",
            "New pipeline generated by month",
            "How many new deals were created?",
            "Pipeline generation per quarter",
            "Pipegen this month",
            "Deals created by month and pipeline",
            "Value of new opportunities opened",
            "How much new pipe did we add?",
        ),
        description="Deals created in a window, per month, quarter or year of creation and "
        "pipeline: count and amount.",
        params=(
            Param(
                "period",
                "choice",
                "Bucket of the creation date.",
                default="month",
                choices=("month", "quarter", "year"),
            ),
            start_param("start of this quarter", "created from"),
            end_param("today", "created up to"),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:period AS TEXT) AS period, CAST(:start_date AS DATE) AS start_date,
        CAST(:end_date AS DATE) AS end_date, lower(CAST(:owner AS TEXT)) AS owner
)
SELECT CAST(date_trunc(args.period, d.created_at) AS DATE) AS period_start,
    p.name AS pipeline, count(*) AS deals, COALESCE(sum(d.amount), 0) AS amount
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE d.deleted_at IS NULL AND d.created_at >= CAST(args.start_date AS TIMESTAMPTZ)
    AND d.created_at < CAST(args.end_date + 1 AS TIMESTAMPTZ) AND {OWNER_MATCH}
GROUP BY CAST(date_trunc(args.period, d.created_at) AS DATE), p.name, p.display_order
ORDER BY period_start, p.display_order, pipeline""",
    ),
    VerifiedQuery(
        name="deals_closing",
        title="Deals closing in a window",
        keywords=("closing", "upcoming", "soon"),
        phrasings=(
            "Which deals are closing this quarter?",
            "What deals are expected to close this month?",
            "Deals due to close in the next 30 days",
            "Open opportunities with a close date coming up",
            "What's set to close soon?",
            "Upcoming closes this quarter",
            "Deals scheduled to close before the end of the quarter",
        ),
        description="Open deals whose expected close date falls in a window, soonest first, "
        "with stage, probability and owner.",
        params=(
            start_param("today", "close dates from"),
            end_param("end of this quarter", "close dates up to"),
            pipeline_param(),
            owner_param(),
        ),
        sql=f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:start_date AS DATE) AS start_date, CAST(:end_date AS DATE) AS end_date,
        {FILTER_ARGS}
)
SELECT {DEAL_COLUMNS}, COALESCE(d.probability, s.probability) AS probability,
    d.forecast_category
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE {OPEN} AND d.close_date BETWEEN args.start_date AND args.end_date
    AND {PIPELINE_MATCH} AND {OWNER_MATCH}
ORDER BY d.close_date, d.amount DESC NULLS LAST, deal""",
    ),
    VerifiedQuery(
        name="slipped_deals",
        title="Slipped deals",
        keywords=("slipped", "overdue", "pushed", "missed"),
        phrasings=(
            "Which deals have slipped?",
            "Deals past their close date",
            "Open deals with an overdue close date",
            "Which opportunities missed their expected close date?",
            "Deals with close dates in the past that are still open",
            "What deals are overdue?",
            "Deals that should have closed already",
        ),
        description="Open deals whose expected close date is already past: how many days "
        "overdue, biggest first.",
        params=(as_of_param(), pipeline_param(), owner_param()),
        sql=f"""
WITH args AS NOT MATERIALIZED (SELECT CAST(:as_of AS DATE) AS as_of, {FILTER_ARGS})
SELECT {DEAL_COLUMNS}, args.as_of - d.close_date AS days_overdue
FROM deals d CROSS JOIN args{DEAL_JOINS}
WHERE {OPEN} AND d.close_date < args.as_of AND {PIPELINE_MATCH} AND {OWNER_MATCH}
ORDER BY d.amount DESC NULLS LAST, days_overdue DESC, deal""",
        note="Close-date history is not synced: slipped means open past its expected close date.",
    ),
)

# The revenue-intelligence queries live in their own modules, built on the same fragments.
_QUERIES: tuple[VerifiedQuery, ...] = (
    *_CORE_QUERIES,
    *RISK_QUERIES,
    *MOVEMENT_QUERIES,
    *TIMELINE_QUERIES,
)
VERIFIED_QUERIES: dict[str, VerifiedQuery] = {q.name: q for q in _QUERIES}

VERIFIED_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {
            "type": "string",
            "enum": list(VERIFIED_QUERIES),
            "description": "Which verified query to run (see the catalogue).",
        },
        "params": {
            "type": "object",
            "description": "Its parameters by name; omitted ones take their defaults. Dates "
            "are YYYY-MM-DD.",
            "additionalProperties": True,
        },
    },
    "required": ["name"],
    "additionalProperties": False,
}


_FILTERS = ("pipeline", "owner")


def catalogue() -> str:
    """Each query's name, what it answers and its parameters: the tool's description."""
    lines = [
        "Parameters are optional; omitted ones take their defaults (relative dates count from "
        "today). Dates are YYYY-MM-DD; windows include both ends. Filters: pipeline (its name, "
        "e.g. New Business), owner (the rep's full name or email), both ignoring case.",
    ]
    for query in _QUERIES:
        params = [p.name if p.name in _FILTERS else p.short() for p in query.params]
        lines.append(f"- {query.name}: {query.description}")
        lines.append(f"    params: {', '.join(params) or 'none'}")
        if query.note:
            lines.append(f"    note: {query.note}")
    return "\n".join(lines)


def resolve_params(
    name: str, params: Mapping[str, Any] | None, *, today: date | None = None
) -> dict[str, Any]:
    """Every parameter of query ``name``, validated, with defaults filled in (relative dates
    from ``today``, UTC by default). Raises VerifiedQueryError naming what is wrong."""
    query = _lookup(name)
    if params is not None and not isinstance(params, Mapping):
        raise VerifiedQueryError(
            name, f"params must be an object of name: value, got {type(params).__name__}"
        )
    given = dict(params or {})
    known = {p.name for p in query.params}
    unknown = sorted(set(given) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise VerifiedQueryError(
            name, f"unknown parameter(s) {', '.join(unknown)}; accepted: {accepted}",
            param=unknown[0],
        )  # fmt: skip
    day = today or datetime.now(UTC).date()
    resolved: dict[str, Any] = {}
    for param in query.params:
        value = given.get(param.name)
        resolved[param.name] = param.coerce(
            name, value if value is not None else param.resolve_default(day)
        )
    start, end = resolved.get("start_date"), resolved.get("end_date")
    if isinstance(start, date) and isinstance(end, date) and start > end:
        raise VerifiedQueryError(
            name, f"start_date {start} is after end_date {end}", param="start_date"
        )
    return resolved


@dataclass(frozen=True)
class VerifiedResult(QueryResult):
    """A verified query's rows, with what produced them: ``sql`` is the query with its
    parameters written in as literals, so it re-runs on its own (an artifact, ``revtops sql``)."""

    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    sql: str = ""


def run_verified(
    db: Database,
    name: str,
    params: dict[str, Any] | None,
    *,
    org: str,
    max_rows: int | None = None,
    timeout: float | None = None,
    today: date | None = None,
) -> VerifiedResult:
    """Validate ``params`` and run verified query ``name`` for ``org`` through the SQL guard."""
    query = _lookup(name)
    bound = resolve_params(name, params, today=today)
    result = _execute(db, query.sql, bound, org=org, max_rows=max_rows, timeout=timeout)
    return VerifiedResult(
        frame=result.frame,
        truncated=result.truncated,
        elapsed_seconds=result.elapsed_seconds,
        name=name,
        params=bound,
        sql=render_sql(name, bound),
    )


def render_sql(name: str, params: Mapping[str, Any]) -> str:
    """Query ``name`` with already resolved ``params`` written in as SQL literals."""
    query = _lookup(name)

    def literal(match: re.Match[str]) -> str:
        value = params.get(match.group(1))
        if value is None:
            return "NULL"
        if isinstance(value, date):
            return f"DATE '{value.isoformat()}'"
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    return _PLACEHOLDER.sub(literal, query.sql).strip()


_PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _lookup(name: str) -> VerifiedQuery:
    query = VERIFIED_QUERIES.get(name) if isinstance(name, str) else None
    if query is None:
        raise VerifiedQueryError(
            str(name), f"no such verified query; choose one of {', '.join(VERIFIED_QUERIES)}"
        )
    return query


def _execute(
    db: Database,
    sql: str,
    params: dict[str, Any],
    *,
    org: str,
    max_rows: int | None,
    timeout: float | None,
) -> QueryResult:
    # Trusted SQL still takes the untrusted path: one guard, one scope rule, one read-only path.
    from revtops_kernel.agent.guard import run_guarded

    return run_guarded(db, sql, org=org, params=params, max_rows=max_rows, timeout=timeout)
