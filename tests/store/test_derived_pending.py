"""The derived rollups' pending mark (store.derived), on both backends: a sync that wrote rows
and never reached its refreshes (Ctrl-C during resolution, a crash) leaves ``deal_risk_facts``
and ``meeting_accounts`` marked, so the next sync refreshes them even if it changes nothing;
a mark is never cleared while another sync of the organization is running."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import sandbox_settings
from sqlalchemy import text

from revtops_kernel import sync
from revtops_kernel.run_status import SyncRunStatus
from revtops_kernel.store import Database, meeting_accounts, risk_facts
from revtops_kernel.store.bookkeeping import RunCounts, interrupt_own_runs, start_run
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer

ORG = "pending-test"


def _rows(db: Database, table: str, columns: tuple[str, ...], derived: str) -> set[tuple[Any, ...]]:
    """The organization's rows (values, not ids) that are derived (``derived``: not a mark)."""
    listed = ", ".join(f"CAST({c} AS TEXT)" for c in columns)
    sql = f"SELECT {listed} FROM {table} WHERE organization_id = :org AND {derived}"
    with db.connect() as conn:
        return {tuple(r) for r in conn.execute(text(sql), {"org": ORG})}


def _both(db: Database) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    return (
        _rows(db, risk_facts.TABLE, risk_facts._COLUMNS, f"kind <> '{risk_facts.STALE}'"),
        _rows(db, meeting_accounts.TABLE, meeting_accounts.COLUMNS, "meeting_id IS NOT NULL"),
    )


def _rebuilt(db: Database) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """What a refresh from nothing derives."""
    with db.begin() as conn:
        for table in (risk_facts.TABLE, meeting_accounts.TABLE):
            conn.execute(text(f"DELETE FROM {table} WHERE organization_id = :org"), {"org": ORG})
        risk_facts.refresh_risk_facts(conn, ORG, full=True)
        meeting_accounts.refresh_meeting_accounts(conn, ORG)
    return _both(db)


def _spy(calls: list[str], name: str, real: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def spy(conn: Any, org: str) -> Any:
        calls.append(name)
        return real(conn, org)

    return spy


def _stale(db: Database) -> tuple[bool, bool]:
    with db.connect() as conn:
        return risk_facts.is_stale(conn, ORG), meeting_accounts.is_stale(conn, ORG)


def test_a_sync_killed_before_its_refreshes_leaves_them_to_the_next_sync(
    db: Database, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sandbox_settings(sandbox, db, "hubspot", org=ORG)
    assert run_sync(db, settings, "hubspot").ok
    assert _stale(db) == (False, False)
    built = _both(db)
    assert all(built)

    # The provider changes; the next sync writes its batches, then Ctrl-C before the refreshes.
    sandbox.mutate(modified_pct=10.0, seed=7, object_types=("deals", "emails", "meetings"))

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(sync, "refresh_risk_facts_after_sync", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_sync(db, settings, "hubspot")
    with db.begin() as conn:  # what the CLI does on Ctrl-C
        interrupt_own_runs(conn, "interrupted by the user (Ctrl-C)")
    assert _both(db) == built  # behind the store now
    assert _stale(db) == (True, True)

    # Nothing new at the provider: the re-sync writes nothing, yet refreshes both rollups.
    calls: list[str] = []
    real_risk, real_meetings = (
        risk_facts.refresh_risk_facts,
        meeting_accounts.refresh_meeting_accounts,
    )
    monkeypatch.setattr(risk_facts, "refresh_risk_facts", _spy(calls, "risk", real_risk))
    monkeypatch.setattr(
        meeting_accounts,
        "refresh_meeting_accounts",
        _spy(calls, "meetings", real_meetings),
    )
    again = run_sync(db, settings, "hubspot")
    assert again.ok, again.error
    assert (again.counts.upserted, again.counts.deleted) == (0, 0)
    assert calls == ["risk", "meetings"]
    assert _stale(db) == (False, False)
    caught_up = _both(db)
    assert caught_up != built
    monkeypatch.setattr(risk_facts, "refresh_risk_facts", real_risk)
    monkeypatch.setattr(meeting_accounts, "refresh_meeting_accounts", real_meetings)
    assert _rebuilt(db) == caught_up

    # And the sync after that, with nothing marked, skips them again.
    calls.clear()
    monkeypatch.setattr(risk_facts, "refresh_risk_facts", _spy(calls, "risk", real_risk))
    assert run_sync(db, settings, "hubspot").ok
    assert calls == [] and _stale(db) == (False, False)


def test_a_mark_stays_while_another_sync_of_the_organization_runs(db: Database) -> None:
    """An unchanged run does not clear the mark, and a refresh puts it back, while another
    sync of the organization is recorded as running (it may still write and die); once it is
    not, the next unchanged run clears the mark it left."""
    unchanged = SimpleNamespace(counts=RunCounts(), resolution=None, run_id=uuid.uuid4())
    changed = SimpleNamespace(counts=RunCounts(upserted=1), resolution=None, run_id=uuid.uuid4())
    with db.begin() as conn:
        other = start_run(conn, ORG, "slack", full_refresh=False)
        assert not risk_facts.mark_pending(conn, ORG)
        assert not meeting_accounts.mark_pending(conn, ORG)

    risk_facts.refresh_after_sync(db, ORG, run=unchanged, pending_before=False)
    meeting_accounts.refresh_after_sync(db, ORG, run=unchanged, pending_before=False)
    assert _stale(db) == (True, True)
    assert risk_facts.refresh_after_sync(db, ORG, run=changed, pending_before=True) is not None
    assert meeting_accounts.refresh_after_sync(db, ORG, run=changed, pending_before=True)
    assert _stale(db) == (True, True)

    with db.begin() as conn:
        conn.execute(
            text("UPDATE sync_runs SET status = :done WHERE id = :id"),
            {"done": SyncRunStatus.SUCCEEDED.value, "id": other},
        )
    # A run that had found nothing marked when it started, changed nothing: no refresh.
    skipped = risk_facts.refresh_after_sync(db, ORG, run=unchanged, pending_before=False)
    assert skipped is not None and skipped.derived == 0
    meeting_accounts.refresh_after_sync(db, ORG, run=unchanged, pending_before=False)
    assert _stale(db) == (False, False)
