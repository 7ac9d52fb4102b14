"""Salesforce Bulk API 2.0 query jobs: create, poll, read CSV results by locator, abort, delete.

Routes under the instance, beside REST (``/services/data/vXX.X/jobs/query...``), so the gate's
auth, daily limit and faults apply to them as to every Salesforce call:

- ``POST jobs/query`` ``{"operation": "query"|"queryAll", "query": SOQL, "contentType": "CSV",
  "columnDelimiter": "COMMA", "lineEnding": "LF"}`` plans the query at once (a bad query is
  refused there with the REST error codes) and answers the job info, state ``UploadComplete``.
  The rows are the snapshot of that moment, as a job's results are; ``queryAll`` includes
  deleted (archived) rows with ``IsDeleted``. Bulk API 2.0 refuses ``COUNT()`` and ``OFFSET``.
- ``GET jobs/query/{id}``: ``InProgress`` until ``processing_s`` has passed since creation
  (``bulk_knobs(state)``; tests shrink it), then ``JobComplete`` with
  ``numberRecordsProcessed`` (or ``Failed`` with ``errorMessage`` when ``fail_jobs`` is set).
- ``GET jobs/query/{id}/results?maxRecords=N&locator=L``: CSV, every value quoted, a header of
  the selected fields in the order asked (relationship fields dotted: ``Owner.Email``);
  null and empty are both ``""``; booleans ``true``/``false``; datetimes
  ``2024-01-15T10:22:33.000Z``; dates ``2024-01-15``; numbers as REST writes them. Headers
  ``Sforce-NumberOfRecords`` and ``Sforce-Locator`` (the literal ``null`` after the last set).
  A locator is the base64 of the next row offset (``MTAwMDA``), reusable while the job exists.
- ``PATCH jobs/query/{id}`` ``{"state": "Aborted"}``; ``DELETE jobs/query/{id}`` (204).

``bulk_knobs(state).latency_s`` makes every query call (REST and Bulk) take that much server
time, as on a real org where each call is a round trip and a query; 0 by default.

Records corrupt at ``faults.salesforce.malformed_rate`` come out corrupt here too (the same
records as from REST).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revtops_sandbox.company import sf_datetime, sf_id
from revtops_sandbox.salesforce_schema import API_VERSION, Field, SObject, Tree
from revtops_sandbox.salesforce_schema import wire_value as _wire
from revtops_sandbox.soql import SOQLError, parse
from revtops_sandbox.state import SandboxState

if TYPE_CHECKING:
    from revtops_sandbox.soql import Query


class RestPlanner(Protocol):
    """What the Bulk API needs of the REST API that mounts it: its state and its query planner
    (a protocol, so this module does not import the REST module that imports it)."""

    state: SandboxState

    def plan(self, q: Query, include_deleted: bool) -> tuple[SObject, Tree, list[Any]]: ...

    def render(
        self, so: SObject, tree: Tree, r: Any, version: str, rate: float
    ) -> dict[str, Any]: ...

    def resolve(self, so: SObject, path: str, pos: int) -> tuple[Callable[[Any], Any], Field]: ...


JOB_PREFIX = "750"
DEFAULT_MAX_RECORDS = 50_000
MAX_JOBS = 32  # kept; older jobs answer 404 as deleted ones do
DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^",
              "BACKQUOTE": "`"}  # fmt: skip
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


@dataclass(slots=True)
class BulkKnobs:
    """How the sandbox's query jobs behave; ``bulk_knobs(sb.state)`` to change them."""

    processing_s: float = 0.2  # InProgress this long after creation
    # Server time of every Salesforce query call, REST and Bulk alike (a real org's round trip
    # and query time; 0 on loopback). Benchmarks set it to compare the two by their calls.
    latency_s: float = 0.0
    fail_jobs: bool = False  # jobs end Failed instead of JobComplete
    error_message: str = "The query job failed: UNKNOWN_EXCEPTION (sandbox fault)"


_KNOBS: weakref.WeakKeyDictionary[SandboxState, BulkKnobs] = weakref.WeakKeyDictionary()


def bulk_knobs(state: SandboxState) -> BulkKnobs:
    knobs = _KNOBS.get(state)
    if knobs is None:
        knobs = _KNOBS[state] = BulkKnobs()
    return knobs


async def pause(state: SandboxState) -> None:
    """Wait the per-call server time of ``bulk_knobs(state).latency_s`` (without blocking)."""
    seconds = bulk_knobs(state).latency_s
    if seconds > 0:
        await asyncio.sleep(seconds)


Column = tuple[str, Callable[[Any], Any]]  # header, row -> CSV value (None: empty)


@dataclass(slots=True)
class QueryJob:
    id: str
    operation: str
    sobject: SObject
    tree: Tree
    rows: list[Any]
    version: str
    delimiter: str
    line_ending: str
    created_s: float
    created_text: str
    state: str = "UploadComplete"
    extra: dict[str, Any] = field(default_factory=dict)


