"""The process that executes one run: ``python -m revtops_kernel.scheduling.runner RUN_ID``.

A supervisor (the local scheduler's pool, a Celery task, ``revtops workflows run``) starts it in
its own session, so that on a timeout the whole process group can be killed. It:

1. moves the run ``queued → running`` (if that fails, someone else has it: exit 0);
2. beats (``heartbeat_at``) every ``REVTOPS_RUN_HEARTBEAT_INTERVAL`` seconds from a thread,
   and exits at once if its supervisor disappears or the run was taken away from it (a reaper
   requeued it), so a lost run is never executed twice side by side;
3. runs the notebook with papermill into ``REVTOPS_RUNS_DIR/<workflow>/<run id>.ipynb``;
4. records ``succeeded`` or ``failed`` with the failing cell and exception.

The notebook's kernel is papermill's child and exits by itself when this process dies
(ipykernel polls its parent), so killing this process group leaves no kernel behind.

``python -m revtops_kernel.scheduling.runner --warm [--ready-fd FD]`` is a spare runner
(``scheduling.warm``): it does its imports and starts a kernel with the environment no
organization owns, writes a byte to FD, then reads its one run id from stdin (EOF: it stops).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType

from revtops_kernel.errors import CredentialsError, DatabaseLockedError, RevtopsError
from revtops_kernel.scheduling import runs
from revtops_kernel.scheduling.notebook import execute_notebook
from revtops_kernel.scheduling.parameters import check_parameters, declared_parameters
from revtops_kernel.scheduling.run_environment import (
    RunEnvironment,
    make_undumpable,
    neutral_environment,
    run_environment,
)
from revtops_kernel.scheduling.warm import READY_FLAG, WARM_FLAG, WarmKernel
from revtops_kernel.scheduling.workflows import RunInfo, get_run, get_workflow_by_id
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.timeutil import iso_z

log = logging.getLogger(__name__)

# Exit codes a supervisor can read.
EXIT_OK = 0
EXIT_LOST_PARENT = 3
EXIT_TAKEN_AWAY = 4


def output_path(settings: Settings, workflow_name: str, run_id: uuid.UUID) -> Path:
    """Where a run's executed notebook is kept."""
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", workflow_name).strip("._") or "workflow"
    return settings.runs_dir / folder / f"{run_id}.ipynb"


def injected_parameters(run: RunInfo, notebook: Path) -> dict[str, object]:
    """The run's parameters, plus its identity for notebooks that declare
    ``revtops_run_id`` / ``revtops_scheduled_for`` in their parameters cell.

    The stored parameters are checked again here, just before papermill writes them into the
    notebook (a row written by an older version, or by hand, never was):
    ``WorkflowParameterError`` fails the run instead of executing it.
    """
    declared = declared_parameters(notebook)  # papermill's own inspection of the cell
    params: dict[str, object] = dict(
        check_parameters(run.parameters or {}, notebook, declared=declared)
    )
    if "revtops_run_id" in declared:
        params["revtops_run_id"] = str(run.id)
    if "revtops_scheduled_for" in declared:
        params["revtops_scheduled_for"] = iso_z(run.scheduled_for)
    return params


def execute_run(
    db: Database, settings: Settings, run_id: uuid.UUID, *, kernel: WarmKernel | None = None
) -> int:
    """Execute one queued run in this process; returns the exit code (see the module doc).

    ``kernel``: one started ahead for this run (a spare runner's), given the run's environment
    before the first cell; the caller shuts it down.
    """
    queued = get_run(db, run_id)
    workflow = get_workflow_by_id(db, queued.workflow_id)
    output = output_path(settings, workflow.name, run_id)
    run = runs.start(db, run_id, runs.process_label(), str(output))
    if run is None:
        log.info("run %s is not queued any more (started elsewhere or finished); skipped", run_id)
        return EXIT_OK
    heart = _Heart(db, run_id, settings.run_heartbeat_interval)
    heart.start()
    try:
        environment = _kernel_environment(db, settings, run)
        notebook = Path(workflow.notebook)
        parameters = injected_parameters(run, notebook)
        if kernel is not None and not _prepare(kernel, environment, notebook.parent):
            kernel = None  # it could not take the run: start one as a cold run does
        failure = execute_notebook(
            notebook,
            output,
            parameters,
            kernel_name=settings.notebook_kernel,
            env=environment.variables,
            kernel_manager=kernel.manager if kernel is not None else None,
        )
    except Exception as exc:  # the run must end recorded, whatever broke
        log.exception("run %s of %s crashed", run_id, workflow.name)
        heart.stop()
        runs.finish(
            db,
            run_id,
            "failed",
            error=f"{type(exc).__name__}: {exc}",
            error_name=type(exc).__name__,
        )
        return EXIT_OK
    heart.stop()
    if failure is None:
        runs.finish(db, run_id, "succeeded")
    else:
        runs.finish(
            db,
            run_id,
            "failed",
            error=failure.describe(),
            error_cell=failure.cell_index,
            error_name=failure.exception,
        )
    return EXIT_OK


