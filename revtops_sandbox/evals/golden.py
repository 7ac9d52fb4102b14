"""The golden set: RevOps questions about the sandbox company, each with gold SQL and a Python
derivation of its expected answer from the company's ground truth (``truth.Truth``).

Every question states its dates: the sandbox's "today" is 2026-11-01 (its anchor), not the day
the eval runs. The gold SQL is written once for both backends (the same portable subset as the
verified queries) and runs through the SQL guard like the model's own SQL. The expected answer
is derived in Python from the ``Company`` records, not by running the SQL; where the derivation
has to mirror a convention of the store (which provider field becomes which column), ``truth``
says so.

A question's ``expected`` returns an ``Expected`` table; column names there are for reading and
for marking ratio columns, the matcher ignores them (see ``match``).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from revtops_sandbox.evals.golden_base import AS_OF, GoldQuestion
from revtops_sandbox.evals.golden_base import OPEN_D as _OPEN_D
from revtops_sandbox.evals.golden_base import OPEN_SQL as _OPEN_SQL
from revtops_sandbox.evals.golden_base import closed_between as _closed_between
from revtops_sandbox.evals.golden_base import money as _money
from revtops_sandbox.evals.golden_base import one as _one
from revtops_sandbox.evals.golden_base import open_deals as _open
from revtops_sandbox.evals.golden_base import table as _table
from revtops_sandbox.evals.golden_base import within as _within
from revtops_sandbox.evals.golden_history import HISTORY_GOLDEN
from revtops_sandbox.evals.match import Expected
from revtops_sandbox.evals.truth import DealFact, Truth

# --- pipeline --------


def _open_total(t: Truth) -> Expected:
    deals = _open(t)
    return _one(("open_deals", "open_amount"), len(deals), _money(d.amount for d in deals))


def _open_by_stage(pipeline: str) -> Callable[[Truth], Expected]:
    def derive(t: Truth) -> Expected:
        groups: dict[tuple[int, str], list[DealFact]] = defaultdict(list)
        for d in _open(t):
            if d.pipeline == pipeline:
                groups[(d.stage_order, d.stage)].append(d)
        rows = [
            (stage, len(ds), _money(d.amount for d in ds))
            for (_, stage), ds in sorted(groups.items())
        ]
        return _table(("stage", "deals", "amount"), rows, ordered=True)

    return derive


def _open_by_stage_sql(pipeline: str) -> str:
    return f"""
