"""One deal's story in time order: stage, amount and close-date changes, meetings, emails,
calls and Slack mentions, and the people engaged.

``deal_timeline(db, org, deal_id)`` reads it with a handful of organization-scoped lookups by
deal id (SQLAlchemy Core, the same statements on DuckDB and PostgreSQL). On PostgreSQL each one
is an index scan on an index the schema declares: ``deals`` by primary key,
``deal_stage_history (organization_id, deal_id, entered_at)``, ``deal_field_history
(organization_id, deal_id, field, changed_at)``, ``activities (organization_id, deal_id)``,
``activity_participants (organization_id, activity_id)``, ``deal_contacts (organization_id,
deal_id)``; Slack messages that name the deal are searched among the organization's messages
since the deal's creation (found in the partial index of live activities by
``(organization_id, occurred_at)``, which holds their type: only their bodies are read).

Events:
- ``created``: the deal's creation, with its first stage, amount and close date;
- ``stage``: a move to another stage (a repeated snapshot of the same stage, which Salesforce
  writes for an amount or close-date change alone, is not a move); ``closed`` when the stage
  entered is a closed one;
- ``amount`` / ``close_date``: a change of value after the first one (``deal_field_history``);
- ``meeting`` (CRM meetings and calendar events), ``email``, ``call``: activities linked to
  the deal; ``slack``: Slack messages linked to the deal or naming it.

``find_deals(db, org, text)`` resolves an id or a fragment of a deal's or account's name.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, and_, case, func, or_, select, union

from revtops_kernel.errors import DealNotFoundError
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import to_utc

EventKind = Literal[
    "stage", "amount", "close_date", "meeting", "email", "call", "slack", "created", "closed"
]
EVENT_KINDS: tuple[EventKind, ...] = (
    "created",
    "stage",
    "amount",
    "close_date",
    "meeting",
    "email",
    "call",
    "slack",
    "closed",
)
# Activity types as timeline kinds: a calendar event is a meeting to the reader.
ACTIVITY_KINDS: dict[str, EventKind] = {
    "meeting": "meeting",
    "calendar_event": "meeting",
    "email": "email",
    "call": "call",
    "slack_message": "slack",
}
DETAIL_CHARS = 200  # of an email's or message's text, shown as data (autoescaped where shown)
FIND_LIMIT = 50

_DEALS = metadata.tables["deals"]
_ACCOUNTS = metadata.tables["accounts"]
_OWNERS = metadata.tables["owners"]
_PIPELINES = metadata.tables["pipelines"]
_STAGES = metadata.tables["deal_stages"]
_STAGE_HISTORY = metadata.tables["deal_stage_history"]
_FIELD_HISTORY = metadata.tables["deal_field_history"]
_ACTIVITIES = metadata.tables["activities"]
_PARTICIPANTS = metadata.tables["activity_participants"]
_DEAL_CONTACTS = metadata.tables["deal_contacts"]
_CONTACTS = metadata.tables["contacts"]


@dataclass(frozen=True)
class DealHeader:
    id: str
    name: str | None
    account: str | None
    owner: str | None
    pipeline: str | None
    stage: str | None
    amount: Decimal | None
    currency: str | None
    close_date: date | None
    created_at: datetime | None
    is_open: bool
    is_won: bool = False
    stage_entered_at: datetime | None = None  # entry of the current stage (stage history)

    def days_in_stage(self, today: date) -> int | None:
        if self.stage_entered_at is None:
            return None
        return (today - self.stage_entered_at.date()).days


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime  # UTC
    kind: EventKind
    title: str
    detail: str
    source: str  # the provider it came from: hubspot, salesforce, slack, google_calendar
    activity_id: str | None  # activities.id for meetings, emails, calls and messages


@dataclass(frozen=True)
class Participant:
    """Someone engaged on the deal: a customer contact or one of our people."""

    name: str
    email: str | None
    side: Literal["customer", "internal"]
    title: str | None  # job title (contacts) or role on the deal (deal_contacts.role)
    touches: int  # activities of the deal they took part in
    last_touch: datetime | None


@dataclass(frozen=True)
class DealTimeline:
    deal: DealHeader
    events: tuple[TimelineEvent, ...]
    participants: tuple[Participant, ...]
    # The series behind the chart: (when, stage label, stage order) per stage entered, and
    # (when, amount) per amount version, oldest first.
    stage_path: tuple[tuple[datetime, str, int | None], ...] = ()
    amounts: tuple[tuple[datetime, Decimal | None], ...] = ()

    def of_kind(self, *kinds: EventKind) -> tuple[TimelineEvent, ...]:
        return tuple(e for e in self.events if e.kind in kinds)


def money(amount: Decimal | None, currency: str | None = None) -> str:
    """``$48,000`` for USD (or no currency), ``48,000 EUR`` otherwise; ``no amount`` if None."""
    if amount is None:
        return "no amount"
    whole = amount == amount.to_integral_value()
    text = f"{amount:,.0f}" if whole else f"{amount:,.2f}"
    if currency in (None, "", "USD"):
        return f"${text}"
    return f"{text} {currency}"


def deal_uuid(deal_id: str | uuid.UUID) -> uuid.UUID | None:
    """The id as a UUID, or None when it is not one (then it cannot name a deal)."""
    if isinstance(deal_id, uuid.UUID):
        return deal_id
    try:
        return uuid.UUID(str(deal_id).strip())
    except ValueError:
        return None


def deal_timeline(db: Database, org: str, deal_id: str | uuid.UUID) -> DealTimeline:
    """Deal ``deal_id`` of ``org`` with its events in time order and its participants.

    Raises ``DealNotFoundError`` when ``org`` has no live deal of that id (another
    organization's deal is not found either)."""
    key = deal_uuid(deal_id)
    if key is None:
        raise DealNotFoundError(str(deal_id), org, problem="is not a deal id (a UUID)")
    with db.connect() as conn:
        header = _header(conn, org, key)
        if header is None:
            raise DealNotFoundError(str(deal_id), org)
        stages = _stage_rows(conn, org, key)
        fields = _field_rows(conn, org, key)
        activities = _activity_rows(conn, org, key, header)
        participants = _participants(conn, org, key)
    events: list[TimelineEvent] = []
    stage_path = _stage_events(header, stages, events)
    amounts = _field_events(header, fields, events)
    events.extend(_activity_event(row) for row in activities)
    order = {kind: k for k, kind in enumerate(EVENT_KINDS)}
    events.sort(key=lambda e: (e.at, order[e.kind], e.title))
    return DealTimeline(header, tuple(events), participants, stage_path, amounts)


def find_deals(db: Database, org: str, text: str) -> list[DealHeader]:
    """Deals of ``org`` that ``text`` names: its id, or a fragment of the deal's or its
    account's name (ignoring case). An exact name first, then open deals, larger first."""
    wanted = (text or "").strip()
    if not wanted:
        raise DealNotFoundError(text, org, problem="is empty; give a deal id or part of a name")
    key = deal_uuid(wanted)
    d, acc = _DEALS, _ACCOUNTS
    if key is not None:
        condition = d.c.id == key
    else:
        fragment = wanted.lower()
        condition = or_(
            func.lower(d.c.name).contains(fragment, autoescape=True),
            func.lower(acc.c.name).contains(fragment, autoescape=True),
        )
    exact = case((func.lower(d.c.name) == wanted.lower(), 0), else_=1)
    is_open = case((func.coalesce(d.c.is_closed, False), 1), else_=0)
    query = (
        _header_select(org)
        .where(condition)
        .order_by(exact, is_open, d.c.amount.desc().nulls_last(), d.c.name, d.c.id)
        .limit(FIND_LIMIT)
    )
    with db.connect() as conn:
        return [_to_header(row) for row in conn.execute(query).mappings()]


# --- reads ------------------------------------------------------------------------------------


def _live(table: Any, org: str) -> Any:
    return and_(table.c.organization_id == org, table.c.deleted_at.is_(None))


def _header_select(org: str) -> Any:
    d, acc, o, p, s = _DEALS, _ACCOUNTS, _OWNERS, _PIPELINES, _STAGES
    return (
        select(
            d.c.id,
            d.c.name,
            acc.c.name.label("account"),
            o.c.full_name.label("owner"),
            p.c.name.label("pipeline"),
            func.coalesce(s.c.label, d.c.stage_name).label("stage"),
            d.c.amount,
            d.c.currency,
            d.c.close_date,
            d.c.created_at,
            d.c.is_closed,
            d.c.is_won,
            d.c.stage_entered_at,
        )
        .select_from(d)
        .outerjoin(acc, and_(acc.c.id == d.c.account_id, _live(acc, org)))
        .outerjoin(o, and_(o.c.id == d.c.owner_id, _live(o, org)))
        .outerjoin(p, and_(p.c.id == d.c.pipeline_id, _live(p, org)))
        .outerjoin(s, and_(s.c.id == d.c.stage_id, _live(s, org)))
        .where(_live(d, org))
    )


def _to_header(row: Any) -> DealHeader:
    return DealHeader(
        id=str(row["id"]),
        name=row["name"],
        account=row["account"],
        owner=row["owner"],
        pipeline=row["pipeline"],
        stage=row["stage"],
        amount=row["amount"],
        currency=row["currency"],
        close_date=row["close_date"],
        created_at=_utc(row["created_at"]),
        is_open=not bool(row["is_closed"]),
        is_won=bool(row["is_won"]),
        stage_entered_at=_utc(row["stage_entered_at"]),
    )


def _header(conn: Connection, org: str, key: uuid.UUID) -> DealHeader | None:
    row = conn.execute(_header_select(org).where(_DEALS.c.id == key)).mappings().first()
    return None if row is None else _to_header(row)


def _stage_rows(conn: Connection, org: str, key: uuid.UUID) -> list[Any]:
    h, s = _STAGE_HISTORY, _STAGES
    query = (
        select(
            h.c.entered_at,
            func.coalesce(s.c.label, h.c.stage_name).label("stage"),
            h.c.stage_id,
            h.c.source_system,
            s.c.is_closed,
            s.c.is_won,
            s.c.display_order,
        )
        .select_from(h)
        .outerjoin(s, and_(s.c.id == h.c.stage_id, _live(s, org)))
        .where(_live(h, org), h.c.deal_id == key, h.c.entered_at.is_not(None))
        .order_by(h.c.entered_at, h.c.source_id)
    )
    return list(conn.execute(query).mappings())


def _field_rows(conn: Connection, org: str, key: uuid.UUID) -> list[Any]:
    f = _FIELD_HISTORY
    query = (
        select(f.c.field, f.c.amount, f.c.close_date, f.c.changed_at, f.c.source_system)
        .where(_live(f, org), f.c.deal_id == key, f.c.field.in_(("amount", "close_date")))
        .order_by(f.c.field, f.c.changed_at, f.c.source_id)
    )
    return list(conn.execute(query).mappings())


def _activity_rows(conn: Connection, org: str, key: uuid.UUID, header: DealHeader) -> list[Any]:
    a, o = _ACTIVITIES, _OWNERS
    types = tuple(ACTIVITY_KINDS)
    linked = select(a.c.id).where(_live(a, org), a.c.deal_id == key, a.c.activity_type.in_(types))
    ids: Any = linked
    if header.name and len(header.name.strip()) >= 3:
        # Slack messages naming the deal ("Pricing approval needed for <deal>") since it was
        # created: the organization's Slack messages since then come from the index of live
        # activities by time (their type is in it), and only their bodies are read for the
        # text test; as one scan of the time range, every activity's row was read (6,155
        # pages for 652 messages at scale 1).
        slack = _ACTIVITIES.alias("slack")
        messages = select(slack.c.id).where(
            _live(slack, org), slack.c.activity_type == "slack_message"
        )
        if header.created_at is not None:
            messages = messages.where(slack.c.occurred_at >= header.created_at)
        mentions = select(a.c.id).where(
            a.c.organization_id == org,
            a.c.id.in_(messages),
            func.lower(a.c.body).contains(header.name.strip().lower(), autoescape=True),
        )
        ids = union(linked, mentions)
    query = (
        select(
            a.c.id,
            a.c.activity_type,
            a.c.subject,
            a.c.body,
            a.c.occurred_at,
            a.c.direction,
            a.c.status,
            a.c.source_system,
            a.c.channel,
            a.c.duration_seconds,
            a.c.deal_id,
            o.c.full_name.label("owner"),
        )
        .select_from(a)
        .outerjoin(o, and_(o.c.id == a.c.owner_id, _live(o, org)))
        .where(
            a.c.organization_id == org,
            a.c.occurred_at.is_not(None),
            a.c.id.in_(ids),
        )
        .order_by(a.c.occurred_at, a.c.id)
    )
    return list(conn.execute(query).mappings())


def _participants(conn: Connection, org: str, key: uuid.UUID) -> tuple[Participant, ...]:
    a, ap, c, o, dc = _ACTIVITIES, _PARTICIPANTS, _CONTACTS, _OWNERS, _DEAL_CONTACTS
    engaged = (
        select(
            ap.c.contact_id,
            ap.c.owner_id,
            func.lower(ap.c.email).label("email"),
            func.max(ap.c.display_name).label("display_name"),
            func.bool_or(func.coalesce(ap.c.is_internal, False)).label("internal"),
            func.count(func.distinct(a.c.id)).label("touches"),
            func.max(a.c.occurred_at).label("last_touch"),
        )
        .select_from(a)
        .join(ap, and_(ap.c.activity_id == a.c.id, _live(ap, org)))
        .where(_live(a, org), a.c.deal_id == key, a.c.occurred_at.is_not(None))
        .group_by(ap.c.contact_id, ap.c.owner_id, func.lower(ap.c.email))
    )
    people: dict[str, dict[str, Any]] = {}
    for row in conn.execute(engaged).mappings():
        ident = _ident(row["contact_id"], row["owner_id"], row["email"])
        entry = people.setdefault(
            ident,
            {
                "contact_id": row["contact_id"],
                "owner_id": row["owner_id"],
                "email": row["email"],
                "name": row["display_name"],
                "internal": bool(row["internal"]) or row["owner_id"] is not None,
                "touches": 0,
                "last_touch": None,
                "title": None,
            },
        )
        entry["touches"] += int(row["touches"])
        last = _utc(row["last_touch"])
        if last is not None and (entry["last_touch"] is None or last > entry["last_touch"]):
            entry["last_touch"] = last
    # Contacts on the deal who took part in nothing yet still belong on the brief.
    on_deal = select(dc.c.contact_id, dc.c.role).where(_live(dc, org), dc.c.deal_id == key)
    for row in conn.execute(on_deal).mappings():
        entry = people.setdefault(
            _ident(row["contact_id"], None, None),
            {
                "contact_id": row["contact_id"],
                "owner_id": None,
                "email": None,
                "name": None,
                "internal": False,
                "touches": 0,
                "last_touch": None,
                "title": None,
            },
        )
        entry["title"] = row["role"] or entry["title"]
    contact_ids = [e["contact_id"] for e in people.values() if e["contact_id"] is not None]
    owner_ids = [e["owner_id"] for e in people.values() if e["owner_id"] is not None]
    contacts = _by_id(conn, c, org, contact_ids, c.c.full_name, c.c.email, c.c.title)
    owners = _by_id(conn, o, org, owner_ids, o.c.full_name, o.c.email)
    result = []
    for entry in people.values():
        known = contacts.get(entry["contact_id"]) or owners.get(entry["owner_id"]) or {}
        email = known.get("email") or entry["email"]
        name = known.get("full_name") or entry["name"] or email or "unknown"
        title = entry["title"] or known.get("title")
        side: Literal["customer", "internal"] = "internal" if entry["internal"] else "customer"
        result.append(Participant(name, email, side, title, entry["touches"], entry["last_touch"]))
    result.sort(key=lambda p: (p.side != "customer", -p.touches, -_ts(p.last_touch), p.name))
    return tuple(result)


def _by_id(
    conn: Connection, table: Any, org: str, ids: Sequence[uuid.UUID], *columns: Any
) -> dict[uuid.UUID, dict[str, Any]]:
    if not ids:
        return {}
    query = select(table.c.id, *columns).where(_live(table, org), table.c.id.in_(list(ids)))
    return {row["id"]: dict(row) for row in conn.execute(query).mappings()}


def _ident(contact_id: Any, owner_id: Any, email: str | None) -> str:
    if contact_id is not None:
        return f"contact:{contact_id}"
    if owner_id is not None:
        return f"owner:{owner_id}"
    return f"email:{email}"


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value is not None else float("-inf")


# --- events -----------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else to_utc(value)


def _stage_events(
    header: DealHeader, rows: Sequence[Any], events: list[TimelineEvent]
) -> tuple[tuple[datetime, str, int | None], ...]:
    path: list[tuple[datetime, str, int | None]] = []
    previous: Any = None
    for row in rows:
        same = previous is not None and (
            (row["stage_id"] is not None and row["stage_id"] == previous["stage_id"])
            or (row["stage_id"] is None and row["stage"] == previous["stage"])
        )
        if same:
            continue  # a repeated snapshot (an amount or close-date change alone), not a move
        at = to_utc(row["entered_at"])
        label = row["stage"] or "an unknown stage"
        path.append((at, label, row["display_order"]))
        if previous is None and header.created_at is not None:
            previous = row
            continue  # the first stage is told by the "created" event
        if row["is_closed"]:
            kind: EventKind = "closed"
            title = "Closed won" if row["is_won"] else "Closed lost"
            title += f" ({label})" if label.lower() not in ("closed won", "closed lost") else ""
        else:
            kind, title = "stage", f"Moved to {label}"
        detail = ""
        if previous is not None:
            days = (at.date() - to_utc(previous["entered_at"]).date()).days
            detail = f"from {previous['stage'] or 'an unknown stage'} after {_days(days)}"
        events.append(TimelineEvent(at, kind, title, detail, row["source_system"], None))
        previous = row
    if header.created_at is not None:
        first = path[0][1] if path else header.stage
        events.append(
            TimelineEvent(
                header.created_at,
                "created",
                "Deal created",
                f"in {first or 'an unknown stage'}",
                rows[0]["source_system"] if rows else "crm",
                None,
            )
        )
    return tuple(path)


def _field_events(
    header: DealHeader, rows: Sequence[Any], events: list[TimelineEvent]
) -> tuple[tuple[datetime, Decimal | None], ...]:
    amounts: list[tuple[datetime, Decimal | None]] = []
    last: dict[str, Any] = {}
    for row in rows:
        field = row["field"]
        value = row["amount"] if field == "amount" else row["close_date"]
        at = to_utc(row["changed_at"])
        if field in last and last[field] == value:
            continue  # the same value written again: no change
        if field == "amount":
            amounts.append((at, value))
        if field not in last:
            last[field] = value
            _describe_first(events, header, field, value)
            continue
        before = last[field]
        last[field] = value
        if field == "amount":
            events.append(
                TimelineEvent(
                    at, "amount", _amount_title(before, value, header.currency), "",
                    row["source_system"], None,
                )
            )  # fmt: skip
        else:
            events.append(
                TimelineEvent(
                    at, "close_date", _close_title(before, value), "", row["source_system"], None
                )
            )
    return tuple(amounts)


def _describe_first(
    events: list[TimelineEvent], header: DealHeader, field: str, value: Any
) -> None:
    """Add the first amount or close date to the "created" event's detail."""
    for k, event in enumerate(events):
        if event.kind == "created":
            extra = (
                f"at {money(value, header.currency)}"
                if field == "amount"
                else f"closing {value.isoformat() if value else 'with no date'}"
            )
            detail = f"{event.detail}, {extra}" if event.detail else extra
            events[k] = TimelineEvent(event.at, event.kind, event.title, detail, event.source, None)
            return


def _amount_title(before: Decimal | None, after: Decimal | None, currency: str | None) -> str:
    text = f"Amount {money(before, currency)} → {money(after, currency)}"
    if before and after is not None and before > 0:
        change = (after - before) * 100 / before
        text += f" ({'+' if change > 0 else '−'}{abs(change):.0f}%)"
    return text


def _close_title(before: date | None, after: date | None) -> str:
    if before is None or after is None:
        shown = after.isoformat() if after else "no date"
        return f"Close date set to {shown}" if after else "Close date cleared"
    days = (after - before).days
    how = f"pushed {_days(days)}" if days > 0 else f"pulled in {_days(-days)}"
    return f"Close date {before.isoformat()} → {after.isoformat()} ({how})"


def _days(n: int) -> str:
    return f"{n} day" + ("" if n == 1 else "s")


def _activity_event(row: Any) -> TimelineEvent:
    kind = ACTIVITY_KINDS[row["activity_type"]]
    subject = (row["subject"] or "").strip()
    direction = row["direction"]
    if kind == "meeting":
        title = subject or (
            "Calendar event" if row["activity_type"] == "calendar_event" else "Meeting"
        )
        title = f"Meeting: {title}" if not title.lower().startswith("meeting") else title
    elif kind in ("email", "call"):
        noun = "Email" if kind == "email" else "Call"
        arrow = {"outbound": " out", "inbound": " in"}.get(direction or "", "")
        title = f"{noun}{arrow}" + (f": {subject}" if subject else "")
    else:
        channel = row["channel"]
        title = f"Slack #{channel}" if channel else "Slack message"
    parts: list[str] = []
    status = row["status"]
    if status and status not in ("completed", "sent"):
        parts.append(status.replace("_", " "))
    if row["duration_seconds"]:
        parts.append(f"{round(row['duration_seconds'] / 60)} min")
    if row["owner"]:
        parts.append(f"by {row['owner']}")
    text = " ".join((row["body"] or "").split())
    if (kind == "slack" or (kind == "email" and not subject)) and text:
        parts.append(text[:DETAIL_CHARS] + ("…" if len(text) > DETAIL_CHARS else ""))
    return TimelineEvent(
        to_utc(row["occurred_at"]),
        kind,
        title,
        " · ".join(parts),
        row["source_system"],
        str(row["id"]),
    )
