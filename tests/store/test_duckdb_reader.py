"""DuckDB's warm read-only handle: reused across reads and organizations, never stale, and given
up at once for a writer, in this process or another one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from helpers import duckdb_copy
from sqlalchemy import text

from revtops_kernel.errors import QueryError
from revtops_kernel.store import Database, duckdb_reader, upgrade
from revtops_kernel.store.database import write_intent_path
from revtops_kernel.store.query import read_sql
from revtops_kernel.store.upsert import upsert

WORKER = str(Path(__file__).with_name("warm_reader_worker.py"))
T0 = datetime(2026, 1, 5, tzinfo=UTC)
# A waiting writer retries every 0.75 s at most, and a warm reader lets go within
# WATCH_SECONDS of its intent; more than this is the reader blocking it.
WRITER_WAIT_BOUND = 2.0


def deal_rows(org: str, first: int, count: int) -> list[dict[str, object]]:
    return [
        {
            "organization_id": org,
            "source_system": "hubspot",
            "source_id": str(i),
            "name": f"{org} deal {i}",
            "amount": i,
            "updated_at": T0,
        }
        for i in range(first, first + count)
    ]


@pytest.fixture
def store(tmp_path: Path, duckdb_template: Path) -> Iterator[Database]:
    db = Database(duckdb_copy(duckdb_template, tmp_path / "store.duckdb"), lock_timeout=20)
    upgrade(db)
    with db.begin() as conn:
        upsert(conn, "deals", deal_rows("acme", 0, 30) + deal_rows("globex", 0, 7))
        conn.execute(
            text(
                "INSERT INTO users (id, organization_id, email, role, created_at) VALUES "
                "('00000000-0000-0000-0000-000000000001', 'acme', 'ana@acme.com', 'admin', :t)"
            ),
            {"t": T0},
        )
    yield db
    db.dispose()


def count(db: Database, org: str = "acme") -> int:
    return int(read_sql(db, "SELECT count(*) AS n FROM deals", org=org).frame["n"][0])


def warm(db: Database) -> bool:
    return db.duckdb_path in duckdb_reader._warm


def test_reads_reuse_one_handle(store: Database) -> None:
    opens = duckdb_reader.opens
    assert [count(store) for _ in range(5)] == [30] * 5
    assert duckdb_reader.opens == opens + 1
    assert warm(store)


def test_two_organizations_one_after_the_other_stay_apart(store: Database) -> None:
    opens = duckdb_reader.opens
    for _ in range(2):
        assert count(store, "acme") == 30
        assert count(store, "globex") == 7
        frame = read_sql(store, "SELECT DISTINCT organization_id FROM deals", org="globex").frame
        assert frame["organization_id"].tolist() == ["globex"]
        # Outside the readable set: empty for every organization, on the reused handle too.
        assert read_sql(store, "SELECT * FROM users", org="acme").frame.empty
        assert read_sql(store, "SELECT * FROM main.users", org="globex").frame.empty
    assert count(store, "initech") == 0  # a third organization: its own views
    assert duckdb_reader.opens == opens + 1


def test_every_organization_s_connection_is_locked_down(store: Database) -> None:
    secrets = pd.DataFrame({"token": ["sk-live-123"]})  # DuckDB could scan this by name
    assert not secrets.empty
    for org in ("acme", "globex"):  # globex: a connection made after the lock
        settings = read_sql(
            store,
            "SELECT current_setting('lock_configuration') AS locked, "
            "current_setting('python_enable_replacements') AS replacements, "
            "current_setting('enable_external_access') AS external, "
            "current_setting('TimeZone') AS tz",
            org=org,
        ).frame
        assert settings.to_dict("records") == [
            {"locked": True, "replacements": False, "external": False, "tz": "UTC"}
        ]
        with pytest.raises(QueryError, match="secrets"):
            read_sql(store, "SELECT * FROM secrets", org=org)
        with pytest.raises(QueryError):
            read_sql(store, "SELECT * FROM read_csv('/etc/passwd')", org=org)


def test_a_write_in_this_process_closes_it_and_the_next_read_sees_the_rows(
    store: Database,
) -> None:
    assert count(store) == 30
    opens = duckdb_reader.opens
    with store.begin() as conn:  # DuckDB: one configuration per file in a process
        upsert(conn, "deals", deal_rows("acme", 100, 5))
    assert not warm(store)
    assert count(store) == 35
    assert duckdb_reader.opens == opens + 1


def test_an_idle_handle_is_closed(store: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_reader, "IDLE_SECONDS", 0.2)
    count(store)
    assert warm(store)
    deadline = time.monotonic() + 5
    while warm(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not warm(store)


def test_a_stale_intent_does_not_stop_reuse(store: Database) -> None:
    intent = write_intent_path(store.duckdb_path)
    intent.write_text("12345")
    old = time.time() - 60
    os.utime(intent, (old, old))  # a writer that crashed a minute ago
    opens = duckdb_reader.opens
    assert [count(store) for _ in range(3)] == [30] * 3
    assert duckdb_reader.opens == opens + 1


def run_worker(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def line(process: subprocess.Popen[str]) -> dict[str, float]:
    assert process.stdout is not None
    text_line = process.stdout.readline()
    if not text_line:
        _, err = process.communicate(timeout=30)
        raise AssertionError(err)
    return dict(json.loads(text_line))


def test_a_warm_reader_here_lets_a_writer_process_in_and_then_sees_its_rows(
    store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_reader, "IDLE_SECONDS", 600)  # only the intent may close it
    assert count(store) == 30
    assert warm(store)
    writer = run_worker("write", store.duckdb_path, 200, 10)
    waited = line(writer)["waited"]
    assert writer.wait(timeout=30) == 0
    assert waited < WRITER_WAIT_BOUND
    assert not write_intent_path(store.duckdb_path).exists()  # withdrawn once it got in
    assert count(store) == 40  # reopened: the file changed


def test_a_reader_process_holding_a_warm_handle_does_not_block_a_write_here(
    store: Database,
) -> None:
    reader = run_worker("hold", store.duckdb_path)
    try:
        assert line(reader) == {"count": 30, "opens": 1}
        started = time.monotonic()
        with store.begin() as conn:
            upsert(conn, "deals", deal_rows("acme", 300, 3))
        assert time.monotonic() - started < WRITER_WAIT_BOUND
        Path(f"{store.duckdb_path}.go").touch()
        assert line(reader) == {"count": 33, "opens": 2}  # let go, reopened, sees the rows
        assert reader.wait(timeout=30) == 0
    finally:
        if reader.poll() is None:
            reader.kill()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM users",
        "SELECT * FROM main.users",
        "SELECT * FROM query_table('users')",
        "SELECT * FROM query('SELECT * FROM users')",
        "SELECT (SELECT count(*) FROM users WHERE organization_id = 'acme') AS n FROM deals",
    ],
)
def test_a_table_without_a_view_yet_is_never_read_unscoped(store: Database, sql: str) -> None:
    assert count(store, "globex") == 7  # globex's connection has the deals view only
    try:
        frame = read_sql(store, sql, org="globex").frame
    except QueryError:
        return  # not found: fine too
    assert frame.empty or frame.iloc[:, 0].tolist() == [0] * len(frame)


def test_views_come_as_statements_need_them(store: Database) -> None:
    assert count(store, "acme") == 30
    frame = read_sql(
        store,
        "SELECT count(*) AS n FROM query_table('deals') WHERE amount >= :a",
        {"a": 10},
        org="globex",
    ).frame
    assert frame["n"].tolist() == [0]  # globex's deals 0..6 all below 10
    frame = read_sql(
        store,
        "SELECT o.id, count(d.id) AS n FROM organizations o FULL JOIN deals d ON true "
        "GROUP BY o.id",
        org="acme",
    ).frame
    assert frame["n"].sum() == 30


def test_more_organizations_than_connections_take_turns(
    store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_reader, "CONNECTIONS", 2)
    with store.begin():  # a fresh handle with two connections
        pass
    opens = duckdb_reader.opens
    for _ in range(2):
        assert [count(store, org) for org in ("acme", "globex", "initech")] == [30, 7, 0]
        assert read_sql(store, "SELECT * FROM users", org="globex").frame.empty
    assert duckdb_reader.opens == opens + 1


def test_any_other_use_of_the_file_here_closes_it_first(store: Database) -> None:
    count(store)
    with store.engine.connect() as conn:  # a read-write connect outside Database.connect()
        assert conn.execute(text("SELECT count(*) FROM deals")).scalar_one() == 37
    count(store)
    with store.exclusive():  # a read-only handle of another configuration (known_orgs)
        handle = store.open_duckdb_readonly({})
        try:
            assert handle.execute("SELECT count(*) FROM users").fetchone() == (1,)
        finally:
            handle.close()
    assert count(store) == 30
