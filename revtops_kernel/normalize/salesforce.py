"""Salesforce REST (SOQL query) records -> common-schema rows (pure; the contract is in ``base``).

Streams (keys of ``NORMALIZERS``, the sObject names) and the tables they fill:

- ``User`` -> owners (``is_active = IsActive``; users are deactivated, never deleted).
- ``Account`` -> accounts (``domain`` is the ``Website`` host without ``www.``),
  ``Contact`` -> contacts, ``Opportunity`` -> deals (``stage_entered_at`` is
  ``LastStageChangeDate``, else ``CreatedDate``: Salesforce leaves it empty until the stage
  first changes).
- ``OpportunityHistory`` -> deal_stage_history: each row is Salesforce's snapshot of the
  opportunity (stage, amount, probability, forecast category, close date) when it was written;
  ``entered_at = CreatedDate``. Salesforce also writes one when only the amount or close date
  changes: such a row repeats the stage of the row before it.
- ``OpportunityContactRole`` -> deal_contacts (``Role``, ``IsPrimary``); a removed role comes
  back from ``queryAll`` with ``IsDeleted`` and becomes a soft delete.
- ``OpportunityStage`` -> deal_stages, plus the one pipelines row (``source_id "default"``,
  name "Opportunities"): Salesforce has no pipeline object, every stage belongs to it and each
  stage record emits the same row (the upsert collapses equal keys). ``stage_map`` keys stages
  by ``MasterLabel`` and ``ApiName`` because ``Opportunity.StageName`` holds the stage's value.
- ``Task`` -> activities of type call / email / task (by ``TaskSubtype``), ``Event`` ->
  meetings; each plus activity_participants for its contact (``WhoId``) and its owner.

Source ids are the 18-character Ids, which are unique across all objects, so activities use the
bare Id and participants ``"{Id}:contact:{WhoId}"`` / ``"{Id}:owner:{OwnerId}"``. The record id
field is ``Id``: call ``normalize_page(..., id_field="Id")``.

Values: currency and percent arrive as JSON numbers (``Probability: 75.0`` is stored 0.75),
datetimes as ``2011-12-16T18:54:00.000+0000``, dates as ``2024-06-30``. ``IsDeleted`` (queryAll)
sets ``deleted_at = SystemModstamp``. Amounts are rounded to cents and probabilities to 4
places: the columns are NUMERIC(18,2) and NUMERIC(5,4) and one extra digit would make the
store's cast fail for the whole batch. ``FIELDS`` lists what each stream's normalizer may read:
``revtops_kernel.salesforce_fields``, the one list the connector's SELECT names too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from itertools import repeat
from typing import Any

from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import (
    ColumnarNormalizer,
    NormalizeContext,
    NormalizedPage,
    RawValue,
    RecordNormalizer,
    RecordRejected,
    Row,
    Rows,
    StageInfo,
    TableTuples,
)
from revtops_kernel.normalize.rows import (
    ACCOUNT_COLUMNS,
    ACTIVITY_COLUMNS,
    CONTACT_COLUMNS,
    DEAL_COLUMNS,
    DEAL_CONTACT_COLUMNS,
    HISTORY_COLUMNS,
    PARTICIPANT_COLUMNS,
    participant_row,
    source_id_reader,
    stage_info,
    stage_rows,
)
from revtops_kernel.normalize.values import (
    clean_email,
    full_name,
    link,
    parse_bool,
    parse_count,
    parse_iso_date,
    parse_money,
    parse_percent,
    parse_status,
    parse_time,
    web_domain,
)
from revtops_kernel.salesforce_fields import OBJECTS

PIPELINE_SOURCE_ID = "default"
PIPELINE_NAME = "Opportunities"

# Key prefixes (the first three characters of an Id) of the objects activities point at.
_CONTACT_PREFIX, _ACCOUNT_PREFIX, _OPPORTUNITY_PREFIX = "003", "001", "006"
_TASK_TYPES = {"Call": "call", "Email": "email", "ListEmail": "email"}
_DIRECTIONS = {"Inbound": "inbound", "Outbound": "outbound"}
# OpportunityHistory.ForecastCategory holds API values; the schema keeps the labels
# (ForecastCategoryName's), as deals do.
_FORECAST_LABELS = {"BestCase": "Best Case", "Forecast": "Commit", "MostLikely": "Most Likely"}

# What each stream's normalizer may read: the fields the connector asks for (optional ones,
# like CurrencyIsoCode in multi-currency orgs, when the org has them), declared once.
FIELDS: dict[str, tuple[str, ...]] = {name: o.readable for name, o in OBJECTS.items()}


# --- record envelope ---------------------------------------------------------------------------

_source_id = source_id_reader("Id")  # 18-character Ids are strings


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), UTC)


def _prefixed(value: Any, prefix: str) -> str | None:
    """``value`` if it is an Id of the object with key prefix ``prefix`` (WhoId/WhatId are
    polymorphic: a WhoId may be a lead, a WhatId a case)."""
    if value.__class__ is str and value.startswith(prefix):
        return str(value)
    return None


def _audit(
    record: Mapping[str, Any], deletable: bool = True, edited: bool = True
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """(created_at, updated_at, deleted_at): SystemModstamp moves on every change, including
    system ones, so it is the update time; a deleted record (queryAll) was deleted then.
    Users and stages are never deleted (deactivated instead) and have no IsDeleted."""
    updated_at = parse_time(record.get("SystemModstamp"), "SystemModstamp")
    if updated_at is None and edited:  # (OpportunityHistory rows are never edited: no field)
        updated_at = parse_time(record.get("LastModifiedDate"), "LastModifiedDate")
    deleted = record.get("IsDeleted") if deletable else None
    if deleted is not None and deleted is not False:
        deleted = parse_bool(deleted, "IsDeleted")
    return (
        parse_time(record.get("CreatedDate"), "CreatedDate"),
        updated_at,
        updated_at if deleted else None,
    )


def _row(
    table: str,
    source_id: str,
    record: Mapping[str, Any],
    ctx: NormalizeContext,
    deletable: bool = True,
    edited: bool = True,
) -> Row:
    created_at, updated_at, deleted_at = _audit(record, deletable, edited)
    row = ctx.base_row(table, source_id)
    row.update(created_at=created_at, updated_at=updated_at, deleted_at=deleted_at, raw=record)
    return row


# --- users, accounts, contacts -----------------------------------------------------------------


def normalize_user(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    row = _row("owners", _source_id(record), record, ctx, deletable=False)
    first, last = record.get("FirstName"), record.get("LastName")
    row.update(
        email=clean_email(record.get("Email")),
        first_name=first or None,
        last_name=last or None,
        full_name=full_name(first, last, record.get("Name")),
        is_active=parse_bool(record.get("IsActive"), "IsActive"),
    )
    return {"owners": [row]}


def _account_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]]]:
    source_id = _source_id(record)
    created_at, updated_at, deleted_at = _audit(record)
    website = record.get("Website")
    org, system = ctx.organization_id, ctx.source_system
    return (
        [
            (
                org, system, source_id, record.get("Name") or None, web_domain(website),
                record.get("Industry") or None, record.get("Type") or None, website or None,
                parse_count(record.get("NumberOfEmployees"), "NumberOfEmployees"),
                parse_money(record.get("AnnualRevenue"), "AnnualRevenue"),
                record.get("BillingCity") or None, record.get("BillingCountry") or None,
                link(ctx, "owners", record.get("OwnerId")), created_at, updated_at,
                deleted_at, raw(record),
            )
        ],
    )  # fmt: skip


def _contact_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]]]:
    source_id = _source_id(record)
    created_at, updated_at, deleted_at = _audit(record)
    first, last = record.get("FirstName"), record.get("LastName")
    org, system = ctx.organization_id, ctx.source_system
    return (
        [
            (
                org, system, source_id, clean_email(record.get("Email")), first or None,
                last or None, full_name(first, last, record.get("Name")),
                record.get("Title") or None,
                record.get("Phone") or record.get("MobilePhone") or None,
                link(ctx, "accounts", record.get("AccountId")),
                link(ctx, "owners", record.get("OwnerId")), created_at, updated_at,
                deleted_at, raw(record),
            )
        ],
    )  # fmt: skip


# Columnar (base.ColumnarNormalizer), as HubSpot's: a sync keeps a page as tuples in
# normalize.rows' column orders; called on one record each gives dict rows. The values are
# read in the order the dict rows once read them, so a record with several faults is
# quarantined for the same one.
normalize_account = ColumnarNormalizer({"accounts": ACCOUNT_COLUMNS}, _account_parts)
normalize_contact = ColumnarNormalizer({"contacts": CONTACT_COLUMNS}, _contact_parts)


# --- stages ------------------------------------------------------------------------------------


def pipeline_row(ctx: NormalizeContext) -> Row:
    """The one pipeline every Salesforce stage and opportunity belongs to."""
    row = ctx.base_row("pipelines", PIPELINE_SOURCE_ID)
    row.update(
        name=PIPELINE_NAME,
        display_order=0,
        is_archived=False,
        created_at=None,
        updated_at=None,
        deleted_at=None,
        raw=None,  # no provider record behind it
    )
    return row


def normalize_opportunity_stage(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    row = _row("deal_stages", _source_id(record), record, ctx, deletable=False)
    row.update(
        pipeline_id=link(ctx, "pipelines", PIPELINE_SOURCE_ID),
        label=record.get("MasterLabel") or record.get("ApiName") or None,
        display_order=parse_count(record.get("SortOrder"), "SortOrder"),
        probability=parse_percent(record.get("DefaultProbability"), "DefaultProbability"),
        is_closed=parse_bool(record.get("IsClosed"), "IsClosed"),
        is_won=parse_bool(record.get("IsWon"), "IsWon"),
        forecast_category=record.get("ForecastCategoryName") or None,
        is_active=parse_bool(record.get("IsActive"), "IsActive"),
    )
    return {"pipelines": [pipeline_row(ctx)], "deal_stages": [row]}


def stage_map(
    items: Iterable[Mapping[str, Any]], ctx: NormalizeContext | None = None
) -> dict[str, StageInfo]:
    """``NormalizeContext.stages`` for opportunities: ``MasterLabel`` and ``ApiName`` -> stage.
    ``items`` are raw OpportunityStage records (then ``ctx`` is required; a malformed one
    raises RecordRejected) or already normalized ``deal_stages`` rows, whose ``raw`` holds the
    ApiName (the quarantining path: ``normalize_page`` the stages, pass its deal_stages)."""
    stages: dict[str, StageInfo] = {}
    rows = stage_rows(
        items,
        ctx,
        is_raw=lambda item: "MasterLabel" in item or "ApiName" in item,
        normalize=normalize_opportunity_stage,
        raw_kind="OpportunityStage records",
        expected="OpportunityStage records",
    )
    for row in rows:
        info = stage_info(row)
        raw = row.get("raw")
        api_name = raw.get("ApiName") if isinstance(raw, Mapping) else None
        for key in (info.label, api_name):
            if key:
                stages[key] = info
    return stages


# --- opportunities -----------------------------------------------------------------------------


def _opportunity_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]]]:
    source_id = _source_id(record)
    created_at, updated_at, deleted_at = _audit(record)
    stage_name = record.get("StageName") or None
    info = ctx.stages.get(stage_name) if stage_name else None
    is_closed = parse_bool(record.get("IsClosed"), "IsClosed")
    is_won = parse_bool(record.get("IsWon"), "IsWon")
    probability = parse_percent(record.get("Probability"), "Probability")
    forecast = record.get("ForecastCategoryName") or None
    if info is not None:  # the opportunity's own values first: they are per record
        is_closed = info.is_closed if is_closed is None else is_closed
        is_won = info.is_won if is_won is None else is_won
        probability = info.probability if probability is None else probability
        forecast = forecast or info.forecast_category
    org, system = ctx.organization_id, ctx.source_system
    name = record.get("Name") or None
    amount = parse_money(record.get("Amount"), "Amount")
    currency = record.get("CurrencyIsoCode") or None
    pipeline_id = link(ctx, "pipelines", PIPELINE_SOURCE_ID)
    # Stage rows are keyed by their Id, which an opportunity does not carry: an unknown
    # stage keeps its name and the opportunity's own flags, and no stage_id.
    stage_id = None if info is None else info.stage_id
    close_date = parse_iso_date(record.get("CloseDate"), "CloseDate")
    owner_id = link(ctx, "owners", record.get("OwnerId"))
    account_id = link(ctx, "accounts", record.get("AccountId"))
    stage_entered_at = (
        parse_time(record.get("LastStageChangeDate"), "LastStageChangeDate") or created_at
    )
    return (
        [
            (
                record_id(org, system, "deals", source_id), org, system, source_id, name,
                amount, currency, pipeline_id, stage_id, stage_name, close_date, owner_id,
                account_id, is_closed, is_won, probability, forecast,
                record.get("Type") or None, record.get("LeadSource") or None,
                stage_entered_at, created_at, updated_at, deleted_at, raw(record),
            )
        ],
    )  # fmt: skip


def _opportunity_history_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]]]:
    source_id = _source_id(record)
    created_at, updated_at, deleted_at = _audit(record, edited=False)
    opportunity = record.get("OpportunityId")
    if not opportunity:
        raise RecordRejected("missing OpportunityId")
    stage_name = record.get("StageName") or None
    info = ctx.stages.get(stage_name) if stage_name else None
    forecast = record.get("ForecastCategory") or None
    org, system = ctx.organization_id, ctx.source_system
    deal_id = link(ctx, "deals", opportunity)
    pipeline_id = link(ctx, "pipelines", PIPELINE_SOURCE_ID)
    amount = parse_money(record.get("Amount"), "Amount")
    probability = parse_percent(record.get("Probability"), "Probability")
    return (
        [
            (
                org, system, source_id, deal_id, pipeline_id,
                None if info is None else info.stage_id, stage_name, created_at, amount,
                probability,
                _FORECAST_LABELS.get(forecast, forecast) if forecast else None,
                parse_iso_date(record.get("CloseDate"), "CloseDate"), created_at, updated_at,
                deleted_at, raw(record),
            )
        ],
    )  # fmt: skip


def _contact_role_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]]]:
    source_id = _source_id(record)
    created_at, updated_at, deleted_at = _audit(record)
    opportunity, contact = record.get("OpportunityId"), record.get("ContactId")
    if not opportunity or not contact:
        raise RecordRejected("missing OpportunityId or ContactId")
    org, system = ctx.organization_id, ctx.source_system
    return (
        [
            (
                org, system, source_id, link(ctx, "deals", opportunity),
                link(ctx, "contacts", contact), record.get("Role") or None,
                parse_bool(record.get("IsPrimary"), "IsPrimary"), created_at, updated_at,
                deleted_at, raw(record),
            )
        ],
    )  # fmt: skip


normalize_opportunity = ColumnarNormalizer({"deals": DEAL_COLUMNS}, _opportunity_parts)
normalize_opportunity_history = ColumnarNormalizer(
    {"deal_stage_history": HISTORY_COLUMNS}, _opportunity_history_parts
)
normalize_contact_role = ColumnarNormalizer(
    {"deal_contacts": DEAL_CONTACT_COLUMNS}, _contact_role_parts
)


# --- tasks and events --------------------------------------------------------------------------


_TASK_TABLES = {"activities": ACTIVITY_COLUMNS, "activity_participants": PARTICIPANT_COLUMNS}


def _task_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One Task's activity and participants as tuples (what ``normalize_task`` is on one
    record, and on a page ``TaskNormalizer.page`` falls back to)."""
    source_id = _source_id(record)
    created_at, updated_at, deleted_at = _audit(record)
    org, system = ctx.organization_id, ctx.source_system
    what = record.get("WhatId")
    account = record.get("AccountId") or _prefixed(what, _ACCOUNT_PREFIX)
    activity_id = record_id(org, system, "activities", source_id)
    owner_id = link(ctx, "owners", record.get("OwnerId"))
    contact = _prefixed(record.get("WhoId"), _CONTACT_PREFIX)
    contact_id = link(ctx, "contacts", contact)
    activity_type = _TASK_TYPES.get(record.get("TaskSubtype") or "", "task")
    # ActivityDate is the due date (the day of a logged call); a completion time is better.
    due = _midnight(parse_iso_date(record.get("ActivityDate"), "ActivityDate"))
    occurred_at = parse_time(record.get("CompletedDateTime"), "CompletedDateTime") or due
    call_type = record.get("CallType")
    raw_value = raw(record)
    activity = (
        activity_id, org, system, source_id, created_at, updated_at, deleted_at, raw_value,
        record.get("Subject") or None, record.get("Description") or None, owner_id,
        link(ctx, "deals", _prefixed(what, _OPPORTUNITY_PREFIX)),
        link(ctx, "accounts", account), contact_id, None, None, activity_type, occurred_at,
        None, None,
        parse_count(record.get("CallDurationInSeconds"), "CallDurationInSeconds"),
        _DIRECTIONS.get(call_type) if call_type.__class__ is str else None,
        parse_status(record.get("Status")),
    )  # fmt: skip
    participants: list[tuple[Any, ...]] = []
    if contact is not None:
        participants.append(
            (org, system, f"{source_id}:contact:{contact}", activity_id, None, None,
             "participant", None, False, contact_id, None, None, created_at, updated_at,
             deleted_at, None)
        )  # fmt: skip
    owner = record.get("OwnerId")
    if owner:
        participants.append(
            (org, system, f"{source_id}:owner:{owner}", activity_id, None, None, "owner", None,
             True, None, None, owner_id, created_at, updated_at, deleted_at, None)
        )  # fmt: skip
    return [activity], participants


