"""A run's life in ``workflow_runs``: claimed (queued), running, then one final status.

Every transition is one short transaction and a conditional statement, so that whoever moves a
run first wins and everybody else sees nothing to do:

- claim: ``INSERT … ON CONFLICT (workflow_id, scheduled_for) DO NOTHING RETURNING`` — two
  schedulers that find the same due time insert the same key, and only one gets a row back.
  On PostgreSQL the workflow row is locked first (``FOR UPDATE``) so that the check "no run of
  this workflow is queued or running" and the insert are one step; on DuckDB the file has one
  writer at a time, so the transaction is already serialized.
- start: ``queued → running`` (a task delivered twice starts once);
- finish: ``running → final`` (a supervisor that timed the run out and the runner that was
  just finishing cannot both write);
- the reaper: ``running`` with a stale heartbeat → ``queued`` again (attempts left) or
  ``failed``.

A scheduled run waits (is not claimed yet) while its organization has
``max_active_runs_per_org`` runs in flight. A manual run's parameters are checked against the
notebook (``parameters.check_parameters``), and it is refused (``WorkflowLimitError``) when its
organization already has ``max_active_runs_per_org`` runs in flight or the workflow was started
by hand ``max_manual_runs_per_hour`` times within the last hour (see ``limits``).
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from revtops_kernel.errors import WorkflowLimitError
from revtops_kernel.run_status import WorkflowRunStatus
from revtops_kernel.scheduling.limits import WorkflowLimits
from revtops_kernel.scheduling.parameters import check_parameters, declared_parameters
from revtops_kernel.scheduling.workflows import (
    ACTIVE_STATUSES,
    RunInfo,
    WorkflowBusyError,
    WorkflowInfo,
    lock_organization,
    runs_table,
    workflows_table,
)
from revtops_kernel.store import Database
from revtops_kernel.timeutil import to_utc, utcnow

RUNNING = WorkflowRunStatus.RUNNING
QUEUED = WorkflowRunStatus.QUEUED


def process_label() -> str:
    """``host:pid``, how a run names the scheduler that claimed it and the worker that ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_scheduled(
    db: Database,
    workflow: WorkflowInfo,
    due: datetime,
    claimed_by: str,
    *,
    max_active_per_org: int | None = None,
) -> RunInfo | None:
    """Create the run serving ``due``, unless it exists or another run is active.

    With ``max_active_per_org``, also None while the organization has that many runs in
    flight: the due time stays the latest one, so a later pass claims it when a run ends.
    """
    return _claim(
        db,
        workflow,
        due,
        "schedule",
        claimed_by,
        workflow.parameters,
        org_cap=max_active_per_org,
    )


def claim_manual(
    db: Database,
    workflow: WorkflowInfo,
    claimed_by: str,
    parameters: dict[str, Any] | None = None,
    *,
    limits: WorkflowLimits | None = None,
) -> RunInfo:
    """Create a run now (``run now``) with ``parameters`` overriding the stored ones.

    ``WorkflowParameterError`` for an override (or a stored parameter) the notebook cannot
    take, ``WorkflowBusyError`` while another run of the workflow is active,
    ``WorkflowLimitError`` when the organization or the workflow reached a cap.
    """
    notebook = Path(workflow.notebook)
    declared = declared_parameters(notebook)
    overrides = check_parameters(parameters or {}, notebook, declared=declared)
    merged = check_parameters({**workflow.parameters, **overrides}, notebook, declared=declared)
    run = _claim(
        db, workflow, utcnow(), "manual", claimed_by, merged, limits=limits or WorkflowLimits()
    )
    if run is None:
        raise WorkflowBusyError(
            f"workflow {workflow.name!r} already has a run queued or running; "
            "one run of a workflow at a time"
        )
    return run


