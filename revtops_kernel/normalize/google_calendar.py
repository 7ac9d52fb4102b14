"""Google Calendar events -> activities (``calendar_event``) plus attendees (pure functions).

The connector hands each event over with the calendar it was read from:
``{"id": <event id>, "calendar": {"id": "ann@northwind.example", "timeZone": "Europe/Paris"},
"event": {...the event exactly as events.list returned it...}}``.

Decisions:

- **Type ``calendar_event``, not ``meeting``.** ``meeting`` is a meeting someone logged in the CRM;
  the calendar's record of the same meeting is another record from another system. Two types
  keep "meetings logged in HubSpot" and "what was on the calendars" apart (no double count when
  both exist), and a calendar also holds blocks that are not meetings (focus time, all-day
  holidays). Questions about meetings that happened read ``calendar_event`` rows with external
  participants (``revtops_kernel.resolve`` documents the query).
- **Source id = the event id**, not calendar + event: an invitation has the same event id on
  every attendee's calendar, so a meeting on five reps' calendars is one activity. ``channel``
  is the calendar it was last read from.
- **Times in UTC.** A ``dateTime`` with an offset is converted; one without is read in the
  event's ``timeZone``, else the calendar's. **All-day events** (``{"date": ...}``) are dates, not
  instants: ``occurred_at`` is midnight UTC of the start date and ``ended_at`` midnight UTC of
  the (exclusive) end date, ``is_all_day`` true, so the stored UTC date is the calendar date
  whatever the calendar's zone.
- **Cancelled** (Google's deletion, including one cancelled instance of a recurring event):
  ``status = 'cancelled'`` and ``deleted_at`` = the event's ``updated`` time, so current-data
  queries (``deleted_at IS NULL``) drop it and the status says why. Deletion stubs carry only
  ``id`` and ``status`` (and a cancelled instance its ``recurringEventId`` and
  ``originalStartTime``, which keeps its time): their ``updated_at``/``deleted_at`` are the time
  the sync read them (the connector's ``observed_at``), newer than any stored version, so the
  upsert lets the stub replace the live row. A full re-read stamps them again.
- **Recurring instances** (``singleEvents=true``) are one activity each, ``thread_id`` =
  ``recurringEventId`` groups the series.
- **Attendees** -> activity_participants, source id ``"{event id}:{email}"``: email (lowercase),
  display name, role ``organizer`` or ``attendee``, Google's ``responseStatus``. The organizer is
  added when not among the attendees. Rooms and other resources are not people: skipped.
  ``is_internal`` and the matches are set by identity resolution after the sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from revtops_kernel.normalize.base import (
    NormalizeContext,
    RecordNormalizer,
    RecordRejected,
    Row,
    Rows,
)
from revtops_kernel.normalize.values import clean_email, is_object, parse_time
from revtops_kernel.timeutil import to_utc

ACTIVITY_TYPE = "calendar_event"
STATUSES = frozenset({"confirmed", "tentative", "cancelled"})
RESPONSE_STATUSES = frozenset({"needsAction", "declined", "tentative", "accepted"})


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not is_object(value):
        raise RecordRejected(f"{field} is not an object but {type(value).__name__}")
    return value


def _zone(name: Any, field: str) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise RecordRejected(f"{field} is not a time zone: {name!r}") from None


def event_time(
    value: Any, field: str, calendar_zone: ZoneInfo | None
) -> tuple[datetime | None, bool | None]:
    """(the UTC instant, is it all-day) of an event's ``start``/``end``/``originalStartTime``."""
    if value is None:
        return None, None
    when = _object(value, field)
    if when.get("dateTime"):
        text = when["dateTime"]
        if not isinstance(text, str):
            raise RecordRejected(f"{field}.dateTime is not a string: {text!r}")
        zone = _zone(when.get("timeZone"), f"{field}.timeZone") or calendar_zone or UTC
        try:
            return to_utc(text, assume_tz=zone), False
        except ValueError:
            raise RecordRejected(f"{field}.dateTime is not a date-time: {text!r}") from None
    if when.get("date"):
        try:
            day = date.fromisoformat(str(when["date"]))
        except ValueError:
            raise RecordRejected(f"{field}.date is not a date: {when['date']!r}") from None
        return datetime.combine(day, time(), UTC), True
    return None, None


