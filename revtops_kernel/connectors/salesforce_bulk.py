"""Salesforce Bulk API 2.0 query jobs: a full read of a large object in CSV sets of 50,000.

REST hands out 2,000 records a call; a Bulk API 2.0 ``queryAll`` job (deleted records
included, with ``IsDeleted``, as REST's ``queryAll``) returns its results in sets of up to
``maxRecords`` rows, each set one call, the next one named by the ``Sforce-Locator`` header
(the literal ``null`` after the last). `BulkQuery` creates the job, polls it with backoff until
``JobComplete`` (``Failed``/``Aborted`` raise a ``ConnectorError`` carrying the job's
``errorMessage``; a job still running after ``timeout_s`` is aborted) and reads the sets.

The CSV carries only text: `CsvRecords` turns each row into the record REST's JSON would have
given (``attributes``, booleans, numbers, null for an empty value, REST's datetime form
``...000+0000`` for the CSV's ``...000Z``), with the field types of the object's ``describe``,
so the normalizers see the same records either way. A value that does not parse as its type
stays the string it was (a corrupt record is then refused by the normalizer, as from REST).
Dotted relationship columns (``Owner.Email``) become nested objects, null when all are empty,
without the related record's ``attributes`` (the CSV does not name it).

All requests go through the connector's ``ProviderClient``: same origin, budget, retries.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from revtops_kernel.connectors.http import ProviderClient
from revtops_kernel.errors import ConnectorError

log = logging.getLogger(__name__)

MAX_RECORDS = 50_000  # rows per results set (one call); the API caps a set by size as well
DONE_STATES = ("JobComplete", "Failed", "Aborted")


@dataclass(frozen=True)
class PollPolicy:
    """Waits between job-state polls: ``first``, then times ``factor`` up to ``max_delay``."""

    first: float = 0.2
    factor: float = 1.5
    max_delay: float = 10.0
    timeout_s: float = 2 * 3600.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(self.max_delay, delay * self.factor)


class BulkQuery:
    """Query jobs of one org through its ``ProviderClient``."""

    def __init__(
        self,
        client: ProviderClient,
        api_version: str,
        *,
        poll: PollPolicy | None = None,
        max_records: int = MAX_RECORDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.base = f"/services/data/{api_version}/jobs/query"
        self.poll = poll or PollPolicy()
        self.max_records = max_records
        self._sleep = sleep
        self._clock = clock

    def create(self, soql: str, *, operation: str = "queryAll") -> str:
        body = {
            "operation": operation,
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        info = self.client.post(self.base, json=body).json()
        log.info("salesforce bulk %s job %s: %s", operation, info.get("id"), soql[:120])
        return str(info["id"])

    def info(self, job_id: str) -> dict[str, Any]:
        data = self.client.get(f"{self.base}/{job_id}").json()
        return data if isinstance(data, dict) else {}

    def wait(self, job_id: str) -> dict[str, Any]:
        """Poll until the job is done; its info when ``JobComplete``, else raise."""
        started = self._clock()
        for delay in self.poll.delays():
            self._sleep(delay)
            info = self.info(job_id)
            state = info.get("state")
            if state in DONE_STATES:
                return self.require_complete(job_id, info)
            if self._clock() - started > self.poll.timeout_s:
                self.abort(job_id)
                raise ConnectorError(
                    "salesforce",
                    f"GET {self.base}/{job_id}",
                    None,
                    f"Bulk API query job {job_id} still {state} after "
                    f"{self.poll.timeout_s:.0f} s; aborted it",
                )
        raise AssertionError("unreachable")  # delays() never ends

    def require_complete(self, job_id: str, info: Mapping[str, Any]) -> dict[str, Any]:
        state = info.get("state")
        if state != "JobComplete":
            message = info.get("errorMessage") or "no errorMessage given"
            raise ConnectorError(
                "salesforce",
                f"GET {self.base}/{job_id}",
                None,
                f"Bulk API query job {job_id} on {info.get('object', '?')} ended {state}: "
                f"{message}",
            )
        return dict(info)

    def abort(self, job_id: str) -> None:
        try:
            self.client.request("PATCH", f"{self.base}/{job_id}", json={"state": "Aborted"})
        except ConnectorError as exc:  # best effort: the job expires on its own
            log.warning("salesforce bulk job %s: abort failed: %s", job_id, exc)

    def results(self, job_id: str, locator: str | None) -> tuple[str, str | None]:
        """One results set as CSV text, and the locator of the next (None after the last)."""
        params: dict[str, Any] = {"maxRecords": self.max_records}
        if locator:
            params["locator"] = locator
        response = self.client.request(
            "GET",
            f"{self.base}/{job_id}/results",
            params=params,
            headers={"Accept": "text/csv"},
        )
        next_locator = response.headers.get("Sforce-Locator", "null")
        return response.text, (None if next_locator in ("", "null") else next_locator)

    def result_sets(
        self, job_id: str, locator: str | None
    ) -> Iterator[tuple[str | None, str, str | None]]:
        """(locator, CSV text, next locator) of every set from ``locator`` on. The next set is
        fetched in a thread while the caller digests the current one: the server prepares a
        set while the sync normalizes and stores the last (two sets in memory at most)."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sf-bulk")
        try:
            pending = pool.submit(self.results, job_id, locator)
            while True:
                text, next_locator = pending.result()
                if next_locator is not None:
                    pending = pool.submit(self.results, job_id, next_locator)
                yield locator, text, next_locator
                if next_locator is None:
                    return
                locator = next_locator
        finally:
            # A stopped or failed read returns now; a set in flight is dropped when it lands.
            pool.shutdown(wait=False, cancel_futures=True)


