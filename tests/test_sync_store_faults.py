"""A sync survives transient store faults: the batch is retried on a fresh connection.

Real faults, no mocks: PostgreSQL backends terminated with ``pg_terminate_backend``, errors
raised by the server with their SQLSTATE, a DuckDB write-write conflict.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from revtops_kernel.errors import StoreError
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.database import POSTGRES_APPLICATION_NAME
from revtops_kernel.store.retry import RetryPolicy, in_transaction, transient_fault
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer
from tests.test_sync_resilience import (
    assert_same_contents,
    environment,
    scalar,
    second_store,  # noqa: F401  (a fixture)
    settings_for,
)

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


def conninfo(db: Database, application_name: str) -> str:
    url = make_url(db.url).set(drivername="postgresql")
    return f"{url.render_as_string(hide_password=False)}?application_name={application_name}"


def server_error(db: Database, sqlstate: str) -> BaseException:
    """The exception the store's connection raises for a server error with ``sqlstate``."""
    with pytest.raises(Exception) as caught, db.begin() as conn:
        conn.exec_driver_sql(
            f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"
        )
    return caught.value


@pytest.mark.postgres
def test_transient_faults_are_told_apart_by_sqlstate(postgres_db: Database) -> None:
    assert transient_fault(server_error(postgres_db, "40001")) == "serialization failure (40001)"
    assert transient_fault(server_error(postgres_db, "40P01")) == "deadlock detected (40P01)"
    assert transient_fault(server_error(postgres_db, "57P01")) is not None
    for permanent in ("23505", "22012", "57014", "42P01"):  # unique, /0, timeout, no table
        assert transient_fault(server_error(postgres_db, permanent)) is None, permanent


def test_a_duckdb_write_conflict_is_transient_a_bad_value_is_not() -> None:
    first = duckdb.connect()
    first.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES (1, 0)")
    second = first.cursor()
    first.execute("BEGIN; UPDATE t SET v = 1 WHERE k = 1")
    second.execute("BEGIN")
    with pytest.raises(duckdb.TransactionException) as conflict:
        second.execute("UPDATE t SET v = 2 WHERE k = 1")
    assert transient_fault(conflict.value) == "write-write conflict"
    with pytest.raises(duckdb.ConversionException) as bad:
        first.execute("SELECT CAST('x' AS INTEGER)")
    assert transient_fault(bad.value) is None


@pytest.mark.postgres
def test_a_unit_of_work_whose_backend_is_terminated_is_redone_on_a_fresh_connection(
    postgres_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    backends: list[int] = []
    with postgres_db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS fault_probe (n integer)")
        conn.exec_driver_sql("TRUNCATE fault_probe")

    def work(conn: Connection) -> int:
        backends.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        conn.exec_driver_sql("INSERT INTO fault_probe VALUES (1)")
        if len(backends) == 1:  # the first attempt loses its backend mid-transaction
            with psycopg.connect(conninfo(postgres_db, "fault-killer"), autocommit=True) as k:
                k.execute("SELECT pg_terminate_backend(%s)", (backends[0],))
        conn.exec_driver_sql("INSERT INTO fault_probe VALUES (2)")
        return len(backends)

    try:
        with caplog.at_level(logging.WARNING, logger="revtops_kernel.store.retry"):
            attempts = in_transaction(postgres_db, work, what="probe", policy=FAST)
        assert attempts == 2
        assert backends[0] != backends[1]  # a fresh connection, not the dead one
        # The first attempt's row was rolled back with its connection: each row once.
        assert sorted(scalar_rows(postgres_db, "SELECT n FROM fault_probe")) == [1, 2]
        retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retries) == 1 and retries[0].startswith("probe: ")
    finally:
        with postgres_db.begin() as conn:
            conn.exec_driver_sql("DROP TABLE fault_probe")


@pytest.mark.postgres
def test_a_permanent_fault_gives_up_after_the_bound_with_one_line(postgres_db: Database) -> None:
    calls: list[float] = []

    def work(conn: Connection) -> None:
        conn.exec_driver_sql(
            "DO $$ BEGIN RAISE EXCEPTION 'could not serialize' USING ERRCODE = '40001'; END $$"
        )

    with pytest.raises(StoreError) as failure:
        in_transaction(
            postgres_db, work, what="probe", policy=FAST, rng=random.Random(1), sleep=calls.append
        )
    message = str(failure.value)
    assert "\n" not in message
    assert message == (
        "probe: the store failed 3 times in a row, giving up "
        "(last: serialization failure (40001): could not serialize)"
    )
    assert len(calls) == 2  # slept between attempts, not after the last
    assert all(0.005 <= delay <= 0.05 for delay in calls)
    assert calls[1] > FAST.base_delay  # backed off: the second wait draws from a doubled ceiling


def scalar_rows(db: Database, sql: str) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text(sql)).scalars())