def normalize_event(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    envelope = _object(record, "record")
    event = _object(envelope.get("event"), "event")
    calendar = _object(envelope.get("calendar") or {}, "calendar")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise RecordRejected("missing event id")
    status = event.get("status") or "confirmed"
    if status not in STATUSES:
        raise RecordRejected(f"status is not one of {sorted(STATUSES)}: {status!r}")
    cancelled = status == "cancelled"
    calendar_zone = _zone(calendar.get("timeZone"), "calendar.timeZone")
    start, all_day = event_time(event.get("start"), "start", calendar_zone)
    end, _ = event_time(event.get("end"), "end", calendar_zone)
    if start is None:
        start, all_day = event_time(
            event.get("originalStartTime"), "originalStartTime", calendar_zone
        )
    if start is None and not cancelled:
        raise RecordRejected(f"start has neither dateTime nor date: {event.get('start')!r}")
    if start is not None and end is not None and end < start:
        raise RecordRejected(f"end is before start: {event.get('end')!r} < {event.get('start')!r}")
    updated_at = parse_time(event.get("updated"), "updated")
    if updated_at is None and cancelled:
        # Google's deletion stubs carry no ``updated``: the time the sync saw it is the
        # deletion's time, and (newer than any stored version) lets the stub replace it.
        updated_at = parse_time(envelope.get("observed_at"), "observed_at")
    row = ctx.base_row("activities", event_id)
    row.update(
        activity_type=ACTIVITY_TYPE,
        subject=event.get("summary") or None,
        body=event.get("description") or None,
        occurred_at=start,
        ended_at=end,
        is_all_day=all_day,
        duration_seconds=int((end - start).total_seconds()) if start and end else None,
        direction=None,
        status=status,
        owner_id=None,
        deal_id=None,
        account_id=None,
        contact_id=None,
        channel=calendar.get("id") or None,
        thread_id=event.get("recurringEventId") or None,
        created_at=parse_time(event.get("created"), "created"),
        updated_at=updated_at,
        deleted_at=updated_at if cancelled else None,
        raw=dict(event),
    )
    return {"activities": [row], "activity_participants": _attendees(row, event, ctx)}


def _attendees(activity: Row, event: Mapping[str, Any], ctx: NormalizeContext) -> list[Row]:
    attendees = event.get("attendees") or []
    if not isinstance(attendees, list):
        raise RecordRejected("attendees is not a list")
    people: dict[str, Row] = {}
    for index, entry in enumerate(attendees):
        person = _object(entry, f"attendees[{index}]")
        if person.get("resource") is True:
            continue  # a room or a projector
        email = clean_email(person.get("email"))
        if email is None or email in people:
            continue
        response = person.get("responseStatus")
        if response is not None and response not in RESPONSE_STATUSES:
            raise RecordRejected(f"attendees[{index}].responseStatus is unknown: {response!r}")
        role = "organizer" if person.get("organizer") is True else "attendee"
        people[email] = _participant(
            activity, ctx, email, person.get("displayName"), role, response
        )
    organizer = event.get("organizer")
    if organizer:
        organizer_email = clean_email(_object(organizer, "organizer").get("email"))
        if organizer_email is not None and organizer_email not in people:
            people[organizer_email] = _participant(
                activity, ctx, organizer_email, organizer.get("displayName"), "organizer", None
            )
    return list(people.values())


def _participant(
    activity: Row,
    ctx: NormalizeContext,
    email: str,
    name: Any,
    role: str,
    response: Any,
) -> Row:
    row = ctx.base_row("activity_participants", f"{activity['source_id']}:{email}")
    row.update(
        activity_id=activity["id"],
        email=email,
        display_name=name if isinstance(name, str) and name else None,
        role=role,
        response_status=response,
        is_internal=None,
        contact_id=None,
        account_id=None,
        owner_id=None,
        created_at=activity["created_at"],
        updated_at=activity["updated_at"],
        deleted_at=activity["deleted_at"],
        raw=None,
    )
    return row


NORMALIZERS: dict[str, RecordNormalizer] = {"events": normalize_event}
