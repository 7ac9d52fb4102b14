"""A team deployment's processes as the store and the broker see them.

- ``ServiceHeart``: a scheduler or worker process writes its row of ``service_heartbeats``
  (host:pid, kind, version, started, last seen) every ``REVTOPS_RUN_HEARTBEAT_INTERVAL``
  seconds from a daemon thread, and marks it stopped on a clean exit. A process that crashed
  or hangs stops beating: ``revtops status`` shows it stale.
- ``queue_depth``: the Celery queue on Redis, read with plain LLEN/HLEN (importing Celery for a
  status line would cost a second).
- ``readiness``: the checks behind ``/revtops/api/health/ready``: the database (SELECT 1) and,
  when a broker is configured, Redis (PING), each with its latency, under a short timeout.
- ``deployment_status``: everything ``revtops status`` prints.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, delete, insert, or_, select, text, update

from revtops_kernel import __version__
from revtops_kernel.known_orgs import known_organizations
from revtops_kernel.run_status import SyncRunStatus, WorkflowRunStatus
from revtops_kernel.scheduling import runs
from revtops_kernel.settings import Settings
from revtops_kernel.status import ProviderStatus, provider_statuses
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import to_utc, utcnow

log = logging.getLogger(__name__)

heartbeats_table = metadata.tables["service_heartbeats"]
workflow_runs_table = metadata.tables["workflow_runs"]
workflows_table = metadata.tables["workflows"]
sync_runs_table = metadata.tables["sync_runs"]

SERVICE_KINDS = ("scheduler", "worker")
# A service is shown stale after this many heartbeat intervals without one (as runs are).
STALE_HEARTBEATS = 4
# Rows of processes not seen for this long are deleted when another process starts.
FORGET_AFTER = timedelta(days=1)
# Kombu's Redis transport keeps one list per priority step; 0 is the queue's own name.
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_PRIORITY_SEP = "\x06\x16"
FAILED_WORKFLOW_STATUSES = (
    WorkflowRunStatus.FAILED,
    WorkflowRunStatus.TIMED_OUT,
    WorkflowRunStatus.INTERRUPTED,
)
FAILED_SYNC_STATUSES = (SyncRunStatus.FAILED, SyncRunStatus.INTERRUPTED)


# -- heartbeats --------------------------------------------------------------------------------


class ServiceHeart(threading.Thread):
    """Records that this process is up: a row at ``start``, a beat every ``interval`` seconds,
    ``stopped_at`` at ``stop``. A failed write is logged and retried at the next beat; it never
    takes the service down."""

    def __init__(
        self, settings: Settings, kind: str, *, detail: str | None = None, interval: float = 0
    ) -> None:
        if kind not in SERVICE_KINDS:
            raise ValueError(f"service kind must be one of {SERVICE_KINDS}, not {kind!r}")
        self.instance = runs.process_label()
        super().__init__(name=f"revtops-service-heartbeat-{kind}", daemon=True)
        # Its own store handle, disposed after each beat: no pooled connection is shared with
        # the service's own work or inherited by a forked Celery pool process.
        self._db = Database.from_settings(settings)
        self._kind, self._detail = kind, detail
        self._interval = interval or settings.run_heartbeat_interval
        self._stopped = threading.Event()

    def start(self) -> None:
        self._write(self._register)
        super().start()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._write(self._beat)

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=self._interval + 5)
        self._write(self._mark_stopped)

    def _write(self, step: Any) -> None:
        try:
            with self._db.begin() as conn:
                step(conn)
        except Exception as exc:  # the store may be briefly away; the service goes on
            log.warning("service heartbeat of %s not recorded: %s", self.instance, exc)
        finally:
            self._db.dispose()

    def _register(self, conn: Any) -> None:
        now = utcnow()
        conn.execute(
            delete(heartbeats_table).where(
                or_(
                    heartbeats_table.c.instance == self.instance,  # a reused host:pid
                    heartbeats_table.c.last_seen_at < now - FORGET_AFTER,
                )
            )
        )
        conn.execute(
            insert(heartbeats_table).values(
                instance=self.instance,
                kind=self._kind,
                version=__version__,
                started_at=now,
                last_seen_at=now,
                stopped_at=None,
                detail=self._detail,
            )
        )

    def _beat(self, conn: Any) -> None:
        done = conn.execute(
            update(heartbeats_table)
            .where(heartbeats_table.c.instance == self.instance)
            .values(last_seen_at=utcnow(), stopped_at=None)
        )
        if done.rowcount == 0:  # the first write failed, or someone pruned the row
            self._register(conn)

    def _mark_stopped(self, conn: Any) -> None:
        now = utcnow()
        conn.execute(
            update(heartbeats_table)
            .where(heartbeats_table.c.instance == self.instance)
            .values(last_seen_at=now, stopped_at=now)
        )


@dataclass(frozen=True)
class ServiceInstance:
    instance: str
    kind: str
    version: str
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    detail: str | None
    state: str  # up, stale (no heartbeat for a while: crashed or hung) or stopped
    seconds_since_seen: float


def service_instances(
    db: Database, settings: Settings, *, now: datetime | None = None
) -> list[ServiceInstance]:
    """Every recorded scheduler and worker, by kind then start time."""
    now = now or utcnow()
    stale_after = STALE_HEARTBEATS * settings.run_heartbeat_interval
    with db.connect() as conn:
        rows = conn.execute(
            select(heartbeats_table).order_by(
                heartbeats_table.c.kind, heartbeats_table.c.started_at
            )
        ).all()
    found = []
    for row in rows:
        since = (now - to_utc(row.last_seen_at)).total_seconds()
        if row.stopped_at is not None:
            state = "stopped"
        elif since > stale_after:
            state = "stale"
        else:
            state = "up"
        found.append(
            ServiceInstance(
                row.instance,
                row.kind,
                row.version,
                to_utc(row.started_at),
                to_utc(row.last_seen_at),
                to_utc(row.stopped_at) if row.stopped_at is not None else None,
                row.detail,
                state,
                round(since, 1),
            )
        )
    return found


# -- the broker --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    waiting: int | None  # messages no worker took yet
    unacked: int | None  # taken by a worker, not acknowledged (runs in progress, acks_late)
    error: str | None = None


def _redis_client(url: str, timeout: float) -> Any:
    import redis  # Celery's Redis transport depends on it

    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"REVTOPS_BROKER_URL must be a redis:// URL, not {scheme}://")
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def queue_depth(settings: Settings, *, timeout: float = 2.0) -> QueueDepth | None:
    """The Celery queue's length on Redis; None without a broker (runs are local)."""
    if not settings.broker_url:
        return None
    queue = settings.celery_queue
    prefix = f"{queue}:"  # celery_app sets global_keyprefix to the queue name
    try:
        client = _redis_client(settings.broker_url, timeout)
        try:
            with client.pipeline() as pipe:
                for step in KOMBU_PRIORITY_STEPS:
                    suffix = f"{KOMBU_PRIORITY_SEP}{step}" if step else ""
                    pipe.llen(f"{prefix}{queue}{suffix}")
                pipe.hlen(f"{prefix}unacked")
                *lengths, unacked = pipe.execute()
        finally:
            client.close()
    except Exception as exc:
        return QueueDepth(queue, None, None, _redacted(exc, settings.broker_url))
    return QueueDepth(queue, int(sum(lengths)), int(unacked))


