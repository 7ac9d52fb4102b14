"""HubSpot CRM v3 records -> common-schema rows (pure functions; the contract is in ``base``).

Streams (keys of ``NORMALIZERS``) and the tables they fill:

- ``owners`` -> owners. ``is_active = not archived``; an archived owner keeps ``deleted_at``
  NULL, because the deals and activities it owned still point at it.
- ``companies`` -> accounts, ``contacts`` -> contacts, ``deals`` -> deals plus their
  deal_stage_history and deal_contacts rows (``hubspot_deal_parts``). Archived records get
  ``deleted_at = archivedAt``. ``deals.stage_entered_at`` is when the current stage was
  entered: the newest entry into it in the stage history (NULL without history).
- ``pipelines`` (``GET /crm/v3/pipelines/deals``) -> one pipelines row plus one deal_stages row
  per stage (archived stages too, with ``is_active`` false). Stage ids are unique within a
  pipeline only, so ``deal_stages.source_id = "{pipelineId}:{stageId}"``. ``stage_map`` turns
  those into ``NormalizeContext.stages`` for the deals.
- ``meetings``, ``calls``, ``emails``, ``notes``, ``tasks`` -> one activities row each, plus
  activity_participants: one per associated contact and one for the owner (the functions are in
  ``hubspot_engagements``, which also says how their source ids are made).

Values: every HubSpot property is a string or null. Amounts are rounded to cents and
probabilities to 4 places because the columns are NUMERIC(18,2) and NUMERIC(5,4): one extra
digit would make the store's cast fail for the whole batch, not just for this record.

``PROPERTIES``, ``ASSOCIATIONS`` and ``HISTORY`` (properties read with their past values) are
``revtops_kernel.hubspot_properties``, the one list the connector asks for too. The value
parsers (and how they stay fast) are in ``values``; the envelope every record has (id,
properties, archived, associations) is read by ``hubspot_envelope``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from revtops_kernel.hubspot_properties import OBJECTS
from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import (
    ColumnarNormalizer,
    NormalizeContext,
    RawValue,
    RecordNormalizer,
    RecordRejected,
    Row,
    Rows,
    StageInfo,
)
from revtops_kernel.normalize.hubspot_deal_parts import (
    FIELD_HISTORY_COLUMNS,
    DealParent,
    contact_rows,
    field_history_rows,
    history_rows,
    stage_versions,
)
from revtops_kernel.normalize.hubspot_engagements import (
    normalize_call,
    normalize_email,
    normalize_meeting,
    normalize_note,
    normalize_task,
)
from revtops_kernel.normalize.hubspot_envelope import (
    archived_at,
    first_associated,
    hubspot_id,
    properties,
    stamp,
)
from revtops_kernel.normalize.rows import (
    ACCOUNT_COLUMNS,
    CONTACT_COLUMNS,
    DEAL_COLUMNS,
    DEAL_CONTACT_COLUMNS,
    HISTORY_COLUMNS,
    stage_info,
    stage_rows,
)
from revtops_kernel.normalize.values import (
    clean_email,
    full_name,
    is_object,
    link,
    parse_bool,
    parse_count,
    parse_date,
    parse_money,
    parse_probability,
    parse_time,
    web_domain,
)

_ONE = Decimal(1)

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

# What each stream's normalizer may read: the one declaration the connector asks for too.
PROPERTIES: dict[str, tuple[str, ...]] = {name: o.properties for name, o in OBJECTS.items()}
HISTORY: dict[str, tuple[str, ...]] = {n: o.history for n, o in OBJECTS.items() if o.history}
ASSOCIATIONS: dict[str, tuple[str, ...]] = {
    name: o.associations for name, o in OBJECTS.items() if o.associations
}


# --- owners, companies, contacts ---------------------------------------------------------------


def normalize_owner(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    source_id = hubspot_id(record)
    first, last = record.get("firstName"), record.get("lastName")
    archived = parse_bool(record.get("archived"), "archived")
    row = ctx.base_row("owners", source_id)
    row.update(
        email=clean_email(record.get("email")),
        first_name=first or None,
        last_name=last or None,
        full_name=full_name(first, last),
        is_active=None if archived is None else not archived,
        created_at=parse_time(record.get("createdAt"), "createdAt"),
        updated_at=parse_time(record.get("updatedAt"), "updatedAt"),
        deleted_at=None,
        raw=record,
    )
    return {"owners": [row]}


# The tuples the columnar normalizers below make are in normalize.rows' column orders.


def _company_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]]]:
    source_id = hubspot_id(record)
    props = properties(record)
    website = props.get("website")
    updated_at = stamp(props, "hs_lastmodifieddate", record, "updatedAt")
    org, system = ctx.organization_id, ctx.source_system
    return (
        [
            (
                org,
                system,
                source_id,
                props.get("name") or None,
                web_domain(props.get("domain")) or web_domain(website),
                props.get("industry") or None,
                props.get("type") or None,
                website or None,
                parse_count(props.get("numberofemployees"), "numberofemployees"),
                parse_money(props.get("annualrevenue"), "annualrevenue"),
                props.get("city") or None,
                props.get("country") or None,
                link(ctx, "owners", props.get("hubspot_owner_id")),
                stamp(props, "createdate", record, "createdAt"),
                updated_at,
                archived_at(record, updated_at),
                raw(record),
            )
        ],
    )


def _contact_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]]]:
    source_id = hubspot_id(record)
    props = properties(record)
    first, last = props.get("firstname"), props.get("lastname")
    company = first_associated(record, "companies") or props.get("associatedcompanyid")
    updated_at = stamp(props, "lastmodifieddate", record, "updatedAt")
    org, system = ctx.organization_id, ctx.source_system
    return (
        [
            (
                org,
                system,
                source_id,
                clean_email(props.get("email")),
                first or None,
                last or None,
                full_name(first, last),
                props.get("jobtitle") or None,
                props.get("phone") or props.get("mobilephone") or None,
                link(ctx, "accounts", company),
                link(ctx, "owners", props.get("hubspot_owner_id")),
                stamp(props, "createdate", record, "createdAt"),
                updated_at,
                archived_at(record, updated_at),
                raw(record),
            )
        ],
    )


normalize_company = ColumnarNormalizer({"accounts": ACCOUNT_COLUMNS}, _company_parts)
normalize_contact = ColumnarNormalizer({"contacts": CONTACT_COLUMNS}, _contact_parts)


# --- pipelines and stages ----------------------------------------------------------------------


def normalize_pipeline(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    source_id = hubspot_id(record)
    stages = record.get("stages") or []
    if not isinstance(stages, list):
        raise RecordRejected(f"stages is not a list but {type(stages).__name__}")
    row = ctx.base_row("pipelines", source_id)
    row.update(
        name=record.get("label") or None,
        display_order=parse_count(record.get("displayOrder"), "displayOrder"),
        is_archived=parse_bool(record.get("archived"), "archived"),
        created_at=parse_time(record.get("createdAt"), "createdAt"),
        updated_at=parse_time(record.get("updatedAt"), "updatedAt"),
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
    if not is_object(stage):
        raise RecordRejected(f"{where} is not an object but {type(stage).__name__}")
    stage_id = stage.get("id")
    if not stage_id:
        raise RecordRejected(f"{where} missing id")
    metadata = stage.get("metadata") or {}
    if not is_object(metadata):
        raise RecordRejected(f"{where}.metadata is not an object")
    probability = parse_probability(metadata.get("probability"), f"{where}.metadata.probability")
    is_closed = parse_bool(metadata.get("isClosed"), f"{where}.metadata.isClosed")
    # HubSpot marks won as closed with probability 1.0; honour an explicit isWon if one comes.
    is_won = parse_bool(metadata.get("isWon"), f"{where}.metadata.isWon")
    if is_won is None and is_closed is not None:
        is_won = is_closed and probability == _ONE
    row = ctx.base_row("deal_stages", f"{pipeline}:{stage_id}")
    row.update(
        pipeline_id=pipeline_id,
        label=stage.get("label") or None,
        display_order=parse_count(stage.get("displayOrder"), f"{where}.displayOrder"),
        probability=probability,
        is_closed=is_closed,
        is_won=is_won,
        forecast_category=metadata.get("forecastCategory") or None,
        is_active=not parse_bool(stage.get("archived"), f"{where}.archived"),
        created_at=parse_time(stage.get("createdAt"), f"{where}.createdAt"),
        updated_at=parse_time(stage.get("updatedAt"), f"{where}.updatedAt"),
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
    rows = stage_rows(
        items,
        ctx,
        is_raw=lambda item: "stages" in item,
        normalize=normalize_pipeline,
        raw_kind="HubSpot pipelines",
        expected="HubSpot pipelines (with 'stages')",
    )
    for row in rows:
        info = stage_info(row)
        key = str(row["source_id"])
        stages[key] = info
        stages.setdefault(key.partition(":")[2] or key, info)
    return stages


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


def _deal_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
) -> tuple[list[tuple[Any, ...]], ...]:
    source_id = hubspot_id(record)
    props = properties(record)
    stage_id, stage_name, is_closed, is_won, probability, forecast = _deal_stage(props, ctx)
    deal_type = props.get("dealtype")
    updated_at = stamp(props, "hs_lastmodifieddate", record, "updatedAt")
    versions = stage_versions(record)
    org, system = ctx.organization_id, ctx.source_system
    deal_id = record_id(org, system, "deals", source_id)
    name = props.get("dealname") or None
    amount = parse_money(props.get("amount"), "amount")
    currency = props.get("deal_currency_code") or None
    pipeline_id = link(ctx, "pipelines", props.get("pipeline"))
    close_date = parse_date(props.get("closedate"), "closedate")
    owner_id = link(ctx, "owners", props.get("hubspot_owner_id"))
    account_id = link(ctx, "accounts", first_associated(record, "companies"))
    created_at = stamp(props, "createdate", record, "createdAt")
    deleted_at = archived_at(record, updated_at)
    deal = (
        deal_id, org, system, source_id, name, amount, currency, pipeline_id, stage_id,
        stage_name, close_date, owner_id, account_id, is_closed, is_won, probability, forecast,
        _DEAL_TYPES.get(deal_type, deal_type) if deal_type else None,
        props.get("leadsource") or props.get("hs_analytics_source") or None,
        _stage_entered_at(props, versions), created_at, updated_at, deleted_at, raw(record),
    )  # fmt: skip
    pipeline = props.get("pipeline") or None

    def find(stage: str) -> tuple[uuid.UUID | None, StageInfo | None]:
        info = _find_stage(ctx.stages, pipeline, stage)
        if info is not None:
            return info.stage_id, info
        return (link(ctx, "deal_stages", f"{pipeline}:{stage}") if pipeline else None), None

    parent = DealParent(source_id, deal_id, created_at, updated_at, deleted_at)
    return (
        [deal],
        history_rows(parent, versions, pipeline, find, ctx),
        field_history_rows(parent, record, ctx),
        contact_rows(parent, record, ctx),
    )


normalize_deal = ColumnarNormalizer(
    {
        "deals": DEAL_COLUMNS,
        "deal_stage_history": HISTORY_COLUMNS,
        "deal_field_history": FIELD_HISTORY_COLUMNS,
        "deal_contacts": DEAL_CONTACT_COLUMNS,
    },
    _deal_parts,
)


def _stage_entered_at(
    props: Mapping[str, Any], versions: list[tuple[datetime, str]]
) -> datetime | None:
    stage = props.get("dealstage") or None
    if versions and stage is None:
        return versions[-1][0]
    # The newest entry into the current stage (history read a moment after the properties
    # may already hold a later move).
    # No history, no time: HubSpot's per-stage "hs_date_entered_{stage}" properties are not
    # requested (their names depend on the portal's stages; dealstage history says it all).
    entered = [when for when, value in versions if value == stage]
    return entered[-1] if entered else None


_DealStage = tuple[
    uuid.UUID | None, str | None, bool | None, bool | None, Decimal | None, str | None
]


def _deal_stage(props: Mapping[str, Any], ctx: NormalizeContext) -> _DealStage:
    """(stage_id, stage_name, is_closed, is_won, probability, forecast_category) of a deal: its
    stage's, except where the deal carries its own probability or forecast category."""
    pipeline, stage = props.get("pipeline") or None, props.get("dealstage") or None
    info = _find_stage(ctx.stages, pipeline, stage)
    probability = parse_probability(
        props.get("hs_deal_stage_probability"), "hs_deal_stage_probability"
    )
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
        link(ctx, "deal_stages", f"{pipeline}:{stage}") if pipeline and stage else None,
        stage,
        parse_bool(props.get("hs_is_closed"), "hs_is_closed"),
        parse_bool(props.get("hs_is_closed_won"), "hs_is_closed_won"),
        probability,
        forecast or None,
    )


# The engagement normalizers live in hubspot_engagements; every stream is listed here.
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
