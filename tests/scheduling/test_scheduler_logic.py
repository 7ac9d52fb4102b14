"""The scheduler's decisions against a real store (both backends), without executing notebooks:
claims, coalescing after downtime, one run at a time, the reaper, and the workflows API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scheduling_helpers import write_notebook
from sqlalchemy import update

from revtops_kernel.scheduling import (
    WorkflowBusyError,
    WorkflowError,
    add_workflow,
    get_run,
    get_workflow,
    list_workflows,
    remove_workflow,
    run_history,
    runs,
    update_workflow,
)
from revtops_kernel.scheduling.cron import ScheduleError
from revtops_kernel.scheduling.scheduler import Scheduler
from revtops_kernel.scheduling.workflows import RunInfo, WorkflowInfo, runs_table, workflows_table
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database


class RecordingDispatcher:
    """Takes runs without executing them, so a test can decide what happens to each."""

    def __init__(self, slots: int = 10) -> None:
        self.slots = slots
        self.runs: list[RunInfo] = []

    def capacity(self) -> int:
        return self.slots - len(self.runs)

    def dispatch(self, run: RunInfo) -> None:
        self.runs.append(run)

    def shutdown(self, grace: float | None) -> None:
        pass


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    # Declares every parameter the tests set: undeclared names are refused.
    return write_notebook(
        tmp_path / "nb.ipynb", 'x = 1\nperiod = "week"\nprovider = "all"\nfull_refresh = False'
    )


def _created(db: Database, workflow: WorkflowInfo, when: datetime) -> WorkflowInfo:
    with db.begin() as conn:
        conn.execute(
            update(workflows_table)
            .where(workflows_table.c.id == workflow.id)
            .values(created_at=when)
        )
    return get_workflow(db, workflow.name, org=workflow.organization_id)


def test_claim_is_atomic_and_one_run_at_a_time(db: Database, notebook: Path) -> None:
    wf = add_workflow(db, "daily", notebook, "0 9 * * *", org="acme")
    due = datetime(2025, 6, 2, 9, tzinfo=UTC)
    first = runs.claim_scheduled(db, wf, due, "scheduler-a")
    assert first is not None and first.status == "queued" and first.scheduled_for == due
    assert runs.claim_scheduled(db, wf, due, "scheduler-b") is None  # the same due run
    later = due + timedelta(days=1)
    assert runs.claim_scheduled(db, wf, later, "scheduler-b") is None  # one in flight
    with pytest.raises(WorkflowBusyError, match="already has a run"):
        runs.claim_manual(db, wf, "cli")
    assert runs.start(db, first.id, "w1", "/out.ipynb") is not None
    assert runs.start(db, first.id, "w2", "/out.ipynb") is None  # delivered twice: starts once
    assert runs.finish(db, first.id, "succeeded")
    assert not runs.finish(db, first.id, "failed")  # a late writer cannot overwrite
    assert get_run(db, first.id).status == "succeeded"
    second = runs.claim_scheduled(db, wf, later, "scheduler-b")
    assert second is not None and second.claimed_by == "scheduler-b"


def test_after_downtime_a_missed_run_executes_once(
    db: Database, notebook: Path, store_env: Callable[..., Settings]
) -> None:
    settings = store_env()
    wf = add_workflow(
        db,
        "weekday-report",
        notebook,
        "0 9 * * 1-5",
        org="acme",
        timezone="Europe/Paris",
        parameters={"period": "week"},
    )
    _created(db, wf, datetime(2025, 6, 1, tzinfo=UTC))
    dispatcher = RecordingDispatcher()
    scheduler = Scheduler(db, settings, dispatcher, name="s1")
    # Down from Monday to Friday 08:00 Paris time: four due runs missed, one executes.
    friday_morning = datetime(2025, 6, 13, 6, 0, tzinfo=UTC)
    claimed = scheduler.tick(friday_morning)
    assert [r.scheduled_for for r in claimed] == [datetime(2025, 6, 12, 7, 0, tzinfo=UTC)]
    assert claimed[0].parameters == {"period": "week"} and claimed[0].trigger == "schedule"
    assert scheduler.tick(friday_morning + timedelta(minutes=30)) == []  # already claimed
    # While it is in flight, Friday's due time passes: it waits, then runs once.
    assert scheduler.tick(datetime(2025, 6, 13, 8, 0, tzinfo=UTC)) == []
    runs.start(db, claimed[0].id, "w", "/o.ipynb")
    runs.finish(db, claimed[0].id, "succeeded")
    later = scheduler.tick(datetime(2025, 6, 13, 8, 1, tzinfo=UTC))
    assert [r.scheduled_for for r in later] == [datetime(2025, 6, 13, 7, 0, tzinfo=UTC)]
    assert len(run_history(db, "weekday-report", org="acme")) == 2


def test_no_run_for_due_times_before_the_workflow_existed(
    db: Database, notebook: Path, store_env: Callable[..., Settings]
) -> None:
    wf = add_workflow(db, "nightly", notebook, "0 2 * * *", org="acme")
    _created(db, wf, datetime(2025, 6, 2, 12, tzinfo=UTC))
    scheduler = Scheduler(db, store_env(), RecordingDispatcher())
    assert scheduler.tick(datetime(2025, 6, 2, 13, tzinfo=UTC)) == []
    assert len(scheduler.tick(datetime(2025, 6, 3, 2, 0, 1, tzinfo=UTC))) == 1


def test_disabled_workflows_and_full_dispatchers_claim_nothing(
    db: Database, notebook: Path, store_env: Callable[..., Settings]
) -> None:
    wf = add_workflow(db, "paused", notebook, "*/5 * * * *", org="acme", enabled=False)
    _created(db, wf, datetime(2025, 1, 1, tzinfo=UTC))
    now = datetime(2025, 6, 2, 12, tzinfo=UTC)
    assert Scheduler(db, store_env(), RecordingDispatcher()).tick(now) == []
    update_workflow(db, "paused", org="acme", enabled=True)
    assert Scheduler(db, store_env(), RecordingDispatcher(slots=0)).tick(now) == []
    assert len(Scheduler(db, store_env(), RecordingDispatcher()).tick(now)) == 1


def test_scheduled_runs_wait_while_their_organization_has_its_runs_in_flight(
    db: Database, notebook: Path, store_env: Callable[..., Settings]
) -> None:
    """The cap on runs in flight binds the schedule too, per organization: a due run is not
    claimed while its org is full, and is claimed (once) when one of its runs ends."""
    settings = store_env(REVTOPS_WORKFLOW_MAX_ACTIVE_RUNS_PER_ORG="2")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for name in ("a", "b", "c"):
        _created(db, add_workflow(db, name, notebook, "0 * * * *", org="acme"), start)
    _created(db, add_workflow(db, "other", notebook, "0 * * * *", org="globex"), start)
    scheduler = Scheduler(db, settings, RecordingDispatcher())
    now = datetime(2025, 6, 2, 12, 1, tzinfo=UTC)
    first = scheduler.tick(now)
    by_org = sorted(r.organization_id for r in first)
    assert by_org == ["acme", "acme", "globex"]  # acme's third waits; globex is not held up
    assert scheduler.tick(now + timedelta(seconds=30)) == []
    done = next(r for r in first if r.organization_id == "acme")
    runs.start(db, done.id, "w", "/o.ipynb")
    runs.finish(db, done.id, "succeeded")
    resumed = scheduler.tick(now + timedelta(minutes=1))
    assert [r.organization_id for r in resumed] == ["acme"]
    assert resumed[0].scheduled_for == datetime(2025, 6, 2, 12, tzinfo=UTC)
    claimed = {r.workflow_id for r in [*first, *resumed]}
    assert len(claimed) == 4  # every workflow ran once


def test_a_run_whose_worker_stopped_beating_is_retried_then_failed(
    db: Database, notebook: Path, store_env: Callable[..., Settings]
) -> None:
    settings = store_env(REVTOPS_RUN_MAX_ATTEMPTS="2")
    wf = add_workflow(db, "flaky", notebook, "0 9 * * *", org="acme")
    run = runs.claim_manual(db, wf, "cli")
    dispatcher = RecordingDispatcher()
    scheduler = Scheduler(db, settings, dispatcher)

    def lose(run_id: object) -> None:
        with db.begin() as conn:
            conn.execute(
                update(runs_table)
                .where(runs_table.c.id == run_id)
                .values(heartbeat_at=datetime(2000, 1, 1, tzinfo=UTC))
            )

    assert runs.start(db, run.id, "worker-1", "/o.ipynb") is not None
    lose(run.id)
    requeued = scheduler.reap(datetime.now(UTC))
    assert [r.id for r in requeued] == [run.id] and dispatcher.runs[-1].id == run.id
    assert get_run(db, run.id).status == "queued" and get_run(db, run.id).error_name == "WorkerLost"
    retry = runs.start(db, run.id, "worker-2", "/o.ipynb")
    assert retry is not None and retry.attempt == 2
    lose(run.id)
    assert scheduler.reap(datetime.now(UTC)) == []
    final = get_run(db, run.id)
    assert final.status == "failed" and final.error_name == "WorkerLost"
    assert "gave up after 2 attempt(s)" in (final.error or "")


def test_a_late_heartbeat_of_a_live_local_runner_is_not_a_lost_worker(
    db: Database, notebook: Path, store_env: Callable[..., Settings]
) -> None:
    """Requeueing a run whose runner is still alive here would execute the notebook twice."""
    settings = store_env()
    wf = add_workflow(db, "busy", notebook, "0 9 * * *", org="acme")
    run = runs.claim_manual(db, wf, "cli")
    assert runs.start(db, run.id, runs.process_label(), "/o.ipynb") is not None  # alive: us
    with db.begin() as conn:
        conn.execute(
            update(runs_table)
            .where(runs_table.c.id == run.id)
            .values(heartbeat_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    scheduler = Scheduler(db, settings, RecordingDispatcher())
    assert scheduler.reap(datetime.now(UTC)) == []
    assert get_run(db, run.id).status == "running"


def test_workflows_api(db: Database, notebook: Path) -> None:
    wf = add_workflow(
        db,
        "sync",
        notebook,
        "0 2 * * *",
        org="acme",
        timezone="America/New_York",
        parameters={"provider": "hubspot"},
        owner="ann@acme.test",
    )
    assert wf.notebook == str(notebook.resolve()) and wf.enabled
    with pytest.raises(WorkflowError, match="already exists"):
        add_workflow(db, "sync", notebook, "0 2 * * *", org="acme")
    add_workflow(db, "sync", notebook, "0 2 * * *", org="other")  # names are per organization
    with pytest.raises(ScheduleError, match="invalid cron"):
        add_workflow(db, "bad", notebook, "every day", org="acme")
    with pytest.raises(WorkflowError, match="no notebook"):
        add_workflow(db, "bad", notebook.with_name("missing.ipynb"), "0 2 * * *", org="acme")
    changed = update_workflow(
        db, "sync", org="acme", cron="0 3 * * *", parameters={"provider": "all"}
    )
    assert (changed.cron, changed.parameters) == ("0 3 * * *", {"provider": "all"})
    with pytest.raises(WorkflowError, match="cannot update colour"):
        update_workflow(db, "sync", org="acme", colour="blue")
    assert [w.name for w in list_workflows(db, org="acme")] == ["sync"]
    assert len(list_workflows(db)) == 2
    run = runs.claim_manual(db, changed, "cli", {"full_refresh": True})
    assert run.parameters == {"provider": "all", "full_refresh": True}
    runs.start(db, run.id, "w", "/o.ipynb")
    with pytest.raises(WorkflowBusyError):
        remove_workflow(db, "sync", org="acme")
    runs.finish(db, run.id, "succeeded")
    assert remove_workflow(db, "sync", org="acme") == 1
    with pytest.raises(WorkflowError, match="no workflow named 'sync'"):
        get_workflow(db, "sync", org="acme")
