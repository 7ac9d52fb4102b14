"""Throwaway PostgreSQL databases for tests and benchmarks: created empty, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import URL, make_url


@contextmanager
def scratch_postgres(admin_url: str | URL, *, prefix: str = "revtops_scratch") -> Iterator[str]:
    """A new database on the server of ``admin_url``; yields its ``postgresql+psycopg`` URL.

    The database is dropped WITH (FORCE) on exit, so connections left open cannot keep it.
    """
    admin = make_url(admin_url).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name, drivername="postgresql+psycopg").render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
