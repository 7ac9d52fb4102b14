"""HubSpot CRM v3 records -> common-schema rows (pure functions; the contract is in ``base``).

Streams (keys of ``NORMALIZERS``) and the tables they fill:

- ``owners`` -> owners. ``is_active = not archived``; an archived owner keeps ``deleted_at``
  NULL, because the deals and activities it owned still point at it.
- ``companies`` -> accounts, ``contacts`` -> contacts, ``deals`` -> deals. Archived records get
  ``deleted_at = archivedAt``.
- ``pipelines`` (``GET /crm/v3/pipelines/deals``) -> one pipelines row plus one deal_stages row
  per stage. Stage ids are unique within a pipeline only, so
  ``deal_stages.source_id = "{pipelineId}:{stageId}"``. ``stage_map`` turns those into
  ``NormalizeContext.stages`` for the deals.
- ``meetings``, ``calls``, ``emails``, ``notes``, ``tasks`` -> one activities row each, plus
  activity_participants: one per associated contact and one for the owner.

Source ids of engagements: HubSpot ids are unique per object type only (a call and a note may
share an id), so ``activities.source_id = "{activity_type}:{id}"`` (``"meeting:30110000001"``).
Participants are ``"{activity_type}:{id}:contact:{contactId}"`` and
``"{activity_type}:{id}:owner:{ownerId}"``.

Values: every HubSpot property is a string or null. Amounts are rounded to cents and
probabilities to 4 places because the columns are NUMERIC(18,2) and NUMERIC(5,4): one extra
digit would make the store's cast fail for the whole batch, not just for this record.

``PROPERTIES`` and ``ASSOCIATIONS`` list what each stream's normalizer reads: what a connector
asks for. Speed (a sync normalizes hundreds of thousands of records): link ids, close dates
and probabilities are memoized (pure, immutable results); the ISO ``...Z`` times HubSpot sends
skip ``parse_time``'s general path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, TypeVar

from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import (
    NormalizeContext,
    RecordNormalizer,
    RecordRejected,
    Row,
    Rows,
    StageInfo,
    clean_email,
    parse_bool,
    parse_decimal,
    parse_int,
    parse_time,
)

_ZERO, _ONE = Decimal(0), Decimal(1)
_CENT, _BASIS_POINT = Decimal("0.01"), Decimal("0.0001")
_MONEY_DIGITS = 16  # NUMERIC(18,2) holds 16 digits before the point
_INT_LIMIT = 2**31  # INTEGER columns on PostgreSQL

# HubSpot's forecast category values -> the labels the schema documents (and Salesforce uses).
_FORECAST_LABELS = {
    "PIPELINE": "Pipeline",
    "BEST_CASE": "Best Case",
    "COMMIT": "Commit",
    "CLOSED": "Closed",
    "OMIT": "Omitted",
}
# HubSpot's two default deal types; custom values pass through unchanged.
_DEAL_TYPES = {"newbusiness": "New Business", "existingbusiness": "Existing Business"}
_DIRECTIONS = {
    "INBOUND": "inbound",
    "OUTBOUND": "outbound",
    "INCOMING_EMAIL": "inbound",
    "EMAIL": "outbound",
    "FORWARDED_EMAIL": "outbound",
}
_STATUS_ALIASES = {"canceled": "cancelled"}

_ENGAGEMENT_COMMON = ("hs_timestamp", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate")
# What each stream's normalizer reads: the properties and associations a connector should ask
# for (HubSpot returns a few defaults otherwise, and silently ignores names it does not know).
PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": (
        "name", "domain", "website", "industry", "type", "numberofemployees", "annualrevenue",
        "city", "country", "hubspot_owner_id", "createdate", "hs_lastmodifieddate",
    ),
    "contacts": (
        "firstname", "lastname", "email", "jobtitle", "phone", "mobilephone",
        "associatedcompanyid", "hubspot_owner_id", "createdate", "lastmodifieddate",
    ),
    "deals": (
        "dealname", "amount", "deal_currency_code", "pipeline", "dealstage", "closedate",
        "hubspot_owner_id", "hs_deal_stage_probability", "hs_is_closed", "hs_is_closed_won",
        "hs_manual_forecast_category", "hs_forecast_category", "dealtype", "leadsource",
        "hs_analytics_source", "createdate", "hs_lastmodifieddate",
    ),
    "meetings": (
        *_ENGAGEMENT_COMMON, "hs_meeting_title", "hs_meeting_body", "hs_internal_meeting_notes",
        "hs_meeting_start_time", "hs_meeting_end_time", "hs_meeting_outcome",
    ),
    "calls": (
        *_ENGAGEMENT_COMMON, "hs_call_title", "hs_call_body", "hs_call_duration",
        "hs_call_direction", "hs_call_status",
    ),
    "emails": (
        *_ENGAGEMENT_COMMON, "hs_email_subject", "hs_email_text", "hs_email_html",
        "hs_email_direction", "hs_email_status",
    ),
    "notes": (*_ENGAGEMENT_COMMON, "hs_note_body"),
    "tasks": (*_ENGAGEMENT_COMMON, "hs_task_subject", "hs_task_body", "hs_task_status"),
}  # fmt: skip
_ENGAGEMENT_LINKS = ("contacts", "companies", "deals")
ASSOCIATIONS: dict[str, tuple[str, ...]] = {
    "contacts": ("companies",),
    "deals": ("companies",),
    **{stream: _ENGAGEMENT_LINKS for stream in ("meetings", "calls", "emails", "notes", "tasks")},
}


# --- shared value helpers --------------------------------------------------------------------

_T = TypeVar("_T")


def _memo_strings(parse: Callable[[Any, str], _T]) -> Callable[[Any, str], _T]:
    """``parse(value, field)``, computed once per distinct string: close dates and stage
    probabilities repeat across thousands of deals, and their results are immutable. Other
    values (and every failure, which lru_cache does not keep) go through ``parse`` itself."""
    cached = lru_cache(maxsize=4096)(parse)

    def memoized(value: Any, field: str) -> _T:
        return cached(value, field) if value.__class__ is str else parse(value, field)

    return memoized


@lru_cache(maxsize=1 << 15)
def _linked_id(organization_id: str, source_system: str, table: str, source_id: str) -> uuid.UUID:
    # Owners, pipelines and accounts repeat across thousands of records; the MD5 + UUID of
    # record_id is most of a deal's cost, so links are memoized (same value as ctx.id_for).
    return record_id(organization_id, source_system, table, source_id)


def _link(ctx: NormalizeContext, table: str, source_id: Any) -> uuid.UUID | None:
    if source_id is None or source_id == "":
        return None
    return _linked_id(ctx.organization_id, ctx.source_system, table, str(source_id))


def _time(value: Any, field: str) -> datetime | None:
    """``parse_time``, with a fast path for HubSpot's own ``...Z`` strings (3.11's
    fromisoformat reads ``Z`` as UTC); epoch ms, other shapes and errors go to parse_time."""
    if value.__class__ is str and value.endswith("Z"):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return parse_time(value, field)


@_memo_strings
def _date(value: Any, field: str) -> date | None:
    moment = _time(value, field)
    return None if moment is None else moment.date()


def _is_object(value: Any) -> bool:
    # JSON objects are dicts: skip the slower ABC check for them.
    return value.__class__ is dict or isinstance(value, Mapping)


def _decimal(value: Any, field: str) -> Decimal | None:
    """``parse_decimal``, reading a clean numeric string directly; everything else (and the
    wording of a rejection) is parse_decimal's."""
    if value.__class__ is str:
        try:
            number = Decimal(value)
        except InvalidOperation:
            return parse_decimal(value, field)
        if number.is_finite():
            return number
    return parse_decimal(value, field)


