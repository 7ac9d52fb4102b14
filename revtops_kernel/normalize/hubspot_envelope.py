"""The parts every HubSpot CRM v3 record has around its properties: ``id``, ``properties``,
``createdAt``/``updatedAt``, ``archived``/``archivedAt`` and ``associations`` (used by
``hubspot`` and ``hubspot_engagements``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from revtops_kernel.normalize.base import RecordRejected
from revtops_kernel.normalize.rows import source_id_reader
from revtops_kernel.normalize.values import is_object, parse_bool, parse_time

# The record's ``id`` (HubSpot sends strings; a JSON number is read too).
hubspot_id = source_id_reader("id", integers=True)


def properties(record: Mapping[str, Any]) -> Mapping[str, Any]:
    props = record.get("properties")
    if props is None:
        return {}
    if not is_object(props):
        raise RecordRejected(f"properties is not an object but {type(props).__name__}")
    return props


def stamp(
    props: Mapping[str, Any], name: str, record: Mapping[str, Any], fallback: str
) -> datetime | None:
    """A property's time, else the envelope's (``createdAt``/``updatedAt``), naming the field
    the value came from when it is malformed."""
    value = props.get(name)
    if value:
        return parse_time(value, name)
    return parse_time(record.get(fallback), fallback)


def archived_at(record: Mapping[str, Any], updated_at: datetime | None) -> datetime | None:
    """``deleted_at`` of a record: ``archivedAt`` (else ``updated_at``) when it is archived."""
    archived = record.get("archived")
    if archived is None or archived is False:
        return None
    if archived is not True and not parse_bool(archived, "archived"):
        return None
    return parse_time(record.get("archivedAt"), "archivedAt") or updated_at


def _association_results(record: Mapping[str, Any], target: str) -> list[Any]:
    associations = record.get("associations")
    if not associations:
        return []
    if not is_object(associations):
        raise RecordRejected(f"associations is not an object but {type(associations).__name__}")
    group = associations.get(target)
    if not group:
        return []
    results = group.get("results") if is_object(group) else None
    if results.__class__ is not list:
        raise RecordRejected(f"associations.{target}.results is not a list")
    return results


def _association_id(item: Any, target: str) -> str:
    target_id = item.get("id") if is_object(item) else None
    if target_id is None or target_id == "":
        raise RecordRejected(f"associations.{target}.results has an entry without id")
    return str(target_id)


def first_associated(record: Mapping[str, Any], target: str) -> str | None:
    results = _association_results(record, target)
    return _association_id(results[0], target) if results else None


def associated(record: Mapping[str, Any], target: str) -> list[str]:
    """Ids in ``associations.{target}.results``, in order, without duplicates (labelled and
    unlabelled associations may both list one record)."""
    ids: list[str] = []
    for item in _association_results(record, target):
        target_id = _association_id(item, target)
        if target_id not in ids:
            ids.append(target_id)
    return ids