def _error(status: int, message: str, code: str) -> Response:
    body = json.dumps([{"errorCode": code, "message": message}], separators=(",", ":"))
    return Response(body.encode(), status, media_type="application/json")


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status, media_type="application/json;charset=UTF-8")


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(text: str) -> int | None:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return int(raw) if raw.isdigit() else None


def csv_text(ftype: str, wire: Any) -> str:
    """A REST (JSON) value as Bulk API 2.0's CSV writes it."""
    if wire is None:
        return ""
    if wire is True or wire is False:
        return "true" if wire else "false"
    if ftype == "datetime" and isinstance(wire, str) and wire.endswith("+0000"):
        return wire[:-5] + "Z"
    return str(wire)


class SalesforceBulkAPI:
    def __init__(self, rest: RestPlanner) -> None:
        self.rest = rest
        self.state = rest.state
        self.jobs: OrderedDict[str, QueryJob] = OrderedDict()
        self._next = 1

    def routes(self) -> list[Route]:
        base = "/services/data/{version}/jobs/query"
        return [
            Route(base, self.create, methods=["POST"]),
            Route(base + "/{job_id}", self.job, methods=["GET", "PATCH", "DELETE"]),
            Route(base + "/{job_id}/results", self.results, methods=["GET"]),
        ]

    # -- create -------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        await pause(self.state)
        version = request.path_params["version"]
        if not API_VERSION.match(version):
            return _error(404, "The requested resource does not exist", "NOT_FOUND")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "Unexpected character: the body is not JSON", "JSON_PARSER_ERROR")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object", "JSON_PARSER_ERROR")
        problem = _invalid_job(body)
        if problem:
            return _error(400, problem, "INVALIDJOB")
        soql = body["query"]
        try:
            q = parse(soql)
            if q.count_only or q.offset is not None:
                what = "Aggregate queries" if q.count_only else "OFFSET"
                return _error(400, f"{what} are not supported by Bulk API 2.0", "INVALIDJOB")
            with self.state.lock:
                so, tree, rows = self.rest.plan(q, body["operation"] == "queryAll")
                job = self._new_job(body, so, tree, rows, version)
        except SOQLError as exc:
            return _error(400, exc.salesforce_message(soql), exc.error_code)
        return _json(self._info(job, brief=True))

    def _new_job(
        self, body: dict[str, Any], so: SObject, tree: Tree, rows: list[Any], version: str
    ) -> QueryJob:
        job_id = sf_id(JOB_PREFIX, self._next)
        self._next += 1
        now = time.time()
        job = QueryJob(
            job_id,
            body["operation"],
            so,
            tree,
            rows,
            version,
            DELIMITERS[body.get("columnDelimiter", "COMMA")],
            LINE_ENDINGS[body.get("lineEnding", "LF")],
            now,
            sf_datetime(int(now) * 1000),
        )
        self.jobs[job_id] = job
        while len(self.jobs) > MAX_JOBS:
            self.jobs.popitem(last=False)
        return job

    # -- job info, abort, delete -------------------------------------------------------------

    async def job(self, request: Request) -> Response:
        await pause(self.state)
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "The requested resource does not exist", "NOT_FOUND")
        if request.method == "DELETE":
            del self.jobs[job.id]
            return Response(status_code=204)
        if request.method == "PATCH":
            try:
                body = json.loads(await request.body())
            except ValueError:
                body = None
            if not isinstance(body, dict) or body.get("state") != "Aborted":
                return _error(400, "state: only Aborted may be set", "INVALIDJOBSTATE")
            if self._state(job) in ("JobComplete", "Failed"):
                return _error(400, "The job is already complete", "INVALIDJOBSTATE")
            job.state = "Aborted"
        return _json(self._info(job))

    def _state(self, job: QueryJob) -> str:
        if job.state in ("UploadComplete", "InProgress"):
            knobs = bulk_knobs(self.state)
            elapsed = time.time() - job.created_s
            if elapsed >= knobs.processing_s:
                job.state = "Failed" if knobs.fail_jobs else "JobComplete"
                if job.state == "Failed":
                    job.extra["errorMessage"] = knobs.error_message
            else:
                job.state = "InProgress"
        return job.state

    def _info(self, job: QueryJob, *, brief: bool = False) -> dict[str, Any]:
        state = job.state if brief else self._state(job)
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.sobject.name,
            "createdById": sf_id("005", 0),
            "createdDate": job.created_text,
            "systemModstamp": job.created_text,
            "state": state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.version[1:]),
            "lineEnding": "LF" if job.line_ending == "\n" else "CRLF",
            "columnDelimiter": next(k for k, v in DELIMITERS.items() if v == job.delimiter),
        }
        if brief:
            return info
        done = state == "JobComplete"
        info.update(
            jobType="V2Query",
            numberRecordsProcessed=len(job.rows) if done else 0,
            retries=0,
            totalProcessingTime=int(bulk_knobs(self.state).processing_s * 1000) if done else 0,
            isPkChunkingSupported=True,
        )
        info.update(job.extra)
        return info

    # -- results ------------------------------------------------------------------------------

    async def results(self, request: Request) -> Response:
        await pause(self.state)
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "The requested resource does not exist", "NOT_FOUND")
        if request.path_params["version"] != job.version:
            return _error(
                409, f"Use API version {job.version[1:]}, the job's, for its results", "CONFLICT"
            )
        if self._state(job) != "JobComplete":
            return _error(400, f"The job is {job.state}, not JobComplete", "INVALIDJOBSTATE")
        params = request.query_params
        max_text = params.get("maxRecords", str(DEFAULT_MAX_RECORDS))
        if not max_text.isdigit() or int(max_text) < 1:
            return _error(400, "maxRecords must be a positive integer", "INVALIDPARAMETER")
        offset = 0
        if params.get("locator"):
            found = decode_locator(params["locator"])
            if found is None or found > len(job.rows):
                return _error(400, "invalid locator", "INVALID_QUERY_LOCATOR")
            offset = found
        end = min(len(job.rows), offset + int(max_text))
        with self.state.lock:
            body = self._csv(job, offset, end)
        return Response(
            body.encode(),
            media_type="text/csv",
            headers={
                "Sforce-NumberOfRecords": str(end - offset),
                "Sforce-Locator": encode_locator(end) if end < len(job.rows) else "null",
            },
        )

    def _csv(self, job: QueryJob, start: int, end: int) -> str:
        buf = io.StringIO()
        out = csv.writer(
            buf, delimiter=job.delimiter, lineterminator=job.line_ending, quoting=csv.QUOTE_ALL
        )
        columns = self._columns(job)
        out.writerow([name for name, _ in columns])
        chunk = job.rows[start:end]
        rate = self.state.faults.salesforce.malformed_rate
        if rate > 0:  # the REST renderer corrupts the same records; flatten what it wrote
            for r in chunk:
                rendered = self.rest.render(job.sobject, job.tree, r, job.version, rate)
                out.writerow([_flat(rendered, name, fmt) for name, fmt in _formats(job)])
            return buf.getvalue()
        # Column by column: one map() per field instead of a Python call per row and field.
        out.writerows(zip(*[list(map(get, chunk)) for _, get in columns], strict=True))
        return buf.getvalue()

    def _columns(self, job: QueryJob) -> list[Column]:
        columns: list[Column] = []
        for path, fld in _paths(job.tree):
            get, _ = self.rest.resolve(job.sobject, path, 0)
            columns.append((path, _text_getter(get, fld)))
        return columns


