"""Which organizations a store knows, so a mistyped ``--org`` is an error, not zero rows.

An organization is known when it has an ``organizations`` row, a sync run, a connected
integration, or synced rows (a single-user store syncs into REVTOPS_ORG without ever creating
an ``organizations`` row). A store that knows none yet (before the first sync) accepts any id:
there is nothing to mistake it for.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, exists, inspect, literal, or_, select, union

from revtops_kernel.errors import UnknownOrganizationError
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata

# Tables whose organization ids make an organization known (bookkeeping first: small).
_BOOKKEEPING = ("sync_runs", "integrations", "sync_cursors")


def _org_tables(present: set[str]) -> list[Table]:
    """``organizations`` aside, the tables whose rows belong to a synced organization."""
    tables = [metadata.tables[name] for name in _BOOKKEEPING if name in present]
    for table in metadata.sorted_tables:
        columns = table.c.keys()
        if table.name in present and {"organization_id", "source_system", "source_id"} <= set(
            columns
        ):
            tables.append(table)
    return tables


def _present(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def known_organizations(db: Database) -> list[str]:
    """Every organization id the store knows, sorted (empty before the schema exists)."""
    with db.connect() as conn:
        present = _present(conn)
        queries = [select(t.c.organization_id.label("id")) for t in _org_tables(present)]
        if "organizations" in present:
            queries.append(select(metadata.tables["organizations"].c.id.label("id")))
        if not queries:
            return []
        rows = conn.execute(union(*queries)).scalars()
        return sorted({str(org) for org in rows if org})


def is_known(db: Database, org: str) -> bool:
    """Whether ``org`` is known: one indexed existence check per table, no full scans."""
    with db.connect() as conn:
        present = _present(conn)
        checks = [exists().where(t.c.organization_id == org) for t in _org_tables(present)]
        if "organizations" in present:
            orgs = metadata.tables["organizations"]
            checks.append(exists().where(orgs.c.id == org))
        if not checks:
            return False
        return bool(conn.execute(select(or_(literal(False), *checks))).scalar())


def require_known_org(db: Database, org: str) -> None:
    """Raise ``UnknownOrganizationError`` (listing the known ones) unless ``org`` is known.

    A store that knows no organization at all accepts any id (nothing was synced yet).
    """
    if is_known(db, org):
        return
    known = known_organizations(db)
    if known:
        raise UnknownOrganizationError(org, known)
