"""A HubSpot sandbox synced into a DuckDB store, shared by the digest tests of one module."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer
from revtops_sandbox.company import DEFAULT_ANCHOR

ORG = "northwind"
SCALE = 0.02
SEED = 3
# Four weeks around the sandbox's "today" (1 Nov 2026): deals were created, won and lost in
# it, and open deals are due to close in it.
PERIOD_START = date(2026, 10, 19)
PERIOD_END = date(2026, 11, 15)
ANCHOR = DEFAULT_ANCHOR


def synced_store(sandbox: SandboxServer, path: Path) -> Database:
    db = Database(f"duckdb:///{path}", lock_timeout=30)
    upgrade(db)
    sync_into(db, sandbox)
    return db


def sync_into(db: Database, sandbox: SandboxServer) -> None:
    settings = load_settings(
        REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        REVTOPS_ORG=ORG,
        REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
        REVTOPS_HUBSPOT_TOKEN=sandbox.token,
    )
    result = run_sync(db, settings, "hubspot")
    assert result.ok, result.error
