"""Runs without the start-up tax: runner processes and their kernels started ahead of their run.

A cold run pays, after it is claimed, for a Python interpreter, the package's and papermill's
imports, and a notebook kernel's start: seconds, most of an empty run. A long-lived supervisor
(the local scheduler) keeps a *spare*: a runner process (``runner --warm``) that has done its
imports and started a kernel, and waits on its stdin for a run id. Each spare serves exactly one
run, then exits with it; the supervisor starts the next spare in the background.

Organizations never share anything through a spare:

- the spare runner is the trusted runner (it holds the deployment's settings, like a cold one)
  and learns its organization only with the run id;
- its kernel is started with the environment no organization owns (``neutral_environment``:
  this process's without the deployment's secrets); the run's own variables (its
  organization's store URL, ``REVTOPS_ORG``, tokens) are set in the kernel by the runner just
  before the first cell, together with the notebook's working directory;
- the kernel runs that one notebook and is shut down with its runner: it is never reused.

The output notebook is papermill's, as for a cold run: the setup is a silent execution that
records no history and no execution count.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revtops_kernel.scheduling.notebook import KERNEL_ARGUMENTS

log = logging.getLogger(__name__)

RUNNER_MODULE = "revtops_kernel.scheduling.runner"
WARM_FLAG = "--warm"
READY_FLAG = "--ready-fd"
# Seconds a spare gets to shut its kernel down when it is no longer wanted.
SPARE_STOP_SECONDS = 10.0
# Seconds for the run's variables to be set in a pre-started kernel.
SETUP_TIMEOUT = 30.0


def cold_runner(run_id: uuid.UUID, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A runner process started for ``run_id`` now (its own session: killable as a group)."""
    return subprocess.Popen(
        [*_runner_argv(), str(run_id)],
        start_new_session=True,
        env=dict(env),
    )


def _runner_argv() -> list[str]:
    return [sys.executable, "-m", RUNNER_MODULE]


