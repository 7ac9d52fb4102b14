"""Salesforce's view of the company: sObjects, their fields and relationships.

A field's getter returns a typed value: epoch ms truncated to the second for datetimes
(Salesforce stores seconds), a day number for dates, floats for currency and percent. The
wire form comes from `wire_value`. Field names are looked up case-insensitively, as in SOQL.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from revtops_sandbox import names
from revtops_sandbox.company import (
    ARCHIVED,
    DAY_MS,
    LIVE,
    MEETING,
    PIPELINES,
    RETIRED_STAGES,
    TASK,
    Activity,
    Company,
    Deal,
    Stage,
    day_iso,
    sf_datetime,
    sf_id,
)
from revtops_sandbox.deal_history import snapshots
from revtops_sandbox.hubspot_schema import activity_body, activity_title, deal_name

_TASK_STATUS = ("Not Started", "In Progress", "Waiting on someone else", "Deferred", "Completed")
_PRIORITY = ("Low", "Normal", "High")
_SUBTYPE = {1: "Call", 2: "Email", 3: "Task", 4: "Task"}
_LOCATIONS = ("Zoom", "Google Meet", "Microsoft Teams", "On-site")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # id reference string picklist textarea email url phone datetime date boolean
    #           currency percent double int
    get: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Relationship:
    name: str
    target: str  # sObject name
    get: Callable[[Any], Any]  # the related record, or None


@dataclass(slots=True)
class SObject:
    name: str
    fields: dict[str, Field]  # by lower-case name
    relationships: dict[str, Relationship]  # by lower-case name
    rows: Callable[[bool], Iterable[Any]]  # all rows (include_deleted) in Id order
    id_of: Callable[[Any], str]
    deletable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StageRow:
    seq: int
    stage: Stage
    active: bool = True


@dataclass(frozen=True, slots=True)
class ContactRoleRow:
    seq: int
    deal: Deal
    contact: int  # index into Company.contacts
    position: int  # among the deal's contacts as generated, 0 for the primary contact
    removed_ms: int  # when the contact was taken off the deal; 0 while it is on it


CONTACT_ROLES = (
    "Decision Maker", "Economic Buyer", "Technical Buyer", "Evaluator", "Influencer",
    "Executive Sponsor", "Business User", "Other",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HistoryRow:
    seq: int
    deal: Deal
    stage: Stage
    ms: int
    cents: int  # amount then (-1: none)
    day: int  # close date then


def wire_value(ftype: str, value: Any) -> Any:
    if value is None:
        return None
    if ftype == "datetime":
        return sf_datetime(value)
    if ftype == "date":
        return day_iso(value)
    if ftype in ("currency", "percent", "double"):
        return float(value)
    return value


def _sec(ms: int) -> int:
    return ms - ms % 1000


def _fields(*items: tuple[str, str, Callable[[Any], Any]]) -> dict[str, Field]:
    return {name.lower(): Field(name, ftype, fn) for name, ftype, fn in items}


def _audit(owner_of: Callable[[Any], str]) -> list[tuple[str, str, Callable[[Any], Any]]]:
    """CreatedDate/LastModifiedDate/SystemModstamp and the audit user fields."""
    return [
        ("CreatedDate", "datetime", lambda r: _sec(r.created_ms)),
        ("CreatedById", "reference", owner_of),
        ("LastModifiedDate", "datetime", lambda r: _sec(r.updated_ms)),
        ("LastModifiedById", "reference", owner_of),
        ("SystemModstamp", "datetime", lambda r: _sec(r.updated_ms)),
    ]


def build_schema(company: Company) -> dict[str, SObject]:
    """Every supported sObject by lower-case name."""
    co = company
    user_id: Callable[[int], str] = lambda i: sf_id("005", i)  # noqa: E731

    def rows(pool: Sequence[Any]) -> Callable[[bool], Iterable[Any]]:
        def select(include_deleted: bool) -> Iterable[Any]:
            if include_deleted:
                return (r for r in pool if r.state in (LIVE, ARCHIVED))
            return (r for r in pool if r.state == LIVE)

        return select

    owner_rel = Relationship("Owner", "User", lambda r: co.owners[r.owner])
    account_rel = Relationship(
        "Account", "Account", lambda r: co.accounts[r.account] if r.account >= 0 else None
    )
    owner_field = ("OwnerId", "reference", lambda r: user_id(r.owner))
    deleted_field = ("IsDeleted", "boolean", lambda r: r.state == ARCHIVED)

    account = SObject(
        "Account",
        _fields(
            ("Id", "id", lambda r: sf_id("001", r.idx)),
            deleted_field,
            ("Name", "string", lambda r: r.name),
            ("Type", "picklist", lambda r: names.ACCOUNT_KINDS[r.kind][3]),
            ("Industry", "picklist", lambda r: names.INDUSTRIES[r.industry][1]),
            ("Website", "url", lambda r: f"https://www.{r.domain}"),
            ("Phone", "phone", lambda r: f"+1 555-02{r.idx % 100:02d}-{r.idx % 10_000:04d}"),
            ("BillingCity", "string", lambda r: names.CITIES[r.city][0]),
            ("BillingCountry", "string", lambda r: names.CITIES[r.city][1]),
            ("NumberOfEmployees", "int", lambda r: r.employees),
            ("AnnualRevenue", "currency", lambda r: r.employees * 185_000),
            owner_field,
            *_audit(lambda r: user_id(r.owner)),
        ),
        {"owner": owner_rel},
        rows(co.accounts),
        lambda r: sf_id("001", r.idx),
    )
    contact = SObject(
        "Contact",
        _fields(
            ("Id", "id", lambda r: sf_id("003", r.idx)),
            deleted_field,
            ("AccountId", "reference", lambda r: sf_id("001", r.account)),
            ("FirstName", "string", lambda r: r.first_name),
            ("LastName", "string", lambda r: r.last_name),
            ("Name", "string", lambda r: f"{r.first_name} {r.last_name}"),
            ("Email", "email", lambda r: r.email),
            ("Title", "string", lambda r: names.CONTACT_TITLES[r.title]),
            ("Phone", "phone", lambda r: f"+1 555-03{r.idx % 100:02d}-{r.version % 10_000:04d}"),
            ("MobilePhone", "phone", lambda r: None),  # reps keep no mobile numbers here
            ("MailingCity", "string", lambda r: names.CITIES[co.accounts[r.account].city][0]),
            ("MailingCountry", "string", lambda r: names.CITIES[co.accounts[r.account].city][1]),
            owner_field,
            *_audit(lambda r: user_id(r.owner)),
        ),
        {"account": account_rel, "owner": owner_rel},
        rows(co.contacts),
        lambda r: sf_id("003", r.idx),
    )

    def stage(r: Deal) -> Stage:
        return PIPELINES[r.pipeline].stages[r.stage]

    def amount(r: Deal) -> float | None:
        return None if r.amount_cents < 0 else r.amount_cents / 100

    def expected(r: Deal) -> float | None:
        return None if r.amount_cents < 0 else r.amount_cents / 100 * stage(r).probability

    opportunity = SObject(
        "Opportunity",
        _fields(
            ("Id", "id", lambda r: sf_id("006", r.idx)),
            deleted_field,
            ("AccountId", "reference", lambda r: sf_id("001", r.account)),
            ("Name", "string", lambda r: deal_name(co.accounts[r.account], r)),
            ("Description", "textarea", lambda r: None),
            ("StageName", "picklist", lambda r: stage(r).label),
            ("Amount", "currency", amount),
            ("Probability", "percent", lambda r: stage(r).probability * 100),
            ("ExpectedRevenue", "currency", expected),
            ("CloseDate", "date", lambda r: r.close_day),
            ("Type", "picklist", lambda r: PIPELINES[r.pipeline].sf_type),
            ("LeadSource", "picklist", lambda r: names.LEAD_SOURCES[r.lead_source]),
            ("IsClosed", "boolean", lambda r: stage(r).is_closed),
            ("IsWon", "boolean", lambda r: stage(r).is_won),
            ("ForecastCategory", "picklist", lambda r: stage(r).forecast_category),
            ("ForecastCategoryName", "picklist", lambda r: stage(r).forecast_name),
            ("LastStageChangeDate", "datetime", lambda r: _sec(r.history[-1])),
            ("FiscalYear", "int", lambda r: int(day_iso(r.close_day)[:4])),
            ("FiscalQuarter", "int", lambda r: (int(day_iso(r.close_day)[5:7]) + 2) // 3),
            owner_field,
            *_audit(lambda r: user_id(r.owner)),
        ),
        {"account": account_rel, "owner": owner_rel},
        rows(co.deals),
        lambda r: sf_id("006", r.idx),
    )
    user = SObject(
        "User",
        _fields(
            ("Id", "id", lambda r: user_id(r.idx)),
            ("Username", "string", lambda r: r.email),
            ("FirstName", "string", lambda r: r.first_name),
            ("LastName", "string", lambda r: r.last_name),
            ("Name", "string", lambda r: r.name),
            ("Email", "email", lambda r: r.email),
            ("IsActive", "boolean", lambda r: r.active),
            ("Title", "string", lambda r: "Account Executive"),
            ("Department", "string", lambda r: names.OWNER_TEAMS[r.team]),
            ("UserType", "picklist", lambda r: "Standard"),
            ("TimeZoneSidKey", "picklist", lambda r: "America/New_York"),
            *_audit(lambda r: user_id(0)),
        ),
        {},
        lambda include_deleted: iter(co.owners),
        lambda r: user_id(r.idx),
        deletable=False,
    )
    task = SObject(
        "Task",
        _fields(
            *_activity_fields(co, "00T"),
            (
                "Status",
                "picklist",
                lambda r: _TASK_STATUS[r.status] if r.kind == TASK else "Completed",
            ),
            (
                "Priority",
                "picklist",
                lambda r: _PRIORITY[r.priority] if r.kind == TASK else "Normal",
            ),
            ("IsClosed", "boolean", lambda r: r.kind != TASK or r.status == 4),
            # Salesforce stamps it when a task closes; the sandbox's tasks keep their due day
            # as their time (golden answers are built on it), so it stays empty.
            ("CompletedDateTime", "datetime", lambda r: None),
            ("TaskSubtype", "picklist", lambda r: _SUBTYPE[r.kind]),
            ("Type", "picklist", lambda r: {1: "Call", 2: "Email"}.get(r.kind, "Other")),
            ("CallDurationInSeconds", "int", lambda r: r.duration if r.kind == 1 else None),
            (
                "CallType",
                "picklist",
                lambda r: ("Outbound", "Inbound")[r.status] if r.kind == 1 else None,
            ),
        ),
        {"account": account_rel, "owner": owner_rel},
        rows([a for a in co.activities if a.kind != MEETING]),
        lambda r: sf_id("00T", r.idx),
    )
    event = SObject(
        "Event",
        _fields(
            *_activity_fields(co, "00U"),
            ("Location", "string", lambda r: _LOCATIONS[r.idx % len(_LOCATIONS)]),
            ("IsAllDayEvent", "boolean", lambda r: False),
            ("ActivityDateTime", "datetime", lambda r: _sec(r.ts_ms)),
            ("StartDateTime", "datetime", lambda r: _sec(r.ts_ms)),
            ("EndDateTime", "datetime", lambda r: _sec(r.ts_ms + r.duration * 1000)),
            ("DurationInMinutes", "int", lambda r: r.duration // 60),
            ("Type", "picklist", lambda r: "Meeting"),
            ("ShowAs", "picklist", lambda r: "Busy"),
        ),
        {"account": account_rel, "owner": owner_rel},
        rows(co.by_kind[MEETING]),
        lambda r: sf_id("00U", r.idx),
    )
    stage_rows = _stage_rows()
    anchor = _sec(co.anchor_ms - 900 * DAY_MS)
    opp_stage = SObject(
        "OpportunityStage",
        _fields(
            ("Id", "id", lambda r: sf_id("01J", r.seq)),
            ("MasterLabel", "string", lambda r: r.stage.label),
            ("ApiName", "string", lambda r: r.stage.label),
            ("IsActive", "boolean", lambda r: r.active),
            ("SortOrder", "int", lambda r: r.stage.sf_sort),
            ("IsClosed", "boolean", lambda r: r.stage.is_closed),
            ("IsWon", "boolean", lambda r: r.stage.is_won),
            ("ForecastCategory", "picklist", lambda r: r.stage.forecast_category),
            ("ForecastCategoryName", "picklist", lambda r: r.stage.forecast_name),
            ("DefaultProbability", "percent", lambda r: r.stage.probability * 100),
            ("Description", "string", lambda r: None),
            ("CreatedDate", "datetime", lambda r: anchor),
            ("LastModifiedDate", "datetime", lambda r: anchor),
            ("SystemModstamp", "datetime", lambda r: anchor),
        ),
        {},
        lambda include_deleted: iter(stage_rows),
        lambda r: sf_id("01J", r.seq),
        deletable=False,
    )
    # Derived from the deals' stage paths; rebuilt only after the company changes.
    history_cache: dict[tuple[int, bool], list[HistoryRow]] = {}

    def history_rows(include_deleted: bool) -> Iterable[HistoryRow]:
        key = (co.version, include_deleted)
        cached = history_cache.get(key)
        if cached is None:
            cached = []
            for d in co.deals:
                if d.state == LIVE or (include_deleted and d.state == ARCHIVED):
                    stages = PIPELINES[d.pipeline].stages
                    # One row per stage entry (Ids as before amounts had a history), and one
                    # per amount or close-date change between them (Ids after 32 a deal).
                    for snap in snapshots(d):
                        seq = d.idx * 64 + (snap.entry if snap.entry >= 0 else 32 + snap.change)
                        row = HistoryRow(seq, d, stages[snap.stage], snap.ms, snap.cents, snap.day)
                        cached.append(row)
            if len(history_cache) > 4:
                history_cache.clear()
            history_cache[key] = cached
        return cached

    history = SObject(
        "OpportunityHistory",
        _fields(
            ("Id", "id", lambda r: sf_id("008", r.seq)),
            ("IsDeleted", "boolean", lambda r: r.deal.state == ARCHIVED),
            ("OpportunityId", "reference", lambda r: sf_id("006", r.deal.idx)),
            ("StageName", "picklist", lambda r: r.stage.label),
            ("Amount", "currency", lambda r: None if r.cents < 0 else r.cents / 100),
            ("Probability", "percent", lambda r: r.stage.probability * 100),
            ("ForecastCategory", "picklist", lambda r: r.stage.forecast_category),
            ("CloseDate", "date", lambda r: r.day),
            ("CreatedDate", "datetime", lambda r: _sec(r.ms)),
            ("CreatedById", "reference", lambda r: user_id(r.deal.owner)),
            # A deleted opportunity's history is deleted with it, then.
            ("SystemModstamp", "datetime", lambda r: _sec(_cascaded(r.deal, r.ms))),
        ),
        {"opportunity": Relationship("Opportunity", "Opportunity", lambda r: r.deal)},
        history_rows,
        lambda r: sf_id("008", r.seq),
    )
    role_cache: dict[tuple[int, bool], list[ContactRoleRow]] = {}

    def role_rows(include_deleted: bool) -> Iterable[ContactRoleRow]:
        key = (co.version, include_deleted)
        cached = role_cache.get(key)
        if cached is None:
            cached = []
            for d in co.deals:
                if d.state != LIVE and not (include_deleted and d.state == ARCHIVED):
                    continue
                removed = co.removed_deal_contacts.get(d.idx, {})
                # Contacts are only ever removed, so the generated list is today's plus the
                # removed ones: positions (and Ids) never shift.
                for k, c in enumerate(sorted({*d.contacts, *removed})):
                    gone = removed.get(c, 0)
                    if include_deleted or not gone:
                        cached.append(ContactRoleRow((d.idx << 24) + c, d, c, k, gone))
            if len(role_cache) > 4:
                role_cache.clear()
            role_cache[key] = cached
        return cached

    contact_role = SObject(
        "OpportunityContactRole",
        _fields(
            ("Id", "id", lambda r: sf_id("00K", r.seq)),
            ("IsDeleted", "boolean", lambda r: r.deal.state == ARCHIVED or r.removed_ms > 0),
            ("OpportunityId", "reference", lambda r: sf_id("006", r.deal.idx)),
            ("ContactId", "reference", lambda r: sf_id("003", r.contact)),
            ("Role", "picklist", lambda r: CONTACT_ROLES[(r.deal.idx + r.position) % 8]),
            ("IsPrimary", "boolean", lambda r: r.position == 0),
            ("CreatedDate", "datetime", lambda r: _sec(r.deal.created_ms)),
            ("CreatedById", "reference", lambda r: user_id(r.deal.owner)),
            ("LastModifiedDate", "datetime", lambda r: _sec(r.deal.created_ms)),
            ("LastModifiedById", "reference", lambda r: user_id(r.deal.owner)),
            ("SystemModstamp", "datetime", _role_modstamp),
        ),
        {
            "opportunity": Relationship("Opportunity", "Opportunity", lambda r: r.deal),
            "contact": Relationship("Contact", "Contact", lambda r: co.contacts[r.contact]),
        },
        role_rows,
        lambda r: sf_id("00K", r.seq),
    )
    objects = (
        account, contact, opportunity, user, task, event, opp_stage, history, contact_role,
    )  # fmt: skip
    return {o.name.lower(): o for o in objects}


def _role_modstamp(r: ContactRoleRow) -> int:
    return _sec(max(r.removed_ms, _cascaded(r.deal, r.deal.created_ms)))


def _cascaded(deal: Deal, ms: int) -> int:
    """SystemModstamp of a record that lives and dies with its opportunity: its own time,
    or the opportunity's deletion time once it is deleted."""
    return max(ms, deal.updated_ms) if deal.state == ARCHIVED else ms


