"""Golden questions on deal history and plans: deal risk, pipeline movement, the stage funnel,
sales velocity, forecast and quota.

Their answers come from the sandbox's own history of each deal (stage path, amount and
close-date versions: ``truth.Truth.stage_paths``, ``amount_history``, ``close_history``), its
activities with their directions, and the quota plan the eval imports (``quota_plan``). The
gold SQL reads ``deal_stage_history``, ``deal_field_history``, ``activities`` and ``quotas`` as
an analyst would; the verified queries (``deal_risks``, ``pipeline_waterfall``,
``stage_funnel``, ``sales_velocity``, ``forecast_vs_quota``) are not used, so a question also
checks what the store holds under them.

Instants are UTC; "at 2026-10-01" means at 00:00 UTC that day, i.e. what was true before it.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from revtops_sandbox.evals.golden_base import (
    AS_OF,
    OPEN_D,
    GoldQuestion,
    money,
    one,
    open_deals,
    table,
    within,
)
from revtops_sandbox.evals.match import Expected
from revtops_sandbox.evals.truth import DealFact, StageEntry, Truth, day_start

Q3 = (date(2026, 7, 1), date(2026, 9, 30))
Q4 = (date(2026, 10, 1), date(2026, 12, 31))
YTD = (date(2026, 1, 1), date(2026, 9, 30))  # Q1 to Q3


def _pushes(t: Truth, d: DealFact) -> int:
    dates = [day for _, day in t.close_history[d.idx]]
    return sum(1 for before, after in pairwise(dates) if after > before)


def _days(start: datetime, end: datetime) -> int:
    """Calendar days between two instants' UTC dates."""
    return (end.date() - start.date()).days


def _visits(t: Truth, d: DealFact) -> Iterator[tuple[StageEntry, StageEntry | None]]:
    """Each stage the deal entered with the entry that ended it (None: it is still there)."""
    path = t.stage_paths[d.idx]
    yield from zip(path, [*path[1:], None], strict=True)


def _percentile(values: list[int], fraction: float) -> float:
    """percentile_cont: linear between the two nearest ranks."""
    ranked = sorted(values)
    rank = (len(ranked) - 1) * fraction
    low = int(rank)
    high = ranked[min(low + 1, len(ranked) - 1)]
    return ranked[low] + (rank - low) * (high - ranked[low])


# --- deal risk --------


def _pushed_twice(t: Truth) -> Expected:
    rows = [(d.name, n) for d in open_deals(t) if (n := _pushes(t, d)) >= 2]
    return table(("deal", "pushes"), rows)


def _amount_cut(t: Truth) -> Expected:
    rows = []
    for d in open_deals(t):
        history = t.amount_history[d.idx]
        entered = t.stage_entered_at(d.idx)
        before = [amount for when, amount in history if when <= entered]
        if d.amount is None or not before or before[-1] <= 0:
            continue
        if 5 * d.amount <= 4 * before[-1]:  # at least 20% below
            rows.append((d.name, before[-1], d.amount))
    return table(("deal", "amount_at_stage_entry", "amount_now"), rows)


def _past_due_by_owner(t: Truth) -> Expected:
    overdue: dict[str, list[int]] = defaultdict(list)
    for d in open_deals(t):
        if d.close_date < AS_OF:
            overdue[d.owner].append((AS_OF - d.close_date).days)
    rows = [(owner, len(days), max(days)) for owner, days in overdue.items()]
    return table(("owner", "past_due_deals", "most_days_overdue"), rows)


def _ghosted(t: Truth) -> Expected:
    start, end = date(2026, 10, 18), date(2026, 11, 1)
    rows = []
    for d in open_deals(t):
        touches = [
            a
            for a in t.activities_by_deal.get(d.idx, [])
            if a.activity_type in ("email", "call") and within(a.occurred_at, start, end)
        ]
        outbound = sum(1 for a in touches if a.direction == "outbound")
        if outbound and not any(a.direction == "inbound" for a in touches):
            rows.append((d.name, outbound))
    return table(("deal", "outbound_touches"), rows)


def _single_threaded_30(t: Truth) -> Expected:
    start, end = date(2026, 10, 2), date(2026, 11, 1)
    count = 0
    for d in open_deals(t):
        contacts = {
            a.contact
            for a in t.activities_by_deal.get(d.idx, [])
            if a.contact >= 0 and within(a.occurred_at, start, end)
        }
        count += len(contacts) == 1
    return one(("deals",), count)


def _stalled_p75(t: Truth) -> Expected:
    won_days: dict[int, list[int]] = defaultdict(list)
    for d in t.deals:
        if d.is_won and d.pipeline == "New Business":
            for entry, left in _visits(t, d):
                if left is not None and not entry.is_closed:
                    won_days[entry.order].append(_days(entry.entered_at, left.entered_at))
    stalled: Counter[int] = Counter()
    norms = {order: _percentile(days, 0.75) for order, days in won_days.items()}
    labels: dict[int, str] = {}
    for d in t.deals:
        if d.pipeline == "New Business":
            for entry in t.stage_paths[d.idx]:
                labels[entry.order] = entry.stage
        if d.is_open and d.pipeline == "New Business" and d.stage_order in norms:
            in_stage = (AS_OF - t.stage_entered_at(d.idx).date()).days
            stalled[d.stage_order] += in_stage > norms[d.stage_order]
    rows = [(labels[o], norms[o], stalled[o]) for o in sorted(norms)]
    return table(("stage", "p75_days_won", "stalled_open_deals"), rows, ordered=True)


def _no_meeting_30(t: Truth) -> Expected:
    start, end = date(2026, 10, 2), date(2026, 11, 1)
    met_deals, met_accounts = set(), set()
    for a in t.activities:
        if a.activity_type == "meeting" and within(a.occurred_at, start, end):
            met_deals.add(a.deal)
            met_accounts.add(a.account_idx)
    count = sum(
        1
        for d in open_deals(t)
        if d.created_at < day_start(start)
        and d.idx not in met_deals
        and d.account_idx not in met_accounts
    )
    return one(("deals",), count)


