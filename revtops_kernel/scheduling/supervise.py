"""Run one workflow run in a child process, with a time limit and a way to stop it.

Papermill runs in the child (``scheduling.runner``), never in the scheduler or the Celery
worker itself: a notebook that hangs, leaks memory or crashes its kernel takes only its own
process down, and a timeout can kill it outright.

The runner gets the deployment's settings (it records the run as the store's admin and fetches
the organization's tokens); the notebook's kernel gets only its organization's
(``scheduling.run_environment``). The supervising process makes itself non-dumpable, so the
kernel (same OS user) cannot read its secrets through ``/proc``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import uuid

from pydantic import SecretStr

from revtops_kernel.scheduling import runs
from revtops_kernel.scheduling.run_environment import make_undumpable
from revtops_kernel.scheduling.runner import EXIT_TAKEN_AWAY
from revtops_kernel.scheduling.warm import launch_runner
from revtops_kernel.scheduling.workflows import get_run, get_workflow_by_id
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database

log = logging.getLogger(__name__)

# Seconds between SIGTERM (papermill shuts its kernel down) and SIGKILL.
KILL_GRACE_SECONDS = 5.0


def run_timeout(db: Database, settings: Settings, run_id: uuid.UUID) -> float:
    workflow = get_workflow_by_id(db, get_run(db, run_id).workflow_id)
    return workflow.timeout_seconds or settings.run_timeout


def child_environment(settings: Settings, db: Database) -> dict[str, str]:
    """This process's environment with ``settings`` written back into it, store URL included.

    The runner and the notebook's kernel (which inherits the runner's environment) read their
    settings from the environment, so they see exactly what the supervisor was given, even
    when that came from overrides rather than from the environment.
    """
    env = dict(os.environ)
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None or not isinstance(field.validation_alias, str):
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[field.validation_alias] = str(value)
    env["REVTOPS_DATABASE_URL"] = db.url.render_as_string(hide_password=False)
    env["REVTOPS_DB_LOCK_TIMEOUT"] = str(db.lock_timeout)
    return env


def supervise(
    db: Database,
    settings: Settings,
    run_id: uuid.UUID,
    *,
    abort: threading.Event | None = None,
) -> str:
    """Execute the run in a child process and return its final status.

    ``abort`` set (a scheduler shutting down) stops the run and marks it ``interrupted``;
    running past the workflow's timeout marks it ``timed_out``.
    """
    make_undumpable()  # this process holds the deployment's secrets; the notebook must not
    timeout = run_timeout(db, settings, run_id)
    # A spare runner started ahead when this process keeps some (``warm.enable``), else a new one.
    child = launch_runner(run_id, child_environment(settings, db))
    deadline = time.monotonic() + timeout
    try:
        code = _wait(child, deadline, abort)
    except BaseException:
        # Ctrl-C on `revtops workflows run`, or the supervisor itself failing: stop the run
        # rather than leave it to finish unsupervised (or be retried by a reaper).
        _stop(db, run_id, child, "interrupted", "Interrupted", "its supervisor was stopped")
        raise
    if code == _TIMED_OUT:
        limit = f"the run took longer than its {timeout:g} s limit; it was stopped"
        _stop(db, run_id, child, "timed_out", "TimedOut", limit)
    elif code == _ABORTED:
        reason = "the scheduler shut down while the run was in progress; it was stopped"
        _stop(db, run_id, child, "interrupted", "Interrupted", reason)
    elif code not in (0, EXIT_TAKEN_AWAY):
        # The child died before recording an end (killed, out of memory, crashed on start).
        runs.finish(
            db,
            run_id,
            "failed",
            error=f"the process running it exited with code {code} before recording a result",
            error_name="RunnerExited",
            from_statuses=(runs.RUNNING, runs.QUEUED),
        )
    return get_run(db, run_id).status


# Pseudo exit codes of _wait (real ones are >= -64 on POSIX).
_TIMED_OUT = -1000
_ABORTED = -1001


def _wait(child: subprocess.Popen[bytes], deadline: float, abort: threading.Event | None) -> int:
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            return _TIMED_OUT
        if abort is not None and abort.is_set():
            return _ABORTED


def _stop(
    db: Database,
    run_id: uuid.UUID,
    child: subprocess.Popen[bytes],
    status: str,
    error_name: str,
    error: str,
) -> None:
    """Record why the run ends, then kill it: the record first, so that the child's own last
    write (conditional on ``running``) cannot overwrite it."""
    runs.finish(
        db,
        run_id,
        status,
        error=error,
        error_name=error_name,
        from_statuses=(runs.RUNNING, runs.QUEUED),
    )
    _kill(child)


def _kill(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after a grace period."""
    for signum, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            log.warning("run process %s did not stop on signal %s", child.pid, signum)
