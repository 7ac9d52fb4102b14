"""The Google Calendar v3 emulation over real HTTP: paging, sync tokens, 410, recurrence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from revtops_sandbox.calendar_data import CONSUMER_DOMAINS
from revtops_sandbox.server import SandboxServer


def calendar_client(server: SandboxServer, token: str | None = None) -> httpx.Client:
    token = server.token_for("google_calendar") if token is None else token
    return httpx.Client(
        base_url=server.google_calendar_base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def gc(sb: SandboxServer) -> Iterator[httpx.Client]:
    with calendar_client(sb) as client:
        yield client


def walk(client: httpx.Client, calendar_id: str, **params: Any) -> tuple[list[dict], str, int]:
    """Every page of events.list: (items, nextSyncToken, pages)."""
    items: list[dict[str, Any]] = []
    token = ""
    pages = 0
    while True:
        query = {**params, **({"pageToken": token} if token else {})}
        r = client.get(f"/calendars/{calendar_id}/events", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert body["kind"] == "calendar#events"
        items += body["items"]
        token = body.get("nextPageToken", "")
        if not token:
            return items, body.get("nextSyncToken", ""), pages
        assert "nextSyncToken" not in body, "nextSyncToken only on the last page"


def test_calendar_list_one_calendar_per_rep_with_paging(
    sb: SandboxServer, gc: httpx.Client
) -> None:
    first = gc.get("/users/me/calendarList", params={"maxResults": 2}).json()
    assert first["kind"] == "calendar#calendarList" and len(first["items"]) == 2
    assert "nextPageToken" in first and "nextSyncToken" not in first
    items = list(first["items"])
    token = first["nextPageToken"]
    while token:
        page = gc.get("/users/me/calendarList", params={"pageToken": token}).json()
        items += page["items"]
        token = page.get("nextPageToken")
        if not token:
            assert page["nextSyncToken"]
    assert [c["id"] for c in items] == [o.email for o in sb.company.owners]
    assert items[0]["primary"] is True and items[0]["accessRole"] == "owner"
    assert all("primary" not in c for c in items[1:])
    assert len({c["timeZone"] for c in items}) > 1, "reps sit in different zones"


def test_full_listing_pages_match_ground_truth(sb: SandboxServer, gc: httpx.Client) -> None:
    cals = sb.company.calendars
    cal = cals.calendars[0]
    items, sync_token, pages = walk(gc, cal.id, maxResults=40)
    assert pages > 1 and sync_token
    live = [
        cals.events[i] for i in cals.by_calendar[cal.idx] if cals.events[i].status != "cancelled"
    ]
    assert sorted(i["id"] for i in items) == sorted(e.id for e in live)
    assert not any(i["status"] == "cancelled" for i in items)
    # primary answers the same
    again, _, _ = walk(gc, "primary", maxResults=2500)
    assert [i["id"] for i in again] == [i["id"] for i in items]
    # masters carry RRULEs, all-day events dates, timed events offsets and a zone
    master = next(i for i in items if "recurrence" in i)
    assert master["recurrence"][0].startswith("RRULE:FREQ=WEEKLY")
    all_day = next(i for i in items if "date" in i["start"])
    assert "dateTime" not in all_day["start"] and all_day["end"]["date"] > all_day["start"]["date"]
    timed = next(i for i in items if "dateTime" in i["start"] and "recurrence" not in i)
    parsed = datetime.fromisoformat(timed["start"]["dateTime"])
    assert parsed.utcoffset() is not None and timed["start"]["timeZone"]
    assert parsed.utcoffset() == parsed.astimezone(ZoneInfo(timed["start"]["timeZone"])).utcoffset()
    assert timed["organizer"]["email"] == cal.id and timed["organizer"]["self"] is True


def test_attendees_mix_contacts_consumers_and_unknowns(sb: SandboxServer) -> None:
    co = sb.company
    pairs = co.calendars.attendees()
    kinds = {a.kind for _, a in pairs}
    assert {"owner", "contact", "domain", "consumer", "unknown"} <= kinds
    contact_emails = {c.email: c for c in co.contacts}
    for _, a in pairs:
        if a.kind == "contact":
            assert contact_emails[a.email].account == a.account
        elif a.kind == "domain":
            assert a.email.split("@")[1] == co.accounts[a.account].domain
            assert a.email not in contact_emails
        elif a.kind == "consumer":
            assert a.email.split("@")[1] in CONSUMER_DOMAINS and a.account == -1
        elif a.kind == "owner":
            assert a.email.endswith("@" + co.seller_domain)
    meetings = co.calendars.meetings()
    assert meetings and all(e.account >= 0 for e in meetings if e.activity >= 0)


def test_single_events_expand_recurring_instances(sb: SandboxServer, gc: httpx.Client) -> None:
    cals = sb.company.calendars
    master = next(e for e in cals.events if e.recurrence and e.exceptions)
    cal = cals.calendars[master.organizer]
    expanded, _, _ = walk(gc, cal.id, singleEvents="true", maxResults=2500)
    instances = [i for i in expanded if i.get("recurringEventId") == master.id]
    # every instance but the cancelled one; the moved one at its new time
    assert len(instances) == master.count - 1
    assert all("recurrence" not in i and "originalStartTime" in i for i in instances)
    ids = {i["id"] for i in instances}
    assert len(ids) == len(instances) and all(i.startswith(master.id + "_") for i in ids)
    moved = [i for i in instances if i["start"] != i["originalStartTime"]]
    assert len(moved) == 1
    # local wall-clock time stays fixed across daylight saving changes
    hours = {datetime.fromisoformat(i["originalStartTime"]["dateTime"]).hour for i in instances}
    assert len(hours) == 1
    with_deleted, _, _ = walk(gc, cal.id, singleEvents="true", showDeleted="true", maxResults=2500)
    cancelled = [
        i
        for i in with_deleted
        if i.get("recurringEventId") == master.id and i["status"] == "cancelled"
    ]
    assert len(cancelled) == 1 and set(cancelled[0]) <= {
        "kind",
        "etag",
        "id",
        "status",
        "recurringEventId",
        "originalStartTime",
    }
    # without singleEvents: the master plus its exceptions as separate events
    plain, _, _ = walk(gc, cal.id, maxResults=2500)
    assert sum(1 for i in plain if i["id"] == master.id) == 1
    assert sum(1 for i in plain if i.get("recurringEventId") == master.id) == 1  # the moved one


def test_time_window_and_order_by_start_time(sb: SandboxServer, gc: httpx.Client) -> None:
    cal = sb.company.calendars.calendars[0]
    params = {
        "singleEvents": "true",
        "orderBy": "startTime",
        "maxResults": 7,
        "timeMin": "2026-09-01T00:00:00-04:00",
        "timeMax": "2026-11-01T00:00:00Z",
    }
    items, sync_token, _ = walk(gc, cal.id, **params)
    assert items and sync_token == "", "no nextSyncToken when ordered by start time"
    starts = [_start(i) for i in items]
    assert starts == sorted(starts)
    lo = datetime.fromisoformat("2026-09-01T00:00:00-04:00")
    hi = datetime.fromisoformat("2026-11-01T00:00:00+00:00")
    assert all(_end(i) > lo and _start(i) < hi for i in items)
    bad = gc.get(f"/calendars/{cal.id}/events", params={"orderBy": "startTime"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400
    naive = gc.get(f"/calendars/{cal.id}/events", params={"timeMin": "2026-09-01T00:00:00"})
    assert naive.status_code == 400


def _start(item: dict[str, Any]) -> datetime:
    s = item["start"]
    return datetime.fromisoformat(s.get("dateTime") or s["date"] + "T00:00:00+00:00")


def _end(item: dict[str, Any]) -> datetime:
    s = item["end"]
    return datetime.fromisoformat(s.get("dateTime") or s["date"] + "T00:00:00+00:00")


def test_sync_token_returns_changes_then_410_after_expiry(fresh: Any) -> None:
    sb = fresh()
    cals = sb.company.calendars
    with calendar_client(sb) as gc:
        tokens = {}
        for cal in cals.calendars:
            _, tokens[cal.id], _ = walk(gc, cal.id, maxResults=100)
        changes = sb.mutate_calendar(moved=4, cancelled=3, new=3, seed=5)
        assert len(changes.events_moved) == 4 and len(changes.events_cancelled) == 3
        seen: dict[str, dict[str, Any]] = {}
        for cal in cals.calendars:
            items, tokens[cal.id], _ = walk(gc, cal.id, syncToken=tokens[cal.id], maxResults=2)
            for i in items:
                seen[i["id"]] = i
        changed = {
            e for _, e in changes.events_moved + changes.events_cancelled + changes.events_new
        }
        assert changed <= set(seen)
        for _, eid in changes.events_cancelled:
            assert seen[eid]["status"] == "cancelled"
            assert "summary" not in seen[eid]
        for _, eid in changes.events_new + changes.events_moved:
            assert seen[eid]["status"] != "cancelled" and seen[eid]["attendees"]
        # nothing new: an incremental sync is empty but still hands a token on
        cal = cals.calendars[0]
        items, token, _ = walk(gc, cal.id, syncToken=tokens[cal.id])
        assert items == [] and token
        # syncToken refuses time filters
        mixed = gc.get(
            f"/calendars/{cal.id}/events",
            params={"syncToken": token, "timeMin": "2026-01-01T00:00:00Z"},
        )
        assert mixed.status_code == 400
        # expired tokens: 410 fullSyncRequired, with Google's body
        sb.expire_calendar_sync_tokens()
        gone = gc.get(f"/calendars/{cal.id}/events", params={"syncToken": token})
        assert gone.status_code == 410
        err = gone.json()["error"]
        assert err["code"] == 410 and err["errors"][0]["reason"] == "fullSyncRequired"
        assert err["errors"][0]["domain"] == "calendar"
        garbage = gc.get(f"/calendars/{cal.id}/events", params={"syncToken": "nonsense"})
        assert garbage.status_code == 410
        # a full resync gives a working token again
        _, fresh_token, _ = walk(gc, cal.id)
        assert walk(gc, cal.id, syncToken=fresh_token)[0] == []


def test_errors_and_quota(fresh: Any) -> None:
    sb = fresh()
    with calendar_client(sb, token="ya29.wrong") as bad:
        r = bad.get("/users/me/calendarList")
        assert r.status_code == 401 and r.json()["error"]["errors"][0]["reason"] == "authError"
    sb.faults.google_calendar.rate_limits = True
    sb.faults.google_calendar.per_window_limit = 3
    with calendar_client(sb) as gc:
        codes = [gc.get("/users/me/calendarList").status_code for _ in range(10)]
        assert codes[:3] == [200] * 3 and set(codes[3:]) <= {403, 429}
        limited = gc.get("/users/me/calendarList").json()["error"]
        assert limited["errors"][0]["reason"] in ("rateLimitExceeded", "userRateLimitExceeded")
        sb.faults.google_calendar.rate_limits = False
        assert gc.get("/calendars/nobody@nowhere.example/events").status_code == 404
    assert sb.stats.rate_limited("google_calendar") == 8
