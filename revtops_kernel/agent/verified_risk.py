"""Verified queries of deal risk: named rules, each with its reason and evidence, and a
combined score.

``deal_risks`` lists one row per open deal and rule that flags it: the rule's name, a one-line
reason quoting its evidence, the measured value, the threshold it crossed, the date the
evidence dates from, and the deal's risk score (the sum of the weights of all its flags,
``RISK_WEIGHTS``). Thresholds come, in order, from the question's parameters, the
organization's row of ``organization_risk_settings`` and ``settings.RISK_DEFAULTS``.

The rules (open deals only; "in N days" means the N days up to the end of ``as_of``):

- ``ghosted``: at least one email or call with direction ``outbound``, or a Slack message
  whose author is internal, linked to the deal in the last N days, and nothing inbound in
  those days (an ``inbound`` email or call, a Slack message by an external author).
  Approximation: an email or call without a recorded direction (Salesforce email Tasks carry
  none; only calls have ``CallType``) counts neither way, and a customer's reply is only seen
  where the CRM or Slack recorded it against the deal.
- ``no_recent_meeting``: the deal is at least N days old, no meeting (CRM meeting or calendar
  event, not cancelled or a no-show) with it or its account (linked account, or an attendee
  resolved to it) in the last N days, and none scheduled after ``as_of``.
- ``stalled``: days in the current stage (since ``deals.stage_entered_at``) above the given
  percentile of the days won deals spent in that stage (their ``deal_stage_history``: each
  won deal's total days in the stage, whole days between entry and the next stage), when at
  least the minimum number of won deals went through it. A deal whose provider sent no stage
  history (``stage_entered_at`` NULL) is not judged.
- ``single_threaded``: at most ``max_contacts`` distinct customer contacts (external
  participants resolved to a contact) engaged in the deal's activities in the last N days.
- ``close_date_pushed``: the expected close date moved later (``deal_field_history``, each
  row later than the one before) at least the minimum number of times.
- ``amount_dropped``: the current amount is at least the given percent below the amount in
  effect when the deal entered its current stage (``deal_field_history``).
- ``past_due``: the expected close date is before ``as_of``.
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
from revtops_kernel.agent.verified_params import Param, as_of_param, owner_param, pipeline_param
from revtops_kernel.settings import RISK_DEFAULTS

# What each flag adds to a deal's risk score: the one place the weights live. They sum to 100,
# so the score reads as a percentage of "everything is wrong". Ghosting and a stalled stage
# weigh most: they predict a loss; past due alone is often paperwork.
RISK_WEIGHTS: dict[str, int] = {
    "ghosted": 20,
    "stalled": 20,
    "close_date_pushed": 15,
    "amount_dropped": 15,
    "no_recent_meeting": 10,
    "single_threaded": 10,
    "past_due": 10,
}
RISK_RULES = tuple(RISK_WEIGHTS)


def _threshold(param: str, column: str, default: int) -> str:
    """The threshold as the question gave it, else the organization's, else the default."""
    return (
        f"CAST(COALESCE(CAST(:{param} AS INTEGER), "
        f"(SELECT max(rs.{column}) FROM organization_risk_settings rs), {default}) AS INTEGER)"
    )


def _plural(count: str, word: str) -> str:
    return f"CAST({count} AS TEXT) || ' {word}' || CASE WHEN {count} = 1 THEN '' ELSE 's' END"


def _number(value: str) -> str:
    """A number as text: whole ones without decimals, others to one decimal."""
    return (
        f"CASE WHEN {value} = floor({value}) THEN CAST(CAST({value} AS BIGINT) AS TEXT) "
        f"ELSE CAST(round({value}, 1) AS TEXT) END"
    )


def _day(value: str) -> str:
    return f"CAST(CAST({value} AS DATE) AS TEXT)"


_D = RISK_DEFAULTS
_WEIGHT = (
    "CASE f.rule " + " ".join(f"WHEN '{r}' THEN {w}" for r, w in RISK_WEIGHTS.items()) + " END"
)

# A meeting that took place or is scheduled (``m``: an activity row): what the latest-meeting
# lookups of no_recent_meeting read, by deal, by account and through resolved attendees.
_HELD_MEETING = (
    "m.deleted_at IS NULL AND m.activity_type IN ('meeting', 'calendar_event') "
    "AND m.occurred_at IS NOT NULL AND COALESCE(m.status, '') NOT IN ('cancelled', 'no_show')"
)