SELECT s.label AS stage, count(*) AS deals, COALESCE(sum(d.amount), 0) AS amount
FROM deals d
JOIN deal_stages s ON s.id = d.stage_id
JOIN pipelines p ON p.id = d.pipeline_id
WHERE d.deleted_at IS NULL AND NOT d.is_closed AND p.name = '{pipeline}'
GROUP BY s.label, s.display_order
ORDER BY s.display_order"""


def _weighted(t: Truth) -> Expected:
    total = sum(((d.amount or Decimal(0)) * d.probability for d in _open(t)), Decimal(0))
    return _one(("weighted_amount",), total)


def _deals_per_pipeline(t: Truth) -> Expected:
    counts = Counter(d.pipeline for d in t.deals)
    return _table(("pipeline", "deals"), counts.items())


def _open_by_owner(t: Truth) -> Expected:
    groups: dict[str, list[DealFact]] = defaultdict(list)
    for d in _open(t):
        groups[d.owner].append(d)
    rows = [(o, len(ds), _money(d.amount for d in ds)) for o, ds in groups.items()]
    return _table(("owner", "open_deals", "open_amount"), rows)


def _largest_open(t: Truth) -> Expected:
    priced = sorted(
        (d for d in _open(t) if d.amount is not None),
        key=lambda d: (-(d.amount or 0), d.name),
    )
    return _table(("deal", "amount"), ((d.name, d.amount) for d in priced[:5]), ordered=True)


def _missing_amount(t: Truth) -> Expected:
    return _one(("deals",), sum(1 for d in t.deals if d.amount is None))


# --- closing, forecast, slipped --------


def _closing_nov(t: Truth) -> Expected:
    deals = [d for d in _open(t) if date(2026, 11, 1) <= d.close_date <= date(2026, 11, 30)]
    return _one(("deals", "amount"), len(deals), _money(d.amount for d in deals))


def _forecast_q4(t: Truth) -> Expected:
    groups: dict[str, list[DealFact]] = defaultdict(list)
    for d in t.deals:
        if date(2026, 10, 1) <= d.close_date <= date(2026, 12, 31):
            groups[d.forecast_category].append(d)
    rows = [(c, len(ds), _money(d.amount for d in ds)) for c, ds in groups.items()]
    return _table(("forecast_category", "deals", "amount"), rows)


def _commit_q4(t: Truth) -> Expected:
    deals = [
        d
        for d in t.deals
        if d.forecast_category == "Commit"
        and date(2026, 10, 1) <= d.close_date <= date(2026, 12, 31)
    ]
    return _one(("commit_amount",), _money(d.amount for d in deals))


def _slipped(t: Truth) -> Expected:
    deals = [d for d in _open(t) if d.close_date < AS_OF]
    return _one(("deals", "amount"), len(deals), _money(d.amount for d in deals))


# --- won, lost, win rate --------


def _won_2025(t: Truth) -> Expected:
    won = [d for d in _closed_between(t, date(2025, 1, 1), date(2025, 12, 31)) if d.is_won]
    return _one(("won_amount",), _money(d.amount for d in won))


def _won_by_quarter(t: Truth) -> Expected:
    groups: dict[int, list[DealFact]] = defaultdict(list)
    for d in _closed_between(t, date(2026, 1, 1), date(2026, 9, 30)):
        if d.is_won:
            groups[(d.close_date.month - 1) // 3 + 1].append(d)
    rows = [(q, _money(d.amount for d in ds)) for q, ds in sorted(groups.items())]
    return _table(("quarter", "won_amount"), rows, ordered=True)


def _win_rate_overall(t: Truth) -> Expected:
    closed = _closed_between(t, date(2025, 11, 1), date(2026, 10, 31))
    won = sum(1 for d in closed if d.is_won)
    return _one(("win_rate",), won / len(closed) if closed else None, ratio=("win_rate",))


def _win_rate_by(key: Callable[[DealFact], str], start: date, end: date) -> Callable[..., Expected]:
    def derive(t: Truth) -> Expected:
        groups: dict[str, list[DealFact]] = defaultdict(list)
        for d in _closed_between(t, start, end):
            groups[key(d)].append(d)
        rows = []
        for name, ds in groups.items():
            won = sum(1 for d in ds if d.is_won)
            rows.append((name, won, len(ds), won / len(ds)))
        return _table(("group", "won", "closed", "win_rate"), rows, ratio=("win_rate",))

    return derive


def _avg_won_2026(t: Truth) -> Expected:
    amounts = [
        d.amount
        for d in _closed_between(t, date(2026, 1, 1), date(2026, 10, 31))
        if d.is_won and d.amount is not None
    ]
    return _one(("avg_amount",), sum(amounts, Decimal(0)) / len(amounts) if amounts else None)


def _median_won_nb(t: Truth) -> Expected:
    amounts = [
        float(d.amount)
        for d in t.deals
        if d.is_won and d.pipeline == "New Business" and d.amount is not None
    ]
    return _one(("median_amount",), statistics.median(amounts) if amounts else None)


def _cycle_by_pipeline(t: Truth) -> Expected:
    groups: dict[str, list[int]] = defaultdict(list)
    for d in t.deals:
        if d.is_won:
            groups[d.pipeline].append((d.close_date - d.created_at.date()).days)
    rows = [(p, statistics.fmean(days)) for p, days in groups.items()]
    return _table(("pipeline", "avg_days"), rows)


def _lost_2026(t: Truth) -> Expected:
    lost = [d for d in _closed_between(t, date(2026, 1, 1), date(2026, 10, 31)) if not d.is_won]
    return _one(("deals", "amount"), len(lost), _money(d.amount for d in lost))


def _won_by_source(t: Truth) -> Expected:
    groups: dict[str, list[DealFact]] = defaultdict(list)
    for d in t.deals:
        if d.is_won:
            groups[d.lead_source].append(d)
    return _table(
        ("lead_source", "won_amount"),
        ((s, _money(d.amount for d in ds)) for s, ds in groups.items()),
    )


def _leaderboard(t: Truth) -> Expected:
    groups: dict[str, list[DealFact]] = defaultdict(list)
    for d in _closed_between(t, date(2026, 1, 1), date(2026, 10, 31)):
        if d.is_won:
            groups[d.owner].append(d)
    rows = [(o, len(ds), _money(d.amount for d in ds)) for o, ds in groups.items()]
    return _table(("owner", "won_deals", "won_amount"), rows)


def _top_accounts(t: Truth) -> Expected:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for d in t.deals:
        if d.is_won and d.amount is not None:
            totals[d.account] += d.amount
    top = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:5]
    return _table(("account", "won_amount"), top, ordered=True)


# --- created --------


def _created_oct(t: Truth) -> Expected:
    deals = [d for d in t.deals if _within(d.created_at, date(2026, 10, 1), date(2026, 11, 1))]
    return _one(("deals", "amount"), len(deals), _money(d.amount for d in deals))


def _created_by_month_q3(t: Truth) -> Expected:
    groups: dict[int, list[DealFact]] = defaultdict(list)
    for d in t.deals:
        if _within(d.created_at, date(2026, 7, 1), date(2026, 10, 1)):
            groups[d.created_at.month].append(d)
    rows = [(m, len(ds), _money(d.amount for d in ds)) for m, ds in sorted(groups.items())]
    return _table(("month", "deals", "amount"), rows, ordered=True)


# --- activity and deal hygiene --------


def _stalled(t: Truth) -> Expected:
    return _one(("deals",), sum(1 for d in _open(t) if d.updated_at.date() <= date(2026, 10, 2)))


def _no_recent_activity(t: Truth) -> Expected:
    quiet = 0
    for d in _open(t):
        recent = [
            a
            for a in t.activities_by_deal.get(d.idx, [])
            if _within(a.occurred_at, date(2026, 10, 2), date(2026, 11, 1))
        ]
        quiet += not recent
    return _one(("deals",), quiet)


def _never_touched(t: Truth) -> Expected:
    return _one(("deals",), sum(1 for d in _open(t) if not t.activities_by_deal.get(d.idx)))


def _single_threaded(t: Truth) -> Expected:
    count = 0
    for d in _open(t):
        contacts = {a.contact for a in t.activities_by_deal.get(d.idx, []) if a.contact >= 0}
        count += len(contacts) == 1
    return _one(("deals",), count)


def _activities_by_type_oct(t: Truth) -> Expected:
    counts = Counter(
        a.activity_type
        for a in t.activities
        if _within(a.occurred_at, date(2026, 10, 1), date(2026, 11, 1))
    )
    return _table(("activity_type", "activities"), counts.items())


def _meetings_per_rep_q3(t: Truth) -> Expected:
    counts = Counter(
        a.owner
        for a in t.activities
        if a.activity_type == "meeting"
        and _within(a.occurred_at, date(2026, 7, 1), date(2026, 10, 1))
    )
    return _table(("owner", "meetings"), counts.items())


def _busy_accounts(t: Truth) -> Expected:
    counts = Counter(
        a.account
        for a in t.activities
        if a.activity_type == "meeting"
        and a.account is not None
        and _within(a.occurred_at, date(2026, 8, 1), date(2026, 11, 1))
    )
    return _table(("account", "meetings"), ((a, n) for a, n in counts.items() if n >= 3))


def _call_hours_q3(t: Truth) -> Expected:
    seconds = sum(
        a.duration_seconds or 0
        for a in t.activities
        if a.activity_type == "call" and _within(a.occurred_at, date(2026, 7, 1), date(2026, 10, 1))
    )
    return _one(("hours",), seconds / 3600)


def _inbound_emails_oct(t: Truth) -> Expected:
    return _one(
        ("emails",),
        sum(
            1
            for a in t.activities
            if a.activity_type == "email"
            and a.direction == "inbound"
            and _within(a.occurred_at, date(2026, 10, 1), date(2026, 11, 1))
        ),
    )


# --- accounts and reps --------


def _accounts_by_type(t: Truth) -> Expected:
    return _table(("account_type", "accounts"), Counter(k for _, k, _ in t.accounts).items())


def _accounts_without_deals(t: Truth) -> Expected:
    return _one(
        ("accounts",), sum(1 for name, _, _ in t.accounts if name not in t.accounts_with_deals)
    )


def _contacts_per_account(t: Truth) -> Expected:
    return _one(("avg_contacts",), statistics.fmean(n for _, _, n in t.accounts))


def _inactive_owner_deals(t: Truth) -> Expected:
    inactive = {o.name for o in t.owners if not o.is_active}
    return _one(("deals",), sum(1 for d in _open(t) if d.owner in inactive))


def _owner_count(t: Truth) -> Expected:
    return _one(("active_reps",), sum(1 for o in t.owners if o.is_active))


_BASICS: tuple[GoldQuestion, ...] = (
    GoldQuestion(
        "open_pipeline_total",
        "How many open deals do we have right now, and what is their total amount?",
        f"SELECT count(*) AS open_deals, COALESCE(sum(amount), 0) AS open_amount "
        f"FROM deals WHERE {_OPEN_SQL}",
        _open_total,
        "pipeline",
    ),
    GoldQuestion(
        "open_by_stage_new_business",
        "Break down the open New Business pipeline by stage: number of deals and total amount "
        "per stage, in stage order.",
        _open_by_stage_sql("New Business"),
        _open_by_stage("New Business"),
        "pipeline",
    ),
    GoldQuestion(
        "open_by_stage_renewals",
        "Show the open Renewals pipeline by stage (deal count and amount per stage), in stage "
        "order.",
        _open_by_stage_sql("Renewals"),
        _open_by_stage("Renewals"),
        "pipeline",
    ),
    GoldQuestion(
        "weighted_pipeline",
        "What is the probability-weighted value of all open deals (amount times the deal's "
        "probability, summed)?",
        f"SELECT sum(amount * probability) AS weighted_amount FROM deals WHERE {_OPEN_SQL}",
        _weighted,
        "pipeline",
    ),
    GoldQuestion(
        "deals_per_pipeline",
        "How many deals, open and closed together, does each pipeline have?",
        """
