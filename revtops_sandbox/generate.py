"""Deterministic generation of the synthetic company.

`generate_company(scale, seed)` draws everything from one `random.Random(seed)` in a fixed
order, so the same arguments give byte-identical data. Scale 1 is a 50-rep team: ≈5,000
accounts, ≈20,000 contacts, ≈10,000 deals in two pipelines and ≈50,000 activities.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from revtops_sandbox import deal_history, names
from revtops_sandbox.company import (
    CALL,
    DAY_MS,
    DEFAULT_ANCHOR,
    EMAIL,
    MEETING,
    NOTE,
    PIPELINES,
    TASK,
    Account,
    Activity,
    Company,
    Contact,
    Deal,
    Owner,
    ms_of,
)

# Per segment: (median deal amount in dollars, log-normal sigma). Segment follows headcount.
_SEGMENTS = ((12_000, 0.55), (45_000, 0.6), (160_000, 0.7))
_WIN_RATE = (0.18, 0.55)  # New Business, Renewals: blended ≈ 25%
# Activity mix: meetings, calls, emails, notes, tasks.
T = TypeVar("T")
_KIND_WEIGHTS = (15, 25, 35, 10, 15)
_KIND_CUM = tuple(sum(_KIND_WEIGHTS[: i + 1]) for i in range(5))
_TITLE_COUNTS = (
    len(names.MEETING_TITLES),
    len(names.CALL_TITLES),
    len(names.EMAIL_SUBJECTS),
    1,
    len(names.TASK_SUBJECTS),
)


def generate_company(
    scale: float = 1.0, seed: int = 0, anchor: datetime = DEFAULT_ANCHOR
) -> Company:
    """Build the company. ``anchor`` is the data's "today": deals close from 18 months before
    it to 6 months after it, and nothing was created or modified after it."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    # Nothing generated here forms reference cycles; pausing the cyclic collector while
    # hundreds of thousands of records are allocated halves the time at scale 10.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(scale, seed, anchor)
    finally:
        if was_enabled:
            gc.enable()


def _generate(scale: float, seed: int, anchor: datetime) -> Company:
    rng = random.Random(seed)
    anchor_ms = ms_of(anchor)
    owners = _owners(rng, max(3, round(50 * scale)), anchor_ms)
    accounts = _accounts(rng, max(5, round(5000 * scale)), owners, anchor_ms)
    contacts, contacts_of = _contacts(rng, accounts)
    deals = _deals(rng, accounts, contacts_of, owners, anchor_ms)
    deal_history.plant(deals, seed)  # its own generator: the draws below are unchanged
    activities = _activities(rng, accounts, deals, contacts_of, anchor_ms)
    by_kind: tuple[list[Activity], ...] = ([], [], [], [], [])
    for a in activities:
        a.kind_idx = len(by_kind[a.kind])
        by_kind[a.kind].append(a)
    newest = max(
        max(r.updated_ms for r in seq) for seq in (accounts, contacts, deals, activities) if seq
    )
    return Company(
        seed=seed,
        scale=scale,
        anchor_ms=anchor_ms,
        clock_ms=max(newest, anchor_ms) + 1000,
        owners=owners,
        accounts=accounts,
        contacts=contacts,
        deals=deals,
        activities=activities,
        by_kind=by_kind,
    )


def _owners(rng: random.Random, n: int, anchor_ms: int) -> list[Owner]:
    out: list[Owner] = []
    seen: set[str] = set()
    for i in range(n):
        first, last = _pick(rng, names.FIRST_NAMES), _pick(rng, names.LAST_NAMES)
        local = _email_local(first, last)
        email = f"{local}@{names.SELLER_DOMAIN}"
        k = 2
        while email in seen:
            email = f"{local}{k}@{names.SELLER_DOMAIN}"
            k += 1
        seen.add(email)
        created = anchor_ms - _between(rng, 400, 1500) * DAY_MS + _below(rng, DAY_MS)
        team = i % len(names.OWNER_TEAMS)
        active = rng.random() > 0.06  # a few reps have left; their records keep the owner id
        updated = created + _below(rng, max(1, anchor_ms - created))
        out.append(Owner(i, first, last, email, team, active, created, updated))
    return out


