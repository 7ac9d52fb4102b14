"""Salesforce REST: SOQL over ``queryAll`` by ``SystemModstamp``, following ``nextRecordsUrl``.

Each object is read with ``WHERE SystemModstamp >= <last seen> ORDER BY SystemModstamp`` (no
WHERE on the first read). ``>=`` re-reads the records that share the boundary timestamp rather
than skipping any; the upsert makes that a no-op. ``queryAll`` includes deleted records
(``IsDeleted = true``), which become soft deletes. OpportunityStage is small and read whole
every time (deals need it to know order, probability, closed and won). OpportunityHistory
(stage history; its rows are never edited, so SystemModstamp is their creation time) and
OpportunityContactRole (deal-contact links; a removed link comes back with ``IsDeleted``) are
incremental like the others. A checkpoint names the field list it was read with: when an
upgrade adds fields (``LastStageChangeDate``), the object is read once more from the start.

``nextRecordsUrl`` is a path on the instance; the client refuses one on any other origin (a
misconfigured instance, a proxy or a forged answer must not collect the token). With a Nango
connection, the instance URL Nango reports (https, checked) is the connection's origin.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from revtops_kernel.connectors.base import Page, dump_checkpoint, load_checkpoint
from revtops_kernel.connectors.credentials import NangoToken
from revtops_kernel.connectors.http import (
    CallStats,
    ProviderClient,
    RateBudget,
    TokenSource,
    paginate,
)
from revtops_kernel.timeutil import iso_z, to_utc

log = logging.getLogger(__name__)

API_VERSION = "v59.0"
# Salesforce counts a daily allowance, not a rate; stay polite on bursts anyway.
REQUESTS_PER_10_SECONDS = 200


@dataclass(frozen=True)
class SObjectStream:
    name: str
    fields: tuple[str, ...]
    incremental: bool = True

    @property
    def fingerprint(self) -> str:
        """Names the field list in a checkpoint: another list means reading again."""
        return hashlib.sha256(",".join(self.fields).encode()).hexdigest()[:12]


_COMMON = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")

STREAMS_BY_NAME = {
    s.name: s
    for s in (
        SObjectStream(
            "User",
            (
                "Id",
                "Name",
                "FirstName",
                "LastName",
                "Email",
                "Username",
                "IsActive",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
            ),
        ),
        SObjectStream(
            "OpportunityStage",
            (
                "Id",
                "ApiName",
                "MasterLabel",
                "DefaultProbability",
                "ForecastCategory",
                "ForecastCategoryName",
                "IsActive",
                "IsClosed",
                "IsWon",
                "SortOrder",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
            ),
            incremental=False,
        ),
        SObjectStream(
            "Account",
            (
                *_COMMON,
                "Name",
                "Industry",
                "Type",
                "Website",
                "OwnerId",
                "NumberOfEmployees",
                "AnnualRevenue",
                "BillingCity",
                "BillingCountry",
            ),
        ),
        SObjectStream(
            "Contact",
            (*_COMMON, "FirstName", "LastName", "Email", "Title", "Phone", "AccountId", "OwnerId"),
        ),
        SObjectStream(
            "Opportunity",
            (
                *_COMMON,
                "Name",
                "Amount",
                "StageName",
                "CloseDate",
                "IsClosed",
                "IsWon",
                "Probability",
                "ForecastCategoryName",
                "Type",
                "LeadSource",
                "OwnerId",
                "AccountId",
                "LastStageChangeDate",
            ),
        ),
        SObjectStream(
            "OpportunityHistory",
            (
                "Id",
                "IsDeleted",
                "OpportunityId",
                "StageName",
                "Amount",
                "Probability",
                "ForecastCategory",
                "CloseDate",
                "CreatedDate",
                "SystemModstamp",
            ),
        ),
        SObjectStream(
            "OpportunityContactRole",
            (*_COMMON, "OpportunityId", "ContactId", "Role", "IsPrimary"),
        ),
        SObjectStream(
            "Task",
            (
                *_COMMON,
                "Subject",
                "Description",
                "ActivityDate",
                "Status",
                "TaskSubtype",
                "CallType",
                "CallDurationInSeconds",
                "WhoId",
                "WhatId",
                "AccountId",
                "OwnerId",
            ),
        ),
        SObjectStream(
            "Event",
            (
                *_COMMON,
                "Subject",
                "Description",
                "StartDateTime",
                "EndDateTime",
                "ActivityDateTime",
                "DurationInMinutes",
                "IsAllDayEvent",
                "Location",
                "WhoId",
                "WhatId",
                "AccountId",
                "OwnerId",
            ),
        ),
    )
}
STREAMS: tuple[str, ...] = tuple(STREAMS_BY_NAME)


class SalesforceClient(ProviderClient):
    def is_rate_limited(self, response: httpx.Response) -> bool:
        # REQUEST_LIMIT_EXCEEDED is a 403 with an error array, not a 429.
        return response.status_code == 429 or (
            response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in response.text
        )


class SalesforceConnector:
    provider = "salesforce"

    def __init__(self, client: ProviderClient, *, api_version: str = API_VERSION) -> None:
        self.client = client
        self.api_version = api_version

    @classmethod
    def connect(cls, instance_url: str, tokens: TokenSource, http: Any) -> SalesforceConnector:
        """``instance_url`` from settings, unless a Nango connection reports its own (each
        connected org has its instance; Nango's is checked to be https)."""
        if isinstance(tokens, NangoToken):
            instance_url = tokens.instance_url() or instance_url
        budgets = {"default": RateBudget(REQUESTS_PER_10_SECONDS, 10.0)}
        return cls(SalesforceClient("salesforce", instance_url, tokens, http, budgets=budgets))

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def streams(self) -> tuple[str, ...]:
        return STREAMS

    def read(self, stream: str, checkpoint: str | None) -> Iterator[Page]:
        spec = STREAMS_BY_NAME.get(stream)
        if spec is None:
            raise ValueError(f"unknown Salesforce stream {stream!r}; streams: {', '.join(STREAMS)}")
        state = load_checkpoint(checkpoint) if spec.incremental else None
        if state and state.get("fields") != spec.fingerprint:
            # Written for another field list (an upgrade added fields): read the object
            # again from the start, so every record gets the new fields once.
            log.info("salesforce %s: fields changed since the last sync; reading it all", stream)
            state = None
        since = state.get("since") if state else None
        last_seen: str | None = since
        for records in self._query(soql(spec, since)):
            if spec.incremental:
                stamps = [r["SystemModstamp"] for r in records if r.get("SystemModstamp")]
                last_seen = max([*stamps, *([last_seen] if last_seen else [])], default=None)
            position = (
                dump_checkpoint({"since": last_seen, "fields": spec.fingerprint})
                if last_seen
                else None
            )
            yield Page(records, position)

    def _query(self, query: str) -> Iterator[list[dict[str, Any]]]:
        first = f"/services/data/{self.api_version}/queryAll"

        def fetch(next_url: str | None) -> tuple[list[dict[str, Any]], str | None]:
            if next_url is None:
                data = self.client.get(first, params={"q": query}).json()
            else:
                # A path on the instance; the client refuses any other origin.
                data = self.client.get(next_url).json()
            return data.get("records", []), (None if data.get("done") else data["nextRecordsUrl"])

        yield from paginate(fetch, provider="salesforce", endpoint=f"GET {first}")


def soql(stream: SObjectStream, since: str | None) -> str:
    """The stream's query; ``since`` is a SystemModstamp as Salesforce wrote it."""
    query = f"SELECT {', '.join(stream.fields)} FROM {stream.name}"
    if since and stream.incremental:
        # SOQL datetime literals are unquoted, to the second, with Z or +hh:mm: drop the
        # milliseconds (>= then re-reads that second, never skips it).
        literal = iso_z(to_utc(since).replace(microsecond=0))
        query += f" WHERE SystemModstamp >= {literal}"
    if stream.incremental:
        query += " ORDER BY SystemModstamp ASC"
    return query
