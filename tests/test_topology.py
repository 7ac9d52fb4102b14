"""A team deployment as real processes on this machine, started from deploy/compose.yaml.

Exactly the services and replicas compose.yaml declares (``revtops db upgrade`` once, two
``revtops app``, two ``revtops scheduler``, three ``revtops worker``) on one PostgreSQL
database and one Redis database of their own, with the providers' sandbox as HubSpot. The
compose commands are used as written except the app's ``--port``/``--ip`` (free loopback
ports: there is no load balancer here, each user keeps to one app process, as a sticky one
would keep them) and ``--pool-size 0`` (no page is opened, so preheated kernels would only cost
CPU).

Then: 20 users of 4 organizations sign in across both app processes (each organization's users
on both, so two processes sync one organization at once: the store's locks make the second
sync wait for the first) and, all at once, sync,
read their chat history, integrations, sync status and workflows; every organization has a
workflow due every 10 seconds; an admin starts a slow run through the REST API; the worker
running it is killed with SIGKILL mid-run and a scheduler is restarted. Checked: every run
claimed executed exactly once (the killed one is retried: twice, recorded once, attempt 2), no
run or sync is left queued or running, no response holds another organization's data, and
``revtops status`` shows the services (the killed worker stale, the restarted scheduler
stopped).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from compose_services import revtops_services, with_options
from revtops_server.supabase import mint_token
from sqlalchemy import select, text

from revtops_kernel.agent.conversations import NewMessage, append_messages, create_conversation
from revtops_kernel.scheduling import run_history, update_workflow
from revtops_kernel.scheduling.workflows import get_run
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_kernel.store.scratch import scratch_postgres
from revtops_sandbox import SandboxServer
from tests.browser.app_server import free_port
from tests.scheduling.scheduling_helpers import (
    pid_alive,
    store_workflow_row,
    wait_for,
    write_notebook,
)

try:  # helper S runs this test in an xdist group of its own
    import xdist  # noqa: F401

    _GROUP = [pytest.mark.xdist_group("topology")]
except ImportError:
    _GROUP = []

pytestmark = [pytest.mark.slow, pytest.mark.postgres, *_GROUP]

SECRET = "topology-test-jwt-secret-with-32-bytes+"
SUPABASE_URL = "http://127.0.0.1:9/supabase"  # never contacted: HS256 tokens verify locally
ADMIN_KEY = "topology-admin-key"
REDIS = "redis://127.0.0.1:6379/12"
ORGS = ("alpha", "bravo", "charlie", "delta")
USERS_PER_ORG = 5
FAST_CRON = "* * * * * */10"  # due every 10 s (add_workflow refuses it: the row is written)


@dataclass
class User:
    email: str
    org_domain: str
    app: str  # the base URL of the app process this user keeps to
    token: str
    org: str = ""
    role: str = ""
    member_id: str = ""
    replies: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        reply = httpx.request(
            method,
            f"{self.app}/revtops/api{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            json=body,
            timeout=60,
        )
        self.replies.append(reply.text)
        return reply


class Topology:
    """The deployment's processes, each in its own process group, with its log file."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], **extra: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "revtops_kernel.cli", *argv],
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**self.env, **extra},
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _clean_env() -> dict[str, str]:
    prefixes = ("REVTOPS_", "SUPABASE_", "NANGO_", "ANTHROPIC_", "JUPYTER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


@contextlib.contextmanager
def _redis_queue() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.skip(f"no Redis at {REDIS} ({exc})")
    queue = f"revtops-topology-{uuid.uuid4().hex[:8]}"
    try:
        yield queue
    finally:
        for key in client.scan_iter(match=f"{queue}:*"):
            client.delete(key)
        client.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/revtops/api/health/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _beating(db: Database, kind: str) -> int:
    table = metadata.tables["service_heartbeats"]
    with db.connect() as conn:
        rows = conn.execute(
            select(table.c.instance).where(table.c.kind == kind, table.c.stopped_at.is_(None))
        ).all()
    return len(rows)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])