def _text_getter(get: Callable[[Any], Any], fld: Field) -> Callable[[Any], Any]:
    """Row -> the CSV value (csv writes None as an empty field). Text types need nothing, so
    most columns are the field's own getter: a million rows are rendered per job."""
    ftype = fld.type
    if ftype == "boolean":
        return lambda r: None if (v := get(r)) is None else ("true" if v else "false")
    if ftype == "datetime":
        return lambda r: None if (v := get(r)) is None else sf_datetime(v)[:-5] + "Z"
    if ftype in ("date", "currency", "percent", "double", "int"):
        return lambda r: csv_text(ftype, _wire(ftype, get(r)))
    return get


def _paths(tree: Tree, prefix: str = "") -> list[tuple[str, Field]]:
    """The SELECT tree as CSV columns: ``Name``, ``Owner.Email``..., in the order asked."""
    out: list[tuple[str, Field]] = []
    for name, node in tree.items():
        if isinstance(node, tuple):
            out += _paths(node[1], f"{prefix}{name}.")
        else:
            out.append((prefix + name, node))
    return out


def _formats(job: QueryJob) -> list[tuple[str, str]]:
    return [(path, fld.type) for path, fld in _paths(job.tree)]


def _flat(rendered: dict[str, Any], path: str, ftype: str) -> str:
    value: Any = rendered
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return csv_text(ftype, value)


def _invalid_job(body: dict[str, Any]) -> str:
    """Why a create-job body is refused, or ""."""
    if body.get("operation") not in ("query", "queryAll"):
        return "operation: must be query or queryAll"
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        return "query: a SOQL query is required"
    if body.get("contentType", "CSV") != "CSV":
        return "contentType: only CSV is supported for query jobs"
    if body.get("columnDelimiter", "COMMA") not in DELIMITERS:
        return f"columnDelimiter: one of {', '.join(DELIMITERS)}"
    if body.get("lineEnding", "LF") not in LINE_ENDINGS:
        return "lineEnding: LF or CRLF"
    return ""
