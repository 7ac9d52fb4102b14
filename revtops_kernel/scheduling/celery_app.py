"""Celery: the scheduler enqueues runs, ``revtops worker`` executes them.

Reliability rules, and why:

- ``acks_late`` + ``reject_on_worker_lost``: a task is acknowledged only after it ran, so a
  worker that dies mid-run leaves its message to be delivered again (Redis hands an unacked
  message to another worker after the visibility timeout; a pool process that dies is
  rejected and requeued at once);
- the task is idempotent: it executes only a run that is ``queued`` (``runs.start`` moves it to
  ``running`` atomically), so a redelivered or duplicated message for a run that succeeded or
  is running elsewhere does nothing;
- the visibility timeout is the run time limit plus a margin, so Redis does not redeliver a
  run that is still legitimately in progress;
- a run whose worker died is not left ``running``: the run's process beats, the scheduler's
  reaper requeues a silent run (and enqueues it again) or marks it failed after
  ``REVTOPS_RUN_MAX_ATTEMPTS`` attempts;
- one task at a time per pool process (``prefetch_multiplier=1``), since runs are long.

Keys are prefixed with the queue name (``global_keyprefix``), so a shared Redis stays tidy.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Celery

from revtops_kernel.scheduling.workflows import RunInfo
from revtops_kernel.settings import Settings, load_settings

log = logging.getLogger(__name__)

TASK_NAME = "revtops.run_workflow"
VISIBILITY_MARGIN_SECONDS = 300.0


def make_app(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise ValueError("REVTOPS_BROKER_URL is not set; Celery needs a redis:// broker")
    app = Celery("revtops", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.run_timeout + VISIBILITY_MARGIN_SECONDS,
            "global_keyprefix": f"{settings.celery_queue}:",
        },
    )
    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)(
        _run_workflow_task
    )
    return app


def _run_workflow_task(task: Any, run_id: str) -> str:
    """Execute one run on this worker; a no-op for a run that is not queued."""
    from revtops_kernel.scheduling.supervise import supervise
    from revtops_kernel.scheduling.workflows import get_run
    from revtops_kernel.store import Database

    settings = load_settings()
    db = Database.from_settings(settings)
    try:
        run = get_run(db, uuid.UUID(run_id))
        if run.status != "queued":
            log.info("run %s is %s; nothing to do", run_id, run.status)
            return run.status
        return supervise(db, settings, run.id)
    finally:
        db.dispose()


class CeleryDispatcher:
    """Hands runs to Celery workers; the broker queues them, so capacity is unbounded here."""

    def __init__(self, settings: Settings) -> None:
        self._app = make_app(settings)
        self._queue = settings.celery_queue

    def capacity(self) -> int:
        return 1_000_000

    def dispatch(self, run: RunInfo) -> None:
        self._app.send_task(TASK_NAME, args=[str(run.id)], queue=self._queue)

    def shutdown(self, grace: float | None) -> None:
        self._app.close()