def test_a_team_deployment_on_real_processes(tmp_path: Path, postgres_url: str) -> None:
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started - sum(phases.values()), 1)

    services = revtops_services()
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(scratch_postgres(admin_url, prefix="revtops_test_topology"))
        queue = stack.enter_context(_redis_queue())
        sandbox = stack.enter_context(SandboxServer(scale=0.02, seed=19))
        db = Database(url)
        stack.callback(db.dispose)
        env = {
            **_clean_env(),
            "REVTOPS_DATABASE_URL": url,
            "REVTOPS_BROKER_URL": REDIS,
            "REVTOPS_CELERY_QUEUE": queue,
            "REVTOPS_RUNS_DIR": str(tmp_path / "runs"),
            "REVTOPS_HOME": str(tmp_path / "home"),
            # Fast beats so that a killed worker's run is noticed in seconds.
            "REVTOPS_RUN_HEARTBEAT_INTERVAL": "2",
            "REVTOPS_SCHEDULER_POLL_INTERVAL": "0.5",
            "REVTOPS_HUBSPOT_BASE_URL": sandbox.hubspot_base_url,
            "REVTOPS_HUBSPOT_TOKEN": sandbox.token,
            "SUPABASE_URL": SUPABASE_URL,
            "SUPABASE_JWT_SECRET": SECRET,
            "REVTOPS_ADMIN_KEY": ADMIN_KEY,
        }
        topology = Topology(tmp_path / "logs", env)
        stack.callback(topology.kill_all)

        # -- the services, as compose.yaml starts them ---------------------------------------
        migrate = topology.start("migrate", services["migrate"].command)
        assert migrate.wait(timeout=180) == 0, topology.log("migrate")
        apps = []
        for i in range(services["app"].replicas):
            port = free_port()
            argv = with_options(
                services["app"].command, port=str(port), ip="127.0.0.1", pool_size="0"
            )
            topology.start(
                f"app-{i}",
                argv,
                JUPYTER_RUNTIME_DIR=str(tmp_path / f"runtime-{i}"),
                REVTOPS_HOME=str(tmp_path / f"home-{i}"),
            )
            apps.append(f"http://127.0.0.1:{port}")
        for kind in ("scheduler", "worker"):
            for i in range(services[kind].replicas):
                topology.start(f"{kind}-{i}", services[kind].command)
        for i, app in enumerate(apps):
            wait_for(lambda app=app: _ready(app), 240, f"app-{i} to be ready", every=0.5)
        for kind in ("scheduler", "worker"):
            count = services[kind].replicas
            wait_for(lambda k=kind, n=count: _beating(db, k) == n, 240, f"{count} {kind}s")
        phase("services up")

        # -- organizations, users, workflows ---------------------------------------------------
        orgs: dict[str, str] = {}  # domain -> organization id
        for name in ORGS:
            made = httpx.post(
                f"{apps[0]}/revtops/api/organizations",
                headers={"X-Admin-Key": ADMIN_KEY},
                json={"name": name.title(), "domain": f"{name}.test"},
                timeout=60,
            )
            assert made.status_code == 201, made.text
        users = [
            User(
                f"user{n}@{name}.test",
                f"{name}.test",
                apps[n % len(apps)],  # every organization on both app processes
                mint_token(
                    secret=SECRET,
                    supabase_url=SUPABASE_URL,
                    subject=f"sub-{name}-{n}",
                    email=f"user{n}@{name}.test",
                ),
            )
            for i, name in enumerate(ORGS)
            for n in range(USERS_PER_ORG)
        ]

        def sign_in(user: User) -> None:
            me = user.call("GET", "/me")
            assert me.status_code == 200, me.text
            data = me.json()
            user.org, user.role, user.member_id = (
                data["organization_id"],
                data["role"],
                data["user_id"],
            )

        # The first of each organization signs in first and runs it; the others join at once.
        for first in users[::USERS_PER_ORG]:
            sign_in(first)
            assert first.role == "admin"
            orgs[first.org_domain] = first.org
        with ThreadPoolExecutor(len(users)) as pool:
            list(pool.map(sign_in, [u for u in users if u.role != "admin"]))
        assert all(u.org == orgs[u.org_domain] for u in users)
        assert len(set(orgs.values())) == len(ORGS)

        executions = tmp_path / "executions.log"
        fast_nb = write_notebook(
            tmp_path / "fast.ipynb",
            "log_path = ''\nrevtops_run_id = None",
            "import os\nwith open(log_path, 'a') as log:\n"
            "    log.write(f'{revtops_run_id} {os.getpid()}\\n')",
        )
        slow_marks, release = tmp_path / "slow.log", tmp_path / "release"
        # The slow run holds until the test releases it (after the kill): however loaded the
        # machine, the worker is killed mid-run.
        slow_nb = write_notebook(
            tmp_path / "slow.ipynb",
            "org = ''\nmarks = ''\nrelease = ''\nrevtops_run_id = None",
            "import os, time\nopen(marks, 'a').write(f'start {revtops_run_id} {os.getpid()}\\n')\n"
            "deadline = time.time() + 300\n"
            "while not os.path.exists(release) and time.time() < deadline:\n"
            "    time.sleep(0.2)\n"
            "open(marks, 'a').write(f'end {revtops_run_id}\\n')",
        )
        for org in orgs.values():
            store_workflow_row(
                db,
                "every-10s",
                fast_nb,
                FAST_CRON,
                org=org,
                parameters={"log_path": str(executions)},
            )
        first_org = orgs[f"{ORGS[0]}.test"]
        store_workflow_row(
            db,
            "slow",
            slow_nb,
            "0 0 1 1 *",
            org=first_org,
            parameters={"marks": str(slow_marks), "release": str(release)},
        )
        # Each user's conversation, recorded as the chat records one.
        # What only an organization's members may see: its id, its domain, its conversations.
        secrets: dict[str, list[str]] = {org: [org, domain] for domain, org in orgs.items()}
        conversations: dict[str, str] = {}
        for user in users:
            marker = f"pipeline-of-{user.org}-for-{user.email}"
            secrets[user.org].append(marker)
            cid = create_conversation(
                db, org=user.org, user_id=uuid.UUID(user.member_id), title=marker, model=None
            )
            append_messages(
                db,
                cid,
                [NewMessage("user", [{"type": "text", "text": f"What is the {marker}?"}])],
                org=user.org,
            )
            conversations[user.email] = str(cid)
            secrets[user.org].append(str(cid))

        phase("organizations, users, workflows")
        # -- everyone at once: sync, history, status; a slow run on the workers ------------------
        admin = users[0]
        slow = admin.call("POST", "/workflows/slow/run", {})
        assert slow.status_code == 202, slow.text
        slow_run = uuid.UUID(slow.json()["run_id"])

        def work(user: User) -> None:
            synced = user.call("POST", "/sync", {"provider": "hubspot"})
            assert synced.status_code == 202, synced.text
            for path in (
                "/chat/conversations",
                f"/chat/conversations/{conversations[user.email]}",
                "/integrations",
                "/sync/status",
                "/workflows",
            ):
                got = user.call("GET", path)
                assert got.status_code == 200, (path, got.text)
            assert conversations[user.email] in user.replies[-5]
            assert f"pipeline-of-{user.org}-for-{user.email}" in user.replies[-4]

        with ThreadPoolExecutor(len(users)) as pool:
            list(pool.map(work, users))

        phase("20 users at once")
        # -- SIGKILL the worker running the slow run; restart a scheduler ----------------------
        wait_for(lambda: "start" in _read(slow_marks), 180, "the slow run to start")
        kernel = int(_read(slow_marks).split()[2])
        runner = get_run(db, slow_run).worker  # host:pid of the run's process
        assert runner is not None
        pool_process = _parent(int(runner.rsplit(":", 1)[1]))
        worker_main = _parent(pool_process)
        killed = next(n for n, p in topology.procs.items() if p.pid == worker_main)
        assert killed.startswith("worker-")
        os.killpg(worker_main, signal.SIGKILL)
        topology.procs[killed].wait(timeout=10)
        wait_for(lambda: not pid_alive(kernel), 30, "the lost run's kernel to exit")

        release.touch()  # the retried run may end
        scheduler = topology.procs["scheduler-0"]
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(timeout=90) == 0, topology.log("scheduler-0")
        topology.start("scheduler-0-restarted", services["scheduler"].command)

        wait_for(
            lambda: get_run(db, slow_run).status not in ("queued", "running"),
            240,
            "the killed worker's run to be retried to its end",
            every=1.0,
        )

        def synced_everywhere() -> bool:
            with db.connect() as conn:
                rows = conn.execute(text("SELECT organization_id, status FROM sync_runs")).all()
            done = {org for org, status in rows if status == "succeeded"}
            return done == set(orgs.values()) and all(s != "running" for _o, s in rows)

        wait_for(synced_everywhere, 240, "every organization's sync to end", every=1.0)
        phase("kill, restart, retry, syncs")

        def fast_runs(org: str) -> list[Any]:
            return run_history(db, "every-10s", org=org, limit=1000)

        wait_for(
            lambda: all(
                sum(r.status == "succeeded" for r in fast_runs(o)) >= 2 for o in orgs.values()
            ),
            240,
            "two scheduled runs per organization",
            every=1.0,
        )
        for org in orgs.values():
            update_workflow(db, "every-10s", org=org, enabled=False)
        wait_for(
            lambda: (
                not [
                    r
                    for o in orgs.values()
                    for r in fast_runs(o)
                    if r.status in ("queued", "running")
                ]
            ),
            180,
            "the runs in flight to end",
            every=1.0,
        )

        phase("scheduled runs")
        # -- every run exactly once, nothing stuck ----------------------------------------------
        executed = [line.split()[0] for line in _read(executions).splitlines()]
        assert len(executed) == len(set(executed)), "a scheduled run executed twice"
        recorded = {str(r.id): r for o in orgs.values() for r in fast_runs(o)}
        for run in recorded.values():
            assert run.status == "succeeded", (run.status, run.error)
            assert run.attempt == 1
        assert set(executed) == set(recorded)
        for org in orgs.values():
            due = [r.scheduled_for for r in fast_runs(org)]
            assert len(due) == len(set(due)) >= 2
            assert all(d.second % 10 == 0 for d in due)

        final = get_run(db, slow_run)
        assert final.status == "succeeded", final.error
        assert final.attempt == 2  # lost with its worker, retried on another
        marks = _read(slow_marks).split("\n")
        assert sum(m.startswith("start") for m in marks) == 2
        assert sum(m.startswith("end") for m in marks) == 1
        assert final.worker != runner

        with db.connect() as conn:
            stuck_runs = conn.execute(
                text("SELECT count(*) FROM workflow_runs WHERE status IN ('queued', 'running')")
            ).scalar_one()
            stuck_syncs = conn.execute(
                text("SELECT count(*) FROM sync_runs WHERE status = 'running'")
            ).scalar_one()
        assert stuck_runs == 0 and stuck_syncs == 0
        with db.connect() as conn:
            syncs = conn.execute(text("SELECT organization_id, status, error FROM sync_runs")).all()
        # Every user asked for a sync; syncs of one organization from both processes queued
        # behind each other (store.locks) instead of deadlocking.
        assert all(status == "succeeded" for _org, status, _error in syncs), syncs

        # -- nobody saw another organization's data ----------------------------------------------
        for user in users:
            seen = "\n".join(user.replies)
            for org, words in secrets.items():
                if org == user.org:
                    continue
                leaked = [w for w in words if w in seen]
                assert not leaked, f"{user.email} saw {org}'s {leaked}"
            status = json.loads(user.call("GET", "/sync/status").text)
            assert any(p["last_run"] for p in status["providers"])

        # -- revtops status shows the services -----------------------------------------------------
        expected = {
            ("scheduler", "up"): 2,
            ("scheduler", "stopped"): 1,
            ("worker", "up"): 2,
            ("worker", "stale"): 1,
        }
        # The restarted scheduler shows once it has written its first heartbeat (its start-up
        # can take a while on a loaded machine): ask again until it does.
        deadline = time.monotonic() + 180
        while True:
            shown = subprocess.run(
                [sys.executable, "-m", "revtops_kernel.cli", "status", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert shown.returncode == 1, shown.stderr  # 1: a stale service (the killed worker)
            status = json.loads(shown.stdout)
            by_kind: dict[tuple[str, str], int] = {}
            for s in status["services"]:
                by_kind[(s["kind"], s["state"])] = by_kind.get((s["kind"], s["state"]), 0) + 1
            if by_kind == expected or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert by_kind == expected, status["services"]
        stale = next(s for s in status["services"] if s["state"] == "stale")
        assert stale["instance"].endswith(f":{worker_main}")
        assert status["queue"]["error"] is None and status["queue"]["waiting"] == 0
        listed = {o["organization_id"]: o for o in status["organizations"]}
        assert set(orgs.values()) <= set(listed)
        for org in orgs.values():
            hubspot = [p for p in listed[org]["integrations"] if p["provider"] == "hubspot"]
            assert hubspot and hubspot[0]["last_sync_at"] is not None
            assert listed[org]["running"] == []
        phase("checks and revtops status")
        print(f"topology test: {time.monotonic() - started:.1f} s {phases}; syncs {len(syncs)}")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