@contextmanager
def terminate_the_deals_write(db: Database) -> Iterator[list[int]]:
    """Hold ``deals`` in EXCLUSIVE mode (reads pass, writes wait); terminate the store's backend
    once it waits on it inside ``INSERT INTO deals`` (mid-batch: the batch's staging COPY is
    done, earlier tables of the batch written), then let go. Yields the terminated pids."""
    killed: list[int] = []
    done = threading.Event()
    holder = psycopg.connect(conninfo(db, "fault-holder"))
    holder.execute("LOCK TABLE deals IN EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid

    def watch() -> None:
        with psycopg.connect(conninfo(db, "fault-killer"), autocommit=True) as killer:
            while not done.is_set() and not killed:
                row = killer.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = %s AND query LIKE 'INSERT INTO deals %%' "
                    "AND %s = ANY(pg_blocking_pids(pid))",
                    (POSTGRES_APPLICATION_NAME, holder_pid),
                ).fetchone()
                if row is not None:
                    terminated = killer.execute("SELECT pg_terminate_backend(%s)", row).fetchone()
                    assert terminated == (True,)
                    killed.append(row[0])
                    holder.rollback()  # the retry may write now
                done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield killed
    finally:
        done.set()
        watcher.join(timeout=10)
        holder.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_sync_whose_backend_is_terminated_mid_batch_completes_with_a_clean_runs_rows(
    db: Database,
    second_store: Database,  # noqa: F811  (the fixture imported above)
    caplog: pytest.LogCaptureFixture,
) -> None:
    if db.is_duckdb:
        pytest.skip("pg_terminate_backend: PostgreSQL only")
    with SandboxServer(scale=0.03, seed=8) as sandbox:
        clean = run_sync(db, settings_for(sandbox, db), "hubspot")
        assert clean.ok, clean.error
        with (
            caplog.at_level(logging.WARNING, logger="revtops_kernel.store.retry"),
            terminate_the_deals_write(second_store) as killed,
        ):
            faulted = run_sync(second_store, settings_for(sandbox, second_store), "hubspot")
    assert faulted.ok, faulted.error
    assert len(killed) == 1  # the fault really happened, mid-batch
    retries = [r.getMessage() for r in caplog.records if "retrying on a fresh" in r.getMessage()]
    assert len(retries) == 1 and retries[0].startswith("hubspot deals batch: connection lost")
    assert_same_contents(second_store, db)
    assert faulted.counts.upserted == clean.counts.upserted  # the retry counted once
    status = "SELECT status FROM sync_runs WHERE provider = 'hubspot'"
    assert scalar(second_store, status) == "succeeded"


@pytest.mark.postgres
@pytest.mark.slow
def test_a_sync_with_a_permanent_store_fault_fails_with_one_line_after_the_bound(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    if db.is_duckdb:
        pytest.skip("a server-raised SQLSTATE: PostgreSQL only")
    with db.begin() as conn:  # every write into deals fails as a serialization failure would
        conn.exec_driver_sql(
            "CREATE FUNCTION fault_serialization() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER fault_serialization BEFORE INSERT ON deals "
            "FOR EACH ROW EXECUTE FUNCTION fault_serialization()"
        )
    try:
        with SandboxServer(scale=0.02, seed=3) as sandbox:
            env: dict[str, Any] = {
                **environment(sandbox, db),
                "REVTOPS_STORE_RETRY_ATTEMPTS": "3",
                "REVTOPS_STORE_RETRY_DELAY": "0.01",
            }
            with caplog.at_level(logging.INFO):
                result = run_sync(db, load_settings(**env), "hubspot")
    finally:
        with db.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER fault_serialization ON deals")
            conn.exec_driver_sql("DROP FUNCTION fault_serialization()")
    assert not result.ok
    expected = (
        "hubspot deals batch: the store failed 3 times in a row, giving up "
        "(last: serialization failure (40001): could not serialize access)"
    )
    assert result.error == expected
    recorded = "SELECT status || ': ' || error FROM sync_runs WHERE provider = 'hubspot'"
    assert scalar(db, recorded) == f"failed: {expected}"
    retries = [r for r in caplog.records if "retrying on a fresh" in r.getMessage()]
    assert len(retries) == 2
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in failures] == [f"sync hubspot for northwind failed: {expected}"]
    assert failures[0].exc_info is None  # one line, no traceback
    # What committed before the fault stays: the streams before deals are complete.
    assert scalar(db, "SELECT count(*) FROM deals") == 0
    assert scalar(db, "SELECT count(*) FROM contacts") > 0


def test_ctrl_c_behind_a_failed_rollback_stops_instead_of_retrying() -> None:
    """Ctrl-C mid-statement: psycopg raises KeyboardInterrupt, the rollback on the still-busy
    connection fails, and that error (a connection error, "another command is already in
    progress") replaced the interrupt: the batch was retried and the sync went on (seen in a
    full run of the Ctrl-C CLI test). The interrupt is raised again, once, with no retry."""
    attempts: list[int] = []

    class Interrupted:
        @contextmanager
        def begin(self) -> Iterator[None]:
            try:
                yield None
            except KeyboardInterrupt:
                raise psycopg.OperationalError(
                    "sending query failed: another command is already in progress"
                ) from None  # as a failed rollback does: the interrupt is its __context__

    def work(_conn: Any) -> None:
        attempts.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        in_transaction(Interrupted(), work, what="hubspot meetings batch", sleep=lambda _s: None)  # type: ignore[arg-type]
    assert attempts == [1]
