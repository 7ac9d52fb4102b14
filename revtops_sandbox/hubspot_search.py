"""HubSpot CRM search: request validation, filter compilation and the 10,000-result window.

`run_search` returns the matching records for a validated request; results are cached per
(object type, query, company version) so paging through one query scans the company once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from revtops_sandbox.company import LIVE, Company, Record, ms_of
from revtops_sandbox.hubspot_schema import HubSpotSchema, Prop

MAX_BODY_CHARS = 3000
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_LIMIT = 200
RESULT_WINDOW = 10_000
OPERATORS = frozenset(
    (
        "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
        "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
    )
)  # fmt: skip
# Free-text `query` looks at these, as HubSpot's default searchable properties do.
_QUERY_PROPS = {
    "companies": ("name", "domain", "website", "phone"),
    "contacts": ("firstname", "lastname", "email", "phone", "company"),
    "deals": ("dealname",),
    "meetings": ("hs_meeting_title", "hs_meeting_body"),
    "calls": ("hs_call_title", "hs_call_body"),
    "emails": ("hs_email_subject", "hs_email_text"),
    "notes": ("hs_note_body",),
    "tasks": ("hs_task_subject", "hs_task_body"),
}


class SearchError(ValueError):
    """A request HubSpot would refuse with 400 VALIDATION_ERROR."""


@dataclass(frozen=True, slots=True)
class SearchRequest:
    filter_groups: list[dict[str, Any]]
    sorts: list[dict[str, str]]
    query: str | None
    properties: list[str] | None
    limit: int
    after: int

    @property
    def cache_key(self) -> str:
        return json.dumps([self.filter_groups, self.sorts, self.query], sort_keys=True)


def parse_request(raw: bytes) -> SearchRequest:
    """Validate a search body the way HubSpot does; raise SearchError with its message."""
    text = raw.decode("utf-8", errors="replace")
    if len(text) > MAX_BODY_CHARS:
        raise SearchError(
            f"Request body is {len(text)} characters long; the maximum is {MAX_BODY_CHARS}."
        )
    try:
        body = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise SearchError(f"Invalid input JSON on line {exc.lineno}, column {exc.colno}") from exc
    if not isinstance(body, dict):
        raise SearchError("Invalid input JSON: expected an object")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise SearchError("filterGroups must be a list of objects")
    if len(groups) > MAX_GROUPS:
        raise SearchError(f"Too many filter groups ({len(groups)}); the maximum is {MAX_GROUPS}.")
    total = 0
    for g in groups:
        filters = g.get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(
                f"Too many filters in a group ({len(filters)}); "
                f"the maximum is {MAX_FILTERS_PER_GROUP}."
            )
        total += len(filters)
        for f in filters:
            if not isinstance(f, dict) or "propertyName" not in f:
                raise SearchError("Each filter needs a propertyName and an operator.")
            if f.get("operator", "EQ") not in OPERATORS:
                raise SearchError(
                    f"Invalid operator {f.get('operator')!r}; expected one of "
                    f"{', '.join(sorted(OPERATORS))}."
                )
    if total > MAX_FILTERS:
        raise SearchError(f"Too many filters ({total}); the maximum is {MAX_FILTERS}.")
    sorts = [_sort(s) for s in body.get("sorts") or []]
    if len(sorts) > 1:
        raise SearchError("Only one sort is supported.")
    limit = _int(body.get("limit", 10), "limit")
    if not 0 < limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}.")
    after = _int(body.get("after", 0) or 0, "after")
    if after < 0:
        raise SearchError("after must not be negative.")
    if after + limit > RESULT_WINDOW:
        raise SearchError(
            f"The search endpoints return at most {RESULT_WINDOW} results per query; "
            f"after ({after}) + limit ({limit}) is past it. Narrow the query, e.g. by a "
            "date range on the property you sort by."
        )
    props = body.get("properties")
    if props is not None and not isinstance(props, list):
        raise SearchError("properties must be a list of property names.")
    query = body.get("query")
    return SearchRequest(
        filter_groups=groups,
        sorts=sorts,
        query=str(query) if query else None,
        properties=[str(p) for p in props] if props else None,
        limit=limit,
        after=after,
    )


def _sort(s: Any) -> dict[str, str]:
    if isinstance(s, str):  # HubSpot also takes "createdate" or "-createdate"
        return {
            "propertyName": s.lstrip("-"),
            "direction": "DESCENDING" if s[:1] == "-" else "ASCENDING",
        }
    if not isinstance(s, dict) or "propertyName" not in s:
        raise SearchError("Each sort needs a propertyName.")
    direction = str(s.get("direction", "ASCENDING")).upper()
    if direction not in ("ASCENDING", "DESCENDING"):
        raise SearchError(f"Invalid sort direction {direction!r}.")
    return {"propertyName": str(s["propertyName"]), "direction": direction}


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SearchError(f"{name} must be an integer, got {value!r}.") from exc


class SearchEngine:
    """Runs searches over one company, keeping the last few full result lists."""

    def __init__(self, company: Company, schema: HubSpotSchema, cache_size: int = 16) -> None:
        self.company = company
        self.schema = schema
        self._cache: OrderedDict[tuple[str, str, int], list[Record]] = OrderedDict()
        self._cache_size = cache_size

    def run(self, object_type: str, req: SearchRequest) -> list[Record]:
        """All matches in result order (archived and deleted records never match)."""
        key = (object_type, req.cache_key, self.company.version)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        props = self.schema.props[object_type]
        groups = [
            [_compile(props.get(f["propertyName"]), f) for f in g.get("filters") or []]
            for g in req.filter_groups
        ]
        groups = [g for g in groups if g] or [[]]
        text = _query_matcher(props, object_type, req.query)
        out = [
            r
            for r in self.company.records(object_type)
            if r.state == LIVE and any(all(f(r) for f in g) for g in groups) and text(r)
        ]
        if req.sorts:
            out = _sorted(out, props.get(req.sorts[0]["propertyName"]), req.sorts[0]["direction"])
        self._cache[key] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out


def _sorted(recs: list[Record], prop: Prop | None, direction: str) -> list[Record]:
    """Sort by one property; ties keep id order; records without a value go last."""
    if prop is None:
        return recs
    fn = prop.value
    keyed = [(fn(r), r) for r in recs]
    present = [(v.lower() if isinstance(v, str) else v, r) for v, r in keyed if v is not None]
    missing = [r for v, r in keyed if v is None]
    present.sort(key=lambda p: p[0], reverse=direction == "DESCENDING")
    return [r for _, r in present] + missing


Predicate = Callable[[Record], bool]


def _compile(prop: Prop | None, f: dict[str, Any]) -> Predicate:
    op = f.get("operator", "EQ")
    if prop is None:  # unknown property: no record has a value for it
        return lambda r: op in ("NOT_HAS_PROPERTY", "NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
    get = prop.value
    if op == "HAS_PROPERTY":
        return lambda r: get(r) not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return lambda r: get(r) in (None, "")
    if op in ("IN", "NOT_IN"):
        values = f.get("values")
        if not isinstance(values, list):
            raise SearchError(f"Operator {op} needs a 'values' list.")
        wanted = {_coerce(prop, v) for v in values}
        if op == "IN":
            return lambda r: _norm(get(r)) in wanted
        return lambda r: _norm(get(r)) not in wanted
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(f.get("value", "")).lower().strip("*")
        contains: Predicate = lambda r: token in str(get(r) or "").lower()  # noqa: E731
        return contains if op == "CONTAINS_TOKEN" else (lambda r: not contains(r))
    if "value" not in f:
        raise SearchError(f"Operator {op} on {prop.name} needs a 'value'.")
    x = _coerce(prop, f["value"])
    if op == "EQ":
        return lambda r: _norm(get(r)) == x
    if op == "NEQ":
        return lambda r: _norm(get(r)) != x
    if op == "BETWEEN":
        if "highValue" not in f:
            raise SearchError(f"Operator BETWEEN on {prop.name} needs a 'highValue'.")
        hi = _coerce(prop, f["highValue"])
        return lambda r: (v := _norm(get(r))) is not None and x <= v <= hi
    cmp: Callable[[Any], bool] = {
        "LT": lambda v: v < x,
        "LTE": lambda v: v <= x,
        "GT": lambda v: v > x,
        "GTE": lambda v: v >= x,
    }[op]
    return lambda r: (v := _norm(get(r))) is not None and cmp(v)


def _norm(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _coerce(prop: Prop, raw: Any) -> Any:
    """A filter value as the property's typed value (dates: epoch ms strings, or ISO)."""
    if prop.kind == "datetime":
        text = str(raw).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise SearchError(
                f"{raw!r} is not a valid value for {prop.name}: use epoch milliseconds."
            ) from exc
        return ms_of(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
    if prop.kind == "number":
        try:
            return float(raw)
        except (TypeError, ValueError) as exc:
            raise SearchError(f"{raw!r} is not a number ({prop.name}).") from exc
    if prop.kind == "bool":
        return str(raw).lower() == "true"
    return str(raw).lower()


def _query_matcher(props: dict[str, Prop], object_type: str, query: str | None) -> Predicate:
    if not query:
        return lambda r: True
    needle = query.lower().strip("*")
    getters: Sequence[Callable[[Record], Any]] = [
        props[n].value for n in _QUERY_PROPS[object_type] if n in props
    ]
    return lambda r: any(needle in str(g(r) or "").lower() for g in getters)
