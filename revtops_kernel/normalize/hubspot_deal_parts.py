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

import operator
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from revtops_kernel.normalize.base import NormalizeContext, RecordRejected, StageInfo
from revtops_kernel.normalize.hubspot_envelope import associated
from revtops_kernel.normalize.values import is_object, link, parse_date, parse_money, parse_time
from revtops_kernel.timeutil import to_epoch_ms

_V = TypeVar("_V")
StageLookup = Callable[[str], tuple[uuid.UUID | None, StageInfo | None]]


# The deal properties read with their past values, and the field each fills in
# deal_field_history (amount and close date; stages go to deal_stage_history).
FIELD_PROPERTIES = {"amount": "amount", "closedate": "close_date"}


def _versions(record: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """The raw versions of property ``name`` (none when not sent)."""
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
    return versions


# A value is parsed without its field's name first, and again with it only when it fails, so
# the quarantine names the field while the names (three per version) are not built for every
# value read (a tenth of a deal's normalizing).
def _parsed(parse: Callable[[Any, str], _V], value: Any, name: str, i: int, part: str) -> _V:
    try:
        return parse(value, "")
    except RecordRejected:
        return parse(value, f"propertiesWithHistory.{name}[{i}].{part}")


_WHEN = operator.itemgetter(0)


def _collapsed(entries: list[tuple[datetime, Any]]) -> list[tuple[datetime, Any]]:
    """Oldest first; a version equal to the one before is no change (HubSpot records one when
    a value is set again)."""
    entries.sort(key=_WHEN)
    collapsed: list[tuple[datetime, Any]] = []
    for when, value in entries:
        if not collapsed or collapsed[-1][1] != value:
            collapsed.append((when, value))
    return collapsed


# The shape HubSpot sends (every version an object whose time is ISO text ending in "Z") is read
# by a fast path with no call per value; anything else, and any value that does not parse, is
# read again by the checked path below, which gives the same versions or the same reason.
_fromisoformat = datetime.fromisoformat
_UNUSUAL = (LookupError, TypeError, ValueError, AttributeError, ArithmeticError)


def stage_versions(record: Mapping[str, Any]) -> list[tuple[datetime, str]]:
    """(time, stage id) of every stage the deal entered, oldest first, repeats collapsed."""
    versions = _usual_versions(record, "dealstage")
    if versions is None:
        return _checked_stage_versions(record)
    return _collapsed([(when, str(value)) for when, value in versions if value])


def _usual_versions(record: Mapping[str, Any], name: str) -> list[tuple[datetime, Any]] | None:
    """(time, raw value) of each version of ``name`` when the history has the shape HubSpot
    sends (every version an object, its time ISO text ending in Z), read with no call per
    value; None when anything is unusual: the checked path then reads it and names the
    version at fault."""
    history = record.get("propertiesWithHistory")
    versions = history.get(name) if history.__class__ is dict else None
    if versions.__class__ is not list:
        return None
    entries: list[tuple[datetime, Any]] = []
    try:
        for version in versions:
            stamp = version["timestamp"]
            if stamp.__class__ is not str or stamp[-1] != "Z":
                return None
            when = _fromisoformat(stamp)
            if when.tzinfo is None:
                return None
            entries.append((when, version.get("value")))
    except _UNUSUAL:
        return None
    return entries


def _checked_stage_versions(record: Mapping[str, Any]) -> list[tuple[datetime, str]]:
    entries: list[tuple[datetime, Any]] = []
    for i, version in enumerate(_versions(record, "dealstage")):
        value = version.get("value")
        when = _parsed(parse_time, version.get("timestamp"), "dealstage", i, "timestamp")
        if not value or when is None:
            continue  # a cleared stage is no stage entered
        entries.append((when, str(value)))
    return _collapsed(entries)


def field_versions(
    record: Mapping[str, Any], name: str
) -> list[tuple[datetime, Decimal | date | None]]:
    """(time, value) of every value ``amount`` or ``closedate`` took, oldest first, repeats
    collapsed; None is a cleared value. A version without a time is malformed."""
    versions = _usual_versions(record, name)
    if versions is not None:
        parse = parse_money if name == "amount" else parse_date
        try:
            entries = [
                (when, None if raw is None or raw == "" else parse(raw, ""))
                for when, raw in versions
            ]
        except _UNUSUAL:  # RecordRejected too: the checked path names the version
            pass
        else:
            return _from_first_value(_collapsed(entries))
    return _checked_field_versions(record, name)


def _checked_field_versions(
    record: Mapping[str, Any], name: str
) -> list[tuple[datetime, Decimal | date | None]]:
    parse = parse_money if name == "amount" else parse_date
    entries: list[tuple[datetime, Any]] = []
    for i, version in enumerate(_versions(record, name)):
        when = _parsed(parse_time, version.get("timestamp"), name, i, "timestamp")
        if when is None:
            raise RecordRejected(f"propertiesWithHistory.{name}[{i}] has no timestamp")
        raw = version.get("value")
        value = None if raw is None or raw == "" else _parsed(parse, raw, name, i, "value")
        entries.append((when, value))
    return _from_first_value(_collapsed(entries))


def _from_first_value(
    versions: list[tuple[datetime, Any]],
) -> list[tuple[datetime, Any]]:
    """Empty at creation: the history starts when a value is first set."""
    start = 0
    while start < len(versions) and versions[start][1] is None:
        start += 1
    return versions[start:] if start else versions


class DealParent(NamedTuple):
    """What a deal's part rows take from the deal."""

    source_id: str
    id: uuid.UUID
    created_at: datetime | None
    updated_at: datetime | None
    deleted_at: datetime | None


# The parts' rows are tuples in column orders (base.ColumnarNormalizer; the stage history's and
# deal contacts' are in normalize.rows): a deal brings ~8 of them, and building dicts for them
# (then reading each back per column) was most of a deal's normalizing. No id: the store
# derives each from its key (base.ColumnarNormalizer).
FIELD_HISTORY_COLUMNS = (
    "organization_id", "source_system", "source_id", "deal_id", "field", "amount",
    "close_date", "changed_at", "created_at", "updated_at", "deleted_at", "raw",
)  # fmt: skip


def field_history_rows(
    deal: DealParent, record: Mapping[str, Any], ctx: NormalizeContext
) -> list[tuple[Any, ...]]:
    rows = []
    org, system = ctx.organization_id, ctx.source_system
    deal_source, deal_id, deleted_at = deal.source_id, deal.id, deal.deleted_at
    for name, field in FIELD_PROPERTIES.items():
        is_amount = field == "amount"
        for changed_at, value in field_versions(record, name):
            ms = (
                int(changed_at.timestamp() * 1000)
                if changed_at.tzinfo is UTC
                else to_epoch_ms(changed_at)
            )  # to_epoch_ms; an aware time (parse_time's) needs no conversion to UTC
            source_id = f"{deal_source}:{name}:{ms}"
            # a past value never changes: created_at = updated_at = changed_at
            row = (
                org, system,
                source_id, deal_id, field, value if is_amount else None,
                None if is_amount else value, changed_at, changed_at, changed_at,
                deleted_at, None,
            )  # fmt: skip
            rows.append(row)
    return rows


def history_rows(
    deal: DealParent,
    versions: list[tuple[datetime, str]],
    pipeline: str | None,
    find: StageLookup,
    ctx: NormalizeContext,
) -> list[tuple[Any, ...]]:
    rows = []
    org, system = ctx.organization_id, ctx.source_system
    deal_source, deal_id, deleted_at = deal.source_id, deal.id, deal.deleted_at
    for entered_at, stage in versions:
        stage_id, info = find(stage)
        ms = (
            int(entered_at.timestamp() * 1000)
            if entered_at.tzinfo is UTC
            else to_epoch_ms(entered_at)
        )  # as in field_history_rows
        source_id = f"{deal_source}:{stage}:{ms}"
        # a past stage change never changes: created_at = updated_at = entered_at
        if info is None:
            pipeline_id, label, probability, forecast = (
                link(ctx, "pipelines", pipeline), stage, None, None
            )  # fmt: skip
        else:
            pipeline_id, label = info.pipeline_id, info.label
            probability, forecast = info.probability, info.forecast_category
        row = (
            org, system, source_id,
            deal_id, pipeline_id, stage_id, label, entered_at, None, probability, forecast,
            None, entered_at, entered_at, deleted_at, None,
        )  # fmt: skip
        rows.append(row)
    return rows


def contact_rows(
    deal: DealParent, record: Mapping[str, Any], ctx: NormalizeContext
) -> list[tuple[Any, ...]]:
    org, system = ctx.organization_id, ctx.source_system
    deal_source, deal_id = deal.source_id, deal.id
    created_at, updated_at, deleted_at = deal.created_at, deal.updated_at, deal.deleted_at
    rows = []
    for contact in associated(record, "contacts"):
        source_id = f"{deal_source}:{contact}"
        row = (
            org, system, source_id,
            deal_id, link(ctx, "contacts", contact), None, None, created_at, updated_at,
            deleted_at, None,
        )  # fmt: skip
        rows.append(row)
    return rows
