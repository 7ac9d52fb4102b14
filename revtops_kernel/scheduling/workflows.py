"""Workflows as stored definitions: add, list, get, update, remove, history.

A workflow is a notebook, the parameters papermill injects into it, and a cron schedule read in
a time zone. Names are unique within an organization. Notebook paths are stored absolute, so a
scheduler started from another directory runs the same file.

Everything a workflow stores is checked here, whoever calls (REST, CLI, Python): the name is a
slug (``NAME_PATTERN``, which the REST routes use too), the schedule has five fields and a
minimum interval (``cron.workflow_cron``), parameters are the notebook's declared ones with
scalar values of their kinds (``parameters.check_parameters``), and an organization has at most
``WorkflowLimits.max_workflows_per_org`` workflows.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, delete, func, insert, select, text, update

from revtops_kernel.errors import (
    WorkflowBusyError,
    WorkflowError,
    WorkflowExistsError,
    WorkflowInputError,
    WorkflowLimitError,
)
from revtops_kernel.notebooks import resolve_notebook
from revtops_kernel.run_status import ACTIVE_RUN_STATUSES, FINAL_RUN_STATUSES, WorkflowRunStatus
from revtops_kernel.scheduling.cron import workflow_cron
from revtops_kernel.scheduling.limits import WorkflowLimits
from revtops_kernel.scheduling.parameters import check_parameters
from revtops_kernel.store import Database
from revtops_kernel.store.schema import Workflow, WorkflowRun
from revtops_kernel.timeutil import to_utc, utcnow

workflows_table = cast(Table, Workflow.__table__)
runs_table = cast(Table, WorkflowRun.__table__)

ACTIVE_STATUSES = ACTIVE_RUN_STATUSES
FINAL_STATUSES = FINAL_RUN_STATUSES

# A workflow's name: a slug, so every name can be addressed in a URL path and a folder name.
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"
_NAME = re.compile(NAME_PATTERN)

__all__ = [  # the errors live in revtops_kernel.errors; re-exported for existing imports
    "ACTIVE_STATUSES",
    "NAME_PATTERN",
    "RunInfo",
    "WorkflowBusyError",
    "WorkflowError",
    "WorkflowInfo",
    "add_workflow",
    "check_name",
    "get_run",
    "get_workflow",
    "get_workflow_by_id",
    "list_workflows",
    "lock_organization",
    "remove_workflow",
    "run_history",
    "update_workflow",
]


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
    limits: WorkflowLimits | None = None,
) -> WorkflowInfo:
    """Store a new workflow.

    ``WorkflowInputError`` (``WorkflowParameterError``, ``ScheduleError``) names a malformed
    field, ``WorkflowExistsError`` a taken name, ``WorkflowLimitError`` a full organization.
    """
    limits = limits or WorkflowLimits()
    check_name(name)
    path = resolve_notebook(notebook)
    cron = workflow_cron(cron, timezone, limits.min_interval)
    checked = check_parameters(parameters or {}, path)
    _check_timeout(timeout_seconds)
    now = utcnow()
    with db.begin() as conn:
        lock_organization(conn, db, org)
        taken = conn.execute(
            select(workflows_table.c.id).where(
                workflows_table.c.organization_id == org, workflows_table.c.name == name
            )
        ).first()
        if taken is not None:
            raise WorkflowExistsError(name, org)
        _check_room(conn, org, limits)
        conn.execute(
            insert(workflows_table).values(
                id=uuid.uuid4(),
                organization_id=org,
                name=name,
                notebook=str(path),
                parameters=checked,
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


def update_workflow(
    db: Database,
    name: str,
    *,
    org: str,
    limits: WorkflowLimits | None = None,
    **changes: Any,
) -> WorkflowInfo:
    """Change some of ``UPDATABLE``'s fields, checked as on ``add``.

    Only what changes is checked (a new schedule, or parameters against the notebook they will
    run in), so a workflow stored by an older version can still be paused or removed.
    """
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        allowed = ", ".join(UPDATABLE)
        raise WorkflowError(f"cannot update {', '.join(unknown)}; updatable: {allowed}")
    limits = limits or WorkflowLimits()
    current = get_workflow(db, name, org=org)
    if "cron" in changes or "timezone" in changes:
        changes["cron"] = workflow_cron(
            changes.get("cron", current.cron),
            changes.get("timezone", current.timezone),
            limits.min_interval,
        )
    if "notebook" in changes:
        changes["notebook"] = str(resolve_notebook(changes["notebook"]))
    if "notebook" in changes or "parameters" in changes:
        changes["parameters"] = check_parameters(
            changes.get("parameters", current.parameters) or {},
            Path(changes.get("notebook", current.notebook)),
        )
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
            .where(
                runs_table.c.workflow_id == current.id,
                runs_table.c.status == WorkflowRunStatus.RUNNING,
            )
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


def check_name(name: object) -> str:
    """``name`` if it is a workflow name (a slug, ``NAME_PATTERN``); else ``WorkflowInputError``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise WorkflowInputError(
            "name",
            f"invalid workflow name {name!r}: use 1-63 lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit (e.g. 'nightly-sync')",
        )
    return name


def lock_organization(conn: Connection, db: Database, org: str) -> None:
    """Serialize writers that count an organization's workflows or runs against a cap.

    On PostgreSQL a transaction-scoped advisory lock keyed by the organization; a DuckDB file
    has one writer at a time, so its transactions are serialized already.
    """
    if not db.is_duckdb:
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"revtops-workflows:{org}"},
        )


def _check_room(conn: Connection, org: str, limits: WorkflowLimits) -> None:
    count = conn.execute(
        select(func.count())
        .select_from(workflows_table)
        .where(workflows_table.c.organization_id == org)
    ).scalar_one()
    if count >= limits.max_workflows_per_org:
        raise WorkflowLimitError(
            f"{org!r} has {count} workflows, the most an organization may have "
            f"({limits.max_workflows_per_org}, REVTOPS_WORKFLOW_MAX_PER_ORG); remove one first",
            setting="REVTOPS_WORKFLOW_MAX_PER_ORG",
            limit=limits.max_workflows_per_org,
        )


def _check_timeout(value: float | None) -> None:
    if value is not None and value <= 0:
        raise WorkflowError(f"a run timeout is a positive number of seconds, got {value}")