class TaskNormalizer(ColumnarNormalizer):
    """Tasks, normalized a page at a time column by column (``page``): a full read brings a
    million of them, in Bulk API result sets of 50,000 or REST pages of 2,000. Each column is
    one pass of a parser over the page's values instead of a Python call per record and field;
    the rows are the same tuples ``_task_parts`` makes one record at a time. A page holding a
    record some parser refuses is normalized again in slices of ``FALLBACK_SLICE`` records, and
    a slice that fails record by record (``_task_parts``), which quarantines the bad record
    with its reason exactly as before."""

    FALLBACK_SLICE = 500

    def __init__(self) -> None:
        super().__init__(_TASK_TABLES, _task_parts)
        self.__name__ = "normalize_task"

    def page(
        self,
        stream: str,
        records: Iterable[Mapping[str, Any]],
        ctx: NormalizeContext,
        raw: RawValue,
        id_field: str,
    ) -> NormalizedPage:
        records = records if isinstance(records, list) else list(records)
        try:
            activities, participants = _task_columns(records, ctx, raw)
        except _COLUMN_FAILURES:
            return self._slices(stream, records, ctx, raw, id_field)
        page = NormalizedPage()
        if activities:
            page.tuples["activities"] = TableTuples(ACTIVITY_COLUMNS, activities)
        if participants:
            page.tuples["activity_participants"] = TableTuples(PARTICIPANT_COLUMNS, participants)
        return page

    def _slices(
        self,
        stream: str,
        records: list[Mapping[str, Any]],
        ctx: NormalizeContext,
        raw: RawValue,
        id_field: str,
    ) -> NormalizedPage:
        step = self.FALLBACK_SLICE
        if len(records) <= step:
            return super().page(stream, records, ctx, raw, id_field)
        out = NormalizedPage()
        sinks: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _TASK_TABLES}
        for start in range(0, len(records), step):
            part = self.page(stream, records[start : start + step], ctx, raw, id_field)
            out.quarantined.extend(part.quarantined)
            for table, tuples in part.tuples.items():
                sinks[table].extend(tuples.rows)
        out.tuples = {
            table: TableTuples(_TASK_TABLES[table], rows) for table, rows in sinks.items() if rows
        }
        return out