DEAL_RISKS_SQL = f"""
WITH args AS NOT MATERIALIZED (
    SELECT CAST(:as_of AS DATE) AS as_of, {FILTER_ARGS}, CAST(:rule AS TEXT) AS rule,
        CAST(:min_score AS INTEGER) AS min_score, lower(CAST(:deal_id AS TEXT)) AS deal_id
),
th AS MATERIALIZED (
    -- The thresholds, one row: materialized, as DuckDB plans each inlined copy's scalar
    -- subqueries as joins (its join-order search took 0.5 s of the query); only the bound
    -- parameters above need inlining (PostgreSQL folds them into the plan).
    SELECT {_threshold("ghosted_days", "ghosted_days", _D.risk_ghosted_days)} AS ghosted_days,
        {_threshold("no_meeting_days", "no_meeting_days", _D.risk_no_meeting_days)}
            AS no_meeting_days,
        {_threshold("stalled_percentile", "stalled_percentile", _D.risk_stalled_percentile)}
            AS stalled_percentile,
        {
    _threshold("stalled_min_won_deals", "stalled_min_won_deals", _D.risk_stalled_min_won_deals)
} AS stalled_min_won_deals,
        {
    _threshold("single_threaded_days", "single_threaded_days", _D.risk_single_threaded_days)
} AS single_threaded_days,
        {
    _threshold("max_contacts", "single_threaded_max_contacts", _D.risk_single_threaded_max_contacts)
} AS max_contacts,
        {_threshold("pushed_min_moves", "pushed_min_moves", _D.risk_pushed_min_moves)}
            AS pushed_min_moves,
        {
    _threshold("amount_drop_percent", "amount_drop_percent", _D.risk_amount_drop_percent)
} AS amount_drop_percent
),
since AS MATERIALIZED (
    -- Where the activity rules' earliest window starts, as a timestamp computed once: a
    -- bound the index of activities by time can seek to (an expression over the thresholds
    -- is not leakproof, so under row-level security it could only filter after the scan).
    SELECT CAST(args.as_of - greatest(th.ghosted_days, th.no_meeting_days,
        th.single_threaded_days) + 1 AS TIMESTAMPTZ) AS recent_from
    FROM args CROSS JOIN th
),
od AS (
    SELECT d.id, d.account_id, d.stage_id, d.amount, d.close_date, d.created_at,
        d.stage_entered_at, COALESCE(s.label, d.stage_name) AS stage, d.name AS deal_name,
        acc.name AS account_name, p.name AS pipeline_name, o.full_name AS owner_name
    FROM deals d CROSS JOIN args{DEAL_JOINS}
    WHERE {OPEN} AND {PIPELINE_MATCH} AND {OWNER_MATCH}
        AND (args.deal_id IS NULL OR CAST(d.id AS TEXT) = args.deal_id)
),
recent AS MATERIALIZED (
    -- Every live activity since the earliest window start of the activity rules, meetings
    -- scheduled after as_of included: a range of the index of live activities by time on
    -- PostgreSQL, which holds every column read here. Each rule looks at its own days in
    -- it and reads older history only for the deals it is about to flag (below), so the
    -- query no longer reads every activity and participant of the open deals' world.
    SELECT a.id, a.deal_id, a.account_id, a.activity_type, a.occurred_at, a.direction,
        a.status
    FROM activities a CROSS JOIN since CROSS JOIN args
    WHERE args.deal_id IS NULL AND a.deleted_at IS NULL AND a.occurred_at >= since.recent_from
    UNION ALL
    -- One deal's flags (the branch above is folded away): the same window of what the rules
    -- read for it alone, by key: its activities, then its account's meetings and the meetings
    -- attended by people resolved to its account (a meeting may come twice; every reader
    -- tests existence or counts distinct contacts of meetings, never counts meetings).
    SELECT a.id, a.deal_id, a.account_id, a.activity_type, a.occurred_at, a.direction,
        a.status
    FROM activities a CROSS JOIN since CROSS JOIN args
    WHERE args.deal_id IS NOT NULL AND a.deleted_at IS NULL
        AND a.deal_id IN (SELECT od.id FROM od) AND a.occurred_at >= since.recent_from
    UNION ALL
    SELECT a.id, a.deal_id, a.account_id, a.activity_type, a.occurred_at, a.direction,
        a.status
    FROM activities a CROSS JOIN since CROSS JOIN args
    WHERE args.deal_id IS NOT NULL AND a.deleted_at IS NULL
        AND a.account_id IN (SELECT od.account_id FROM od)
        AND a.activity_type IN ('meeting', 'calendar_event') AND a.occurred_at >= since.recent_from
    UNION ALL
    SELECT a.id, a.deal_id, a.account_id, a.activity_type, a.occurred_at, a.direction,
        a.status
    FROM activities a CROSS JOIN since CROSS JOIN args
    WHERE args.deal_id IS NOT NULL AND a.deleted_at IS NULL
        AND a.id IN (
            SELECT ap.activity_id FROM activity_participants ap
            WHERE ap.account_id IN (SELECT od.account_id FROM od)
                AND ap.account_id IS NOT NULL AND ap.deleted_at IS NULL)
        AND a.activity_type IN ('meeting', 'calendar_event') AND a.occurred_at >= since.recent_from
),
window_touches AS (
    -- Emails, calls and Slack messages of open deals in the ghosted window, with their
    -- direction (a Slack message is ours or theirs by its author).
    SELECT r.deal_id, r.activity_type, r.occurred_at, r.direction
    FROM recent r CROSS JOIN args CROSS JOIN th
    WHERE r.activity_type IN ('email', 'call') AND r.deal_id IN (SELECT od.id FROM od)
        AND r.occurred_at >= args.as_of - th.ghosted_days + 1 AND r.occurred_at < args.as_of + 1
    UNION ALL
    SELECT r.deal_id, r.activity_type, r.occurred_at,
        CASE WHEN au.is_internal THEN 'outbound' WHEN NOT au.is_internal THEN 'inbound' END
    FROM recent r CROSS JOIN args CROSS JOIN th
    LEFT JOIN activity_participants au ON au.activity_id = r.id AND au.deleted_at IS NULL
        AND au.role = 'author'
    WHERE r.activity_type = 'slack_message' AND r.deal_id IN (SELECT od.id FROM od)
        AND r.occurred_at >= args.as_of - th.ghosted_days + 1 AND r.occurred_at < args.as_of + 1
),
ghosting AS (
    -- Deals with something out and nothing in during the window: the ones ghosted may flag.
    SELECT t.deal_id,
        count(*) FILTER (WHERE t.direction = 'outbound' AND t.activity_type = 'email')
            AS emails_out,
        count(*) FILTER (WHERE t.direction = 'outbound' AND t.activity_type = 'call')
            AS calls_out,
        count(*) FILTER (WHERE t.direction = 'outbound' AND t.activity_type = 'slack_message')
            AS messages_out,
        min(t.occurred_at) FILTER (WHERE t.direction = 'outbound') AS first_out
    FROM window_touches t
    GROUP BY t.deal_id
    HAVING count(*) FILTER (WHERE t.direction = 'outbound') > 0
        AND count(*) FILTER (WHERE t.direction = 'inbound') = 0
),
last_replies AS MATERIALIZED (
    -- Their last reply ever (before the window, as none came in it): read for these deals
    -- only, by deal.
    SELECT i.deal_id, max(i.occurred_at) AS last_in
    FROM (
        SELECT a.deal_id, a.occurred_at
        FROM activities a CROSS JOIN args
        WHERE a.deleted_at IS NULL AND a.deal_id IN (SELECT g.deal_id FROM ghosting g)
            AND a.activity_type IN ('email', 'call') AND a.direction = 'inbound'
            AND a.occurred_at < args.as_of + 1
        UNION ALL
        SELECT a.deal_id, a.occurred_at
        FROM activities a CROSS JOIN args
        JOIN activity_participants au ON au.activity_id = a.id AND au.deleted_at IS NULL
            AND au.role = 'author' AND NOT au.is_internal
        WHERE a.deleted_at IS NULL AND a.deal_id IN (SELECT g.deal_id FROM ghosting g)
            AND a.activity_type = 'slack_message' AND a.occurred_at < args.as_of + 1
    ) i
    GROUP BY i.deal_id
),
recent_meetings AS (
    -- Meetings (not cancelled or a no-show) since the no-meeting window's start, scheduled
    -- ones included.
    SELECT r.id, r.deal_id, r.account_id
    FROM recent r CROSS JOIN args CROSS JOIN th
    WHERE r.activity_type IN ('meeting', 'calendar_event')
        AND COALESCE(r.status, '') NOT IN ('cancelled', 'no_show')
        AND r.occurred_at >= args.as_of - th.no_meeting_days + 1
),
met_accounts AS (
    -- Accounts an external attendee of a recent meeting is resolved to: read from the people
    -- resolved to an account (a small partial index on PostgreSQL), not per meeting.
    SELECT DISTINCT ap.account_id
    FROM activity_participants ap
    JOIN recent_meetings m ON m.id = ap.activity_id
    WHERE ap.deleted_at IS NULL AND ap.account_id IS NOT NULL
        AND NOT COALESCE(ap.is_internal, false)
),
unmet AS (
    -- The deals no_recent_meeting may flag: old enough, and no recent or scheduled meeting
    -- with the deal, its account, or an external attendee resolved to its account.
    SELECT od.id, od.account_id
    FROM od CROSS JOIN args CROSS JOIN th
    WHERE od.created_at < args.as_of - th.no_meeting_days + 1
        AND NOT EXISTS (SELECT 1 FROM recent_meetings m WHERE m.deal_id = od.id)
        AND NOT EXISTS (SELECT 1 FROM recent_meetings m WHERE m.account_id = od.account_id)
        AND NOT EXISTS (SELECT 1 FROM met_accounts ma WHERE ma.account_id = od.account_id)
),
unmet_accounts AS (
    -- Their accounts' latest meeting ever (none is recent): linked to the account, or
    -- attended by an external person resolved to it, read by account for these only.
    SELECT k.account_id, max(k.occurred_at) AS last_meeting
    FROM (
        SELECT m.account_id, m.occurred_at
        FROM activities m
        WHERE m.account_id IN (SELECT u.account_id FROM unmet u) AND {_HELD_MEETING}
        UNION ALL
        SELECT ap.account_id, m.occurred_at
        FROM activity_participants ap
        JOIN activities m ON m.id = ap.activity_id
        WHERE ap.deleted_at IS NULL AND ap.account_id IS NOT NULL
            AND ap.account_id IN (SELECT u.account_id FROM unmet u)
            AND NOT COALESCE(ap.is_internal, false) AND {_HELD_MEETING}
    ) k
    GROUP BY k.account_id
),
meeting_dates AS (
    -- Their latest meeting ever: the deal's own (read by deal) or its account's.
    SELECT k.deal_id, max(k.occurred_at) AS last_meeting
    FROM (
        SELECT m.deal_id, m.occurred_at
        FROM activities m
        WHERE m.deal_id IN (SELECT u.id FROM unmet u) AND {_HELD_MEETING}
        UNION ALL
        SELECT u.id, ua.last_meeting
        FROM unmet u JOIN unmet_accounts ua ON ua.account_id = u.account_id
    ) k
    GROUP BY k.deal_id
),
stays AS (
    SELECT h.deal_id, h.stage_id, h.entered_at,
        lead(h.entered_at) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at) AS left_at
    FROM deal_stage_history h
    JOIN deals w ON w.id = h.deal_id AND w.deleted_at IS NULL AND w.is_won
    WHERE h.deleted_at IS NULL AND h.entered_at IS NOT NULL
),
won_days AS (
    SELECT s.stage_id, s.deal_id,
        sum(CAST(s.left_at AS DATE) - CAST(s.entered_at AS DATE)) AS days
    FROM stays s
    -- Only the open deals' stages are ranked (one deal's flags: its stage alone).
    WHERE s.left_at IS NOT NULL AND s.stage_id IN (SELECT od.stage_id FROM od)
    GROUP BY s.stage_id, s.deal_id
),
won_ranked AS (
    SELECT wd.stage_id, wd.days,
        row_number() OVER (PARTITION BY wd.stage_id ORDER BY wd.days) - 1 AS pos,
        count(*) OVER (PARTITION BY wd.stage_id) AS won_deals,
        (count(*) OVER (PARTITION BY wd.stage_id) - 1) * th.stalled_percentile / 100.0 AS rank
    FROM won_days wd CROSS JOIN args CROSS JOIN th
),
stage_norms AS (
    -- percentile_cont by hand (linear between the two nearest ranks): DuckDB's takes only a
    -- constant fraction, and the percentile is a per-organization setting.
    SELECT r.stage_id, max(r.won_deals) AS won_deals,
        max(r.days) FILTER (WHERE r.pos = floor(r.rank))
        + (max(r.rank) - floor(max(r.rank)))
        * (COALESCE(max(r.days) FILTER (WHERE r.pos = floor(r.rank) + 1),
                    max(r.days) FILTER (WHERE r.pos = floor(r.rank)))
           - max(r.days) FILTER (WHERE r.pos = floor(r.rank))) AS norm_days
    FROM won_ranked r
    GROUP BY r.stage_id
),
engaged AS (
    -- The contact (min by text: PostgreSQL has no min(uuid)), named only where it is the one
    -- contact: a lookup per such deal in the reason, not a join reading all contacts. (Cast
    -- here, not in the lookup: a cast is not leakproof, so under row-level security it would
    -- keep the lookup off the primary key.)
    SELECT r.deal_id, count(DISTINCT ap.contact_id) AS contacts,
        CAST(min(CAST(ap.contact_id AS TEXT)) AS UUID) AS contact_id
    FROM recent r
    CROSS JOIN args CROSS JOIN th
    JOIN activity_participants ap ON ap.activity_id = r.id AND ap.deleted_at IS NULL
        AND ap.contact_id IS NOT NULL AND NOT COALESCE(ap.is_internal, false)
    WHERE r.deal_id IN (SELECT od.id FROM od)
        AND r.occurred_at >= CAST(args.as_of - th.single_threaded_days + 1 AS TIMESTAMPTZ)
        AND r.occurred_at < CAST(args.as_of + 1 AS TIMESTAMPTZ)
    GROUP BY r.deal_id
),
close_moves AS (
    SELECT h.deal_id, h.close_date, h.changed_at,
        lag(h.close_date) OVER (PARTITION BY h.deal_id ORDER BY h.changed_at, h.source_id)
            AS previous,
        row_number() OVER (PARTITION BY h.deal_id ORDER BY h.changed_at, h.source_id) AS k
    FROM deal_field_history h
    JOIN od ON od.id = h.deal_id
    CROSS JOIN args
    WHERE h.deleted_at IS NULL AND h.field = 'close_date' AND h.changed_at < args.as_of + 1
),
pushes AS (
    SELECT m.deal_id, count(*) FILTER (WHERE m.close_date > m.previous) AS pushes,
        max(m.changed_at) FILTER (WHERE m.close_date > m.previous) AS last_push,
        max(m.close_date) FILTER (WHERE m.k = 1) AS first_date
    FROM close_moves m
    GROUP BY m.deal_id
),
entry_amounts AS (
    SELECT h.deal_id, h.amount,
        row_number() OVER (PARTITION BY h.deal_id ORDER BY h.changed_at DESC, h.source_id DESC)
            AS k
    FROM deal_field_history h
    JOIN od ON od.id = h.deal_id
    WHERE h.deleted_at IS NULL AND h.field = 'amount' AND h.changed_at <= od.stage_entered_at
),
flags AS (
    SELECT g.deal_id, 'ghosted' AS rule,
        concat_ws(', ',
            CASE WHEN g.emails_out > 0 THEN {_plural("g.emails_out", "email")} END,
            CASE WHEN g.calls_out > 0 THEN {_plural("g.calls_out", "call")} END,
            CASE WHEN g.messages_out > 0 THEN {_plural("g.messages_out", "message")} END)
        || ' out since ' || {_day("g.first_out")} || ', no reply'
        || CASE WHEN lr.last_in IS NULL THEN ' ever'
            ELSE ' since ' || {_day("lr.last_in")} END AS reason,
        CAST(g.emails_out + g.calls_out + g.messages_out AS NUMERIC) AS measured,
        CAST(th.ghosted_days AS NUMERIC) AS threshold, CAST(g.first_out AS DATE) AS since
    FROM ghosting g CROSS JOIN th
    LEFT JOIN last_replies lr ON lr.deal_id = g.deal_id
    UNION ALL
    SELECT od.id, 'no_recent_meeting',
        CASE WHEN md.last_meeting IS NULL THEN 'no meeting ever'
            ELSE 'no meeting since ' || {_day("md.last_meeting")} || ' ('
                || CAST(args.as_of - CAST(md.last_meeting AS DATE) AS TEXT) || ' days)' END
        || ', none scheduled',
        CAST(args.as_of - CAST(md.last_meeting AS DATE) AS NUMERIC),
        CAST(th.no_meeting_days AS NUMERIC), CAST(md.last_meeting AS DATE)
    FROM unmet u JOIN od ON od.id = u.id CROSS JOIN args CROSS JOIN th
    LEFT JOIN meeting_dates md ON md.deal_id = u.id
    UNION ALL
    SELECT od.id, 'stalled',
        CAST(args.as_of - CAST(od.stage_entered_at AS DATE) AS TEXT) || ' days in '
        || COALESCE(od.stage, 'its stage') || ' since ' || {_day("od.stage_entered_at")}
        || ', above the ' || {_number("n.norm_days")} || ' days of the '
        || CAST(th.stalled_percentile AS TEXT) || 'th percentile of '
        || CAST(n.won_deals AS TEXT) || ' won deals there',
        CAST(args.as_of - CAST(od.stage_entered_at AS DATE) AS NUMERIC),
        CAST(round(n.norm_days, 1) AS NUMERIC), CAST(od.stage_entered_at AS DATE)
    FROM od CROSS JOIN args CROSS JOIN th
    JOIN stage_norms n ON n.stage_id = od.stage_id
    WHERE od.stage_entered_at IS NOT NULL AND n.won_deals >= th.stalled_min_won_deals
        AND args.as_of - CAST(od.stage_entered_at AS DATE) > n.norm_days
    UNION ALL
    SELECT od.id, 'single_threaded',
        CASE WHEN COALESCE(e.contacts, 0) = 0 THEN 'no customer contact'
            WHEN e.contacts = 1
                THEN 'only 1 customer contact (' || COALESCE((
                    SELECT COALESCE(c.full_name, c.email) FROM contacts c
                    WHERE c.id = e.contact_id AND c.deleted_at IS NULL
                ), 'unnamed') || ')'
            ELSE 'only ' || CAST(e.contacts AS TEXT) || ' customer contacts' END
        || ' engaged in the last ' || CAST(th.single_threaded_days AS TEXT) || ' days',
        CAST(COALESCE(e.contacts, 0) AS NUMERIC), CAST(th.max_contacts AS NUMERIC),
        args.as_of - th.single_threaded_days + 1
    FROM od CROSS JOIN args CROSS JOIN th
    LEFT JOIN engaged e ON e.deal_id = od.id
    WHERE COALESCE(e.contacts, 0) <= th.max_contacts
    UNION ALL
    SELECT p.deal_id, 'close_date_pushed',
        'close date moved later ' || {_plural("p.pushes", "time")} || ', from '
        || COALESCE(CAST(p.first_date AS TEXT), 'none') || ' to '
        || COALESCE(CAST(od.close_date AS TEXT), 'none') || ' (last move '
        || {_day("p.last_push")} || ')',
        CAST(p.pushes AS NUMERIC), CAST(th.pushed_min_moves AS NUMERIC),
        CAST(p.last_push AS DATE)
    FROM pushes p JOIN od ON od.id = p.deal_id CROSS JOIN args CROSS JOIN th
    WHERE p.pushes >= th.pushed_min_moves
    UNION ALL
    SELECT od.id, 'amount_dropped',
        'amount cut ' || CAST(CAST(floor(100 * (ea.amount - od.amount) / ea.amount) AS INTEGER)
            AS TEXT) || '% since entering ' || COALESCE(od.stage, 'its stage') || ' on '
        || {_day("od.stage_entered_at")} || ': ' || CAST(ea.amount AS TEXT) || ' to '
        || CAST(od.amount AS TEXT),
        CAST(floor(100 * (ea.amount - od.amount) / ea.amount) AS NUMERIC),
        CAST(th.amount_drop_percent AS NUMERIC), CAST(od.stage_entered_at AS DATE)
    FROM entry_amounts ea JOIN od ON od.id = ea.deal_id CROSS JOIN args CROSS JOIN th
    WHERE ea.k = 1 AND ea.amount > 0 AND od.amount IS NOT NULL
        AND 100 * (ea.amount - od.amount) >= th.amount_drop_percent * ea.amount
    UNION ALL
    SELECT od.id, 'past_due',
        'close date ' || CAST(od.close_date AS TEXT) || ' passed '
        || {_plural("args.as_of - od.close_date", "day")} || ' ago, still open',
        CAST(args.as_of - od.close_date AS NUMERIC), CAST(0 AS NUMERIC), od.close_date
    FROM od CROSS JOIN args
    WHERE od.close_date < args.as_of
),
scored AS (
    SELECT f.deal_id, f.rule, f.reason, f.measured, f.threshold, f.since, {_WEIGHT} AS weight,
        sum({_WEIGHT}) OVER (PARTITION BY f.deal_id) AS risk_score
    FROM flags f
)
SELECT od.deal_name AS deal, od.account_name AS account, od.pipeline_name AS pipeline,
    od.stage, od.owner_name AS owner, od.amount, od.close_date, f.risk_score, f.rule,
    f.reason, f.measured, f.threshold, f.since, f.weight, od.id AS deal_id
FROM scored f
JOIN od ON od.id = f.deal_id
CROSS JOIN args
WHERE (args.rule IS NULL OR f.rule = args.rule) AND f.risk_score >= args.min_score
ORDER BY f.risk_score DESC, od.amount DESC NULLS LAST, deal, od.id, f.weight DESC, f.rule"""


