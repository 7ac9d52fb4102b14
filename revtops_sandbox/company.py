"""The synthetic B2B company both CRM views are rendered from: the sandbox's ground truth.

One `Company` holds owners (the seller's reps), accounts, contacts, deals and activities as
compact slotted records that refer to each other by list index. Provider JSON is rendered from
them lazily, page by page (see `hubspot.py`, `salesforce.py`), so the same records back HubSpot
and Salesforce and a later Slack or Calendar view: reps have emails at the seller's domain,
customer contacts have emails at their account's domain.

Times are integers (epoch milliseconds, UTC). One logical clock, `Company.clock_ms`, starts just
after the newest generated timestamp and only moves forward when `mutate.py` changes records.
`generate_company` lives in `generate.py`, the record shapes in `records.py`; `Company` composes
them with the Slack workspace and the calendars, which it builds on first use.
"""

from __future__ import annotations

import calendar
import gc
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from revtops_sandbox import names
from revtops_sandbox.calendar_data import Calendars, build_calendars

# The record shapes live in `records` (so the Slack and Calendar builders need not import this
# module); they are re-exported here, where most of the sandbox looks for them.
from revtops_sandbox.records import (
    ACTIVITY_KINDS,
    ARCHIVED,
    CALL,
    DAY_MS,
    EMAIL,
    HS_ID_BASE,
    HS_USER_ID_BASE,
    LIVE,
    MEETING,
    NOTE,
    OBJECT_TYPES,
    PIPELINES,
    PURGED,
    RETIRED_STAGES,
    TASK,
    Account,
    Activity,
    ActivityInputs,
    Contact,
    Deal,
    ObjectType,
    Owner,
    Pipeline,
    Record,
    Stage,
)
from revtops_sandbox.slack_data import SlackWorkspace, build_workspace

__all__ = [
    "ACTIVITY_KINDS", "ARCHIVED", "CALL", "DAY_MS", "DEFAULT_ANCHOR", "EMAIL", "HS_ID_BASE",
    "HS_USER_ID_BASE", "LIVE", "MEETING", "NOTE", "OBJECT_TYPES", "PIPELINES", "PURGED",
    "RETIRED_STAGES", "SF_PREFIX", "TASK", "Account", "Activity", "ActivityInputs", "Company",
    "Contact", "Deal", "ObjectType", "Owner", "Pipeline", "Record", "Stage", "day_iso", "iso_ms",
    "ms_of", "sf_datetime", "sf_id", "sf_id18", "sf_seq",
]  # fmt: skip

# Salesforce key prefixes (first three characters of every 15/18-character Id).
SF_PREFIX: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "OpportunityHistory": "008",
    "Task": "00T",
    "Event": "00U",
    "OpportunityStage": "01J",
    "QueryLocator": "01g",
    "Organization": "00D",
}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_INDEX = {c: i for i, c in enumerate(_B62)}
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id(prefix: str, n: int) -> str:
    """The 18-character Salesforce Id for sequence number ``n`` of an object type.

    15 case-sensitive characters (prefix, a fixed pod marker, base-62 sequence) plus the real
    3-character case-insensitive checksum, so connectors that validate or shorten Ids work.
    Hot (a rendered Task has five Ids): the ten base-62 digits are five pairs from a table, and
    the checksum's bits come from tables per pair (= ``sf_id18`` of the 15 characters).
    """
    n, e = divmod(n, 3844)
    n, d = divmod(n, 3844)
    n, c = divmod(n, 3844)
    n, b = divmod(n, 3844)
    a = n % 3844
    head = _HEADS.get(prefix)
    if head is None:
        if len(prefix) != 3:  # the checksum's chunks would not line up with the pairs
            digits = _PAIRS[a] + _PAIRS[b] + _PAIRS[c] + _PAIRS[d] + _PAIRS[e]
            return sf_id18(prefix + "5g" + digits)
        head = _HEADS[prefix] = (prefix + "5g", sf_id18(prefix + "5g" + "0" * 10)[15])
    pairs = _PAIRS
    return (
        head[0] + pairs[a] + pairs[b] + pairs[c] + pairs[d] + pairs[e] + head[1]
        + _SUFFIX_ALPHABET[_UP_LOW[a] | _UP_LOW[b] << 2 | _UP_FIRST[c] << 4]
        + _SUFFIX_ALPHABET[_UP_SECOND[c] | _UP_LOW[d] << 1 | _UP_LOW[e] << 3]
    )  # fmt: skip


_PAIRS = tuple(a + b for a in _B62 for b in _B62)  # 0..3843 as two base-62 digits
# Uppercase flags of each pair's characters (digits 10..35 are A-Z): first, second, both.
_UP_FIRST = tuple(int(p[0].isupper()) for p in _PAIRS)
_UP_SECOND = tuple(int(p[1].isupper()) for p in _PAIRS)
_UP_LOW = tuple(f | s << 1 for f, s in zip(_UP_FIRST, _UP_SECOND, strict=True))
_HEADS: dict[str, tuple[str, str]] = {}  # prefix -> (prefix + "5g", its checksum character)


