"""Fixtures shared by every test: an isolated environment, the store on both backends, and
the providers' sandbox (helpers shared by test modules are in helpers.py).

PostgreSQL tests run against a fresh database created for the test session and dropped at the
end. In CI (``CI`` set) an unreachable server fails the run; locally those tests are skipped,
saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import SANDBOX_SCALE, SANDBOX_SEED
from sqlalchemy import text
from sqlalchemy.engine import make_url

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.migrate import BASELINE_VERSION, schema_versions
from revtops_kernel.store.schema import metadata
from revtops_kernel.store.scratch import scratch_postgres
from revtops_sandbox import SandboxServer

ADMIN_URL = os.environ.get(
    "REVTOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ISOLATED_PREFIXES = ("REVTOPS_", "ANTHROPIC_", "NANGO_", "SUPABASE_")


@pytest.fixture(autouse=True)
def isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """No setting leaks in from the developer's shell, home directory or a stray .env."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) and name != "REVTOPS_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("REVTOPS_HOME", str(home / ".revtops"))
    monkeypatch.chdir(home)
    return home


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    admin = make_url(ADMIN_URL).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and did not answer at {ADMIN_URL}: {exc}")
        pytest.skip(f"no PostgreSQL at {ADMIN_URL} ({exc}); PostgreSQL tests skipped")
    connection.close()
    with scratch_postgres(ADMIN_URL, prefix="revtops_test") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_db(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    upgrade(db)
    yield db
    db.dispose()


def _reset(db: Database) -> None:
    """Empty every table and forget versions that tests recorded past the baseline."""
    with db.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names}"))
        conn.execute(schema_versions.delete().where(schema_versions.c.version > BASELINE_VERSION))


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The upgraded, empty store on each backend."""
    if request.param == "duckdb":
        database = Database(f"duckdb:///{tmp_path / 'store.duckdb'}", lock_timeout=10)
        upgrade(database)
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("postgres_db")
        _reset(database)
        yield database
        _reset(database)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh sandbox per test (tests mutate it; one starts in ~0.1 s). A module that needs
    another scale, seed or scope defines its own ``sandbox``."""
    with SandboxServer(scale=SANDBOX_SCALE, seed=SANDBOX_SEED) as server:
        yield server
