"""HubSpot CRM v3 as Starlette routes, mounted at ``/hubspot``.

Connectors configured with base URL ``{sandbox}/hubspot`` call the same paths as on
``https://api.hubapi.com``. Auth, rate limits and injected faults are applied before these
handlers by `gate.py`; the handlers only answer well-formed questions about the company.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revtops_sandbox import names
from revtops_sandbox.company import (
    ARCHIVED,
    HS_USER_ID_BASE,
    LIVE,
    OBJECT_TYPES,
    PIPELINES,
    PURGED,
    RETIRED_STAGES,
)
from revtops_sandbox.company import iso_ms as _iso
from revtops_sandbox.hubspot_history import properties_with_history
from revtops_sandbox.hubspot_schema import (
    ASSOCIATION_ALIASES,
    ASSOCIATION_TYPE_IDS,
    HubSpotSchema,
)
from revtops_sandbox.hubspot_search import SearchEngine, SearchError, parse_request
from revtops_sandbox.state import SandboxState
from revtops_sandbox.web import read_form

MAX_LIST_LIMIT = 100
MAX_HISTORY_LIST_LIMIT = 50  # list pages asking for propertiesWithHistory
MAX_ASSOCIATION_INPUTS = 1000
MAX_BATCH_READ_INPUTS = 100
MAX_HISTORY_BATCH_READ_INPUTS = 50  # batch reads asking for propertiesWithHistory


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's error envelope."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def error(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> Response:
    return json_response(error_body(message, category, **extra), status)


def rate_limit_body(policy: str) -> dict[str, Any]:
    policy_text = {
        "TEN_SECONDLY_ROLLING": "ten_secondly_rolling",
        "SECONDLY": "secondly",
        "DAILY": "daily",
    }[policy]
    return {
        "status": "error",
        "message": f"You have reached your {policy_text} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }


@dataclass(frozen=True, slots=True)
class ListPage:
    """What a list request asks for, apart from its cursor: equal for consecutive pages."""

    object_type: str
    limit: int
    want: int  # LIVE or ARCHIVED
    properties: tuple[str, ...] | None
    associations: tuple[str, ...]
    history: tuple[str, ...]  # propertiesWithHistory
    url: str  # scheme://host/path, for paging.next.link
    query: tuple[tuple[str, str], ...]  # the query string without `after`


class HubSpotAPI:
    """The HubSpot endpoints over one sandbox state."""

    def __init__(self, state: SandboxState, prefetch: bool = True) -> None:
        self.state = state
        self.schema = HubSpotSchema(state.company)
        self.search_engine = SearchEngine(state.company, self.schema)
        self.prefetch = prefetch
        self._prefetched: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._prefetched_next: dict[tuple[Any, ...], str | None] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/crm/v3/objects/{object_type}", self.list_objects, methods=["GET"]),
            Route("/crm/v3/objects/{object_type}/search", self.search, methods=["POST"]),
            Route("/crm/v3/objects/{object_type}/batch/read", self.batch_read, methods=["POST"]),
            Route("/crm/v3/objects/{object_type}/{object_id}", self.get_object, methods=["GET"]),
            Route(
                "/crm/v4/associations/{from_type}/{to_type}/batch/read",
                self.association_batch_read,
                methods=["POST"],
            ),
            Route("/crm/v3/owners", self.owners, methods=["GET"]),
            Route("/crm/v3/owners/", self.owners, methods=["GET"]),
            Route("/crm/v3/pipelines/deals", self.pipelines, methods=["GET"]),
            Route("/crm/v3/pipelines/deals/{pipeline_id}", self.pipeline, methods=["GET"]),
            Route("/oauth/v1/token", self.oauth_token, methods=["POST"]),
            Route(
                "/{path:path}",
                self.not_found,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]

    # -- objects ------------------------------------------------------------------------------

    async def list_objects(self, request: Request) -> Response:
        object_type = request.path_params["object_type"]
        if object_type not in OBJECT_TYPES:
            return _unknown_type(object_type)
        q = request.query_params
        try:
            limit = int(q.get("limit", "10"))
        except ValueError:
            return error(400, f"limit must be an integer, got {q.get('limit')!r}")
        if not 0 < limit <= MAX_LIST_LIMIT:
            return error(
                400,
                f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}",
                errors=[{"message": f"must be less than or equal to {MAX_LIST_LIMIT}",
                         "in": "limit", "code": "INVALID_INTEGER"}],
            )  # fmt: skip
        history = _csv(q.getlist("propertiesWithHistory")) or ()
        if history and limit > MAX_HISTORY_LIST_LIMIT:
            return error(
                400,
                f"limit must be at most {MAX_HISTORY_LIST_LIMIT} when propertiesWithHistory "
                f"is requested, got {limit}",
            )
        after_raw = q.get("after")
        if after_raw is not None and not after_raw.isdigit():
            return error(
                400, f"after must be a cursor returned by a previous page, got {after_raw!r}"
            )
        archived = q.get("archived", "false").lower()
        if archived not in ("true", "false"):
            return error(400, f"archived must be true or false, got {archived!r}")
        want = ARCHIVED if archived == "true" else LIVE
        assocs = _associations(q.getlist("associations"))
        if assocs is None:
            return error(400, "Unknown association object type in associations")
        scope = request.scope
        host = request.headers.get("host") or "{}:{}".format(*scope["server"])
        query = tuple(
            (k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1")) if k != "after"
        )
        page = ListPage(
            object_type=object_type,
            limit=limit,
            want=want,
            properties=_csv(q.getlist("properties")),
            associations=tuple(assocs),
            history=history,
            url=f"{scope['scheme']}://{host}{scope['path']}",
            query=query,
        )
        with self.state.lock:
            key = self._page_key(page, after_raw)
            body = self._prefetched.pop(key, None)
            if body is None:
                body, next_after = self._render_page(page, after_raw)
            else:
                next_after = self._prefetched_next.pop(key, None)
        if next_after is not None and self.prefetch:
            # Render the page this client will ask for next while it digests this one: one
            # sequential client then waits for the network, not for rendering.
            asyncio.get_running_loop().call_soon(self._prefetch, page, next_after)
        return Response(body, media_type="application/json")

    def _page_key(self, page: ListPage, after: str | None) -> tuple[Any, ...]:
        rate = self.state.faults.hubspot.malformed_rate
        return (page, after, self.state.company.version, rate)

    def _render_page(self, page: ListPage, after: str | None) -> tuple[bytes, str | None]:
        """One list page as JSON bytes, and the cursor of the next page (None on the last)."""
        co = self.state.company
        object_type, want = page.object_type, page.want
        sel = self.schema.select(object_type, page.properties)
        rate = self.state.faults.hubspot.malformed_rate
        recs = co.records(object_type)
        i = co.find_index(object_type, int(after)) if after else 0
        results: list[dict[str, Any]] = []
        n = len(recs)
        while i < n and len(results) < page.limit:
            r = recs[i]
            i += 1
            if r.state == want:
                obj = self.schema.render(object_type, r, sel, page.associations, rate)
                if page.history:
                    obj["propertiesWithHistory"] = properties_with_history(
                        self.schema, object_type, r, page.history
                    )
                results.append(obj)
        while i < n and recs[i].state != want:
            i += 1
        body: dict[str, Any] = {"results": results}
        next_after = None
        if i < n:
            next_after = str(co.hs_id(object_type, recs[i]))
            link = f"{page.url}?{urlencode((*page.query, ('after', next_after)))}"
            body["paging"] = {"next": {"after": next_after, "link": link}}
        return json.dumps(body, separators=(",", ":")).encode(), next_after

    def _prefetch(self, page: ListPage, after: str) -> None:
        with self.state.lock:
            key = self._page_key(page, after)
            if key in self._prefetched:
                return
            body, next_after = self._render_page(page, after)
            self._prefetched[key] = body
            self._prefetched_next[key] = next_after
            while len(self._prefetched) > 16:  # a few concurrent streams at most
                old, _ = self._prefetched.popitem(last=False)
                self._prefetched_next.pop(old, None)

    async def get_object(self, request: Request) -> Response:
        object_type = request.path_params["object_type"]
        if object_type not in OBJECT_TYPES:
            return _unknown_type(object_type)
        q = request.query_params
        archived = q.get("archived", "false").lower() == "true"
        assocs = _associations(q.getlist("associations")) or []
        with self.state.lock:
            rec = self.state.company.find(object_type, request.path_params["object_id"])
            if rec is None or rec.state == PURGED or (rec.state == ARCHIVED) != archived:
                return error(404, "Object not found", "OBJECT_NOT_FOUND")
            props = self.schema.select(object_type, _csv(q.getlist("properties")))
            obj = self.schema.render(
                object_type, rec, props, assocs, self.state.faults.hubspot.malformed_rate
            )
        return json_response(obj)

    async def search(self, request: Request) -> Response:
        object_type = request.path_params["object_type"]
        if object_type not in OBJECT_TYPES:
            return _unknown_type(object_type)
        try:
            req = parse_request(await request.body())
            with self.state.lock:
                matches = self.search_engine.run(object_type, req)
                props = self.schema.select(object_type, req.properties)
                rate = self.state.faults.hubspot.malformed_rate
                results = []
                for r in matches[req.after : req.after + req.limit]:
                    results.append(self.schema.render(object_type, r, props, (), rate))
        except SearchError as exc:
            return error(400, str(exc))
        page: dict[str, Any] = {"total": len(matches), "results": results}
        if req.after + req.limit < len(matches):
            page["paging"] = {"next": {"after": str(req.after + req.limit)}}
        return json_response(page)

    async def batch_read(self, request: Request) -> Response:
        """v3 ``batch/read``: records by id with ``properties`` and ``propertiesWithHistory``;
        ids that do not exist (or are not in the ``archived`` state asked for) land in
        ``errors`` and make the answer a 207 Multi-Status."""
        object_type = request.path_params["object_type"]
        if object_type not in OBJECT_TYPES:
            return _unknown_type(object_type)
        try:
            body = json.loads(await request.body() or b"{}")
            ids = [str(item["id"]) for item in body.get("inputs", [])]
            wanted = [str(p) for p in body.get("properties") or []]
            history = [str(p) for p in body.get("propertiesWithHistory") or []]
            archived = bool(body.get("archived", False))
        except (ValueError, TypeError, KeyError, AttributeError):
            return error(400, 'Invalid input JSON: expected {"inputs": [{"id": ...}]}')
        limit = MAX_HISTORY_BATCH_READ_INPUTS if history else MAX_BATCH_READ_INPUTS
        if len(ids) > limit:
            return error(400, f"Too many inputs ({len(ids)}); the maximum is {limit}.")
        started = _iso(int(time.time() * 1000))
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        with self.state.lock:
            sel = self.schema.select(object_type, wanted or None)
            rate = self.state.faults.hubspot.malformed_rate
            for ident in dict.fromkeys(ids):
                rec = self.state.company.find(object_type, ident)
                if rec is None or rec.state == PURGED or (rec.state == ARCHIVED) != archived:
                    missing.append(ident)
                    continue
                obj = self.schema.render(object_type, rec, sel, (), rate)
                if history:
                    obj["propertiesWithHistory"] = properties_with_history(
                        self.schema, object_type, rec, history
                    )
                results.append(obj)
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            answer["numErrors"] = 1
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {object_type.upper()} objects, they may be "
                    "deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            ]
        answer["startedAt"] = started
        answer["completedAt"] = _iso(int(time.time() * 1000))
        return json_response(answer, 207 if missing else 200)

    async def association_batch_read(self, request: Request) -> Response:
        """v4 ``batch/read``: each input's associated ids; inputs with none land in ``errors``
        and make the answer a 207 Multi-Status, as HubSpot does."""
        from_type = ASSOCIATION_ALIASES.get(request.path_params["from_type"].lower())
        to_type = ASSOCIATION_ALIASES.get(request.path_params["to_type"].lower())
        if from_type is None or to_type is None:
            return error(400, "Unknown object type in the association path")
        try:
            body = json.loads(await request.body() or b"{}")
            ids = [str(item["id"]) for item in body.get("inputs", [])]
        except (ValueError, TypeError, KeyError, AttributeError):
            return error(400, 'Invalid input JSON: expected {"inputs": [{"id": ...}]}')
        if len(ids) > MAX_ASSOCIATION_INPUTS:
            return error(
                400, f"Too many inputs ({len(ids)}); the maximum is {MAX_ASSOCIATION_INPUTS}."
            )
        started = _iso(int(time.time() * 1000))
        types = [
            {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label}
            for type_id, label in ASSOCIATION_TYPE_IDS.get((from_type, to_type), ((0, None),))
        ]
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        with self.state.lock:
            for ident in ids:
                rec = self.state.company.find(from_type, ident)
                links = (
                    self.schema.associated(from_type, rec, to_type)
                    if rec is not None and rec.state == LIVE
                    else []
                )
                if links:
                    to = [{"toObjectId": int(link), "associationTypes": types} for link in links]
                    results.append({"from": {"id": ident}, "to": to})
                else:
                    missing.append(ident)
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            answer["numErrors"] = len(missing)
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {to_type} is associated with {from_type} {ident}.",
                    "context": {"fromObjectId": [ident]},
                }
                for ident in missing
            ]
        answer["startedAt"] = started
        answer["completedAt"] = _iso(int(time.time() * 1000))
        return json_response(answer, 207 if missing else 200)

    # -- owners and pipelines -----------------------------------------------------------------

    async def owners(self, request: Request) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit", "100"))
            start = int(q.get("after", "0") or 0)
        except ValueError:
            return error(400, "limit and after must be integers")
        if not 0 < limit <= 500:
            return error(400, f"limit must be between 1 and 500, got {limit}")
        archived = q.get("archived", "false").lower() == "true"
        email = (q.get("email") or "").lower()
        co = self.state.company
        pool = [
            o
            for o in co.owners
            if (not o.active) == archived and (not email or o.email.lower() == email)
        ]
        page_owners = pool[start : start + limit]
        results = [
            {
                "id": str(o.hs_id),
                "email": o.email,
                "type": "PERSON",
                "firstName": o.first_name,
                "lastName": o.last_name,
                "userId": HS_USER_ID_BASE + o.idx,
                "userIdIncludingInactive": HS_USER_ID_BASE + o.idx,
                "createdAt": _iso(o.created_ms),
                "updatedAt": _iso(o.updated_ms),
                "archived": not o.active,
                "teams": [
                    {
                        "id": str(4_100_000 + o.team),
                        "name": names.OWNER_TEAMS[o.team],
                        "primary": True,
                    }
                ],
            }
            for o in page_owners
        ]
        page: dict[str, Any] = {"results": results}
        if start + limit < len(pool):
            after = str(start + limit)
            page["paging"] = {"next": {"after": after, "link": _next_link(request, after)}}
        return json_response(page)

    async def pipelines(self, request: Request) -> Response:
        return json_response({"results": [self._pipeline(i) for i in range(len(PIPELINES))]})

    async def pipeline(self, request: Request) -> Response:
        for i, p in enumerate(PIPELINES):
            if p.hs_id == request.path_params["pipeline_id"]:
                return json_response(self._pipeline(i))
        return error(404, "Pipeline not found", "OBJECT_NOT_FOUND")

    def _pipeline(self, i: int) -> dict[str, Any]:
        p = PIPELINES[i]
        created = _iso(self.state.company.anchor_ms - 900 * 86_400_000)
        retired = _iso(self.state.company.anchor_ms - 400 * 86_400_000)
        return {
            "label": p.label,
            "displayOrder": p.display_order,
            "id": p.hs_id,
            "stages": [
                {
                    "label": s.label,
                    "displayOrder": order,
                    "metadata": {
                        "isClosed": "true" if s.is_closed else "false",
                        "probability": str(s.probability),
                    },
                    "id": s.hs_id,
                    "createdAt": created,
                    "updatedAt": created,
                    "archived": False,
                }
                for order, s in enumerate(p.stages)
            ]
            + [
                {
                    "label": s.label,
                    "displayOrder": len(p.stages) + order,
                    "metadata": {
                        "isClosed": "true" if s.is_closed else "false",
                        "probability": str(s.probability),
                    },
                    "id": s.hs_id,
                    "createdAt": created,
                    "updatedAt": retired,
                    "archived": True,
                    "archivedAt": retired,
                }
                for order, s in enumerate(RETIRED_STAGES.get(p.hs_id, ()))
            ],
            "createdAt": created,
            "updatedAt": created,
            "archived": False,
        }

    # -- auth ---------------------------------------------------------------------------------

    async def oauth_token(self, request: Request) -> Response:
        """OAuth refresh: any refresh_token grant issues a new access token (the old expires)."""
        form = await read_form(request)
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return json_response(
                {"status": "BAD_GRANT", "message": "missing or unknown grant type",
                 "correlationId": str(uuid.uuid4())},
                400,
            )  # fmt: skip
        token = self.state.rotate_token("hubspot")
        return json_response(
            {
                "access_token": token,
                "refresh_token": str(form["refresh_token"]),
                "expires_in": 1800,
                "token_type": "bearer",
            }
        )

    async def not_found(self, request: Request) -> Response:
        return error(404, f"No route for {request.method} {request.url.path}", "OBJECT_NOT_FOUND")


def _next_link(request: Request, after: str) -> str:
    """The request's own URL with ``after`` replaced (Starlette's URL helpers are ~1 ms)."""
    scope = request.scope
    host = request.headers.get("host") or "{}:{}".format(*scope["server"])
    query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1")) if k != "after"]
    query.append(("after", after))
    return f"{scope['scheme']}://{host}{scope['path']}?{urlencode(query)}"


def _unknown_type(object_type: str) -> Response:
    return error(400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR")


def _csv(values: list[str]) -> tuple[str, ...] | None:
    """Repeated keys and comma lists alike: ``?properties=a,b&properties=c``."""
    out = tuple(part.strip() for v in values for part in v.split(",") if part.strip())
    return out or None


def _associations(values: list[str]) -> list[str] | None:
    out: list[str] = []
    for name in _csv(values) or []:
        target = ASSOCIATION_ALIASES.get(name.lower())
        if target is None:
            return None
        if target not in out:
            out.append(target)
    return out
