"""The scheduler loop: find due runs, claim them in the database, hand them to a dispatcher.

Every tick:

1. reap: a ``running`` run whose heartbeat is older than ``stale_after`` lost its process; it
   is requeued (attempts left) or failed, never left running. A ``queued`` run nobody started
   (its dispatcher died between claim and hand-off) is handed off again;
2. for each enabled workflow, the latest due time at or before now (``Schedule``) is claimed
   unless a run already serves it or the workflow has a run in flight. Only the latest due
   time is considered, so after downtime a workflow runs once, not once per missed tick, and a
   due time that came while a run was in flight runs when it ends;
3. each claimed run goes to the dispatcher: a local pool of child processes, or Celery.

Claims are atomic in the database (see ``runs``), so any number of schedulers can run against
one store and no due run executes twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Protocol

from revtops_kernel.errors import ScheduleError
from revtops_kernel.scheduling import runs, warm
from revtops_kernel.scheduling.cron import Schedule
from revtops_kernel.scheduling.limits import WorkflowLimits
from revtops_kernel.scheduling.supervise import child_environment, supervise
from revtops_kernel.scheduling.workflows import RunInfo, list_workflows
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database
from revtops_kernel.timeutil import to_utc, utcnow

log = logging.getLogger(__name__)

# A run is presumed lost after this many heartbeat intervals without one.
STALE_HEARTBEATS = 4


class Dispatcher(Protocol):
    def capacity(self) -> int:
        """How many more runs it can start now."""
        ...

    def dispatch(self, run: RunInfo) -> None: ...

    def shutdown(self, grace: float | None) -> None:
        """Let runs in progress finish for ``grace`` seconds (None: until they end), then stop
        what is left."""
        ...


class LocalDispatcher:
    """Runs on this machine: each in its own child process, at most ``workers`` at once.

    ``spares`` (default ``REVTOPS_SPARE_RUNNERS``, 1) runner processes are kept started ahead,
    imports done and kernel up (``scheduling.warm``), so that a run does not wait for them.
    """

    def __init__(
        self, db: Database, settings: Settings, workers: int, *, spares: int | None = None
    ) -> None:
        self._db, self._settings, self._workers = db, settings, workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="revtops-run")
        self._abort = threading.Event()
        self._futures: set[Future[str]] = set()
        self._lock = threading.Lock()
        spares = warm.configured_spares() if spares is None else spares
        self._warm = spares > 0
        if self._warm:
            warm.enable(spares).refill(child_environment(settings, db))

    def capacity(self) -> int:
        with self._lock:
            self._futures = {f for f in self._futures if not f.done()}
            return self._workers - len(self._futures)

    def dispatch(self, run: RunInfo) -> None:
        future = self._pool.submit(self._supervise, run)
        with self._lock:
            self._futures.add(future)

    def _supervise(self, run: RunInfo) -> str:
        try:
            status = supervise(self._db, self._settings, run.id, abort=self._abort)
        except Exception:
            log.exception("supervising run %s failed", run.id)
            runs.finish(
                self._db,
                run.id,
                "failed",
                error="the scheduler could not supervise the run (see its log)",
                error_name="SupervisorError",
                from_statuses=(runs.RUNNING, runs.QUEUED),
            )
            raise
        log.info("run %s ended: %s", run.id, status)
        return status

    def shutdown(self, grace: float | None) -> None:
        with self._lock:
            pending = set(self._futures)
        if pending:
            limit = "until they end" if grace is None else f"up to {grace:g} s"
            log.info("waiting %s for %d run(s) in progress", limit, len(pending))
            _done, still_running = wait(pending, timeout=grace)
            if still_running:
                log.warning("stopping %d run(s) still in progress", len(still_running))
        self._abort.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._warm:
            warm.disable()  # the spares and their kernels stop with the scheduler


class Scheduler:
    """Claims due runs of every enabled workflow in the store and dispatches them."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        dispatcher: Dispatcher,
        *,
        name: str | None = None,
        queued_stale_after: float | None = None,
    ) -> None:
        self.db, self.settings, self.dispatcher = db, settings, dispatcher
        self.name = name or runs.process_label()
        self.stale_after = timedelta(seconds=STALE_HEARTBEATS * settings.run_heartbeat_interval)
        self.queued_stale_after = (
            timedelta(seconds=queued_stale_after)
            if queued_stale_after is not None
            else self.stale_after
        )
        self._max_active_per_org = WorkflowLimits.from_settings(settings).max_active_runs_per_org
        self._schedules: dict[tuple[str, str], Schedule] = {}
        self._next_due: datetime | None = None

    def tick(self, now: datetime | None = None) -> list[RunInfo]:
        """One pass: reap lost runs, claim and dispatch due ones. Returns the runs dispatched."""
        now = now or utcnow()
        dispatched = self.reap(now)
        claims = runs.latest_claims(self.db)
        next_due: datetime | None = None
        for workflow in list_workflows(self.db):
            if not workflow.enabled:
                continue
            schedule = self._schedule(workflow.cron, workflow.timezone)
            if schedule is None:
                continue
            upcoming = schedule.next_after(now)
            next_due = upcoming if next_due is None else min(next_due, upcoming)
            due = schedule.latest_at_or_before(now)
            if due is None or due < workflow.created_at:
                continue
            latest, busy = claims.get(workflow.id, (None, False))
            if busy or (latest is not None and to_utc(latest) >= due):
                continue
            if self.dispatcher.capacity() <= 0:
                next_due = now + timedelta(seconds=1)  # look again when a slot may be free
                break
            run = runs.claim_scheduled(
                self.db, workflow, due, self.name, max_active_per_org=self._max_active_per_org
            )
            if run is not None:
                log.info("claimed %s due %s (run %s)", workflow.name, due.isoformat(), run.id)
                self.dispatcher.dispatch(run)
                dispatched.append(run)
        self._next_due = next_due
        return dispatched

    def reap(self, now: datetime) -> list[RunInfo]:
        requeued, failed = runs.reap_lost(
            self.db,
            stale_before=now - self.stale_after,
            max_attempts=self.settings.run_max_attempts,
        )
        for run in failed:
            log.error("run %s lost its worker %s times; marked failed", run.id, run.attempt)
        orphans = runs.stale_queued(self.db, stale_before=now - self.queued_stale_after)
        dispatched: list[RunInfo] = []
        for run in [*requeued, *orphans]:
            if self.dispatcher.capacity() <= 0:
                break  # stays queued; a later sweep hands it off
            log.warning(
                "re-dispatching run %s (attempt %s lost or never started)", run.id, run.attempt
            )
            self.dispatcher.dispatch(run)
            dispatched.append(run)
        return dispatched

    def seconds_until_next(self, now: datetime | None = None) -> float:
        """How long to sleep: until the next due time, at most the poll interval."""
        now = now or utcnow()
        wait_s = self.settings.scheduler_poll_interval
        if self._next_due is not None:
            wait_s = min(wait_s, max((self._next_due - now).total_seconds(), 0.0) + 0.01)
        return max(wait_s, 0.05)

    def serve(self, stop: threading.Event, *, grace: float | Callable[[], float] = 30.0) -> None:
        """Tick until ``stop`` is set, then shut the dispatcher down, letting runs in progress
        finish for ``grace`` seconds (a callable is read at that moment)."""
        log.info("scheduler %s started", self.name)
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # a store hiccup must not end the scheduler
                    log.exception("scheduler tick failed; retrying")
                    stop.wait(min(self.settings.scheduler_poll_interval, 5.0))
                    continue
                stop.wait(self.seconds_until_next())
        finally:
            self.dispatcher.shutdown(grace() if callable(grace) else grace)
            log.info("scheduler %s stopped", self.name)

    def _schedule(self, cron: str, timezone: str) -> Schedule | None:
        key = (cron, timezone)
        if key not in self._schedules:
            try:
                self._schedules[key] = Schedule(cron, timezone)
            except ScheduleError as exc:
                log.error("skipping a workflow with a bad schedule: %s", exc)
                return None
        return self._schedules[key]
