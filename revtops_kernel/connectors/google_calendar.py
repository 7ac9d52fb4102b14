"""Google Calendar v3: every calendar of the account, in full once, then by sync token.

One stream, ``events``; its checkpoint keeps one position per calendar (``calendarList``):

- no entry, or ``{"page_token": ...}``: a full read (``events.list`` with ``singleEvents=true`` so
  recurring events arrive as their instances, and ``showDeleted=true`` so cancelled ones do too),
  resumable at the page it stopped at;
- ``{"sync_token": ...}``: the ``nextSyncToken`` of the last page of the previous read; the next
  read asks only for what changed since (cancellations included). A sync token cannot be combined
  with time bounds, so none are used at all.

A 410 (``fullSyncRequired``, or an expired page token) drops that calendar's position and reads
it again in full; the other calendars keep theirs. Rows land on the same keys, so a resync makes
no duplicates, and what the full read did not return any more is reported in
``full_reads`` so the engine can mark it deleted (no orphans). 403/429 ``rateLimitExceeded``
count as rate limits (the client backs off and retries).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from revtops_kernel.connectors.base import Page, dump_checkpoint, load_checkpoint
from revtops_kernel.connectors.http import (
    CallStats,
    ProviderClient,
    RateBudget,
    TokenSource,
    paginate,
)
from revtops_kernel.errors import ConnectorError
from revtops_kernel.timeutil import iso_z, utcnow

log = logging.getLogger(__name__)

Record = dict[str, Any]

STREAMS: tuple[str, ...] = ("events",)
PAGE_SIZE = 250
CALENDAR_LIST_PAGE_SIZE = 250
REQUESTS_PER_MINUTE = 500  # Google's default quota is 600 per minute per user
RATE_LIMIT_REASONS = ("rateLimitExceeded", "userRateLimitExceeded")


class GoogleCalendarClient(ProviderClient):
    def is_rate_limited(self, response: httpx.Response) -> bool:
        if response.status_code == 429:
            return True
        return response.status_code == 403 and any(r in response.text for r in RATE_LIMIT_REASONS)


@dataclass
class FullRead:
    """A calendar read in full, from its first page, during this run: the event ids it holds."""

    calendar_id: str
    event_ids: set[str] = field(default_factory=set)


class GoogleCalendarConnector:
    provider = "google_calendar"

    def __init__(self, client: ProviderClient) -> None:
        self.client = client
        self.full_reads: list[FullRead] = []
        self.resynced: list[str] = []  # calendars whose sync token was refused (410)

    @classmethod
    def connect(
        cls, base_url: str, tokens: TokenSource, http: httpx.Client
    ) -> GoogleCalendarConnector:
        budgets = {"default": RateBudget(REQUESTS_PER_MINUTE, 60.0)}
        return cls(GoogleCalendarClient("google_calendar", base_url, tokens, http, budgets=budgets))

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def streams(self) -> tuple[str, ...]:
        return STREAMS

    def read(self, stream: str, checkpoint: str | None) -> Iterator[Page]:
        if stream != "events":
            raise ValueError(f"unknown Calendar stream {stream!r}; streams: {', '.join(STREAMS)}")
        state = load_checkpoint(checkpoint) or {}
        positions: dict[str, Any] = dict(state.get("calendars") or {})
        for calendar in self.calendars():
            yield from self._calendar(calendar, positions)

    def calendars(self) -> list[Record]:
        def fetch(token: str | None) -> tuple[list[Record], str | None]:
            params: dict[str, Any] = {"maxResults": CALENDAR_LIST_PAGE_SIZE}
            if token:
                params["pageToken"] = token
            data = self.client.get("/users/me/calendarList", params=params).json()
            return data.get("items") or [], data.get("nextPageToken")

        found: list[Record] = []
        for items in paginate(fetch, provider=self.provider, endpoint="GET calendarList"):
            found.extend(item for item in items if item.get("id"))
        return found

    def _calendar(self, calendar: Record, positions: dict[str, Any]) -> Iterator[Page]:
        calendar_id = str(calendar["id"])
        position = positions.get(calendar_id) or {}
        try:
            yield from self._events(calendar, positions, position)
        except ConnectorError as exc:
            if exc.status != 410:
                raise
            log.warning("google_calendar: %s needs a full sync (%s)", calendar_id, exc)
            self.resynced.append(calendar_id)
            positions.pop(calendar_id, None)
            yield from self._events(calendar, positions, {})

    def _events(
        self, calendar: Record, positions: dict[str, Any], position: dict[str, Any]
    ) -> Iterator[Page]:
        calendar_id = str(calendar["id"])
        path = f"/calendars/{quote(calendar_id, safe='')}/events"
        sync_token = position.get("sync_token")
        full = (
            FullRead(calendar_id) if sync_token is None and not position.get("page_token") else None
        )
        page_token = position.get("page_token")
        while True:
            params: dict[str, Any] = {
                "maxResults": PAGE_SIZE,
                "singleEvents": "true",
                "showDeleted": "true",
            }
            if sync_token:
                params["syncToken"] = sync_token
            if page_token:
                params["pageToken"] = page_token
            data = self.client.get(path, params=params).json()
            observed_at = iso_z(utcnow())
            items = [e for e in data.get("items") or [] if isinstance(e, dict)]
            zone = data.get("timeZone") or calendar.get("timeZone")
            records = [self._envelope(calendar_id, zone, e, observed_at) for e in items]
            if full is not None:
                full.event_ids.update(str(e["id"]) for e in items if e.get("id"))
            next_page = data.get("nextPageToken")
            if next_page:
                if next_page == page_token:
                    raise ConnectorError(
                        self.provider, f"GET {path}", None, "the server repeated the page token"
                    )
                page_token = next_page
                if not sync_token:
                    positions[calendar_id] = {"page_token": next_page}
                yield Page(records, dump_checkpoint({"calendars": positions}))
                continue
            next_sync = data.get("nextSyncToken")
            if next_sync:
                positions[calendar_id] = {"sync_token": next_sync}
            else:
                positions.pop(calendar_id, None)  # no token: read it whole next time
            if full is not None:
                self.full_reads.append(full)
            yield Page(records, dump_checkpoint({"calendars": positions}))
            return

    @staticmethod
    def _envelope(calendar_id: str, zone: Any, event: Record, observed_at: str) -> Record:
        # observed_at: when the page was read. A deleted event comes with its id and status
        # only, no ``updated``: the read time is the only time its deletion can carry.
        return {
            "id": event.get("id"),
            "calendar": {"id": calendar_id, "timeZone": zone},
            "event": event,
            "observed_at": observed_at,
        }