def _past_due_after_push(t: Truth) -> Expected:
    deals = [d for d in open_deals(t) if d.close_date < AS_OF and _pushes(t, d) >= 1]
    return one(("deals", "amount"), len(deals), money(d.amount for d in deals))


_PUSHES_CTE = """
WITH moves AS (
    SELECT h.deal_id, h.close_date,
        lag(h.close_date) OVER (PARTITION BY h.deal_id ORDER BY h.changed_at) AS previous
    FROM deal_field_history h
    WHERE h.deleted_at IS NULL AND h.field = 'close_date'
),
pushes AS (
    SELECT deal_id, count(*) AS pushes FROM moves WHERE close_date > previous GROUP BY deal_id
)"""


# --- pipeline movement --------


def _open_at(t: Truth, moment: datetime) -> dict[str, list[Decimal | None]]:
    """Amounts of the deals open at ``moment``, by pipeline."""
    out: dict[str, list[Decimal | None]] = defaultdict(list)
    for d in t.deals:
        state = t.state_at(d, moment)
        if state is not None and state.is_open:
            out[d.pipeline].append(state.amount)
    return out


def _opening_q4(t: Truth) -> Expected:
    groups = _open_at(t, day_start(Q4[0]))
    return table(
        ("pipeline", "deals", "amount"), ((p, len(a), money(a)) for p, a in groups.items())
    )


