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

from revtops_kernel.normalize.base import NormalizeContext, RecordRejected, Rows
from revtops_kernel.normalize.hubspot_envelope import (
    archived_at,
    associated,
    first_associated,
    hubspot_id,
    properties,
    stamp,
)
from revtops_kernel.normalize.rows import participant_row
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


def _engagement(record: Mapping[str, Any], ctx: NormalizeContext, kind: _Engagement) -> Rows:
    source_id = f"{kind.activity_type}:{hubspot_id(record)}"
    props = properties(record)
    occurred_at, ended_at, duration = _timing(props, kind)
    contacts = associated(record, "contacts")
    owner = props.get("hubspot_owner_id") or None
    direction = props.get(kind.direction) if kind.direction else None
    updated_at = stamp(props, "hs_lastmodifieddate", record, "updatedAt")
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
        status=parse_status(props.get(kind.status)) if kind.status else None,
        owner_id=link(ctx, "owners", owner),
        deal_id=link(ctx, "deals", first_associated(record, "deals")),
        account_id=link(ctx, "accounts", first_associated(record, "companies")),
        contact_id=link(ctx, "contacts", contacts[0] if contacts else None),
        channel=None,
        thread_id=None,
        created_at=stamp(props, "hs_createdate", record, "createdAt"),
        updated_at=updated_at,
        deleted_at=archived_at(record, updated_at),
        raw=record,
    )
    participants = [participant_row(row, ctx, "contact", c, kind.contact_role) for c in contacts]
    if owner is not None:
        participants.append(participant_row(row, ctx, "owner", str(owner), "owner"))
    return {"activities": [row], "activity_participants": participants}


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