def sf_id18(id15: str) -> str:
    """Append Salesforce's case-insensitivity checksum to a 15-character Id."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _SUFFIX_ALPHABET[bits]
    return id15 + suffix


def sf_seq(sfid: str) -> int | None:
    """Inverse of `sf_id` (the sequence number), or None when ``sfid`` is not one of ours."""
    if len(sfid) not in (15, 18) or sfid[3:5] != "5g":
        return None
    n = 0
    for ch in sfid[5:15]:
        v = _B62_INDEX.get(ch)
        if v is None:
            return None
        n = n * 62 + v
    return n


def iso_ms(ms: int) -> str:
    """HubSpot's timestamp format: ``2024-01-15T10:22:33.181Z``.

    Hot: every rendered record has several. The date part is cached per day, the time of day
    is plain integer arithmetic (about 5x faster than going through time.gmtime).
    """
    day, rem = divmod(ms, DAY_MS)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
    h, rem = divmod(rem, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{prefix}{_TWO[h]}:{_TWO[m]}:{_TWO[s]}.{_THREE[milli]}Z"


def sf_datetime(ms: int) -> str:
    """Salesforce's datetime format (second precision, offset without colon)."""
    day, rem = divmod(ms, DAY_MS)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
    h, rem = divmod(rem, 3_600_000)
    m, rem = divmod(rem, 60_000)
    return f"{prefix}{_TWO[h]}:{_TWO[m]}:{_TWO[rem // 1000]}.000+0000"


_DAY_PREFIX: dict[int, str] = {}
_TWO = tuple(f"{i:02d}" for i in range(100))
_THREE = tuple(f"{i:03d}" for i in range(1000))


def day_iso(day: int) -> str:
    """A day number (days since 1970-01-01) as ``2024-06-30``."""
    return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def ms_of(dt: datetime) -> int:
    return calendar.timegm(dt.utctimetuple()) * 1000 + dt.microsecond // 1000