def _money(value: Any, field: str) -> Decimal | None:
    number = _decimal(value, field)
    if number is None:
        return None
    if number.adjusted() >= _MONEY_DIGITS:
        raise RecordRejected(f"{field} is out of range: {value!r}")
    return number.quantize(_CENT)


@_memo_strings
def _probability(value: Any, field: str) -> Decimal | None:
    number = _decimal(value, field)
    if number is None:
        return None
    if number < _ZERO or number > _ONE:  # Decimal constants: no int conversion per compare
        raise RecordRejected(f"{field} is not a probability between 0 and 1: {value!r}")
    return number.quantize(_BASIS_POINT)


def _count(value: Any, field: str) -> int | None:
    number = parse_int(value, field)
    if number is not None and not -_INT_LIMIT < number < _INT_LIMIT:
        raise RecordRejected(f"{field} is out of range: {value!r}")
    return number


def _status(value: Any) -> str | None:
    if not value:
        return None
    status = str(value).strip().lower().replace(" ", "_")
    return _STATUS_ALIASES.get(status, status)


def _full_name(first: Any, last: Any) -> str | None:
    return " ".join(part for part in (first, last) if part) or None


def _domain(value: Any) -> str | None:
    """A host name, lowercase, without scheme, path, port or ``www.`` (``acme.com``)."""
    if not value or not isinstance(value, str):
        return None
    host = value.strip().lower()
    if "//" in host:
        host = host.split("//", 1)[1]
    host = host.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    if host.startswith("www."):
        host = host[4:]
    return host or None