SELECT p.name AS pipeline, count(*) AS deals
FROM deals d JOIN pipelines p ON p.id = d.pipeline_id
WHERE d.deleted_at IS NULL
GROUP BY p.name""",
        _deals_per_pipeline,
        "pipeline",
    ),
    GoldQuestion(
        "open_pipeline_by_owner",
        "For each rep, how many open deals do they own and what is the total open amount?",
        f"""
SELECT o.full_name AS owner, count(*) AS open_deals, COALESCE(sum(d.amount), 0) AS open_amount
FROM deals d JOIN owners o ON o.id = d.owner_id
WHERE {_OPEN_D}
GROUP BY o.full_name""",
        _open_by_owner,
        "pipeline",
    ),
    GoldQuestion(
        "largest_open_deals",
        "What are our 5 largest open deals by amount? Give the deal name and amount, largest "
        "first.",
        f"SELECT name AS deal, amount FROM deals WHERE {_OPEN_SQL} AND amount IS NOT NULL "
        "ORDER BY amount DESC, name LIMIT 5",
        _largest_open,
        "pipeline",
    ),
    GoldQuestion(
        "deals_missing_amount",
        "How many deals (open or closed) have no amount entered?",
        "SELECT count(*) AS deals FROM deals WHERE deleted_at IS NULL AND amount IS NULL",
        _missing_amount,
        "hygiene",
    ),
    GoldQuestion(
        "closing_november_2026",
        "How many open deals are expected to close in November 2026, and what is their total "
        "amount?",
        f"SELECT count(*) AS deals, COALESCE(sum(amount), 0) AS amount FROM deals "
        f"WHERE {_OPEN_SQL} AND close_date BETWEEN DATE '2026-11-01' AND DATE '2026-11-30'",
        _closing_nov,
        "forecast",
    ),
    GoldQuestion(
        "forecast_q4_2026",
        "For all deals with a close date in Q4 2026 (October to December 2026), open or "
        "closed, what is the deal count and total amount per forecast category?",
        """
