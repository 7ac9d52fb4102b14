"""Calendar events -> activities and attendees, from the payload shapes of provider-apis.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from revtops_kernel.normalize.base import NormalizeContext, normalize_page
from revtops_kernel.normalize.google_calendar import normalize_event

CTX = NormalizeContext("northwind", "google_calendar")
CALENDAR = {"id": "ann@northwind.example", "timeZone": "America/New_York"}


def envelope(event: dict[str, Any], calendar: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": event.get("id"), "calendar": calendar or CALENDAR, "event": event}


MEETING = {
    "kind": "calendar#event",
    "id": "evt1",
    "status": "confirmed",
    "created": "2026-10-01T12:00:00.000Z",
    "updated": "2026-10-02T08:30:00.000Z",
    "summary": "Acme pricing review",
    "description": "Agenda: pricing",
    "organizer": {"email": "ann@northwind.example", "self": True},
    "start": {"dateTime": "2026-11-03T10:00:00-05:00", "timeZone": "America/New_York"},
    "end": {"dateTime": "2026-11-03T11:00:00-05:00", "timeZone": "America/New_York"},
    "attendees": [
        {
            "email": "ann@northwind.example",
            "organizer": True,
            "self": True,
            "responseStatus": "accepted",
        },
        {"email": "Bo.Chen@Acme.example", "displayName": "Bo Chen", "responseStatus": "tentative"},
        {"email": "someone@gmail.com", "responseStatus": "needsAction"},
        {
            "email": "room-4@resource.calendar.google.com",
            "resource": True,
            "responseStatus": "accepted",
        },
    ],
}


def test_a_meeting_is_a_calendar_event_in_utc_with_its_attendees() -> None:
    rows = normalize_event(envelope(MEETING), CTX)
    (activity,) = rows["activities"]
    assert activity["activity_type"] == "calendar_event"
    assert activity["source_id"] == "evt1"
    assert activity["occurred_at"] == datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    assert activity["ended_at"] == datetime(2026, 11, 3, 16, 0, tzinfo=UTC)
    assert activity["duration_seconds"] == 3600 and activity["is_all_day"] is False
    assert activity["status"] == "confirmed" and activity["deleted_at"] is None
    assert activity["channel"] == "ann@northwind.example"
    assert activity["subject"] == "Acme pricing review" and activity["body"] == "Agenda: pricing"
    people = {p["email"]: p for p in rows["activity_participants"]}
    assert set(people) == {"ann@northwind.example", "bo.chen@acme.example", "someone@gmail.com"}
    assert people["ann@northwind.example"]["role"] == "organizer"
    bo = people["bo.chen@acme.example"]
    assert (bo["role"], bo["display_name"], bo["response_status"]) == (
        "attendee", "Bo Chen", "tentative",
    )  # fmt: skip
    assert bo["source_id"] == "evt1:bo.chen@acme.example"
    assert bo["activity_id"] == activity["id"] and bo["is_internal"] is None


def test_a_time_without_offset_is_read_in_the_events_zone_else_the_calendars() -> None:
    event = {**MEETING, "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "Europe/Paris"},
             "end": {"dateTime": "2026-07-01T10:00:00"}}  # fmt: skip
    (activity,) = normalize_event(envelope(event), CTX)["activities"]
    assert activity["occurred_at"] == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # Paris, CEST
    assert activity["ended_at"] == datetime(2026, 7, 1, 14, 0, tzinfo=UTC)  # New York, EDT


def test_an_all_day_event_is_its_dates_at_midnight_utc() -> None:
    event = {**MEETING, "start": {"date": "2026-11-05"}, "end": {"date": "2026-11-07"}}
    (activity,) = normalize_event(envelope(event), CTX)["activities"]
    assert activity["is_all_day"] is True
    assert activity["occurred_at"] == datetime(2026, 11, 5, tzinfo=UTC)
    assert activity["ended_at"] == datetime(2026, 11, 7, tzinfo=UTC)  # end date is exclusive
    assert activity["duration_seconds"] == 2 * 86_400


def test_a_cancelled_instance_keeps_its_time_and_series_and_is_deleted() -> None:
    cancelled = {
        "id": "series1_20261110T150000Z",
        "status": "cancelled",
        "updated": "2026-11-08T10:00:00Z",
        "recurringEventId": "series1",
        "originalStartTime": {"dateTime": "2026-11-10T15:00:00Z"},
    }
    rows = normalize_event(envelope(cancelled), CTX)
    (activity,) = rows["activities"]
    assert activity["status"] == "cancelled"
    assert activity["deleted_at"] == datetime(2026, 11, 8, 10, 0, tzinfo=UTC)
    assert activity["thread_id"] == "series1"
    assert activity["occurred_at"] == datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    assert rows["activity_participants"] == []


def test_the_organizer_is_added_when_not_an_attendee() -> None:
    event = {**MEETING, "attendees": [{"email": "bo@acme.example"}],
             "organizer": {"email": "carl@northwind.example", "displayName": "Carl"}}  # fmt: skip
    roles = {
        p["email"]: p["role"]
        for p in normalize_event(envelope(event), CTX)["activity_participants"]
    }
    assert roles == {"bo@acme.example": "attendee", "carl@northwind.example": "organizer"}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"status": "confirmed"}, "missing event id"),
        ({"id": "e", "status": "maybe"}, "status is not one of"),
        ({"id": "e", "start": {"dateTime": "tomorrow at 9"}}, "start.dateTime is not a date-time"),
        ({"id": "e", "start": {"date": "2026-13-40"}}, "start.date is not a date"),
        (
            {"id": "e", "start": {"dateTime": "2026-01-01T10:00:00", "timeZone": "Mars/Base"}},
            "start.timeZone is not a time zone",
        ),
        (
            {
                "id": "e",
                "start": {"dateTime": "2026-01-01T10:00:00Z"},
                "end": {"dateTime": "2026-01-01T09:00:00Z"},
            },
            "end is before start",
        ),
        ({"id": "e", "start": {}}, "start has neither dateTime nor date"),
        (
            {"id": "e", "start": {"date": "2026-01-01"}, "attendees": "everyone"},
            "attendees is not a list",
        ),
        (
            {
                "id": "e",
                "start": {"date": "2026-01-01"},
                "attendees": [{"email": "a@b.example", "responseStatus": "yes"}],
            },
            "responseStatus is unknown",
        ),
    ],
)
def test_malformed_events_are_quarantined_with_the_reason(
    event: dict[str, Any], reason: str
) -> None:
    page = normalize_page("events", [envelope(event)], normalize_event, CTX)
    assert page.rows == {}
    (bad,) = page.quarantined
    assert reason in bad.reason
