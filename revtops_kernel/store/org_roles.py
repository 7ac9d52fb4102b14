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

Each organization also has a writer, ``revtops_orgw_<hash>``, for its scheduled workflow runs
(a sync writes; the assistant's reader must stay read-only). It is as harmless as the reader,
is mapped in its own table ``revtops_org_writers``, and the policy ``revtops_org_write``
(``FOR ALL``, ``USING`` and ``WITH CHECK`` the mapped organization) is the only one that
matches it: it reads and writes its organization's synced rows (``WRITER_TABLES``), may add
its own organization and record syncs on its integrations (those columns only, never the Nango
connection), reads its own workflows and runs, and has ``TEMPORARY`` (the upsert stages rows in
a session-private temp table). No ``users``, ``waitlist``, conversations, DDL or schema writes.
Its password follows the readers' scheme (HMAC of the master secret with its own name).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from revtops_kernel.errors import QueryRefusedError, StoreError
from revtops_kernel.settings import ORG_ID_PATTERN
from revtops_kernel.store.schema import metadata, readable_tables

log = logging.getLogger(__name__)

ROLE_PREFIX = "revtops_org_"
WRITER_PREFIX = "revtops_orgw_"
MAPPING_TABLE = "revtops_org_roles"
WRITER_MAPPING_TABLE = "revtops_org_writers"
WRITE_POLICY = "revtops_org_write"
# Tables of a sync's own state that the assistant does not read but a sync writes.
SYNC_BOOKKEEPING_TABLES = (
    "sync_cursors",
    "quarantined_records",
    "identity_resolutions",
    "derived_changes",  # store.change_journal: its triggers write it as the writer
    "derived_marks",  # store.deal_states: a sync's refresh moves them
)
SCHEMA_VERSIONS_TABLE = "revtops_schema"  # store.migrate's; org writers read the version
# Beyond the synced tables, what a writer may do, column by column where it matters: add its own
# organization (a sync ensures it), record a sync on its integration (never its Nango
# connection, which decides whose provider account a trusted runner fetches tokens for).
WRITER_COLUMN_GRANTS = {
    "organizations": ("SELECT", "INSERT (id, name, created_at, updated_at)"),
    "integrations": (
        "SELECT",
        "INSERT (id, organization_id, provider, status, created_at, updated_at)",
        "UPDATE (status, last_sync_at, last_error, updated_at)",
    ),
    "workflows": ("SELECT",),
    "workflow_runs": ("SELECT",),
}
SCOPE_POLICY = "revtops_org_scope"
OWNER_POLICY = "revtops_owner_all"
MAPPING_POLICY = "revtops_own_mapping"
LEGACY_READER_ROLE = "revtops_reader"  # the shared, setting-keyed reader of the first design
UNSAFE_EXTENSIONS = ("dblink", "postgres_fdw", "file_fdw", "adminpack")


def role_name(org: str) -> str:
    """The PostgreSQL role that reads as ``org``: a fixed prefix and a hash (no quoting needed)."""
    _check_org(org)
    return ROLE_PREFIX + hashlib.sha256(org.encode()).hexdigest()[:24]


def writer_role_name(org: str) -> str:
    """The PostgreSQL role that writes as ``org`` (its workflow runs): prefix and the same hash."""
    _check_org(org)
    return WRITER_PREFIX + hashlib.sha256(org.encode()).hexdigest()[:24]


def writer_tables() -> dict[str, Any]:
    """The tables an org writer reads and writes in full (within its organization's rows):
    what a sync writes. Every readable table but ``organizations``, plus the sync's own."""
    tables = {name: t for name, t in readable_tables().items() if name != "organizations"}
    for name in SYNC_BOOKKEEPING_TABLES:
        if name in metadata.tables:
            tables[name] = metadata.tables[name]
    return tables


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
    _lock_role_setup(conn)  # its re-grants write the ACL rows a run's role setup writes
    _create_mapping_table(conn, MAPPING_TABLE, "revtops_org_* login role reads")
    preparer = conn.dialect.identifier_preparer
    for name, table in readable_tables().items():
        quoted = preparer.format_table(table)
        _force_row_security(conn, quoted)
        _ensure_policy(
            conn,
            quoted,
            SCOPE_POLICY,
            f"FOR SELECT USING ({preparer.quote(scope_column(name))} = (SELECT m.organization_id "
            f"FROM {MAPPING_TABLE} m WHERE m.role_name = current_user))",
        )
    _prepare_writer_policies(conn)
    warnings += _revoke_legacy_reader(conn)
    warnings += _revoke_public_privileges(conn)
    warnings += _unsafe_extensions(conn)
    for role, org in conn.execute(text(f"SELECT role_name, organization_id FROM {MAPPING_TABLE}")):
        _grant(conn, role)  # readable tables added since the role was made
        log.debug("re-granted %s (%s)", role, org)
    for role in conn.execute(text(f"SELECT role_name FROM {WRITER_MAPPING_TABLE}")).scalars():
        _grant_writer(conn, role)
    orgs = [row[0] for row in conn.execute(text("SELECT id FROM organizations ORDER BY id"))]
    for org in orgs:
        if not ORG_ID_PATTERN.match(org):
            warnings.append(f"organization id {org!r} is not a slug; it gets no reader role")
            continue
        for ensure, name_of in (
            (ensure_org_role, role_name),
            (ensure_org_writer, writer_role_name),
        ):
            try:
                with conn.begin_nested():
                    password = password_for(name_of(org)) if password_for else None
                    ensure(conn, org, password=password)
            except StoreError as exc:
                warnings.append(str(exc))
    return warnings


def _prepare_writer_policies(conn: Connection) -> None:
    """The writers' mapping table, and ``revtops_org_write`` on every table a writer touches.

    The policy applies to every role but matches only writers: a reader (or any other role) is
    not in ``revtops_org_writers``, so for it the subquery is NULL and no row qualifies.
    """
    _create_mapping_table(conn, WRITER_MAPPING_TABLE, "revtops_orgw_* login role writes")
    preparer = conn.dialect.identifier_preparer
    tables = {**writer_tables(), **{n: metadata.tables[n] for n in WRITER_COLUMN_GRANTS}}
    for name, table in tables.items():
        quoted = preparer.format_table(table)
        _force_row_security(conn, quoted)
        mapped = (
            f"(SELECT w.organization_id FROM {WRITER_MAPPING_TABLE} w "
            "WHERE w.role_name = current_user)"
        )
        column = preparer.quote(scope_column(name))
        _ensure_policy(
            conn,
            quoted,
            WRITE_POLICY,
            f"FOR ALL USING ({column} = {mapped}) WITH CHECK ({column} = {mapped})",
        )


def _create_mapping_table(conn: Connection, table: str, what: str) -> None:
    """A role -> organization table whose rows each role sees only its own of."""
    conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {table} ("
            "role_name varchar(63) PRIMARY KEY, "
            "organization_id varchar(63) NOT NULL UNIQUE, "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
    )
    comment = (
        f"Which organization each {what} (row-level security keys on current_user through it)."
    )
    current, enabled = conn.execute(
        text(
            "SELECT obj_description(oid, 'pg_class'), relrowsecurity FROM pg_class "
            "WHERE oid = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).one()
    if current != comment:
        conn.execute(text(f"COMMENT ON TABLE {table} IS '{comment}'"))
    # Every reader's row-level security reads this table: no lock on it unless something changes.
    if not enabled:
        conn.execute(text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
    _ensure_policy(conn, table, MAPPING_POLICY, "FOR SELECT USING (role_name = current_user)")


def _force_row_security(conn: Connection, quoted: str) -> None:
    """RLS on for everyone, the table owner included, who keeps full access by its policy.

    Each ALTER and policy DDL takes an ACCESS EXCLUSIVE lock on the table until the upgrade
    commits; an upgrade against a live store that re-did them for every table deadlocked with
    readers joining two tables. So what is already in place is left alone (read from the
    catalog, no lock on the table).
    """
    owner, enabled, forced = conn.execute(
        text(
            "SELECT pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity "
            "FROM pg_class WHERE oid = CAST(:t AS regclass)"
        ),
        {"t": quoted},
    ).one()
    if not enabled:
        conn.execute(text(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY"))
    if not forced:
        conn.execute(text(f"ALTER TABLE {quoted} FORCE ROW LEVEL SECURITY"))
    _ensure_policy(
        conn,
        quoted,
        OWNER_POLICY,
        f"FOR ALL TO {conn.dialect.identifier_preparer.quote(owner)} "
        "USING (true) WITH CHECK (true)",
    )


def _ensure_policy(conn: Connection, quoted: str, name: str, definition: str) -> None:
    """Create policy ``name`` on the table as ``definition`` unless it stands so already.

    PostgreSQL keeps a policy's expressions rewritten, so what was created is recognized by a
    digest of its definition kept as the policy's comment, not by comparing expressions.
    """
    digest = "revtops:" + hashlib.sha256(definition.encode()).hexdigest()[:32]
    current = conn.execute(
        text(
            "SELECT obj_description(p.oid, 'pg_policy') FROM pg_policy p "
            "WHERE p.polrelid = CAST(:t AS regclass) AND p.polname = :name"
        ),
        {"t": quoted, "name": name},
    ).scalar_one_or_none()
    if current == digest:
        return
    conn.execute(text(f"DROP POLICY IF EXISTS {name} ON {quoted}"))
    conn.execute(text(f"CREATE POLICY {name} ON {quoted} {definition}"))
    conn.execute(text(f"COMMENT ON POLICY {name} ON {quoted} IS '{digest}'"))


def ensure_org_role(conn: Connection, org: str, *, password: str | None = None) -> str:
    """Create (if missing) and map the role of ``org`` in this database; return its name.

    ``password`` (derived with ``role_password``) is set when given. Needs CREATEROLE the first
    time an org is seen on the cluster; grants need the table owner (the admin role).
    """
    return _ensure_login_role(conn, org, role_name(org), MAPPING_TABLE, password, writer=False)


def ensure_org_writer(conn: Connection, org: str, *, password: str | None = None) -> str:
    """Create (if missing) and map the writer role of ``org`` (its workflow runs); its name.

    Same requirements as ``ensure_org_role``; the grants are ``_grant_writer``'s.
    """
    return _ensure_login_role(
        conn, org, writer_role_name(org), WRITER_MAPPING_TABLE, password, writer=True
    )


def _ensure_login_role(
    conn: Connection, org: str, role: str, mapping: str, password: str | None, *, writer: bool
) -> str:
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    mapped = conn.execute(
        text(f"SELECT organization_id FROM {mapping} WHERE role_name = :r"), {"r": role}
    ).scalar_one_or_none()
    if exists and mapped == org and password is None:
        # Already set up here (upgrade re-grants new tables): no catalog writes, so concurrent
        # first queries of one org do not contend on the role's catalog rows.
        _require_harmless(conn, role)
        return role
    _lock_role_setup(conn)
    if not exists:
        try:
            with conn.begin_nested():
                conn.execute(
                    text(
                        f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                        "NOINHERIT NOREPLICATION NOBYPASSRLS"
                    )
                )
                if not writer:
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
                    "query (or workflow run) of each organization as a role with CREATEROLE"
                ) from exc
    _require_harmless(conn, role)
    if password is not None:
        conn.execute(text(f"ALTER ROLE {role} PASSWORD '{password}'"))
    if writer:
        _grant_writer(conn, role)
    else:
        _grant(conn, role)
    conn.execute(
        text(
            f"INSERT INTO {mapping} (role_name, organization_id) VALUES (:r, :o) "
            "ON CONFLICT (role_name) DO NOTHING"
        ),
        {"r": role, "o": org},
    )
    mapped = conn.execute(
        text(f"SELECT organization_id FROM {mapping} WHERE role_name = :r"), {"r": role}
    ).scalar_one()
    if mapped != org:
        raise StoreError(f"role {role} is mapped to {mapped!r}, not {org!r}: a hash collision")
    return role


def drop_org_role(conn: Connection, org: str) -> None:
    """Remove ``org``'s reader and writer from this database (grants, mappings, TEMP); drop
    each if no other database still grants it anything."""
    for role, mapping in (
        (role_name(org), MAPPING_TABLE),
        (writer_role_name(org), WRITER_MAPPING_TABLE),
    ):
        if not conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
            continue
        conn.execute(text(f"DELETE FROM {mapping} WHERE role_name = :r"), {"r": role})
        conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_schema(conn)} FROM {role}"))
        conn.execute(text(f"REVOKE ALL ON SCHEMA {_schema(conn)} FROM {role}"))
        conn.execute(text(f"REVOKE ALL ON DATABASE {_database(conn)} FROM {role}"))
        try:
            with conn.begin_nested():
                conn.execute(text(f"DROP ROLE {role}"))
        except DBAPIError:
            log.info("role %s still has privileges in another database; kept", role)


def _lock_role_setup(conn: Connection) -> None:
    """Role setups (create, password, grants) and ``prepare_database``'s re-grants take turns
    until the caller's transaction ends. They all rewrite the same catalog rows (each GRANT a
    table's ACL in pg_class): two at once, a workflow run's writer setup beside another's or
    beside ``db upgrade``, deadlocked (topology test). They are rare and short: one key."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('revtops:role-setup', 0))"))


def _grant(conn: Connection, role: str) -> None:
    preparer = conn.dialect.identifier_preparer
    schema = _schema(conn)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
    _grant_mappings(conn, role)
    for table in readable_tables().values():
        conn.execute(text(f"GRANT SELECT ON {preparer.format_table(table)} TO {role}"))


def _grant_writer(conn: Connection, role: str) -> None:
    """What a writer may touch; the policies keep it to its organization's rows."""
    preparer = conn.dialect.identifier_preparer
    schema = _schema(conn)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
    _grant_mappings(conn, role)
    # upgrade() reads the version to see the schema is current (and does nothing then).
    conn.execute(text(f"GRANT SELECT ON {SCHEMA_VERSIONS_TABLE} TO {role}"))
    # The PostgreSQL upsert COPYs into a temporary staging table (private to the session).
    conn.execute(text(f"GRANT TEMPORARY ON DATABASE {_database(conn)} TO {role}"))
    for table in writer_tables().values():
        conn.execute(
            text(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON {preparer.format_table(table)} TO {role}"
            )
        )
    for name, privileges in WRITER_COLUMN_GRANTS.items():
        quoted = preparer.format_table(metadata.tables[name])
        for privilege in privileges:
            conn.execute(text(f"GRANT {privilege} ON {quoted} TO {role}"))


def _grant_mappings(conn: Connection, role: str) -> None:
    """Both mapping tables: every policy's subquery reads one of them, whichever role asks
    (each role sees its own mapping row only, if it has one)."""
    for mapping in (MAPPING_TABLE, WRITER_MAPPING_TABLE):
        # A store upgraded before writers existed has no writers' table until its next upgrade.
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": mapping}).scalar() is not None:
            conn.execute(text(f"GRANT SELECT ON {mapping} TO {role}"))


def _database(conn: Connection) -> str:
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    return str(conn.dialect.identifier_preparer.quote(database))


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
        "REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC",  # granted before PostgreSQL 15
        "REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC",
        "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer) FROM PUBLIC",
    ]
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    quoted_db = conn.dialect.identifier_preparer.quote(database)
    for step in steps:
        statement = step.format(db=quoted_db, schema=_schema(conn))
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
