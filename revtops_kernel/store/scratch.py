"""Throwaway databases for tests and benchmarks: created empty, dropped afterwards."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import URL, make_url

from revtops_kernel.store.database import Database


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


@contextmanager
def scratch_store(
    backend: str, admin_url: str | URL, *, prefix: str = "revtops_scratch"
) -> Iterator[Database]:
    """An empty store on ``backend`` (``duckdb``: a file in a temporary folder; ``postgresql``:
    a ``scratch_postgres`` database on the server of ``admin_url``), disposed and removed after."""
    if backend == "duckdb":
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}_"))
        db = Database(f"duckdb:///{folder / 'store.duckdb'}")
        try:
            yield db
        finally:
            db.dispose()
            shutil.rmtree(folder, ignore_errors=True)
        return
    with scratch_postgres(admin_url, prefix=prefix) as url:
        db = Database(url)
        try:
            yield db
        finally:
            db.dispose()
