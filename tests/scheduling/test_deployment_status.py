"""Service heartbeats and `revtops status`, on PostgreSQL, without starting services: a
``ServiceHeart`` beats and stops like `revtops scheduler` and `revtops worker` use it; the
status lists services (stale ones marked), running and failed runs per organization, and
`--alive` answers for this host."""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path

import pytest
from scheduling_helpers import store_workflow_row, write_notebook
from sqlalchemy import delete, update

from revtops_kernel.cli import main
from revtops_kernel.scheduling import runs
from revtops_kernel.scheduling.deployment import (
    ServiceHeart,
    deployment_status,
    heartbeats_table,
    service_instances,
    sync_runs_table,
    workflow_runs_table,
)
from revtops_kernel.scheduling.workflows import get_workflow
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database
from revtops_kernel.store.bookkeeping import start_run
from revtops_kernel.timeutil import utcnow

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_store: Database) -> Database:
    with pg_store.begin() as conn:
        conn.execute(delete(heartbeats_table))
        conn.execute(delete(workflow_runs_table))
    return pg_store


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_a_heart_beats_then_marks_its_service_stopped(
    store: Database, env_for: Callable[..., Settings]
) -> None:
    settings = env_for(store, REVTOPS_RUN_HEARTBEAT_INTERVAL="0.2")
    heart = ServiceHeart(settings, "worker", detail="Celery queue q, concurrency 1")
    heart.start()
    try:
        first = service_instances(store, settings)
        assert [(s.kind, s.state, s.instance) for s in first] == [
            ("worker", "up", f"{socket.gethostname()}:{heart.instance.rsplit(':', 1)[1]}")
        ]
        time.sleep(0.7)
        later = service_instances(store, settings)[0]
        assert later.last_seen_at > first[0].last_seen_at  # it beats
        assert later.started_at == first[0].started_at
        assert later.detail == "Celery queue q, concurrency 1"
        assert _cli("status", "--alive", "worker")[0] == 0
        assert _cli("status", "--alive", "scheduler")[0] == 1  # none on this host
        # Seen from the future (no beat for 4 intervals), the same row is stale.
        ahead = service_instances(store, settings, now=utcnow() + timedelta(seconds=5))[0]
        assert ahead.state == "stale"
    finally:
        heart.stop()
    stopped = service_instances(store, settings)[0]
    assert stopped.state == "stopped" and stopped.stopped_at is not None
    assert _cli("status", "--alive", "worker")[0] == 1
    with pytest.raises(ValueError, match="service kind"):
        ServiceHeart(settings, "cron", detail=None)


def test_status_lists_services_runs_in_progress_and_failed_runs_per_organization(
    store: Database, env_for: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = env_for(store, REVTOPS_RUN_HEARTBEAT_INTERVAL="1")
    org, other = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"
    notebook = write_notebook(tmp_path / "nb.ipynb", "x = 1")
    for name in (org, other):
        store_workflow_row(store, "nightly", notebook, "0 2 * * *", org=name)
    # A crashed scheduler (its row stopped beating long ago) and a live one.
    with store.begin() as conn:
        long_ago = utcnow() - timedelta(minutes=10)
        conn.execute(
            heartbeats_table.insert().values(
                instance="other-host:41",
                kind="scheduler",
                version="0.0.9",
                started_at=long_ago,
                last_seen_at=long_ago,
            )
        )
        failed_sync = start_run(conn, org, "hubspot", full_refresh=False)
        conn.execute(
            update(sync_runs_table)
            .where(sync_runs_table.c.id == failed_sync)
            .values(status="failed", error="HubSpot said 401", finished_at=utcnow())
        )
        start_run(conn, other, "slack", full_refresh=False)  # still running
    workflow = get_workflow(store, "nightly", org=org)
    failed = runs.claim_manual(store, workflow, "test")
    assert runs.start(store, failed.id, "test-host:1", str(tmp_path / "out.ipynb")) is not None
    assert runs.finish(store, failed.id, "failed", error="ZeroDivisionError: division by zero")
    runs.claim_manual(store, get_workflow(store, "nightly", org=other), "test")  # queued

    heart = ServiceHeart(settings, "scheduler")
    heart.start()
    try:
        status = deployment_status(store, settings, orgs=[org, other])
        code, printed = _cli("status", "--json", "--org", org, "--org", other)
        _, text = _cli("status", "--org", org)
    finally:
        heart.stop()

    assert [(s.instance, s.state) for s in status.services] == [
        ("other-host:41", "stale"),
        (heart.instance, "up"),
    ]
    assert status.queue is None  # no broker: runs are local
    by_org = {o.organization_id: o for o in status.organizations}
    assert [(r.kind, r.name, r.status) for r in by_org[org].failed] == [
        ("workflow", "nightly", "failed"),
        ("sync", "hubspot", "failed"),
    ]
    assert by_org[org].running == []
    assert {(r.kind, r.name, r.status) for r in by_org[other].running} == {
        ("workflow", "nightly", "queued"),
        ("sync", "slack", "running"),
    }
    assert by_org[other].failed == []
    hubspot = [p for p in by_org[org].integrations if p.provider == "hubspot"]
    assert hubspot and hubspot[0].last_run is not None

    assert code == 1  # a stale service
    data = json.loads(printed)
    assert {o["organization_id"] for o in data["organizations"]} == {org, other}
    assert "ZeroDivisionError" in printed
    assert "STALE" in text and "other-host:41" in text and "HubSpot said 401" in text
    assert other not in text  # --org limits the organizations shown
    # An unknown organization is refused by name, like `revtops info --org`.
    assert _cli("status", "--org", "no-such-org")[0] == 2
