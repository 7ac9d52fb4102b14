"""What the sync's derived rollups (``deal_risk_facts``, ``meeting_accounts``) share about when
they must be refreshed.

Each rollup is refreshed after a sync's identity resolution and skipped when the run changed
nothing it derives from. A run that wrote rows and then never reached its refresh (Ctrl-C during
resolution, a crash, a killed worker) would leave the rollup behind the store, and the next run,
changing nothing, would skip it. So each rollup keeps a *pending* mark (its ``stale`` row): a
sync sets it before it writes anything (``mark_pending``, in the transaction that records the
run), and only a refresh, or a run that changed nothing and found no mark before it started,
clears it, and only while no other sync of the organization is running (that one may still
write, and may die before its own refresh).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from revtops_kernel.run_status import SyncRunStatus
from revtops_kernel.store.database import Database
from revtops_kernel.store.retry import RetryPolicy, in_transaction

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    derived: int = 0  # the organization's rows now
    deleted: int = 0  # stored rows no longer derived (changed or gone)
    inserted: int = 0  # derived rows not stored (new or changed)
    seconds: float = 0.0
    scope: int | None = None  # the deals (meetings) derived again; None: every one

    @property
    def written(self) -> int:
        return self.deleted + self.inserted


@dataclass(frozen=True)
class Rollup:
    """One derived table as the sync refreshes it. The callables take (connection, org); each
    module passes lambdas, so a test that replaces a module's function is heard."""

    table: str
    refresh: Callable[[Connection, str], RefreshReport]  # in the caller's transaction
    has_mark: Callable[[Connection, str], bool]  # the pending (stale) row is there
    add_mark: Callable[[Connection, str], None]
    drop_mark: Callable[[Connection, str], None]
    # Anything else stored that a rebuild would not hold (a former version's rows): refresh.
    holds_outdated: Callable[[Connection, str], bool] = lambda conn, org: False


def mark_pending(conn: Connection, org: str, rollup: Rollup) -> bool:
    """Leave ``org``'s pending row (in ``conn``'s transaction) unless one is there; return
    whether one was. A sync calls it before it writes."""
    if rollup.has_mark(conn, org):
        return True
    rollup.add_mark(conn, org)
    return False


def refresh_after_sync(
    db: Database,
    org: str,
    rollup: Rollup,
    note: Callable[[str, int], None] | None = None,
    *,
    run: Any = None,
    pending_before: bool | None = None,
    policy: RetryPolicy | None = None,
) -> RefreshReport | None:
    """The sync's call after identity resolution: refresh ``org``'s rows in their own
    transaction; ``note`` hears how many rows were written (the sync's statistics refresh and
    vacuum). Skipped when ``run`` (the sync's result) changed nothing the rows derive from
    (``run_changed_sources``), nothing is marked pending and nothing outdated is stored;
    ``pending_before``: what ``mark_pending`` returned when the sync started (the mark found
    then is not this run's own; ``None``: the run did not mark at its start). A failure is
    logged, never raised: the rows stay as the last refresh left them, marked, and the next
    sync's refresh, which derives everything again, catches up."""
    started = time.monotonic()
    try:
        if run is not None and not run_changed_sources(run):
            with db.begin() as conn:
                if pending_before is None:
                    stale = rollup.has_mark(conn, org) or rollup.holds_outdated(conn, org)
                else:  # the mark is this run's own unless one was there before it
                    stale = pending_before or rollup.holds_outdated(conn, org)
                    if not stale and not others_running(conn, org, run):
                        rollup.drop_mark(conn, org)
            if not stale:
                seconds = time.monotonic() - started
                log.info("%s for %s: the run changed nothing it derives from", rollup.table, org)
                return RefreshReport(seconds=seconds)

        def refresh(conn: Connection) -> RefreshReport:
            report = rollup.refresh(conn, org)  # drops the mark: it is not derived
            if others_running(conn, org, run):
                rollup.add_mark(conn, org)  # that sync may still write, and die before its refresh
            return report

        # Retried on a transient fault or DuckDB running out of memory (store.retry): a
        # refresh in full at scale 10 outgrows the 256MiB default there.
        report = in_transaction(
            db, refresh, what=f"{rollup.table} of {org}", policy=policy or RetryPolicy()
        )
    except Exception:
        log.exception("refreshing %s for %s failed", rollup.table, org)
        try:
            with db.begin() as conn:
                mark_pending(conn, org, rollup)
        except Exception:
            log.exception("marking %s of %s stale failed", rollup.table, org)
        return None
    if note is not None:
        note(rollup.table, report.written)
    log.info(
        "%s for %s: %d rows (%s), %d deleted, %d inserted in %.2f s",
        rollup.table,
        org,
        report.derived,
        "derived in full" if report.scope is None else f"{report.scope:,} journaled derived",
        report.deleted,
        report.inserted,
        report.seconds,
    )
    return report


