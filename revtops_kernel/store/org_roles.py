"""PostgreSQL: one login role per organization, so the database itself keeps orgs apart.

The boundary must hold even if the SQL guard had a bug and the query calls ``set_config`` or
``SET ROLE``. Row-level security keyed on a session setting does not hold (a query can change
the setting), nor does a role shared by all orgs. What holds:

- each organization reads through its own ``LOGIN`` role (``revtops_org_<hash>``): no
  superuser, no CREATEROLE/CREATEDB/REPLICATION, ``NOBYPASSRLS``, member of no role and owner
  of nothing, so ``SET ROLE`` / ``SET SESSION AUTHORIZATION`` have nowhere to go;
- it has ``SELECT`` on the readable tables only (granted to it directly, not through a group);
- every readable table has ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and the policy
  ``revtops_org_scope``: a row is visible when its organization is the one mapped to
  ``current_user`` in ``revtops_org_roles`` (a table owned by the admin role, each org role
  seeing only its own mapping row). ``current_user`` cannot be changed by the query;
- the table owner keeps full access through ``revtops_owner_all`` (FORCE would otherwise
  subject the syncing admin role to the SELECT-only policy);
- ``TEMPORARY`` on the database and ``pg_stat_activity`` (other sessions' queries) are revoked
  from ``PUBLIC``; an installed ``dblink`` or ``*_fdw`` extension is reported as a warning.

Role names are ``revtops_org_`` + 24 hex digits of SHA-256 of the org id (36 bytes, under
PostgreSQL's 63), the same in every database of a cluster: the mapping table, per database,
says which organization a role reads there.

Connecting as the role: with ``REVTOPS_READONLY_DATABASE_URL`` unset, the store URL with the
role as user and no password (trust, peer or certificate authentication, or a ``.pgpass``
entry). With it set, its host, port, database and options are used, the user name is replaced
by the org role, and its password is a master secret: each role's password is
HMAC-SHA256(secret, role name), set on the role when it is created and re-set after a failed
login, so no per-org password is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from revtops_kernel.errors import QueryRefusedError, StoreError
from revtops_kernel.settings import ORG_ID_PATTERN
from revtops_kernel.store.schema import readable_tables

log = logging.getLogger(__name__)

ROLE_PREFIX = "revtops_org_"
MAPPING_TABLE = "revtops_org_roles"
SCOPE_POLICY = "revtops_org_scope"
OWNER_POLICY = "revtops_owner_all"
MAPPING_POLICY = "revtops_own_mapping"
LEGACY_READER_ROLE = "revtops_reader"  # the shared, setting-keyed reader of the first design
UNSAFE_EXTENSIONS = ("dblink", "postgres_fdw", "file_fdw", "adminpack")


def role_name(org: str) -> str:
    """The PostgreSQL role that reads as ``org``: a fixed prefix and a hash (no quoting needed)."""
    _check_org(org)
    return ROLE_PREFIX + hashlib.sha256(org.encode()).hexdigest()[:24]


def role_password(secret: str, role: str) -> str:
    """The password of ``role`` derived from the master secret (hex, safe in a literal)."""
    return hmac.new(secret.encode(), role.encode(), hashlib.sha256).hexdigest()


def scope_column(table: str) -> str:
    return "id" if table == "organizations" else "organization_id"


def prepare_database(
    conn: Connection, *, password_for: Callable[[str], str | None] | None = None
) -> list[str]:
    """Policies, the mapping table and revocations; a role for every organization. Idempotent.

    Runs in ``revtops db upgrade`` as the admin role, so that at query time existing orgs need
    no CREATEROLE; ``password_for(role)`` gives each new role's password (or None). Returns
    warnings for what it could not do.
    """
    warnings: list[str] = []
    conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {MAPPING_TABLE} ("
            "role_name varchar(63) PRIMARY KEY, "
            "organization_id varchar(63) NOT NULL UNIQUE, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
    )
    conn.execute(
        text(
            f"COMMENT ON TABLE {MAPPING_TABLE} IS 'Which organization each revtops_org_* "
            "login role reads (row-level security keys on current_user through it).'"
        )
    )
    conn.execute(text(f"ALTER TABLE {MAPPING_TABLE} ENABLE ROW LEVEL SECURITY"))
    conn.execute(text(f"DROP POLICY IF EXISTS {MAPPING_POLICY} ON {MAPPING_TABLE}"))
    conn.execute(
        text(
            f"CREATE POLICY {MAPPING_POLICY} ON {MAPPING_TABLE} FOR SELECT "
            "USING (role_name = current_user)"
        )
    )
    preparer = conn.dialect.identifier_preparer
    for name, table in readable_tables().items():
        quoted = preparer.format_table(table)
        (owner,) = conn.execute(
            text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = CAST(:t AS regclass)"),
            {"t": quoted},
        ).one()
        conn.execute(text(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY"))
        conn.execute(text(f"ALTER TABLE {quoted} FORCE ROW LEVEL SECURITY"))
        conn.execute(text(f"DROP POLICY IF EXISTS {SCOPE_POLICY} ON {quoted}"))
        conn.execute(
            text(
                f"CREATE POLICY {SCOPE_POLICY} ON {quoted} FOR SELECT USING ("
                f"{preparer.quote(scope_column(name))} = (SELECT m.organization_id FROM "
                f"{MAPPING_TABLE} m WHERE m.role_name = current_user))"
            )
        )
        conn.execute(text(f"DROP POLICY IF EXISTS {OWNER_POLICY} ON {quoted}"))
        conn.execute(
            text(
                f"CREATE POLICY {OWNER_POLICY} ON {quoted} FOR ALL TO {preparer.quote(owner)} "
                "USING (true) WITH CHECK (true)"
            )
        )
    warnings += _revoke_legacy_reader(conn)
    warnings += _revoke_public_privileges(conn)
    warnings += _unsafe_extensions(conn)
    for role, org in conn.execute(text(f"SELECT role_name, organization_id FROM {MAPPING_TABLE}")):
        _grant(conn, role)  # readable tables added since the role was made
        log.debug("re-granted %s (%s)", role, org)
    orgs = [row[0] for row in conn.execute(text("SELECT id FROM organizations ORDER BY id"))]
    for org in orgs:
        if not ORG_ID_PATTERN.match(org):
            warnings.append(f"organization id {org!r} is not a slug; it gets no reader role")
            continue
        try:
            with conn.begin_nested():
                ensure_org_role(
                    conn, org, password=password_for(role_name(org)) if password_for else None
                )
        except StoreError as exc:
            warnings.append(str(exc))
    return warnings


def ensure_org_role(conn: Connection, org: str, *, password: str | None = None) -> str:
    """Create (if missing) and map the role of ``org`` in this database; return its name.

    ``password`` (derived with ``role_password``) is set when given. Needs CREATEROLE the first
    time an org is seen on the cluster; grants need the table owner (the admin role).
    """
    role = role_name(org)
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    mapped = conn.execute(
        text(f"SELECT organization_id FROM {MAPPING_TABLE} WHERE role_name = :r"), {"r": role}
    ).scalar_one_or_none()
    if exists and mapped == org and password is None:
        # Already set up here (upgrade re-grants new tables): no catalog writes, so concurrent
        # first queries of one org do not contend on the role's catalog rows.
        _require_harmless(conn, role)
        return role
    if not exists:
        try:
            with conn.begin_nested():
                conn.execute(
                    text(
                        f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        "NOINHERIT NOREPLICATION NOBYPASSRLS"
                    )
                )
                # A session default for direct connections; the privileges are what bind.
                conn.execute(text(f"ALTER ROLE {role} SET default_transaction_read_only = on"))
        except DBAPIError as exc:
            # Another session created it meanwhile (roles are cluster-wide), or no CREATEROLE.
            if not conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
            ).first():
                raise StoreError(
                    f"cannot create the PostgreSQL role {role} for organization {org!r} "
                    f"({getattr(exc, 'orig', exc)}); run `revtops db upgrade` or the first "
                    "query of each organization as a role with CREATEROLE"
                ) from exc
    _require_harmless(conn, role)
    if password is not None:
        conn.execute(text(f"ALTER ROLE {role} PASSWORD '{password}'"))
    _grant(conn, role)
    conn.execute(
        text(
            f"INSERT INTO {MAPPING_TABLE} (role_name, organization_id) VALUES (:r, :o) "
            "ON CONFLICT (role_name) DO NOTHING"
        ),
        {"r": role, "o": org},
    )
    mapped = conn.execute(
        text(f"SELECT organization_id FROM {MAPPING_TABLE} WHERE role_name = :r"), {"r": role}
    ).scalar_one()
    if mapped != org:
        raise StoreError(f"role {role} is mapped to {mapped!r}, not {org!r}: a hash collision")
    return role


def drop_org_role(conn: Connection, org: str) -> None:
    """Remove ``org``'s role from this database (its grants and mapping); drop it if unused."""
    role = role_name(org)
    if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
        return
    conn.execute(text(f"DELETE FROM {MAPPING_TABLE} WHERE role_name = :r"), {"r": role})
    conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_schema(conn)} FROM {role}"))
    conn.execute(text(f"REVOKE ALL ON SCHEMA {_schema(conn)} FROM {role}"))
    try:
        with conn.begin_nested():
            conn.execute(text(f"DROP ROLE {role}"))
    except DBAPIError:
        log.info("role %s still has privileges in another database; kept", role)