# What a column pass may raise on a record it cannot read (the record-by-record pass then
# finds which, and why): the parsers' RecordRejected (a ValueError), and what a value of the
# wrong type raises (.get on a string, an unhashable TaskSubtype, a number where text goes).
_COLUMN_FAILURES = (ValueError, KeyError, TypeError, AttributeError, ArithmeticError)
_fromiso = datetime.fromisoformat
_UTC_ENDINGS = ("Z", "+0000")


def _times(values: list[Any], field: str) -> list[datetime | None]:
    """``parse_time`` of every value: the providers' UTC strings through ``fromisoformat`` in
    one pass, else value by value."""
    try:
        if all(v is None or v.endswith(_UTC_ENDINGS) for v in values):
            moments = [None if v is None else _fromiso(v) for v in values]
            if all(m is None or m.tzinfo is not None for m in moments):
                return moments
    except (AttributeError, TypeError, ValueError):  # not a string, or not ISO: the slow way
        pass
    return [parse_time(v, field) for v in values]


def _task_columns(
    records: list[Mapping[str, Any]], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``_task_parts`` of every record, column by column; raises when a record is unreadable
    (every check ``_task_parts`` makes is made here too)."""
    if not all(r.__class__ is dict for r in records):
        raise TypeError("a record is not a JSON object")
    n = len(records)

    def column(name: str) -> list[Any]:
        return list(map(dict.get, records, repeat(name, n)))  # type: ignore[arg-type]

    source_ids = column("Id")
    if not all(v.__class__ is str and v for v in source_ids):
        raise RecordRejected("missing Id")
    org, system = ctx.organization_id, ctx.source_system
    # _audit: SystemModstamp, else LastModifiedDate; IsDeleted; CreatedDate.
    updated = _times(column("SystemModstamp"), "SystemModstamp")
    if None in updated:
        modified = column("LastModifiedDate")
        updated = [
            parse_time(m, "LastModifiedDate") if u is None else u
            for u, m in zip(updated, modified, strict=True)
        ]
    deleted_at = [
        u if d is not None and d is not False and parse_bool(d, "IsDeleted") else None
        for u, d in zip(updated, column("IsDeleted"), strict=True)
    ]
    created = _times(column("CreatedDate"), "CreatedDate")
    whats = column("WhatId")
    accounts = [
        a or _prefixed(w, _ACCOUNT_PREFIX) for a, w in zip(column("AccountId"), whats, strict=True)
    ]
    activity_ids = [record_id(org, system, "activities", s) for s in source_ids]
    owners = column("OwnerId")
    owner_ids = [link(ctx, "owners", v) for v in owners]
    contacts = [_prefixed(v, _CONTACT_PREFIX) for v in column("WhoId")]
    contact_ids = [link(ctx, "contacts", v) for v in contacts]
    types = [_TASK_TYPES.get(v or "", "task") for v in column("TaskSubtype")]
    dues = [
        _midnight(parse_iso_date(v, "ActivityDate")) if v is not None else None
        for v in column("ActivityDate")
    ]
    completed = _times(column("CompletedDateTime"), "CompletedDateTime")
    occurred = [c or d for c, d in zip(completed, dues, strict=True)]
    statuses = column("Status")
    # Few distinct statuses: each string parsed once (other values, as they come).
    status_of = {v: parse_status(v) for v in {v for v in statuses if v.__class__ is str}}
    activities = list(
        zip(
            activity_ids,
            repeat(org, n),
            repeat(system, n),
            source_ids,
            created,
            updated,
            deleted_at,
            list(map(raw, records)),
            [v or None for v in column("Subject")],
            [v or None for v in column("Description")],
            owner_ids,
            [link(ctx, "deals", _prefixed(w, _OPPORTUNITY_PREFIX)) for w in whats],
            [link(ctx, "accounts", a) for a in accounts],
            contact_ids,
            repeat(None, n),
            repeat(None, n),
            types,
            occurred,
            repeat(None, n),
            repeat(None, n),
            [
                None if v is None else parse_count(v, "CallDurationInSeconds")
                for v in column("CallDurationInSeconds")
            ],
            [_DIRECTIONS.get(v) if v.__class__ is str else None for v in column("CallType")],
            [status_of[v] if v.__class__ is str else parse_status(v) for v in statuses],
            strict=True,
        )
    )
    participants: list[tuple[Any, ...]] = []
    add = participants.append
    for sid, aid, contact, contact_id, owner, owner_id, c, u, d in zip(
        source_ids, activity_ids, contacts, contact_ids, owners, owner_ids, created, updated,
        deleted_at, strict=True,
    ):  # fmt: skip
        if contact is not None:
            add((org, system, f"{sid}:contact:{contact}", aid, None, None, "participant", None,
                 False, contact_id, None, None, c, u, d, None))  # fmt: skip
        if owner:
            add((org, system, f"{sid}:owner:{owner}", aid, None, None, "owner", None, True,
                 None, None, owner_id, c, u, d, None))  # fmt: skip
    return activities, participants


normalize_task = TaskNormalizer()


def normalize_event(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    row = _activity_row(record, ctx)
    day = parse_iso_date(record.get("ActivityDate"), "ActivityDate")
    start = (
        parse_time(record.get("StartDateTime"), "StartDateTime")
        or parse_time(record.get("ActivityDateTime"), "ActivityDateTime")
        or _midnight(day)
    )
    minutes = parse_count(record.get("DurationInMinutes"), "DurationInMinutes")
    end = parse_time(record.get("EndDateTime"), "EndDateTime")
    if end is None and start is not None and minutes is not None:
        end = start + timedelta(minutes=minutes)
    if start is not None and end is not None:
        duration: int | None = int((end - start).total_seconds())
    else:
        duration = None if minutes is None else minutes * 60
    row.update(
        activity_type="meeting",
        occurred_at=start,
        ended_at=end,
        is_all_day=parse_bool(record.get("IsAllDayEvent"), "IsAllDayEvent"),
        duration_seconds=duration,
        direction=None,
        status=None,  # Events carry no status
    )
    return _with_participants(row, record, ctx, "attendee")


def _activity_row(record: Mapping[str, Any], ctx: NormalizeContext) -> Row:
    """The columns Tasks and Events share: text, owner and the links of WhoId/WhatId."""
    row = _row("activities", _source_id(record), record, ctx)
    what = record.get("WhatId")
    account = record.get("AccountId") or _prefixed(what, _ACCOUNT_PREFIX)
    row.update(
        subject=record.get("Subject") or None,
        body=record.get("Description") or None,
        owner_id=link(ctx, "owners", record.get("OwnerId")),
        deal_id=link(ctx, "deals", _prefixed(what, _OPPORTUNITY_PREFIX)),
        account_id=link(ctx, "accounts", account),
        contact_id=link(ctx, "contacts", _prefixed(record.get("WhoId"), _CONTACT_PREFIX)),
        channel=None,
        thread_id=None,
    )
    return row


def _with_participants(
    activity: Row, record: Mapping[str, Any], ctx: NormalizeContext, contact_role: str
) -> Rows:
    participants = []
    contact = _prefixed(record.get("WhoId"), _CONTACT_PREFIX)
    if contact is not None:
        participants.append(participant_row(activity, ctx, "contact", contact, contact_role))
    owner = record.get("OwnerId")
    if owner:
        participants.append(participant_row(activity, ctx, "owner", str(owner), "owner"))
    return {"activities": [activity], "activity_participants": participants}


NORMALIZERS: dict[str, RecordNormalizer] = {
    "User": normalize_user,
    "Account": normalize_account,
    "Contact": normalize_contact,
    "OpportunityStage": normalize_opportunity_stage,
    "Opportunity": normalize_opportunity,
    "OpportunityHistory": normalize_opportunity_history,
    "OpportunityContactRole": normalize_contact_role,
    "Task": normalize_task,
    "Event": normalize_event,
}
