"""A store session's statement ends when its client process dies (PostgreSQL 14+:
client_connection_check_interval), instead of running to its end: a killed scale-10 sync's
refresh kept its backend busy ~55 min, holding locks and blocking CREATE DATABASE ... TEMPLATE."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from revtops_kernel.store.database import DEAD_CLIENT_CHECK, Database

pytestmark = pytest.mark.postgres

APPLICATION = "revtops-dead-client-test"


def _backends(admin: str) -> list[tuple[int, str]]:
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE application_name = %s AND "
            "state = 'active'",
            (APPLICATION,),
        ).fetchall()
    return [(pid, query) for pid, query in rows]


def test_store_sessions_check_for_their_client(postgres_db: Database) -> None:
    with postgres_db.engine.connect() as conn:
        setting = conn.execute(text("SHOW client_connection_check_interval")).scalar_one()
        conn.rollback()  # the pool's reset must not undo it either: read it again
    with postgres_db.engine.connect() as conn:
        again = conn.execute(text("SHOW client_connection_check_interval")).scalar_one()
    assert setting == again == DEAD_CLIENT_CHECK


def test_a_killed_clients_statement_ends(postgres_url: str) -> None:
    url = make_url(postgres_url).update_query_dict({"application_name": APPLICATION})
    child = textwrap.dedent(
        f"""
        from sqlalchemy import text
        import revtops_kernel.store.database as database
        database.DEAD_CLIENT_CHECK = "1s"  # the test's patience, not the product's
        db = database.Database({url.render_as_string(hide_password=False)!r})
        with db.engine.connect() as conn:
            print("running", flush=True)
            conn.execute(text("SELECT pg_sleep(120)"))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    admin = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
        deadline = time.monotonic() + 20
        while not _backends(admin):
            assert time.monotonic() < deadline, "the child's statement never showed"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)  # no goodbye to the server
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        while _backends(admin):
            assert time.monotonic() - killed_at < 15, "the dead client's statement still runs"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with psycopg.connect(admin, autocommit=True) as conn:  # never leave it behind
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (APPLICATION,),
            )
