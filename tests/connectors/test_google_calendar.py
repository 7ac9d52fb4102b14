"""Google Calendar connector: sync tokens, 410 and rate limits on mocked HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import SecretStr

from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.google_calendar import GoogleCalendarClient, GoogleCalendarConnector
from revtops_kernel.connectors.http import RetryPolicy

GONE = {
    "error": {
        "errors": [{"domain": "calendar", "reason": "fullSyncRequired", "message": "gone"}],
        "code": 410,
        "message": "Sync token is no longer valid, a full sync is required.",
    }
}


class FakeCalendar:
    """Two calendars; events pages of two; sync tokens a test can invalidate."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {
            "ann@x.example": [{"id": f"a{i}", "status": "confirmed"} for i in range(3)],
            "bo@x.example": [{"id": "b0", "status": "confirmed"}],
        }
        self.valid_tokens: set[str] = set()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.rate_limit_next = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.requests.append((request.url.path, params))
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            return httpx.Response(
                403, json={"error": {"errors": [{"reason": "userRateLimitExceeded"}], "code": 403}}
            )
        if request.url.path == "/v3/users/me/calendarList":
            return httpx.Response(200, json={"items": [{"id": c} for c in self.events]})
        calendar = request.url.path.split("/")[3]
        calendar = httpx.URL("http://x/" + calendar).path[1:]  # percent-decoded
        items = self.events[calendar]
        assert params["singleEvents"] == "true" and params["showDeleted"] == "true"
        if "syncToken" in params:
            if params["syncToken"] not in self.valid_tokens:
                return httpx.Response(410, json=GONE)
            changed = [e for e in items if e.get("changed")]
            return httpx.Response(200, json={"items": changed, "nextSyncToken": self._token()})
        start = int(params.get("pageToken", "0"))
        page = items[start : start + 2]
        if start + 2 < len(items):
            return httpx.Response(200, json={"items": page, "nextPageToken": str(start + 2)})
        return httpx.Response(200, json={"items": page, "nextSyncToken": self._token()})

    def _token(self) -> str:
        token = f"sync-{len(self.valid_tokens)}"
        self.valid_tokens.add(token)
        return token


def connector(fake: FakeCalendar, sleeps: list[float]) -> GoogleCalendarConnector:
    client = GoogleCalendarClient(
        "google_calendar",
        "https://cal.test/v3",
        StaticToken("google_calendar", SecretStr("ya29.secret")),
        httpx.Client(transport=httpx.MockTransport(fake)),
        retry=RetryPolicy(max_attempts=5, base_delay=0.01),
        sleep=sleeps.append,
    )
    return GoogleCalendarConnector(client)


def read(conn: GoogleCalendarConnector, checkpoint: str | None) -> tuple[list[str], str | None]:
    ids: list[str] = []
    for page in conn.read("events", checkpoint):
        ids.extend(r["event"]["id"] for r in page.records)
        assert all(r["calendar"]["id"] in ("ann@x.example", "bo@x.example") for r in page.records)
        checkpoint = page.checkpoint
    return ids, checkpoint


def test_full_then_by_sync_token_per_calendar() -> None:
    fake, sleeps = FakeCalendar(), []
    ids, checkpoint = read(connector(fake, sleeps), None)
    assert ids == ["a0", "a1", "a2", "b0"]
    positions = json.loads(checkpoint or "")["calendars"]
    assert set(positions) == {"ann@x.example", "bo@x.example"}
    assert all("sync_token" in p for p in positions.values())
    fake.events["ann@x.example"][1].update(changed=True, status="cancelled")
    fake.requests.clear()
    ids, _ = read(connector(fake, sleeps), checkpoint)
    assert ids == ["a1"]
    assert all("pageToken" not in p and "timeMin" not in p for _, p in fake.requests)


def test_a_410_resyncs_only_that_calendar_in_full() -> None:
    fake, sleeps = FakeCalendar(), []
    _, checkpoint = read(connector(fake, sleeps), None)
    positions = json.loads(checkpoint or "")["calendars"]
    fake.valid_tokens.discard(positions["ann@x.example"]["sync_token"])
    conn = connector(fake, sleeps)
    ids, checkpoint = read(conn, checkpoint)
    assert ids == ["a0", "a1", "a2"]  # ann's in full, bo's had nothing new
    assert conn.resynced == ["ann@x.example"]
    assert [(r.calendar_id, r.event_ids) for r in conn.full_reads] == [
        ("ann@x.example", {"a0", "a1", "a2"})
    ]
    assert json.loads(checkpoint or "")["calendars"]["ann@x.example"]["sync_token"] in (
        fake.valid_tokens
    )


def test_a_full_read_resumes_at_its_page_and_rate_limits_are_retried() -> None:
    fake, sleeps = FakeCalendar(), []
    pages = connector(fake, sleeps).read("events", None)
    first = next(pages)  # ann's first page, then the process dies
    assert json.loads(first.checkpoint or "")["calendars"] == {"ann@x.example": {"page_token": "2"}}
    fake.rate_limit_next = 2
    conn = connector(fake, sleeps)
    ids, _ = read(conn, first.checkpoint)
    assert ids == ["a2", "b0"]
    # ann's read was resumed: it did not see the whole calendar; bo's was whole
    assert [r.calendar_id for r in conn.full_reads] == ["bo@x.example"]
    assert conn.stats.rate_limited == 2 and len(sleeps) == 2
