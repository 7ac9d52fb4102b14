"""Slack messages -> activities (``slack_message``) plus their participants (pure functions).

The Slack connector hands each message over in an envelope that carries what the message alone
does not say (the connector read the workspace directory and the channel list once per sync):

```json
{"id": "C024BE91L:1512085950.000216",
 "channel": {"id": "C024BE91L", "name": "acme-deal"},
 "message": {...the message exactly as conversations.history / .replies returned it...},
 "author": {"id": "U012AB3CDE", "email": "ann@northwind.example", "name": "Ann", "internal": true},
 "mentions": [{"id": "U061F7AUR", "email": "...", "name": "...", "internal": false}]}
```

Rows: ``activities.source_id = "{channel id}:{ts}"`` (a ``ts`` is unique within its channel),
``channel`` = the channel's name, ``thread_id`` = ``thread_ts`` (a thread's parent and its replies
share it), ``body`` = the message text (data, never instructions), ``occurred_at`` = ``ts`` in UTC
to the microsecond, ``updated_at`` = the edit time when edited. Participants: the author (role
``author``) and every user mentioned with ``<@U…>`` (role ``mentioned``), source id
``"{activity source id}:{role}:{user id}"``, with the email the directory gave. Owners, contacts
and accounts are resolved after the sync (``revtops_kernel.resolve``), from those emails.

Channel housekeeping (joins, leaves, topic changes) is not conversation: those subtypes give no
rows. A ``tombstone`` (a deleted parent that keeps its thread) is stored as deleted. A message
with no author at all is quarantined; a ``thread_ts`` naming a message that does not exist is
a link like any other (well-formed on its own, as the CRM's dangling associations) and lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from revtops_kernel.normalize.base import (
    NormalizeContext,
    RecordNormalizer,
    RecordRejected,
    Row,
    Rows,
)
from revtops_kernel.normalize.identity import mentioned_user_ids
from revtops_kernel.normalize.values import clean_email, is_object

ACTIVITY_TYPE = "slack_message"
# Subtypes that record channel housekeeping rather than something a person said.
HOUSEKEEPING_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "channel_unarchive",
        "group_join",
        "group_leave",
        "group_topic",
        "group_purpose",
        "group_name",
        "pinned_item",
        "unpinned_item",
    }
)
DELETED_SUBTYPES = frozenset({"tombstone", "message_deleted"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ts(value: Any, field: str) -> datetime:
    """A Slack ``ts`` (``"1512085950.000216"``: seconds and microseconds) as a UTC datetime,
    exact to the microsecond (a float would round it)."""
    if value.__class__ is not str or not value:
        raise RecordRejected(f"{field} is not a Slack timestamp string: {value!r}")
    seconds, _, fraction = value.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 6:
        raise RecordRejected(f"{field} is not a Slack timestamp: {value!r}")
    micros = int(fraction.ljust(6, "0")) if fraction else 0
    try:
        return _EPOCH + timedelta(seconds=int(seconds), microseconds=micros)
    except OverflowError:
        raise RecordRejected(f"{field} is out of range: {value!r}") from None


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not is_object(value):
        raise RecordRejected(f"{field} is not an object but {type(value).__name__}")
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def normalize_message(record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
    envelope = _object(record, "record")
    channel = _object(envelope.get("channel"), "channel")
    message = _object(envelope.get("message"), "message")
    channel_id = channel.get("id")
    if not isinstance(channel_id, str) or not channel_id:
        raise RecordRejected("missing channel.id")
    subtype = message.get("subtype")
    if subtype in HOUSEKEEPING_SUBTYPES:
        return {}
    ts = message.get("ts")
    occurred_at = parse_ts(ts, "ts")
    if not (message.get("user") or message.get("bot_id") or subtype):
        raise RecordRejected("message has no author (neither user nor bot_id)")
    edited = message.get("edited")
    edited_at = parse_ts(_object(edited, "edited").get("ts"), "edited.ts") if edited else None
    updated_at = max(occurred_at, edited_at) if edited_at else occurred_at
    thread_ts = message.get("thread_ts")
    if thread_ts is not None:
        parse_ts(thread_ts, "thread_ts")  # a thread id must be a timestamp too
    row = ctx.base_row("activities", f"{channel_id}:{ts}")
    row.update(
        activity_type=ACTIVITY_TYPE,
        subject=None,
        body=_text(message.get("text")),
        occurred_at=occurred_at,
        ended_at=None,
        is_all_day=None,
        duration_seconds=None,
        direction=None,
        status="deleted" if subtype in DELETED_SUBTYPES else None,
        owner_id=None,
        deal_id=None,
        account_id=None,
        contact_id=None,
        channel=_text(channel.get("name")) or channel_id,
        thread_id=thread_ts,
        created_at=occurred_at,
        updated_at=updated_at,
        deleted_at=updated_at if subtype in DELETED_SUBTYPES else None,
        raw=dict(message),
    )
    return {
        "activities": [row],
        "activity_participants": _participants(row, envelope, message, ctx),
    }


def _participants(
    activity: Row, envelope: Mapping[str, Any], message: Mapping[str, Any], ctx: NormalizeContext
) -> list[Row]:
    people: dict[tuple[str, str], Mapping[str, Any]] = {}
    author = envelope.get("author")
    author_id = message.get("user") or message.get("bot_id")
    if author_id:
        people[("author", str(author_id))] = _object(author, "author") if author else {}
    known: dict[str, Mapping[str, Any]] = {}
    for entry in envelope.get("mentions") or ():
        person = _object(entry, "mentions[]")
        if person.get("id"):
            known[str(person["id"])] = person
    for user_id in mentioned_user_ids(message.get("text")):
        if user_id != author_id:
            people.setdefault(("mentioned", user_id), known.get(user_id, {}))
    return [
        _participant(activity, role, user_id, person, ctx)
        for (role, user_id), person in people.items()
    ]


def _participant(
    activity: Row, role: str, user_id: str, person: Mapping[str, Any], ctx: NormalizeContext
) -> Row:
    internal = person.get("internal")
    row = ctx.base_row("activity_participants", f"{activity['source_id']}:{role}:{user_id}")
    row.update(
        {
            "activity_id": activity["id"],
            "email": clean_email(person.get("email")),
            "display_name": _text(person.get("name")),
            "role": role,
            "response_status": None,
            "is_internal": internal if isinstance(internal, bool) else None,
            "contact_id": None,
            "account_id": None,
            "owner_id": None,
            "created_at": activity["created_at"],
            "updated_at": activity["updated_at"],
            "deleted_at": activity["deleted_at"],
            "raw": None,
        }
    )
    return row


NORMALIZERS: dict[str, RecordNormalizer] = {"messages": normalize_message}