def _claim(
    db: Database,
    workflow: WorkflowInfo,
    scheduled_for: datetime,
    trigger: str,
    claimed_by: str,
    parameters: dict[str, Any],
    *,
    limits: WorkflowLimits | None = None,
    org_cap: int | None = None,
) -> RunInfo | None:
    """Insert the run; None if it exists or the workflow has one active. ``limits`` (manual
    runs) also caps the organization's runs in flight and the workflow's runs per hour;
    ``org_cap`` (scheduled runs) makes a claim wait, None, while the organization has that
    many runs in flight."""
    now = utcnow()
    with db.begin() as conn:
        if limits is not None or org_cap is not None:
            lock_organization(conn, db, workflow.organization_id)
        if not db.is_duckdb:
            conn.execute(
                select(workflows_table.c.id)
                .where(workflows_table.c.id == workflow.id)
                .with_for_update()
            )
        if _has_active_run(conn, workflow.id):
            return None
        if limits is not None:
            _check_run_caps(conn, workflow, limits, now)
        if org_cap is not None and _active_runs(conn, workflow.organization_id) >= org_cap:
            return None
        statement = (
            pg_insert(runs_table)
            .values(
                id=uuid.uuid4(),
                workflow_id=workflow.id,
                organization_id=workflow.organization_id,
                scheduled_for=scheduled_for,
                status=QUEUED,
                trigger=trigger,
                parameters=parameters,
                attempt=0,
                claimed_by=claimed_by,
                heartbeat_at=now,
            )
            .on_conflict_do_nothing(index_elements=["workflow_id", "scheduled_for"])
            .returning(*runs_table.c)
        )
        row = conn.execute(statement).first()
    return RunInfo.from_row(row) if row is not None else None


def _check_run_caps(
    conn: Connection, workflow: WorkflowInfo, limits: WorkflowLimits, now: datetime
) -> None:
    org = workflow.organization_id
    active = _active_runs(conn, org)
    if active >= limits.max_active_runs_per_org:
        raise WorkflowLimitError(
            f"{org!r} has {active} run{'' if active == 1 else 's'} queued or running, the most "
            f"an organization may have at once ({limits.max_active_runs_per_org}, "
            "REVTOPS_WORKFLOW_MAX_ACTIVE_RUNS_PER_ORG); try again when one has finished",
            setting="REVTOPS_WORKFLOW_MAX_ACTIVE_RUNS_PER_ORG",
            limit=limits.max_active_runs_per_org,
        )
    window = timedelta(hours=1)
    recent = (
        conn.execute(
            select(runs_table.c.scheduled_for).where(
                runs_table.c.workflow_id == workflow.id,
                runs_table.c.trigger == "manual",
                runs_table.c.scheduled_for > now - window,
            )
        )
        .scalars()
        .all()
    )
    if len(recent) >= limits.max_manual_runs_per_hour:
        frees_at = to_utc(min(recent)) + window
        wait = max(1, math.ceil((frees_at - now).total_seconds()))
        raise WorkflowLimitError(
            f"workflow {workflow.name!r} was started by hand {len(recent)} times in the last "
            f"hour, the most allowed ({limits.max_manual_runs_per_hour}, "
            f"REVTOPS_WORKFLOW_MAX_MANUAL_RUNS_PER_HOUR); try again in {wait} s",
            setting="REVTOPS_WORKFLOW_MAX_MANUAL_RUNS_PER_HOUR",
            limit=limits.max_manual_runs_per_hour,
            retry_after=wait,
        )


def _active_runs(conn: Connection, org: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(runs_table)
            .where(runs_table.c.organization_id == org, runs_table.c.status.in_(ACTIVE_STATUSES))
        ).scalar_one()
    )


def _has_active_run(conn: Connection, workflow_id: uuid.UUID) -> bool:
    count = conn.execute(
        select(func.count())
        .select_from(runs_table)
        .where(
            runs_table.c.workflow_id == workflow_id,
            runs_table.c.status.in_(ACTIVE_STATUSES),
        )
    ).scalar_one()
    return bool(count)


def start(db: Database, run_id: uuid.UUID, worker: str, output_path: str) -> RunInfo | None:
    """``queued → running``; None if the run is not queued (started elsewhere, or finished)."""
    now = utcnow()
    with db.begin() as conn:
        row = conn.execute(
            update(runs_table)
            .where(runs_table.c.id == run_id, runs_table.c.status == QUEUED)
            .values(
                status=RUNNING,
                started_at=now,
                heartbeat_at=now,
                finished_at=None,
                worker=worker,
                output_path=output_path,
                attempt=func.coalesce(runs_table.c.attempt, 0) + 1,
                error=None,
                error_cell=None,
                error_name=None,
            )
            .returning(*runs_table.c)
        ).first()
    return RunInfo.from_row(row) if row is not None else None


def beat(db: Database, run_id: uuid.UUID) -> bool:
    """Record that the run's process is alive; False if the run is no longer running."""
    with db.begin() as conn:
        result = conn.execute(
            update(runs_table)
            .where(runs_table.c.id == run_id, runs_table.c.status == RUNNING)
            .values(heartbeat_at=utcnow())
        )
    return bool(result.rowcount)


