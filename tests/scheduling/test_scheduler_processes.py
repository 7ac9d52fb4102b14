"""Real `revtops scheduler` processes: two at once never run a due run twice (PostgreSQL and
DuckDB), runs happen on schedule with their parameters, and SIGTERM leaves nothing running."""

from __future__ import annotations

import itertools
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from scheduling_helpers import (
    Processes,
    pid_alive,
    store_workflow_row,
    wait_for,
    write_notebook,
)

from revtops_kernel.scheduling import add_workflow, run_history
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database

pytestmark = pytest.mark.slow

ORG = "default"


def _stop(proc: subprocess.Popen[bytes], timeout: float = 90) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


def test_two_schedulers_never_run_the_same_due_run_twice(
    db: Database, store_env: Callable[..., Settings], processes: Processes, tmp_path: Path
) -> None:
    store_env(REVTOPS_SCHEDULER_WORKERS="2")
    executions = tmp_path / "executions.log"
    notebook = write_notebook(
        tmp_path / "tick.ipynb",
        "log_path = ''\nrevtops_run_id = None\nrevtops_scheduled_for = None",
        "import os, time\nstarted = time.time()\ntime.sleep(0.3)\n"
        "with open(log_path, 'a') as log:\n"
        "    log.write(f'{revtops_run_id} {revtops_scheduled_for} {started} {time.time()}\\n')",
    )
    # Due every 2 seconds: several due times pass while a run is in flight. No user may set
    # such a schedule (add_workflow refuses it), so the row is written directly.
    store_workflow_row(
        db, "tick", notebook, "* * * * * */2", org=ORG, parameters={"log_path": str(executions)}
    )
    # A short grace: a run still in flight at the end is stopped and marked interrupted.
    first = processes.revtops("scheduler-a", "scheduler", "--grace", "2")
    second = processes.revtops("scheduler-b", "scheduler", "--grace", "2")

    def succeeded() -> int:
        return sum(r.status == "succeeded" for r in run_history(db, "tick", org=ORG))

    wait_for(lambda: succeeded() >= 2, 150, "two scheduled runs", every=0.5)
    assert _stop(first) == 0, processes.log("scheduler-a")
    assert _stop(second) == 0, processes.log("scheduler-b")

    history = run_history(db, "tick", org=ORG, limit=1000)
    assert not [r for r in history if r.status in ("queued", "running")]
    done = {str(r.id): r for r in history if r.status == "succeeded"}
    lines = [line.split() for line in executions.read_text().splitlines()]
    executed = [line[0] for line in lines]
    assert len(executed) == len(set(executed)), "a run executed twice"
    # Every succeeded run executed; nothing executed that is not a recorded run.
    assert set(done) <= set(executed) <= {str(r.id) for r in history}
    assert len({r.scheduled_for for r in history}) == len(history)
    # One run of the workflow at a time: executions never overlap.
    spans = sorted((float(start), float(end)) for *_ids, start, end in lines)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    # Scheduled on the 2-second grid, and the output notebook holds the injected parameters.
    run = next(iter(done.values()))
    assert run.trigger == "schedule" and run.scheduled_for.second % 2 == 0
    assert run.scheduled_for.microsecond == 0
    executed_nb = nbformat.read(run.output_path or "", as_version=4)
    injected = next(c for c in executed_nb.cells if "injected-parameters" in c.metadata["tags"])
    assert f'log_path = "{executions}"' in injected.source
    assert f'revtops_run_id = "{run.id}"' in injected.source


def test_sigterm_stops_the_scheduler_without_leaving_a_run_running(
    duckdb_store: Database,
    env_for: Callable[..., Settings],
    processes: Processes,
    tmp_path: Path,
) -> None:
    env_for(duckdb_store)
    pid_file = tmp_path / "kernel.pid"
    notebook = write_notebook(
        tmp_path / "long.ipynb",
        f"pid_file = {str(pid_file)!r}",
        "import os, time\nopen(pid_file, 'w').write(str(os.getpid()))\ntime.sleep(600)",
    )
    store_workflow_row(duckdb_store, "long", notebook, "* * * * * */2", org=ORG)
    scheduler = processes.revtops("scheduler", "scheduler", "--grace", "1")
    wait_for(pid_file.exists, 120, "the run's kernel to start", every=0.3)
    kernel = int(pid_file.read_text())
    assert _stop(scheduler) == 0, processes.log("scheduler")
    history = run_history(duckdb_store, "long", org=ORG)
    assert [r.status for r in history] == ["interrupted"]
    assert history[0].error_name == "Interrupted" and history[0].finished_at is not None
    wait_for(lambda: not pid_alive(kernel), 15, "the interrupted run's kernel to exit")


def test_ctrl_c_on_workflows_run_stops_the_run_and_marks_it_interrupted(
    duckdb_store: Database,
    env_for: Callable[..., Settings],
    processes: Processes,
    tmp_path: Path,
) -> None:
    env_for(duckdb_store)
    pid_file = tmp_path / "kernel.pid"
    notebook = write_notebook(
        tmp_path / "long.ipynb",
        f"pid_file = {str(pid_file)!r}",
        "import os, time\nopen(pid_file, 'w').write(str(os.getpid()))\ntime.sleep(600)",
    )
    add_workflow(duckdb_store, "long", notebook, "0 0 1 1 *", org=ORG)
    cli = processes.revtops("run", "workflows", "run", "long")
    wait_for(pid_file.exists, 120, "the run's kernel to start", every=0.3)
    kernel = int(pid_file.read_text())
    cli.send_signal(signal.SIGINT)
    assert cli.wait(timeout=60) != 0
    (run,) = run_history(duckdb_store, "long", org=ORG)
    assert run.status == "interrupted" and run.error_name == "Interrupted"
    wait_for(lambda: not pid_alive(kernel), 15, "the interrupted run's kernel to exit")
