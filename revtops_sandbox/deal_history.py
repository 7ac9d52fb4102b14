"""Amount and close-date history of the sandbox's deals, with risk patterns planted in it.

HubSpot serves it as ``propertiesWithHistory`` (``amount``, ``closedate``); Salesforce as
OpportunityHistory snapshots (one per change of stage, amount or close date, each carrying all
three): both CRM views of one company tell the same story.

`plant` draws from a generator of its own after the company is built, so the main generator's
draws, and every current value, stay what they were (golden answers depend on them). A history
ends in the deal's current values and stays inside its life: the first value at creation,
changes on whole seconds after it, none after its last modification, and none after a closed
deal entered its closing stage.

Planted:
- *pushed*: the close date moved later two or three times (`PUSH_SHARE` of the deals).
- *cut*: the amount cut by 20-50% after an open deal entered its current stage (`CUT_SHARE`).
Controls: every other deal has at most one push and no decrease of 20% or more since its
current stage; some had a larger change before it (so "since the stage" must matter), some an
increase or a small decrease after it. `pushes` and `drop_since_stage` give the truth.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from revtops_sandbox.records import DAY_MS, PIPELINES, Deal

PUSH_SHARE = 0.15
CUT_SHARE = 0.12
CUT_RANGE = (0.2, 0.5)
_STEP = 10_000  # generated amounts are whole hundreds of dollars (in cents)


def plant(deals: Sequence[Deal], seed: int) -> None:
    """Give every generated deal its amount and close-date history."""
    rng = random.Random(f"deal-history:{seed}")
    for deal in deals:
        deal.close_days = _close_days(rng, deal)
        deal.amounts = _amounts(rng, deal)


# -- the views --------------------------------------------------------------------------------


def amount_versions(deal: Deal) -> list[tuple[int, int]]:
    """(ms, cents) of every amount the deal had, oldest first; none if it never had one."""
    if deal.amounts:
        return _pairs(deal.amounts)
    return [] if deal.amount_cents < 0 else [(deal.created_ms, deal.amount_cents)]


def close_versions(deal: Deal) -> list[tuple[int, int]]:
    """(ms, day) of every close date the deal had, oldest first."""
    return _pairs(deal.close_days) if deal.close_days else [(deal.created_ms, deal.close_day)]


def value_at(versions: Sequence[tuple[int, int]], ms: int) -> int | None:
    """The value in effect at ``ms`` (the latest version at or before it)."""
    found = None
    for when, value in versions:
        if when > ms:
            break
        found = value
    return found


def pushes(deal: Deal) -> int:
    """How many times the close date moved later."""
    days = [day for _, day in close_versions(deal)]
    return sum(1 for before, after in pairwise(days) if after > before)


def stage_entered_ms(deal: Deal) -> int:
    return deal.history[-1]


def drop_since_stage(deal: Deal) -> float:
    """Share by which the amount fell since the deal entered its current stage (0: none)."""
    versions = amount_versions(deal)
    before = value_at(versions, stage_entered_ms(deal))
    if not before or before <= 0 or deal.amount_cents < 0:
        return 0.0
    return max(0.0, (before - deal.amount_cents) / before)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One OpportunityHistory row: the deal's stage, amount and close date from ``ms`` on.
    ``entry`` is the stage entry it records (its index in ``Deal.history`` pairs), or -1 with
    ``change`` numbering a snapshot written for an amount or close-date change alone."""

    ms: int
    stage: int
    cents: int
    day: int
    entry: int
    change: int


def snapshots(deal: Deal) -> list[Snapshot]:
    """Salesforce's OpportunityHistory of the deal, oldest first."""
    stages = _pairs(deal.history)
    amounts, closes = amount_versions(deal), close_versions(deal)
    entries = {ms: k for k, (ms, _) in enumerate(stages)}
    moments = sorted({ms for ms, _ in stages} | {ms for ms, _ in amounts[1:]}
                     | {ms for ms, _ in closes[1:]})  # fmt: skip
    out: list[Snapshot] = []
    change = 0
    for ms in moments:
        if ms < stages[0][0]:
            continue  # nothing is recorded before the opportunity exists
        stage = value_at(stages, ms)
        cents = value_at(amounts, ms)
        day = value_at(closes, ms)
        entry = entries.get(ms, -1)
        out.append(Snapshot(ms, stage if stage is not None else stages[0][1],
                            -1 if cents is None else cents,
                            deal.close_day if day is None else day, entry, change))  # fmt: skip
        if entry < 0:
            change += 1
    return out


# -- edits after generation -------------------------------------------------------------------


def before_edit(deal: Deal) -> None:
    """Materialize the history before an edit changes the current values."""
    if not deal.close_days:
        deal.close_days = (deal.close_day, deal.created_ms)
    if not deal.amounts and deal.amount_cents >= 0:
        deal.amounts = (deal.amount_cents, deal.created_ms)


