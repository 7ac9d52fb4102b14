"""Salesforce's amount and close-date history, derived from its OpportunityHistory snapshots.

Salesforce writes an OpportunityHistory row (stage, amount, close date, probability, forecast
category) whenever one of them changes; the sync stores each as a ``deal_stage_history`` row.
``deal_field_history`` wants one row per value a field took: the first snapshot's (unless
empty), then each snapshot whose value differs from the one before. "The one before" may have
been stored by an earlier sync, so the normalizer (pure, one record at a time) cannot tell;
this pass, run once every stream is read, compares consecutive snapshots in SQL (``LAG`` over
the deal's snapshots by time) on both backends.

Why OpportunityHistory and not OpportunityFieldHistory: field history tracking must be enabled
per org and per field (and keeps 18 months), so many orgs have no Amount or CloseDate rows
there; every org has OpportunityHistory, written for every change of these fields.

The pass reads only the store, so it is idempotent and crash-safe: rows are upserted (a re-run
writes nothing), a derived row that no longer derives (its snapshot gone) is soft-deleted, and
a sync killed before the pass leaves the work to the next one. After the first pass it looks
only at deals with snapshots stamped since the newest one it derived (``LOOKBACK`` before it):
a sync that brought no history costs two small queries (``bench/field_history.py``). Row
``source_id`` is ``"{OpportunityHistory Id}:amount"`` / ``":close_date"``; ``updated_at`` is
the snapshot's, so a snapshot deleted with its opportunity deletes the row too.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any, TypeAlias

from sqlalchemy import Connection, Select, func, select

from revtops_kernel.ids import record_id
from revtops_kernel.store.schema import metadata
from revtops_kernel.store.upsert import upsert
from revtops_kernel.timeutil import utcnow

_TABLE = "deal_field_history"
_SYSTEM = "salesforce"
_CHUNK = 5_000
# Snapshots stamped this long before the newest one derived are looked at again: a
# SystemModstamp is taken before its transaction commits, so one may appear late.
LOOKBACK = timedelta(days=1)
# Deals derived at a time: ~27k rows at scale 10's ~2.7 snapshots a deal, ~55 MiB held.
DEALS_PER_PASS = 10_000
# (above, up to): a range of deal ids, either side open when None.
DealRange: TypeAlias = tuple[Any, Any]


def derive_salesforce_field_history(
    conn: Connection, org: str, connector: Any = None, *, full: bool = False
) -> int:
    """Bring the organization's Salesforce ``deal_field_history`` in line with its snapshots
    (``full``: all of them, which also retires rows of snapshots purged from the store);
    returns the rows written or soft-deleted (0 when nothing changed). (``connector`` is
    unused: the signature of ``ProviderSpec.after_streams``.)

    The deals are taken a range of ``DEALS_PER_PASS`` at a time: a first pass derives every
    row (260k at scale 10), and holding them all as dicts was ~520 MiB at once, the peak of a
    scale-10 Salesforce sync on DuckDB."""
    scope = None if full else _changed_deals(conn, org)
    changed = 0
    for deal_range in deal_ranges(conn, org, scope):
        rows = derived_rows(conn, org, scope, deal_range)
        if rows:
            changed += upsert(conn, _TABLE, rows).written
        changed += _retire(conn, org, {row["source_id"] for row in rows}, scope, deal_range)
    return changed


def deal_ranges(conn: Connection, org: str, deals: Select[Any] | None = None) -> list[DealRange]:
    """Consecutive ranges of deal ids, each holding ``DEALS_PER_PASS`` of the deals with
    snapshots (of ``deals``, a query of deal ids, or all); together they cover every id, the
    first open below and the last above, so rows of deals without snapshots fall in one too."""
    h = metadata.tables["deal_stage_history"]
    listed = (
        select(h.c.deal_id)
        .where(
            h.c.organization_id == org,
            h.c.source_system == _SYSTEM,
            *(() if deals is None else (h.c.deal_id.in_(deals),)),
        )
        .distinct()
        .subquery()
    )
    ids = conn.execute(select(listed.c.deal_id).order_by(listed.c.deal_id)).scalars()
    bounds = [deal for n, deal in enumerate(ids, 1) if n % DEALS_PER_PASS == 0]
    edges: list[Any] = [None, *bounds, None]
    return list(pairwise(edges))


def _within(column: Any, deal_range: DealRange | None) -> tuple[Any, ...]:
    """The conditions that keep ``column`` (a deal id) within ``deal_range``: above its
    first bound, up to its second (None: no bound on that side)."""
    if deal_range is None:
        return ()
    after, up_to = deal_range
    return (
        *(() if after is None else (column > after,)),
        *(() if up_to is None else (column <= up_to,)),
    )


def _changed_deals(conn: Connection, org: str) -> Select[Any] | None:
    """The deals whose snapshots changed since the newest one already derived (less
    ``LOOKBACK``, for stamps committed out of order), or None: all of them (the first pass,
    or after a full refresh emptied nothing but found no rows)."""
    t, h = metadata.tables[_TABLE], metadata.tables["deal_stage_history"]
    newest = conn.execute(
        select(func.max(t.c.updated_at)).where(
            t.c.organization_id == org, t.c.source_system == _SYSTEM
        )
    ).scalar_one()
    if newest is None:
        return None
    return (
        select(h.c.deal_id)
        .where(
            h.c.organization_id == org,
            h.c.source_system == _SYSTEM,
            h.c.updated_at >= newest - LOOKBACK,
        )
        .distinct()
    )


def derived_rows(
    conn: Connection,
    org: str,
    deals: Select[Any] | None = None,
    deal_range: DealRange | None = None,
) -> list[dict[str, Any]]:
    """One row per snapshot whose amount (close date) differs from the deal's snapshot before,
    and the first snapshot's (unless empty); of ``deals`` (a query of deal ids) or all, within
    ``deal_range`` (`deal_ranges`) if given."""
    h = metadata.tables["deal_stage_history"]
    order = (h.c.entered_at, h.c.source_id)
    snaps = (
        select(
            h.c.deal_id,
            h.c.source_id,
            h.c.entered_at,
            h.c.amount,
            h.c.close_date,
            h.c.updated_at,
            h.c.deleted_at,
            func.lag(h.c.amount)
            .over(partition_by=h.c.deal_id, order_by=order)
            .label("prev_amount"),
            func.lag(h.c.close_date)
            .over(partition_by=h.c.deal_id, order_by=order)
            .label("prev_close"),
            func.row_number().over(partition_by=h.c.deal_id, order_by=order).label("n"),
        )
        .where(
            h.c.organization_id == org,
            h.c.source_system == _SYSTEM,
            h.c.entered_at.is_not(None),
            *(() if deals is None else (h.c.deal_id.in_(deals),)),
            *_within(h.c.deal_id, deal_range),
        )
        .subquery()
    )
    s = snaps.c
    changes = select(snaps).where(
        (s.n == 1)
        | s.amount.is_distinct_from(s.prev_amount)
        | s.close_date.is_distinct_from(s.prev_close)
    )
    rows: list[dict[str, Any]] = []
    for snap in conn.execute(changes):
        first = snap.n == 1
        for field, value, before in (
            ("amount", snap.amount, snap.prev_amount),
            ("close_date", snap.close_date, snap.prev_close),
        ):
            if (value is not None) if first else (value != before):
                # (a field empty at creation had no value yet: its history starts when set)
                rows.append(_row(org, snap, field, value))
    return rows


def _row(org: str, snap: Any, field: str, value: Any) -> dict[str, Any]:
    source_id = f"{snap.source_id}:{field}"
    return {
        "id": record_id(org, _SYSTEM, _TABLE, source_id),
        "organization_id": org,
        "source_system": _SYSTEM,
        "source_id": source_id,
        "deal_id": snap.deal_id,
        "field": field,
        "amount": value if field == "amount" else None,
        "close_date": value if field == "close_date" else None,
        "changed_at": snap.entered_at,
        "created_at": snap.entered_at,
        "updated_at": snap.updated_at or snap.entered_at,
        "deleted_at": snap.deleted_at,
        "raw": None,
    }


def _retire(
    conn: Connection,
    org: str,
    live: set[str],
    deals: Select[Any] | None,
    deal_range: DealRange | None = None,
) -> int:
    """Soft-delete live derived rows (of ``deals``, within ``deal_range``) that no longer
    derive from a snapshot."""
    t = metadata.tables[_TABLE]
    current = conn.execute(
        select(t.c.id, t.c.source_id).where(
            t.c.organization_id == org,
            t.c.source_system == _SYSTEM,
            t.c.deleted_at.is_(None),
            *(() if deals is None else (t.c.deal_id.in_(deals),)),
            *_within(t.c.deal_id, deal_range),
        )
    ).all()
    gone = [row.id for row in current if row.source_id not in live]
    now = utcnow()
    for start in range(0, len(gone), _CHUNK):
        conn.execute(
            t.update()
            .where(t.c.id.in_(gone[start : start + _CHUNK]))
            .values(deleted_at=now)  # updated_at stays the snapshot's: the next scope's mark
        )
    return len(gone)
