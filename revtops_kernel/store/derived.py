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

import uuid
from typing import Any

from sqlalchemy import Connection, text

from revtops_kernel.run_status import SyncRunStatus


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