# -- readiness ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None


_CHECKS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="revtops-ready")


def check_database(db: Database) -> Check:
    started = time.perf_counter()
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
    except Exception as exc:
        return Check("database", False, _ms(started), _redacted(exc, db.url.password))
    return Check("database", True, _ms(started))


def check_broker(url: str, timeout: float) -> Check:
    started = time.perf_counter()
    try:
        client = _redis_client(url, timeout)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return Check("redis", False, _ms(started), _redacted(exc, url))
    return Check("redis", True, _ms(started))


def readiness(db: Database, settings: Settings, *, timeout: float = 2.0) -> list[Check]:
    """The database and (with ``REVTOPS_BROKER_URL``) Redis, checked at once; a check that
    does not answer within ``timeout`` seconds fails as timed out."""
    broker = settings.broker_url
    if broker:
        import redis  # noqa: F401  (imported before the clock starts: the first import is slow)
    pending = {"database": _CHECKS.submit(check_database, db)}
    if broker:
        pending["redis"] = _CHECKS.submit(check_broker, broker, timeout)
    deadline = time.monotonic() + timeout
    checks = []
    for name, future in pending.items():
        try:
            checks.append(future.result(timeout=max(deadline - time.monotonic(), 0.0)))
        except FutureTimeout:
            checks.append(Check(name, False, timeout * 1000, f"no answer within {timeout:g} s"))
    return checks


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _redacted(exc: BaseException, secret: object) -> str:
    """The error in one line, without the URL's password (a URL string or a password)."""
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    password = urlsplit(secret).password if isinstance(secret, str) and "://" in secret else secret
    if isinstance(password, str) and password:
        message = message.replace(password, "***")
    return message[:300]