def _accounts(rng: random.Random, n: int, owners: list[Owner], anchor_ms: int) -> list[Account]:
    adjs, nouns, sufs = names.ACCOUNT_ADJECTIVES, names.ACCOUNT_NOUNS, names.ACCOUNT_SUFFIXES
    space = len(adjs) * len(nouns) * len(sufs)
    picks = rng.sample(range(space), n) if n <= space else list(range(n))
    out: list[Account] = []
    for i, p in enumerate(picks):
        a, rest = divmod(p % space, len(nouns) * len(sufs))
        b, c = divmod(rest, len(sufs))
        name = f"{adjs[a]} {nouns[b]} {sufs[c]}"
        stem = f"{adjs[a]}{nouns[b]}".lower()
        # Suffix variants of one stem share a brand, so they get distinct domains by number.
        domain = f"{stem}.example" if c == 0 else f"{stem}-{c}.example"
        if p >= space:  # only for absurd scales beyond the name space
            name, domain = f"{name} {p // space}", f"{stem}-{c}-{p // space}.example"
        employees = int(min(250_000, max(3, rng.lognormvariate(math.log(180), 1.5))))
        kind = rng.choices((0, 1, 2, 3), weights=(55, 35, 6, 4))[0]
        created = anchor_ms - _between(rng, 30, 1100) * DAY_MS + _below(rng, DAY_MS)
        updated = created + _below(rng, max(1, anchor_ms - created))
        out.append(
            Account(
                idx=i,
                name=name,
                domain=domain,
                industry=_below(rng, len(names.INDUSTRIES)),
                kind=kind,
                city=_below(rng, len(names.CITIES)),
                employees=employees,
                owner=_below(rng, len(owners)),
                created_ms=created,
                updated_ms=updated,
            )
        )
    return out


def _contacts(rng: random.Random, accounts: list[Account]) -> tuple[list[Contact], list[list[int]]]:
    out: list[Contact] = []
    contacts_of: list[list[int]] = []
    for acc in accounts:
        n = rng.choices((0, 1, 2, 3, 4, 5, 6, 7, 8), weights=(3, 8, 12, 15, 16, 15, 13, 10, 8))[0]
        mine: list[int] = []
        seen: set[str] = set()
        for _ in range(n):
            first, last = _pick(rng, names.FIRST_NAMES), _pick(rng, names.LAST_NAMES)
            local = _email_local(first, last)
            email, k = f"{local}@{acc.domain}", 2
            while email in seen:
                email, k = f"{local}{k}@{acc.domain}", k + 1
            seen.add(email)
            created = acc.created_ms + _below(rng, max(1, acc.updated_ms - acc.created_ms + 1))
            updated = created + _below(rng, max(1, acc.updated_ms - created + DAY_MS))
            mine.append(len(out))
            out.append(
                Contact(
                    idx=len(out),
                    first_name=first,
                    last_name=last,
                    email=email,
                    title=_below(rng, len(names.CONTACT_TITLES)),
                    account=acc.idx,
                    owner=acc.owner,
                    created_ms=created,
                    updated_ms=min(updated, acc.updated_ms + DAY_MS),
                )
            )
        contacts_of.append(mine)
    return out, contacts_of