@dataclass
class _Spare:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    ready_fd: int  # read end: the spare writes one byte there once its kernel is up
    ready: bool = False

    def poll_ready(self, timeout: float = 0.0) -> bool:
        if not self.ready and self.ready_fd >= 0:
            readable, _, _ = select.select([self.ready_fd], [], [], timeout)
            if readable:
                self.ready = bool(os.read(self.ready_fd, 1))
                self._close_ready()
        return self.ready

    def _close_ready(self) -> None:
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1

    def hand(self, run_id: uuid.UUID) -> bool:
        """Give the spare its run; False if it is gone (the caller starts a cold runner)."""
        self._close_ready()
        if self.process.poll() is not None or self.process.stdin is None:
            return False
        try:
            self.process.stdin.write(f"{run_id}\n".encode())
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            return False
        return True

    def stop(self) -> None:
        """Let it go: EOF on stdin shuts its kernel down. A spare still starting (it reads
        stdin only once ready) gets SIGTERM, which also shuts its kernel down, then SIGKILL."""
        ready = self.poll_ready()
        self._close_ready()
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        if ready:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=SPARE_STOP_SECONDS)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
            try:
                self.process.wait(timeout=SPARE_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning("spare runner %s did not stop on signal %s", self.process.pid, signum)


@dataclass
class SpareRunners:
    """Spare runner processes of one supervisor, ``size`` at most, for one environment.

    ``launch`` hands a run to a spare started with the same environment (the runner's, which
    is the deployment's: every spare is alike) and starts its replacement in the background;
    without one it starts a cold runner, as before.
    """

    size: int = 1
    _spares: list[_Spare] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _refills: list[threading.Thread] = field(default_factory=list)
    _closed: bool = False

    def launch(self, run_id: uuid.UUID, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        env = dict(env)
        spare = self._take(env)
        self.refill(env)
        if spare is not None and spare.hand(run_id):
            log.info("run %s: handed to spare runner %s", run_id, spare.process.pid)
            return spare.process
        if spare is not None:
            spare.stop()
        return cold_runner(run_id, env)

    def refill(self, env: Mapping[str, str]) -> None:
        """Start spares (in the background) until ``size`` wait with ``env``."""
        thread = threading.Thread(
            target=self._fill, args=(dict(env),), name="revtops-spare-runner", daemon=True
        )
        with self._lock:
            if self._closed:
                return
            self._refills = [t for t in self._refills if t.is_alive()]
            self._refills.append(thread)
        thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Whether ``size`` spares are up (imports done, kernel started) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                refilling = any(t.is_alive() for t in self._refills)
                spares = list(self._spares)
            full = not refilling and len(spares) >= self.size
            if full and all(s.poll_ready(max(0.0, deadline - time.monotonic())) for s in spares):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def pids(self) -> list[int]:
        with self._lock:
            return [s.process.pid for s in self._spares]

    def shutdown(self) -> None:
        """Stop every spare (and its kernel); no new one starts after this."""
        with self._lock:
            self._closed = True
            refills = list(self._refills)
        for thread in refills:
            thread.join()
        with self._lock:
            spares, self._spares = self._spares, []
        for spare in spares:
            spare.stop()

    def _take(self, env: dict[str, str]) -> _Spare | None:
        with self._lock:
            alive = [s for s in self._spares if s.process.poll() is None]
            dead = [s for s in self._spares if s not in alive]
            # A spare of another environment (settings changed) must not run this one's runs.
            stale = [s for s in alive if s.env != env]
            usable = [s for s in alive if s.env == env]
            usable.sort(key=lambda s: not s.poll_ready())  # ready ones first
            chosen = usable.pop(0) if usable else None
            self._spares = usable
        for spare in dead + stale:
            spare.stop()
        return chosen

    def _fill(self, env: dict[str, str]) -> None:
        while True:
            with self._lock:
                if self._closed or len(self._spares) >= self.size:
                    return
                # Started under the lock, so that shutdown never misses one.
                read_end, write_end = os.pipe()
                try:
                    process = subprocess.Popen(
                        [*_runner_argv(), WARM_FLAG, READY_FLAG, str(write_end)],
                        start_new_session=True,
                        env=env,
                        stdin=subprocess.PIPE,
                        pass_fds=(write_end,),
                    )
                except OSError:
                    os.close(read_end)
                    log.exception("could not start a spare runner; runs start cold")
                    return
                finally:
                    os.close(write_end)
                self._spares.append(_Spare(process, env, read_end))


SPARES_VARIABLE = "REVTOPS_SPARE_RUNNERS"
DEFAULT_SPARES = 1


def configured_spares(environ: Mapping[str, str] | None = None) -> int:
    """How many spares a long-lived supervisor keeps: ``REVTOPS_SPARE_RUNNERS`` (default 1;
    0 turns them off, each costs a Python process and a kernel waiting)."""
    from revtops_kernel.errors import SettingsError

    raw = (os.environ if environ is None else environ).get(SPARES_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_SPARES
    if not raw.isdigit():
        raise SettingsError(SPARES_VARIABLE, f"{raw!r} is not a number of spare runners (0, 1…)")
    return int(raw)


_active: SpareRunners | None = None
_active_lock = threading.Lock()


def enable(size: int = 1) -> SpareRunners:
    """Keep ``size`` spare runners for this process's runs (a long-lived supervisor's call);
    they are stopped at exit, or by ``disable``."""
    global _active
    if size < 1:
        raise ValueError(f"spare runners: size must be at least 1, not {size}")
    with _active_lock:
        if _active is None:
            _active = SpareRunners(size)
            atexit.register(disable)
        else:
            _active.size = max(_active.size, size)
        return _active


def disable() -> None:
    global _active
    with _active_lock:
        pool, _active = _active, None
    if pool is not None:
        pool.shutdown()


def launch_runner(run_id: uuid.UUID, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """The process that executes ``run_id``: a spare when enabled, else a cold runner."""
    pool = _active
    if pool is None:
        return cold_runner(run_id, env)
    return pool.launch(run_id, env)


class WarmKernel:
    """The runner side: a notebook kernel started before its run is known.

    Started with the environment no organization owns; ``prepare`` gives it one run's
    environment and working directory. Used for one run, then ``shutdown``.
    """

    def __init__(self, manager: Any, base_env: Mapping[str, str]) -> None:
        self.manager = manager
        self._base = dict(base_env)

    @classmethod
    def start(cls, kernel_name: str, base_env: Mapping[str, str]) -> WarmKernel:
        from jupyter_core.utils import run_sync

        manager = _manager_class()(kernel_name=kernel_name)
        # The arguments nbclient would give a kernel it starts (history in memory only) and
        # the runner's own (undumpable, quiet): the same kernel as a cold run's.
        arguments = ["--HistoryManager.hist_file=:memory:", *KERNEL_ARGUMENTS]
        run_sync(manager.start_kernel)(env=dict(base_env), extra_arguments=arguments)
        return cls(manager, base_env)

    def prepare(self, env: Mapping[str, str], cwd: Path) -> None:
        """Make the kernel's ``os.environ`` the run's ``env`` (the variables the launcher adds,
        ``JPY_*``, stay, as in a cold kernel) and its working directory ``cwd``."""
        from jupyter_core.utils import run_sync

        changed = {k: v for k, v in env.items() if self._base.get(k) != v}
        dropped = sorted(k for k in self._base if k not in env)
        code = (
            "import os as _revtops_os\n"
            f"_revtops_os.environ.update({changed!r})\n"
            f"for _revtops_k in {dropped!r}:\n"
            "    _revtops_os.environ.pop(_revtops_k, None)\n"
            f"_revtops_os.chdir({str(cwd)!r})\n"
            "del _revtops_os\n"
            "_revtops_k = None\n"
            "del _revtops_k\n"
        )
        run_sync(self._execute_silently)(code)

    async def _execute_silently(self, code: str) -> None:
        client = self.manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=SETUP_TIMEOUT)
            msg_id = client.execute(code, silent=True, store_history=False, allow_stdin=False)
            deadline = time.monotonic() + SETUP_TIMEOUT
            while True:
                reply = await client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    break
            content = reply["content"]
            if content.get("status") != "ok":
                raise RuntimeError(
                    f"setting up the pre-started kernel failed: {content.get('ename')}: "
                    f"{content.get('evalue')}"
                )
        finally:
            client.stop_channels()

    def shutdown(self) -> None:
        from jupyter_core.utils import ensure_async, run_sync

        # nbclient leaves the client of a kernel it was given connected; close it here (else
        # its sockets are collected open, with a warning).
        for client in self.manager.clients:
            if client.channels_running:
                client.stop_channels()

        async def stop() -> None:
            if await ensure_async(self.manager.is_alive()):
                await ensure_async(self.manager.shutdown_kernel(now=False))  # cleans up too
            else:
                await ensure_async(self.manager.cleanup_resources())

        try:
            run_sync(stop)()
        except Exception:  # the runner is ending; its kernel exits with it anyway
            log.warning("the pre-started kernel did not shut down cleanly", exc_info=True)


@functools.cache
def _manager_class() -> type:
    """A kernel manager that remembers the clients made for it (jupyter_client is imported
    here: a supervisor that only keeps spares never needs it)."""
    from jupyter_client.manager import AsyncKernelManager

    class WarmKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.clients: list[Any] = []

        def client(self, **kwargs: Any) -> Any:
            made = super().client(**kwargs)
            self.clients.append(made)
            return made

    return WarmKernelManager
