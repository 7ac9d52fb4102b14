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

Where the rules read: every rule but past_due reads ``deal_risk_facts``, the rollup the sync
keeps after identity resolution (``store.risk_facts``: per deal and day the touches out and
in and the contacts engaged, per deal and account the latest meeting, won deals' days and
rank per stage, close-date pushes, the amount at stage entry), not the activities,
participants and histories it is derived from: the same rows for any ``as_of`` and
thresholds (whole-day windows; tests/store/test_risk_facts.py, and the rows compared with
the former SQL's), in a fraction of the time (3.1 s at scale 10 on PostgreSQL before). The
flags are therefore as of the last sync's refresh, like the synced data they come from.
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
bounds AS MATERIALIZED (
    -- Where each window of the activity rules starts, computed once: bounds the index of
    -- deal_risk_facts by day can seek to (an expression over the thresholds is not
    -- leakproof, so under row-level security it could only filter after the scan).
    SELECT args.as_of - th.ghosted_days + 1 AS ghosted_from,
        args.as_of - th.single_threaded_days + 1 AS contacts_from,
        CAST(args.as_of - th.no_meeting_days + 1 AS TIMESTAMPTZ) AS meetings_from
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
ghosting AS (
    -- Deals with something out and nothing in during the window (deal_risk_facts's touches:
    -- emails and calls by direction, Slack messages by their author, per deal and day).
    SELECT e.deal_id, CAST(sum(e.emails_out) AS BIGINT) AS emails_out,
        CAST(sum(e.calls_out) AS BIGINT) AS calls_out,
        CAST(sum(e.messages_out) AS BIGINT) AS messages_out, min(e.first_out) AS first_out
    FROM deal_risk_facts e
    JOIN od ON od.id = e.deal_id
    CROSS JOIN bounds CROSS JOIN args
    WHERE e.kind = 'touch' AND e.day >= bounds.ghosted_from AND e.day <= args.as_of
    GROUP BY e.deal_id
    HAVING sum(e.emails_out + e.calls_out + e.messages_out) > 0 AND sum(e.replies) = 0
),
last_replies AS MATERIALIZED (
    -- Their last reply ever (before the window, as none came in it), read by deal.
    SELECT e.deal_id, max(e.last_reply) AS last_in
    FROM deal_risk_facts e CROSS JOIN args
    WHERE e.kind = 'touch' AND e.deal_id IN (SELECT g.deal_id FROM ghosting g)
        AND e.day <= args.as_of AND e.last_reply IS NOT NULL
    GROUP BY e.deal_id
),
meetings AS (
    -- Each open deal's latest meeting ever (scheduled ones included): its own, or its
    -- account's (linked to it, or attended by an external person resolved to it).
    SELECT od.id, od.created_at,
        CASE WHEN am.last_meeting IS NULL OR dm.last_meeting > am.last_meeting
            THEN dm.last_meeting ELSE am.last_meeting END AS last_meeting
    FROM od
    LEFT JOIN deal_risk_facts dm ON dm.kind = 'meeting' AND dm.deal_id = od.id
    LEFT JOIN deal_risk_facts am ON am.kind = 'meeting' AND am.account_id = od.account_id
),
meeting_dates AS (
    -- The deals no_recent_meeting flags: old enough, and no meeting since the window's start
    -- (none recent, none scheduled).
    SELECT m.id, m.last_meeting
    FROM meetings m CROSS JOIN args CROSS JOIN th CROSS JOIN bounds
    WHERE m.created_at < args.as_of - th.no_meeting_days + 1
        AND (m.last_meeting IS NULL OR m.last_meeting < bounds.meetings_from)
),
stage_counts AS MATERIALIZED (
    -- How many won deals left each open deal's stage (one deal's flags: its stage alone): the
    -- last rank kept in deal_risk_facts plus one, an index probe per stage, not a count of
    -- them all (materialized: inlined, PostgreSQL ran the probe once per joined row), and the
    -- two ranks the percentile lies between, as integers: a cast in the join would not be
    -- leakproof, so under row-level security it could not seek the index.
    SELECT r.stage_id, r.won_deals, r.rank, CAST(floor(r.rank) AS INTEGER) AS below,
        CAST(floor(r.rank) AS INTEGER) + 1 AS above
    FROM (
        SELECT s.stage_id, s.won_deals,
            (s.won_deals - 1) * th.stalled_percentile / 100.0 AS rank
        FROM (
            SELECT o.stage_id, CAST((
                SELECT max(w.position) FROM deal_risk_facts w
                WHERE w.kind = 'won_stage' AND w.stage_id = o.stage_id
            ) + 1 AS BIGINT) AS won_deals
            FROM (SELECT DISTINCT od.stage_id FROM od) o
        ) s
        CROSS JOIN th
        WHERE s.won_deals IS NOT NULL
    ) r
),
stage_norms AS MATERIALIZED (
    -- percentile_cont by hand (linear between the two nearest ranks; the won deals' ranks by
    -- days are kept in deal_risk_facts): DuckDB's takes only a constant fraction, and the
    -- percentile is a per-organization setting. Materialized: a row per stage, computed once
    -- (inlined, its rank lookups ran once per open deal).
    SELECT c.stage_id, c.won_deals,
        CAST(lo.days AS BIGINT) + (c.rank - floor(c.rank))
        * (COALESCE(CAST(hi.days AS BIGINT), CAST(lo.days AS BIGINT)) - CAST(lo.days AS BIGINT))
            AS norm_days
    FROM stage_counts c
    JOIN deal_risk_facts lo ON lo.kind = 'won_stage' AND lo.stage_id = c.stage_id
        AND lo.position = c.below
    LEFT JOIN deal_risk_facts hi ON hi.kind = 'won_stage' AND hi.stage_id = c.stage_id
        AND hi.position = c.above
),
engaged AS (
    -- The contact (min by text: PostgreSQL has no min(uuid)), named only where it is the one
    -- contact: a lookup per such deal in the reason, not a join reading all contacts. Distinct
    -- pairs first, then counted: two hash aggregates, not a sort for count(DISTINCT).
    SELECT p.deal_id, count(*) AS contacts,
        CAST(min(CAST(p.contact_id AS TEXT)) AS UUID) AS contact_id
    FROM (
        SELECT e.deal_id, e.contact_id
        FROM deal_risk_facts e
        JOIN od ON od.id = e.deal_id
        CROSS JOIN bounds CROSS JOIN args
        WHERE e.kind = 'contact' AND e.day >= bounds.contacts_from AND e.day <= args.as_of
        GROUP BY e.deal_id, e.contact_id
    ) p
    GROUP BY p.deal_id
),
pushes AS (
    -- Close-date moves later up to as_of, and the first close date (deal_risk_facts: a move
    -- is a push or not whatever as_of is).
    SELECT p.deal_id, count(*) AS pushes, max(p.changed_at) AS last_push,
        max(f.close_date) AS first_date
    FROM deal_risk_facts p
    JOIN od ON od.id = p.deal_id
    CROSS JOIN args
    LEFT JOIN deal_risk_facts f ON f.kind = 'first_close' AND f.deal_id = p.deal_id
    WHERE p.kind = 'push' AND p.day <= args.as_of
    GROUP BY p.deal_id
),
entry_amounts AS (
    SELECT e.deal_id, e.amount
    FROM deal_risk_facts e
    JOIN od ON od.id = e.deal_id
    WHERE e.kind = 'entry_amount'
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
    FROM meeting_dates md JOIN od ON od.id = md.id CROSS JOIN args CROSS JOIN th
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
    WHERE ea.amount > 0 AND od.amount IS NOT NULL
        AND 100 * (ea.amount - od.amount) >= th.amount_drop_percent * ea.amount
    UNION ALL
    SELECT od.id, 'past_due',
        'close date ' || CAST(od.close_date AS TEXT) || ' passed '
        || {_plural("args.as_of - od.close_date", "day")} || ' ago, still open',
        CAST(args.as_of - od.close_date AS NUMERIC), CAST(0 AS NUMERIC), od.close_date
    FROM od CROSS JOIN args
    WHERE od.close_date < args.as_of
),
scores AS (
    -- Each flagged deal's score, the weights of its flags: a hash aggregate, not a window
    -- sorting every flag with its reason by deal (a quarter of the query at scale 10).
    SELECT f.deal_id, sum({_WEIGHT}) AS risk_score
    FROM flags f
    GROUP BY f.deal_id
)
SELECT od.deal_name AS deal, od.account_name AS account, od.pipeline_name AS pipeline,
    od.stage, od.owner_name AS owner, od.amount, od.close_date, s.risk_score, f.rule,
    f.reason, f.measured, f.threshold, f.since, {_WEIGHT} AS weight, od.id AS deal_id
FROM flags f
JOIN scores s ON s.deal_id = f.deal_id
JOIN od ON od.id = f.deal_id
CROSS JOIN args
WHERE (args.rule IS NULL OR f.rule = args.rule) AND s.risk_score >= args.min_score
ORDER BY s.risk_score DESC, od.amount DESC NULLS LAST, deal, od.id, weight DESC, f.rule"""


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