# -- revtops status ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunLine:
    kind: str  # workflow or sync
    organization_id: str
    name: str  # the workflow's name, or the provider synced
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    worker: str | None


@dataclass(frozen=True)
class OrganizationStatus:
    organization_id: str
    integrations: list[ProviderStatus]
    running: list[RunLine]
    failed: list[RunLine]


@dataclass
class DeploymentStatus:
    version: str
    database: str
    host: str
    services: list[ServiceInstance]
    queue: QueueDepth | None
    organizations: list[OrganizationStatus] = field(default_factory=list)


def deployment_status(
    db: Database,
    settings: Settings,
    *,
    orgs: list[str] | None = None,
    since: timedelta = timedelta(hours=24),
) -> DeploymentStatus:
    """Services with their heartbeats, the queue, and per organization (``orgs``, default
    every one the store knows) the last sync per integration, runs in progress and failed runs
    started within ``since``."""
    now = utcnow()
    status = DeploymentStatus(
        __version__,
        db.display_url,
        socket.gethostname(),
        service_instances(db, settings, now=now),
        queue_depth(settings),
    )
    chosen = known_organizations(db) if orgs is None else orgs
    running, failed = _runs(db, chosen, now - since)
    for org in chosen:
        status.organizations.append(
            OrganizationStatus(
                org,
                [p for p in provider_statuses(db, settings, org) if p.connected or p.last_run],
                running.get(org, []),
                failed.get(org, []),
            )
        )
    return status


def _runs(
    db: Database, orgs: list[str], since: datetime
) -> tuple[dict[str, list[RunLine]], dict[str, list[RunLine]]]:
    running: dict[str, list[RunLine]] = {}
    failed: dict[str, list[RunLine]] = {}
    if not orgs:
        return running, failed
    wr, wf, sr = workflow_runs_table, workflows_table, sync_runs_table
    active = [s.value for s in (WorkflowRunStatus.QUEUED, WorkflowRunStatus.RUNNING)]
    bad = [s.value for s in FAILED_WORKFLOW_STATUSES]
    with db.connect() as conn:
        workflow_rows = conn.execute(
            select(wr, wf.c.name)
            .join(wf, wf.c.id == wr.c.workflow_id)
            .where(
                wr.c.organization_id.in_(orgs),
                or_(
                    wr.c.status.in_(active),
                    and_(wr.c.status.in_(bad), wr.c.scheduled_for >= since),
                ),
            )
            .order_by(wr.c.scheduled_for.desc())
        ).all()
        sync_rows = conn.execute(
            select(sr)
            .where(
                sr.c.organization_id.in_(orgs),
                or_(
                    sr.c.status == SyncRunStatus.RUNNING.value,
                    and_(
                        sr.c.status.in_([s.value for s in FAILED_SYNC_STATUSES]),
                        sr.c.started_at >= since,
                    ),
                ),
            )
            .order_by(sr.c.started_at.desc())
        ).all()
    for row in workflow_rows:
        line = RunLine(
            "workflow",
            row.organization_id,
            row.name,
            row.status,
            row.started_at,
            row.finished_at,
            row.error,
            row.worker,
        )
        target = running if row.status in active else failed
        target.setdefault(row.organization_id, []).append(line)
    for row in sync_rows:
        line = RunLine(
            "sync",
            row.organization_id,
            row.provider,
            row.status,
            row.started_at,
            row.finished_at,
            row.error,
            f"{row.host}:{row.pid}" if row.host else None,
        )
        target = running if row.status == SyncRunStatus.RUNNING.value else failed
        target.setdefault(row.organization_id, []).append(line)
    return running, failed
