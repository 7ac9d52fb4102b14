"""Runs executed by papermill in a child process: output kept, failures and timeouts recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from scheduling_helpers import pid_alive, wait_for, write_notebook

from revtops_kernel.scheduling import add_workflow, run_history, run_now
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database

pytestmark = pytest.mark.slow


def test_a_run_keeps_its_output_notebook_with_the_parameters_injected(
    duckdb_store: Database, env_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = env_for(duckdb_store)
    notebook = write_notebook(
        tmp_path / "greet.ipynb",
        'greeting = "hello"\ncount = 1\nrevtops_run_id = None',
        "message = f'{greeting} x{count} from run {revtops_run_id}'\nprint(message)",
    )
    add_workflow(
        duckdb_store,
        "greet",
        notebook,
        "0 9 * * *",
        org="acme",
        parameters={"greeting": "bonjour", "count": 2},
    )
    run = run_now(duckdb_store, settings, "greet", org="acme", parameters={"count": 3})
    assert run.status == "succeeded", run.error
    assert run.attempt == 1 and run.duration_seconds is not None and run.duration_seconds > 0
    assert run.output_path == str(tmp_path / "runs" / "greet" / f"{run.id}.ipynb")
    executed = nbformat.read(run.output_path, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert 'greeting = "bonjour"' in injected[0].source and "count = 3" in injected[0].source
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert f"bonjour x3 from run {run.id}" in printed
    assert [r.id for r in run_history(duckdb_store, "greet", org="acme")] == [run.id]


def test_a_failing_notebook_marks_the_run_failed_with_the_cell_and_exception(
    duckdb_store: Database, env_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = env_for(duckdb_store)
    notebook = write_notebook(
        tmp_path / "broken.ipynb",
        "divisor = 0",
        "numerator = 10",
        "# the quotient\nratio = numerator / divisor",
        "print('never reached')",
    )
    add_workflow(duckdb_store, "broken", notebook, "0 9 * * *", org="acme")
    run = run_now(duckdb_store, settings, "broken", org="acme")
    assert run.status == "failed"
    assert run.error_cell == 2  # 0 is the parameters cell
    assert run.error_name == "ZeroDivisionError"
    assert run.error is not None
    assert "ZeroDivisionError: division by zero (in cell 2)" in run.error
    assert "ratio = numerator / divisor" in run.error  # the failing cell's source
    assert run.output_path and Path(run.output_path).exists()  # kept for reading the traceback


def test_a_run_past_its_timeout_is_stopped_and_its_kernel_killed(
    duckdb_store: Database, env_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = env_for(duckdb_store)
    pid_file = tmp_path / "kernel.pid"
    notebook = write_notebook(
        tmp_path / "slow.ipynb",
        f"pid_file = {str(pid_file)!r}",
        "import os, time\nopen(pid_file, 'w').write(str(os.getpid()))\ntime.sleep(300)",
    )
    add_workflow(duckdb_store, "slow", notebook, "0 9 * * *", org="acme", timeout_seconds=30)
    started = time.monotonic()
    run = run_now(duckdb_store, settings, "slow", org="acme")
    assert time.monotonic() - started < 120
    assert run.status == "timed_out" and run.error_name == "TimedOut"
    assert "30 s limit" in (run.error or "")
    kernel_pid = int(pid_file.read_text())  # the cell was running when the limit struck
    wait_for(lambda: not pid_alive(kernel_pid), 15, "the notebook's kernel to exit")