def after_edit(deal: Deal, ts: int) -> None:
    """Record the values an edit at ``ts`` left, when they changed."""
    if deal.amount_cents >= 0 and (not deal.amounts or deal.amounts[-2] != deal.amount_cents):
        deal.amounts = (*deal.amounts, deal.amount_cents, ts)
    if deal.close_days[-2] != deal.close_day:
        deal.close_days = (*deal.close_days, deal.close_day, ts)


# -- generation -------------------------------------------------------------------------------


def _pairs(flat: Sequence[int]) -> list[tuple[int, int]]:
    """(ms, value) pairs of a flat (value, ms, value, ms, ...) tuple."""
    return [(flat[k + 1], flat[k]) for k in range(0, len(flat), 2)]


def _flat(values: Sequence[int], times: Sequence[int]) -> tuple[int, ...]:
    out: list[int] = []
    for value, ms in zip(values, times, strict=True):
        out += (value, ms)
    return tuple(out)


def _times(rng: random.Random, n: int, lo: int, hi: int) -> list[int] | None:
    """``n`` distinct whole seconds (as ms) after ``lo`` and at most ``hi``, sorted."""
    first, last = lo // 1000 + 1, hi // 1000
    if n == 0:
        return []
    if last - first + 1 < n:
        return None
    return [s * 1000 for s in sorted(rng.sample(range(first, last + 1), n))]


def _is_closed(deal: Deal) -> bool:
    return PIPELINES[deal.pipeline].stages[deal.stage].is_closed


def _last_change_ms(deal: Deal) -> int:
    """Changes happen up to the last modification; a closed deal's up to its closing."""
    return stage_entered_ms(deal) - 1 if _is_closed(deal) else deal.updated_ms


def _close_days(rng: random.Random, deal: Deal) -> tuple[int, ...]:
    final, created_day = deal.close_day, deal.created_ms // DAY_MS
    roll = rng.random()
    values = [final]
    if roll < PUSH_SHARE:  # pushed two or three times, each by one to six weeks
        n = 2 if rng.random() < 0.7 else 3
        for _ in range(n):
            earlier = values[0] - 7 * (1 + int(rng.random() * 6))
            if earlier <= created_day:
                break  # no room before the final date
            values.insert(0, earlier)
        if len(values) < 3:
            values = [final]
    elif roll < PUSH_SHARE + 0.25:  # one move: a push or a pull-in
        delta = 7 + int(rng.random() * 24)
        prior = final - delta if rng.random() < 0.6 else final + delta
        if created_day < prior != final:
            values = [prior, final]
    times = _times(rng, len(values) - 1, deal.created_ms, _last_change_ms(deal))
    if times is None:
        values, times = [final], []
    return _flat(values, [deal.created_ms, *times])


def _amounts(rng: random.Random, deal: Deal) -> tuple[int, ...]:
    final = deal.amount_cents
    if final < 0:
        return ()  # never entered
    roll = rng.random()
    entered, created, last = stage_entered_ms(deal), deal.created_ms, _last_change_ms(deal)
    plan: list[tuple[int, int]] = []  # (value, ms) after the first
    first = final
    if not _is_closed(deal) and roll < CUT_SHARE:  # cut >= 20% since the current stage
        cut = rng.uniform(*CUT_RANGE)
        before = math.ceil(final / (1 - cut) / _STEP) * _STEP
        when = _times(rng, 1, entered, last)
        if when is not None and before > final:
            plan, first = [(final, when[0])], before
            earlier = _times(rng, 1, created, entered - 1)
            if earlier is not None and rng.random() < 0.4:  # and an older change as well
                initial = _round(before * rng.uniform(0.8, 1.2))
                if initial != before:
                    plan, first = [(before, earlier[0]), *plan], initial
    elif roll < CUT_SHARE + 0.3:
        kind = rng.random()
        if kind < 0.5 or _is_closed(deal):  # before the current stage: any size
            initial = _round(final * rng.uniform(0.6, 1.5))
            when = _times(rng, 1, created, min(entered - 1, last))
        elif kind < 0.8:  # an increase since the stage
            initial = _round(final / rng.uniform(1.05, 1.5), up=False)
            when = _times(rng, 1, entered, last)
        else:  # a small decrease since the stage (under 20%)
            initial = _round(final / (1 - rng.uniform(0.03, 0.15)), up=False)
            when = _times(rng, 1, entered, last)
            if initial and (initial - final) / initial >= CUT_RANGE[0]:
                when = None
        if when is not None and initial != final and initial > 0:
            plan, first = [(final, when[0])], initial
    values = [first, *(v for v, _ in plan)]
    return _flat(values, [created, *(ms for _, ms in plan)])


def _round(cents: float, *, up: bool = True) -> int:
    steps = math.ceil(cents / _STEP) if up else math.floor(cents / _STEP)
    return max(1, steps) * _STEP
