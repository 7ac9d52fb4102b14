"""Fixtures for scheduling tests: settings bound to the store, child processes.

Subprocesses (schedulers, workers, runners, kernels) read their settings from the environment,
so ``store_env`` writes the store URL and the scheduling settings into it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import duckdb_copy
from scheduling_helpers import Processes
from sqlalchemy import text

from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database, upgrade


@pytest.fixture
def env_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings]:
    """Point the environment (and so every child process) at a store; returns its settings.

    Heartbeats are fast so that a lost run is noticed within seconds.
    """

    def make(db: Database, **overrides: str) -> Settings:
        values = {
            "REVTOPS_DATABASE_URL": db.url.render_as_string(hide_password=False),
            "REVTOPS_RUNS_DIR": str(tmp_path / "runs"),
            "REVTOPS_RUN_HEARTBEAT_INTERVAL": "0.5",
            "REVTOPS_SCHEDULER_POLL_INTERVAL": "0.5",
            "REVTOPS_DB_LOCK_TIMEOUT": "30",
            **overrides,
        }
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return load_settings()

    return make


@pytest.fixture
def store_env(db: Database, env_for: Callable[..., Settings]) -> Callable[..., Settings]:
    """``env_for`` bound to the ``db`` fixture (both backends)."""
    return lambda **overrides: env_for(db, **overrides)


@pytest.fixture
def duckdb_store(tmp_path: Path, duckdb_template: Path) -> Iterator[Database]:
    """An upgraded DuckDB store, for tests that need one backend only."""
    database = Database(duckdb_copy(duckdb_template, tmp_path / "store.duckdb"), lock_timeout=30)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path / "logs")
    yield procs
    procs.stop_all()


@pytest.fixture
def pg_store(postgres_db: Database) -> Iterator[Database]:
    """The session's PostgreSQL store with empty workflow tables, for one-backend tests."""

    def empty() -> None:
        with postgres_db.begin() as conn:
            conn.execute(text("TRUNCATE workflows, workflow_runs"))

    empty()
    yield postgres_db
    empty()


@pytest.fixture
def redis_broker() -> Iterator[dict[str, str]]:
    """Broker settings on the real Redis: a dedicated db number and a queue (and key prefix)
    unique to the test; every key under the prefix is deleted afterwards."""
    import redis

    url = "redis://127.0.0.1:6379/13"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379 ({exc})")
    queue = f"revtops-test-{uuid.uuid4().hex[:8]}"
    yield {"REVTOPS_BROKER_URL": url, "REVTOPS_CELERY_QUEUE": queue}
    for key in client.scan_iter(match=f"{queue}:*"):
        client.delete(key)
    client.close()
