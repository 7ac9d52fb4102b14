"""HubSpot's view of the company: properties per object type, rendered to HubSpot's JSON.

Every property has a typed value (what search filters and sorts compare: epoch ms for
datetimes, numbers for numbers, lower-case text for strings) and a wire text (always a string
or null, as HubSpot sends them). Records are rendered page by page; nothing is pre-rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from revtops_sandbox import names
from revtops_sandbox.company import (
    ACTIVITY_KINDS,
    ARCHIVED,
    DAY_MS,
    HS_ID_BASE,
    LIVE,
    MEETING,
    PIPELINES,
    Account,
    Activity,
    Company,
    Contact,
    Deal,
    Record,
    iso_ms,
)
from revtops_sandbox.faults import malformed_kind
from revtops_sandbox.records import deal_name

# What HubSpot returns when a request names no properties, and what it always adds when it does.
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": (
        "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname",
    ),
    "deals": (
        "amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
        "hs_object_id", "pipeline",
    ),
}  # fmt: skip
ALWAYS_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": ("createdate", "lastmodifieddate", "hs_object_id"),
    "deals": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
}
for _kind in ACTIVITY_KINDS:
    DEFAULT_PROPERTIES[_kind] = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
    ALWAYS_PROPERTIES[_kind] = DEFAULT_PROPERTIES[_kind]

# Association type names as HubSpot spells them (engagement "meeting" is "meeting_event").
_SINGULAR = {
    "companies": "company",
    "contacts": "contact",
    "deals": "deal",
    "meetings": "meeting_event",
    "calls": "call",
    "emails": "email",
    "notes": "note",
    "tasks": "task",
}
ASSOCIATION_ALIASES = {
    **{t: t for t in _SINGULAR},
    **{s: t for t, s in _SINGULAR.items()},
    "company": "companies",
    "contact": "contacts",
    "deal": "deals",
    "meeting": "meetings",
}

# HubSpot-defined association type ids (v4 API) for the pairs the sandbox knows. Ids of the
# engagement pairs follow HubSpot's published table; treat them as UNVERIFIED in detail.
_ENGAGEMENT_TYPE_IDS = {  # kind: (to contact, to company, to deal, from contact, company, deal)
    "meetings": (200, 188, 212, 199, 187, 211),
    "calls": (194, 182, 206, 193, 181, 205),
    "emails": (198, 186, 210, 197, 185, 209),
    "notes": (202, 190, 214, 201, 189, 213),
    "tasks": (204, 192, 216, 203, 191, 215),
}
ASSOCIATION_TYPE_IDS: dict[tuple[str, str], tuple[tuple[int, str | None], ...]] = {
    ("contacts", "companies"): ((1, "Primary"), (279, None)),
    ("companies", "contacts"): ((2, "Primary"), (280, None)),
    ("deals", "companies"): ((5, None),),
    ("companies", "deals"): ((6, None),),
    ("deals", "contacts"): ((3, None),),
    ("contacts", "deals"): ((4, None),),
}
for _engagement, _ids in _ENGAGEMENT_TYPE_IDS.items():
    for _i, _other in enumerate(("contacts", "companies", "deals")):
        ASSOCIATION_TYPE_IDS[(_engagement, _other)] = ((_ids[_i], None),)
        ASSOCIATION_TYPE_IDS[(_other, _engagement)] = ((_ids[_i + 3], None),)

_BAD_AMOUNTS = ("12,5O0", "$1.2k", "N/A", "4 500,00")
_BAD_DATES = ("31/02/2025", "not a date", "2025-13-45", "yesterday")
_CALL_DISPOSITIONS = (
    "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "73a0d17f-1163-4015-bdd5-ec830791da20",
)
_TASK_STATUS = ("NOT_STARTED", "IN_PROGRESS", "WAITING", "DEFERRED", "COMPLETED")
_TASK_PRIORITY = ("LOW", "MEDIUM", "HIGH")
_TASK_TYPE = ("TODO", "CALL", "EMAIL")
_LOCATIONS = ("Zoom", "Google Meet", "Microsoft Teams", "On-site")
_FORECAST = {"Pipeline": "PIPELINE", "Best Case": "BEST_CASE", "Commit": "COMMIT",
             "Closed": "CLOSED", "Omitted": "OMIT"}  # fmt: skip
# names.LEAD_SOURCES -> HubSpot's original-source enumeration
_ANALYTICS_SOURCE = (
    "ORGANIC_SEARCH", "OFFLINE", "REFERRALS", "OFFLINE", "DIRECT_TRAFFIC", "PAID_SEARCH",
)  # fmt: skip
_CONTACT_STAGE = ("opportunity", "customer", "other", "customer")


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    kind: str  # string | enumeration | number | datetime | bool
    value: Callable[[Any], Any]  # typed value for filters and sorts (None when unset)
    text: Callable[[Any], str | None]  # the string HubSpot sends
    # "created", "updated" or "id": rendered once per record and shared with createdAt,
    # updatedAt and id (timestamp formatting is the hot spot of a page).
    role: str = ""


@dataclass(frozen=True, slots=True)
class Selection:
    """The properties one request renders, split so shared values are computed once."""

    plain: tuple[tuple[str, Callable[[Any], str | None]], ...]  # (name, text function)
    created: tuple[str, ...]
    updated: tuple[str, ...]
    ids: tuple[str, ...]


def _str(name: str, fn: Callable[[Any], str | None], kind: str = "string") -> Prop:
    return Prop(name, kind, fn, fn)


def _num(name: str, fn: Callable[[Any], float | int | None], fmt: str = "{}") -> Prop:
    def text(r: Any) -> str | None:
        v = fn(r)
        return None if v is None else fmt.format(v)

    return Prop(name, "number", fn, text)


def _dt(name: str, fn: Callable[[Any], int | None]) -> Prop:
    def text(r: Any) -> str | None:
        v = fn(r)
        return None if v is None else iso_ms(v)

    return Prop(name, "datetime", fn, text)


def _role(prop: Prop, role: str) -> Prop:
    return Prop(prop.name, prop.kind, prop.value, prop.text, role)


def _bool(name: str, fn: Callable[[Any], bool]) -> Prop:
    return Prop(name, "bool", fn, lambda r: "true" if fn(r) else "false")


class HubSpotSchema:
    """Properties and rendering for one company."""

    def __init__(self, company: Company) -> None:
        self.company = company
        self.props: dict[str, dict[str, Prop]] = {
            "companies": _index(self._company_props()),
            "contacts": _index(self._contact_props()),
            "deals": _index(self._deal_props()),
        }
        for kind in ACTIVITY_KINDS:
            self.props[kind] = _index(self._activity_props(kind))
        self._assoc_cache: dict[tuple[str, str], Callable[[Any], Any]] = {}

    # -- property tables ------------------------------------------------------------------

    def _common(self, object_type: str, modified: str, created: str) -> list[Prop]:
        base = HS_ID_BASE["activities" if object_type in ACTIVITY_KINDS else object_type]
        owner_ids = [str(o.hs_id) for o in self.company.owners]  # owners never change
        return [
            _role(_dt(created, lambda r: r.created_ms), "created"),
            _role(_dt(modified, lambda r: r.updated_ms), "updated"),
            _role(_num("hs_object_id", lambda r: base + r.idx), "id"),
            _str("hubspot_owner_id", lambda r: owner_ids[r.owner]),
        ]

    def _company_props(self) -> list[Prop]:
        def a(fn: Callable[[Account], Any]) -> Callable[[Any], Any]:
            return fn

        return [
            *self._common("companies", "hs_lastmodifieddate", "createdate"),
            _str("name", a(lambda r: r.name)),
            _str("domain", a(lambda r: r.domain)),
            _str("website", a(lambda r: f"https://www.{r.domain}")),
            _str("industry", a(lambda r: names.INDUSTRIES[r.industry][0]), "enumeration"),
            _str("type", a(lambda r: names.ACCOUNT_KINDS[r.kind][1]), "enumeration"),
            _str("lifecyclestage", a(lambda r: names.ACCOUNT_KINDS[r.kind][2]), "enumeration"),
            _str("city", a(lambda r: names.CITIES[r.city][0])),
            _str("country", a(lambda r: names.CITIES[r.city][1])),
            _str("phone", a(lambda r: _phone(r.idx, 0))),
            _num("numberofemployees", a(lambda r: r.employees)),
            _num("annualrevenue", a(lambda r: r.employees * 185_000)),
        ]

    def _contact_props(self) -> list[Prop]:
        accounts = self.company.accounts
        company_base = HS_ID_BASE["companies"]

        def c(fn: Callable[[Contact], Any]) -> Callable[[Any], Any]:
            return fn

        return [
            *self._common("contacts", "lastmodifieddate", "createdate"),
            _str("firstname", c(lambda r: r.first_name)),
            _str("lastname", c(lambda r: r.last_name)),
            _str("email", c(lambda r: r.email)),
            _str("jobtitle", c(lambda r: names.CONTACT_TITLES[r.title])),
            _str("phone", c(lambda r: _phone(r.idx, r.version))),
            _str("company", c(lambda r: accounts[r.account].name)),
            _str("associatedcompanyid", c(lambda r: str(company_base + r.account))),
            _str(
                "lifecyclestage",
                c(lambda r: _CONTACT_STAGE[accounts[r.account].kind]),
                "enumeration",
            ),
        ]

    def _deal_props(self) -> list[Prop]:
        accounts = self.company.accounts

        def d(fn: Callable[[Deal], Any]) -> Callable[[Any], Any]:
            return fn

        def stage(r: Deal) -> Any:
            return PIPELINES[r.pipeline].stages[r.stage]

        return [
            *self._common("deals", "hs_lastmodifieddate", "createdate"),
            _str("dealname", d(lambda r: deal_name(accounts[r.account], r))),
            _num(
                "amount",
                d(lambda r: None if r.amount_cents < 0 else r.amount_cents / 100),
                "{:.2f}",
            ),
            _str("dealstage", d(lambda r: stage(r).hs_id), "enumeration"),
            _str("pipeline", d(lambda r: PIPELINES[r.pipeline].hs_id), "enumeration"),
            Prop("closedate", "datetime", d(lambda r: r.close_day * DAY_MS), _closedate_text),
            _num("hs_deal_stage_probability", d(lambda r: stage(r).probability)),
            _str("dealtype", d(lambda r: PIPELINES[r.pipeline].hs_dealtype), "enumeration"),
            _bool("hs_is_closed", d(lambda r: stage(r).is_closed)),
            _bool("hs_is_closed_won", d(lambda r: stage(r).is_won)),
            _str(
                "hs_manual_forecast_category",
                d(lambda r: _FORECAST[stage(r).forecast_name]),
                "enumeration",
            ),
            _str(
                "hs_forecast_category",
                d(lambda r: _FORECAST[stage(r).forecast_name]),
                "enumeration",
            ),
            _str("deal_currency_code", d(lambda r: "USD"), "enumeration"),
            _str("leadsource", d(lambda r: names.LEAD_SOURCES[r.lead_source]), "enumeration"),
            _str(
                "hs_analytics_source",
                d(lambda r: _ANALYTICS_SOURCE[r.lead_source]),
                "enumeration",
            ),
            _num("num_associated_contacts", d(lambda r: len(r.contacts))),
        ]

    def _activity_props(self, kind: str) -> list[Prop]:
        co = self.company
        common = [
            *self._common(kind, "hs_lastmodifieddate", "hs_createdate"),
            _dt("hs_timestamp", lambda r: r.ts_ms),
        ]

        def body(r: Activity) -> str:
            return activity_body(co, r)

        def x(fn: Callable[[Activity], Any]) -> Callable[[Any], Any]:
            return fn

        if kind == "meetings":
            return [
                *common,
                _str("hs_meeting_title", x(lambda r: activity_title(co, r))),
                _str("hs_meeting_body", x(body)),
                _str("hs_internal_meeting_notes", x(lambda r: None)),
                _dt("hs_meeting_start_time", x(lambda r: r.ts_ms)),
                _dt("hs_meeting_end_time", x(lambda r: r.ts_ms + r.duration * 1000)),
                _str(
                    "hs_meeting_outcome",
                    x(lambda r: ("COMPLETED", "SCHEDULED")[r.status]),
                    "enumeration",
                ),
                _str("hs_meeting_location", x(lambda r: _LOCATIONS[r.idx % len(_LOCATIONS)])),
            ]
        if kind == "calls":
            return [
                *common,
                _str("hs_call_title", x(lambda r: activity_title(co, r))),
                _str("hs_call_body", x(body)),
                _num("hs_call_duration", x(lambda r: r.duration * 1000)),
                _str(
                    "hs_call_direction",
                    x(lambda r: ("OUTBOUND", "INBOUND")[r.status]),
                    "enumeration",
                ),
                _str("hs_call_status", x(lambda r: "COMPLETED"), "enumeration"),
                _str(
                    "hs_call_disposition",
                    x(lambda r: _CALL_DISPOSITIONS[0 if r.duration > 60 else 1]),
                    "enumeration",
                ),
            ]
        if kind == "emails":
            return [
                *common,
                _str("hs_email_subject", x(lambda r: activity_title(co, r))),
                _str("hs_email_text", x(body)),
                _str(
                    "hs_email_direction",
                    x(lambda r: ("EMAIL", "INCOMING_EMAIL")[r.status]),
                    "enumeration",
                ),
                _str("hs_email_status", x(lambda r: "SENT"), "enumeration"),
                _str("hs_email_from_email", x(lambda r: email_parties(co, r)[0])),
                _str("hs_email_to_email", x(lambda r: email_parties(co, r)[1])),
            ]
        if kind == "notes":
            return [*common, _str("hs_note_body", x(lambda r: f"<p>{body(r)}</p>"))]
        return [
            *common,
            _str("hs_task_subject", x(lambda r: activity_title(co, r))),
            _str("hs_task_body", x(body)),
            _str("hs_task_status", x(lambda r: _TASK_STATUS[r.status]), "enumeration"),
            _str("hs_task_priority", x(lambda r: _TASK_PRIORITY[r.priority]), "enumeration"),
            _str("hs_task_type", x(lambda r: _TASK_TYPE[r.subject % 3]), "enumeration"),
        ]

    # -- rendering ----------------------------------------------------------------------------

    def select(self, object_type: str, requested: Sequence[str] | None) -> Selection:
        """The properties to render: the defaults, or the requested known ones plus the always-on
        ones (HubSpot silently ignores unknown names)."""
        table = self.props[object_type]
        wanted = requested if requested else DEFAULT_PROPERTIES[object_type]
        chosen: dict[str, Prop] = {}
        for name in (*wanted, *(ALWAYS_PROPERTIES[object_type] if requested else ())):
            prop = table.get(name)
            if prop is not None:
                chosen[name] = prop
        props = chosen.values()
        return Selection(
            plain=tuple((p.name, p.text) for p in props if not p.role),
            created=tuple(p.name for p in props if p.role == "created"),
            updated=tuple(p.name for p in props if p.role == "updated"),
            ids=tuple(p.name for p in props if p.role == "id"),
        )

    def render(
        self,
        object_type: str,
        rec: Record,
        sel: Selection,
        associations: Sequence[str] = (),
        malformed_rate: float = 0.0,
    ) -> dict[str, Any]:
        """One object in HubSpot's list/search shape."""
        base = HS_ID_BASE["activities" if object_type in ACTIVITY_KINDS else object_type]
        created, updated, oid = iso_ms(rec.created_ms), iso_ms(rec.updated_ms), str(base + rec.idx)
        properties = {name: text(rec) for name, text in sel.plain}
        for name in sel.created:
            properties[name] = created
        for name in sel.updated:
            properties[name] = updated
        for name in sel.ids:
            properties[name] = oid
        obj: dict[str, Any] = {
            "id": oid,
            "properties": properties,
            "createdAt": created,
            "updatedAt": updated,
            "archived": rec.state == ARCHIVED,
        }
        if rec.state == ARCHIVED:
            obj["archivedAt"] = iso_ms(rec.archived_ms)
        bad = (
            malformed_kind(self.company.seed, object_type, rec.idx, malformed_rate)
            if malformed_rate
            else None
        )
        if associations:
            assoc = self._associations(object_type, rec, associations, bad)
            if assoc:
                obj["associations"] = assoc
        if bad is not None:
            _corrupt(obj, properties, bad, rec.idx)
        return obj

    def _associations(
        self, object_type: str, rec: Record, targets: Sequence[str], bad: str | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for target in targets:
            fn = self._assoc_cache.get((object_type, target)) or self._association_fn(
                object_type, target
            )
            collection = fn(rec)
            if bad == "dangling_association" and target == "companies":
                kind = f"{_SINGULAR[object_type]}_to_company"
                dangling = str(HS_ID_BASE["companies"] - 1 - rec.idx)  # points at no company
                collection = {"results": [{"id": dangling, "type": kind}]}
            if collection:
                out[target] = collection
        return out

    def associated(self, object_type: str, rec: Record, target: str) -> list[str]:
        """Ids of the live ``target`` records associated with ``rec``, ascending."""
        collection = self._association_fn(object_type, target)(rec) or {"results": []}
        return [r["id"] for r in collection["results"]]

    def _association_fn(self, object_type: str, target: str) -> AssociationFn:
        """A function from a record to its ``{"results": [...]}`` for ``target`` (live targets
        only, ascending ids; None when there are none), built once per pair: pages render tens
        of thousands of these. The returned structures may be shared: never mutate them."""
        key = (object_type, target)
        fn = self._assoc_cache.get(key)
        if fn is None:
            fn = self._assoc_cache[key] = self._build_association_fn(object_type, target)
        return fn

    def _build_association_fn(self, object_type: str, target: str) -> AssociationFn:
        co = self.company
        kind = f"{_SINGULAR[object_type]}_to_{_SINGULAR[target]}"
        pool: Sequence[Record] = co.activities if target in ACTIVITY_KINDS else co.records(target)
        base = HS_ID_BASE["activities" if target in ACTIVITY_KINDS else target]
        if target == object_type or (object_type in ACTIVITY_KINDS and target in ACTIVITY_KINDS):
            return lambda rec: None  # engagements are not associated with each other here
        source = "engagements" if object_type in ACTIVITY_KINDS else object_type
        field = _FORWARD.get((source, target))
        if field is not None:  # one target, stored on the record itself
            # Neighbouring records point at the same target (an account's engagements are
            # listed together), so a small cache of built collections, emptied when it fills
            # up or the company changes, saves most of the building at a bounded memory cost.
            shared: dict[int, dict[str, Any] | None] = {}
            seen_version = [co.version]

            def single(rec: Any) -> dict[str, Any] | None:
                i: int = getattr(rec, field)
                if i < 0:
                    return None
                if seen_version[0] != co.version or len(shared) > 2048:
                    shared.clear()
                    seen_version[0] = co.version
                try:
                    return shared[i]
                except KeyError:
                    live = pool[i].state == LIVE
                    made = {"results": [{"id": str(base + i), "type": kind}]} if live else None
                    shared[i] = made
                    return made

            return single

        def wrap(idxs: Iterable[int]) -> dict[str, Any] | None:
            results = [{"id": str(base + i), "type": kind} for i in idxs if pool[i].state == LIVE]
            return {"results": results} if results else None

        if (object_type, target) == ("deals", "contacts"):
            return lambda rec: wrap(rec.contacts)
        return lambda rec: wrap(co.reverse(target, object_type).get(rec.idx, ()))


AssociationFn = Callable[[Any], "dict[str, Any] | None"]


# (source, target) -> the record field holding the one associated index.
_FORWARD: dict[tuple[str, str], str] = {
    ("contacts", "companies"): "account",
    ("deals", "companies"): "account",
    ("engagements", "companies"): "account",
    ("engagements", "contacts"): "contact",
    ("engagements", "deals"): "deal",
}


def _corrupt(obj: dict[str, Any], properties: dict[str, Any], bad: str, idx: int) -> None:
    if bad == "missing_id":
        obj["id"] = None
        if "hs_object_id" in properties:
            properties["hs_object_id"] = None
    elif bad == "bad_amount" and "amount" in properties:
        properties["amount"] = _BAD_AMOUNTS[idx % len(_BAD_AMOUNTS)]
    elif bad == "bad_date":
        for key in ("closedate", "hs_timestamp"):
            if key in properties:
                properties[key] = _BAD_DATES[idx % len(_BAD_DATES)]
    elif bad == "dangling_association" and "associatedcompanyid" in properties:
        properties["associatedcompanyid"] = str(HS_ID_BASE["companies"] - 1 - idx)


_MIDNIGHTS: dict[int, str] = {}


def _closedate_text(deal: Deal) -> str:
    """Close dates are whole days: their ISO strings are few, so they are cached."""
    text = _MIDNIGHTS.get(deal.close_day)
    if text is None:
        text = _MIDNIGHTS[deal.close_day] = iso_ms(deal.close_day * DAY_MS)
    return text


def _index(props: list[Prop]) -> dict[str, Prop]:
    return {p.name: p for p in props}


def _phone(idx: int, version: int) -> str:
    n = (idx * 7919 + version * 104_729) % 10_000
    return f"+1 555-01{(idx // 10_000) % 100:02d}-{n:04d}"


_TITLES = (
    names.MEETING_TITLES,
    names.CALL_TITLES,
    names.EMAIL_SUBJECTS,
    ("Note",),
    names.TASK_SUBJECTS,
)


def activity_title(company: Company, act: Activity) -> str:
    title = _TITLES[act.kind][act.subject]
    if act.kind == MEETING:
        return f"{title} - {company.accounts[act.account].name}"
    return title


def activity_body(company: Company, act: Activity) -> str:
    contact = company.contacts[act.contact].first_name if act.contact >= 0 else "the team"
    product = names.PRODUCTS[company.deals[act.deal].product if act.deal >= 0 else act.idx % 10]
    return names.BODIES[act.body].format(
        account=company.accounts[act.account].name,
        contact=contact,
        product=product,
        n=5 + (act.idx * 7 + act.version) % 40,
    )


def email_parties(company: Company, act: Activity) -> tuple[str, str | None]:
    """(from, to) addresses: the rep and the contact, swapped for incoming mail."""
    rep = company.owners[act.owner].email
    contact = company.contacts[act.contact].email if act.contact >= 0 else None
    if act.status == 1 and contact is not None:
        return contact, rep
    return rep, contact
