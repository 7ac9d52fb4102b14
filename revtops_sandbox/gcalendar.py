"""Google Calendar API v3 as Starlette routes, mounted at ``/calendar/v3``.

A connector configured with base URL ``{sandbox}/calendar/v3`` calls the same paths as on
``https://www.googleapis.com/calendar/v3``. Auth, the per-user quota and injected faults are
applied before these handlers by `gate.py`.

Listings are snapshots: the first page computes the whole result (in the order asked for) and
later pages read it through an opaque ``pageToken``; the last page, and only it, carries
``nextSyncToken``. A sync token records the calendar, the logical clock when its listing
started and whether instances were expanded; a request with it returns every event of that
calendar updated since, cancelled ones included (as a minimal body). Tokens from before
`expire_sync_tokens` (or garbage) answer 410 ``fullSyncRequired``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revtops_sandbox import google_errors
from revtops_sandbox.calendar_data import (
    DAY_MS,
    Calendar,
    CalendarEvent,
    Calendars,
    day_iso,
    local_iso,
    utc_basic,
)
from revtops_sandbox.company import Company, iso_ms
from revtops_sandbox.faults import malformed_kind
from revtops_sandbox.state import SandboxState

DEFAULT_MAX_RESULTS = 250
MAX_RESULTS = 2500
CALENDAR_LIST_MAX = 250
SNAPSHOTS_KEPT = 512
UPDATED_MIN_HORIZON_MS = 28 * DAY_MS
# Parameters Google refuses together with syncToken.
_NOT_WITH_SYNC = ("timeMin", "timeMax", "updatedMin", "orderBy", "q", "iCalUID")
SYNC_GONE = "Sync token is no longer valid, a full sync is required."

Item = tuple[int, int]  # (event idx, instance original start ms or -1)


def google_json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json; charset=UTF-8")


def google_error(status: int, message: str, reason: str, **kwargs: Any) -> Response:
    return Response(
        google_errors.error_bytes(status, message, reason, **kwargs),
        status_code=status,
        media_type="application/json; charset=UTF-8",
    )


def _bad_request(message: str, location: str | None = None) -> Response:
    where = {"location": location, "locationType": "parameter"} if location else {}
    return google_error(400, message, "invalid" if location else "badRequest", **where)


def _not_found() -> Response:
    return google_error(404, "Not Found", "notFound")


def _sync_gone() -> Response:
    return google_error(
        410, SYNC_GONE, "fullSyncRequired", domain="calendar",
        locationType="parameter", location="syncToken",
    )  # fmt: skip


def parse_rfc3339(text: str) -> int | None:
    """Epoch ms of an RFC 3339 time that carries an offset (Google refuses naive times)."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return int(dt.timestamp() * 1000)


def encode_sync_token(epoch: int, calendar: int, watermark_ms: int, single: bool) -> str:
    raw = f"{epoch}.{calendar}.{watermark_ms}.{int(single)}".encode()
    return "CP" + base64.urlsafe_b64encode(raw).decode()


def decode_sync_token(token: str) -> tuple[int, int, int, bool] | None:
    if not token.startswith("CP"):
        return None
    try:
        parts = base64.urlsafe_b64decode(token[2:].encode()).decode().split(".")
        epoch, cal, watermark, single = (int(p) for p in parts)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return epoch, cal, watermark, bool(single)


@dataclass(slots=True)
class Snapshot:
    calendar: int
    items: list[Item]
    watermark_ms: int
    single: bool
    sync_token: bool  # whether the last page carries nextSyncToken