def _days(name: str, what: str, low: int = 1, high: int = 365) -> Param:
    return Param(name, "integer", f"{what} (default: the organization's setting).", None, low, high)


RISK_QUERIES: tuple[VerifiedQuery, ...] = (
    VerifiedQuery(
        name="deal_risks",
        title="Deals at risk",
        keywords=(
            "risk",
            "risks",
            "risky",
            "ghosted",
            "ghosting",
            "flags",
            "flagged",
            "danger",
            "jeopardy",
            "warning",
        ),
        phrasings=(
            "Which deals are at risk, with reasons?",
            "Show me the at-risk deals",
            "What are the risk flags on our open deals?",
            "Which opportunities are in danger?",
            "Deals at risk this quarter with reasons",
            "Open deals with warning signs",
            "Risky deals and their reasons",
            "Risk score of each open deal",
            "Which deals are in jeopardy?",
            "Red flags in the pipeline",
        ),
        description="Open deals flagged by the risk rules (ghosted, no_recent_meeting, stalled, "
        "single_threaded, close_date_pushed, amount_dropped, past_due): one row per deal and "
        "rule with a one-line reason quoting the evidence, the measured value and threshold, "
        "and the deal's risk score (0-100, sum of its flags' weights); riskiest first. "
        "Thresholds default to the organization's settings.",
        params=(
            as_of_param(),
            Param("rule", "choice", "Only this rule's flags.", None, choices=RISK_RULES),
            Param("min_score", "integer", "Only deals scoring at least this.", 0, 0, 100),
            _days("ghosted_days", "ghosted: days with no reply"),
            _days("no_meeting_days", "no_recent_meeting: days without a meeting"),
            _days("stalled_percentile", "stalled: percentile of won deals' days in stage", 50, 99),
            _days("stalled_min_won_deals", "stalled: won deals a stage needs", 1, 10_000),
            _days("single_threaded_days", "single_threaded: days contacts are counted over"),
            _days("max_contacts", "single_threaded: most contacts engaged", 0, 10),
            _days("pushed_min_moves", "close_date_pushed: moves later", 1, 50),
            _days("amount_drop_percent", "amount_dropped: percent cut", 1, 100),
            pipeline_param(),
            owner_param(),
            Param("deal_id", "text", "Only this deal, by its id (deals.id)."),
        ),
        sql=DEAL_RISKS_SQL,
        note="Reasons quote the evidence. Ghosted reads email and call directions and Slack "
        "authors; emails or calls without a recorded direction (Salesforce email tasks) count "
        "neither way. Stalled compares with won deals' days in the same stage.",
    ),
)
