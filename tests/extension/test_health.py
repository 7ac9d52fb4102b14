"""Liveness and readiness: /revtops/api/health answers without I/O; /revtops/api/health/ready
checks PostgreSQL (SELECT 1) and Redis (PING), 503 naming the failing check, no password shown.

A real server on a scratch database of its own with the real Redis; the database is then dropped
under it. A bad database URL and Redis on a wrong port are also checked through ``readiness``,
the function the handler calls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from revtops_kernel.scheduling.deployment import queue_depth, readiness
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_postgres

from .conftest import Server, launch, stop

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REDIS_URL = "redis://127.0.0.1:6379/11"
SECRET_PASSWORD = "pw-never-shown-4d1c"


@dataclass
class Deployment:
    server: Server
    database_url: str
    admin_url: str


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Deployment]:
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with scratch_postgres(admin_url, prefix="revtops_test_health") as url:
        db = Database(url)
        upgrade(db)
        db.dispose()
        server = launch(
            tmp_path_factory.mktemp("health"),
            REVTOPS_DATABASE_URL=url,
            REVTOPS_BROKER_URL=REDIS_URL,
            REVTOPS_CELERY_QUEUE="revtops-test-health",
        )
        try:
            yield Deployment(server, url, admin_url)
        finally:
            stop(server)


def test_ready_with_postgres_and_redis_up_then_503_naming_the_database_once_it_is_gone(
    deployment: Deployment,
) -> None:
    base = deployment.server.url + "/revtops/api"
    live = httpx.get(f"{base}/health", timeout=10)
    assert live.status_code == 200 and live.json()["status"] == "ok"

    ready = httpx.get(f"{base}/health/ready", timeout=10)  # no session: public
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "redis"}
    for check in body["checks"].values():
        assert check["ok"] is True and check["error"] is None
        assert 0 <= check["latency_ms"] < 2000

    name = make_url(deployment.database_url).database
    admin = make_url(deployment.admin_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    gone = httpx.get(f"{base}/health/ready", timeout=10)
    assert gone.status_code == 503, gone.text
    body = gone.json()
    assert body["status"] == "unavailable" and body["failing"] == ["database"]
    assert body["checks"]["redis"]["ok"] is True
    assert name in body["checks"]["database"]["error"]  # "database ... does not exist"
    # Liveness does no I/O: the process is up, so it stays 200 (no restart loop).
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200


def test_a_bad_database_url_fails_the_database_check_without_its_password(
    postgres_url: str,
) -> None:
    bad = make_url(postgres_url).set(port=1, password=SECRET_PASSWORD)
    settings = load_settings(
        REVTOPS_DATABASE_URL=bad.render_as_string(hide_password=False),
        REVTOPS_BROKER_URL=REDIS_URL,
    )
    db = Database.from_settings(settings)
    try:
        checks = {c.name: c for c in readiness(db, settings, timeout=5.0)}
    finally:
        db.dispose()
    assert checks["database"].ok is False
    assert checks["database"].error and SECRET_PASSWORD not in checks["database"].error
    assert checks["redis"].ok is True


def test_redis_down_fails_the_redis_check_and_the_queue_reads_as_unreadable(
    postgres_db: Database,
) -> None:
    down = f"redis://:{SECRET_PASSWORD}@127.0.0.1:1/0"  # nothing listens on port 1
    settings = load_settings(
        REVTOPS_DATABASE_URL=postgres_db.url.render_as_string(hide_password=False),
        REVTOPS_BROKER_URL=down,
    )
    checks = {c.name: c for c in readiness(postgres_db, settings, timeout=5.0)}
    assert checks["database"].ok is True
    assert checks["redis"].ok is False
    assert "Connection refused" in (checks["redis"].error or "")
    assert SECRET_PASSWORD not in (checks["redis"].error or "")
    depth = queue_depth(settings)
    assert depth is not None and depth.waiting is None and depth.error
    assert SECRET_PASSWORD not in depth.error
    # No broker configured: nothing to check but the database, no queue.
    local = load_settings(
        REVTOPS_DATABASE_URL=postgres_db.url.render_as_string(hide_password=False)
    )
    assert [c.name for c in readiness(postgres_db, local)] == ["database"]
    assert queue_depth(local) is None
