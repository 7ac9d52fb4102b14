"""Workflows as stored definitions: add, list, get, update, remove, history.

A workflow is a notebook, the parameters papermill injects into it, and a cron schedule read in
a time zone. Names are unique within an organization. Notebook paths are stored absolute, so a
scheduler started from another directory runs the same file.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Row, Table, delete, func, insert, select, update

from revtops_kernel.errors import RevtopsError
from revtops_kernel.scheduling.cron import validate
from revtops_kernel.store import Database
from revtops_kernel.store.schema import Workflow, WorkflowRun
from revtops_kernel.timeutil import to_utc, utcnow

workflows_table = cast(Table, Workflow.__table__)
runs_table = cast(Table, WorkflowRun.__table__)

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "timed_out", "interrupted")


class WorkflowError(RevtopsError):
    """A workflow that does not exist, already exists, or is malformed."""


class WorkflowBusyError(WorkflowError):
    """The workflow already has a run queued or running; one runs at a time."""


@dataclass(frozen=True)
class WorkflowInfo:
    id: uuid.UUID
    organization_id: str
    name: str
    notebook: str
    parameters: dict[str, Any]
    cron: str
    timezone: str
    enabled: bool
    owner: str | None
    timeout_seconds: float | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> WorkflowInfo:
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        values["created_at"] = to_utc(values["created_at"])
        values["updated_at"] = to_utc(values["updated_at"])
        values["parameters"] = dict(values["parameters"] or {})
        return cls(**values)


@dataclass(frozen=True)
class RunInfo:
    id: uuid.UUID
    workflow_id: uuid.UUID
    organization_id: str
    scheduled_for: datetime
    status: str
    trigger: str | None
    parameters: dict[str, Any] | None
    attempt: int | None
    claimed_by: str | None
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    duration_seconds: float | None
    output_path: str | None
    error: str | None
    error_cell: int | None
    error_name: str | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> RunInfo:
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        for name in ("scheduled_for", "started_at", "finished_at", "heartbeat_at"):
            if values[name] is not None:
                values[name] = to_utc(values[name])
        return cls(**values)


def add_workflow(
    db: Database,
    name: str,
    notebook: str | Path,
    cron: str,
    *,
    org: str,
    timezone: str = "UTC",
    parameters: dict[str, Any] | None = None,
    enabled: bool = True,
    owner: str | None = None,
    timeout_seconds: float | None = None,
) -> WorkflowInfo:
    """Store a new workflow; ``WorkflowError`` if the name is taken or a field is malformed."""
    validate(cron, timezone)
    path = _notebook_path(notebook)
    _check_timeout(timeout_seconds)
    now = utcnow()
    with db.begin() as conn:
        taken = conn.execute(
            select(workflows_table.c.id).where(
                workflows_table.c.organization_id == org, workflows_table.c.name == name
            )
        ).first()
        if taken is not None:
            raise WorkflowError(f"a workflow named {name!r} already exists in {org!r}")
        conn.execute(
            insert(workflows_table).values(
                id=uuid.uuid4(),
                organization_id=org,
                name=name,
                notebook=str(path),
                parameters=dict(parameters or {}),
                cron=cron,
                timezone=timezone,
                enabled=enabled,
                owner=owner,
                timeout_seconds=timeout_seconds,
                created_at=now,
                updated_at=now,
            )
        )
    return get_workflow(db, name, org=org)


def list_workflows(db: Database, *, org: str | None = None) -> list[WorkflowInfo]:
    """Workflows of ``org`` (every organization's if None), by name."""
    query = select(workflows_table).order_by(
        workflows_table.c.organization_id, workflows_table.c.name
    )
    if org is not None:
        query = query.where(workflows_table.c.organization_id == org)
    with db.connect() as conn:
        return [WorkflowInfo.from_row(row) for row in conn.execute(query)]


def get_workflow(db: Database, name: str, *, org: str) -> WorkflowInfo:
    with db.connect() as conn:
        row = conn.execute(
            select(workflows_table).where(
                workflows_table.c.organization_id == org, workflows_table.c.name == name
            )
        ).first()
    if row is None:
        raise WorkflowError(f"no workflow named {name!r} in {org!r} (see `revtops workflows list`)")
    return WorkflowInfo.from_row(row)


def get_workflow_by_id(db: Database, workflow_id: uuid.UUID) -> WorkflowInfo:
    with db.connect() as conn:
        row = conn.execute(
            select(workflows_table).where(workflows_table.c.id == workflow_id)
        ).first()
    if row is None:
        raise WorkflowError(f"workflow {workflow_id} no longer exists")
    return WorkflowInfo.from_row(row)


UPDATABLE = ("notebook", "parameters", "cron", "timezone", "enabled", "owner", "timeout_seconds")


def update_workflow(db: Database, name: str, *, org: str, **changes: Any) -> WorkflowInfo:
    """Change some of ``UPDATABLE``'s fields; the schedule is validated as on ``add``."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        allowed = ", ".join(UPDATABLE)
        raise WorkflowError(f"cannot update {', '.join(unknown)}; updatable: {allowed}")
    current = get_workflow(db, name, org=org)
    validate(changes.get("cron", current.cron), changes.get("timezone", current.timezone))
    if "notebook" in changes:
        changes["notebook"] = str(_notebook_path(changes["notebook"]))
    if "timeout_seconds" in changes:
        _check_timeout(changes["timeout_seconds"])
    with db.begin() as conn:
        conn.execute(
            update(workflows_table)
            .where(workflows_table.c.id == current.id)
            .values(**changes, updated_at=utcnow())
        )
    return get_workflow(db, name, org=org)


def remove_workflow(db: Database, name: str, *, org: str) -> int:
    """Delete a workflow and its run history (refused while a run is in progress).

    Returns how many runs were removed.
    """
    current = get_workflow(db, name, org=org)
    with db.begin() as conn:
        active = conn.execute(
            select(func.count())
            .select_from(runs_table)
            .where(runs_table.c.workflow_id == current.id, runs_table.c.status == "running")
        ).scalar_one()
        if active:
            raise WorkflowBusyError(f"workflow {name!r} has a run in progress; remove it later")
        removed = conn.execute(
            delete(runs_table).where(runs_table.c.workflow_id == current.id)
        ).rowcount
        conn.execute(delete(workflows_table).where(workflows_table.c.id == current.id))
    return int(removed or 0)


def run_history(db: Database, name: str, *, org: str, limit: int = 20) -> list[RunInfo]:
    """The workflow's latest runs, newest first."""
    current = get_workflow(db, name, org=org)
    with db.connect() as conn:
        rows = conn.execute(
            select(runs_table)
            .where(runs_table.c.workflow_id == current.id)
            .order_by(runs_table.c.scheduled_for.desc())
            .limit(limit)
        )
        return [RunInfo.from_row(row) for row in rows]


def get_run(db: Database, run_id: uuid.UUID) -> RunInfo:
    with db.connect() as conn:
        row = conn.execute(select(runs_table).where(runs_table.c.id == run_id)).first()
    if row is None:
        raise WorkflowError(f"no workflow run {run_id}")
    return RunInfo.from_row(row)


def _notebook_path(notebook: str | Path) -> Path:
    path = Path(notebook).expanduser().resolve()
    if path.suffix != ".ipynb":
        raise WorkflowError(f"a workflow runs a notebook (.ipynb), got {str(notebook)!r}")
    if not path.is_file():
        raise WorkflowError(f"no notebook at {path}")
    return path


def _check_timeout(value: float | None) -> None:
    if value is not None and value <= 0:
        raise WorkflowError(f"a run timeout is a positive number of seconds, got {value}")
