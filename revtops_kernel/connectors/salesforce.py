"""Salesforce REST: SOQL over ``queryAll`` by ``SystemModstamp``, following ``nextRecordsUrl``.

Each object is read with ``WHERE SystemModstamp >= <cursor> ORDER BY SystemModstamp`` (no
WHERE on the first read). Salesforce compares datetimes to the second, so ``>=`` re-reads the
records that share the cursor's second rather than skipping any; the upsert makes that a no-op.
``queryAll`` includes deleted records (``IsDeleted = true``), which become soft deletes.

The cursor a complete read leaves is not the newest SystemModstamp it saw but the moment its
query ran (the first response's ``Date``: Salesforce's clock) less ``SETTLE_SECONDS``. A change
becomes visible when its transaction commits, so a record the query could not see can carry a
stamp a little before it, never more than that margin before: older seconds are complete. So
the next read does not fetch again the records sharing a quiet object's newest second (after a
first sync of data that ends on one second, thousands of them, most of the re-read), and a
record committed late with a slightly earlier stamp is still seen (a cursor at the newest stamp
would skip it). Pages before the last carry the newest stamp read (records come in stamp
order), capped at that settled moment, so a stopped read resumes there. Without a ``Date``, or
from a server that stamped a record later than its own ``Date`` (a clock running ahead), the
cursor is the newest stamp read, as before.

OpportunityStage is small and read whole every time (deals need it to know order, probability,
closed and won). OpportunityHistory (stage history; its rows are never edited, so
SystemModstamp is their creation time) and OpportunityContactRole (deal-contact links; a
removed link comes back with ``IsDeleted``) are incremental like the others. A checkpoint names
the field list it was read with: when an upgrade adds fields (``LastStageChangeDate``), the
object is read once more from the start.

A full read (no cursor) of an object with more records than ``bulk_threshold`` (the setting
``REVTOPS_SALESFORCE_BULK_THRESHOLD``; counted with ``SELECT COUNT()`` on ``queryAll``) goes
through a Bulk API 2.0 ``queryAll`` job instead (`salesforce_bulk`): sets of 50,000 CSV rows a
call instead of 2,000 records. Its rows come in no order, so the cursor cannot move while they
arrive: each page's checkpoint names the job (and its API version), the results set
(``Sforce-Locator``) and the rows of it already stored, plus the highest SystemModstamp seen;
only the last page's checkpoint is the usual ``{"since": ...}``, settled as above from the
job's ``createdDate`` (its query runs after that). A sync that stops midway resumes the same
job at that set (results stay readable while the job exists), or, once the job is gone, failed
or from another API version, starts a new full read. Incremental reads stay on REST.

``nextRecordsUrl`` is a path on the instance; the client refuses one on any other origin (a
misconfigured instance, a proxy or a forged answer must not collect the token). With a Nango
connection, the instance URL Nango reports (https, checked) is the connection's origin.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

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
from revtops_kernel.connectors.salesforce_bulk import BulkQuery, CsvRecords, CsvSet
from revtops_kernel.errors import ConnectorError, ForeignOriginError
from revtops_kernel.salesforce_fields import OBJECTS
from revtops_kernel.settings import Settings
from revtops_kernel.timeutil import iso_z, to_utc

log = logging.getLogger(__name__)

API_VERSION = "v59.0"
DEFAULT_BULK_THRESHOLD = Settings.model_fields["salesforce_bulk_threshold"].default
BULK_PAGE_RECORDS = 10_000  # records per page the sync commits (a results set holds 50,000)
# Salesforce counts a daily allowance, not a rate; stay polite on bursts anyway.
REQUESTS_PER_10_SECONDS = 200
# How long before a query a record it did not see can have been stamped: its transaction was
# still open (Apex, flows, a Bulk API chunk), the response took a while, app servers' clocks
# differ a little. Seconds older than the query less this are complete (see the docstring).
SETTLE_SECONDS = 300


@dataclass(frozen=True)
class SObjectStream:
    name: str
    fields: tuple[str, ...]
    incremental: bool = True
    # Added to ``fields`` when the org's describe of the object lists them (see ``_with_optional``)
    optional: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """Names the field list in a checkpoint: another list means reading again."""
        return hashlib.sha256(",".join(self.fields).encode()).hexdigest()[:12]


# The field lists are declared once, for the normalizer too (salesforce_fields).
STREAMS_BY_NAME = {
    name: SObjectStream(name, spec.fields, spec.incremental, spec.optional)
    for name, spec in OBJECTS.items()
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

    def __init__(
        self,
        client: ProviderClient,
        *,
        api_version: str = API_VERSION,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        bulk: BulkQuery | None = None,
    ) -> None:
        """``bulk_threshold``: a full read of an object with more records than this uses the
        Bulk API (0: never)."""
        if bulk_threshold < 0:
            raise ValueError(f"bulk_threshold must be >= 0 (0 disables it), not {bulk_threshold}")
        self.client = client
        self.api_version = api_version
        self.bulk_threshold = bulk_threshold
        self.bulk = bulk or BulkQuery(client, api_version)
        self._field_types: dict[str, dict[str, str]] = {}

    @classmethod
    def connect(
        cls,
        instance_url: str,
        tokens: TokenSource,
        http: Any,
        *,
        settings: Settings | None = None,
    ) -> SalesforceConnector:
        """``instance_url`` from settings, unless a Nango connection reports its own (each
        connected org has its instance; Nango's is checked to be https)."""
        if isinstance(tokens, NangoToken):
            instance_url = tokens.instance_url() or instance_url
        budgets = {"default": RateBudget(REQUESTS_PER_10_SECONDS, 10.0)}
        client = SalesforceClient("salesforce", instance_url, tokens, http, budgets=budgets)
        threshold = (
            settings.salesforce_bulk_threshold if settings is not None else DEFAULT_BULK_THRESHOLD
        )
        return cls(client, bulk_threshold=threshold)

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def streams(self) -> tuple[str, ...]:
        return STREAMS

    def read(self, stream: str, checkpoint: str | None) -> Iterator[Page]:
        declared = STREAMS_BY_NAME.get(stream)
        if declared is None:
            raise ValueError(f"unknown Salesforce stream {stream!r}; streams: {', '.join(STREAMS)}")
        spec = self._with_optional(declared)
        state = load_checkpoint(checkpoint) if spec.incremental else None
        if state and state.get("fields") != spec.fingerprint:
            # Written for another field list (an upgrade added fields): read the object
            # again from the start, so every record gets the new fields once.
            log.info("salesforce %s: fields changed since the last sync; reading it all", stream)
            state = None
        since = state.get("since") if state else None
        if spec.incremental and since is None and self.bulk_threshold > 0:
            resumed = state.get("bulk") if state else None
            bulk_position = resumed if isinstance(resumed, dict) else None
            if bulk_position is not None or self._count(spec) > self.bulk_threshold:
                yield from self._read_bulk(spec, bulk_position)
                return
        cursor = ModstampCursor(since)
        for page in self._query(soql(spec, since)):
            if not spec.incremental:
                yield Page(page.records, None)
                continue
            if page.server_time is not None and cursor.server_time is None:
                cursor.server_time = page.server_time  # the first response: when the query ran
            cursor.saw(page.records)
            position = cursor.complete() if page.done else cursor.partial()
            checkpoint = (
                dump_checkpoint({"since": position, "fields": spec.fingerprint})
                if position
                else None
            )
            yield Page(page.records, checkpoint)

    def _with_optional(self, spec: SObjectStream) -> SObjectStream:
        """``spec`` with the optional fields this org's object has (one describe call, only
        for objects that declare some): naming a missing field would fail the query."""
        if not spec.optional:
            return spec
        present = self._types(spec)
        extra = tuple(f for f in spec.optional if f in present)
        return replace(spec, fields=(*spec.fields, *extra), optional=())

    # -- Bulk API 2.0 ------------------------------------------------------------------------

    def _count(self, spec: SObjectStream) -> int:
        """Records ``queryAll`` would return (deleted ones included): one REST call."""
        path = f"/services/data/{self.api_version}/queryAll"
        data = self.client.get(path, params={"q": f"SELECT COUNT() FROM {spec.name}"}).json()
        return int(data.get("totalSize", 0))

    def _read_bulk(self, spec: SObjectStream, position: dict[str, Any] | None) -> Iterator[Page]:
        """The object's full read through a query job: pages of ``BULK_PAGE_RECORDS``, each
        with a checkpoint that resumes right after it (see the module docstring)."""
        job_id, start_at, skip, highest, created = self._bulk_job(spec, position)
        convert = CsvRecords(spec.name, self._types(spec), self.api_version)
        for locator, body, next_locator in self.bulk.result_sets(job_id, start_at):
            results = CsvSet(body)

            def records(start: int, results: CsvSet = results) -> list[dict[str, Any]]:
                return convert.from_set(results, start, start + BULK_PAGE_RECORDS)

            chunk = records(skip)  # a resumed set: the rows stored before are skipped
            consumed = skip
            while True:
                following = records(consumed + len(chunk))
                stamps = [r["SystemModstamp"] for r in chunk if r.get("SystemModstamp")]
                highest = max([*stamps, *([highest] if highest else [])], default=None)
                consumed += len(chunk)
                job = {"job": job_id, "version": self.api_version}
                if following:  # more of this set to come
                    state = {**job, "locator": locator, "skip": consumed}
                elif next_locator is not None:
                    state = {**job, "locator": next_locator, "skip": 0}
                else:
                    yield Page(chunk, self._bulk_done(spec, highest, created))
                    return
                if chunk:
                    checkpoint = dump_checkpoint(
                        {"bulk": {**state, "highest": highest}, "fields": spec.fingerprint}
                    )
                    yield Page(chunk, checkpoint)
                if not following:
                    break
                chunk = following
            skip = 0

    def _bulk_job(
        self, spec: SObjectStream, position: dict[str, Any] | None
    ) -> tuple[str, str | None, int, str | None, datetime | None]:
        """(job id, results set to read, rows of it already stored, highest SystemModstamp,
        the job's ``createdDate``): the interrupted job when it can still be read, else a new
        one, waited for."""
        if position is not None and position.get("version") != self.api_version:
            # Results are only served to the API version that created the job (409).
            log.info("salesforce %s: bulk job of another API version; new job", spec.name)
        elif position is not None:
            job_id = str(position.get("job", ""))
            try:
                info = self.bulk.info(job_id)
                if info.get("state") == "JobComplete":
                    log.info("salesforce %s: resuming bulk job %s", spec.name, job_id)
                    locator = position.get("locator")
                    return (
                        job_id,
                        str(locator) if locator else None,
                        int(position.get("skip", 0)),
                        position.get("highest"),
                        _datetime(info.get("createdDate")),
                    )
                reason = f"it is {info.get('state')}"
            except ConnectorError as exc:
                if exc.status not in (400, 404) or isinstance(exc, ForeignOriginError):
                    raise  # auth, limits, outages: not a reason to read everything again
                reason = str(exc)  # 404 once Salesforce deleted the job
            log.info("salesforce %s: bulk job %s cannot resume (%s); new job", spec.name,
                     job_id, reason)  # fmt: skip
        job_id = self.bulk.create(f"SELECT {', '.join(spec.fields)} FROM {spec.name}")
        info = self.bulk.wait(job_id)
        return job_id, None, 0, None, _datetime(info.get("createdDate"))

    def _bulk_done(
        self, spec: SObjectStream, highest: str | None, created: datetime | None
    ) -> str | None:
        """The checkpoint after a complete bulk read: incremental from here, as after REST
        (settled from the job's creation, when its query was not yet run)."""
        cursor = ModstampCursor(None, server_time=created)
        cursor.last_seen = highest
        since = cursor.complete()
        return dump_checkpoint({"since": since, "fields": spec.fingerprint}) if since else None

    def _types(self, spec: SObjectStream) -> dict[str, str]:
        """Field name -> Salesforce type, from the object's describe (once per connector)."""
        types = self._field_types.get(spec.name)
        if types is None:
            path = f"/services/data/{self.api_version}/sobjects/{spec.name}/describe"
            described = self.client.get(path).json()
            types = {
                str(f["name"]): str(f["type"])
                for f in described.get("fields", [])
                if isinstance(f, dict) and "name" in f and "type" in f
            }
            self._field_types[spec.name] = types
        return types

    def _query(self, query: str) -> Iterator[QueryPage]:
        first = f"/services/data/{self.api_version}/queryAll"

        def fetch(next_url: str | None) -> tuple[QueryPage, str | None]:
            if next_url is None:
                response = self.client.get(first, params={"q": query})
            else:
                # A path on the instance; the client refuses any other origin.
                response = self.client.get(next_url)
            data = response.json()
            following = None if data.get("done") else data["nextRecordsUrl"]
            served = _http_date(response.headers.get("date"))
            return QueryPage(data.get("records", []), following is None, served), following

        yield from paginate(fetch, provider="salesforce", endpoint=f"GET {first}")


class QueryPage(NamedTuple):
    records: list[dict[str, Any]]
    done: bool  # the query's last page
    server_time: datetime | None  # the response's Date: Salesforce's clock when it answered


class ModstampCursor:
    """Where an incremental read of one object has got to (see the module docstring).

    ``since``: the checkpoint's cursor the read started from; ``server_time``: when the query
    ran, by the server's clock (None: unknown); ``last_seen``: the newest SystemModstamp read.
    """

    def __init__(self, since: str | None, *, server_time: datetime | None = None) -> None:
        self.since = since
        self.server_time = server_time
        self.last_seen = since

    def saw(self, records: list[dict[str, Any]]) -> None:
        # One format throughout (UTC, "+0000"): the newest of a page is the greatest text.
        stamps = [r["SystemModstamp"] for r in records if r.get("SystemModstamp")]
        newest = max(stamps, default=None)
        if newest is not None and (
            self.last_seen is None or to_utc(newest) > to_utc(self.last_seen)
        ):
            self.last_seen = newest

    def _settled(self) -> datetime | None:
        """The second before which the server's records are complete, when it can be told:
        not for a server that stamped a record later than its own clock said."""
        if self.server_time is None:
            return None
        if self.last_seen is not None and to_utc(self.last_seen) > self.server_time:
            return None
        return self.server_time - timedelta(seconds=SETTLE_SECONDS)

    def partial(self) -> str | None:
        """After a page with more to come: the newest stamp read (``>=`` re-reads its second),
        no later than the settled point, never before where the read started."""
        settled = self._settled()
        if settled is None or self.last_seen is None or to_utc(self.last_seen) <= settled:
            return self.last_seen
        return self._at_least_since(settled)

    def complete(self) -> str | None:
        """After the last page: the settled point (or the newest stamp read, if it cannot be
        told), never before where the read started."""
        settled = self._settled()
        return self.last_seen if settled is None else self._at_least_since(settled)

    def _at_least_since(self, moment: datetime) -> str:
        if self.since is not None and to_utc(self.since) >= moment:
            return self.since
        return sf_stamp(moment)


def sf_stamp(moment: datetime) -> str:
    """A datetime as Salesforce writes SystemModstamp (UTC, to the second)."""
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as a UTC datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        return to_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def _datetime(value: Any) -> datetime | None:
    """A Salesforce datetime (a job's ``createdDate``) as UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return to_utc(value)
    except ValueError:
        return None


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