# --- record envelope ---------------------------------------------------------------------------


def _source_id(record: Mapping[str, Any]) -> str:
    if not _is_object(record):
        raise RecordRejected(f"record is not a JSON object but {type(record).__name__}")
    value = record.get("id")
    if value is None or value == "":
        raise RecordRejected("missing id")
    if value.__class__ is str:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordRejected(f"id is not a string: {value!r}")


def _properties(record: Mapping[str, Any]) -> Mapping[str, Any]:
    props = record.get("properties")
    if props is None:
        return {}
    if not _is_object(props):
        raise RecordRejected(f"properties is not an object but {type(props).__name__}")
    return props


def _stamp(
    props: Mapping[str, Any], name: str, record: Mapping[str, Any], fallback: str
) -> datetime | None:
    """A property's time, else the envelope's (``createdAt``/``updatedAt``), naming the field
    the value came from when it is malformed."""
    value = props.get(name)
    if value:
        return _time(value, name)
    return _time(record.get(fallback), fallback)


def _deleted_at(record: Mapping[str, Any], updated_at: datetime | None) -> datetime | None:
    archived = record.get("archived")
    if archived is None or archived is False:
        return None
    if archived is not True and not parse_bool(archived, "archived"):
        return None
    return _time(record.get("archivedAt"), "archivedAt") or updated_at


def _association_results(record: Mapping[str, Any], target: str) -> list[Any]:
    associations = record.get("associations")
    if not associations:
        return []
    if not _is_object(associations):
        raise RecordRejected(f"associations is not an object but {type(associations).__name__}")
    group = associations.get(target)
    if not group:
        return []
    results = group.get("results") if _is_object(group) else None
    if results.__class__ is not list:
        raise RecordRejected(f"associations.{target}.results is not a list")
    return results


def _association_id(item: Any, target: str) -> str:
    target_id = item.get("id") if _is_object(item) else None
    if target_id is None or target_id == "":
        raise RecordRejected(f"associations.{target}.results has an entry without id")
    return str(target_id)


def _first_associated(record: Mapping[str, Any], target: str) -> str | None:
    results = _association_results(record, target)
    return _association_id(results[0], target) if results else None


def _associated(record: Mapping[str, Any], target: str) -> list[str]:
    """Ids in ``associations.{target}.results``, in order, without duplicates (labelled and
    unlabelled associations may both list one record)."""
    ids: list[str] = []
    for item in _association_results(record, target):
        target_id = _association_id(item, target)
        if target_id not in ids:
            ids.append(target_id)
    return ids


