"""The verified query of one deal's timeline: "show me the timeline of the Acme deal", "what
happened on deal X", "brief me on the Initech renewal".

``deal_timeline`` picks one deal from ``deal`` (its id, or words of its or its account's name
in order: "initech renewal" finds "Initech - Renewal 2026"; an exact id, then an exact name,
then open deals, larger first; no ``deal``: the open deal updated last) and lists its events
in time order, as ``intelligence.timeline.deal_timeline`` tells them: its creation, stage
moves (a repeated snapshot of the same stage is not a move) and closing, amount and close-date
changes
(``deal_field_history``), meetings, calendar events, emails and calls linked to it, and Slack
messages linked to it or naming it. The guard scopes every table to the organization; the
deal's rows are found by deal id (the indexes ``intelligence.timeline`` lists).
"""

from __future__ import annotations

from revtops_kernel.agent.verified_base import VerifiedQuery
from revtops_kernel.agent.verified_params import Param

_AMOUNT = "CAST(CAST(round({v}) AS BIGINT) AS TEXT)"


def _amount(value: str) -> str:
    return _AMOUNT.format(v=value)


DEAL_TIMELINE_SQL = f"""
WITH args AS NOT MATERIALIZED (SELECT NULLIF(lower(trim(CAST(:deal AS TEXT))), '') AS deal),
pick AS (
    SELECT d.id, d.name, d.created_at
    FROM deals d CROSS JOIN args
    LEFT JOIN accounts acc ON acc.id = d.account_id AND acc.deleted_at IS NULL
    WHERE d.deleted_at IS NULL AND (args.deal IS NULL OR CAST(d.id AS TEXT) = args.deal
        OR lower(d.name) LIKE '%' || replace(args.deal, ' ', '%') || '%'
        OR lower(acc.name) LIKE '%' || replace(args.deal, ' ', '%') || '%')
    ORDER BY CASE WHEN CAST(d.id AS TEXT) = args.deal THEN 0
        WHEN lower(d.name) = args.deal THEN 1 ELSE 2 END,
        COALESCE(d.is_closed, false),
        CASE WHEN args.deal IS NULL THEN d.updated_at END DESC NULLS LAST,
        d.amount DESC NULLS LAST, d.name, d.id
    LIMIT 1
),
stage_rows AS (
    SELECT h.entered_at, COALESCE(s.label, h.stage_name) AS stage, s.is_closed, s.is_won,
        h.source_system,
        COALESCE(CAST(h.stage_id AS TEXT), h.stage_name) AS stage_key,
        lag(COALESCE(CAST(h.stage_id AS TEXT), h.stage_name))
            OVER (ORDER BY h.entered_at, h.source_id) AS previous_key
    FROM deal_stage_history h
    JOIN pick ON pick.id = h.deal_id
    LEFT JOIN deal_stages s ON s.id = h.stage_id AND s.deleted_at IS NULL
    WHERE h.deleted_at IS NULL AND h.entered_at IS NOT NULL
),
moves AS (
    SELECT r.*, lag(r.stage) OVER (ORDER BY r.entered_at) AS previous_stage,
        row_number() OVER (ORDER BY r.entered_at) AS k
    FROM stage_rows r
    WHERE r.previous_key IS NULL OR r.stage_key <> r.previous_key
),
field_rows AS (
    SELECT f.field, f.changed_at, f.amount, f.close_date, f.source_system,
        lag(f.amount) OVER (PARTITION BY f.field ORDER BY f.changed_at, f.source_id)
            AS previous_amount,
        lag(f.close_date) OVER (PARTITION BY f.field ORDER BY f.changed_at, f.source_id)
            AS previous_close,
        row_number() OVER (PARTITION BY f.field ORDER BY f.changed_at, f.source_id) AS k
    FROM deal_field_history f
    JOIN pick ON pick.id = f.deal_id
    WHERE f.deleted_at IS NULL AND f.field IN ('amount', 'close_date')
),
linked AS (
    SELECT a.id FROM activities a JOIN pick ON pick.id = a.deal_id
    WHERE a.deleted_at IS NULL
        AND a.activity_type IN ('meeting', 'calendar_event', 'email', 'call', 'slack_message')
    UNION
    SELECT m.id FROM activities m CROSS JOIN pick
    WHERE length(pick.name) >= 3 AND lower(m.body) LIKE '%' || lower(pick.name) || '%'
        AND m.id IN (
            SELECT a.id FROM activities a CROSS JOIN pick
            WHERE a.deleted_at IS NULL AND a.activity_type = 'slack_message'
                AND a.occurred_at >= pick.created_at)
),
events AS (
    SELECT pick.created_at AS at, 'created' AS kind, 'Deal created' AS title,
        COALESCE('in ' || (SELECT m.stage FROM moves m WHERE m.k = 1), '') AS detail,
        NULL AS source, 0 AS sort_key
    FROM pick WHERE pick.created_at IS NOT NULL
    UNION ALL
    SELECT m.entered_at,
        CASE WHEN m.is_closed THEN 'closed' ELSE 'stage' END,
        CASE WHEN m.is_closed THEN CASE WHEN m.is_won THEN 'Closed won' ELSE 'Closed lost' END
                || CASE WHEN lower(m.stage) IN ('closed won', 'closed lost') THEN ''
                    ELSE ' (' || m.stage || ')' END
            ELSE 'Moved to ' || COALESCE(m.stage, 'an unknown stage') END,
        'from ' || COALESCE(m.previous_stage, 'an unknown stage'),
        m.source_system, 1
    FROM moves m WHERE m.k > 1
    UNION ALL
    SELECT f.changed_at, 'amount',
        'Amount ' || COALESCE({_amount("f.previous_amount")}, 'none') || ' -> '
        || COALESCE({_amount("f.amount")}, 'none')
        || CASE WHEN f.previous_amount > 0 AND f.amount IS NOT NULL THEN ' ('
            || CASE WHEN f.amount >= f.previous_amount THEN '+' ELSE '' END
            || CAST(CAST(round(100 * (f.amount - f.previous_amount) / f.previous_amount)
                AS INTEGER) AS TEXT) || '%)' ELSE '' END,
        '', f.source_system, 2
    FROM field_rows f
    WHERE f.field = 'amount' AND f.k > 1 AND f.amount IS DISTINCT FROM f.previous_amount
    UNION ALL
    SELECT f.changed_at, 'close_date',
        'Close date ' || COALESCE(CAST(f.previous_close AS TEXT), 'none') || ' -> '
        || COALESCE(CAST(f.close_date AS TEXT), 'none')
        || CASE WHEN f.close_date > f.previous_close
                THEN ' (pushed ' || CAST(f.close_date - f.previous_close AS TEXT) || ' days)'
            WHEN f.close_date < f.previous_close
                THEN ' (pulled in ' || CAST(f.previous_close - f.close_date AS TEXT) || ' days)'
            ELSE '' END,
        '', f.source_system, 3
    FROM field_rows f
    WHERE f.field = 'close_date' AND f.k > 1 AND f.close_date IS DISTINCT FROM f.previous_close
    UNION ALL
    SELECT a.occurred_at,
        CASE a.activity_type WHEN 'calendar_event' THEN 'meeting'
            WHEN 'slack_message' THEN 'slack' ELSE a.activity_type END,
        CASE WHEN a.activity_type = 'slack_message'
                THEN 'Slack' || COALESCE(' #' || a.channel, ' message')
            WHEN a.activity_type IN ('email', 'call')
                THEN CASE a.activity_type WHEN 'email' THEN 'Email' ELSE 'Call' END
                    || CASE a.direction WHEN 'outbound' THEN ' out' WHEN 'inbound' THEN ' in'
                        ELSE '' END
                    || COALESCE(': ' || a.subject, '')
            ELSE COALESCE(a.subject, 'Meeting') END,
        concat_ws(' · ',
            CASE WHEN a.status NOT IN ('completed', 'sent') THEN a.status END,
            CASE WHEN a.duration_seconds > 0
                THEN CAST(CAST(round(a.duration_seconds / 60.0) AS INTEGER) AS TEXT) || ' min'
                END,
            'by ' || o.full_name,
            CASE WHEN a.activity_type = 'slack_message' THEN left(a.body, 200) END),
        a.source_system, 4
    FROM activities a
    JOIN linked l ON l.id = a.id
    LEFT JOIN owners o ON o.id = a.owner_id AND o.deleted_at IS NULL
    WHERE a.occurred_at IS NOT NULL
)
SELECT e.at, e.kind, e.title, e.detail, e.source, pick.name AS deal, pick.id AS deal_id
FROM events e CROSS JOIN pick
ORDER BY e.at, e.sort_key, e.title"""

TIMELINE_QUERIES: tuple[VerifiedQuery, ...] = (
    VerifiedQuery(
        name="deal_timeline",
        title="Deal timeline",
        keywords=("timeline", "history", "happened", "brief", "briefing", "story", "chronology"),
        phrasings=(
            "Show me the timeline of the latest updated deal",
            "What happened?",
            "Brief me",
            "Its history",
            "Its pipeline stage changes and activities over time",
            "Chronology",
            "The story so far",
        ),
        description="One deal's events in time order: creation, stage moves and closing, "
        "amount and close-date changes, meetings, emails, calls and Slack messages linked to "
        "it or naming it. deal: its id, or words of its (or its account's) name in order.",
        params=(
            Param(
                "deal",
                "text",
                "The deal: its id or words of its (or its account's) name (default: the open "
                "deal updated last).",
            ),
        ),
        sql=DEAL_TIMELINE_SQL,
        note="One deal: an exact id or name first, else the largest open deal whose name "
        "contains the words. Its risk flags: deal_risks with deal_id.",
    ),
)
