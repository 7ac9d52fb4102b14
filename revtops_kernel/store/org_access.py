"""Organization-scoped store access for code an organization controls (its workflow runs).

A trusted process (the workflow runner, connected as the store's admin) prepares the
organization's writer role and hands the notebook only ``org_writer_url``: the store's host,
port, database and options with the writer as user (see ``org_roles``). The notebook then
calls ``ensure_schema`` instead of ``upgrade``: as the admin it upgrades as before; as an
organization's role, which may not run DDL, it only checks that the schema is current.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from revtops_kernel.errors import SchemaError
from revtops_kernel.store.database import Database
from revtops_kernel.store.migrate import UpgradeReport, current_version, target_version, upgrade
from revtops_kernel.store.org_roles import (
    ROLE_PREFIX,
    WRITER_PREFIX,
    ensure_org_writer,
    writer_role_name,
)


def org_writer_url(db: Database, org: str, *, readonly_url: str | None = None) -> URL:
    """Create (if needed) ``org``'s writer role through the admin ``db``; the URL to log in as it.

    ``readonly_url`` (REVTOPS_READONLY_DATABASE_URL) supplies the host, port, database, options
    and master secret as for the readers; without it the store URL is used, with no password.
    """
    if db.is_duckdb:
        raise SchemaError("an embedded DuckDB file has no per-organization roles: use PostgreSQL")
    role = writer_role_name(org)
    password = db.org_reader_password(role)
    with db.begin() as conn:
        ensure_org_writer(conn, org, password=password)
    base = make_url(readonly_url) if readonly_url else db.url
    return base.set(username=role, password=password)


def connected_as_org_role(db: Database) -> bool:
    """Whether ``db`` logs in as an organization's reader or writer (PostgreSQL only)."""
    if db.is_duckdb:
        return False
    with db.connect() as conn:
        user = str(conn.execute(text("SELECT current_user")).scalar_one())
    return user.startswith((ROLE_PREFIX, WRITER_PREFIX))


def ensure_schema(db: Database) -> UpgradeReport | None:
    """``upgrade(db)`` as the admin; as an organization's role, check the version only.

    Returns the upgrade's report, or None when only checked. An organization's role finding
    the schema behind gets a ``SchemaError`` saying to run ``revtops db upgrade``.
    """
    if not connected_as_org_role(db):
        return upgrade(db)
    version, wanted = current_version(db), target_version()
    if version is None or version < wanted:
        raise SchemaError(
            f"the store's schema is at version {version}, this revtops needs {wanted}; an "
            "organization's workflow cannot upgrade it: run `revtops db upgrade` as the admin"
        )
    return None