SELECT forecast_category, count(*) AS deals, COALESCE(sum(amount), 0) AS amount
FROM deals
WHERE deleted_at IS NULL AND close_date BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'
GROUP BY forecast_category""",
        _forecast_q4,
        "forecast",
    ),
    GoldQuestion(
        "commit_q4_2026",
        "What is the total amount of deals in the Commit forecast category with a close date "
        "in Q4 2026?",
        "SELECT COALESCE(sum(amount), 0) AS commit_amount FROM deals WHERE deleted_at IS NULL "
        "AND forecast_category = 'Commit' "
        "AND close_date BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'",
        _commit_q4,
        "forecast",
    ),
    GoldQuestion(
        "slipped_deals",
        "As of 2026-11-01, how many open deals have an expected close date that has already "
        "passed (before 2026-11-01), and what is their total amount?",
        f"SELECT count(*) AS deals, COALESCE(sum(amount), 0) AS amount FROM deals "
        f"WHERE {_OPEN_SQL} AND close_date < DATE '2026-11-01'",
        _slipped,
        "forecast",
    ),
    GoldQuestion(
        "won_amount_2025",
        "What was the total closed-won amount of deals closed in calendar year 2025?",
        "SELECT COALESCE(sum(amount), 0) AS won_amount FROM deals WHERE deleted_at IS NULL "
        "AND is_won AND close_date BETWEEN DATE '2025-01-01' AND DATE '2025-12-31'",
        _won_2025,
        "bookings",
    ),
    GoldQuestion(
        "won_by_quarter_2026",
        "What was the closed-won amount in each quarter of 2026 so far (Q1 to Q3, by close "
        "date)? Give the quarter number and the amount.",
        """
