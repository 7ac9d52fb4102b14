"""A private PostgreSQL server for one pytest-xdist worker.

Roles are cluster-wide: every database of a server shares the org roles of
revtops_kernel/store/org_roles.py (``revtops_org_<hash of the org id>``), so two workers testing
organization ``acme`` at once would create, re-password, grant and drop the same role from two
databases. Each worker therefore gets a server of its own (same binaries as the system one,
trust on loopback, fsync off: a test server loses nothing worth keeping), started from an
initdb template made once per machine and PostgreSQL version, and stopped with the worker
(the postmaster gets SIGQUIT if the worker dies first).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

SUPERUSER = "postgres"
PR_SET_PDEATHSIG = 1
STALE_AFTER = 600  # seconds: a data directory this old with no live server is left over
OWNER = "revtops-test-worker.pid"  # the pid of the worker a data directory belongs to


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian's layout, then PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: then run it as the ``postgres`` system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError as exc:
        raise RuntimeError(
            "running as root and there is no 'postgres' user to run a test server as"
        ) from exc
    return SUPERUSER


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _template(bindir: Path, user: str | None) -> Path:
    """An initdb'd data directory to copy, made once (under a lock) per version and user."""
    version = bindir.parent.name
    root = Path(tempfile.gettempdir())
    template = root / f"revtops-pg-template-{version}-{os.geteuid()}"
    if (template / "PG_VERSION").exists():
        return template
    with (root / f"{template.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (template / "PG_VERSION").exists():
            return template
        building = Path(tempfile.mkdtemp(prefix=f"{template.name}-building-", dir=root))
        _chown(building, user)
        subprocess.run(
            [
                str(bindir / "initdb"),
                f"--pgdata={building}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user,
            timeout=300,
        )
        building.rename(template)  # atomic: a half-made template is never seen as done
    return template


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    # Immediate shutdown of the postmaster if the worker that started it dies.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)


def _remove_stale(root: Path) -> None:
    """Data directories left by workers killed before they could remove them: no live
    worker (OWNER), no live postmaster, and older than any server still starting (another
    run's may be)."""
    for data in root.glob("revtops-pg-gw*-*"):
        try:
            if _alive(int((data / OWNER).read_text())):
                continue
        except (OSError, ValueError):
            pass  # no owner recorded (an older run's directory): age and postmaster decide
        try:
            if time.time() - data.stat().st_mtime < STALE_AFTER:
                continue
            pid = int((data / "postmaster.pid").read_text().split()[0])
        except FileNotFoundError:
            pid = None  # a clean stop removes postmaster.pid
        except (OSError, ValueError, IndexError):
            continue
        if pid is None or not _alive(pid):
            shutil.rmtree(data, ignore_errors=True)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@contextlib.contextmanager
def private_postgres(bindir: Path, name: str) -> Iterator[str]:
    """Start a server on a free loopback port; yield its admin URL; stop and remove it."""
    user = _run_as()
    template = _template(bindir, user)
    _remove_stale(Path(tempfile.gettempdir()))
    data = Path(tempfile.mkdtemp(prefix=f"revtops-pg-{name}-"))
    # Before the copy: copytree gives the directory the template's (old) mtime, and until the
    # postmaster writes its pid another worker's _remove_stale took it for a leftover.
    (data / OWNER).write_text(str(os.getpid()))
    shutil.copytree(template, data, dirs_exist_ok=True, symlinks=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in [data, *data.rglob("*")]:
            os.lchown(path, entry.pw_uid, entry.pw_gid)
    data.chmod(0o700)
    port = _free_port()
    log = data / "server.log"
    settings = {
        "port": str(port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(data),
        "fsync": "off",
        # synchronous_commit stays on (cheap with fsync off): after an asynchronous commit,
        # hint bits wait for the WAL writer, and a VACUUM right after the commit cannot mark
        # the pages all-visible (the sync's closing VACUUM test failed under xdist's load).
        "full_page_writes": "off",
        "max_connections": "200",
        "shared_buffers": "64MB",
        "timezone": "Etc/UTC",
        "log_min_messages": "warning",
    }
    command = [str(bindir / "postgres"), "-D", str(data)]
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            user=user,
            preexec_fn=_die_with_parent,
        )
    url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the private PostgreSQL server did not start:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(data, ignore_errors=True)