def read_csv(text: str) -> tuple[list[str], Iterator[list[str]]]:
    """Header and rows (parsed as they are taken) of one results set."""
    reader = csv.reader(_lines(text))
    return next(reader, []), reader


def _lines(text: str) -> Iterator[str]:
    """``text`` in lines that keep their ``\n`` (csv rejoins a quoted value's lines). Not
    ``io.StringIO``, which holds four bytes a character: 4x a 50,000-row set in memory."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        end = size if end < 0 else end + 1
        yield text[start:end]
        start = end


# --- CSV text -> the values REST's JSON carries ----------------------------------------------


def _text(value: str) -> Any:
    return value or None


def _boolean(value: str) -> Any:
    if value == "true":
        return True
    if value == "false":
        return False
    return value or None


def _number(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        if not value:
            return None
        try:
            return parse(value)
        except ValueError:
            return value  # as the server wrote it; the normalizer decides

    return convert


def _datetime(value: str) -> Any:
    if value.endswith("Z"):
        return value[:-1] + "+0000"  # REST's form: 2024-01-15T10:22:33.000+0000
    return value or None


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "boolean": _boolean,
    "int": _number(int),
    "double": _number(float),
    "currency": _number(float),
    "percent": _number(float),
    "datetime": _datetime,
}


class CsvRecords:
    """Rows of one object's results as REST records (``attributes`` first, then the columns)."""

    def __init__(self, sobject: str, field_types: Mapping[str, str], api_version: str) -> None:
        self.sobject = sobject
        self.types = {name.lower(): t for name, t in field_types.items()}
        self.url = f"/services/data/{api_version}/sobjects/{sobject}/"

    def converter(self, header: list[str]) -> Callable[[list[str]], dict[str, Any]]:
        """A function from one CSV row to one record, for this header."""
        plain = [(i, name) for i, name in enumerate(header) if "." not in name]
        typed = [
            (name, CONVERTERS[t])
            for _, name in plain
            if (t := self.types.get(name.lower(), "string")) in CONVERTERS
        ]
        nested: dict[str, list[tuple[int, str]]] = {}
        for i, name in enumerate(header):
            if "." in name:
                relation, sub = name.split(".", 1)
                nested.setdefault(relation, []).append((i, sub))
        id_index = next((i for i, name in plain if name == "Id"), None)
        sobject, url = self.sobject, self.url

        names = [name for _, name in plain]
        simple = len(plain) == len(header)  # no relationship columns: zip the row as it is

        def convert(row: list[str]) -> dict[str, Any]:
            record: dict[str, Any] = {
                "attributes": {
                    "type": sobject,
                    "url": url + row[id_index] if id_index is not None else None,
                }
            }
            if simple:
                record.update(zip(names, [v or None for v in row], strict=True))
            else:
                for i, name in plain:
                    record[name] = row[i] or None
            for name, fn in typed:
                value = record[name]
                if value is not None:
                    record[name] = fn(value)
            for relation, columns in nested.items():
                values = {sub: row[i] or None for i, sub in columns}
                record[relation] = values if any(v is not None for v in values.values()) else None
            return record

        return convert
