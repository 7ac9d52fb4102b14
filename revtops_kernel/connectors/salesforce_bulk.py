"""Salesforce Bulk API 2.0 query jobs: a full read of a large object in CSV sets of 50,000.

REST hands out 2,000 records a call; a Bulk API 2.0 ``queryAll`` job (deleted records
included, with ``IsDeleted``, as REST's ``queryAll``) returns its results in sets of up to
``maxRecords`` rows, each set one call, the next one named by the ``Sforce-Locator`` header
(the literal ``null`` after the last). `BulkQuery` creates the job, polls it with backoff until
``JobComplete`` (``Failed``/``Aborted`` raise a ``ConnectorError`` carrying the job's
``errorMessage``; a job still running after ``timeout_s`` is aborted) and reads the sets.

A set is parsed in C by pyarrow's CSV reader (`CsvSet`) and converted a page of rows at a
time, column by column. The CSV carries only text: `CsvRecords` turns each row into the record
REST's JSON would have given (``attributes``, booleans, numbers, null for an empty value,
REST's datetime form ``...000+0000`` for the CSV's ``...000Z``), with the field types of the
object's ``describe``, so the normalizers see the same records either way. A value that does
not parse as its type stays the string it was (a corrupt record is then refused by the
normalizer, as from REST).
Dotted relationship columns (``Owner.Email``) become nested objects, null when all are empty,
without the related record's ``attributes`` (the CSV does not name it).

All requests go through the connector's ``ProviderClient``: same origin, budget, retries.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

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

    def results(self, job_id: str, locator: str | None) -> tuple[bytes, str | None]:
        """One results set as CSV (UTF-8 bytes), and the locator of the next (None after the
        last)."""
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
        return response.content, (None if next_locator in ("", "null") else next_locator)

    def result_sets(
        self, job_id: str, locator: str | None
    ) -> Iterator[tuple[str | None, bytes, str | None]]:
        """(locator, CSV bytes, next locator) of every set from ``locator`` on. The next set is
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


class CsvSet:
    """One results set, parsed in C by pyarrow's CSV reader: ``header``, ``num_rows`` and the
    columns of a slice of rows (``columns``) as Python strings, each as written (an empty value
    ""), quoted line breaks kept. The set stays in Arrow's compact form; only the slice asked
    for becomes Python strings (a page of the sync, not the whole set)."""

    def __init__(self, body: bytes) -> None:
        end = body.find(b"\n")
        first = body if end < 0 else body[: end + 1]
        self.header: list[str] = next(csv.reader([first.decode("utf-8")]), [])
        self._table: pa.Table | None = None
        self.num_rows = 0
        if not self.header or not body[len(first) :].strip(b"\r\n"):
            return  # no header, or the header alone: an empty set
        names = [f"c{i}" for i in range(len(self.header))]  # the header's names may repeat
        try:
            self._table = pacsv.read_csv(
                io.BytesIO(body),
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:  # a row of another length than the header, mostly
            raise ValueError(f"Bulk API results are not the CSV expected: {exc}") from exc
        self.num_rows = self._table.num_rows

    def columns(self, start: int, stop: int) -> list[list[str]]:
        """Rows ``start`` to ``stop`` (exclusive), column by column."""
        return [column.to_pylist() for column in self.arrays(start, stop)]

    def arrays(self, start: int, stop: int) -> list[pa.Array]:
        """Rows ``start`` to ``stop`` (exclusive) as Arrow string arrays, column by column."""
        if self._table is None or start >= self.num_rows:
            return [pa.array([], pa.string()) for _ in self.header]
        part = self._table.slice(start, stop - start)
        return [column.combine_chunks() for column in part.columns]


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
        return lambda row: self.records(header, [row])[0]

    def records(self, header: list[str], rows: list[list[str]]) -> list[dict[str, Any]]:
        """The records of ``rows`` (CSV rows under ``header``), converted column by column:
        one pass per field over the rows' values instead of a Python call per row and field
        (a full read brings a million rows). A row of another length than the header raises
        ValueError."""
        if not rows:
            return []
        columns = list(zip(*rows, strict=True))
        if len(columns) != len(header):
            raise ValueError(f"CSV rows of {len(columns)} values under {len(header)} columns")
        return self.from_columns(header, columns)

    def from_set(self, results: CsvSet, start: int, stop: int) -> list[dict[str, Any]]:
        """The records of rows ``start`` to ``stop`` (exclusive) of a results set. Text and
        datetime columns are converted in Arrow (empty -> null, ``...Z`` -> ``...+0000``)
        before they become Python values; the other types as in ``from_columns``."""
        header = results.header
        arrays = results.arrays(start, stop)
        if not arrays or len(arrays[0]) == 0:
            return []
        columns: list[Sequence[Any]] = []
        converted: list[bool] = []
        for name, array in zip(header, arrays, strict=True):
            ftype = "string" if "." in name else self.types.get(name.lower(), "string")
            done = ftype == "datetime" or ftype not in CONVERTERS
            if ftype == "datetime":
                array = pc.replace_substring_regex(array, pattern="Z$", replacement="+0000")
            if done:
                array = pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)
            columns.append(array.to_pylist())
            converted.append(done)
        return self.from_columns(header, columns, converted)

    def from_columns(
        self,
        header: list[str],
        columns: Sequence[Sequence[Any]],
        converted: Sequence[bool] | None = None,
    ) -> list[dict[str, Any]]:
        """The records of CSV ``columns`` (equally long, one per ``header`` name); a column
        ``converted`` says is done already holds its final values (None for empty)."""
        if not columns or not columns[0]:
            return []
        done = converted or [False] * len(columns)
        keys: list[str] = []
        values: list[list[Any]] = []
        nested: dict[str, list[tuple[str, Sequence[str]]]] = {}
        for name, column, ready in zip(header, columns, done, strict=True):
            if "." in name:
                relation, sub = name.split(".", 1)
                nested.setdefault(relation, []).append((sub, column))
                continue
            keys.append(name)
            convert = CONVERTERS.get(self.types.get(name.lower(), "string"))
            if ready:
                values.append(list(column))
            elif convert is None:
                values.append([v or None for v in column])
            else:
                values.append([convert(v) if v else None for v in column])
        for relation, subs in nested.items():
            keys.append(relation)
            names = [sub for sub, _ in subs]
            related: list[dict[str, Any] | None] = []
            for row_values in zip(*[column for _, column in subs], strict=True):
                if any(row_values):
                    related.append(dict(zip(names, [v or None for v in row_values], strict=True)))
                else:
                    related.append(None)
            values.append(related)
        sobject, url = self.sobject, self.url
        if "Id" in keys:
            ids = values[keys.index("Id")]
            attributes = [{"type": sobject, "url": url + i if i else url} for i in ids]
        else:
            attributes = [{"type": sobject, "url": None} for _ in columns[0]]
        out: list[dict[str, Any]] = []
        append = out.append
        for attrs, row_values in zip(attributes, zip(*values, strict=True), strict=True):
            record = {"attributes": attrs}
            record.update(zip(keys, row_values))  # noqa: B905 (one value per key, by construction)
            append(record)
        return out
