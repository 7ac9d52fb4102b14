"""The reps' Google calendars over the synthetic company: the ground truth `gcalendar.py` serves.

Built lazily (`Company.calendars`) from a generator seeded by the company seed, reading only
fields mutations never change. One calendar per rep (id = the rep's email, in the rep team's
time zone). Events:

- every CRM meeting of the last year (and the next two weeks) becomes a meeting on its
  owner's calendar, with the CRM contact and often more contacts of the account; some add a
  colleague (the event then sits on both reps' calendars, same id), a personal address
  (gmail.com...), an unknown person at the account's domain or someone at an unknown domain;
- weekly internal pipeline reviews and bi-weekly customer syncs as recurring events (RRULE),
  with a moved and a cancelled instance (exceptions);
- all-day events (PTO, conferences, offsites).

Every attendee carries the ground truth of who it is (`Attendee.kind`, `.contact`, `.owner`)
and which account it should resolve to (`.account`; -1 for consumer and unknown domains).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from revtops_sandbox import names
from revtops_sandbox.records import MEETING, Account, CrmView
from revtops_sandbox.slack_data import TEAM_ZONES

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
CONSUMER_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com")
UNKNOWN_DOMAINS = (
    "brightpath-consulting.example",
    "lexington-legal.example",
    "acme-partners.example",
)
# Where a customer in one of names.CITIES sits, for meetings set in the customer's zone.
CITY_ZONES = {
    "New York": "America/New_York", "San Francisco": "America/Los_Angeles",
    "Austin": "America/Chicago", "Chicago": "America/Chicago", "Boston": "America/New_York",
    "Seattle": "America/Los_Angeles", "Denver": "America/Denver", "Atlanta": "America/New_York",
    "Toronto": "America/Toronto", "Vancouver": "America/Vancouver", "London": "Europe/London",
    "Manchester": "Europe/London", "Dublin": "Europe/Dublin", "Paris": "Europe/Paris",
    "Lyon": "Europe/Paris", "Berlin": "Europe/Berlin", "Munich": "Europe/Berlin",
    "Amsterdam": "Europe/Amsterdam", "Stockholm": "Europe/Stockholm", "Madrid": "Europe/Madrid",
    "Milan": "Europe/Rome", "Zürich": "Europe/Zurich", "São Paulo": "America/Sao_Paulo",
    "Mexico City": "America/Mexico_City", "Sydney": "Australia/Sydney",
    "Singapore": "Asia/Singapore", "Tokyo": "Asia/Tokyo", "Bangalore": "Asia/Kolkata",
}  # fmt: skip
RESPONSES = ("accepted", "accepted", "accepted", "tentative", "needsAction", "declined")


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_iso(ms: int, tz: str) -> str:
    """RFC 3339 with the zone's offset at that instant: ``2026-10-05T10:00:00-04:00``."""
    return datetime.fromtimestamp(ms / 1000, zone(tz)).isoformat(timespec="seconds")


def day_iso(day: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).date().isoformat()