SELECT EXTRACT(QUARTER FROM close_date) AS quarter, sum(amount) AS won_amount
FROM deals
WHERE deleted_at IS NULL AND is_won
    AND close_date BETWEEN DATE '2026-01-01' AND DATE '2026-09-30'
GROUP BY EXTRACT(QUARTER FROM close_date)
ORDER BY quarter""",
        _won_by_quarter,
        "bookings",
    ),
    GoldQuestion(
        "win_rate_last_12_months",
        "What is our win rate by deal count (won deals divided by all closed deals) for deals "
        "closed between 2025-11-01 and 2026-10-31?",
        """
SELECT CAST(count(*) FILTER (WHERE is_won) AS DOUBLE PRECISION) / count(*) AS win_rate
FROM deals
WHERE deleted_at IS NULL AND is_closed
    AND close_date BETWEEN DATE '2025-11-01' AND DATE '2026-10-31'""",
        _win_rate_overall,
        "win_rate",
    ),
    GoldQuestion(
        "win_rate_by_pipeline",
        "For each pipeline, how many deals were won, how many closed in total, and what is the "
        "win rate, for deals closed between 2025-11-01 and 2026-10-31?",
        """
SELECT p.name AS pipeline, count(*) FILTER (WHERE d.is_won) AS won, count(*) AS closed,
    CAST(count(*) FILTER (WHERE d.is_won) AS DOUBLE PRECISION) / count(*) AS win_rate
FROM deals d JOIN pipelines p ON p.id = d.pipeline_id
WHERE d.deleted_at IS NULL AND d.is_closed
    AND d.close_date BETWEEN DATE '2025-11-01' AND DATE '2026-10-31'
GROUP BY p.name""",
        _win_rate_by(lambda d: d.pipeline, date(2025, 11, 1), date(2026, 10, 31)),
        "win_rate",
    ),
    GoldQuestion(
        "win_rate_by_owner_2026",
        "Win rate per rep for deals closed from 2026-01-01 to 2026-10-31: deals won, deals "
        "closed and win rate by count for each owner.",
        """
