"""PostgreSQL: with the SQL guard switched off, one org's role sees no other org's rows.

Each statement goes raw through a psycopg connection logged in as acme's role (no guard, no
read-only transaction, no rewrite), including set_config, SET ROLE, RESET ROLE, SET SESSION
AUTHORIZATION, row_security, temp objects and pg_stat_activity. After each one, the same
session reads every readable table and must see acme's rows only; nothing it got back (rows or
error text) may carry globex's marker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.org_roles import (
    MAPPING_TABLE,
    drop_org_role,
    ensure_org_role,
    prepare_database,
    role_name,
    role_password,
)
from revtops_kernel.store.schema import readable_tables
from revtops_kernel.store.upsert import upsert

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 5, tzinfo=UTC)
MARKER = "GLOBEX-SECRET"


@pytest.fixture(scope="module")
def two_orgs(postgres_db: Database) -> Iterator[Database]:
    db = postgres_db
    with db.begin() as conn:
        for org in ("acme", "globex"):
            label = MARKER if org == "globex" else "acme"
            conn.execute(
                text(
                    "INSERT INTO organizations (id, name, created_at, updated_at) "
                    "VALUES (:o, :n, :t, :t)"
                ),
                {"o": org, "n": label, "t": T0},
            )
            common = {"organization_id": org, "source_system": "hubspot", "updated_at": T0}
            upsert(conn, "accounts", [{**common, "source_id": "a1", "name": label}])
            upsert(
                conn,
                "deals",
                [{**common, "source_id": f"d{i}", "name": label, "amount": 10} for i in range(3)],
            )
            upsert(
                conn,
                "activities",
                [{**common, "source_id": "m1", "activity_type": "meeting", "subject": label}],
            )
        ensure_org_role(conn, "acme")
        ensure_org_role(conn, "globex")
        conn.execute(text("ANALYZE deals"))  # pg_stats would hold globex's values
    yield db
    with db.begin() as conn:
        names = ", ".join(readable_tables())
        conn.execute(text(f"TRUNCATE {names}"))


def connect_as(db: Database, org: str) -> psycopg.Connection[Any]:
    url = db.url.set(drivername="postgresql", username=role_name(org), password=None)
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


# Raw SQL an attacker with acme's connection might send. Each is run on its own session.
ATTACKS = [
    "SELECT * FROM deals",
    "SELECT set_config('revtops.org_id', 'globex', false)",
    "SET revtops.org_id = 'globex'",
    f"SET ROLE {role_name('globex')}",
    "SET ROLE postgres",
    "RESET ROLE",
    "SELECT set_config('role', 'postgres', false)",
    f"SET SESSION AUTHORIZATION {role_name('globex')}",
    "SET SESSION AUTHORIZATION postgres",
    "RESET SESSION AUTHORIZATION",
    "SET row_security = off",
    "SELECT set_config('row_security', 'off', false)",
    f"UPDATE {MAPPING_TABLE} SET organization_id = 'globex'",
    f"INSERT INTO {MAPPING_TABLE} (role_name, organization_id) VALUES (current_user, 'globex')",
    f"DELETE FROM {MAPPING_TABLE}",
    "ALTER TABLE deals DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE deals NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY revtops_org_scope ON deals",
    "CREATE POLICY open_all ON deals FOR SELECT USING (true)",
    "ALTER ROLE CURRENT_USER BYPASSRLS",
    "ALTER ROLE CURRENT_USER SET role = 'postgres'",
    "GRANT postgres TO CURRENT_USER",
    "CREATE TEMP TABLE stolen AS SELECT * FROM deals",
    "CREATE TABLE public.deals_copy AS SELECT * FROM deals",
    "CREATE VIEW pg_temp.v AS SELECT * FROM deals",
    "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE EXTENSION dblink",
    "CREATE EXTENSION postgres_fdw",
    "SELECT query FROM pg_stat_activity",
    "SELECT * FROM pg_stat_get_activity(NULL)",
    "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'deals'",
    "SELECT * FROM pg_authid",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "COPY deals TO STDOUT",
    "COPY (SELECT * FROM deals) TO '/tmp/revtops-stolen.csv'",
    "COPY deals FROM PROGRAM 'id'",
    "SELECT * FROM deals WHERE CAST(name AS integer) = 1",
    "SELECT * FROM accounts WHERE 1 / (CASE WHEN name = 'GLOBEX-SECRET' THEN 0 ELSE 1 END) = 1",
    "DO $$ BEGIN PERFORM set_config('revtops.org_id', 'globex', false); END $$",
    "PREPARE p AS SELECT * FROM deals; EXECUTE p",
    "SELECT * FROM organizations",
    f"SELECT * FROM {MAPPING_TABLE}",
    "SET search_path = pg_temp, public",
    "SELECT * FROM deals d JOIN accounts a ON a.organization_id <> d.organization_id",
    "LISTEN revtops; NOTIFY revtops, 'x'",
]


def run_capturing(session: psycopg.Connection[Any], sql: str) -> str:
    """Run ``sql``; return everything it returned or raised, as text."""
    try:
        with session.cursor() as cursor:
            if sql.startswith("COPY") and "STDOUT" in sql:
                with cursor.copy(sql.encode()) as copy:
                    return repr(b"".join(bytes(chunk) for chunk in copy))
            cursor.execute(sql.encode())
            seen = []
            while True:
                if cursor.description is not None:
                    seen.append(repr(cursor.fetchall()))
                if not cursor.nextset():
                    break
            return " ".join(seen)
    except psycopg.Error as exc:
        return f"error: {exc}"


def visible_orgs(session: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """The organizations whose rows each readable table shows (an error shows none)."""
    seen: dict[str, set[str]] = {}
    for name in readable_tables():
        column = "id" if name == "organizations" else "organization_id"
        try:
            with session.cursor() as cursor:
                cursor.execute(f"SELECT DISTINCT {column} FROM {name}".encode())
                seen[name] = {row[0] for row in cursor.fetchall()}
        except psycopg.Error as exc:  # e.g. row_security = off: "would be affected by RLS"
            assert "row-level security" in str(exc)
            seen[name] = set()
    return seen


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_org_role_sees_only_its_org_whatever_it_sends(two_orgs: Database, attack: str) -> None:
    with connect_as(two_orgs, "acme") as session:
        returned = run_capturing(session, attack)
        assert MARKER not in returned
        if session.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            session.rollback()
        seen = visible_orgs(session)
    assert {org for orgs in seen.values() for org in orgs} <= {"acme"}
    # Whatever the attack left on the role (session defaults), a new session is still acme's.
    with connect_as(two_orgs, "acme") as fresh:
        assert {org for orgs in visible_orgs(fresh).values() for org in orgs} == {"acme"}


def test_the_other_org_sees_only_its_own_rows(two_orgs: Database) -> None:
    with connect_as(two_orgs, "globex") as session:
        seen = visible_orgs(session)
    assert seen["deals"] == {"globex"} and seen["accounts"] == {"globex"}


def test_org_roles_have_no_powers_memberships_or_objects(two_orgs: Database) -> None:
    with two_orgs.connect() as conn:
        for org in ("acme", "globex"):
            row = conn.execute(
                text(
                    "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
                    "rolinherit, rolcanlogin, "
                    "(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid), "
                    "(SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid), "
                    "has_database_privilege(r.oid, current_database(), 'TEMPORARY'), "
                    "has_schema_privilege(r.oid, 'public', 'CREATE'), "
                    "has_table_privilege(r.oid, 'pg_catalog.pg_stat_activity', 'SELECT'), "
                    "has_table_privilege(r.oid, 'users', 'SELECT'), "
                    "has_table_privilege(r.oid, 'deals', 'INSERT') "
                    "FROM pg_roles r WHERE rolname = :r"
                ),
                {"r": role_name(org)},
            ).one()
            assert tuple(row) == (False,) * 6 + (True, 0, 0) + (False,) * 5
        forced = conn.execute(
            text(
                "SELECT relname FROM pg_class WHERE relname = ANY(:names) "
                "AND relrowsecurity AND relforcerowsecurity"
            ),
            {"names": list(readable_tables())},
        )
        assert {r[0] for r in forced} == set(readable_tables())


def test_role_names_are_short_stable_and_distinct() -> None:
    long_org = "a" * 63
    assert len(role_name(long_org).encode()) <= 63
    assert role_name("acme") == role_name("acme") != role_name("acme2")
    with pytest.raises(Exception, match="organization id"):
        role_name('acme"; DROP ROLE postgres; --')


def test_preparing_twice_keeps_roles_working(two_orgs: Database) -> None:
    with two_orgs.begin() as conn:
        assert prepare_database(conn) == []
        assert prepare_database(conn) == []
    with connect_as(two_orgs, "acme") as session:
        assert visible_orgs(session)["deals"] == {"acme"}


def test_a_dropped_role_can_no_longer_read(two_orgs: Database) -> None:
    # Roles are cluster-wide: a name of this session's own, so that another session's grants
    # to a shared name cannot keep the role alive.
    org = f"initech-{uuid.uuid4().hex[:8]}"
    with two_orgs.begin() as conn:
        ensure_org_role(conn, org)
    with two_orgs.begin() as conn:
        drop_org_role(conn, org)
    with pytest.raises(psycopg.Error), connect_as(two_orgs, org) as session:
        visible_orgs(session)


def test_upgrade_gives_every_existing_organization_a_role(two_orgs: Database) -> None:
    with two_orgs.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, created_at, updated_at) "
                "VALUES ('hooli', 'Hooli', :t, :t)"
            ),
            {"t": T0},
        )
    try:
        upgrade(two_orgs)
        with two_orgs.connect() as conn:
            mapped = conn.execute(
                text(f"SELECT organization_id FROM {MAPPING_TABLE} WHERE role_name = :r"),
                {"r": role_name("hooli")},
            ).scalar_one()
        assert mapped == "hooli"
        with connect_as(two_orgs, "hooli") as session:
            assert visible_orgs(session)["organizations"] == {"hooli"}
    finally:
        with two_orgs.begin() as conn:
            drop_org_role(conn, "hooli")
            conn.execute(text("DELETE FROM organizations WHERE id = 'hooli'"))


def test_passwords_derive_from_the_readonly_url_secret(postgres_url: str) -> None:
    readonly = make_url(postgres_url).set(username="ignored", password="master-secret")
    db = Database(postgres_url, readonly_url=readonly)
    role = role_name("pwtest")
    try:
        expected = role_password("master-secret", role)
        assert db.org_reader_password(role) == expected
        assert db.org_reader_engine(role).url.password == expected
        assert db.org_reader_engine(role).url.username == role
        with db.begin() as conn:
            ensure_org_role(conn, "pwtest", password=expected)
            stored = conn.execute(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
            ).scalar_one()
        assert stored is not None and stored.startswith(("SCRAM-SHA-256$", "md5"))
        assert Database(postgres_url).org_reader_password(role) is None
    finally:
        with db.begin() as conn:
            drop_org_role(conn, "pwtest")
        db.dispose()
