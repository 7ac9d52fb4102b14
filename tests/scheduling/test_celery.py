"""Celery on the real Redis with real `revtops worker` processes: runs execute on the worker,
and a worker killed with SIGKILL mid-run leaves the run retried, not stuck."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from scheduling_helpers import (
    Processes,
    pid_alive,
    store_workflow_row,
    wait_for,
    write_notebook,
)

from revtops_kernel.scheduling import add_workflow, get_run, run_now
from revtops_kernel.scheduling.celery_app import CeleryDispatcher
from revtops_kernel.scheduling.scheduler import Scheduler
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ORG = "default"


def _start_worker(processes: Processes, name: str) -> int:
    worker = processes.revtops(name, "worker", "--concurrency", "1", "--hostname", f"{name}@test")
    wait_for(lambda: "ready." in processes.log(name), 90, f"{name} to be ready", every=0.3)
    return worker.pid


def test_scheduled_runs_execute_on_a_celery_worker(
    pg_store: Database,
    env_for: Callable[..., Settings],
    redis_broker: dict[str, str],
    processes: Processes,
    tmp_path: Path,
) -> None:
    settings = env_for(pg_store, **redis_broker)
    marker = tmp_path / "ran-in.txt"
    notebook = write_notebook(
        tmp_path / "where.ipynb",
        "marker = ''",
        "import os\nopen(marker, 'w').write(str(os.getppid()))",  # the kernel's parent: runner
    )
    # Due every 2 seconds, which add_workflow refuses: the row is written directly.
    store_workflow_row(
        pg_store, "where", notebook, "* * * * * */2", org=ORG, parameters={"marker": str(marker)}
    )
    _start_worker(processes, "worker")
    dispatcher = CeleryDispatcher(settings)
    scheduler = Scheduler(pg_store, settings, dispatcher)
    claimed = wait_for(scheduler.tick, 10, "a due run to be claimed")
    assert isinstance(claimed, list) and len(claimed) == 1
    run_id = claimed[0].id
    wait_for(
        lambda: get_run(pg_store, run_id).status not in ("queued", "running"),
        120,
        "the worker to finish the run",
        every=0.5,
    )
    dispatcher.shutdown(0)
    run = get_run(pg_store, run_id)
    assert run.status == "succeeded", run.error
    assert run.worker is not None and run.worker.endswith(f":{marker.read_text()}")
    log = processes.log("worker")
    assert "revtops.run_workflow[" in log and str(run_id) in log
    assert run.worker.split(":")[1] != str(os.getpid())


def test_a_worker_killed_mid_run_leaves_the_run_retried_not_stuck(
    pg_store: Database,
    env_for: Callable[..., Settings],
    redis_broker: dict[str, str],
    processes: Processes,
    tmp_path: Path,
) -> None:
    settings = env_for(pg_store, REVTOPS_RUN_MAX_ATTEMPTS="2", **redis_broker)
    pids = tmp_path / "kernel-pids.txt"
    notebook = write_notebook(
        tmp_path / "slowish.ipynb",
        "pid_log = ''",
        "import os, time\nopen(pid_log, 'a').write(f'{os.getpid()}\\n')\ntime.sleep(4)",
    )
    add_workflow(
        pg_store, "slowish", notebook, "0 0 1 1 *", org=ORG, parameters={"pid_log": str(pids)}
    )
    first_worker = _start_worker(processes, "worker-1")
    run = run_now(pg_store, settings, "slowish", org=ORG, enqueue=True)
    wait_for(pids.exists, 120, "the run's kernel to start on worker-1", every=0.3)
    first_kernel = int(pids.read_text().split()[0])
    os.killpg(first_worker, signal.SIGKILL)  # the worker and its pool, mid-run
    assert get_run(pg_store, run.id).status == "running"
    wait_for(lambda: not pid_alive(first_kernel), 20, "the lost run's kernel to exit")

    _start_worker(processes, "worker-2")
    scheduler = Scheduler(pg_store, settings, CeleryDispatcher(settings))

    def retried() -> bool:
        scheduler.tick()  # the reaper requeues the silent run and enqueues it again
        return get_run(pg_store, run.id).status in ("succeeded", "failed")

    wait_for(retried, 150, "the lost run to be retried on worker-2", every=1.0)
    final = get_run(pg_store, run.id)
    assert final.status == "succeeded", final.error
    assert final.attempt == 2
    assert len(pids.read_text().split()) == 2  # executed twice: once lost, once to the end
