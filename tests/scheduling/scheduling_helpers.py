"""Helpers for scheduling tests: notebooks written on the fly, child processes, waiting."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from helpers import default_sigint
from nbformat.v4 import new_code_cell, new_notebook
from sqlalchemy import insert

from revtops_kernel.scheduling.workflows import workflows_table
from revtops_kernel.store import Database
from revtops_kernel.timeutil import utcnow

REPO = Path(__file__).resolve().parents[2]


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with a ``parameters`` cell and code cells, for the venv's python3 kernel."""
    nb = new_notebook(
        cells=[
            new_code_cell(parameters, metadata={"tags": ["parameters"]}),
            *(new_code_cell(source) for source in cells),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def store_workflow_row(
    db: Database,
    name: str,
    notebook: Path,
    cron: str,
    *,
    org: str,
    parameters: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Insert a workflow row as it is, bypassing ``add_workflow``'s checks.

    For schedules no user may set (``* * * * * */2``, every 2 seconds, which process tests need
    to see several due times pass), and for rows an older version or a person wrote by hand.
    """
    now = utcnow()
    workflow_id = uuid.uuid4()
    with db.begin() as conn:
        conn.execute(
            insert(workflows_table).values(
                id=workflow_id,
                organization_id=org,
                name=name,
                notebook=str(notebook.resolve()),
                parameters=dict(parameters or {}),
                cron=cron,
                timezone="UTC",
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
    return workflow_id


class Processes:
    """Child processes of a test, each in its own process group; all killed at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def revtops(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "revtops_kernel.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            preexec_fn=default_sigint,  # the Ctrl-C tests send it SIGINT
        )
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, every: float = 0.2
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(") ", 1)[1][0] != "Z"