def _deals(
    rng: random.Random,
    accounts: list[Account],
    contacts_of: list[list[int]],
    owners: list[Owner],
    anchor_ms: int,
) -> list[Deal]:
    out: list[Deal] = []
    anchor_day = anchor_ms // DAY_MS
    for acc in accounts:
        n = rng.choices((0, 1, 2, 3, 4, 5), weights=(15, 30, 25, 15, 10, 5))[0]
        segment = 0 if acc.employees < 200 else 1 if acc.employees < 2000 else 2
        median, sigma = _SEGMENTS[segment]
        for _ in range(n):
            pipe = 1 if acc.kind in (1, 3) and rng.random() < 0.45 else 0
            stages = PIPELINES[pipe].stages
            close_day = anchor_day + _between(rng, -548, 182)
            cycle = _between(rng, 14, 60 + 60 * segment)
            created = (close_day - cycle) * DAY_MS + _below(rng, DAY_MS)
            created = min(created, anchor_ms - _between(rng, 1, 20) * DAY_MS - _below(rng, DAY_MS))
            created = max(created, acc.created_ms + _below(rng, DAY_MS))  # not before its account
            close_day = max(close_day, created // DAY_MS + 7)
            open_idx = [i for i, s in enumerate(stages) if not s.is_closed]
            if close_day < anchor_day and rng.random() > 0.08:  # 8% stale open deals
                won = rng.random() < _WIN_RATE[pipe]
                stage = PIPELINES[pipe].won_index if won else PIPELINES[pipe].lost_index
                reached = _between(rng, 0, len(open_idx) - 1) if not won else len(open_idx) - 1
            else:
                reached = min(len(open_idx) - 1, int(rng.triangular(0, len(open_idx), 0)))
                stage = open_idx[reached]
            end_ms = min(anchor_ms, max(created + DAY_MS, close_day * DAY_MS))
            history = _history(rng, open_idx[: reached + 1], stage, created, end_ms)
            updated = min(anchor_ms, history[-1] + _below(rng, 3 * DAY_MS))
            amount = (
                -1
                if rng.random() < 0.03
                else round(rng.lognormvariate(math.log(median), sigma), -2) * 100
            )
            mine = contacts_of[acc.idx]
            picked = tuple(sorted(rng.sample(mine, min(len(mine), _between(rng, 1, 3)))))
            owner = acc.owner if rng.random() < 0.85 else _below(rng, len(owners))
            out.append(
                Deal(
                    idx=len(out),
                    account=acc.idx,
                    product=_below(rng, len(names.PRODUCTS)),
                    pipeline=pipe,
                    stage=stage,
                    amount_cents=int(amount),
                    close_day=close_day,
                    owner=owner,
                    contacts=picked,
                    lead_source=_below(rng, len(names.LEAD_SOURCES)),
                    created_ms=created,
                    updated_ms=max(updated, created),
                    history=history,
                )
            )
    return out


def _history(
    rng: random.Random, path: list[int], final: int, start_ms: int, end_ms: int
) -> tuple[int, ...]:
    """Stage changes from creation to ``final``, spread between ``start_ms`` and ``end_ms``."""
    steps = [*path] if path and path[-1] == final else [*path, final]
    span = max(1, end_ms - start_ms)
    times = sorted(start_ms + _below(rng, span) for _ in range(len(steps) - 1))
    flat: list[int] = []
    for stage, ms in zip(steps, [start_ms, *times], strict=True):
        flat += (stage, ms)
    return tuple(flat)


def _activities(
    rng: random.Random,
    accounts: list[Account],
    deals: list[Deal],
    contacts_of: list[list[int]],
    anchor_ms: int,
) -> list[Activity]:
    out: list[Activity] = []
    deals_of: dict[int, list[Deal]] = {}
    for d in deals:
        deals_of.setdefault(d.account, []).append(d)
    for acc in accounts:
        mine = contacts_of[acc.idx]
        for d in deals_of.get(acc.idx, ()):
            end = min(anchor_ms + 14 * DAY_MS, max(d.created_ms + DAY_MS, d.close_day * DAY_MS))
            for _ in range(_between(rng, 1, 8)):
                contact = _pick(rng, d.contacts) if d.contacts else -1
                out.append(_activity(rng, len(out), acc, d, contact, d.created_ms, end, anchor_ms))
        for _ in range(_pick(rng, (0, 1, 1, 2, 2, 3))):  # account-level touches without a deal
            contact = _pick(rng, mine) if mine else -1
            out.append(
                _activity(rng, len(out), acc, None, contact, acc.created_ms, anchor_ms, anchor_ms)
            )
    return out


def _activity(
    rng: random.Random,
    idx: int,
    acc: Account,
    deal: Deal | None,
    contact: int,
    start_ms: int,
    end_ms: int,
    anchor_ms: int,
) -> Activity:
    roll = _below(rng, _KIND_CUM[-1])
    kind = next(k for k, c in enumerate(_KIND_CUM) if roll < c)
    ts = start_ms + _below(rng, max(1, end_ms - start_ms))
    if kind != TASK:
        ts = min(ts, anchor_ms - _between(rng, 1, DAY_MS - 1))  # only tasks are due in the future
    duration = status = priority = 0
    if kind == MEETING:
        duration = _pick(rng, (15, 30, 30, 45, 60, 60, 90)) * 60
        ts -= ts % (15 * 60_000)  # meetings start on the quarter hour
        status = 0 if ts < anchor_ms else 1  # COMPLETED / SCHEDULED
    elif kind == CALL:
        duration = int(rng.lognormvariate(math.log(300), 0.9))
        status = 0 if rng.random() < 0.8 else 1  # OUTBOUND / INBOUND
    elif kind == EMAIL:
        status = 0 if rng.random() < 0.6 else 1  # EMAIL (sent) / INCOMING_EMAIL
    elif kind == TASK:
        status = 4 if ts < anchor_ms and rng.random() < 0.85 else _below(rng, 4)
        priority = _below(rng, 3)
    created = ts - _below(rng, 3 * DAY_MS) if kind == TASK else ts + _below(rng, 3_600_000)
    created = min(created, anchor_ms - 1000)
    updated = min(anchor_ms, max(created, ts) + _below(rng, 2 * DAY_MS))
    return Activity(
        idx=idx,
        kind=kind,
        kind_idx=0,
        ts_ms=ts,
        owner=deal.owner if deal is not None else acc.owner,
        deal=deal.idx if deal is not None else -1,
        contact=contact,
        account=acc.idx,
        subject=_below(rng, _TITLE_COUNTS[kind]) if kind != NOTE else 0,
        body=_below(rng, len(names.BODIES)),
        duration=duration,
        status=status,
        priority=priority,
        created_ms=created,
        updated_ms=max(updated, created),
    )


# random.Random's randrange/randint/choice cost ~1.5 µs each in pure Python; these draw from
# the same generator through random() (C) at a fraction of that. Generation makes ~1M draws
# per scale unit, so this is most of its time budget.
def _below(rng: random.Random, n: int) -> int:
    return int(rng.random() * n)


def _between(rng: random.Random, a: int, b: int) -> int:
    return a + int(rng.random() * (b - a + 1))


def _pick(rng: random.Random, seq: Sequence[T]) -> T:
    return seq[int(rng.random() * len(seq))]


def _email_local(first: str, last: str) -> str:
    """``first.last`` in plain ASCII, as most mail systems would spell it."""
    table = str.maketrans("éëüöäåøçãñíóáúê", "eeuoaaocanioaue")
    raw = f"{first}.{last}".lower().translate(table)
    return "".join(ch for ch in raw if ch.isalnum() or ch == ".")