class CalendarAPI:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._snapshots: OrderedDict[str, tuple[Snapshot, int]] = OrderedDict()

    @property
    def co(self) -> Company:
        return self.state.company

    def routes(self) -> list[Route]:
        return [
            Route("/users/me/calendarList", self.calendar_list, methods=["GET"]),
            Route("/users/me/calendarList/{calendar_id}", self.calendar_list_entry),
            Route("/calendars/{calendar_id}", self.calendar_get, methods=["GET"]),
            Route("/calendars/{calendar_id}/events", self.events_list, methods=["GET"]),
            Route("/calendars/{calendar_id}/events/{event_id}", self.event_get, methods=["GET"]),
        ]

    # -- calendars -------------------------------------------------------------------------

    def _calendar(self, cals: Calendars, calendar_id: str) -> Calendar | None:
        if calendar_id == "primary":
            return cals.calendars[0] if cals.calendars else None
        return cals.calendar(calendar_id)

    def _entry(self, cal: Calendar) -> dict[str, Any]:
        primary = cal.idx == 0
        out: dict[str, Any] = {
            "kind": "calendar#calendarListEntry",
            "etag": f'"{1_600_000_000_000 + cal.idx}"',
            "id": cal.id,
            "summary": cal.id,
            "timeZone": cal.tz,
            "colorId": str(1 + cal.idx % 24),
            "backgroundColor": "#9fe1e7",
            "foregroundColor": "#000000",
            "selected": True,
            "accessRole": "owner" if primary else "reader",
            "defaultReminders": [{"method": "popup", "minutes": 10}] if primary else [],
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }
        if primary:
            out["primary"] = True
        return out

    async def calendar_list(self, request: Request) -> Response:
        q = request.query_params
        max_results = _int(q.get("maxResults"), 100)
        if max_results is None or max_results < 1:
            return _bad_request("Invalid value for maxResults", "maxResults")
        max_results = min(max_results, CALENDAR_LIST_MAX)
        with self.state.lock:
            cals = self.co.calendars
            start = 0
            token = q.get("pageToken")
            if token:
                start_or_none = _int(_unb64(token), -1)
                if start_or_none is None or not 0 <= start_or_none <= len(cals.calendars):
                    return _bad_request("Invalid page token", "pageToken")
                start = start_or_none
            sync = q.get("syncToken")
            if sync:  # the list never changes: nothing new since any valid token
                decoded = decode_sync_token(sync)
                if decoded is None or decoded[0] != cals.sync_epoch:
                    return _sync_gone()
                start = len(cals.calendars)
            page = cals.calendars[start : start + max_results]
            out: dict[str, Any] = {
                "kind": "calendar#calendarList",
                "etag": f'"{self.co.clock_ms}"',
                "items": [self._entry(c) for c in page],
            }
            if start + max_results < len(cals.calendars):
                out["nextPageToken"] = _b64(str(start + max_results))
            else:
                out["nextSyncToken"] = encode_sync_token(
                    cals.sync_epoch, -1, self.co.clock_ms, False
                )
        return google_json(out)

    async def calendar_list_entry(self, request: Request) -> Response:
        with self.state.lock:
            cal = self._calendar(self.co.calendars, request.path_params["calendar_id"])
            if cal is None:
                return _not_found()
            return google_json(self._entry(cal))

    async def calendar_get(self, request: Request) -> Response:
        with self.state.lock:
            cal = self._calendar(self.co.calendars, request.path_params["calendar_id"])
            if cal is None:
                return _not_found()
            return google_json(
                {
                    "kind": "calendar#calendar",
                    "etag": f'"{1_600_000_000_000 + cal.idx}"',
                    "id": cal.id,
                    "summary": cal.id,
                    "timeZone": cal.tz,
                    "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
                }
            )

    # -- events ------------------------------------------------------------------------------

    async def event_get(self, request: Request) -> Response:
        with self.state.lock:
            cals = self.co.calendars
            cal = self._calendar(cals, request.path_params["calendar_id"])
            if cal is None:
                return _not_found()
            wanted = request.path_params["event_id"]
            for idx in cals.by_calendar[cal.idx]:
                ev = cals.events[idx]
                if ev.id == wanted:
                    return google_json(self.event_json(cals, ev, cal, -1))
                if ev.is_master and wanted.startswith(ev.id + "_"):
                    for start in ev.instance_starts():
                        if self._instance_id(ev, start) == wanted and start not in ev.exceptions:
                            return google_json(self.event_json(cals, ev, cal, start))
            return _not_found()

    async def events_list(self, request: Request) -> Response:
        q = request.query_params
        max_results = _int(q.get("maxResults"), DEFAULT_MAX_RESULTS)
        if max_results is None or max_results < 1:
            return _bad_request("Invalid value for maxResults", "maxResults")
        max_results = min(max_results, MAX_RESULTS)
        with self.state.lock:
            cals = self.co.calendars
            cal = self._calendar(cals, request.path_params["calendar_id"])
            if cal is None:
                return _not_found()
            page_token = q.get("pageToken")
            if page_token:
                found = self._snapshots.get(page_token)
                if found is None or found[0].calendar != cal.idx:
                    return _bad_request("Invalid page token value.", "pageToken")
                snap, pos = found
            else:
                made = self._snapshot(cals, cal, q)
                if isinstance(made, Response):
                    return made
                snap, pos = made, 0
            page = snap.items[pos : pos + max_results]
            out: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": f'"{self.co.clock_ms}"',
                "summary": cal.id,
                "description": "",
                "updated": iso_ms(self.co.clock_ms),
                "timeZone": cal.tz,
                "accessRole": "owner" if cal.idx == 0 else "reader",
                "defaultReminders": [],
            }
            if pos + max_results < len(snap.items):
                token = secrets.token_urlsafe(24)
                self._snapshots[token] = (snap, pos + max_results)
                while len(self._snapshots) > SNAPSHOTS_KEPT:
                    self._snapshots.popitem(last=False)
                out["nextPageToken"] = token
            elif snap.sync_token:
                out["nextSyncToken"] = encode_sync_token(
                    cals.sync_epoch, cal.idx, snap.watermark_ms, snap.single
                )
            out["items"] = [self.event_json(cals, cals.events[i], cal, s) for i, s in page]
        return google_json(out)

    def _snapshot(self, cals: Calendars, cal: Calendar, q: Any) -> Snapshot | Response:
        single = _flag(q.get("singleEvents"))
        show_deleted = _flag(q.get("showDeleted"))
        order = q.get("orderBy")
        if order not in (None, "", "startTime", "updated"):
            return _bad_request("Invalid value for orderBy", "orderBy")
        if order == "startTime" and not single:
            return _bad_request("The requested ordering is not available for the particular query.")
        watermark = self.co.clock_ms
        sync = q.get("syncToken")
        since: int | None = None
        if sync:
            if any(q.get(p) for p in _NOT_WITH_SYNC):
                return _bad_request(
                    "Sync token cannot be used together with timeMin, timeMax, updatedMin, "
                    "orderBy, q or iCalUID.",
                    "syncToken",
                )
            decoded = decode_sync_token(sync)
            if decoded is None or decoded[0] != cals.sync_epoch or decoded[1] != cal.idx:
                return _sync_gone()
            since, show_deleted = decoded[2], True
        bounds: list[int | None] = []
        for name in ("timeMin", "timeMax", "updatedMin"):
            raw = q.get(name)
            value = parse_rfc3339(raw) if raw else None
            if raw and value is None:
                return _bad_request(f"Bad Request: {name} must be RFC 3339 with an offset", name)
            bounds.append(value)
        time_min, time_max, updated_min = bounds
        if updated_min is not None:
            if updated_min < self.co.clock_ms - UPDATED_MIN_HORIZON_MS:
                return google_error(
                    410, "The requested minimum modification time lies too far in the past.",
                    "updatedMinTooLongAgo", location="updatedMin", locationType="parameter",
                )  # fmt: skip
            since, show_deleted = updated_min - 1, True
        items: list[tuple[int, int, int]] = []  # (start, event idx, instance start)
        for idx in cals.by_calendar[cal.idx]:
            ev = cals.events[idx]
            if since is not None and ev.updated_ms <= since:
                continue
            if ev.status == "cancelled" and not show_deleted:
                continue
            if ev.is_master and single:
                for s in ev.instance_starts():
                    if s in ev.exceptions:
                        continue  # the exception event stands in for it
                    e = s + (ev.end_ms - ev.start_ms)
                    if _overlaps(s, e, time_min, time_max):
                        items.append((s, idx, s))
                continue
            end = ev.last_end_ms() if ev.is_master else ev.end_ms
            if _overlaps(ev.start_ms, end, time_min, time_max):
                items.append((ev.start_ms, idx, -1))
        if order == "updated":
            items.sort(key=lambda t: (cals.events[t[1]].updated_ms, t[1], t[2]))
        else:
            items.sort(key=lambda t: (t[0], t[1], t[2]))
        return Snapshot(
            calendar=cal.idx,
            items=[(i, s) for _, i, s in items],
            watermark_ms=watermark,
            single=single,
            sync_token=order != "startTime" and not q.get("q"),
        )

    # -- rendering -------------------------------------------------------------------------

    def _instance_id(self, master: CalendarEvent, start_ms: int) -> str:
        if master.all_day:
            return f"{master.id}_{day_iso(start_ms // DAY_MS).replace('-', '')}"
        return f"{master.id}_{utc_basic(start_ms)}"

    def _when(self, ev: CalendarEvent, start_ms: int, end_ms: int) -> tuple[dict, dict]:
        if ev.all_day:
            return {"date": day_iso(start_ms // DAY_MS)}, {"date": day_iso(end_ms // DAY_MS)}
        return (
            {"dateTime": local_iso(start_ms, ev.tz), "timeZone": ev.tz},
            {"dateTime": local_iso(end_ms, ev.tz), "timeZone": ev.tz},
        )

    def event_json(
        self, cals: Calendars, ev: CalendarEvent, cal: Calendar, instance_ms: int
    ) -> dict[str, Any]:
        """One event as ``cal``'s owner sees it; ``instance_ms`` >= 0 renders that instance
        of a recurring master."""
        master = cals.events[ev.master] if ev.master >= 0 else None
        event_id = self._instance_id(ev, instance_ms) if instance_ms >= 0 else ev.id
        etag = f'"{3_000_000_000_000_000 + ev.updated_ms * 1000 + ev.sequence}"'
        out: dict[str, Any] = {"kind": "calendar#event", "etag": etag, "id": event_id}
        original: dict[str, Any] | None = None
        recurring_id = None
        if instance_ms >= 0:
            recurring_id, original = ev.id, self._when(ev, instance_ms, instance_ms)[0]
        elif master is not None:
            recurring_id = master.id
            original = self._when(master, ev.original_start_ms, ev.original_start_ms)[0]
        if ev.status == "cancelled":  # deleted events: only a few fields are guaranteed
            out["status"] = "cancelled"
            if recurring_id is not None:
                out["recurringEventId"] = recurring_id
                out["originalStartTime"] = original
            return out
        organizer = cals.calendars[ev.organizer]
        start_ms = instance_ms if instance_ms >= 0 else ev.start_ms
        start, end = self._when(ev, start_ms, start_ms + (ev.end_ms - ev.start_ms))
        person: dict[str, Any] = {"email": organizer.id}
        if organizer.idx == cal.idx:
            person["self"] = True
        out.update(
            status=ev.status,
            htmlLink="https://www.google.com/calendar/event?eid="
            + base64.urlsafe_b64encode(f"{event_id} {cal.id}".encode()).decode().rstrip("="),
            created=iso_ms(ev.created_ms),
            updated=iso_ms(ev.updated_ms),
            summary=ev.summary,
        )
        if ev.description:
            out["description"] = ev.description
        if ev.location:
            out["location"] = ev.location
        out.update(creator=dict(person), organizer=dict(person), start=start, end=end)
        if ev.recurrence and instance_ms < 0:
            out["recurrence"] = list(ev.recurrence)
        if recurring_id is not None:
            out["recurringEventId"] = recurring_id
            out["originalStartTime"] = original
        out["transparency"] = "transparent" if ev.all_day else "opaque"
        out["iCalUID"] = f"{(master or ev).id}@google.com"
        out["sequence"] = ev.sequence
        if ev.attendees:
            attendees = []
            for a in ev.attendees:
                item: dict[str, Any] = {"email": a.email}
                if a.display_name:
                    item["displayName"] = a.display_name
                if a.email == organizer.id:
                    item["organizer"] = True
                if a.email == cal.id:
                    item["self"] = True
                if a.optional:
                    item["optional"] = True
                item["responseStatus"] = a.response
                attendees.append(item)
            out["attendees"] = attendees
            if not ev.all_day:
                out["hangoutLink"] = ev.location or None
        out["reminders"] = {"useDefault": True}
        out["eventType"] = "default"
        if out.get("hangoutLink") is None:
            out.pop("hangoutLink", None)
        kind = malformed_kind(
            self.co.seed,
            "calendar_events",
            ev.idx,
            self.state.faults.google_calendar.malformed_rate,
        )
        if kind == "bad_date":
            out["start"] = {"dateTime": "2026-02-30T25:61:00Z", "timeZone": ev.tz}
        elif kind == "missing_start":
            out["start"] = {}
        return out


def _overlaps(start: int, end: int, time_min: int | None, time_max: int | None) -> bool:
    """timeMin bounds the end (exclusive), timeMax the start (exclusive), as Google does."""
    return (time_min is None or end > time_min) and (time_max is None or start < time_max)


def _flag(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _int(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return None


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _unb64(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
