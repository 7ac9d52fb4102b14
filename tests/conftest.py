"""Fixtures shared by every test: an isolated environment, the store on both backends, and
the providers' sandbox (helpers shared by test modules are in helpers.py).

PostgreSQL tests run against a fresh database created for the test session and dropped at the
end. In CI (``CI`` set) an unreachable server fails the run; locally those tests are skipped,
saying why.

Under pytest-xdist (the default: see ``addopts`` in pyproject.toml) every worker gets a private
PostgreSQL server (private_postgres.py: org roles are cluster-wide, so workers sharing one
server would share them), tests run module by module (a module's fixtures start once, on one
worker; the browser tests share one worker and one web app), slow modules first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bytecode_cache  # noqa: F401  (first: what follows is compiled once)
import psycopg
import pytest
from helpers import SANDBOX_SCALE, SANDBOX_SEED, build_wheel, duckdb_copy, empty_tables
from private_postgres import find_bindir, private_postgres
from sqlalchemy import text
from sqlalchemy.engine import make_url

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.migrate import BASELINE_VERSION, schema_versions
from revtops_kernel.store.scratch import scratch_postgres
from revtops_sandbox import SandboxServer

ADMIN_URL = os.environ.get(
    "REVTOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ISOLATED_PREFIXES = ("REVTOPS_", "ANTHROPIC_", "NANGO_", "SUPABASE_")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... under pytest-xdist
# Workers for the whole suite on the 2-core CI machine: many tests wait on servers, kernels and
# subprocesses, so one more worker than cores keeps both busy (measured: see the README).
XDIST_WORKERS = 3
# Test modules that must share one worker: the browser tests' session-wide web app (a Voila
# server with preheated kernels) would otherwise start once per worker.
SHARED_SCOPES = {
    "tests/browser/": "tests/browser",
    # Both build the product's wheel: once per worker, so on one worker (product_wheel).
    "tests/test_packaging.py": "tests/product wheel",
    "tests/test_installed_wheel.py": "tests/product wheel",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, modules with slow tests first (the browser tests' first of all), so that
    the longest units start early and the short ones fill the gaps at the end."""
    if WORKER is None:
        return

    def weight(item: pytest.Item) -> int:
        scope = _scope(item.nodeid)
        if scope in SHARED_SCOPES.values():
            return 0
        return 1 if scope in slow_scopes else 2

    slow_scopes = {_scope(i.nodeid) for i in items if i.get_closest_marker("slow")}
    items.sort(key=weight)  # stable: the order within a module is kept


def _scope(nodeid: str) -> str:
    """The unit xdist hands a worker: a test module, or a group of SHARED_SCOPES."""
    for prefix, group in SHARED_SCOPES.items():
        if nodeid.startswith(prefix):
            return group
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: XDIST_WORKERS workers for the suite or a folder; for named test files, one
    per file up to that, and none for a single file (it runs in this process, as before, with
    no worker start-up: a module is one unit of work anyway). PYTEST_XDIST_AUTO_NUM_WORKERS
    overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    paths = [Path(str(arg).split("::", 1)[0]) for arg in config.args]
    if not paths or any(path.is_dir() for path in paths):
        return XDIST_WORKERS
    files = {path.resolve() for path in paths}
    return 0 if len(files) == 1 else min(XDIST_WORKERS, len(files))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` by module and SHARED_SCOPES, in collection order."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    config.option.loadscopereorder = False  # keep pytest_collection_modifyitems' order
    return ModuleScheduling(config, log)


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
def postgres_admin_url() -> Iterator[str]:
    """The server's maintenance database: REVTOPS_TEST_POSTGRES_URL (or 127.0.0.1:5432) in a
    serial run; under xdist, a private server of this worker's (unless that variable is set or
    there are no PostgreSQL binaries here, when workers share the server)."""
    bindir = find_bindir()
    if WORKER is None or "REVTOPS_TEST_POSTGRES_URL" in os.environ or bindir is None:
        yield ADMIN_URL
        return
    with private_postgres(bindir, WORKER) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    admin = make_url(postgres_admin_url).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(
                f"PostgreSQL is required in CI and did not answer at {postgres_admin_url}: {exc}"
            )
        pytest.skip(f"no PostgreSQL at {postgres_admin_url} ({exc}); PostgreSQL tests skipped")
    connection.close()
    with scratch_postgres(postgres_admin_url, prefix="revtops_test") as url:
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
        empty_tables(conn)
        conn.execute(schema_versions.delete().where(schema_versions.c.version > BASELINE_VERSION))


@pytest.fixture(scope="session")
def duckdb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An upgraded, empty DuckDB store, checkpointed into one file, that ``db`` copies: a copy
    takes milliseconds where creating the schema takes ~0.4 s of CPU (and fsyncs) per test."""
    path = tmp_path_factory.mktemp("duckdb-template") / "store.duckdb"
    database = Database(f"duckdb:///{path}", lock_timeout=10)
    try:
        upgrade(database)
        with database.begin() as conn:
            conn.execute(text("CHECKPOINT"))
    finally:
        database.dispose()
    assert not path.with_name(path.name + ".wal").exists(), "the template has a WAL left"
    return path


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The upgraded, empty store on each backend."""
    if request.param == "duckdb":
        template = request.getfixturevalue("duckdb_template")
        # The template is upgraded by this code: no upgrade() here (~0.09 s of a no-op's
        # checks, in 560 tests).
        database = Database(duckdb_copy(template, tmp_path / "store.duckdb"), lock_timeout=10)
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


@pytest.fixture(scope="session")
def product_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product's wheel, built once for the packaging and installed-wheel tests."""
    root = Path(__file__).resolve().parents[1]
    return build_wheel(root, tmp_path_factory.mktemp("product-wheel"), timeout=600)
