"""DuckDB's buffer cache is bounded on the store's write connections (a sync's): DuckDB's own
default is 80% of the machine's memory, which a scale-10 sync would grow into (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from revtops_kernel.errors import SettingsError
from revtops_kernel.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer


def _memory_limit(db: Database) -> str:
    with db.begin() as conn:
        return str(conn.execute(text("SELECT current_setting('memory_limit')")).scalar_one())


def test_write_connections_carry_the_default_limit(tmp_path: Path) -> None:
    db = Database(f"duckdb:///{tmp_path / 'store.duckdb'}")
    try:
        assert DEFAULT_DUCKDB_MEMORY_LIMIT == "256MiB"
        assert _memory_limit(db) == "256.0 MiB"
    finally:
        db.dispose()


def test_the_setting_reaches_the_store(tmp_path: Path) -> None:
    settings = load_settings(
        REVTOPS_DATABASE_URL=f"duckdb:///{tmp_path / 'store.duckdb'}",
        REVTOPS_DUCKDB_MEMORY_LIMIT="384MiB",
    )
    db = Database.from_settings(settings)
    try:
        assert _memory_limit(db) == "384.0 MiB"
    finally:
        db.dispose()


@pytest.mark.parametrize("value", ["lots", "512 MiBs", "-1"])
def test_a_malformed_limit_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="REVTOPS_DUCKDB_MEMORY_LIMIT"):
        load_settings(REVTOPS_DUCKDB_MEMORY_LIMIT=value)


def test_a_sync_completes_under_a_small_limit(tmp_path: Path) -> None:
    """Far below what the data needs in cache: DuckDB evicts and spills instead of failing."""
    with SandboxServer(scale=0.05, seed=3) as sandbox:
        settings = load_settings(
            REVTOPS_DATABASE_URL=f"duckdb:///{tmp_path / 'store.duckdb'}",
            REVTOPS_DUCKDB_MEMORY_LIMIT="48MiB",
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        )
        db = Database.from_settings(settings)
        try:
            upgrade(db)
            result = run_sync(db, settings, "hubspot", org="acme")
            assert result.ok, result.error
            assert result.counts.upserted > 1_000
            with db.begin() as conn:
                stored = conn.execute(
                    text("SELECT count(*) FROM activities WHERE organization_id = 'acme'")
                ).scalar_one()
            assert stored > 0
            assert _memory_limit(db) == "48.0 MiB"
        finally:
            db.dispose()
