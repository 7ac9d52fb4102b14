"""Scheduled work: workflows (a notebook, parameters, a cron schedule) run by papermill.

    from revtops_kernel.scheduling import add_workflow, run_now, run_history
    add_workflow(db, "nightly-sync", "notebooks/sync.ipynb", "0 2 * * *", org="acme",
                 timezone="Europe/Paris", parameters={"provider": "hubspot"})
    run_now(db, settings, "nightly-sync", org="acme")      # runs it now, returns the RunInfo
    run_history(db, "nightly-sync", org="acme")

``revtops scheduler`` runs due workflows; with ``REVTOPS_BROKER_URL`` it enqueues them for
``revtops worker`` (Celery) instead of running them in local child processes.
"""

from __future__ import annotations

from typing import Any

from revtops_kernel.errors import (
    ScheduleError,
    WorkflowExistsError,
    WorkflowInputError,
    WorkflowLimitError,
    WorkflowParameterError,
)
from revtops_kernel.scheduling.cron import Schedule
from revtops_kernel.scheduling.limits import WorkflowLimits
from revtops_kernel.scheduling.workflows import (
    NAME_PATTERN,
    RunInfo,
    WorkflowBusyError,
    WorkflowError,
    WorkflowInfo,
    add_workflow,
    get_run,
    get_workflow,
    list_workflows,
    remove_workflow,
    run_history,
    update_workflow,
)
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database

__all__ = [
    "NAME_PATTERN",
    "RunInfo",
    "Schedule",
    "ScheduleError",
    "WorkflowBusyError",
    "WorkflowError",
    "WorkflowExistsError",
    "WorkflowInfo",
    "WorkflowInputError",
    "WorkflowLimitError",
    "WorkflowLimits",
    "WorkflowParameterError",
    "add_workflow",
    "get_run",
    "get_workflow",
    "list_workflows",
    "remove_workflow",
    "run_history",
    "run_now",
    "update_workflow",
]


def run_now(
    db: Database,
    settings: Settings,
    name: str,
    *,
    org: str,
    parameters: dict[str, Any] | None = None,
    enqueue: bool = False,
) -> RunInfo:
    """Run a workflow now, outside its schedule (``parameters`` override the stored ones).

    By default it runs here, in a child process, and returns the finished run. ``enqueue``
    hands it to the Celery workers instead (needs ``REVTOPS_BROKER_URL``) and returns the
    queued run. ``WorkflowBusyError`` if the workflow has a run in flight,
    ``WorkflowParameterError`` for a parameter its notebook cannot take, ``WorkflowLimitError``
    past the settings' caps on runs.
    """
    from revtops_kernel.scheduling import runs

    workflow = get_workflow(db, name, org=org)
    if enqueue and not settings.broker_url:
        raise WorkflowError("enqueueing needs REVTOPS_BROKER_URL=redis://… (Celery workers)")
    run = runs.claim_manual(
        db,
        workflow,
        f"manual@{runs.process_label()}",
        parameters,
        limits=WorkflowLimits.from_settings(settings),
    )
    if enqueue:
        from revtops_kernel.scheduling.celery_app import CeleryDispatcher

        dispatcher = CeleryDispatcher(settings)
        dispatcher.dispatch(run)
        dispatcher.shutdown(0)
        return run
    from revtops_kernel.scheduling.supervise import supervise

    supervise(db, settings, run.id)
    return get_run(db, run.id)