def _prepare(kernel: WarmKernel, environment: RunEnvironment, cwd: Path) -> bool:
    try:
        kernel.prepare(environment.variables, cwd)
    except Exception:
        log.warning("the pre-started kernel could not be set up; starting one", exc_info=True)
        kernel.shutdown()
        return False
    return True


def _kernel_environment(db: Database, settings: Settings, run: RunInfo) -> RunEnvironment:
    """The notebook's environment: its organization's store access and tokens, no secret of
    the deployment (``scheduling.run_environment``); what was left out goes to the log."""
    environment = run_environment(db, settings, run.organization_id)
    log.info(
        "run %s of %s: kernel gets %s store access, tokens for %s; left out: %s",
        run.id,
        run.organization_id,
        "organization-scoped" if environment.scoped_store else "full (DuckDB)",
        ", ".join(environment.providers) or "no provider",
        ", ".join(environment.removed) or "nothing",
    )
    if environment.unavailable:
        # A notebook would otherwise skip the provider without a word (it sees no token).
        reasons = "; ".join(f"{p}: {why}" for p, why in sorted(environment.unavailable.items()))
        raise CredentialsError(
            "nango",
            f"connections of {run.organization_id}",
            None,
            "the run did not start: no token from Nango for the organization's connected "
            f"{', '.join(sorted(environment.unavailable))} ({reasons}); reconnect the "
            "integration or check Nango, then run it again",
        )
    return environment


class _Heart(threading.Thread):
    """Beats for the run, and ends this process if it should not go on."""

    def __init__(self, db: Database, run_id: uuid.UUID, interval: float) -> None:
        super().__init__(name=f"revtops-heartbeat-{run_id}", daemon=True)
        self._db, self._run_id, self._interval = db, run_id, interval
        self._parent = os.getppid()
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            if os.getppid() != self._parent:
                log.error("run %s: its supervisor is gone; stopping", self._run_id)
                os._exit(EXIT_LOST_PARENT)
            try:
                alive = runs.beat(self._db, self._run_id)
            except (DatabaseLockedError, RevtopsError) as exc:
                log.warning("run %s: heartbeat not recorded (%s)", self._run_id, exc)
                continue
            if not alive and not self._stopped.is_set():
                log.error("run %s was taken away from this process; stopping", self._run_id)
                os._exit(EXIT_TAKEN_AWAY)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds papermill, whose cleanup shuts the kernel down.
    raise SystemExit(128 + signum)


def _skip_slow_optional_imports() -> None:
    """Keep jsonschema from loading ``rfc3987_syntax``, which it imports only if installed.

    That package compiles a Lark grammar when imported (1.5 s of CPU here, more than half of
    papermill's import, paid by every run's fresh process) and serves only jsonschema's ``iri``
    format checks, which notebook validation does not use. ``None`` in ``sys.modules`` makes
    the import fail, and jsonschema then leaves that one format unchecked.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


USAGE = "usage: python -m revtops_kernel.scheduling.runner RUN_ID | --warm [--ready-fd FD]"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    warm = bool(args) and args[0] == WARM_FLAG
    ready_fd: int | None = None
    if warm and len(args) == 3 and args[1] == READY_FLAG and args[2].isdigit():
        ready_fd = int(args[2])
    elif (warm and len(args) != 1) or (not warm and len(args) != 1):
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # papermill's INFO lines repeat the notebook paths this run already records; keep its
    # warnings and errors.
    logging.getLogger("papermill").setLevel(logging.WARNING)
    _skip_slow_optional_imports()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    make_undumpable()  # the notebook's kernel, our child, must not read our secrets in /proc
    settings = load_settings()
    if warm:
        return _serve_one_run(settings, ready_fd)
    db = Database.from_settings(settings)
    try:
        return execute_run(db, settings, uuid.UUID(args[0]))
    finally:
        db.dispose()


def _serve_one_run(settings: Settings, ready_fd: int | None) -> int:
    """A spare: get ready (imports, kernel), then execute the run whose id comes on stdin."""
    import papermill  # noqa: F401  (loaded now: a cold run pays for it after its claim)

    kernel: WarmKernel | None
    try:
        kernel = WarmKernel.start(settings.notebook_kernel, neutral_environment(settings)[0])
    except Exception:  # the run can still start its own kernel
        log.warning("spare runner: no kernel started ahead", exc_info=True)
        kernel = None
    try:
        if ready_fd is not None:
            try:
                with os.fdopen(ready_fd, "wb") as ready:
                    ready.write(b"r")
            except BrokenPipeError:
                return EXIT_OK  # the supervisor let this spare go before it was ready
        line = sys.stdin.readline().strip()
        if not line:
            return EXIT_OK  # not needed any more
        try:
            run_id = uuid.UUID(line)
        except ValueError:
            print(f"spare runner: {line!r} is not a run id", file=sys.stderr)
            return 2
        db = Database.from_settings(settings)
        try:
            return execute_run(db, settings, run_id, kernel=kernel)
        finally:
            db.dispose()
    finally:
        if kernel is not None:
            kernel.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