SELECT o.full_name AS owner, count(*) FILTER (WHERE d.is_won) AS won, count(*) AS closed,
    CAST(count(*) FILTER (WHERE d.is_won) AS DOUBLE PRECISION) / count(*) AS win_rate
FROM deals d JOIN owners o ON o.id = d.owner_id
WHERE d.deleted_at IS NULL AND d.is_closed
    AND d.close_date BETWEEN DATE '2026-01-01' AND DATE '2026-10-31'
GROUP BY o.full_name""",
        _win_rate_by(lambda d: d.owner, date(2026, 1, 1), date(2026, 10, 31)),
        "win_rate",
    ),
    GoldQuestion(
        "avg_won_deal_size_2026",
        "What is the average amount of the deals we won with a close date from 2026-01-01 to "
        "2026-10-31?",
        "SELECT avg(amount) AS avg_amount FROM deals WHERE deleted_at IS NULL AND is_won "
        "AND close_date BETWEEN DATE '2026-01-01' AND DATE '2026-10-31'",
        _avg_won_2026,
        "bookings",
        note="Deals without an amount are left out of the average.",
    ),
    GoldQuestion(
        "median_won_new_business",
        "What is the median amount of closed-won deals in the New Business pipeline (all time)?",
        """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d.amount) AS median_amount
FROM deals d JOIN pipelines p ON p.id = d.pipeline_id
WHERE d.deleted_at IS NULL AND d.is_won AND p.name = 'New Business'""",
        _median_won_nb,
        "bookings",
    ),
    GoldQuestion(
        "sales_cycle_by_pipeline",
        "What is the average sales cycle in days (from the deal's creation date to its close "
        "date) of won deals, per pipeline, over all time?",
        """
SELECT p.name AS pipeline, avg(d.close_date - CAST(d.created_at AS DATE)) AS avg_days
FROM deals d JOIN pipelines p ON p.id = d.pipeline_id
WHERE d.deleted_at IS NULL AND d.is_won
GROUP BY p.name""",
        _cycle_by_pipeline,
        "win_rate",
        note="Creation dates are taken in UTC.",
    ),
    GoldQuestion(
        "lost_2026",
        "How many deals did we lose with a close date from 2026-01-01 to 2026-10-31, and what "
        "was their total amount?",
        "SELECT count(*) AS deals, COALESCE(sum(amount), 0) AS amount FROM deals "
        "WHERE deleted_at IS NULL AND is_closed AND NOT is_won "
        "AND close_date BETWEEN DATE '2026-01-01' AND DATE '2026-10-31'",
        _lost_2026,
        "bookings",
    ),
    GoldQuestion(
        "won_by_lead_source",
        "What is the total closed-won amount per lead source, over all time?",
        "SELECT lead_source, COALESCE(sum(amount), 0) AS won_amount FROM deals "
        "WHERE deleted_at IS NULL AND is_won GROUP BY lead_source",
        _won_by_source,
        "bookings",
    ),
    GoldQuestion(
        "rep_leaderboard_2026",
        "Rep leaderboard for deals closed from 2026-01-01 to 2026-10-31: for every rep with at "
        "least one won deal, the number of won deals and the closed-won amount.",
        """
SELECT o.full_name AS owner, count(*) AS won_deals, COALESCE(sum(d.amount), 0) AS won_amount
FROM deals d JOIN owners o ON o.id = d.owner_id
WHERE d.deleted_at IS NULL AND d.is_won
    AND d.close_date BETWEEN DATE '2026-01-01' AND DATE '2026-10-31'
GROUP BY o.full_name
ORDER BY won_amount DESC""",
        _leaderboard,
        "reps",
    ),
    GoldQuestion(
        "top_accounts_by_won",
        "Which 5 accounts have the highest total closed-won amount over all time? Give the "
        "account name and the amount, highest first.",
        """
