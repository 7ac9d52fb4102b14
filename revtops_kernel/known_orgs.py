"""Which organizations a store knows, so a mistyped ``--org`` is an error, not zero rows.

An organization is known when it has an ``organizations`` row, a sync run, a connected
integration, or synced rows (a single-user store syncs into REVTOPS_ORG without ever creating
an ``organizations`` row). A store that knows none yet (before the first sync) accepts any id:
there is nothing to mistake it for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from revtops_kernel.errors import UnknownOrganizationError
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata

# Tables whose organization ids make an organization known (bookkeeping first: small).
_BOOKKEEPING = ("sync_runs", "integrations", "sync_cursors")
_SYNCED_KEY = {"organization_id", "source_system", "source_id"}


def _org_tables(present: set[str]) -> list[str]:
    """``organizations`` aside, the tables whose rows belong to a synced organization."""
    tables = [name for name in _BOOKKEEPING if name in present]
    for table in metadata.sorted_tables:
        if table.name in present and set(table.c.keys()) >= _SYNCED_KEY:
            tables.append(table.name)
    return tables


Query = Callable[..., list[tuple[Any, ...]]]  # (sql, params=()) -> rows


@contextmanager
def _reader(db: Database) -> Iterator[Query]:
    """One read-only DuckDB handle for every query of a check (opening the file is most of a
    query's time: it reads the catalog), or PostgreSQL connections."""
    if not db.is_duckdb:
        yield lambda sql, params=(): _query(db, sql, params)
        return
    from pathlib import Path

    if not Path(db.duckdb_path).exists():
        yield lambda sql, params=(): []
        return
    with db.exclusive():
        handle = db.open_duckdb_readonly({})
        try:
            yield lambda sql, params=(): [
                tuple(row) for row in handle.execute(sql, list(params)).fetchall()
            ]
        finally:
            handle.close()


def _query(db: Database, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``?`` placeholders) read-only: a read-only DuckDB handle (no write lock, no
    SQLAlchemy engine to build for a one-shot command), or a PostgreSQL connection."""
    if db.is_duckdb:
        with _reader(db) as query:
            return query(sql, params)
    from sqlalchemy import text

    first, *rest = sql.split("?")  # our SQL has no other question marks
    bound = first + "".join(f":p{i}{tail}" for i, tail in enumerate(rest))
    with db.connect() as conn:
        result = conn.execute(text(bound), {f"p{i}": value for i, value in enumerate(params)})
        return [tuple(row) for row in result]


def _present(db: Database, query: Query) -> set[str]:
    schema = "'main'" if db.is_duckdb else "current_schema()"
    rows = query(f"SELECT table_name FROM information_schema.tables WHERE table_schema = {schema}")
    return {str(row[0]) for row in rows}


def known_organizations(db: Database) -> list[str]:
    """Every organization id the store knows, sorted (empty before the schema exists)."""
    with _reader(db) as query:
        return _known(db, query)


def _known(db: Database, query: Query) -> list[str]:
    present = _present(db, query)
    selects = [f"SELECT organization_id AS id FROM {name}" for name in _org_tables(present)]
    if "organizations" in present:
        selects.append("SELECT id FROM organizations")
    if not selects:
        return []
    rows = query(" UNION ".join(selects))
    return sorted({str(row[0]) for row in rows if row[0]})


def is_known(db: Database, org: str) -> bool:
    """Whether ``org`` is known: one indexed existence check per table, no full scans."""
    with _reader(db) as query:
        return _is_known(db, query, org)


def _is_known(db: Database, query: Query, org: str) -> bool:
    present = _present(db, query)
    checks = [
        f"EXISTS (SELECT 1 FROM {name} WHERE organization_id = ?)" for name in _org_tables(present)
    ]
    if "organizations" in present:
        checks.append("EXISTS (SELECT 1 FROM organizations WHERE id = ?)")
    if not checks:
        return False
    rows = query("SELECT " + " OR ".join(checks), [org] * len(checks))
    return bool(rows and rows[0][0])


def require_known_org(db: Database, org: str) -> None:
    """Raise ``UnknownOrganizationError`` (listing the known ones) unless ``org`` is known.

    A store that knows no organization at all accepts any id (nothing was synced yet).
    """
    with _reader(db) as query:  # one handle for both checks
        if _is_known(db, query, org):
            return
        known = _known(db, query)
    if known:
        raise UnknownOrganizationError(org, known)