def _closed_by_month_q3(t: Truth) -> Expected:
    rows: dict[int, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for d in t.deals:
        for entry in t.stage_paths[d.idx]:
            if entry.is_closed and within(entry.entered_at, Q3[0], Q3[1] + timedelta(days=1)):
                row = rows[entry.entered_at.month]
                k = 0 if entry.is_won else 2
                row[k] += 1
                row[k + 1] += d.amount or 0
    return table(
        ("month", "won_deals", "won_amount", "lost_deals", "lost_amount"),
        ((m, *r) for m, r in sorted(rows.items())),
        ordered=True,
    )


def _close_moves_october(t: Truth) -> Expected:
    later = earlier = 0
    for d in t.deals:
        for (_, before), (when, after) in pairwise(t.close_history[d.idx]):
            if within(when, date(2026, 10, 1), date(2026, 11, 1)):
                later += after > before
                earlier += after < before
    return one(("pushed_later", "pulled_earlier"), later, earlier)


def _pushed_out_of_q4(t: Truth) -> Expected:
    """Close-date changes in October from a Q4 date to a later one, at the amount then."""
    moves, amount = 0, Decimal(0)
    for d in t.deals:
        for (_, before), (when, after) in pairwise(t.close_history[d.idx]):
            in_october = within(when, date(2026, 10, 1), date(2026, 11, 1))
            if in_october and Q4[0] <= before <= Q4[1] and after > Q4[1]:
                state = t.state_at(d, when)
                moves += 1
                amount += (state.amount if state else None) or 0
    return one(("moves", "amount"), moves, amount)


def _october_walk(t: Truth) -> Expected:
    start, end = day_start(date(2026, 10, 1)), day_start(date(2026, 11, 1))
    opening = closing = created = won = lost = change = Decimal(0)
    for d in t.deals:
        before, after = t.state_at(d, start), t.state_at(d, end)
        if before and before.is_open:
            opening += before.amount or 0
        if after and after.is_open:
            closing += after.amount or 0
        if start <= d.created_at < end:
            first = t.state_at(d, d.created_at + timedelta(microseconds=1))
            if first and first.is_open:
                created += first.amount or 0
        for entry in t.stage_paths[d.idx]:
            if entry.is_closed and start <= entry.entered_at < end:
                amount = t.state_at(d, entry.entered_at)
                value = amount.amount or 0 if amount else 0
                if entry.is_won:
                    won += value
                else:
                    lost += value
        for (_, old), (when, new) in pairwise(t.amount_history[d.idx]):
            state = t.state_at(d, when)  # the deal just before the change
            if start <= when < end and state and state.is_open:
                change += new - old
    # The walk reconciles: nothing else moves a deal in or out here (no reopened deals, no
    # pipeline moves, no close window).
    assert opening + created + change - won - lost == closing, "October walk does not add up"
    return one(
        ("opening", "created", "won", "lost", "net_amount_change", "closing"),
        opening,
        created,
        won,
        lost,
        change,
        closing,
    )


_STATE_AT = """
stage_then AS (
    SELECT h.deal_id, h.stage_id, h.entered_at,
        row_number() OVER (PARTITION BY h.deal_id ORDER BY h.entered_at DESC) AS k
    FROM deal_stage_history h
    WHERE h.deleted_at IS NULL AND h.entered_at < DATE '{day}'
),
amount_then AS (
    SELECT f.deal_id, f.amount,
        row_number() OVER (PARTITION BY f.deal_id ORDER BY f.changed_at DESC) AS k
    FROM deal_field_history f
    WHERE f.deleted_at IS NULL AND f.field = 'amount' AND f.changed_at < DATE '{day}'
)"""


# --- funnel --------


def _nb_funnel_h1(t: Truth) -> Expected:
    cohort = [
        d
        for d in t.deals
        if d.pipeline == "New Business" and within(d.created_at, date(2026, 1, 1), date(2026, 7, 1))
    ]
    stages: dict[int, str] = {}
    furthest: list[tuple[bool, int]] = []
    for d in cohort:
        entries = [e for e in t.stage_paths[d.idx] if not e.is_closed]
        stages.update((e.order, e.stage) for e in entries)
        furthest.append((d.is_won, max(e.order for e in entries)))
    orders = sorted(stages)
    rows = []
    for k, order in enumerate(orders):
        following = orders[k + 1] if k + 1 < len(orders) else None
        reached = sum(1 for won, top in furthest if won or top >= order)
        advanced = sum(
            1 for won, top in furthest if won or (following is not None and top >= following)
        )
        rows.append((stages[order], reached, advanced, advanced / reached if reached else 0.0))
    return table(
        ("stage", "reached", "advanced", "conversion"), rows, ordered=True, ratio=("conversion",)
    )


def _median_days_nb(t: Truth) -> Expected:
    days: dict[int, list[int]] = defaultdict(list)
    labels: dict[int, str] = {}
    for d in t.deals:
        if d.pipeline != "New Business":
            continue
        for entry, left in _visits(t, d):
            if left is not None and not entry.is_closed:
                days[entry.order].append(_days(entry.entered_at, left.entered_at))
                labels[entry.order] = entry.stage
    rows = [(labels[o], statistics.median(days[o])) for o in sorted(days)]
    return table(("stage", "median_days"), rows, ordered=True)


def _proposal_outcomes(t: Truth) -> Expected:
    counts = {"won": 0, "lost": 0, "open": 0}
    for d in t.deals:
        entered = any(
            e.stage == "Proposal Sent" and within(e.entered_at, date(2026, 1, 1), date(2026, 7, 1))
            for e in t.stage_paths[d.idx]
        )
        if entered and d.pipeline == "New Business":
            counts["won" if d.is_won else "open" if d.is_open else "lost"] += 1
    return one(("won", "lost", "still_open"), counts["won"], counts["lost"], counts["open"])


def _lost_from_stage(t: Truth) -> Expected:
    counts: Counter[str] = Counter()
    for d in t.deals:
        path = t.stage_paths[d.idx]
        if d.pipeline != "New Business" or len(path) < 2:
            continue
        for before, entry in pairwise(path):
            if (
                entry.is_closed
                and not entry.is_won
                and within(entry.entered_at, date(2026, 1, 1), date(2026, 11, 1))
            ):
                counts[before.stage] += 1
    return table(("previous_stage", "deals"), counts.items())


# --- velocity --------


def _velocity_by(key: Callable[[DealFact], str]) -> Callable[[Truth], Expected]:
    def derive(t: Truth) -> Expected:
        start, end = date(2025, 11, 1), date(2026, 10, 31)
        groups: dict[str, list[DealFact]] = defaultdict(list)
        for d in t.deals:
            groups[key(d)].append(d)
        rows = []
        for name, deals in groups.items():
            opened = sum(1 for d in deals if d.is_open)
            closed = [d for d in deals if d.is_closed and start <= d.close_date <= end]
            won = [d for d in closed if d.is_won]
            if not won:
                continue
            rate = len(won) / len(closed)
            avg_won = statistics.fmean(float(d.amount) for d in won if d.amount is not None)
            cycle = statistics.fmean((d.close_date - d.created_at.date()).days for d in won)
            rows.append((name, opened, rate, avg_won, cycle, opened * rate * avg_won / cycle))
        return table(
            ("segment", "open_deals", "win_rate", "avg_won_amount", "avg_cycle_days", "velocity"),
            rows,
            ratio=("win_rate",),
        )

    return derive


def _velocity_sql(segment: str, join: str) -> str:
    return f"""
WITH scoped AS (
    SELECT {segment} AS segment, d.amount, d.is_won,
        NOT d.is_closed AS is_open,
        d.is_closed AND d.close_date BETWEEN DATE '2025-11-01' AND DATE '2026-10-31' AS closed,
        d.close_date - CAST(d.created_at AS DATE) AS cycle_days
    FROM deals d {join}
    WHERE d.deleted_at IS NULL
),
measured AS (
    SELECT segment, count(*) FILTER (WHERE is_open) AS open_deals,
        CAST(count(*) FILTER (WHERE closed AND is_won) AS DOUBLE PRECISION)
            / count(*) FILTER (WHERE closed) AS win_rate,
        avg(amount) FILTER (WHERE closed AND is_won) AS avg_won_amount,
        avg(cycle_days) FILTER (WHERE closed AND is_won) AS avg_cycle_days
    FROM scoped
    GROUP BY segment
    HAVING count(*) FILTER (WHERE closed AND is_won) > 0
)
SELECT segment, open_deals, win_rate, avg_won_amount, avg_cycle_days,
    open_deals * win_rate * avg_won_amount / avg_cycle_days AS velocity_per_day
FROM measured"""


# --- forecast and quota --------


def _won_by_owner(t: Truth, start: date, end: date) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for d in t.deals:
        if d.is_won and start <= d.close_date <= end:
            out[d.owner] += d.amount or 0
    return out


def _quota_reps(t: Truth, start: date, end: date) -> dict[str, Decimal]:
    out = {}
    for owner in {q.owner for q in t.quotas}:
        quota = t.quota(owner, start, end)
        if quota is not None:
            out[owner] = quota
    return out


def _attainment_q3(t: Truth) -> Expected:
    won = _won_by_owner(t, *Q3)
    rows = [(o, q, won[o], won[o] / q) for o, q in _quota_reps(t, *Q3).items()]
    return table(("owner", "quota", "closed_won", "attainment"), rows, ratio=("attainment",))


def _below_half_q4(t: Truth) -> Expected:
    won = _won_by_owner(t, *Q4)
    rows = [(o, q, won[o]) for o, q in _quota_reps(t, *Q4).items() if 2 * won[o] < q]
    return table(("owner", "quota", "closed_won"), rows)


def _coverage_q4(t: Truth) -> Expected:
    won = _won_by_owner(t, *Q4)
    pipeline: dict[str, Decimal] = defaultdict(Decimal)
    for d in open_deals(t):
        if Q4[0] <= d.close_date <= Q4[1]:
            pipeline[d.owner] += d.amount or 0
    rows = []
    for owner, quota in _quota_reps(t, *Q4).items():
        remaining = quota - won[owner]
        if remaining > 0:
            rows.append((owner, pipeline[owner], remaining, pipeline[owner] / remaining))
    return table(("owner", "open_pipeline", "remaining_quota", "coverage"), rows)


def _team_ytd(t: Truth) -> Expected:
    won = _won_by_owner(t, *YTD)
    quota: dict[str, Decimal] = defaultdict(Decimal)
    closed: dict[str, Decimal] = defaultdict(Decimal)
    for owner, team in {(q.owner, q.team) for q in t.quotas}:
        amount = t.quota(owner, *YTD)
        if amount is not None:
            quota[team] += amount
            closed[team] += won[owner]
    rows = [(team, quota[team], closed[team], closed[team] / quota[team]) for team in quota]
    return table(("team", "quota", "closed_won", "attainment"), rows, ratio=("attainment",))


def _q4_total(t: Truth) -> Expected:
    quota = sum(_quota_reps(t, *Q4).values(), Decimal(0))
    in_q4 = [d for d in t.deals if Q4[0] <= d.close_date <= Q4[1]]
    won = money(d.amount for d in in_q4 if d.is_won)
    commit = money(d.amount for d in in_q4 if d.is_open and d.forecast_category == "Commit")
    best = money(d.amount for d in in_q4 if d.is_open and d.forecast_category == "Best Case")
    return one(
        ("quota", "closed_won", "commit", "best_case", "gap"),
        quota,
        won,
        commit,
        best,
        quota - won - commit,
    )


_WON_BY_REP = """
won AS (
    SELECT lower(o.email) AS email, sum(d.amount) AS closed_won
    FROM deals d JOIN owners o ON o.id = d.owner_id
    WHERE d.deleted_at IS NULL AND d.is_won AND d.close_date BETWEEN DATE '{start}' AND DATE '{end}'
    GROUP BY lower(o.email)
),
quota AS (
    SELECT q.owner_email AS email, max(q.team) AS team, sum(q.amount) AS quota
    FROM quotas q
    WHERE q.period_start >= DATE '{start}' AND q.period_end <= DATE '{end}'
    GROUP BY q.owner_email
),
reps AS (
    SELECT lower(email) AS email, max(full_name) AS owner
    FROM owners WHERE deleted_at IS NULL GROUP BY lower(email)
)"""


def _won_by_rep(start: date, end: date) -> str:
    return _WON_BY_REP.format(start=start, end=end)


HISTORY_GOLDEN: tuple[GoldQuestion, ...] = (
    # --- deal risk
    GoldQuestion(
        "risk_close_date_pushed_twice",
        "Which open deals have had their expected close date moved to a later date at least "
        "twice? Give each deal's name and how many times its close date was pushed later.",
        _PUSHES_CTE
        + f"""
SELECT d.name AS deal, p.pushes
FROM pushes p JOIN deals d ON d.id = p.deal_id
WHERE {OPEN_D} AND p.pushes >= 2""",
        _pushed_twice,
        "risk",
        note="A push is a change of the close date to a later date than the one before "
        "(close-date history); a pull-in in between does not cancel one.",
    ),
    GoldQuestion(
        "risk_amount_dropped_since_stage",
        "Which open deals now have an amount at least 20% lower than the amount they had when "
        "they entered their current stage? Give the deal, its amount at stage entry and its "
        "amount now.",
        f"""
WITH entry AS (
    SELECT d.name, d.amount AS amount_now, f.amount,
        row_number() OVER (PARTITION BY f.deal_id ORDER BY f.changed_at DESC) AS k
    FROM deal_field_history f JOIN deals d ON d.id = f.deal_id
    WHERE {OPEN_D} AND f.deleted_at IS NULL AND f.field = 'amount'
        AND f.changed_at <= d.stage_entered_at
)
SELECT name AS deal, amount AS amount_at_stage_entry, amount_now
FROM entry
WHERE k = 1 AND amount > 0 AND amount_now <= 0.8 * amount""",
        _amount_cut,
        "risk",
        note="The amount at stage entry is the one in effect when the deal entered its current "
        "stage (amount history).",
    ),
    GoldQuestion(
        "risk_past_due_by_rep",
        "As of 2026-11-01, for each rep: how many of their open deals have an expected close "
        "date before 2026-11-01, and how many days past its close date is the most overdue one?",
        f"""
SELECT o.full_name AS owner, count(*) AS past_due_deals,
    max(DATE '2026-11-01' - d.close_date) AS most_days_overdue
FROM deals d JOIN owners o ON o.id = d.owner_id
WHERE {OPEN_D} AND d.close_date < DATE '2026-11-01'
GROUP BY o.full_name""",
        _past_due_by_owner,
        "risk",
        note="Reps without past-due deals are left out.",
    ),
    GoldQuestion(
        "risk_ghosted_two_weeks",
        "Which open deals had at least one outbound email or call between 2026-10-18 and "
        "2026-10-31 but no inbound email or call in that same period? Give the deal and its "
        "number of outbound emails and calls in those two weeks.",
        f"""
SELECT d.name AS deal, count(*) FILTER (WHERE a.direction = 'outbound') AS outbound_touches
FROM deals d JOIN activities a ON a.deal_id = d.id
WHERE {OPEN_D} AND a.deleted_at IS NULL AND a.activity_type IN ('email', 'call')
    AND a.occurred_at >= DATE '2026-10-18' AND a.occurred_at < DATE '2026-11-01'
GROUP BY d.id, d.name
HAVING count(*) FILTER (WHERE a.direction = 'outbound') > 0
    AND count(*) FILTER (WHERE a.direction = 'inbound') = 0""",
        _ghosted,
        "risk",
        note="Emails and calls linked to the deal, by their recorded direction; dates in UTC.",
    ),
    GoldQuestion(
        "risk_single_threaded_30_days",
        "How many open deals had exactly one distinct customer contact taking part in their "
        "activities between 2026-10-02 and 2026-10-31?",
        f"""
SELECT count(*) AS deals FROM (
    SELECT d.id
    FROM deals d
    JOIN activities a ON a.deal_id = d.id AND a.deleted_at IS NULL
    JOIN activity_participants ap ON ap.activity_id = a.id AND ap.deleted_at IS NULL
    WHERE {OPEN_D} AND ap.contact_id IS NOT NULL
        AND a.occurred_at >= DATE '2026-10-02' AND a.occurred_at < DATE '2026-11-01'
    GROUP BY d.id
    HAVING count(DISTINCT ap.contact_id) = 1
) single""",
        _single_threaded_30,
        "risk",
        note="Deals with no contact in those activities (or no activity) are not counted.",
    ),
    GoldQuestion(
        "risk_stalled_new_business",
        "For each open stage of the New Business pipeline: what is the 75th percentile "
        "(continuous) of the calendar days won deals spent in that stage (from entering it to "
        "entering the next stage), and how many open deals have been in that stage longer "
        "than that as of 2026-11-01? In stage order.",
        f"""
WITH visits AS (
    SELECT h.deal_id, h.stage_id, h.entered_at,
        lead(h.entered_at) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at) AS left_at
    FROM deal_stage_history h
    WHERE h.deleted_at IS NULL
),
norms AS (
    SELECT v.stage_id, percentile_cont(0.75) WITHIN GROUP (
            ORDER BY CAST(v.left_at AS DATE) - CAST(v.entered_at AS DATE)) AS p75_days
    FROM visits v JOIN deals w ON w.id = v.deal_id
    WHERE w.deleted_at IS NULL AND w.is_won AND v.left_at IS NOT NULL
    GROUP BY v.stage_id
)
SELECT s.label AS stage, n.p75_days,
    count(d.id) FILTER (
        WHERE DATE '2026-11-01' - CAST(d.stage_entered_at AS DATE) > n.p75_days
    ) AS stalled_open_deals
FROM deal_stages s
JOIN pipelines p ON p.id = s.pipeline_id
JOIN norms n ON n.stage_id = s.id
LEFT JOIN deals d ON d.stage_id = s.id AND {OPEN_D}
WHERE p.name = 'New Business' AND NOT s.is_closed AND s.deleted_at IS NULL
GROUP BY s.label, s.display_order, n.p75_days
ORDER BY s.display_order""",
        _stalled_p75,
        "risk",
        note="Days in a stage are whole calendar days (UTC) between entering it and entering "
        "the next; an open deal's days run from entering its current stage to 2026-11-01.",
    ),
    GoldQuestion(
        "risk_no_meeting_30_days",
        "How many open deals created before 2026-10-02 had no meeting, neither with the deal "
        "nor with its account, between 2026-10-02 and 2026-10-31?",
        f"""
SELECT count(*) AS deals FROM deals d
WHERE {OPEN_D} AND d.created_at < DATE '2026-10-02'
    AND NOT EXISTS (
        SELECT 1 FROM activities a
        WHERE a.deleted_at IS NULL AND a.activity_type = 'meeting' AND a.deal_id = d.id
            AND a.occurred_at >= DATE '2026-10-02' AND a.occurred_at < DATE '2026-11-01'
    )
    AND NOT EXISTS (
        SELECT 1 FROM activities a
        WHERE a.deleted_at IS NULL AND a.activity_type = 'meeting'
            AND a.account_id = d.account_id
            AND a.occurred_at >= DATE '2026-10-02' AND a.occurred_at < DATE '2026-11-01'
    )""",
        _no_meeting_30,
        "risk",
        note="Any logged meeting counts, whatever its outcome.",
    ),
    GoldQuestion(
        "risk_past_due_after_push",
        "How many open deals are past their close date (before 2026-11-01) even though their "
        "close date has already been pushed later at least once, and what is their total "
        "amount?",
        _PUSHES_CTE
        + f"""
SELECT count(*) AS deals, COALESCE(sum(d.amount), 0) AS amount
FROM deals d JOIN pushes p ON p.deal_id = d.id
WHERE {OPEN_D} AND d.close_date < DATE '2026-11-01' AND p.pushes >= 1""",
        _past_due_after_push,
        "risk",
    ),
    # --- pipeline movement
    GoldQuestion(
        "waterfall_opening_q4_by_pipeline",
        "What was the open pipeline at the start of Q4 2026 (2026-10-01 00:00 UTC), per "
        "pipeline: the number of deals open at that moment and their total amount at that "
        "moment?",
        "WITH"
        + _STATE_AT.format(day="2026-10-01")
        + """
SELECT p.name AS pipeline, count(*) AS deals, COALESCE(sum(a.amount), 0) AS amount
FROM deals d
JOIN stage_then st ON st.deal_id = d.id AND st.k = 1
JOIN deal_stages s ON s.id = st.stage_id
JOIN pipelines p ON p.id = s.pipeline_id
LEFT JOIN amount_then a ON a.deal_id = d.id AND a.k = 1
WHERE d.deleted_at IS NULL AND NOT s.is_closed
GROUP BY p.name""",
        _opening_q4,
        "waterfall",
        note="Open and amount as of that instant, from the stage and amount history.",
    ),
    GoldQuestion(
        "waterfall_won_lost_by_month_q3",
        "For each month of Q3 2026, how many deals moved to a Closed Won stage and how many to "
        "a Closed Lost stage (by the date of the stage change), and with what total amounts?",
        """
SELECT EXTRACT(MONTH FROM h.entered_at) AS month,
    count(*) FILTER (WHERE s.is_won) AS won_deals,
    COALESCE(sum(d.amount) FILTER (WHERE s.is_won), 0) AS won_amount,
    count(*) FILTER (WHERE NOT s.is_won) AS lost_deals,
    COALESCE(sum(d.amount) FILTER (WHERE NOT s.is_won), 0) AS lost_amount
FROM deal_stage_history h
JOIN deal_stages s ON s.id = h.stage_id
JOIN deals d ON d.id = h.deal_id
WHERE h.deleted_at IS NULL AND d.deleted_at IS NULL AND s.is_closed
    AND h.entered_at >= DATE '2026-07-01' AND h.entered_at < DATE '2026-10-01'
GROUP BY EXTRACT(MONTH FROM h.entered_at)
ORDER BY month""",
        _closed_by_month_q3,
        "waterfall",
        note="By when the deal entered the closed stage (stage history), not its close date; "
        "amounts are the deals' amounts (a closed deal's amount no longer changes).",
    ),
    GoldQuestion(
        "waterfall_close_date_moves_october",
        "In October 2026, how many changes of a deal's expected close date moved it to a later "
        "date, and how many moved it to an earlier date?",
        """
WITH moves AS (
    SELECT h.close_date, h.changed_at,
        lag(h.close_date) OVER (PARTITION BY h.deal_id ORDER BY h.changed_at) AS previous
    FROM deal_field_history h
    JOIN deals d ON d.id = h.deal_id AND d.deleted_at IS NULL
    WHERE h.deleted_at IS NULL AND h.field = 'close_date'
)
SELECT count(*) FILTER (WHERE close_date > previous) AS pushed_later,
    count(*) FILTER (WHERE close_date < previous) AS pulled_earlier
FROM moves
WHERE changed_at >= DATE '2026-10-01' AND changed_at < DATE '2026-11-01'""",
        _close_moves_october,
        "waterfall",
        note="Each change in the close-date history counts once; a deal's first close date "
        "(set at creation) is no move.",
    ),
    GoldQuestion(
        "waterfall_pushed_out_of_q4",
        "In October 2026, how many changes of a deal's expected close date moved it from a date "
        "in Q4 2026 (2026-10-01 to 2026-12-31) to a date after 2026-12-31, and what was the "
        "total amount of those deals just before each change?",
        """
WITH moves AS (
    SELECT f.deal_id, f.close_date, f.changed_at,
        lag(f.close_date) OVER (PARTITION BY f.deal_id ORDER BY f.changed_at) AS previous
    FROM deal_field_history f JOIN deals d ON d.id = f.deal_id AND d.deleted_at IS NULL
    WHERE f.deleted_at IS NULL AND f.field = 'close_date'
),
pushed_out AS (
    SELECT m.deal_id, m.changed_at FROM moves m
    WHERE m.changed_at >= DATE '2026-10-01' AND m.changed_at < DATE '2026-11-01'
        AND m.previous BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'
        AND m.close_date > DATE '2026-12-31'
)
SELECT count(*) AS moves, COALESCE(sum((
    SELECT a.amount FROM deal_field_history a
    WHERE a.deal_id = o.deal_id AND a.deleted_at IS NULL AND a.field = 'amount'
        AND a.changed_at < o.changed_at
    ORDER BY a.changed_at DESC LIMIT 1)), 0) AS amount
FROM pushed_out o""",
        _pushed_out_of_q4,
        "waterfall",
        note="Each such change counts once (a deal pushed out twice counts twice).",
    ),
    GoldQuestion(
        "waterfall_october_walk",
        "Walk the open pipeline (all pipelines, any close date) through October 2026: the "
        "open amount at 2026-10-01 00:00 UTC; the amount of deals created in October; the "
        "amount won and the amount lost in October (deals moving to a closed stage, at their "
        "amount then); the net change of open deals' amounts (increases minus decreases); and "
        "the open amount at 2026-11-01 00:00 UTC.",
        """
SELECT
    COALESCE(sum(st.amount) FILTER (WHERE st.stage_state = 0
        AND st.valid_from < DATE '2026-10-01'
        AND (st.valid_to IS NULL OR st.valid_to >= DATE '2026-10-01')), 0) AS opening,
    -- deals created in October that started in an open stage, at their first amount
    COALESCE(sum(st.amount) FILTER (WHERE st.valid_from = d.created_at AND st.stage_state = 0
        AND st.valid_from >= DATE '2026-10-01'), 0) AS created,
    -- deals moving to a closed stage in October, at the amount they had just before
    COALESCE(sum(st.prev_amount) FILTER (WHERE st.valid_from >= DATE '2026-10-01'
        AND st.prev_stage_state = 0 AND st.stage_state = 2), 0) AS won,
    COALESCE(sum(st.prev_amount) FILTER (WHERE st.valid_from >= DATE '2026-10-01'
        AND st.prev_stage_state = 0 AND st.stage_state = 1), 0) AS lost,
    -- October's amount changes of deals open just before them
    COALESCE(sum(st.amount - st.prev_amount) FILTER (WHERE st.valid_from >= DATE '2026-10-01'
        AND st.prev_stage_state = 0), 0) AS net_amount_change,
    COALESCE(sum(st.amount) FILTER (WHERE st.stage_state = 0
        AND (st.valid_to IS NULL OR st.valid_to >= DATE '2026-11-01')), 0) AS closing
FROM deal_states st JOIN deals d ON d.id = st.deal_id AND d.deleted_at IS NULL
-- the states that overlap October: every term above reads one of them
WHERE st.valid_from < DATE '2026-11-01'
    AND (st.valid_to IS NULL OR st.valid_to >= DATE '2026-10-01')""",
        _october_walk,
        "waterfall",
        note="Opening + created − won − lost + net amount change = closing; the sandbox has no "
        "reopened deals or moves between pipelines in October.",
    ),
    # --- funnel
    GoldQuestion(
        "funnel_new_business_h1_2026",
        "Of the New Business deals created from 2026-01-01 to 2026-06-30, how many reached "
        "each open stage, how many of those advanced to the next stage (from Negotiation: were "
        "won), and what is the conversion rate? In stage order.",
        """
WITH cohort AS (
    SELECT d.id, d.is_won
    FROM deals d JOIN pipelines p ON p.id = d.pipeline_id
    WHERE d.deleted_at IS NULL AND p.name = 'New Business'
        AND d.created_at >= DATE '2026-01-01' AND d.created_at < DATE '2026-07-01'
),
furthest AS (
    SELECT c.id, c.is_won, max(s.display_order) AS furthest
    FROM cohort c
    JOIN deal_stage_history h ON h.deal_id = c.id AND h.deleted_at IS NULL
    JOIN deal_stages s ON s.id = h.stage_id AND NOT s.is_closed
    GROUP BY c.id, c.is_won
),
stages AS (
    SELECT s.label, s.display_order,
        lead(s.display_order) OVER (ORDER BY s.display_order) AS next_order
    FROM deal_stages s JOIN pipelines p ON p.id = s.pipeline_id
    WHERE p.name = 'New Business' AND s.deleted_at IS NULL AND NOT s.is_closed
        AND s.is_active
)
SELECT st.label AS stage,
    count(*) FILTER (WHERE f.is_won OR f.furthest >= st.display_order) AS reached,
    count(*) FILTER (WHERE f.is_won OR f.furthest >= st.next_order) AS advanced,
    CAST(count(*) FILTER (WHERE f.is_won OR f.furthest >= st.next_order) AS DOUBLE PRECISION)
        / count(*) FILTER (WHERE f.is_won OR f.furthest >= st.display_order) AS conversion
FROM stages st CROSS JOIN furthest f
GROUP BY st.label, st.display_order
ORDER BY st.display_order""",
        _nb_funnel_h1,
        "funnel",
        note="A deal reached a stage if its stage history shows it in that stage or a later "
        "open one, or it was won (stages can be skipped); open deals have not advanced yet.",
    ),
    GoldQuestion(
        "funnel_median_days_in_stage",
        "For New Business deals (all time), what is the median number of calendar days spent "
        "in each open stage, counting the stage visits that have ended (from entering the "
        "stage to entering the next one)? In stage order.",
        """
WITH visits AS (
    SELECT h.stage_id,
        CAST(lead(h.entered_at) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at) AS DATE)
            - CAST(h.entered_at AS DATE) AS days
    FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id AND d.deleted_at IS NULL
    WHERE h.deleted_at IS NULL
),
stage_days AS (
    -- The ended visits' days (NULL: not ended) collected per stage, then each stage's median
    -- on its own: percentile_cont over a GROUP BY sorted all 210k visits by stage first at
    -- scale 10 (spilling to disk), an array per stage needs no such sort.
    SELECT s.label, s.display_order, array_agg(v.days) AS days
    FROM visits v
    JOIN deal_stages s ON s.id = v.stage_id
    JOIN pipelines p ON p.id = s.pipeline_id
    WHERE p.name = 'New Business' AND NOT s.is_closed AND v.days IS NOT NULL
    GROUP BY s.label, s.display_order
)
SELECT sd.label AS stage,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY u.days) FROM unnest(sd.days) AS u(days))
        AS median_days
FROM stage_days sd
ORDER BY sd.display_order""",
        _median_days_nb,
        "funnel",
        note="Days are whole calendar days between the UTC dates of the two stage changes.",
    ),
    GoldQuestion(
        "funnel_proposal_outcomes_h1_2026",
        "Of the New Business deals that entered Proposal Sent between 2026-01-01 and "
        "2026-06-30, how many have since been won, how many lost, and how many are still open?",
        """
SELECT count(*) FILTER (WHERE d.is_won) AS won,
    count(*) FILTER (WHERE d.is_closed AND NOT d.is_won) AS lost,
    count(*) FILTER (WHERE NOT d.is_closed) AS still_open
FROM deals d
WHERE d.deleted_at IS NULL AND d.id IN (
    SELECT h.deal_id FROM deal_stage_history h
    JOIN deal_stages s ON s.id = h.stage_id
    JOIN pipelines p ON p.id = s.pipeline_id
    WHERE h.deleted_at IS NULL AND p.name = 'New Business' AND s.label = 'Proposal Sent'
        AND h.entered_at >= DATE '2026-01-01' AND h.entered_at < DATE '2026-07-01'
)""",
        _proposal_outcomes,
        "funnel",
    ),
    GoldQuestion(
        "funnel_lost_from_stage_2026",
        "For New Business deals that moved to Closed Lost between 2026-01-01 and 2026-10-31, "
        "which stage were they in just before? Give each stage and the number of deals lost "
        "from it.",
        """
WITH steps AS (
    SELECT h.deal_id, h.stage_id, h.entered_at,
        lag(h.stage_id) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at) AS previous
    FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id AND d.deleted_at IS NULL
    WHERE h.deleted_at IS NULL
)
SELECT prev.label AS previous_stage, count(*) AS deals
FROM steps st
JOIN deal_stages s ON s.id = st.stage_id
JOIN pipelines p ON p.id = s.pipeline_id
JOIN deal_stages prev ON prev.id = st.previous
WHERE p.name = 'New Business' AND s.is_closed AND NOT s.is_won
    AND st.entered_at >= DATE '2026-01-01' AND st.entered_at < DATE '2026-11-01'
GROUP BY prev.label""",
        _lost_from_stage,
        "funnel",
        note="By the date of the move to Closed Lost in the stage history.",
    ),
    # --- velocity
    GoldQuestion(
        "velocity_by_rep",
        "Sales velocity per rep: open deals today (2026-11-01) × win rate × average won amount "
        "÷ average sales cycle in days, where win rate (by count), average won amount and "
        "average cycle (creation date to close date, won deals) come from the rep's deals "
        "closed from 2025-11-01 to 2026-10-31. Give open deals, win rate, average won amount, "
        "average cycle days and velocity per day for each rep.",
        _velocity_sql("o.full_name", "JOIN owners o ON o.id = d.owner_id"),
        _velocity_by(lambda d: d.owner),
        "velocity",
        note="Deals without an amount are left out of the average won amount; reps with no "
        "won deal in the window have no velocity and are left out.",
    ),
    GoldQuestion(
        "velocity_by_pipeline",
        "Sales velocity per pipeline (open deals today, 2026-11-01, × win rate × average won "
        "amount ÷ average cycle days, the last three over deals closed from 2025-11-01 to "
        "2026-10-31): give each pipeline's open deals, win rate, average won amount, average "
        "cycle days and velocity per day.",
        _velocity_sql("p.name", "JOIN pipelines p ON p.id = d.pipeline_id"),
        _velocity_by(lambda d: d.pipeline),
        "velocity",
        note="Cycle: days from the creation date (UTC) to the close date of won deals.",
    ),
    # --- forecast and quota
    GoldQuestion(
        "quota_attainment_q3_2026",
        "Quota attainment for Q3 2026 (July to September): for each rep with a Q3 quota, the "
        "quota, the closed-won amount of their deals with a close date in Q3 2026, and "
        "attainment (closed won ÷ quota).",
        "WITH"
        + _won_by_rep(*Q3)
        + """
SELECT r.owner, q.quota, COALESCE(w.closed_won, 0) AS closed_won,
    COALESCE(w.closed_won, 0) / q.quota AS attainment
FROM quota q JOIN reps r ON r.email = q.email
LEFT JOIN won w ON w.email = q.email""",
        _attainment_q3,
        "quota",
        note="Quotas come from the imported quota plan (`quotas`), joined to reps by email.",
    ),
    GoldQuestion(
        "quota_reps_below_half_q4",
        "As of 2026-11-01, which reps have closed less than 50% of their Q4 2026 quota (won "
        "deals with a close date in Q4 2026)? Give the rep, the quota and the closed-won "
        "amount.",
        "WITH"
        + _won_by_rep(*Q4)
        + """
SELECT r.owner, q.quota, COALESCE(w.closed_won, 0) AS closed_won
FROM quota q JOIN reps r ON r.email = q.email
LEFT JOIN won w ON w.email = q.email
WHERE 2 * COALESCE(w.closed_won, 0) < q.quota""",
        _below_half_q4,
        "quota",
    ),
    GoldQuestion(
        "quota_coverage_q4_2026",
        "Pipeline coverage for Q4 2026 per rep who has not yet reached their Q4 quota: the "
        "open pipeline with a close date in Q4 2026, the quota still to close (Q4 quota minus "
        "closed won with a Q4 close date) and coverage (open pipeline ÷ remaining quota).",
        "WITH"
        + _won_by_rep(*Q4)
        + f""",
open_q4 AS (
    SELECT lower(o.email) AS email, sum(d.amount) AS amount
    FROM deals d JOIN owners o ON o.id = d.owner_id
    WHERE {OPEN_D} AND d.close_date BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'
    GROUP BY lower(o.email)
)
SELECT r.owner, COALESCE(p.amount, 0) AS open_pipeline,
    q.quota - COALESCE(w.closed_won, 0) AS remaining_quota,
    COALESCE(p.amount, 0) / (q.quota - COALESCE(w.closed_won, 0)) AS coverage
FROM quota q JOIN reps r ON r.email = q.email
LEFT JOIN won w ON w.email = q.email
LEFT JOIN open_q4 p ON p.email = q.email
WHERE q.quota > COALESCE(w.closed_won, 0)""",
        _coverage_q4,
        "quota",
        note="Open deals whose close date in Q4 has already passed still count as Q4 pipeline.",
    ),
    GoldQuestion(
        "quota_team_attainment_ytd_2026",
        "Per team, for Q1 to Q3 2026 together: the total quota of the team's reps, their "
        "closed-won amount (close dates from 2026-01-01 to 2026-09-30) and the attainment.",
        "WITH"
        + _won_by_rep(*YTD)
        + """
SELECT q.team, sum(q.quota) AS quota, COALESCE(sum(w.closed_won), 0) AS closed_won,
    COALESCE(sum(w.closed_won), 0) / sum(q.quota) AS attainment
FROM quota q LEFT JOIN won w ON w.email = q.email
GROUP BY q.team""",
        _team_ytd,
        "quota",
        note="A rep's team is the one in the quota plan.",
    ),
    GoldQuestion(
        "forecast_q4_against_quota",
        "For Q4 2026 across the whole team: the total quota, the closed-won amount with a Q4 "
        "close date, the open Commit and Best Case amounts with a Q4 close date, and the gap "
        "still to find (quota − closed won − commit).",
        """
WITH quota AS (
    SELECT sum(amount) AS quota FROM quotas
    WHERE period_start >= DATE '2026-10-01' AND period_end <= DATE '2026-12-31'
),
q4 AS (
    SELECT COALESCE(sum(amount) FILTER (WHERE is_won), 0) AS closed_won,
        COALESCE(sum(amount) FILTER (WHERE NOT is_closed AND forecast_category = 'Commit'), 0)
            AS commit,
        COALESCE(sum(amount) FILTER (WHERE NOT is_closed AND forecast_category = 'Best Case'),
            0) AS best_case
    FROM deals d
    WHERE d.deleted_at IS NULL AND d.close_date BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'
)
SELECT quota.quota, q4.closed_won, q4.commit, q4.best_case,
    quota.quota - q4.closed_won - q4.commit AS gap
FROM quota CROSS JOIN q4""",
        _q4_total,
        "forecast",
    ),
)
