"""The read-only path refuses what the assistant must never do, on both backends."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import text

from revtops_kernel.errors import QueryError, QueryRefusedError, QueryTimeoutError
from revtops_kernel.store import Database
from revtops_kernel.store.org_roles import role_name
from revtops_kernel.store.query import read_sql
from revtops_kernel.store.upsert import upsert

T0 = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def loaded(db: Database) -> Database:
    rows = [
        {
            "organization_id": org,
            "source_system": "hubspot",
            "source_id": str(i),
            "name": f"{org} deal {i}",
            "amount": i * 100,
            "updated_at": T0,
        }
        for org, count in (("acme", 30), ("globex", 7))
        for i in range(count)
    ]
    with db.begin() as conn:
        upsert(conn, "deals", rows)
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, domain, created_at, updated_at) VALUES "
                "('acme', 'Acme', 'acme.com', :t, :t), ('globex', 'Globex', 'globex.com', :t, :t)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, organization_id, email, role, created_at) VALUES "
                "('00000000-0000-0000-0000-000000000001', 'acme', 'ana@acme.com', 'admin', :t)"
            ),
            {"t": T0},
        )
    return db


def count_deals(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM deals")).scalar_one())


def test_a_select_returns_a_frame(loaded: Database) -> None:
    result = read_sql(
        loaded,
        "SELECT name, amount FROM deals WHERE amount >= :low ORDER BY amount DESC",
        {"low": 2500},
        org="acme",
    )
    assert isinstance(result.frame, pd.DataFrame)
    assert list(result.frame.columns) == ["name", "amount"]
    assert result.frame["name"].tolist() == [
        "acme deal 29",
        "acme deal 28",
        "acme deal 27",
        "acme deal 26",
        "acme deal 25",
    ]
    assert not result.truncated


def test_results_are_cut_at_max_rows_and_say_so(loaded: Database) -> None:
    result = read_sql(loaded, "SELECT * FROM deals", org="acme", max_rows=10)
    assert (result.row_count, result.truncated) == (10, True)
    exact = read_sql(loaded, "SELECT * FROM deals", org="acme", max_rows=30)
    assert (exact.row_count, exact.truncated) == (30, False)


def test_only_the_given_organization_is_visible(loaded: Database) -> None:
    for org, expected in (("acme", 30), ("globex", 7), ("initech", 0)):
        frame = read_sql(loaded, "SELECT count(*) AS n FROM deals", org=org).frame
        assert int(frame["n"][0]) == expected
    # Schema-qualified names reach the same scoped rows.
    frame = (
        read_sql(loaded, "SELECT count(*) AS n FROM main.deals", org="globex").frame
        if loaded.is_duckdb
        else read_sql(loaded, "SELECT count(*) AS n FROM public.deals", org="globex").frame
    )
    assert int(frame["n"][0]) == 7
    orgs = read_sql(loaded, "SELECT id FROM organizations", org="globex").frame
    assert orgs["id"].tolist() == ["globex"]


def test_tables_outside_the_readable_set_show_nothing(loaded: Database) -> None:
    try:
        frame = read_sql(loaded, "SELECT * FROM users", org="acme").frame
    except QueryRefusedError:
        return  # PostgreSQL: no privilege at all
    assert frame.empty  # DuckDB: shadowed by an empty view


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO deals (id, organization_id, source_system, source_id) "
        "VALUES ('00000000-0000-0000-0000-000000000009', 'acme', 'hubspot', 'x')",
        "UPDATE deals SET name = 'pwned'",
        "DELETE FROM deals",
        "DROP TABLE deals",
        "CREATE TABLE stolen AS SELECT * FROM deals",
        "TRUNCATE deals",
        "WITH gone AS (DELETE FROM deals RETURNING *) SELECT count(*) FROM gone",
        "SELECT 1; DELETE FROM deals",
    ],
)
def test_writes_are_refused(loaded: Database, sql: str) -> None:
    with pytest.raises(QueryError):
        read_sql(loaded, sql, org="acme")
    assert count_deals(loaded) == 37


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT pg_read_file('/etc/passwd')",
        "COPY deals TO '/tmp/revtops-stolen.csv'",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_files_are_out_of_reach(loaded: Database, sql: str) -> None:
    with pytest.raises(QueryError):
        read_sql(loaded, sql, org="acme")


def test_a_dataframe_in_scope_is_out_of_reach(loaded: Database) -> None:
    secrets = pd.DataFrame({"token": ["sk-live-123"]})  # DuckDB could scan this by name
    assert not secrets.empty
    with pytest.raises(QueryError, match="secrets"):
        read_sql(loaded, "SELECT * FROM secrets", org="acme")


def test_attach_is_refused(loaded: Database, tmp_path: object) -> None:
    with pytest.raises(QueryError):
        read_sql(loaded, "ATTACH '/tmp/revtops-other.duckdb' AS other", org="acme")


@pytest.mark.parametrize(
    "sql",
    [
        "SET statement_timeout = 0",
        "SET threads = 1",
        "RESET ALL",
        "SET ROLE postgres",
        "PRAGMA enable_external_access",
    ],
)
def test_settings_cannot_be_changed(loaded: Database, sql: str) -> None:
    with pytest.raises(QueryError):
        read_sql(loaded, sql, org="acme")


@pytest.mark.parametrize(
    "sql",
    ["EXPLAIN SELECT * FROM deals", "RESET ALL", "VALUES (1) ; SELECT 2"],
)
def test_only_a_selects_rows_come_back(loaded: Database, sql: str) -> None:
    with pytest.raises(QueryError) as caught:
        read_sql(loaded, sql, org="acme")
    if not loaded.is_duckdb:  # DuckDB's parser refuses some of them before that check
        assert "only a single SELECT (or VALUES) query can run here" in str(caught.value)
    assert read_sql(loaded, "VALUES (1), (2)", org="acme").row_count == 2


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "sql", ["SHOW search_path", "COPY deals TO STDOUT", "COPY deals FROM STDIN"]
)  # (DuckDB's SHOW is a SELECT of its settings)
def test_a_show_or_copy_is_refused_and_the_next_query_runs(loaded: Database, sql: str) -> None:
    with pytest.raises(QueryError):
        read_sql(loaded, sql, org="acme")
    assert read_sql(loaded, "SELECT count(*) AS n FROM deals", org="acme").frame["n"][0] == 30


@pytest.mark.postgres
def test_postgresql_may_run_the_query_with_parallel_workers(postgres_db: Database) -> None:
    """The read path runs the statement to the end in one step, the way PostgreSQL may run
    a parallel plan (a server-side cursor never does): with parallel query forced for the
    organization's role, a worker appears beside the read's session while it runs."""
    read_sql(postgres_db, "SELECT 1", org="acme")  # the role exists
    role = role_name("acme")
    with postgres_db.connect() as conn:
        version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    force = "debug_parallel_query" if version >= 160000 else "force_parallel_mode"
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with postgres_db.connect() as conn:
            while not done.is_set():
                workers = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity w JOIN pg_stat_activity l "
                        "ON l.pid = w.leader_pid WHERE w.backend_type = 'parallel worker' "
                        "AND l.usename = :role"
                    ),
                    {"role": role},
                ).scalar_one()
                seen.append(int(workers))
                conn.rollback()
                time.sleep(0.02)

    with postgres_db.begin() as conn:
        conn.execute(text(f'ALTER ROLE "{role}" SET {force} = on'))
    postgres_db.dispose()  # a role's settings reach new sessions: not the pooled one
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        frame = read_sql(postgres_db, "SELECT pg_sleep(0.6) IS NULL AS slept", org="acme").frame
    finally:
        done.set()
        watcher.join()
        with postgres_db.begin() as conn:
            conn.execute(text(f'ALTER ROLE "{role}" RESET {force}'))
    assert frame["slept"].tolist() == [False]
    assert max(seen) >= 1


@pytest.mark.postgres
def test_a_set_config_inside_a_select_is_rolled_back(postgres_db: Database) -> None:
    read_sql(postgres_db, "SELECT set_config('statement_timeout', '0', false)", org="acme")
    read_sql(postgres_db, "SELECT set_config('search_path', 'pg_temp', false)", org="acme")
    frame = read_sql(
        postgres_db,
        "SELECT current_setting('statement_timeout') AS t, "
        "current_setting('search_path') AS path, current_user AS who",
        org="acme",
        timeout=7,
    ).frame
    assert frame.to_dict("records") == [
        {"t": "7s", "path": '"$user", public', "who": role_name("acme")}
    ]


@pytest.mark.postgres
def test_a_read_gets_work_mem_for_its_sorts_but_never_less_than_configured(
    postgres_db: Database,
) -> None:
    def work_mem() -> str:
        sql = "SELECT current_setting('work_mem') AS m"
        return str(read_sql(postgres_db, sql, org="acme").frame["m"][0])

    assert work_mem() == "16MB"  # the server's default is 4MB
    role = role_name("acme")
    with postgres_db.begin() as conn:
        conn.execute(text(f"ALTER ROLE \"{role}\" SET work_mem = '64MB'"))
    postgres_db.dispose()  # a role's settings reach new sessions: not the pooled one
    try:
        assert work_mem() == "64MB"  # an operator's larger setting stands
    finally:
        with postgres_db.begin() as conn:
            conn.execute(text(f'ALTER ROLE "{role}" RESET work_mem'))
        postgres_db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_each_organization_reads_as_its_own_role(loaded: Database) -> None:
    for org in ("acme", "globex"):
        frame = read_sql(loaded, "SELECT current_user AS who, count(*) AS n FROM deals", org=org)
        assert frame.frame["who"][0] == role_name(org)
    # A session setting is no key to another org's rows any more.
    frame = read_sql(
        loaded,
        "SELECT set_config('revtops.org_id', 'globex', true) AS s, "
        "(SELECT count(*) FROM deals WHERE organization_id = 'globex') AS n",
        org="acme",
    ).frame
    assert int(frame["n"][0]) == 0


@pytest.mark.postgres
def test_session_state_does_not_outlive_a_query(postgres_db: Database) -> None:
    read_sql(postgres_db, "SELECT pg_advisory_lock(42)", org="acme")
    with postgres_db.connect() as conn:
        # Only this lock: a sync lock another test's process still holds on this worker's
        # server is not the read path's (seen in a parallel run).
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 "
                "AND classid = 0 AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"
            )
        )
        assert held.scalar_one() == 0


def _session(db: Database, org: str = "acme") -> int:
    return int(read_sql(db, "SELECT pg_backend_pid() AS pid", org=org).frame["pid"][0])


@pytest.mark.postgres
def test_the_read_session_is_reused_and_nothing_a_query_left_survives_to_the_next(
    postgres_db: Database,
) -> None:
    """One session serves the organization's reads one after another (so these checks look at
    the very session the earlier queries ran on), reset between them as a new one would be."""
    first = _session(postgres_db)
    assert _session(postgres_db) == first
    read_sql(postgres_db, "SELECT pg_advisory_lock(43), pg_advisory_lock_shared(44)", org="acme")
    read_sql(postgres_db, "SELECT set_config('my.flag', 'left', false)", org="acme")
    read_sql(postgres_db, "SELECT set_config('application_name', 'left', false)", org="acme")
    for sql in (
        "SET work_mem = '1MB'",
        "SET SESSION statement_timeout = 0",
        "CREATE TEMP TABLE left_behind AS SELECT 1 AS x",
        "PREPARE left_behind AS SELECT 1",
        "DECLARE left_behind CURSOR WITH HOLD FOR SELECT 1",
        "LISTEN left_behind",
    ):
        with pytest.raises(QueryError):
            read_sql(postgres_db, sql, org="acme")
    state = read_sql(
        postgres_db,
        "SELECT pg_backend_pid() AS pid, "
        "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND pid = pg_backend_pid()) AS locks, "
        # The read's own statement is the one prepared now.
        "(SELECT count(*) FROM pg_prepared_statements) AS prepared, "
        "(SELECT count(*) FROM pg_cursors WHERE is_holdable) AS cursors, "
        "(SELECT count(*) FROM pg_listening_channels()) AS listening, "
        "to_regclass('pg_temp.left_behind') IS NULL AS no_temp, "
        "current_setting('my.flag', true) AS flag, current_setting('work_mem') AS work_mem, "
        "current_setting('statement_timeout') AS timeout, "
        "current_setting('application_name') AS app, current_user AS who",
        org="acme",
        timeout=9,
    ).frame.to_dict("records")[0]
    assert state["pid"] == first
    assert (state["locks"], state["prepared"], state["cursors"], state["listening"]) == (0, 1, 0, 0)
    assert state["no_temp"]
    assert state["flag"] in ("", None)
    assert (state["work_mem"], state["timeout"], state["app"]) == ("16MB", "9s", "")
    assert state["who"] == role_name("acme")


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_organizations_never_share_a_read_session(loaded: Database) -> None:
    acme, globex = _session(loaded, "acme"), _session(loaded, "globex")
    assert acme != globex
    assert _session(loaded, "acme") == acme
    assert read_sql(loaded, "SELECT count(*) AS n FROM deals", org="globex").frame["n"][0] == 7
    assert read_sql(loaded, "SELECT count(*) AS n FROM deals", org="acme").frame["n"][0] == 30


@pytest.mark.postgres
def test_a_session_the_client_timer_cancelled_is_not_reused(
    postgres_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's cancel may land after the query ended, on whatever the session runs next:
    that session is closed, and the next read gets a new one."""
    from revtops_kernel.store import query

    before = _session(postgres_db)
    monkeypatch.setattr(query, "CLIENT_GRACE_SECONDS", -0.7)  # the client's timer fires first
    with pytest.raises(QueryTimeoutError):
        read_sql(postgres_db, "SELECT pg_sleep(3)", org="acme", timeout=1.0)
    monkeypatch.undo()
    assert _session(postgres_db) != before


def test_a_runaway_cross_join_stops_at_the_timeout(loaded: Database) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError) as caught:
        read_sql(
            loaded,
            "SELECT count(*) FROM deals a, deals b, deals c, deals d, deals e, deals f, deals g",
            org="acme",
            timeout=1.0,
        )
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert caught.value.timeout_seconds == 1.0
    # The store is still usable afterwards.
    assert read_sql(loaded, "SELECT count(*) AS n FROM deals", org="acme").frame["n"][0] == 30


def test_a_bad_organization_id_is_refused(loaded: Database) -> None:
    with pytest.raises(QueryRefusedError):
        read_sql(loaded, "SELECT 1", org="acme' OR true --")


def test_syntax_errors_come_back_as_query_errors(loaded: Database) -> None:
    with pytest.raises(QueryError):
        read_sql(loaded, "SELEC name FROM deals", org="acme")
    with pytest.raises(QueryError, match="no_such_column"):
        read_sql(loaded, "SELECT no_such_column FROM deals", org="acme")
