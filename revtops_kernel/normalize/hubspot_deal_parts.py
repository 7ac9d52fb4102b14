"""The rows a HubSpot deal brings besides itself: its stage, amount and close-date history
and its contacts.

- ``deal_stage_history``: one row per stage the deal entered, from ``propertiesWithHistory
  .dealstage`` (versions ``{value, timestamp, sourceType, ...}``, newest first). Versions are
  sorted oldest first and consecutive equal values collapse into the first (HubSpot records
  a version when a stage is set again to the value it had). ``source_id`` is
  ``"{dealId}:{stageId}:{epoch ms}"``: every read of a deal brings its whole history again and
  lands on the same rows, so nothing is duplicated across syncs. HubSpot keeps no amount at
  the time of a change, so ``amount`` is NULL; probability and forecast category are the
  stage's. A stage is looked up in the deal's current pipeline first (stage ids are per
  pipeline), then by its bare id (a deal moved between pipelines); ``pipeline_id`` is the
  pipeline of the stage found, else the deal's.
- ``deal_field_history``: one row per value ``amount`` or ``closedate`` took, from
  ``propertiesWithHistory.amount`` / ``.closedate``, oldest first, consecutive equal values
  collapsed into the first as for stages; an empty value is a cleared field (a row with NULL).
  ``source_id`` is ``"{dealId}:{field}:{epoch ms}"`` (stable across reads). A malformed version
  (not an object, no time, an amount or date that does not parse) rejects the deal, which then
  goes to quarantine with the reason, like a malformed stage history.
- ``deal_contacts``: one row per associated contact, ``source_id "{dealId}:{contactId}"``,
  with the deal's times (so a link the deal no longer lists is older than its deal: that is
  how a sync finds removed links, see ``store.deal_links``). No role or primary flag: HubSpot's
  default deal-contact association has neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import NormalizeContext, RecordRejected, Row, StageInfo
from revtops_kernel.normalize.hubspot_envelope import associated
from revtops_kernel.normalize.values import is_object, link, parse_date, parse_money, parse_time
from revtops_kernel.timeutil import to_epoch_ms

StageLookup = Callable[[str], tuple[uuid.UUID | None, StageInfo | None]]


# The deal properties read with their past values, and the field each fills in
# deal_field_history (amount and close date; stages go to deal_stage_history).
FIELD_PROPERTIES = {"amount": "amount", "closedate": "close_date"}


def _versions(record: Mapping[str, Any], name: str) -> list[tuple[int, Mapping[str, Any]]]:
    """The raw versions of property ``name`` with their positions (none when not sent)."""
    history = record.get("propertiesWithHistory")
    if not history:
        return []
    if not is_object(history):
        raise RecordRejected(f"propertiesWithHistory is not an object but {type(history).__name__}")
    versions = history.get(name)
    if not versions:
        return []
    if versions.__class__ is not list:
        raise RecordRejected(f"propertiesWithHistory.{name} is not a list")
    for i, version in enumerate(versions):
        if not is_object(version):
            raise RecordRejected(f"propertiesWithHistory.{name}[{i}] is not an object")
    return list(enumerate(versions))


def _collapsed(entries: list[tuple[datetime, Any]]) -> list[tuple[datetime, Any]]:
    """Oldest first; a version equal to the one before is no change (HubSpot records one when
    a value is set again)."""
    entries.sort(key=lambda entry: entry[0])
    collapsed: list[tuple[datetime, Any]] = []
    for when, value in entries:
        if not collapsed or collapsed[-1][1] != value:
            collapsed.append((when, value))
    return collapsed


def stage_versions(record: Mapping[str, Any]) -> list[tuple[datetime, str]]:
    """(time, stage id) of every stage the deal entered, oldest first, repeats collapsed."""
    entries: list[tuple[datetime, Any]] = []
    for i, version in _versions(record, "dealstage"):
        value = version.get("value")
        when = parse_time(
            version.get("timestamp"), f"propertiesWithHistory.dealstage[{i}].timestamp"
        )
        if not value or when is None:
            continue  # a cleared stage is no stage entered
        entries.append((when, str(value)))
    return _collapsed(entries)


def field_versions(
    record: Mapping[str, Any], name: str
) -> list[tuple[datetime, Decimal | date | None]]:
    """(time, value) of every value ``amount`` or ``closedate`` took, oldest first, repeats
    collapsed; None is a cleared value. A version without a time is malformed."""
    parse = parse_money if name == "amount" else parse_date
    entries: list[tuple[datetime, Any]] = []
    for i, version in _versions(record, name):
        where = f"propertiesWithHistory.{name}[{i}]"
        when = parse_time(version.get("timestamp"), f"{where}.timestamp")
        if when is None:
            raise RecordRejected(f"{where} has no timestamp")
        raw = version.get("value")
        entries.append((when, parse(raw, f"{where}.value") if raw not in (None, "") else None))
    versions = _collapsed(entries)
    while versions and versions[0][1] is None:
        versions.pop(0)  # empty at creation: the history starts when a value is first set
    return versions


def _epoch_ms(moment: datetime) -> int:
    """``to_epoch_ms``; an aware time (what parse_time gives) skips its conversion to UTC,
    which leaves the instant, and so the number, as it is."""
    if moment.tzinfo is UTC:
        return int(moment.timestamp() * 1000)
    return to_epoch_ms(moment)


# The part rows are built as dict literals (not ctx.base_row + update): a deal brings ~8 of
# them, and the two calls and the keyword dict were a fifth of a deal's normalizing.


def field_history_rows(deal: Row, record: Mapping[str, Any], ctx: NormalizeContext) -> list[Row]:
    rows = []
    org, system = ctx.organization_id, ctx.source_system
    deal_source, deal_id, deleted_at = deal["source_id"], deal["id"], deal["deleted_at"]
    for name, field in FIELD_PROPERTIES.items():
        is_amount = field == "amount"
        for changed_at, value in field_versions(record, name):
            source_id = f"{deal_source}:{name}:{_epoch_ms(changed_at)}"
            rows.append(
                {
                    "id": record_id(org, system, "deal_field_history", source_id),
                    "organization_id": org,
                    "source_system": system,
                    "source_id": source_id,
                    "deal_id": deal_id,
                    "field": field,
                    "amount": value if is_amount else None,
                    "close_date": None if is_amount else value,
                    "changed_at": changed_at,
                    "created_at": changed_at,
                    "updated_at": changed_at,  # a past value never changes
                    "deleted_at": deleted_at,
                    "raw": None,
                }
            )
    return rows


def history_rows(
    deal: Row,
    versions: list[tuple[datetime, str]],
    pipeline: str | None,
    find: StageLookup,
    ctx: NormalizeContext,
) -> list[Row]:
    rows = []
    org, system = ctx.organization_id, ctx.source_system
    deal_source, deal_id, deleted_at = deal["source_id"], deal["id"], deal["deleted_at"]
    for entered_at, stage in versions:
        stage_id, info = find(stage)
        source_id = f"{deal_source}:{stage}:{_epoch_ms(entered_at)}"
        rows.append(
            {
                "id": record_id(org, system, "deal_stage_history", source_id),
                "organization_id": org,
                "source_system": system,
                "source_id": source_id,
                "deal_id": deal_id,
                "pipeline_id": (
                    info.pipeline_id if info is not None else link(ctx, "pipelines", pipeline)
                ),
                "stage_id": stage_id,
                "stage_name": info.label if info is not None else stage,
                "entered_at": entered_at,
                "amount": None,
                "probability": None if info is None else info.probability,
                "forecast_category": None if info is None else info.forecast_category,
                "close_date": None,
                "created_at": entered_at,
                "updated_at": entered_at,  # a past stage change never changes
                "deleted_at": deleted_at,
                "raw": None,
            }
        )
    return rows


def contact_rows(deal: Row, record: Mapping[str, Any], ctx: NormalizeContext) -> list[Row]:
    rows = []
    org, system = ctx.organization_id, ctx.source_system
    deal_source, deal_id = deal["source_id"], deal["id"]
    created_at, updated_at, deleted_at = deal["created_at"], deal["updated_at"], deal["deleted_at"]
    for contact in associated(record, "contacts"):
        source_id = f"{deal_source}:{contact}"
        rows.append(
            {
                "id": record_id(org, system, "deal_contacts", source_id),
                "organization_id": org,
                "source_system": system,
                "source_id": source_id,
                "deal_id": deal_id,
                "contact_id": link(ctx, "contacts", contact),
                "role": None,
                "is_primary": None,
                "created_at": created_at,
                "updated_at": updated_at,
                "deleted_at": deleted_at,
                "raw": None,
            }
        )
    return rows