def _grant(conn: Connection, role: str) -> None:
    preparer = conn.dialect.identifier_preparer
    schema = _schema(conn)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
    conn.execute(text(f"GRANT SELECT ON {MAPPING_TABLE} TO {role}"))
    for table in readable_tables().values():
        conn.execute(text(f"GRANT SELECT ON {preparer.format_table(table)} TO {role}"))


def _schema(conn: Connection) -> str:
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return str(conn.dialect.identifier_preparer.quote(schema))


def _require_harmless(conn: Connection, role: str) -> None:
    """Refuse to hand out a role that could escape: one with powers, members or memberships."""
    row = conn.execute(
        text(
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls, "
            "EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid OR m.roleid = r.oid) "
            "FROM pg_roles r WHERE rolname = :r"
        ),
        {"r": role},
    ).one()
    if row[0] or row[1]:
        raise StoreError(
            f"the PostgreSQL role {role} has privileges or role memberships an org reader must "
            "not have; drop it (DROP ROLE) and let revtops recreate it"
        )


def _revoke_legacy_reader(conn: Connection) -> list[str]:
    if not conn.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": LEGACY_READER_ROLE}
    ).first():
        return []
    conn.execute(
        text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_schema(conn)} FROM {LEGACY_READER_ROLE}")
    )
    return []


