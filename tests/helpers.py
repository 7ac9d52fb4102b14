"""Helpers shared by test modules (the fixtures are in conftest.py)."""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from revtops_kernel.ids import record_id
from revtops_kernel.providers import provider_info
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_sandbox import SandboxServer
from revtops_sandbox.company import Company

# The sandbox most sync tests read: small enough to start in ~0.1 s, big enough for every
# stream to page.
SANDBOX_SCALE = 0.02
SANDBOX_SEED = 3


def _base_url(sandbox: SandboxServer, provider: str) -> tuple[str, str]:
    return {
        "hubspot": ("REVTOPS_HUBSPOT_BASE_URL", sandbox.hubspot_base_url),
        "salesforce": ("REVTOPS_SALESFORCE_INSTANCE_URL", sandbox.salesforce_instance_url),
        "slack": ("REVTOPS_SLACK_BASE_URL", sandbox.slack_base_url),
        "google_calendar": ("REVTOPS_GOOGLE_CALENDAR_BASE_URL", sandbox.google_calendar_base_url),
    }[provider]


def sandbox_env(
    sandbox: SandboxServer,
    db: Database,
    *providers: str,
    org: str,
    tokens: bool = True,
    nango: bool = False,
) -> dict[str, str]:
    """The variables that point ``providers`` at the sandbox and the store at ``db``: each
    provider's base URL and (``tokens``) the sandbox's token; Slack without its rate budget;
    ``nango`` adds the sandbox's Nango."""
    variables = {
        "REVTOPS_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "REVTOPS_ORG": org,
    }
    for provider in providers:
        name, url = _base_url(sandbox, provider)
        variables[name] = url
        if tokens:
            variables[provider_info(provider).token_variable] = sandbox.token
        if provider == "slack":
            variables["REVTOPS_SLACK_REQUESTS_PER_MINUTE"] = "6000"
    if nango:
        variables["NANGO_BASE_URL"] = sandbox.nango_base_url
        variables["NANGO_SECRET_KEY"] = sandbox.nango_secret_key
        variables["NANGO_WEBHOOK_SECRET"] = sandbox.nango_webhook_secret
    return variables


def sandbox_settings(
    sandbox: SandboxServer,
    db: Database,
    *providers: str,
    org: str,
    tokens: bool = True,
    nango: bool = False,
    **extra: str,
) -> Settings:
    """Settings from ``sandbox_env`` (``extra`` variables win)."""
    variables = sandbox_env(sandbox, db, *providers, org=org, tokens=tokens, nango=nango)
    return load_settings(**{**variables, **extra})


def row_ids(org: str, system: str) -> Callable[[str, str | int], uuid.UUID]:
    """``rid(table, source_id)``: the id a row of ``system`` gets in ``org`` (ids.record_id)."""

    def rid(table: str, source_id: str | int) -> uuid.UUID:
        return record_id(org, system, table, str(source_id))

    return rid


def row_ids_any_system(org: str) -> Callable[[str, str, str], uuid.UUID]:
    """``rid(system, table, source_id)``, in record_id's order, for tests across systems."""
    return functools.partial(record_id, org)


def build_wheel(project: Path, out: Path, *, timeout: float) -> Path:
    """``project``'s wheel, built by uv into ``out`` (the test is skipped without uv)."""
    uv = Path(sys.executable).with_name("uv")
    command = str(uv) if uv.exists() else shutil.which("uv")
    if command is None:
        pytest.skip("uv is not installed")
    subprocess.run(
        [command, "build", "--wheel", "--out-dir", str(out), str(project)],
        check=True,
        capture_output=True,
        timeout=timeout,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def duckdb_copy(template: Path, path: Path) -> str:
    """The URL of ``path``, a copy of ``template`` (the ``duckdb_template`` fixture: an
    upgraded, empty DuckDB store): the schema without creating it again, ~0.4 s of CPU and a
    few fsyncs per store. ``upgrade`` on the copy is a no-op."""
    shutil.copyfile(template, path)
    return f"duckdb:///{path}"


def synced_sandbox_store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    org: str,
    scale: float,
    seed: int,
) -> Iterator[tuple[Database, Company]]:
    """A module fixture's body: the sandbox company synced into the store its parameter names
    ("duckdb": a file of its own; "postgresql": the session database, emptied afterwards, as
    the `db` fixture expects)."""
    from revtops_sandbox.evals.sandbox_store import sync_sandbox

    if request.param == "duckdb":
        db = Database(f"duckdb:///{tmp_path_factory.mktemp(org) / 'store.duckdb'}")
    else:
        db = request.getfixturevalue("postgres_db")
    try:
        yield db, sync_sandbox(db, org=org, scale=scale, seed=seed)
    finally:
        if request.param == "duckdb":
            db.dispose()
        else:
            with db.begin() as conn:
                empty_tables(conn)


# The store's tables that hold anything, or whose statistics (or their indexes') differ from
# what TRUNCATE leaves (pg_class: no pages, reltuples -1, nothing all-visible).
_TOUCHED_TABLES = text(
    """
    SELECT c.relname FROM pg_class c
    WHERE c.oid = ANY(CAST(:tables AS regclass[]))
      AND (pg_relation_size(c.oid) > 0 OR c.relpages <> 0 OR c.reltuples <> -1
           OR c.relallvisible <> 0
           OR EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ix ON ix.oid = i.indexrelid
                      WHERE i.indrelid = c.oid AND (ix.relpages <> 0 OR ix.reltuples <> -1)))
    """
)


def empty_tables(conn: Connection) -> None:
    """TRUNCATE the store's tables on PostgreSQL, leaving the state a TRUNCATE of all of them
    leaves, but truncating only those that need it: TRUNCATE gives every table and index a
    new file (33 tables: 0.1-0.2 s on a test server, 1-1.5 s on one with fsync), and most
    tests write to a few tables."""
    tables = [t.name for t in metadata.sorted_tables]
    touched = conn.execute(_TOUCHED_TABLES, {"tables": tables}).scalars().all()
    if touched:
        conn.execute(text(f"TRUNCATE {', '.join(t for t in tables if t in touched)}"))


def default_sigint() -> None:
    """``preexec_fn`` of a child a test will send SIGINT (Ctrl-C): the child gets the default
    disposition, so Python installs its KeyboardInterrupt handler. An ignored SIGINT is
    inherited across exec, and something run in-process earlier on the same worker can leave
    the worker ignoring it (an IPython kernel app does); the child would then never see Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def explain_as_org(
    db: Database, org: str, sql: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """EXPLAIN (FORMAT JSON) of ``sql`` (already guarded; ``params`` bound as psycopg's) on
    PostgreSQL as ``org``'s role, under row-level security, as the copilot's read path runs
    it: the plan's root node."""
    import json

    from revtops_kernel.store import org_roles

    with db.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute(f"SET ROLE {org_roles.role_name(org)}")
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            (document,) = cursor.fetchone() or (None,)
        conn.rollback()
    assert document is not None
    plan = document if isinstance(document, list) else json.loads(document)
    return dict(plan[0]["Plan"])


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN plan, depth first."""
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def statements_of(db: Database, run: Callable[[Database], object]) -> list[str]:
    """The SQL statements ``run(db)`` sent through ``db``'s engine."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        run(db)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return sent
