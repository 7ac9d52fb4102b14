"""HubSpot CRM v3: owners, deal pipelines and the CRM objects, in full and then incrementally.

An object stream's checkpoint moves through two phases:

- ``list``: the first (or a full-refresh) read walks the list endpoint, 100 records a page with
  their associations inline (no per-record calls), then the archived records. The checkpoint
  keeps the ``after`` cursor, so a crash resumes mid-listing.
- ``search``: later reads ask the search endpoint for records whose last-modified property is
  ``>=`` the last value seen, ascending. Search stops at 10,000 results per query, so a long run
  of changes is read in windows, each restarting from the last value seen before the cap.
  ``>=`` re-reads the records that share the boundary timestamp instead of skipping them; the
  store's upsert makes the re-read a no-op. Search returns no associations: they come from the
  v4 batch association endpoint, up to 1,000 records a call. Archived records never appear in
  search; the archived listing (``archived=true``) marks them deleted.

Deals are read with their stage, close-date and amount history
(``propertiesWithHistory=dealstage,closedate,amount``): list pages then
hold 50 records (HubSpot's limit with history), and search results, which cannot carry it,
get it from ``POST /crm/v3/objects/deals/batch/read``, 50 ids a call. Every read of a deal
therefore brings its whole stage, close-date and amount history and its whole contact list.
A checkpoint names the properties read with history; one written with fewer (an upgrade)
lists the object again once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from revtops_kernel.connectors.base import Page, dump_checkpoint, load_checkpoint
from revtops_kernel.connectors.http import (
    CallStats,
    ProviderClient,
    RateBudget,
    TokenSource,
    paginate,
)
from revtops_kernel.connectors.hubspot_streams import (
    ASSOCIATION_BATCH_SIZE,
    BUDGET_SHARE,
    HISTORY_PAGE_SIZE,
    LIST_PAGE_SIZE,
    OBJECT_STREAM_BY_NAME,
    REQUESTS_PER_10_SECONDS,
    SEARCH_INDEX_LAG_MS,
    SEARCH_PAGE_SIZE,
    SEARCH_RESULT_CAP,
    SEARCHES_PER_SECOND,
    STREAMS,
    ObjectStream,
)
from revtops_kernel.errors import ConnectorError
from revtops_kernel.timeutil import to_epoch_ms, to_utc, utcnow

log = logging.getLogger(__name__)

Record = dict[str, Any]


def hubspot_budgets() -> dict[str, RateBudget]:
    return {
        "default": RateBudget(REQUESTS_PER_10_SECONDS, 10.0),
        "search": RateBudget(SEARCHES_PER_SECOND, 1.0),
    }


class HubSpotClient(ProviderClient):
    """Follows the limit HubSpot announces on every response (it differs by plan and app)."""

    def observe(self, response: httpx.Response) -> None:
        budget = self.budgets.get("default")
        limit = response.headers.get("X-HubSpot-RateLimit-Max")
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if budget is None or not limit or not interval:
            return
        try:
            window, announced = int(interval) / 1000, int(limit)
        except ValueError:
            return
        target = max(1, int(announced * BUDGET_SHARE))  # leave room for the account's others
        if (target, window) != (budget.limit, budget.window):
            log.info("hubspot: %d requests per %gs announced; budget %d", announced, window, target)
            budget.resize(target, window)


class HubSpotConnector:
    provider = "hubspot"

    def __init__(self, client: ProviderClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, base_url: str, tokens: TokenSource, http: Any) -> HubSpotConnector:
        return cls(HubSpotClient("hubspot", base_url, tokens, http, budgets=hubspot_budgets()))

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def streams(self) -> tuple[str, ...]:
        return STREAMS

    def read(self, stream: str, checkpoint: str | None) -> Iterator[Page]:
        if stream == "owners":
            yield from self._owners()
        elif stream == "pipelines":
            yield Page(self._pipelines(), None)
        elif stream in OBJECT_STREAM_BY_NAME:
            yield from self._objects(OBJECT_STREAM_BY_NAME[stream], load_checkpoint(checkpoint))
        else:
            raise ValueError(f"unknown HubSpot stream {stream!r}; streams: {', '.join(STREAMS)}")

    # --- small streams, read whole every time ---------------------------------------------------
    def _owners(self) -> Iterator[Page]:
        for archived in ("false", "true"):
            for records in self._list_pages("/crm/v3/owners", {"archived": archived}):
                yield Page(records, None)

    def _pipelines(self) -> list[Record]:
        results: list[Record] = self.client.get("/crm/v3/pipelines/deals").json()["results"]
        return results

    # --- CRM objects ------------------------------------------------------------------------
    def _objects(self, stream: ObjectStream, state: dict[str, Any] | None) -> Iterator[Page]:
        if stream.history and state is not None and not _same_history(stream, state):
            # A cursor from before these histories were asked for (none, or only dealstage):
            # list once more, with them, so every record gets its history (a one-time
            # backfill after an upgrade).
            log.info("hubspot %s: listing again to read %s history", stream.name, stream.history)
            state = None
        if state is None or state.get("phase") != "search":
            yield from self._full_listing(stream, state or {})
        else:
            yield from self._changes_since(stream, int(state["since_ms"]))

    def _full_listing(self, stream: ObjectStream, state: dict[str, Any]) -> Iterator[Page]:
        started_ms = int(state.get("started_ms") or to_epoch_ms(utcnow()))
        path = f"/crm/v3/objects/{stream.object_type}"
        params = _list_params(stream, archived=False)
        for records, next_after in self._list_pages_with_cursor(path, params, state.get("after")):
            position = {"phase": "list", "started_ms": started_ms, "after": next_after}
            yield Page(records, _checkpoint(stream, position) if next_after else None)
        since = started_ms - SEARCH_INDEX_LAG_MS
        archived = list(self._archived(stream, since_ms=None))
        yield Page(archived, _checkpoint(stream, {"phase": "search", "since_ms": since}))

    def _changes_since(self, stream: ObjectStream, since_ms: int) -> Iterator[Page]:
        started_ms = to_epoch_ms(utcnow())
        window_start = since_ms
        last_seen = since_ms
        after = 0
        while True:
            data = self._search(stream, window_start, after)
            records = data.get("results", [])
            if records:
                self._attach_associations(stream, records)
                self._attach_history(stream, records)
                last_seen = max(last_seen, *(self._modified_ms(stream, r) for r in records))
            next_after = (data.get("paging") or {}).get("next", {}).get("after")
            yield Page(records, _checkpoint(stream, {"phase": "search", "since_ms": last_seen}))
            if not next_after:
                break
            after = int(next_after)
            if after + SEARCH_PAGE_SIZE > SEARCH_RESULT_CAP:
                if last_seen == window_start:
                    raise ConnectorError(
                        "hubspot",
                        f"POST /crm/v3/objects/{stream.object_type}/search",
                        None,
                        f"more than {SEARCH_RESULT_CAP} records share the modification time "
                        f"{last_seen}; run a full refresh of {stream.name}",
                    )
                window_start, after = last_seen, 0  # a new query, starting where we are
        archived = list(self._archived(stream, since_ms=min(since_ms, started_ms)))
        if archived:
            yield Page(archived, _checkpoint(stream, {"phase": "search", "since_ms": last_seen}))

    def _search(self, stream: ObjectStream, since_ms: int, after: int) -> dict[str, Any]:
        body = {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": stream.modified_property,
                            "operator": "GTE",
                            "value": str(since_ms),
                        }
                    ]
                }
            ],
            "sorts": [{"propertyName": stream.modified_property, "direction": "ASCENDING"}],
            "properties": list(stream.properties),
            "limit": SEARCH_PAGE_SIZE,
            "after": str(after),
        }
        response = self.client.post(
            f"/crm/v3/objects/{stream.object_type}/search", json=body, budgets=("search",)
        )
        result: dict[str, Any] = response.json()
        return result

    def _archived(self, stream: ObjectStream, since_ms: int | None) -> Iterator[Record]:
        params = _list_params(stream, archived=True)
        for records in self._list_pages(f"/crm/v3/objects/{stream.object_type}", params):
            for record in records:
                archived_at = record.get("archivedAt")
                if (
                    since_ms is None
                    or archived_at is None
                    or (to_epoch_ms(to_utc(archived_at)) >= since_ms)
                ):
                    yield record

    def _modified_ms(self, stream: ObjectStream, record: Record) -> int:
        value = (record.get("properties") or {}).get(stream.modified_property)
        if value is None:
            value = record.get("updatedAt")
        if value is None:
            return 0
        text = str(value)
        return int(text) if text.isdigit() else to_epoch_ms(to_utc(text))

    def _attach_associations(self, stream: ObjectStream, records: Sequence[Record]) -> None:
        """Give search results the list endpoint's ``associations`` shape."""
        by_id = {str(r["id"]): r for r in records if "id" in r}
        for target in stream.associations:
            ids = list(by_id)
            for start in range(0, len(ids), ASSOCIATION_BATCH_SIZE):
                chunk = ids[start : start + ASSOCIATION_BATCH_SIZE]
                response = self.client.post(
                    f"/crm/v4/associations/{stream.object_type}/{target}/batch/read",
                    json={"inputs": [{"id": i} for i in chunk]},
                )
                for result in response.json().get("results", []):
                    record = by_id.get(str(result.get("from", {}).get("id")))
                    links = [
                        {"id": str(link["toObjectId"]), "type": _type_name(stream, target)}
                        for link in result.get("to", [])
                    ]
                    if record is not None and links:
                        record.setdefault("associations", {})[target] = {"results": links}

    def _attach_history(self, stream: ObjectStream, records: Sequence[Record]) -> None:
        """Give search results the list endpoint's ``propertiesWithHistory`` (search cannot
        return it): a batch read by id, 50 records a call."""
        if not stream.history:
            return
        by_id = {str(r["id"]): r for r in records if "id" in r}
        ids = list(by_id)
        path = f"/crm/v3/objects/{stream.object_type}/batch/read"
        for start in range(0, len(ids), HISTORY_PAGE_SIZE):
            chunk = ids[start : start + HISTORY_PAGE_SIZE]
            body = {
                "inputs": [{"id": i} for i in chunk],
                "properties": [stream.modified_property],
                "propertiesWithHistory": list(stream.history),
            }
            # A record archived since the search answered is missing (207); the archived
            # listing that ends the read marks it deleted.
            for result in self.client.post(path, json=body).json().get("results", []):
                record = by_id.get(str(result.get("id")))
                if record is not None and "propertiesWithHistory" in result:
                    record["propertiesWithHistory"] = result["propertiesWithHistory"]

    # --- list pagination ---------------------------------------------------------------------
    def _list_pages(self, path: str, params: dict[str, Any]) -> Iterator[list[Record]]:
        for records, _ in self._list_pages_with_cursor(path, params, None):
            yield records

    def _list_pages_with_cursor(
        self, path: str, params: dict[str, Any], start: str | None
    ) -> Iterator[tuple[list[Record], str | None]]:
        def fetch(after: str | None) -> tuple[tuple[list[Record], str | None], str | None]:
            query = {"limit": LIST_PAGE_SIZE, **params}  # params may ask for fewer
            if after:
                query["after"] = after
            data = self.client.get(path, params=query).json()
            next_after = (data.get("paging") or {}).get("next", {}).get("after")
            return (data.get("results", []), next_after), next_after

        yield from paginate(fetch, provider="hubspot", endpoint=f"GET {path}", start=start)


