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

from revtops_sandbox import deal_history, names
from revtops_sandbox.company import (
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
    company.freeze_activity_inputs()  # Slack and Calendar are built from the generated values
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
    company.freeze_activity_inputs()
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
    deal_history.before_edit(deal)
    _edit_deal(deal, rng, ts)
    deal_history.after_edit(deal, ts)  # amount and close-date history see the edit


def _edit_deal(deal: Deal, rng: random.Random, ts: int) -> None:
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


# -- Slack and Google Calendar ------------------------------------------------------------------


@dataclass(slots=True)
class ActivityChanges:
    """What `mutate_slack` / `mutate_calendar` did, in the providers' own ids.

    ``slack_new``: (channel id, ts) of new top-level messages; ``slack_replies``: (channel id,
    thread_ts, ts) of new replies, ``slack_late_replies`` the subset in threads older than a
    week (the ones a sync that only reads history since its last cursor misses). Calendar
    lists are (calendar id of the organizer, event id).
    """

    started_ms: int
    finished_ms: int
    slack_new: list[tuple[str, str]] = field(default_factory=list)
    slack_replies: list[tuple[str, str, str]] = field(default_factory=list)
    slack_late_replies: list[tuple[str, str, str]] = field(default_factory=list)
    events_moved: list[tuple[str, str]] = field(default_factory=list)
    events_cancelled: list[tuple[str, str]] = field(default_factory=list)
    events_new: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "slack_new": self.slack_new,
            "slack_replies": self.slack_replies,
            "slack_late_replies": self.slack_late_replies,
            "events_moved": self.events_moved,
            "events_cancelled": self.events_cancelled,
            "events_new": self.events_new,
        }


def mutate_slack(
    company: Company, *, new_messages: int = 10, late_replies: int = 5, seed: int | None = None
) -> ActivityChanges:
    """Post ``new_messages`` new messages (some in shared channels by external people) and
    ``late_replies`` replies to messages older than a week, a few of which had no replies
    before (so an old message turns into a thread)."""
    from revtops_sandbox.slack_data import (
        EXTERNAL_TEXTS,
        LATE_REPLY_TEXTS,
        REPLY_TEXTS,
        SlackMessage,
        fill_text,
    )

    ws = company.slack
    rng = _rng(company, seed)
    start = _next_tick(company)
    out = ActivityChanges(started_ms=start, finished_ms=start)
    open_channels = [c for c in ws.channels if c.is_member and not c.is_archived and c.messages]
    reps = [u.idx for u in ws.users if u.owner >= 0 and not u.deleted] or [0]
    ts_ms = start
    for _ in range(new_messages):
        ch = open_channels[int(rng.random() * len(open_channels))]
        ts_ms += rng.randint(1, 40)
        externals = [m for m in ch.members if ws.users[m].external]
        author = reps[int(rng.random() * len(reps))]
        members = [m for m in ch.members if m in reps]
        if members:
            author = members[int(rng.random() * len(members))]
        templates: tuple[str, ...] = REPLY_TEXTS
        if externals and rng.random() < 0.3:
            author, templates = externals[int(rng.random() * len(externals))], EXTERNAL_TEXTS
        text = fill_text(company, ws, rng, templates[int(rng.random() * len(templates))],
                         ch.account, ch.deal, reps)  # fmt: skip
        msg = SlackMessage(0, ch.idx, ws.next_ts_us(ch, ts_ms * 1000), author, text, 0,
                           ch.account, ch.deal)  # fmt: skip
        ws.add_message(msg)
        out.slack_new.append((ch.id, msg.ts))
    week_us = 7 * 86_400_000_000
    horizon = start * 1000 - week_us
    old = [(c, m) for c in open_channels for m in c.messages if m.ts_us < horizon]
    with_threads = [(c, m) for c, m in old if m.replies]
    without = [(c, m) for c, m in old if not m.replies]
    for k in range(late_replies):
        pool = without if (k % 3 == 2 and without) or not with_threads else with_threads
        if not pool:
            break
        ch, parent = pool[int(rng.random() * len(pool))]
        ts_ms += rng.randint(1, 40)
        newest = parent.replies[-1].ts_us if parent.replies else parent.ts_us
        ts_us = max(ws.next_ts_us(ch, ts_ms * 1000), newest + 1)
        authors = [m for m in ch.members if m in reps or ws.users[m].external] or reps
        text = fill_text(company, ws, rng, LATE_REPLY_TEXTS[k % len(LATE_REPLY_TEXTS)],
                         ch.account, ch.deal, reps)  # fmt: skip
        reply = SlackMessage(0, ch.idx, ts_us, authors[int(rng.random() * len(authors))], text,
                             0, ch.account, ch.deal)  # fmt: skip
        ws.add_message(reply, parent=parent)
        entry = (ch.id, parent.ts, reply.ts)
        out.slack_replies.append(entry)
        out.slack_late_replies.append(entry)
    return _finish_activity(company, out, max(ts_ms, start))


def mutate_calendar(
    company: Company,
    *,
    moved: int = 5,
    cancelled: int = 3,
    new: int = 5,
    seed: int | None = None,
) -> ActivityChanges:
    """Move ``moved`` meetings, cancel ``cancelled`` ones (one of them an instance of a
    recurring event when there is one) and book ``new`` meetings in the next two weeks."""
    from revtops_sandbox.calendar_data import add_exception, new_meeting

    cals = company.calendars
    rng = _rng(company, seed)
    start = _next_tick(company)
    out = ActivityChanges(started_ms=start, finished_ms=start)
    ts = start
    masters = [e for e in cals.events if e.recurrence and e.status != "cancelled"]
    future = [
        (m, s) for m in masters for s in m.instance_starts()
        if s > company.clock_ms and s not in m.exceptions
    ]  # fmt: skip
    if cancelled and future:  # one cancelled instance of a recurring event
        ts += rng.randint(1, 40)
        master, original = future[int(rng.random() * len(future))]
        exc = add_exception(cals, master, original, "cancelled", 0, ts)
        out.events_cancelled.append((cals.calendars[master.organizer].id, exc.id))
        cancelled -= 1
    singles = [
        e
        for e in cals.events
        if e.status != "cancelled" and not e.all_day and not e.recurrence and e.master < 0
    ]
    chosen = rng.sample(singles, min(len(singles), moved + cancelled))
    for i, ev in enumerate(chosen):
        ts += rng.randint(1, 40)
        ev.updated_ms = ts
        ev.sequence += 1
        organizer = cals.calendars[ev.organizer].id
        if i < moved:
            shift = rng.choice((-1, 1)) * rng.randint(1, 72) * 3_600_000
            ev.start_ms += shift
            ev.end_ms += shift
            out.events_moved.append((organizer, ev.id))
        else:
            ev.status = "cancelled"
            out.events_cancelled.append((organizer, ev.id))
    active = [o.idx for o in company.owners if o.active] or [0]
    for _ in range(new):
        ts += rng.randint(1, 40)
        owner = active[int(rng.random() * len(active))]
        when = company.clock_ms + rng.randint(1, 14) * DAY_MS
        when -= when % (15 * 60_000)
        ev = new_meeting(company, cals, rng, owner, when, ts)
        out.events_new.append((cals.calendars[owner].id, ev.id))
    return _finish_activity(company, out, ts)


def _finish_activity(company: Company, out: ActivityChanges, last_ms: int) -> ActivityChanges:
    out.finished_ms = last_ms
    company.clock_ms = max(company.clock_ms, last_ms + 1000)
    company.version += 1
    return out