SELECT a.name AS account, sum(d.amount) AS won_amount
FROM deals d JOIN accounts a ON a.id = d.account_id
WHERE d.deleted_at IS NULL AND a.deleted_at IS NULL AND d.is_won AND d.amount IS NOT NULL
GROUP BY a.name
ORDER BY won_amount DESC, account
LIMIT 5""",
        _top_accounts,
        "accounts",
    ),
    GoldQuestion(
        "created_october_2026",
        "How many new deals were created in October 2026, and what is their total amount?",
        "SELECT count(*) AS deals, COALESCE(sum(amount), 0) AS amount FROM deals "
        "WHERE deleted_at IS NULL AND created_at >= DATE '2026-10-01' "
        "AND created_at < DATE '2026-11-01'",
        _created_oct,
        "pipeline",
        note="Creation times are in UTC.",
    ),
    GoldQuestion(
        "created_by_month_q3_2026",
        "How many deals were created in each month of Q3 2026 (July, August, September), and "
        "with what total amount? Give the month number, the count and the amount.",
        """
SELECT EXTRACT(MONTH FROM created_at) AS month, count(*) AS deals,
    COALESCE(sum(amount), 0) AS amount
FROM deals
WHERE deleted_at IS NULL AND created_at >= DATE '2026-07-01' AND created_at < DATE '2026-10-01'
GROUP BY EXTRACT(MONTH FROM created_at)
ORDER BY month""",
        _created_by_month_q3,
        "pipeline",
    ),
    GoldQuestion(
        "stalled_open_deals",
        "How many open deals have not been modified at all since 2026-10-02 (last change on or "
        "before 2026-10-02)?",
        f"SELECT count(*) AS deals FROM deals WHERE {_OPEN_SQL} "
        "AND CAST(updated_at AS DATE) <= DATE '2026-10-02'",
        _stalled,
        "hygiene",
        note="Last change is the deal's updated_at (HubSpot hs_lastmodifieddate), in UTC.",
    ),
    GoldQuestion(
        "no_activity_october",
        "How many open deals had no activity at all (no meeting, call, email, note or task) "
        "logged between 2026-10-02 and 2026-10-31?",
        f"""
SELECT count(*) AS deals FROM deals d
WHERE {_OPEN_D}
    AND NOT EXISTS (
        SELECT 1 FROM activities a
        WHERE a.deal_id = d.id AND a.deleted_at IS NULL
            AND a.occurred_at >= DATE '2026-10-02' AND a.occurred_at < DATE '2026-11-01'
    )""",
        _no_recent_activity,
        "hygiene",
    ),
    GoldQuestion(
        "open_deals_never_touched",
        "How many open deals have no activities linked to them at all?",
        f"""
SELECT count(*) AS deals FROM deals d
WHERE {_OPEN_D}
    AND NOT EXISTS (
        SELECT 1 FROM activities a WHERE a.deal_id = d.id AND a.deleted_at IS NULL
    )""",
        _never_touched,
        "hygiene",
    ),
    GoldQuestion(
        "single_threaded_open_deals",
        "How many open deals are single-threaded, i.e. exactly one distinct customer contact "
        "took part in the deal's activities?",
        # One aggregation over the open deals' people, as an analyst writes it; the former
        # correlated subquery joined activities and participants once per open deal (30k
        # deals, 150k index probes at scale 10: 1.1 s).
        f"""
SELECT count(*) AS deals FROM (
    SELECT a.deal_id
    FROM deals d
    JOIN activities a ON a.deal_id = d.id
    JOIN activity_participants ap ON ap.activity_id = a.id
    WHERE {_OPEN_D} AND a.deleted_at IS NULL AND ap.deleted_at IS NULL
        AND ap.contact_id IS NOT NULL
    GROUP BY a.deal_id
    HAVING count(DISTINCT ap.contact_id) = 1
) single_threaded""",
        _single_threaded,
        "hygiene",
    ),
    GoldQuestion(
        "activities_by_type_october",
        "How many activities of each type were logged in October 2026?",
        """
SELECT activity_type, count(*) AS activities FROM activities
WHERE deleted_at IS NULL AND occurred_at >= DATE '2026-10-01' AND occurred_at < DATE '2026-11-01'
GROUP BY activity_type""",
        _activities_by_type_oct,
        "activity",
        note="An activity is logged when it occurred (occurred_at), in UTC.",
    ),
    GoldQuestion(
        "meetings_per_rep_q3",
        "How many meetings did each rep own in Q3 2026 (July 1 to September 30)?",
        """
