"""The statuses a sync run and a workflow run go through, as stored (``sync_runs.status``,
``workflow_runs.status``). A leaf module: the store, the sync, the scheduler and the front ends
all read it."""

from __future__ import annotations

from enum import StrEnum


class SyncRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its process died or was stopped (found by the next run)


class WorkflowRunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        """Queued or running: the workflow is busy."""
        return self in (WorkflowRunStatus.QUEUED, WorkflowRunStatus.RUNNING)


ACTIVE_RUN_STATUSES: tuple[WorkflowRunStatus, ...] = tuple(s for s in WorkflowRunStatus if s.active)
FINAL_RUN_STATUSES: tuple[WorkflowRunStatus, ...] = tuple(
    s for s in WorkflowRunStatus if not s.active
)