def write_difference(
    conn: Connection,
    org: str,
    *,
    table: str,
    derived_sql: str,
    scratch: str,
    same: str,
    columns: str,
    index_on: str | None = None,
    params: dict[str, Any] | None = None,
    stored: tuple[str, ...] | None = None,
) -> RefreshReport:
    """Bring ``org``'s rows of ``table`` in line with ``derived_sql`` (its rows now, for
    ``:org``) writing only the difference, in ``conn``'s transaction: what is derived goes into
    the temporary table ``scratch``; stored rows with no derived twin (``same``: a condition on
    ``n``, the derived row, and ``t``, the stored one) are deleted; the derived rows not stored
    are inserted with ``columns``. It equals a rebuild by construction. ``index_on``: a column
    of ``scratch`` to index on PostgreSQL (what ``same`` matches on). ``params``: more
    parameters of ``derived_sql``; ``stored``: when ``derived_sql`` derives only part of the
    rows (a scope), disjoint conditions on ``t`` whose union is that part (one statement each,
    so each can use its own index): the stored rows outside them are neither compared nor
    deleted, and the report counts the organization's rows after the write."""
    started = time.monotonic()
    bound = {"org": org}
    parts = [""] if stored is None else [f" AND {condition}" for condition in stored]
    take_turns(conn, table, org)
    conn.execute(text(f"DROP TABLE IF EXISTS {scratch}"))
    conn.execute(
        text(f"CREATE TEMPORARY TABLE {scratch} AS {derived_sql}"), {**bound, **(params or {})}
    )
    if conn.dialect.name == "postgresql":
        if index_on is not None:
            conn.execute(text(f"CREATE INDEX ON {scratch} ({index_on})"))
        conn.execute(text(f"ANALYZE {scratch}"))
    derived = int(conn.execute(text(f"SELECT count(*) FROM {scratch}")).scalar_one())
    # Each count read before the next statement: duckdb-engine's results share one cursor.
    deleted = 0
    for part in parts:
        deleted += max(
            conn.execute(
                text(
                    f"DELETE FROM {table} t WHERE t.organization_id = :org{part} "
                    f"AND NOT EXISTS (SELECT 1 FROM {scratch} n WHERE {same})"
                ),
                bound,
            ).rowcount
            or 0,
            0,
        )
    # Stored rows stay; what is left of the derived ones is new. (Not an anti-join inside the
    # INSERT: PostgreSQL took minutes for it on an empty table.)
    for part in parts:
        conn.execute(
            text(
                f"DELETE FROM {scratch} n WHERE EXISTS "
                f"(SELECT 1 FROM {table} t WHERE t.organization_id = :org{part} AND {same})"
            ),
            bound,
        )
    inserted = conn.execute(
        text(
            f"INSERT INTO {table} (id, organization_id, {columns}) "
            f"SELECT gen_random_uuid(), CAST(:org AS VARCHAR(63)), {columns} FROM {scratch}"
        ),
        bound,
    ).rowcount
    conn.execute(text(f"DROP TABLE {scratch}"))
    if stored is not None:  # derived a part: the organization's rows are the report's
        derived = int(
            conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE organization_id = :org"), bound
            ).scalar_one()
        )
    return RefreshReport(
        derived,
        deleted,
        max(inserted or 0, 0),
        time.monotonic() - started,
    )


def run_changed_sources(run: Any) -> bool:
    """Whether a sync run (``sync.SyncResult``) may have changed what the rows derive from:
    its batches inserted or changed rows (upserts write only rows that differ), it fetched or
    cleaned up deleted records, or identity resolution rewrote participants or activities."""
    counts = run.counts
    if counts.upserted or counts.deleted:
        return True
    resolution = getattr(run, "resolution", None)
    if resolution is None:
        return False  # not run, or failed and rolled back: it changed nothing
    return bool(
        resolution.participants_updated
        or resolution.participants_stale
        or resolution.activities_updated
        or resolution.meetings_updated
    )


def take_turns(conn: Connection, table: str, org: str) -> None:
    """Refreshes of one organization's ``table`` run one at a time on PostgreSQL (until the
    transaction ends): side by side, two syncs would both insert the rows both found missing.
    DuckDB has one writer."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"revtops:{table}:{org}"},
        )


def others_running(conn: Connection, org: str, run: Any) -> bool:
    """Whether a sync of ``org`` other than ``run`` (a ``sync.SyncResult``, or anything
    without a ``run_id``: then every running sync counts) is recorded as running."""
    own: uuid.UUID | None = getattr(run, "run_id", None)
    found = conn.execute(
        text(
            "SELECT 1 FROM sync_runs WHERE organization_id = :org AND status = :running "
            "AND (CAST(:own AS VARCHAR) IS NULL OR CAST(id AS VARCHAR) <> CAST(:own AS VARCHAR)) "
            "LIMIT 1"
        ),
        {"org": org, "running": SyncRunStatus.RUNNING.value, "own": str(own) if own else None},
    ).first()
    return found is not None