DEFAULT_ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(slots=True)
class Company:
    """The whole synthetic company: the ground truth tests compare the APIs against."""

    seed: int
    scale: float
    anchor_ms: int  # "today" of the generated data
    clock_ms: int  # the logical clock; only `mutate.py` moves it forward
    owners: list[Owner]
    accounts: list[Account]
    contacts: list[Contact]
    deals: list[Deal]
    activities: list[Activity]
    by_kind: tuple[list[Activity], ...]  # activities split by kind, each in id order
    seller_name: str = names.SELLER_NAME
    seller_domain: str = names.SELLER_DOMAIN
    # Bumped on every change, so renderers and search caches know when to recompute.
    version: int = 0
    mutations: int = 0
    _reverse: dict[tuple[str, str], dict[int, list[int]]] = field(default_factory=dict)
    _slack: SlackWorkspace | None = None
    _calendars: Calendars | None = None
    _inputs: ActivityInputs | None = None
    # Contacts taken off deals after generation: deal idx -> {contact idx: when (ms)}. HubSpot
    # just lists fewer; Salesforce keeps the deleted OpportunityContactRole for queryAll.
    removed_deal_contacts: dict[int, dict[int, int]] = field(default_factory=dict)

    # -- activity providers' ground truth, built on first use ----------------------------------

    @property
    def slack(self) -> SlackWorkspace:
        """The Slack workspace (users, channels, messages, what the app posted)."""
        if self._slack is None:
            with _BUILD_LOCK, _collector_paused():
                if self._slack is None:  # a test thread and the server may race here
                    self._slack = build_workspace(self)
        return self._slack

    @property
    def calendars(self) -> Calendars:
        """One Google calendar per rep, with events and their attendees."""
        if self._calendars is None:
            with _BUILD_LOCK, _collector_paused():
                if self._calendars is None:
                    self._calendars = build_calendars(self)
        return self._calendars

    def activity_inputs(self) -> ActivityInputs:
        """The mutable CRM fields Slack and Calendar are built from, as generated (frozen by
        the first mutation), so both are the same whenever they are first asked for."""
        if self._inputs is None:
            self._inputs = ActivityInputs.of(self)
        return self._inputs

    def freeze_activity_inputs(self) -> None:
        """Called before any change to CRM records; cheap (a few lists of ints)."""
        self.activity_inputs()

    # -- lookups ------------------------------------------------------------------------------

    def records(self, object_type: str) -> Sequence[Record]:
        """All records of a HubSpot object type, in id order, whatever their state."""
        if object_type == "companies":
            return self.accounts
        if object_type == "contacts":
            return self.contacts
        if object_type == "deals":
            return self.deals
        if object_type in ACTIVITY_KINDS:
            return self.by_kind[ACTIVITY_KINDS.index(object_type)]
        raise KeyError(f"unknown object type {object_type!r}; expected one of {OBJECT_TYPES}")

    def hs_id(self, object_type: str, record: Record) -> int:
        return HS_ID_BASE[_id_space(object_type)] + record.idx

    def find(self, object_type: str, hs_id: int | str) -> Record | None:
        """The record behind a HubSpot id, or None (unknown ids, other types' ids)."""
        try:
            idx = int(hs_id) - HS_ID_BASE[_id_space(object_type)]
        except ValueError:
            return None
        pool: Sequence[Record] = (
            self.activities if object_type in ACTIVITY_KINDS else self.records(object_type)
        )
        if not 0 <= idx < len(pool):
            return None
        rec = pool[idx]
        if object_type in ACTIVITY_KINDS and ACTIVITY_KINDS[rec.kind] != object_type:  # type: ignore[union-attr]
            return None
        return rec

    def sf_id(self, object_type: str, record: Record) -> str:
        """The Salesforce Id of a record (Task or Event for activities)."""
        if object_type in ACTIVITY_KINDS:
            return sf_id("00U" if object_type == "meetings" else "00T", record.idx)
        return sf_id(SF_PREFIX[_SF_OBJECT[object_type]], record.idx)

    def salesforce_id(self, object_type: str, hs_id: int | str) -> str:
        """Map a HubSpot id (as returned by mutate/bump) to the same record's Salesforce Id."""
        rec = self.find(object_type, hs_id)
        if rec is None:
            raise KeyError(f"no {object_type} record with HubSpot id {hs_id}")
        return self.sf_id(object_type, rec)

    def live(self, object_type: str) -> Iterator[Record]:
        return (r for r in self.records(object_type) if r.state == LIVE)

    def counts(self) -> dict[str, int]:
        """Live records per object type (plus owners), as the APIs should report them."""
        out = {"owners": len(self.owners)}
        for t in OBJECT_TYPES:
            out[t] = sum(1 for r in self.records(t) if r.state == LIVE)
        return out

    def reverse(self, source: str, target: str) -> dict[int, list[int]]:
        """Index from a target record (by idx) to the source records that point at it.

        ``reverse("contacts", "companies")[account_idx]`` lists that account's contacts.
        Built once on first use; associations never change after generation.
        """
        key = (source, target)
        index = self._reverse.get(key)
        if index is None:
            index = {}
            for rec in self.records(source):
                for t in _targets(rec, target):
                    index.setdefault(t, []).append(rec.idx)
            self._reverse[key] = index
        return index

    def find_index(self, object_type: str, after_hs_id: int) -> int:
        """Position of the first record whose HubSpot id is >= ``after_hs_id``."""
        recs = self.records(object_type)
        base = HS_ID_BASE[_id_space(object_type)]
        return bisect_left(recs, after_hs_id - base, key=lambda r: r.idx)

    def stage(self, deal: Deal) -> Stage:
        return PIPELINES[deal.pipeline].stages[deal.stage]

    def take_contact_off_deal(self, deal: Deal, contact: int) -> int:
        """A rep removes ``contact`` (an index) from ``deal``: the deal changes now (stamped
        like every edit: after the logical clock, never before the wall clock). Call it under
        the sandbox state's lock. Returns the edit's time (epoch ms)."""
        if contact not in deal.contacts:
            raise ValueError(f"contact {contact} is not on deal {deal.idx}")
        self.freeze_activity_inputs()
        ts = max(self.clock_ms + 1000, int(time.time() * 1000))
        deal.contacts = tuple(c for c in deal.contacts if c != contact)
        deal.updated_ms = ts
        deal.version += 1
        self.removed_deal_contacts.setdefault(deal.idx, {})[contact] = ts
        self.clock_ms = ts + 1000
        self.version += 1
        self._reverse.clear()  # the reverse association indexes are stale now
        return ts


_BUILD_LOCK = threading.RLock()  # re-entrant: a calendar build may read activity_inputs


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Builds allocate tens of thousands of acyclic records; a cyclic collection meanwhile
    would walk the whole company each time (see `generate_company`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_SF_OBJECT = {"companies": "Account", "contacts": "Contact", "deals": "Opportunity"}


def _id_space(object_type: str) -> str:
    return "activities" if object_type in ACTIVITY_KINDS else object_type


def _targets(rec: Record, target: str) -> tuple[int, ...]:
    """The idx values ``rec`` points at in ``target`` (companies, contacts or deals)."""
    if target == "companies":
        acc = getattr(rec, "account", -1)
        return (acc,) if acc >= 0 else ()
    if target == "contacts":
        if isinstance(rec, Deal):
            return rec.contacts
        c = getattr(rec, "contact", -1)
        return (c,) if c >= 0 else ()
    if target == "deals":
        d = getattr(rec, "deal", -1)
        return (d,) if d >= 0 else ()
    return ()