SELECT o.full_name AS owner, count(*) AS meetings
FROM activities a JOIN owners o ON o.id = a.owner_id
WHERE a.deleted_at IS NULL AND a.activity_type = 'meeting'
    AND a.occurred_at >= DATE '2026-07-01' AND a.occurred_at < DATE '2026-10-01'
GROUP BY o.full_name""",
        _meetings_per_rep_q3,
        "activity",
    ),
    GoldQuestion(
        "accounts_with_most_meetings",
        "Which accounts had 3 or more meetings between 2026-08-01 and 2026-10-31, and how many "
        "meetings did each have?",
        """
SELECT acc.name AS account, count(*) AS meetings
FROM activities a JOIN accounts acc ON acc.id = a.account_id
WHERE a.deleted_at IS NULL AND acc.deleted_at IS NULL AND a.activity_type = 'meeting'
    AND a.occurred_at >= DATE '2026-08-01' AND a.occurred_at < DATE '2026-11-01'
GROUP BY acc.name
HAVING count(*) >= 3""",
        _busy_accounts,
        "accounts",
    ),
    GoldQuestion(
        "call_hours_q3",
        "How many hours of calls did the team log in Q3 2026 (July to September)?",
        """
SELECT sum(duration_seconds) / 3600.0 AS hours FROM activities
WHERE deleted_at IS NULL AND activity_type = 'call'
    AND occurred_at >= DATE '2026-07-01' AND occurred_at < DATE '2026-10-01'""",
        _call_hours_q3,
        "activity",
    ),
    GoldQuestion(
        "inbound_emails_october",
        "How many inbound emails (from customers) were logged in October 2026?",
        """
SELECT count(*) AS emails FROM activities
WHERE deleted_at IS NULL AND activity_type = 'email' AND direction = 'inbound'
    AND occurred_at >= DATE '2026-10-01' AND occurred_at < DATE '2026-11-01'""",
        _inbound_emails_oct,
        "activity",
    ),
    GoldQuestion(
        "accounts_by_type",
        "How many accounts do we have of each account type?",
        "SELECT account_type, count(*) AS accounts FROM accounts WHERE deleted_at IS NULL "
        "GROUP BY account_type",
        _accounts_by_type,
        "accounts",
    ),
    GoldQuestion(
        "accounts_without_deals",
        "How many accounts have never had a deal?",
        """
SELECT count(*) AS accounts FROM accounts acc
WHERE acc.deleted_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM deals d WHERE d.account_id = acc.id AND d.deleted_at IS NULL)""",
        _accounts_without_deals,
        "accounts",
    ),
    GoldQuestion(
        "avg_contacts_per_account",
        "On average, how many contacts does an account have (accounts without contacts count "
        "as zero)?",
        """
SELECT CAST(count(c.id) AS DOUBLE PRECISION) / count(DISTINCT acc.id) AS avg_contacts
FROM accounts acc
LEFT JOIN contacts c ON c.account_id = acc.id AND c.deleted_at IS NULL
WHERE acc.deleted_at IS NULL""",
        _contacts_per_account,
        "accounts",
    ),
    GoldQuestion(
        "open_deals_of_inactive_reps",
        "How many open deals are owned by reps who are no longer active?",
        f"""
SELECT count(*) AS deals FROM deals d JOIN owners o ON o.id = d.owner_id
WHERE {_OPEN_D} AND NOT o.is_active""",
        _inactive_owner_deals,
        "reps",
    ),
    GoldQuestion(
        "active_reps",
        "How many active sales reps (deal owners) do we have?",
        "SELECT count(*) AS active_reps FROM owners WHERE deleted_at IS NULL AND is_active",
        _owner_count,
        "reps",
    ),
)

# The questions on deal history, risk, movement, funnel, velocity and quota come after.
GOLDEN: tuple[GoldQuestion, ...] = _BASICS + HISTORY_GOLDEN
GOLDEN_BY_ID: dict[str, GoldQuestion] = {q.id: q for q in GOLDEN}