def _activity_fields(co: Company, prefix: str) -> list[tuple[str, str, Callable[[Any], Any]]]:
    def what(r: Activity) -> str:
        return sf_id("006", r.deal) if r.deal >= 0 else sf_id("001", r.account)

    return [
        ("Id", "id", lambda r: sf_id(prefix, r.idx)),
        ("IsDeleted", "boolean", lambda r: r.state == ARCHIVED),
        ("Subject", "string", lambda r: _subject(co, r)),
        ("Description", "textarea", lambda r: activity_body(co, r)),
        ("ActivityDate", "date", lambda r: r.ts_ms // DAY_MS),
        ("WhoId", "reference", lambda r: sf_id("003", r.contact) if r.contact >= 0 else None),
        ("WhatId", "reference", what),
        ("AccountId", "reference", lambda r: sf_id("001", r.account)),
        ("OwnerId", "reference", lambda r: sf_id("005", r.owner)),
        *_audit(lambda r: sf_id("005", r.owner)),
    ]


def _subject(co: Company, act: Activity) -> str:
    title = activity_title(co, act)
    return {1: f"Call: {title}", 2: f"Email: {title}"}.get(act.kind, title)


def _stage_rows() -> list[StageRow]:
    """Salesforce has one global stage list; Closed Won/Lost are shared by both processes."""
    seen: dict[str, Stage] = {}
    for p in PIPELINES:
        for s in p.stages:
            seen.setdefault(s.label, s)
    ordered = sorted(seen.values(), key=lambda s: s.sf_sort)
    rows = [StageRow(i, s) for i, s in enumerate(ordered)]
    retired = [s for stages in RETIRED_STAGES.values() for s in stages]
    return rows + [StageRow(len(rows) + i, s, active=False) for i, s in enumerate(retired)]


# The REST API's version segment (``v62.0``), shared by the REST and Bulk routes.
API_VERSION = re.compile(r"^v\d{2}\.\d$")

# A SELECT list as a tree: a field, or a relationship with its own selected sub-tree.
Tree = OrderedDict[str, "Field | tuple[Relationship, Tree]"]