def _checkpoint(stream: ObjectStream, position: dict[str, Any]) -> str:
    """A position of ``stream``; a stream read with history names the properties (see
    ``_objects``)."""
    return dump_checkpoint(
        {**position, "history": list(stream.history)} if stream.history else position
    )


def _same_history(stream: ObjectStream, state: dict[str, Any]) -> bool:
    """Whether ``state`` was read with the stream's history properties (``True``: an older
    checkpoint's mark, written when only ``dealstage`` was read with history)."""
    recorded = state.get("history")
    return isinstance(recorded, list) and sorted(recorded) == sorted(stream.history)


def _list_params(stream: ObjectStream, *, archived: bool) -> dict[str, Any]:
    """Query of a list walk: a full page, the stream's properties, associations and
    properties with history."""
    params: dict[str, Any] = {
        "limit": stream.list_page_size,
        "properties": ",".join(stream.properties),
        "archived": "true" if archived else "false",
    }
    if stream.associations:
        params["associations"] = ",".join(stream.associations)
    if stream.history:
        params["propertiesWithHistory"] = ",".join(stream.history)
    return params


def _type_name(stream: ObjectStream, target: str) -> str:
    singular = {"companies": "company", "contacts": "contact", "deals": "deal"}
    return f"{stream.object_type.rstrip('s')}_to_{singular.get(target, target)}"