def _revoke_public_privileges(conn: Connection) -> list[str]:
    """TEMP and other sessions' activity: revoked from PUBLIC, TEMP kept for the admin role."""
    warnings = []
    steps = [
        "GRANT TEMPORARY ON DATABASE {db} TO CURRENT_USER",
        "REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC",
        "REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC",
        "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) FROM PUBLIC",
    ]
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    quoted_db = conn.dialect.identifier_preparer.quote(database)
    for step in steps:
        statement = step.format(db=quoted_db)
        try:
            with conn.begin_nested():
                conn.execute(text(statement))
        except DBAPIError as exc:
            message = (
                f"could not run `{statement}` ({getattr(exc, 'orig', exc)}); run it as a "
                "superuser so org roles cannot use it"
            )
            log.warning(message)
            warnings.append(message)
    return warnings


def _unsafe_extensions(conn: Connection) -> list[str]:
    installed = [
        row[0]
        for row in conn.execute(
            text("SELECT extname FROM pg_extension WHERE extname = ANY(:names)"),
            {"names": list(UNSAFE_EXTENSIONS)},
        )
    ]
    return [
        f"extension {name} is installed in this database: it can reach other databases or "
        "files; drop it (DROP EXTENSION) unless you need it"
        for name in installed
    ]


def _check_org(org: str) -> None:
    if not ORG_ID_PATTERN.match(org):
        raise QueryRefusedError(f"not an organization id: {org!r}")
