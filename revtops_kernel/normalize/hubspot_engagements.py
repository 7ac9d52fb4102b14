"""HubSpot engagements (``meetings``, ``calls``, ``emails``, ``notes``, ``tasks``) -> one
activities row each, plus activity_participants: one per associated contact and one for the
owner. ``hubspot.NORMALIZERS`` lists these functions with the other streams.

Source ids: HubSpot ids are unique per object type only (a call and a note may share an id), so
``activities.source_id = "{activity_type}:{id}"`` (``"meeting:30110000001"``). Participants are
``"{activity_type}:{id}:contact:{contactId}"`` and ``"{activity_type}:{id}:owner:{ownerId}"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import (
    ColumnarNormalizer,
    NormalizeContext,
    RawValue,
    RecordRejected,
)
from revtops_kernel.normalize.hubspot_envelope import (
    archived_at,
    associated,
    first_associated,
    hubspot_id,
    properties,
    stamp,
)
from revtops_kernel.normalize.rows import ACTIVITY_COLUMNS, PARTICIPANT_COLUMNS
from revtops_kernel.normalize.values import (
    INT_LIMIT,
    link,
    parse_decimal,
    parse_status,
    parse_time,
)

_DIRECTIONS = {
    "INBOUND": "inbound",
    "OUTBOUND": "outbound",
    "INCOMING_EMAIL": "inbound",
    "EMAIL": "outbound",
    "FORWARDED_EMAIL": "outbound",
}


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
    occurred_at = parse_time(props.get("hs_timestamp"), "hs_timestamp")
    if kind is _MEETING:
        start = parse_time(props.get("hs_meeting_start_time"), "hs_meeting_start_time")
        end = parse_time(props.get("hs_meeting_end_time"), "hs_meeting_end_time")
        start = start or occurred_at
        duration = int((end - start).total_seconds()) if start and end else None
        return occurred_at or start, end, duration
    if kind is _CALL:
        millis = parse_decimal(props.get("hs_call_duration"), "hs_call_duration")
        if millis is None:
            return occurred_at, None, None
        if not 0 <= millis < INT_LIMIT * 1000:
            raise RecordRejected(f"hs_call_duration is out of range: {props['hs_call_duration']!r}")
        return occurred_at, None, int(millis.scaleb(-3).to_integral_value())
    return occurred_at, None, None


def _engagement_parts(
    record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue, kind: _Engagement
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One engagement's activity and participants as tuples (``ACTIVITY_COLUMNS``,
    ``PARTICIPANT_COLUMNS``). The values are read in the order the dict rows once were, so a
    record with several faults is quarantined for the same one."""
    source_id = f"{kind.activity_type}:{hubspot_id(record)}"
    props = properties(record)
    occurred_at, ended_at, duration = _timing(props, kind)
    contacts = associated(record, "contacts")
    owner = props.get("hubspot_owner_id") or None
    direction = props.get(kind.direction) if kind.direction else None
    updated_at = stamp(props, "hs_lastmodifieddate", record, "updatedAt")
    org, system = ctx.organization_id, ctx.source_system
    activity_id = record_id(org, system, "activities", source_id)
    subject = (props.get(kind.subject) or None) if kind.subject else None
    body = _body(props, kind.body)
    direction = _DIRECTIONS.get(direction) if direction else None
    status = parse_status(props.get(kind.status)) if kind.status else None
    owner_id = link(ctx, "owners", owner)
    deal_id = link(ctx, "deals", first_associated(record, "deals"))
    account_id = link(ctx, "accounts", first_associated(record, "companies"))
    contact_ids = [link(ctx, "contacts", contact) for contact in contacts]
    created_at = stamp(props, "hs_createdate", record, "createdAt")
    deleted_at = archived_at(record, updated_at)
    activity = (
        activity_id, org, system, source_id, created_at, updated_at, deleted_at, raw(record),
        subject, body, owner_id, deal_id, account_id, contact_ids[0] if contact_ids else None,
        None, None, kind.activity_type, occurred_at, ended_at, None, duration, direction, status,
    )  # fmt: skip
    role = kind.contact_role
    participants: list[tuple[Any, ...]] = [
        (org, system, f"{source_id}:contact:{contact}", activity_id, None, None, role, None,
         False, contact_id, None, None, created_at, updated_at, deleted_at, None)
        for contact, contact_id in zip(contacts, contact_ids, strict=True)
    ]  # fmt: skip
    if owner is not None:
        participants.append(
            (org, system, f"{source_id}:owner:{owner}", activity_id, None, None, "owner", None,
             True, None, None, owner_id, created_at, updated_at, deleted_at, None)
        )  # fmt: skip
    return [activity], participants


def _normalizer(kind: _Engagement) -> ColumnarNormalizer:
    def parts(
        record: Mapping[str, Any], ctx: NormalizeContext, raw: RawValue
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return _engagement_parts(record, ctx, raw, kind)

    parts.__name__ = f"normalize_{kind.activity_type}"
    return ColumnarNormalizer(_TABLES, parts)


# Columnar (base.ColumnarNormalizer): a sync keeps an engagement page as tuples; called on one
# record each gives dict rows, the participants' ids filled in.
_TABLES = {"activities": ACTIVITY_COLUMNS, "activity_participants": PARTICIPANT_COLUMNS}
normalize_meeting = _normalizer(_MEETING)
normalize_call = _normalizer(_CALL)
normalize_email = _normalizer(_EMAIL)
normalize_note = _normalizer(_NOTE)
normalize_task = _normalizer(_TASK)