# --- owners, companies, contacts ---------------------------------------------------------------


def normalize_owner(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    source_id = _source_id(record)
    first, last = record.get("firstName"), record.get("lastName")
    archived = parse_bool(record.get("archived"), "archived")
    row = ctx.base_row("owners", source_id)
    row.update(
        email=clean_email(record.get("email")),
        first_name=first or None,
        last_name=last or None,
        full_name=_full_name(first, last),
        is_active=None if archived is None else not archived,
        created_at=_time(record.get("createdAt"), "createdAt"),
        updated_at=_time(record.get("updatedAt"), "updatedAt"),
        deleted_at=None,
        raw=record,
    )
    return {"owners": [row]}


def normalize_company(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    source_id = _source_id(record)
    props = _properties(record)
    website = props.get("website")
    updated_at = _stamp(props, "hs_lastmodifieddate", record, "updatedAt")
    row = ctx.base_row("accounts", source_id)
    row.update(
        name=props.get("name") or None,
        domain=_domain(props.get("domain")) or _domain(website),
        industry=props.get("industry") or None,
        account_type=props.get("type") or None,
        website=website or None,
        employee_count=_count(props.get("numberofemployees"), "numberofemployees"),
        annual_revenue=_money(props.get("annualrevenue"), "annualrevenue"),
        city=props.get("city") or None,
        country=props.get("country") or None,
        owner_id=_link(ctx, "owners", props.get("hubspot_owner_id")),
        created_at=_stamp(props, "createdate", record, "createdAt"),
        updated_at=updated_at,
        deleted_at=_deleted_at(record, updated_at),
        raw=record,
    )
    return {"accounts": [row]}


def normalize_contact(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    source_id = _source_id(record)
    props = _properties(record)
    first, last = props.get("firstname"), props.get("lastname")
    company = _first_associated(record, "companies") or props.get("associatedcompanyid")
    updated_at = _stamp(props, "lastmodifieddate", record, "updatedAt")
    row = ctx.base_row("contacts", source_id)
    row.update(
        email=clean_email(props.get("email")),
        first_name=first or None,
        last_name=last or None,
        full_name=_full_name(first, last),
        title=props.get("jobtitle") or None,
        phone=props.get("phone") or props.get("mobilephone") or None,
        account_id=_link(ctx, "accounts", company),
        owner_id=_link(ctx, "owners", props.get("hubspot_owner_id")),
        created_at=_stamp(props, "createdate", record, "createdAt"),
        updated_at=updated_at,
        deleted_at=_deleted_at(record, updated_at),
        raw=record,
    )
    return {"contacts": [row]}


# --- pipelines and stages ----------------------------------------------------------------------


def normalize_pipeline(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    source_id = _source_id(record)
    stages = record.get("stages") or []
    if not isinstance(stages, list):
        raise RecordRejected(f"stages is not a list but {type(stages).__name__}")
    row = ctx.base_row("pipelines", source_id)
    row.update(
        name=record.get("label") or None,
        display_order=_count(record.get("displayOrder"), "displayOrder"),
        is_archived=parse_bool(record.get("archived"), "archived"),
        created_at=_time(record.get("createdAt"), "createdAt"),
        updated_at=_time(record.get("updatedAt"), "updatedAt"),
        deleted_at=None,  # an archived pipeline still frames its old deals: is_archived says it
        raw=record,
    )
    pipeline_id = row["id"]
    return {
        "pipelines": [row],
        "deal_stages": [
            _stage_row(stage, i, source_id, pipeline_id, ctx) for i, stage in enumerate(stages)
        ],
    }


def _stage_row(
    stage: Any, position: int, pipeline: str, pipeline_id: uuid.UUID, ctx: NormalizeContext
) -> Row:
    where = f"stages[{position}]"
    if not _is_object(stage):
        raise RecordRejected(f"{where} is not an object but {type(stage).__name__}")
    stage_id = stage.get("id")
    if not stage_id:
        raise RecordRejected(f"{where} missing id")
    metadata = stage.get("metadata") or {}
    if not _is_object(metadata):
        raise RecordRejected(f"{where}.metadata is not an object")
    probability = _probability(metadata.get("probability"), f"{where}.metadata.probability")
    is_closed = parse_bool(metadata.get("isClosed"), f"{where}.metadata.isClosed")
    # HubSpot marks won as closed with probability 1.0; honour an explicit isWon if one comes.
    is_won = parse_bool(metadata.get("isWon"), f"{where}.metadata.isWon")
    if is_won is None and is_closed is not None:
        is_won = is_closed and probability == _ONE
    row = ctx.base_row("deal_stages", f"{pipeline}:{stage_id}")
    row.update(
        pipeline_id=pipeline_id,
        label=stage.get("label") or None,
        display_order=_count(stage.get("displayOrder"), f"{where}.displayOrder"),
        probability=probability,
        is_closed=is_closed,
        is_won=is_won,
        forecast_category=metadata.get("forecastCategory") or None,
        created_at=_time(stage.get("createdAt"), f"{where}.createdAt"),
        updated_at=_time(stage.get("updatedAt"), f"{where}.updatedAt"),
        deleted_at=None,
        raw=stage,
    )
    return row


def stage_map(
    items: Iterable[Mapping[str, Any]], ctx: NormalizeContext | None = None
) -> dict[str, StageInfo]:
    """``NormalizeContext.stages`` for deals: ``"{pipelineId}:{stageId}"`` and bare ``stageId``
    -> stage. ``items`` are raw pipelines from ``GET /crm/v3/pipelines/deals`` (then ``ctx``
    is required; a malformed one raises RecordRejected) or already normalized ``deal_stages``
    rows (the quarantining path: ``normalize_page`` the pipelines, pass its deal_stages).
    A bare stage id shared by two pipelines keeps the first pipeline's stage."""
    stages: dict[str, StageInfo] = {}
    for row in _stage_rows(items, ctx):
        info = StageInfo(
            stage_id=row["id"],
            pipeline_id=row.get("pipeline_id"),
            label=row.get("label") or "",
            display_order=row.get("display_order"),
            probability=row.get("probability"),
            is_closed=bool(row.get("is_closed")),
            is_won=bool(row.get("is_won")),
            forecast_category=row.get("forecast_category"),
        )
        key = str(row["source_id"])
        stages[key] = info
        stages.setdefault(key.partition(":")[2] or key, info)
    return stages


def _stage_rows(
    items: Iterable[Mapping[str, Any]], ctx: NormalizeContext | None
) -> Iterable[Mapping[str, Any]]:
    for item in items:
        if "stages" in item:
            if ctx is None:
                raise ValueError("stage_map needs ctx to read raw HubSpot pipelines")
            yield from normalize_pipeline(item, ctx)["deal_stages"]
        elif "source_id" in item:
            yield item
        else:
            raise ValueError(
                "stage_map expects HubSpot pipelines (with 'stages') or deal_stages rows"
            )


# --- deals -------------------------------------------------------------------------------------


def _find_stage(
    stages: Mapping[str, StageInfo], pipeline: str | None, stage: str | None
) -> StageInfo | None:
    if not stage:
        return None
    if pipeline:
        info = stages.get(f"{pipeline}:{stage}")
        if info is not None:
            return info
    return stages.get(stage)


def normalize_deal(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    source_id = _source_id(record)
    props = _properties(record)
    stage_id, stage_name, is_closed, is_won, probability, forecast = _deal_stage(props, ctx)
    deal_type = props.get("dealtype")
    updated_at = _stamp(props, "hs_lastmodifieddate", record, "updatedAt")
    row = ctx.base_row("deals", source_id)
    row.update(
        name=props.get("dealname") or None,
        amount=_money(props.get("amount"), "amount"),
        currency=props.get("deal_currency_code") or None,
        pipeline_id=_link(ctx, "pipelines", props.get("pipeline")),
        stage_id=stage_id,
        stage_name=stage_name,
        close_date=_date(props.get("closedate"), "closedate"),
        owner_id=_link(ctx, "owners", props.get("hubspot_owner_id")),
        account_id=_link(ctx, "accounts", _first_associated(record, "companies")),
        is_closed=is_closed,
        is_won=is_won,
        probability=probability,
        forecast_category=forecast,
        deal_type=_DEAL_TYPES.get(deal_type, deal_type) if deal_type else None,
        lead_source=props.get("leadsource") or props.get("hs_analytics_source") or None,
        created_at=_stamp(props, "createdate", record, "createdAt"),
        updated_at=updated_at,
        deleted_at=_deleted_at(record, updated_at),
        raw=record,
    )
    return {"deals": [row]}


_DealStage = tuple[
    uuid.UUID | None, str | None, bool | None, bool | None, Decimal | None, str | None
]


def _deal_stage(props: Mapping[str, Any], ctx: NormalizeContext) -> _DealStage:
    """(stage_id, stage_name, is_closed, is_won, probability, forecast_category) of a deal: its
    stage's, except where the deal carries its own probability or forecast category."""
    pipeline, stage = props.get("pipeline") or None, props.get("dealstage") or None
    info = _find_stage(ctx.stages, pipeline, stage)
    probability = _probability(props.get("hs_deal_stage_probability"), "hs_deal_stage_probability")
    forecast = props.get("hs_manual_forecast_category") or props.get("hs_forecast_category")
    if forecast:
        forecast = _FORECAST_LABELS.get(forecast, forecast)
    if info is not None:
        if probability is None:
            probability = info.probability
        return (info.stage_id, info.label, info.is_closed, info.is_won, probability,
                forecast or info.forecast_category)  # fmt: skip
    # A stage we have not seen is no reason to drop the deal: keep the id it will have once
    # its pipeline syncs, and the deal's own closed flags when HubSpot sent them.
    return (
        _link(ctx, "deal_stages", f"{pipeline}:{stage}") if pipeline and stage else None,
        stage,
        parse_bool(props.get("hs_is_closed"), "hs_is_closed"),
        parse_bool(props.get("hs_is_closed_won"), "hs_is_closed_won"),
        probability,
        forecast or None,
    )


# --- engagements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Engagement:
    """Which properties of one engagement type fill the activity's columns."""

    activity_type: str
    subject: str | None
    body: tuple[str, ...]  # first non-empty wins
    status: str | None
    direction: str | None
    contact_role: str = "participant"  # how an associated contact takes part


_MEETING = _Engagement(
    activity_type="meeting",
    subject="hs_meeting_title",
    body=("hs_meeting_body", "hs_internal_meeting_notes"),
    status="hs_meeting_outcome",
    direction=None,
    contact_role="attendee",
)
_CALL = _Engagement(
    activity_type="call",
    subject="hs_call_title",
    body=("hs_call_body",),
    status="hs_call_status",
    direction="hs_call_direction",
)
_EMAIL = _Engagement(
    activity_type="email",
    subject="hs_email_subject",
    body=("hs_email_text", "hs_email_html"),
    status="hs_email_status",
    direction="hs_email_direction",
)
_NOTE = _Engagement(
    activity_type="note", subject=None, body=("hs_note_body",), status=None, direction=None
)
_TASK = _Engagement(
    activity_type="task",
    subject="hs_task_subject",
    body=("hs_task_body",),
    status="hs_task_status",
    direction=None,
)


def _body(props: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = props.get(name)
        if value:
            return str(value)
    return None


def _timing(
    props: Mapping[str, Any], kind: _Engagement
) -> tuple[datetime | None, datetime | None, int | None]:
    """(occurred_at, ended_at, duration_seconds) of an engagement."""
    occurred_at = _time(props.get("hs_timestamp"), "hs_timestamp")
    if kind is _MEETING:
        start = _time(props.get("hs_meeting_start_time"), "hs_meeting_start_time")
        end = _time(props.get("hs_meeting_end_time"), "hs_meeting_end_time")
        start = start or occurred_at
        duration = int((end - start).total_seconds()) if start and end else None
        return occurred_at or start, end, duration
    if kind is _CALL:
        millis = _decimal(props.get("hs_call_duration"), "hs_call_duration")
        if millis is None:
            return occurred_at, None, None
        if not 0 <= millis < _INT_LIMIT * 1000:
            raise RecordRejected(f"hs_call_duration is out of range: {props['hs_call_duration']!r}")
        return occurred_at, None, int(millis.scaleb(-3).to_integral_value())
    return occurred_at, None, None


def _engagement(record: Mapping[str, Any], ctx: NormalizeContext, kind: _Engagement) -> Rows:
    source_id = f"{kind.activity_type}:{_source_id(record)}"
    props = _properties(record)
    occurred_at, ended_at, duration = _timing(props, kind)
    contacts = _associated(record, "contacts")
    owner = props.get("hubspot_owner_id") or None
    direction = props.get(kind.direction) if kind.direction else None
    updated_at = _stamp(props, "hs_lastmodifieddate", record, "updatedAt")
    row = ctx.base_row("activities", source_id)
    row.update(
        activity_type=kind.activity_type,
        subject=(props.get(kind.subject) or None) if kind.subject else None,
        body=_body(props, kind.body),
        occurred_at=occurred_at,
        ended_at=ended_at,
        is_all_day=None,
        duration_seconds=duration,
        direction=_DIRECTIONS.get(direction) if direction else None,
        status=_status(props.get(kind.status)) if kind.status else None,
        owner_id=_link(ctx, "owners", owner),
        deal_id=_link(ctx, "deals", _first_associated(record, "deals")),
        account_id=_link(ctx, "accounts", _first_associated(record, "companies")),
        contact_id=_link(ctx, "contacts", contacts[0] if contacts else None),
        channel=None,
        thread_id=None,
        created_at=_stamp(props, "hs_createdate", record, "createdAt"),
        updated_at=updated_at,
        deleted_at=_deleted_at(record, updated_at),
        raw=record,
    )
    participants = [_participant(row, ctx, "contact", c, kind.contact_role) for c in contacts]
    if owner is not None:
        participants.append(_participant(row, ctx, "owner", str(owner), "owner"))
    return {"activities": [row], "activity_participants": participants}


def _participant(activity: Row, ctx: NormalizeContext, who: str, who_id: str, role: str) -> Row:
    """A contact or the owner taking part in ``activity`` (its times, so upserts order alike)."""
    row = ctx.base_row("activity_participants", f"{activity['source_id']}:{who}:{who_id}")
    internal = who == "owner"
    row.update(
        activity_id=activity["id"],
        email=None,
        display_name=None,
        role=role,
        response_status=None,
        is_internal=internal,
        contact_id=None if internal else _link(ctx, "contacts", who_id),
        account_id=None,
        owner_id=_link(ctx, "owners", who_id) if internal else None,
        created_at=activity["created_at"],
        updated_at=activity["updated_at"],
        deleted_at=activity["deleted_at"],
        raw=None,
    )
    return row


def normalize_meeting(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    return _engagement(record, ctx, _MEETING)


def normalize_call(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    return _engagement(record, ctx, _CALL)


def normalize_email(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    return _engagement(record, ctx, _EMAIL)


def normalize_note(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    return _engagement(record, ctx, _NOTE)


def normalize_task(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    return _engagement(record, ctx, _TASK)


NORMALIZERS: dict[str, RecordNormalizer] = {
    "owners": normalize_owner,
    "companies": normalize_company,
    "contacts": normalize_contact,
    "pipelines": normalize_pipeline,
    "deals": normalize_deal,
    "meetings": normalize_meeting,
    "calls": normalize_call,
    "emails": normalize_email,
    "notes": normalize_note,
    "tasks": normalize_task,
}