def utc_basic(ms: int) -> str:
    """``20260105T150000Z``: how instance ids spell their original start."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(slots=True)
class Attendee:
    email: str
    display_name: str
    kind: str  # "owner", "contact", "domain" (unknown person at an account's domain),
    # "consumer" (gmail.com & co) or "unknown" (unknown person, unknown domain)
    owner: int = -1
    contact: int = -1
    account: int = -1  # the account this attendee should resolve to (-1: none)
    response: str = "needsAction"
    optional: bool = False


@dataclass(slots=True)
class Calendar:
    idx: int
    id: str  # the rep's email
    owner: int
    tz: str


@dataclass(slots=True)
class CalendarEvent:
    idx: int
    id: str
    calendars: list[int]  # calendar idx values showing it; the organizer's first
    summary: str
    description: str
    location: str
    tz: str  # the event's timeZone
    start_ms: int  # timed events; all-day: midnight UTC of the first day
    end_ms: int
    created_ms: int
    updated_ms: int
    attendees: list[Attendee] = field(default_factory=list)
    all_day: bool = False
    status: str = "confirmed"  # confirmed, tentative or cancelled
    sequence: int = 0
    recurrence: tuple[str, ...] = ()  # RRULE lines of a recurring master
    count: int = 0  # instances of a recurring master
    interval_weeks: int = 0
    master: int = -1  # exception of this recurring master (by idx)
    original_start_ms: int = 0  # the instance an exception replaces
    account: int = -1
    deal: int = -1
    activity: int = -1  # the CRM meeting (Company.activities idx) it mirrors
    exceptions: dict[int, int] = field(default_factory=dict)  # original start ms -> event idx

    @property
    def organizer(self) -> int:
        return self.calendars[0]

    @property
    def is_master(self) -> bool:
        return bool(self.recurrence)

    def instance_starts(self) -> list[int]:
        """Original start times (UTC ms) of a master's instances, stepping in local time so
        that a 10:00 New York meeting stays at 10:00 across daylight-saving changes."""
        if not self.recurrence:
            return []
        tz = zone(self.tz)
        first = datetime.fromtimestamp(self.start_ms / 1000, tz)
        out = []
        for k in range(self.count):
            local = first.replace(tzinfo=None) + timedelta(weeks=k * self.interval_weeks)
            out.append(int(local.replace(tzinfo=tz).timestamp() * 1000))
        return out

    def last_end_ms(self) -> int:
        starts = self.instance_starts()
        return (starts[-1] if starts else self.start_ms) + (self.end_ms - self.start_ms)


@dataclass(slots=True)
class Calendars:
    calendars: list[Calendar]
    events: list[CalendarEvent]
    by_calendar: list[list[int]]  # event idx values per calendar, in creation order
    sync_epoch: int = 0  # bumped to invalidate every issued sync token

    def calendar(self, calendar_id: str) -> Calendar | None:
        return next((c for c in self.calendars if c.id == calendar_id), None)

    def add(self, event: CalendarEvent) -> CalendarEvent:
        event.idx = len(self.events)
        self.events.append(event)
        for c in event.calendars:
            self.by_calendar[c].append(event.idx)
        return event

    def meetings(self) -> list[CalendarEvent]:
        """Timed, non-recurring events with external attendees (what identity resolution
        must match), whatever their status."""
        return [
            e
            for e in self.events
            if not e.all_day and e.master < 0 and any(a.kind != "owner" for a in e.attendees)
        ]

    def attendees(self) -> list[tuple[CalendarEvent, Attendee]]:
        return [(e, a) for e in self.events for a in e.attendees]


def event_id(seed: int, kind: str, n: int) -> str:
    """Google event ids use base32hex (0-9, a-v); hex digits are a subset."""
    return hashlib.sha1(f"{seed}:event:{kind}:{n}".encode()).hexdigest()[:26]


# ---------------------------------------------------------------------------------------------
# Generation


def build_calendars(company: CrmView) -> Calendars:
    rng = random.Random(f"calendar:{company.seed}")
    cals = [
        Calendar(o.idx, o.email, o.idx, TEAM_ZONES[o.team % len(TEAM_ZONES)][0])
        for o in company.owners
    ]
    out = Calendars(cals, [], [[] for _ in cals])
    gen = _Generator(company, out, rng)
    gen.meetings()
    gen.recurring()
    gen.all_day()
    return out


class _Generator:
    def __init__(self, company: CrmView, out: Calendars, rng: random.Random) -> None:
        self.co = company
        self.out = out
        self.rng = rng
        self.active = [o.idx for o in company.owners if o.active] or [0]
        self.contacts_of = company.reverse("contacts", "companies")

    def _rep(self, owner: int, response: str = "accepted") -> Attendee:
        o = self.co.owners[owner]
        return Attendee(o.email, o.name, "owner", owner=owner, response=response)

    def _contact(self, idx: int) -> Attendee:
        c = self.co.contacts[idx]
        resp = RESPONSES[int(self.rng.random() * len(RESPONSES))]
        return Attendee(
            c.email, f"{c.first_name} {c.last_name}", "contact", contact=idx,
            account=c.account, response=resp,
        )  # fmt: skip

    def _extra(self, acc: Account) -> Attendee:
        """Someone the CRM does not know: at the account's domain, a personal or an
        unknown domain."""
        rng = self.rng
        first = names.FIRST_NAMES[int(rng.random() * len(names.FIRST_NAMES))]
        last = names.LAST_NAMES[int(rng.random() * len(names.LAST_NAMES))]
        local = "".join(
            ch for ch in f"{first}.{last}".lower() if ch.isascii() and (ch.isalnum() or ch == ".")
        )
        roll = rng.random()
        resp = RESPONSES[int(rng.random() * len(RESPONSES))]
        if roll < 0.4:
            role = ("procurement", "legal", "it-security", "finance")[int(rng.random() * 4)]
            return Attendee(f"{role}@{acc.domain}", "", "domain", account=acc.idx, response=resp)
        if roll < 0.75:
            domain = CONSUMER_DOMAINS[int(rng.random() * len(CONSUMER_DOMAINS))]
            n = int(rng.random() * 90) + 10
            return Attendee(f"{local}{n}@{domain}", f"{first} {last}", "consumer", response=resp)
        domain = UNKNOWN_DOMAINS[int(rng.random() * len(UNKNOWN_DOMAINS))]
        return Attendee(f"{local}@{domain}", f"{first} {last}", "unknown", response=resp)

    def meetings(self) -> None:
        co, rng = self.co, self.rng
        lo, hi = co.anchor_ms - 365 * DAY_MS, co.anchor_ms + 15 * DAY_MS
        for act in co.by_kind[MEETING]:
            if not lo <= act.ts_ms < hi:
                continue
            acc = co.accounts[act.account]
            owner_tz = self.out.calendars[act.owner].tz
            tz = owner_tz
            if rng.random() < 0.2:  # set in the customer's zone
                tz = CITY_ZONES.get(names.CITIES[acc.city][0], owner_tz)
            attendees = [self._rep(act.owner)]
            cal = [act.owner]
            if act.contact >= 0:
                attendees.append(self._contact(act.contact))
            mine = [c for c in self.contacts_of.get(acc.idx, []) if c != act.contact]
            for c in rng.sample(mine, min(len(mine), int(rng.random() * 3))):
                attendees.append(self._contact(c))
            if rng.random() < 0.25 and len(self.active) > 1:
                colleague = self.active[int(rng.random() * len(self.active))]
                if colleague != act.owner:
                    attendees.append(self._rep(colleague, "accepted"))
                    cal.append(colleague)
            if rng.random() < 0.18:
                attendees.append(self._extra(acc))
            if len(attendees) == 1:
                attendees.append(self._extra(acc))
            title = names.MEETING_TITLES[act.subject % len(names.MEETING_TITLES)]
            status = (
                "cancelled"
                if rng.random() < 0.03
                else ("tentative" if rng.random() < 0.05 else "confirmed")
            )
            created = max(act.ts_ms - int(rng.random() * 20 * DAY_MS), act.ts_ms - 30 * DAY_MS)
            created = min(created, co.anchor_ms - 1000)
            updated = min(co.anchor_ms - 1000, created + int(rng.random() * 5 * DAY_MS))
            self.out.add(
                CalendarEvent(
                    idx=0,
                    id=event_id(co.seed, "meeting", act.idx),
                    calendars=cal,
                    summary=f"{acc.name} / {co.seller_name}: {title}",
                    description=f"Agenda: {title.lower()} with {acc.name}.",
                    location="https://meet.google.com/" + event_id(co.seed, "meet", act.idx)[:10],
                    tz=tz,
                    start_ms=act.ts_ms,
                    end_ms=act.ts_ms + max(15 * 60, act.duration) * 1000,
                    created_ms=created,
                    updated_ms=max(created, updated),
                    attendees=attendees,
                    status=status,
                    account=acc.idx,
                    deal=act.deal,
                    activity=act.idx,
                )
            )

    def recurring(self) -> None:
        co, rng = self.co, self.rng
        n = 0
        for cal in self.out.calendars:
            if not co.owners[cal.owner].active:
                continue
            # weekly internal pipeline review, 10:00 local, 20 weeks back and 10 ahead
            manager = self.active[0]
            start = _local_ms(co.anchor_ms - 20 * WEEK_MS, cal.tz, 10, 0)
            attendees = [self._rep(cal.owner)]
            if manager != cal.owner:
                attendees.append(self._rep(manager))
            master = self._master(n, cal, "Weekly pipeline review", start, 30, 1, 30, attendees)
            n += 1
            self._exceptions(master)
        kinds = co.activity_inputs().account_kinds
        key = [a for a in co.accounts if kinds[a.idx] == 1][: max(2, round(30 * co.scale))]
        for acc in key:
            owner = acc.owner
            if not co.owners[owner].active:
                continue
            cal = self.out.calendars[owner]
            mine = self.contacts_of.get(acc.idx, [])
            if not mine:
                continue
            start = _local_ms(co.anchor_ms - 16 * WEEK_MS + int(rng.random() * 5) * DAY_MS,
                              cal.tz, 14, 30)  # fmt: skip
            attendees = [self._rep(owner)] + [
                self._contact(c) for c in rng.sample(mine, min(2, len(mine)))
            ]
            master = self._master(n, cal, f"{acc.name} bi-weekly sync", start, 45, 2, 12,
                                  attendees)  # fmt: skip
            master.account = acc.idx
            n += 1
            self._exceptions(master)

    def _master(
        self,
        n: int,
        cal: Calendar,
        summary: str,
        start_ms: int,
        minutes: int,
        interval: int,
        count: int,
        attendees: list[Attendee],
    ) -> CalendarEvent:
        co = self.co
        day = datetime.fromtimestamp(start_ms / 1000, zone(cal.tz)).strftime("%a")[:2].upper()
        rule = f"RRULE:FREQ=WEEKLY;BYDAY={day};COUNT={count}"
        if interval > 1:
            rule = f"RRULE:FREQ=WEEKLY;INTERVAL={interval};BYDAY={day};COUNT={count}"
        created = start_ms - 3 * DAY_MS
        cals = [cal.idx] + [a.owner for a in attendees[1:] if a.kind == "owner"]
        return self.out.add(
            CalendarEvent(
                idx=0,
                id=event_id(co.seed, "recurring", n),
                calendars=cals,
                summary=summary,
                description="",
                location="",
                tz=cal.tz,
                start_ms=start_ms,
                end_ms=start_ms + minutes * 60_000,
                created_ms=created,
                updated_ms=created + 60_000,
                attendees=attendees,
                recurrence=(rule,),
                count=count,
                interval_weeks=interval,
            )
        )

    def _exceptions(self, master: CalendarEvent) -> None:
        """One instance moved by an hour, one cancelled (both before the anchor)."""
        starts = [s for s in master.instance_starts() if s < self.co.anchor_ms - WEEK_MS]
        if len(starts) < 4:
            return
        moved, cancelled = starts[1], starts[3]
        for original, status, shift in (
            (moved, "confirmed", 3_600_000),
            (cancelled, "cancelled", 0),
        ):
            add_exception(self.out, master, original, status, shift, original - 2 * DAY_MS)

    def all_day(self) -> None:
        co, rng = self.co, self.rng
        anchor_day = co.anchor_ms // DAY_MS
        n = 0
        for cal in self.out.calendars:
            for _ in range(2 + int(rng.random() * 3)):
                kind = rng.random()
                if kind < 0.6:
                    summary, days = "PTO", 1 + int(rng.random() * 5)
                elif kind < 0.85:
                    summary, days = "SaaStr Annual (conference)", 3
                else:
                    summary, days = "Sales kickoff offsite", 2
                first = anchor_day - 300 + int(rng.random() * 320)
                created = (first - 20) * DAY_MS + int(rng.random() * DAY_MS)
                self.out.add(
                    CalendarEvent(
                        idx=0,
                        id=event_id(co.seed, "allday", n),
                        calendars=[cal.idx],
                        summary=summary,
                        description="",
                        location="",
                        tz=cal.tz,
                        start_ms=first * DAY_MS,
                        end_ms=(first + days) * DAY_MS,
                        created_ms=created,
                        updated_ms=created + 1000,
                        all_day=True,
                    )
                )
                n += 1


def new_meeting(
    company: CrmView, out: Calendars, rng: random.Random, owner: int, start_ms: int, ts: int
) -> CalendarEvent:
    """A meeting booked between syncs: ``owner`` with contacts of one of the rep's accounts."""
    gen = _Generator(company, out, rng)
    mine = [a for a in company.accounts if a.owner == owner] or company.accounts
    acc = mine[int(rng.random() * len(mine))]
    contacts = gen.contacts_of.get(acc.idx, [])
    attendees = [gen._rep(owner)]
    attendees += [gen._contact(c) for c in rng.sample(contacts, min(len(contacts), 2))]
    if len(attendees) == 1 or rng.random() < 0.2:
        attendees.append(gen._extra(acc))
    title = names.MEETING_TITLES[int(rng.random() * len(names.MEETING_TITLES))]
    n = len(out.events)
    return out.add(
        CalendarEvent(
            idx=0,
            id=event_id(company.seed, "new", n),
            calendars=[owner],
            summary=f"{acc.name} / {company.seller_name}: {title}",
            description=f"Agenda: {title.lower()} with {acc.name}.",
            location="https://meet.google.com/" + event_id(company.seed, "meet-new", n)[:10],
            tz=out.calendars[owner].tz,
            start_ms=start_ms,
            end_ms=start_ms + 30 * 60_000,
            created_ms=ts,
            updated_ms=ts,
            attendees=attendees,
            account=acc.idx,
        )
    )


