"""Cross-process locks on PostgreSQL: one sync of a provider per organization at a time, and
identity resolutions of an organization one after another (two at once deadlocked in the
topology test). Concurrency is shown with threads on separate connections, as separate
processes would hold them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from helpers import sandbox_settings
from sqlalchemy import select, text

from revtops_kernel.resolve import resolve_identities
from revtops_kernel.store import Database
from revtops_kernel.store.locks import exclusive_sync, sync_lock_key
from revtops_kernel.store.schema import metadata
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer

pytestmark = pytest.mark.postgres

WAIT = 0.5  # how long a blocked thread is given to (wrongly) get through


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def take(db: Database, org: str, provider: str) -> Callable[[], None]:
    """Take the sync lock and let it go at once (what a short sync does)."""

    def work() -> None:
        with exclusive_sync(db, org, provider):
            pass

    return work


def test_a_second_sync_of_the_same_provider_waits_for_the_first(postgres_db: Database) -> None:
    with exclusive_sync(postgres_db, "acme", "hubspot"):
        same, same_done = in_thread(take(postgres_db, "acme", "hubspot"))
        other, other_done = in_thread(take(postgres_db, "acme", "slack"))
        third, third_done = in_thread(take(postgres_db, "globex", "hubspot"))
        assert other_done.wait(10) and third_done.wait(10)  # other providers and orgs go on
        assert not same_done.wait(WAIT)
    assert same_done.wait(10)  # released: the second one goes ahead
    for thread in (same, other, third):
        thread.join()


def test_a_lock_dies_with_the_process_that_held_it(
    postgres_db: Database, postgres_url: str
) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    holder = psycopg.connect(url, autocommit=True)
    key = sync_lock_key("acme", "salesforce")
    holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
    waiter, entered = in_thread(take(postgres_db, "acme", "salesforce"))
    assert not entered.wait(WAIT)
    holder.close()  # the process is gone: PostgreSQL drops its session locks
    assert entered.wait(10)
    waiter.join()


def test_resolutions_of_one_organization_run_one_after_another(postgres_db: Database) -> None:
    with postgres_db.connect() as first, first.begin():
        resolve_identities(first, "acme")  # holds the organization's lock until commit

        def second() -> None:
            with postgres_db.begin() as conn:
                resolve_identities(conn, "acme")

        thread, finished = in_thread(second)
        assert not finished.wait(WAIT)
        # It waits on the organization's lock, before touching any row (not on a row lock
        # midway, where two resolutions deadlocked).
        with postgres_db.connect() as observer:
            waiting = observer.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar_one()
        assert waiting == 1
    assert finished.wait(30)
    thread.join()


@pytest.fixture
def emptied(postgres_db: Database) -> Iterator[Database]:
    """The session database, empty before and after: the synced organization must not meet
    another module's fixture on this worker (test_org_isolation creates 'acme' itself)."""

    def empty() -> None:
        with postgres_db.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))

    empty()
    yield postgres_db
    empty()


def test_two_syncs_of_one_provider_at_once_run_one_after_the_other(
    emptied: Database, sandbox: SandboxServer
) -> None:
    postgres_db = emptied
    settings = sandbox_settings(sandbox, postgres_db, "hubspot", org="acme")
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(run_sync(postgres_db, settings, "hubspot")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert [r.status for r in results] == ["succeeded", "succeeded"]  # type: ignore[attr-defined]
    runs = metadata.tables["sync_runs"]
    with postgres_db.connect() as conn:
        spans = conn.execute(
            select(runs.c.status, runs.c.started_at, runs.c.finished_at).order_by(runs.c.started_at)
        ).all()
    assert [span.status for span in spans] == ["succeeded", "succeeded"]
    # One after the other: the second run began after the first had finished.
    assert spans[1].started_at >= spans[0].finished_at


def test_a_sync_gives_up_on_a_hung_holder_naming_it_and_records_nothing(
    emptied: Database, sandbox: SandboxServer, postgres_url: str
) -> None:
    """A holder that never lets go (a hung process keeps its connection): the waiting sync
    stops after REVTOPS_SYNC_LOCK_WAIT with one line naming the holder, and writes no run."""
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    holder = psycopg.connect(url, autocommit=True, application_name="hung-sync")
    try:
        holder.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (sync_lock_key("acme", "hubspot"),)
        )
        settings = sandbox_settings(
            sandbox, emptied, "hubspot", org="acme", REVTOPS_SYNC_LOCK_WAIT="0.5"
        )
        result = run_sync(emptied, settings, "hubspot")
        holder_pid = holder.info.backend_pid
    finally:
        holder.close()
    assert result.status == "failed"
    assert result.error is not None
    assert "another sync of hubspot for acme" in result.error
    assert f"server pid {holder_pid} (hung-sync)" in result.error
    assert "REVTOPS_SYNC_LOCK_WAIT" in result.error
    with emptied.connect() as conn:
        assert conn.execute(select(metadata.tables["sync_runs"].c.id)).first() is None
        # The pooled connection went back without the wait's lock_timeout on it.
        assert conn.execute(text("SHOW lock_timeout")).scalar_one() == "0"
    # With the holder gone, the next sync runs.
    assert run_sync(emptied, settings, "hubspot").ok