def finish(
    db: Database,
    run_id: uuid.UUID,
    status: str,
    *,
    error: str | None = None,
    error_cell: int | None = None,
    error_name: str | None = None,
    from_statuses: tuple[str, ...] = (RUNNING,),
) -> bool:
    """Move the run to a final ``status`` if it is still in ``from_statuses``; True if it moved.

    The duration is measured by the database from ``started_at``, so every writer (runner,
    supervisor, reaper) records it the same way.
    """
    now = utcnow()
    with db.begin() as conn:
        started = conn.execute(
            select(runs_table.c.started_at).where(runs_table.c.id == run_id)
        ).scalar_one_or_none()
        duration = (now - started).total_seconds() if started is not None else None
        result = conn.execute(
            update(runs_table)
            .where(runs_table.c.id == run_id, runs_table.c.status.in_(from_statuses))
            .values(
                status=status,
                finished_at=now,
                duration_seconds=duration,
                error=error,
                error_cell=error_cell,
                error_name=error_name,
            )
        )
    return bool(result.rowcount)


def reap_lost(
    db: Database, *, stale_before: datetime, max_attempts: int
) -> tuple[list[RunInfo], list[RunInfo]]:
    """Runs whose process stopped beating: requeue those with attempts left, fail the rest.

    Returns ``(requeued, failed)``. A requeued run must be dispatched again by the caller.
    """
    stale = and_(
        runs_table.c.status == RUNNING,
        runs_table.c.heartbeat_at < stale_before,
    )
    with db.connect() as conn:
        candidates = conn.execute(select(runs_table.c.id, runs_table.c.worker).where(stale)).all()
    # A late heartbeat is not a lost worker when the runner is a live process on this machine:
    # on a busy host (or a DuckDB file other writers hold) a beat can be seconds late, and
    # requeueing then would run the notebook twice. Remote workers only have their heartbeats.
    lost = [row.id for row in candidates if not _alive_here(row.worker)]
    if not lost:
        return [], []
    stale = and_(stale, runs_table.c.id.in_(lost))
    attempts = func.coalesce(runs_table.c.attempt, 0)
    message = (
        "the process running it stopped sending heartbeats (worker lost: killed, crashed or "
        "its machine went away)"
    )
    with db.begin() as conn:
        requeued = conn.execute(
            update(runs_table)
            .where(stale, attempts < max_attempts)
            .values(
                status=QUEUED,
                heartbeat_at=utcnow(),
                error=f"attempt lost, retrying: {message}",
                error_name="WorkerLost",
            )
            .returning(*runs_table.c)
        ).all()
        failed = conn.execute(
            update(runs_table)
            .where(stale, attempts >= max_attempts)
            .values(
                status="failed",
                finished_at=utcnow(),
                error=f"{message}; gave up after {max_attempts} attempt(s)",
                error_name="WorkerLost",
            )
            .returning(*runs_table.c)
        ).all()
    return [RunInfo.from_row(r) for r in requeued], [RunInfo.from_row(r) for r in failed]


def _alive_here(label: str | None) -> bool:
    """True when ``label`` (``host:pid``, see `process_label`) is a live process of this host."""
    host, _, pid = (label or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def stale_queued(db: Database, *, stale_before: datetime) -> list[RunInfo]:
    """Queued runs nobody has started since ``stale_before`` (their dispatcher went away).

    Their heartbeat is bumped in the same statement, so two schedulers do not both take one.
    """
    with db.begin() as conn:
        rows = conn.execute(
            update(runs_table)
            .where(runs_table.c.status == QUEUED, runs_table.c.heartbeat_at < stale_before)
            .values(heartbeat_at=utcnow())
            .returning(*runs_table.c)
        ).all()
    return [RunInfo.from_row(r) for r in rows]


def latest_claims(db: Database) -> dict[uuid.UUID, tuple[datetime | None, bool]]:
    """Per workflow: its latest ``scheduled_for`` claimed by a schedule, and whether a run is
    active — one read per scheduler tick instead of one write per workflow."""
    scheduled = (
        select(
            runs_table.c.workflow_id,
            func.max(runs_table.c.scheduled_for).label("latest"),
        )
        .where(runs_table.c.trigger == "schedule")
        .group_by(runs_table.c.workflow_id)
    )
    active = (
        select(runs_table.c.workflow_id).where(runs_table.c.status.in_(ACTIVE_STATUSES)).distinct()
    )
    with db.connect() as conn:
        latest = {row.workflow_id: row.latest for row in conn.execute(scheduled)}
        busy = {row.workflow_id for row in conn.execute(active)}
    return {wid: (latest.get(wid), wid in busy) for wid in set(latest) | busy}
