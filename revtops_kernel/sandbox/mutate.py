"""Changes between syncs: modify, archive or delete records, always on the advancing clock.

Every function returns a `MutationResult` naming exactly which records changed (HubSpot ids;
`Company.salesforce_id` maps them to Salesforce Ids), so tests can check that an incremental
sync picked up those and only those. Choices are drawn from a `random.Random` seeded by the
company seed, the call's ``seed`` and the call counter: the same sequence of calls on the same
company makes the same changes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from revtops_kernel.sandbox import names
from revtops_kernel.sandbox.company import (
    ARCHIVED,
    DAY_MS,
    LIVE,
    OBJECT_TYPES,
    PIPELINES,
    PURGED,
    TASK,
    Account,
    Activity,
    Company,
    Contact,
    Deal,
    Record,
)


@dataclass(slots=True)
class MutationResult:
    """Which records one call changed, by object type, as HubSpot id strings in id order."""

    started_ms: int
    finished_ms: int
    modified: dict[str, list[str]] = field(default_factory=dict)
    archived: dict[str, list[str]] = field(default_factory=dict)
    deleted: dict[str, list[str]] = field(default_factory=dict)

    def changed(self, object_type: str) -> list[str]:
        """Every id of ``object_type`` this call touched, whatever the change."""
        return sorted(
            self.modified.get(object_type, [])
            + self.archived.get(object_type, [])
            + self.deleted.get(object_type, []),
            key=int,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "modified": self.modified,
            "archived": self.archived,
            "deleted": self.deleted,
        }


def mutate(
    company: Company,
    *,
    modified_pct: float = 1.0,
    archived_pct: float = 0.0,
    deleted_pct: float = 0.0,
    seed: int | None = None,
    object_types: Iterable[str] = OBJECT_TYPES,
) -> MutationResult:
    """Modify, archive and delete the given percentages (0-100) of each type's live records.

    The three sets are disjoint. Modified records get new field values and a new modification
    time; archived ones disappear from normal listings (HubSpot ``archived=true`` listing,
    Salesforce ``queryAll`` with ``IsDeleted``); deleted ones disappear everywhere.
    """
    rng = _rng(company, seed)
    start = _next_tick(company)
    result = MutationResult(started_ms=start, finished_ms=start)
    plan: list[tuple[str, Record, str]] = []
    for object_type in object_types:
        live = [r for r in company.records(object_type) if r.state == LIVE]
        counts = [round(len(live) * pct / 100) for pct in (modified_pct, archived_pct, deleted_pct)]
        chosen = rng.sample(live, min(len(live), sum(counts)))
        n_mod, n_arch = counts[0], counts[1]
        for i, rec in enumerate(chosen):
            action = "modified" if i < n_mod else "archived" if i < n_mod + n_arch else "deleted"
            plan.append((object_type, rec, action))
    rng.shuffle(plan)  # changes land in no particular id order, as real edits do
    ts = start
    for object_type, rec, action in plan:
        ts += rng.randint(1, 40)
        _apply(rec, action, rng, ts)
        bucket: dict[str, list[str]] = getattr(result, action)
        bucket.setdefault(object_type, []).append(str(company.hs_id(object_type, rec)))
    return _finish(company, result, ts)


def bump(
    company: Company,
    object_type: str,
    n: int,
    *,
    same_timestamp: bool = False,
    seed: int | None = None,
) -> MutationResult:
    """Modify ``n`` live records of one type (all of them if there are fewer).

    With ``same_timestamp`` every one gets the very same modification time, so a page boundary
    falls inside the group; otherwise times advance by a few milliseconds each, which is how a
    bulk import or a workflow touching 30,000 records looks to an incremental search.
    """
    rng = _rng(company, seed)
    live = [r for r in company.records(object_type) if r.state == LIVE]
    chosen = rng.sample(live, min(n, len(live)))
    start = _next_tick(company)
    result = MutationResult(started_ms=start, finished_ms=start)
    ts = start
    for rec in chosen:
        if not same_timestamp:
            ts += rng.randint(1, 5)
        _apply(rec, "modified", rng, ts)
        result.modified.setdefault(object_type, []).append(str(company.hs_id(object_type, rec)))
    return _finish(company, result, ts)


def _next_tick(company: Company) -> int:
    """When the next edit happens: after the logical clock, and never before the wall clock.

    The generated company is anchored in the past so a seed always gives the same data, but
    a real API stamps an edit with the time it happens; a connector that hands off from a full
    listing to "changed since the listing began" relies on that.
    """
    return max(company.clock_ms + 1000, int(time.time() * 1000))


def _rng(company: Company, seed: int | None) -> random.Random:
    company.mutations += 1
    return random.Random(f"mutate:{company.seed}:{seed}:{company.mutations if seed is None else 0}")


def _finish(company: Company, result: MutationResult, last_ms: int) -> MutationResult:
    for bucket in (result.modified, result.archived, result.deleted):
        for ids in bucket.values():
            ids.sort(key=int)
    result.finished_ms = last_ms
    company.clock_ms = last_ms + 1000
    company.version += 1
    return result


def _apply(rec: Record, action: str, rng: random.Random, ts: int) -> None:
    rec.version += 1
    rec.updated_ms = ts
    if action == "archived":
        rec.state = ARCHIVED
        rec.archived_ms = ts
    elif action == "deleted":
        rec.state = PURGED
    elif isinstance(rec, Deal):
        _change_deal(rec, rng, ts)
    elif isinstance(rec, Account):
        grown = max(3, int(rec.employees * rng.uniform(0.9, 1.25)))
        rec.employees = grown if grown != rec.employees else grown + 1
        if rec.kind == 0 and rng.random() < 0.2:
            rec.kind = 1  # a prospect became a customer
    elif isinstance(rec, Contact):
        rec.title = (rec.title + rng.randrange(1, len(names.CONTACT_TITLES))) % len(
            names.CONTACT_TITLES
        )
    elif isinstance(rec, Activity):
        rec.body = (rec.body + rng.randrange(1, len(names.BODIES))) % len(names.BODIES)
        if rec.kind == TASK and rec.status != 4:
            rec.status = 4  # completed


def _change_deal(deal: Deal, rng: random.Random, ts: int) -> None:
    pipe = PIPELINES[deal.pipeline]
    old = deal.amount_cents
    if old < 0:
        deal.amount_cents = rng.randint(50, 500) * 10_000  # the rep finally entered an amount
    else:
        new = int(round(old * rng.uniform(0.85, 1.2), -4))
        deal.amount_cents = new if new != old else old + 10_000
    if pipe.stages[deal.stage].is_closed:
        return
    roll = rng.random()
    if roll < 0.5:
        open_idx = [i for i, s in enumerate(pipe.stages) if not s.is_closed]
        pos = open_idx.index(deal.stage)
        if pos + 1 < len(open_idx) and roll < 0.35:
            new = open_idx[pos + 1]
        else:
            new = pipe.won_index if rng.random() < 0.4 else pipe.lost_index
            deal.close_day = ts // DAY_MS
        deal.stage = new
        deal.history = (*deal.history, new, ts)
    else:
        deal.close_day += rng.randint(-10, 30)  # the rep moved the close date
