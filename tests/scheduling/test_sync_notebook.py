"""notebooks/sync.ipynb as a workflow, against the providers' sandbox: it shows the counts of
the sync it ran, and its kept output notebook holds no secret even with secrets in the env."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from scheduling_helpers import REPO
from sqlalchemy import select

from revtops_kernel.scheduling import add_workflow, run_now
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database
from revtops_kernel.store.schema import SyncRun
from revtops_sandbox import SandboxServer

pytestmark = pytest.mark.slow

SYNC_NOTEBOOK = REPO / "notebooks" / "sync.ipynb"
OTHER_SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-do-not-print-me-0123456789",
    "SUPABASE_JWT_SECRET": "jwt-secret-do-not-print-me-9876543210",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.01, seed=3) as server:
        yield server


def test_sync_notebook_shows_counts_and_no_secret(
    duckdb_store: Database, env_for: Callable[..., Settings], sandbox: SandboxServer
) -> None:
    settings = env_for(
        duckdb_store,
        REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
        REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        REVTOPS_SALESFORCE_INSTANCE_URL=sandbox.salesforce_instance_url,
        REVTOPS_SALESFORCE_TOKEN=sandbox.token,
        **OTHER_SECRETS,
    )
    add_workflow(
        duckdb_store,
        "sync",
        SYNC_NOTEBOOK,
        "0 2 * * *",
        org="default",
        parameters={"provider": "all", "full_refresh": True},
    )
    run = run_now(duckdb_store, settings, "sync", org="default", parameters={"org": "acme"})
    assert run.status == "succeeded", run.error
    assert run.output_path is not None

    with duckdb_store.connect() as conn:
        synced = conn.execute(
            select(SyncRun.provider, SyncRun.status, SyncRun.fetched, SyncRun.upserted)
            .where(SyncRun.organization_id == "acme")
            .order_by(SyncRun.provider)
        ).all()
    assert [(p, s) for p, s, *_ in synced] == [
        ("hubspot", "succeeded"),
        ("salesforce", "succeeded"),
    ]
    assert all(fetched > 0 for _p, _s, fetched, _u in synced)

    executed = nbformat.read(run.output_path, as_version=4)
    counts_cell = next(c for c in executed.cells if c.source.startswith("counts = pd.DataFrame"))
    table = counts_cell.outputs[0]["data"]["text/plain"]
    for provider, _status, fetched, upserted in synced:
        row = next(line for line in table.splitlines() if provider in line).split()
        assert "succeeded" in row and str(fetched) in row and str(upserted) in row

    text = Path(run.output_path).read_text()
    assert sandbox.token not in text
    for secret in OTHER_SECRETS.values():
        assert secret not in text
