"""Rows and record parts the provider normalizers build alike: a record's own id, an activity's
participants, and the ``StageInfo`` map deals are normalized with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from revtops_kernel.normalize.base import NormalizeContext, RecordRejected, Row, Rows, StageInfo
from revtops_kernel.normalize.values import link

# Column orders of activities' and participants' tuples (base.ColumnarNormalizer: Salesforce
# Tasks, HubSpot engagements). Participants leave ``id`` to the store (record_id's formula in
# SQL): nothing points at a participant row.
ACTIVITY_COLUMNS = (
    "id", "organization_id", "source_system", "source_id", "created_at", "updated_at",
    "deleted_at", "raw", "subject", "body", "owner_id", "deal_id", "account_id", "contact_id",
    "channel", "thread_id", "activity_type", "occurred_at", "ended_at", "is_all_day",
    "duration_seconds", "direction", "status",
)  # fmt: skip
PARTICIPANT_COLUMNS = (
    "organization_id", "source_system", "source_id", "activity_id", "email", "display_name",
    "role", "response_status", "is_internal", "contact_id", "account_id", "owner_id",
    "created_at", "updated_at", "deleted_at", "raw",
)  # fmt: skip


# Column orders of the CRMs' other columnar tables. No id for accounts, contacts and a deal's
# parts: nothing in their page points at them, so the store derives it from the key (an MD5 a
# record less in Python). Deals keep theirs: their parts carry it.
ACCOUNT_COLUMNS = (
    "organization_id", "source_system", "source_id", "name", "domain", "industry",
    "account_type", "website", "employee_count", "annual_revenue", "city", "country",
    "owner_id", "created_at", "updated_at", "deleted_at", "raw",
)  # fmt: skip
CONTACT_COLUMNS = (
    "organization_id", "source_system", "source_id", "email", "first_name", "last_name",
    "full_name", "title", "phone", "account_id", "owner_id", "created_at", "updated_at",
    "deleted_at", "raw",
)  # fmt: skip
DEAL_COLUMNS = (
    "id", "organization_id", "source_system", "source_id", "name", "amount", "currency",
    "pipeline_id", "stage_id", "stage_name", "close_date", "owner_id", "account_id",
    "is_closed", "is_won", "probability", "forecast_category", "deal_type", "lead_source",
    "stage_entered_at", "created_at", "updated_at", "deleted_at", "raw",
)  # fmt: skip
HISTORY_COLUMNS = (
    "organization_id", "source_system", "source_id", "deal_id", "pipeline_id",
    "stage_id", "stage_name", "entered_at", "amount", "probability", "forecast_category",
    "close_date", "created_at", "updated_at", "deleted_at", "raw",
)  # fmt: skip
DEAL_CONTACT_COLUMNS = (
    "organization_id", "source_system", "source_id", "deal_id", "contact_id", "role",
    "is_primary", "created_at", "updated_at", "deleted_at", "raw",
)  # fmt: skip


def source_id_reader(field: str, *, integers: bool = False) -> Callable[[Any], str]:
    """A function reading a record's own id, ``record[field]``: a non-empty string (or, with
    ``integers``, a JSON number). It rejects a record that is not a JSON object."""
    missing = f"missing {field}"

    def source_id(record: Any) -> str:
        # JSON objects are dicts: the ABC check is only for other mappings.
        if record.__class__ is not dict and not isinstance(record, Mapping):
            raise RecordRejected(f"record is not a JSON object but {type(record).__name__}")
        value = record.get(field)
        if value is None or value == "":
            raise RecordRejected(missing)
        if value.__class__ is str:
            return str(value)
        if integers and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise RecordRejected(f"{field} is not a string: {value!r}")

    return source_id


def participant_row(activity: Row, ctx: NormalizeContext, who: str, who_id: str, role: str) -> Row:
    """A contact (``who="contact"``) or the owner (``"owner"``) taking part in ``activity``:
    source id ``"{activity source id}:{who}:{who_id}"``, and the activity's times, so upserts
    order alike."""
    row = ctx.base_row("activity_participants", f"{activity['source_id']}:{who}:{who_id}")
    internal = who == "owner"
    row.update(
        activity_id=activity["id"],
        email=None,
        display_name=None,
        role=role,
        response_status=None,
        is_internal=internal,
        contact_id=None if internal else link(ctx, "contacts", who_id),
        account_id=None,
        owner_id=link(ctx, "owners", who_id) if internal else None,
        created_at=activity["created_at"],
        updated_at=activity["updated_at"],
        deleted_at=activity["deleted_at"],
        raw=None,
    )
    return row


def stage_info(row: Mapping[str, Any]) -> StageInfo:
    """What a deal needs of its stage, from a ``deal_stages`` row."""
    return StageInfo(
        stage_id=row["id"],
        pipeline_id=row.get("pipeline_id"),
        label=row.get("label") or "",
        display_order=row.get("display_order"),
        probability=row.get("probability"),
        is_closed=bool(row.get("is_closed")),
        is_won=bool(row.get("is_won")),
        forecast_category=row.get("forecast_category"),
    )


def stage_rows(
    items: Iterable[Mapping[str, Any]],
    ctx: NormalizeContext | None,
    *,
    is_raw: Callable[[Mapping[str, Any]], bool],
    normalize: Callable[[Mapping[str, Any], NormalizeContext], Rows],
    raw_kind: str,
    expected: str,
) -> Iterable[Mapping[str, Any]]:
    """The ``deal_stages`` rows a ``stage_map`` reads: ``items`` are either raw provider
    records (``is_raw``; normalized with ``ctx``, and a malformed one raises RecordRejected) or
    already normalized ``deal_stages`` rows. ``raw_kind`` and ``expected`` name the records in
    the ValueError for a missing ``ctx`` or an item of neither kind."""
    for item in items:
        if is_raw(item):
            if ctx is None:
                raise ValueError(f"stage_map needs ctx to read raw {raw_kind}")
            yield from normalize(item, ctx)["deal_stages"]
        elif "source_id" in item:
            yield item
        else:
            raise ValueError(f"stage_map expects {expected} or deal_stages rows")
