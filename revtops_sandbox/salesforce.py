"""Salesforce REST (query, queryAll, queryMore, sObject retrieve) as Starlette routes.

Mounted at ``/salesforce``, so the instance URL is ``{sandbox}/salesforce`` and connectors call
``{instance}/services/data/v59.0/query?q=...`` exactly as on a real org. Any ``vNN.N`` works.
Auth, the daily request limit and injected faults are applied before these handlers by
`gate.py`.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revtops_sandbox.company import (
    ACTIVITY_KINDS,
    LIVE,
    MEETING,
    SF_PREFIX,
    Company,
    sf_datetime,
    sf_id,
    sf_seq,
)
from revtops_sandbox.faults import malformed_kind
from revtops_sandbox.salesforce_bulk import SalesforceBulkAPI, pause
from revtops_sandbox.salesforce_schema import (
    API_VERSION,
    Field,
    SObject,
    Tree,
    build_schema,
)
from revtops_sandbox.salesforce_schema import wire_value as _wire
from revtops_sandbox.soql import BoolOp, Condition, Query, SOQLError, parse
from revtops_sandbox.soql_eval import compile_comparison, order_rows
from revtops_sandbox.state import SandboxState
from revtops_sandbox.web import read_form

DEFAULT_BATCH = 2000
MIN_BATCH, MAX_BATCH = 200, 2000
MAX_OFFSET = 2000
MAX_CURSORS = 16  # open query locators kept; older ones answer INVALID_QUERY_LOCATOR
_HS_TYPE = {"Account": "companies", "Contact": "contacts", "Opportunity": "deals",
            "Event": "meetings"}  # fmt: skip


def error_bytes(message: str, code: str) -> bytes:
    """Salesforce errors are a JSON array of {message, errorCode}."""
    return json.dumps([{"message": message, "errorCode": code}], separators=(",", ":")).encode()


def _error(status: int, message: str, code: str) -> Response:
    return Response(error_bytes(message, code), status, media_type="application/json")


def _json(data: Any) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")).encode(),
        media_type="application/json;charset=UTF-8",
    )


@dataclass(slots=True)
class Cursor:
    rows: list[Any]
    sobject: SObject
    tree: Tree
    batch: int
    version: str


class SalesforceAPI:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.schema = build_schema(state.company)
        self._cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._next_locator = 1

    def routes(self) -> list[Route]:
        return [
            Route("/services/data", self.versions, methods=["GET"]),
            Route("/services/data/", self.versions, methods=["GET"]),
            Route("/services/data/{version}/query", self.query, methods=["GET"]),
            Route("/services/data/{version}/queryAll", self.query_all, methods=["GET"]),
            Route("/services/data/{version}/query/{locator}", self.query_more, methods=["GET"]),
            Route("/services/data/{version}/queryAll/{locator}", self.query_more, methods=["GET"]),
            Route("/services/data/{version}/limits", self.limits, methods=["GET"]),
            *SalesforceBulkAPI(self).routes(),
            Route("/services/data/{version}/sobjects/{sobject}/describe", self.describe),
            Route("/services/data/{version}/sobjects/{sobject}/{record_id}", self.retrieve),
            Route("/services/oauth2/token", self.oauth_token, methods=["POST"]),
            Route("/{path:path}", self.not_found, methods=["GET", "POST", "PATCH", "DELETE"]),
        ]

    # -- query --------------------------------------------------------------------------------

    async def query(self, request: Request) -> Response:
        await pause(self.state)
        return self._run(request, include_deleted=False)

    async def query_all(self, request: Request) -> Response:
        await pause(self.state)
        return self._run(request, include_deleted=True)

    def _run(self, request: Request, include_deleted: bool) -> Response:
        version = request.path_params["version"]
        if not API_VERSION.match(version):
            return self._missing()
        soql = request.query_params.get("q")
        if soql is None or not soql.strip():
            return _error(400, "A query string has to be specified", "MALFORMED_QUERY")
        batch = _batch_size(request.headers.get("sforce-query-options", ""))
        try:
            with self.state.lock:
                return self._execute(soql, include_deleted, batch, version)
        except SOQLError as exc:
            return _error(400, exc.salesforce_message(soql), exc.error_code)

    def _execute(self, soql: str, include_deleted: bool, batch: int, version: str) -> Response:
        q = parse(soql)
        so, tree, rows = self.plan(q, include_deleted)
        if q.count_only:
            return _json({"totalSize": len(rows), "done": True, "records": []})
        cursor = Cursor(rows, so, tree, batch, version)
        return _json(self._page(cursor, 0, self._store(cursor) if len(rows) > batch else ""))

    def plan(self, q: Query, include_deleted: bool) -> tuple[SObject, Tree, list[Any]]:
        """The queried sObject, its SELECT tree and the rows the query returns (filtered,
        ordered, offset and limited; every row for COUNT()), or a SOQLError. Call it under
        ``state.lock``; the Bulk API's query jobs plan the same way."""
        so = self.schema.get(q.object_name.lower())
        if so is None:
            raise SOQLError(
                f"sObject type '{q.object_name}' is not supported. If you are attempting to use "
                "a custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
                "INVALID_TYPE",
                q.object_pos + 1,
            )
        tree: Tree = OrderedDict()
        for path, pos in q.fields:
            self._add_to_tree(tree, so, path, pos)
        pred = self._compile(so, q.where) if q.where is not None else None
        order = [
            (self.resolve(so, o.path, o.pos)[0], o.descending, o.nulls_last) for o in q.order_by
        ]
        if q.offset is not None and q.offset > MAX_OFFSET:
            raise SOQLError(
                f"Maximum SOQL offset allowed is {MAX_OFFSET}", "NUMBER_OUTSIDE_VALID_RANGE"
            )
        rows = [r for r in so.rows(include_deleted) if pred is None or pred(r)]
        if q.count_only:
            return so, tree, rows
        rows = order_rows(rows, order)
        if q.offset:
            rows = rows[q.offset :]
        if q.limit is not None:
            rows = rows[: q.limit]
        return so, tree, rows

    async def query_more(self, request: Request) -> Response:
        await pause(self.state)
        version = request.path_params["version"]
        locator, _, offset_text = request.path_params["locator"].rpartition("-")
        with self.state.lock:
            cursor = self._cursors.get(locator)
            if cursor is None or not offset_text.isdigit() or not API_VERSION.match(version):
                return _error(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
            return _json(self._page(cursor, int(offset_text), locator))

    def _store(self, cursor: Cursor) -> str:
        locator = sf_id(SF_PREFIX["QueryLocator"], self._next_locator)
        self._next_locator += 1
        self._cursors[locator] = cursor
        while len(self._cursors) > MAX_CURSORS:  # Salesforce also expires old cursors
            self._cursors.popitem(last=False)
        return locator

    def _page(self, cursor: Cursor, offset: int, locator: str) -> dict[str, Any]:
        chunk = cursor.rows[offset : offset + cursor.batch]
        rate = self.state.faults.salesforce.malformed_rate
        if rate > 0:  # records are corrupted one by one
            records = [
                self.render(cursor.sobject, cursor.tree, r, cursor.version, rate) for r in chunk
            ]
        else:
            records = self._render_columns(cursor.sobject, cursor.tree, chunk, cursor.version)
        end = offset + len(chunk)
        page: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not page["done"]:
            link = f"/services/data/{cursor.version}/query/{locator}-{end}"
            base = self.state.faults.salesforce.link_base.rstrip("/")
            page["nextRecordsUrl"] = f"{base}{link}"  # a path, unless a fault says otherwise
        page["records"] = records
        return page

    # -- planning -----------------------------------------------------------------------------

    def resolve(self, so: SObject, path: str, pos: int) -> tuple[Callable[[Any], Any], Field]:
        """A getter and the field for a (possibly dotted) path, or INVALID_FIELD."""
        parts = path.split(".")
        if len(parts) > 1 and parts[0].lower() == so.name.lower():
            parts = parts[1:]  # "Opportunity.Name" in a query on Opportunity
        getters: list[Callable[[Any], Any]] = []
        current = so
        for rel_name in parts[:-1]:
            rel = current.relationships.get(rel_name.lower())
            if rel is None:
                raise SOQLError(
                    f"Didn't understand relationship '{rel_name}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe "
                    "call for the appropriate names.",
                    "INVALID_FIELD",
                    pos + 1,
                )
            getters.append(rel.get)
            current = self.schema[rel.target.lower()]
        fld = current.fields.get(parts[-1].lower())
        if fld is None:
            raise SOQLError(
                f"No such column '{parts[-1]}' on entity '{current.name}'. If you are attempting "
                "to use a custom field, be sure to append the '__c' after the custom field name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
                "INVALID_FIELD",
                pos + 1,
            )
        if not getters:
            return fld.get, fld

        def chained(r: Any, _g: list[Callable[[Any], Any]] = getters, _f: Field = fld) -> Any:
            for g in _g:
                r = g(r)
                if r is None:
                    return None
            return _f.get(r)

        return chained, fld

    def _add_to_tree(self, tree: Tree, so: SObject, path: str, pos: int) -> None:
        self.resolve(so, path, pos)  # validates the whole path first
        parts = path.split(".")
        if len(parts) > 1 and parts[0].lower() == so.name.lower():
            parts = parts[1:]
        node, current = tree, so
        for rel_name in parts[:-1]:
            rel = current.relationships[rel_name.lower()]
            entry = node.get(rel.name)
            if not isinstance(entry, tuple):
                entry = (rel, OrderedDict())
                node[rel.name] = entry
            node, current = entry[1], self.schema[rel.target.lower()]
        fld = current.fields[parts[-1].lower()]
        if fld.name in node and not parts[:-1]:
            raise SOQLError(f"duplicate field selected: {fld.name}", "MALFORMED_QUERY", pos + 1)
        node[fld.name] = fld

    def _compile(self, so: SObject, cond: Condition) -> Callable[[Any], bool]:
        if isinstance(cond, BoolOp):
            items = [self._compile(so, c) for c in cond.items]
            if cond.op == "NOT":
                inner = items[0]
                return lambda r: not inner(r)
            if cond.op == "AND":
                return lambda r: all(f(r) for f in items)
            return lambda r: any(f(r) for f in items)
        get, fld = self.resolve(so, cond.path, cond.pos)
        return compile_comparison(get, fld, cond, self.state.company)

    # -- rendering ----------------------------------------------------------------------------

    def render(self, so: SObject, tree: Tree, r: Any, version: str, rate: float) -> dict[str, Any]:
        rid = so.id_of(r)
        out: dict[str, Any] = {
            "attributes": {
                "type": so.name,
                "url": f"/services/data/{version}/sobjects/{so.name}/{rid}",
            }
        }
        for name, node in tree.items():
            if isinstance(node, tuple):
                rel, sub = node
                related = rel.get(r)
                target = self.schema[rel.target.lower()]
                out[name] = (
                    None if related is None else self.render(target, sub, related, version, 0)
                )
            else:
                out[name] = _wire(node.type, node.get(r))
        if rate > 0:
            _corrupt(so, r, out, rate, self.state.company.seed)
        return out

    def _render_columns(
        self, so: SObject, tree: Tree, chunk: list[Any], version: str
    ) -> list[dict[str, Any]]:
        """``render`` of every row of ``chunk`` (no corruption), column by column: one map()
        per field instead of a Python call per row and field, as the Bulk API renders its CSV
        (a full read of a million Tasks renders a million records on either API)."""
        names = list(tree)
        columns = [list(map(self._wire_getter(node, version), chunk)) for node in tree.values()]
        url = f"/services/data/{version}/sobjects/{so.name}/"
        attributes = [{"type": so.name, "url": url + rid} for rid in map(so.id_of, chunk)]
        records: list[dict[str, Any]] = []
        append = records.append
        for attrs, values in zip(attributes, zip(*columns, strict=True), strict=True):
            record = {"attributes": attrs}
            record.update(zip(names, values))  # noqa: B905 (one value per name: zip(*columns))
            append(record)
        return records

    def _wire_getter(self, node: Any, version: str) -> Callable[[Any], Any]:
        """Row -> its JSON value for one node of the SELECT tree (what ``render`` writes)."""
        if isinstance(node, tuple):
            rel, sub = node
            target = self.schema[rel.target.lower()]
            get_related, render = rel.get, self.render
            return lambda r: (
                None if (related := get_related(r)) is None
                else render(target, sub, related, version, 0)
            )  # fmt: skip
        get, ftype = node.get, node.type
        if ftype == "datetime":
            return lambda r: None if (v := get(r)) is None else sf_datetime(v)
        if ftype in ("date", "currency", "percent", "double"):
            return lambda r: _wire(ftype, get(r))
        return get  # text, ids, booleans, ints: as the getter gives them

    # -- other endpoints ----------------------------------------------------------------------

    async def versions(self, request: Request) -> Response:
        return _json(
            [
                {"label": label, "url": f"/services/data/v{v}", "version": v}
                for v, label in (
                    ("58.0", "Summer '23"),
                    ("59.0", "Winter '24"),
                    ("60.0", "Spring '24"),
                )
            ]
        )

    async def limits(self, request: Request) -> Response:
        pf = self.state.faults.salesforce
        used = self.state.daily_calls["salesforce"]
        return _json(
            {
                "DailyApiRequests": {
                    "Max": pf.daily_limit,
                    "Remaining": max(0, pf.daily_limit - used),
                }
            }
        )

    async def describe(self, request: Request) -> Response:
        """``sobjects/{Type}/describe``: the fields and their types (the Bulk API's CSV carries
        no types; a client converts its strings with these)."""
        version = request.path_params["version"]
        so = self.schema.get(request.path_params["sobject"].lower())
        if so is None or not API_VERSION.match(version) or request.method != "GET":
            return self._missing()
        return _json(
            {
                "name": so.name,
                "queryable": True,
                "fields": [
                    {
                        "name": f.name,
                        "type": f.type,
                        "nillable": f.type not in ("id", "boolean"),
                        "relationshipName": _relationship_of(so, f.name),
                    }
                    for f in so.fields.values()
                ],
            }
        )

    async def retrieve(self, request: Request) -> Response:
        version = request.path_params["version"]
        so = self.schema.get(request.path_params["sobject"].lower())
        rid = request.path_params["record_id"]
        if so is None or not API_VERSION.match(version) or request.method != "GET":
            return self._missing()
        with self.state.lock:
            match = self._find(so, rid)
            if match is None:
                return self._missing()
            tree: Tree = OrderedDict((f.name, f) for f in so.fields.values())
            return _json(
                self.render(so, tree, match, version, self.state.faults.salesforce.malformed_rate)
            )

    def _find(self, so: SObject, rid: str) -> Any:
        """The live record behind an Id (15 or 18 characters), or None."""
        seq = sf_seq(rid)
        if seq is None:
            return None
        pool = _pool(self.state.company, so.name)
        if pool is None:  # stages and history rows: few, or derived; scan them
            return next((r for r in so.rows(False) if so.id_of(r)[:15] == rid[:15]), None)
        if not 0 <= seq < len(pool):
            return None
        cand = pool[seq]
        if so.id_of(cand)[:15] != rid[:15] or getattr(cand, "state", LIVE) != LIVE:
            return None
        if so.name in ("Task", "Event") and (cand.kind == MEETING) != (so.name == "Event"):
            return None
        return cand

    async def oauth_token(self, request: Request) -> Response:
        """Refresh-token grant: issues a new session id (the old one now reads as expired)."""
        form = await read_form(request)
        if form.get("grant_type") not in ("refresh_token", "client_credentials"):
            return Response(
                json.dumps(
                    {
                        "error": "unsupported_grant_type",
                        "error_description": "grant type not supported",
                    }
                ),
                400,
                media_type="application/json",
            )
        token = self.state.rotate_token("salesforce")
        instance = str(request.base_url).rstrip("/")
        if not instance.endswith("/salesforce"):
            instance += "/salesforce"
        return _json(
            {
                "access_token": token,
                "instance_url": instance,
                "id": f"{instance}/id/{sf_id('00D', 1)}/{sf_id('005', 0)}",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": "c2FuZGJveC1zaWduYXR1cmU=",
            }
        )

    async def not_found(self, request: Request) -> Response:
        return self._missing()

    @staticmethod
    def _missing() -> Response:
        return _error(404, "The requested resource does not exist", "NOT_FOUND")


def _pool(company: Company, name: str) -> list[Any] | None:
    pools: dict[str, list[Any]] = {
        "Account": company.accounts,
        "Contact": company.contacts,
        "Opportunity": company.deals,
        "User": company.owners,
        "Task": company.activities,
        "Event": company.activities,
    }
    return pools.get(name)


def _relationship_of(so: SObject, field_name: str) -> str | None:
    """``Owner`` for ``OwnerId``: the relationship a reference field is read through."""
    if not field_name.endswith("Id"):
        return None
    rel = so.relationships.get(field_name[:-2].lower())
    return rel.name if rel is not None else None


def _batch_size(header: str) -> int:
    m = re.search(r"batchSize\s*=\s*(\d+)", header)
    if not m:
        return DEFAULT_BATCH
    return min(MAX_BATCH, max(MIN_BATCH, int(m.group(1))))


# Which malformed kind shows how, per sObject: (field, bad value) pairs.
_BAD_VALUES: dict[str, dict[str, tuple[str, Any]]] = {
    "Opportunity": {
        "bad_amount": ("Amount", "12,5O0"),
        "bad_date": ("CloseDate", "2025-02-31"),
        "dangling_association": ("AccountId", sf_id("001", 62**9)),
    },
    "Contact": {"dangling_association": ("AccountId", sf_id("001", 62**9))},
    "Task": {
        "bad_date": ("ActivityDate", "2025-02-31"),
        "dangling_association": ("AccountId", sf_id("001", 62**9)),
    },
    "Event": {
        "bad_date": ("ActivityDate", "2025-02-31"),
        "dangling_association": ("AccountId", sf_id("001", 62**9)),
    },
}


def _corrupt(so: SObject, r: Any, out: dict[str, Any], rate: float, seed: int) -> None:
    object_type = ACTIVITY_KINDS[r.kind] if so.name == "Task" else _HS_TYPE.get(so.name, "")
    if not object_type:
        return
    bad = malformed_kind(seed, object_type, r.idx, rate)
    if bad is None:
        return
    if bad == "missing_id":
        if "Id" in out:
            out["Id"] = None
        return
    field_name, value = _BAD_VALUES.get(so.name, {}).get(bad, ("", None))
    if field_name in out:
        out[field_name] = value