def add_exception(
    out: Calendars,
    master: CalendarEvent,
    original_ms: int,
    status: str,
    shift_ms: int,
    updated_ms: int,
) -> CalendarEvent:
    """Override one instance of ``master`` (moved by ``shift_ms`` or cancelled)."""
    existing = master.exceptions.get(original_ms)
    duration = master.end_ms - master.start_ms
    if existing is not None:
        ev = out.events[existing]
        ev.status = status
        ev.start_ms = original_ms + shift_ms
        ev.end_ms = ev.start_ms + duration
        ev.updated_ms = updated_ms
        ev.sequence += 1
        return ev
    ev = CalendarEvent(
        idx=0,
        id=f"{master.id}_{utc_basic(original_ms)}",
        calendars=list(master.calendars),
        summary=master.summary,
        description=master.description,
        location=master.location,
        tz=master.tz,
        start_ms=original_ms + shift_ms,
        end_ms=original_ms + shift_ms + duration,
        created_ms=master.created_ms,
        updated_ms=updated_ms,
        attendees=list(master.attendees),
        status=status,
        sequence=1,
        master=master.idx,
        original_start_ms=original_ms,
        account=master.account,
    )
    out.add(ev)
    master.exceptions[original_ms] = ev.idx
    return ev


def _local_ms(near_ms: int, tz: str, hour: int, minute: int) -> int:
    """``hour:minute`` local time in ``tz`` on the weekday-adjusted day of ``near_ms``."""
    d = datetime.fromtimestamp(near_ms / 1000, zone(tz))
    if d.weekday() >= 5:  # weekends: move to Monday
        d += timedelta(days=7 - d.weekday())
    local = d.replace(hour=hour, minute=minute, second=0, microsecond=0, tzinfo=None)
    return int(local.replace(tzinfo=zone(tz)).timestamp() * 1000)
