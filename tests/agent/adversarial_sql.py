"""The adversarial corpus: SQL the assistant must never get to run as written.

Each entry is refused by the guard (``REFUSED``: ``QueryRefusedError`` before anything reaches
the database) or contained (``CONTAINED``: it may run, rewritten, but sees only the caller's
organization, changes nothing, and stops at the row cap or the timeout; a database error is
also a contained outcome). ``dialects`` narrows an entry to the backends where it means
something.

Two organizations' rows are loaded by the tests: the caller is ``acme``; every row of
``globex`` carries ``MARKER`` in its text columns, so any leak shows up in the results.
"""

from __future__ import annotations

from dataclasses import dataclass

REFUSED = "refused"
CONTAINED = "contained"
BOTH = ("duckdb", "postgres")
MARKER = "GLOBEX-SECRET"
CALLER, OTHER = "acme", "globex"


@dataclass(frozen=True)
class Attack:
    sql: str
    expect: str
    category: str
    dialects: tuple[str, ...] = BOTH


def _refused(category: str, *sqls: str, dialects: tuple[str, ...] = BOTH) -> list[Attack]:
    return [Attack(sql, REFUSED, category, dialects) for sql in sqls]


def _contained(category: str, *sqls: str, dialects: tuple[str, ...] = BOTH) -> list[Attack]:
    return [Attack(sql, CONTAINED, category, dialects) for sql in sqls]


CORPUS: list[Attack] = [
    *_refused(
        "writes",
        "INSERT INTO deals (id, organization_id, source_system, source_id) "
        "VALUES ('00000000-0000-0000-0000-000000000009', 'acme', 'hubspot', 'x')",
        "UPDATE deals SET amount = 0",
        "DELETE FROM deals",
        "MERGE INTO deals d USING accounts a ON d.account_id = a.id "
        "WHEN MATCHED THEN UPDATE SET amount = 0",
        "INSERT INTO deals SELECT * FROM deals",
        "UPSERT INTO deals VALUES (1)",
    ),
    *_refused(
        "ddl",
        "TRUNCATE deals",
        "DROP TABLE deals",
        "CREATE TABLE stolen AS SELECT * FROM deals",
        "ALTER TABLE deals ADD COLUMN pwned int",
        "CREATE VIEW everything AS SELECT * FROM deals",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE MACRO m(x) AS x + 1",
        "GRANT SELECT ON deals TO PUBLIC",
        "COMMENT ON TABLE deals IS 'x'",
    ),
    *_refused(
        "stacked statements",
        "SELECT 1; DELETE FROM deals",
        "SELECT 1; SELECT * FROM deals WHERE organization_id = 'globex'",
        "SELECT * FROM deals;; DROP TABLE deals",
        "BEGIN; DELETE FROM deals; COMMIT",
    ),
    *_refused(
        "DML inside CTEs",
        "WITH gone AS (DELETE FROM deals RETURNING *) SELECT count(*) FROM gone",
        "WITH u AS (UPDATE deals SET amount = 0 RETURNING id) SELECT * FROM u",
        "WITH i AS (INSERT INTO deals (id, organization_id, source_system, source_id) VALUES "
        "('00000000-0000-0000-0000-000000000009', 'acme', 'hubspot', 'x') RETURNING id) "
        "SELECT * FROM i",
        "WITH a AS (SELECT 1), b AS (DELETE FROM accounts RETURNING 1) SELECT * FROM a",
    ),
    *_refused(
        "SELECT INTO and locking",
        "SELECT * INTO stolen FROM deals",
        "SELECT * INTO TEMP stolen FROM deals",
        "SELECT * FROM deals FOR UPDATE",
        "SELECT * FROM deals FOR SHARE",
        "SELECT * FROM deals FOR NO KEY UPDATE SKIP LOCKED",
        "SELECT * FROM (SELECT * FROM deals FOR UPDATE) d",
    ),
    *_refused(
        "catalogs",
        "SELECT * FROM pg_catalog.pg_tables",
        "SELECT * FROM pg_tables",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM information_schema.columns",
        "SELECT * FROM pg_stat_activity",
        "SELECT * FROM pg_roles",
        "SELECT * FROM pg_settings",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM duckdb_databases()",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM users",
        "SELECT * FROM conversations",
        "SELECT * FROM revtops_org_roles",
        "SELECT (SELECT count(*) FROM pg_class)",
    ),
    *_refused(
        "files, URLs and table functions",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM 'https://example.com/data.csv'",
        "SELECT * FROM read_parquet('s3://bucket/file.parquet')",
        "SELECT * FROM read_json('/etc/hosts')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
        "SELECT * FROM query_table('deals')",
        "SELECT * FROM query('SELECT * FROM deals')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_ls_dir('/')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT query_to_xml('SELECT * FROM deals', true, true, '')",
        "SELECT getenv('HOME')",
        "COPY deals TO '/tmp/revtops-stolen.csv'",
        "COPY (SELECT * FROM deals) TO STDOUT",
        "ATTACH '/tmp/revtops-other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT dblink('dbname=postgres', 'SELECT 1')",
        "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)",
    ),
    *_refused(
        "settings, roles and sessions",
        "SELECT set_config('revtops.org_id', 'globex', true), (SELECT count(*) FROM deals)",
        "SELECT pg_catalog.set_config('role', 'postgres', false)",
        "SELECT \"set_config\"('statement_timeout', '0', false)",
        "SELECT current_setting('revtops.org_id')",
        "SET ROLE postgres",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION postgres",
        "SET statement_timeout = 0",
        "RESET ALL",
        "SET enable_external_access = true",
        "PRAGMA database_list",
        "CALL pragma_database_list()",
        "EXPLAIN ANALYZE SELECT * FROM deals",
        "EXPLAIN SELECT * FROM deals",
        "DO $$ BEGIN DELETE FROM deals; END $$",
        "SELECT pg_sleep(100)",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_terminate_backend(1)",
        "SELECT nextval('some_sequence')",
        "SELECT txid_current()",
        "SELECT version()",
        "PREPARE p AS SELECT 1",
        "LISTEN revtops",
        "VACUUM deals",
        "CHECKPOINT",
        "DESCRIBE deals",
        "SHOW TABLES",
        "SUMMARIZE deals",
    ),
    *_refused(
        "schema-qualified and odd names",
        "SELECT * FROM revtops.main.deals",
        "SELECT * FROM main.deals",
        "SELECT * FROM public.deals",
        'SELECT * FROM "main"."deals"',
        'SELECT * FROM "public"."deals" d',
        "SELECT * FROM temp.main.deals",
        'SELECT * FROM "deals "',
        "SELECT d.* FROM deals d JOIN public.accounts a ON a.id = d.account_id",
        "SELECT * FROM deals WHERE id IN (SELECT id FROM main.deals)",
        "SELECT main.deals.name FROM deals",
        "SELECT pg_catalog.lower(name) FROM deals",
    ),
    *_refused(
        "unsupported shapes",
        "SELECT * FROM deals TABLESAMPLE 10%",
        "PIVOT deals ON stage_name USING sum(amount)",
        "SELECT $1",
        "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) a, x",
        "SELECT * FROM deals, LATERAL (SELECT set_config('a', 'b', true)) s",
    ),
    *_refused(
        "comment tricks",
        "SELECT * FROM deals; -- harmless\nDROP TABLE deals",
        "SELECT * FROM deals WHERE name = 'x'; --' DELETE FROM deals",
        "/* SELECT */ DELETE FROM deals",
        "SELECT 1 --\n; DELETE FROM deals",
    ),
    *_contained(
        "cross-org tricks",
        "SELECT * FROM deals WHERE organization_id = 'globex'",
        "SELECT * FROM deals WHERE organization_id <> 'acme' OR true",
        "SELECT * FROM (SELECT * FROM deals) d WHERE d.organization_id = 'globex'",
        "SELECT (SELECT name FROM deals WHERE organization_id = 'globex' LIMIT 1) AS leaked",
        "SELECT * FROM deals WHERE EXISTS "
        "(SELECT 1 FROM accounts WHERE organization_id = 'globex')",
        "WITH deals AS (SELECT * FROM deals) SELECT * FROM deals WHERE organization_id = 'globex'",
        'WITH "deals" AS (SELECT * FROM deals) SELECT * FROM "deals"',
        "WITH accounts AS (SELECT * FROM deals) SELECT * FROM accounts",
        "WITH x AS (SELECT * FROM deals), deals AS (SELECT * FROM x) SELECT * FROM deals",
        "WITH RECURSIVE deals AS (SELECT * FROM accounts) SELECT * FROM deals",
        "SELECT name FROM deals UNION ALL SELECT name FROM deals WHERE organization_id = 'globex'",
        "SELECT * FROM deals WHERE organization_id = 'acme' UNION "
        "SELECT * FROM deals WHERE organization_id = 'globex'",
        "SELECT name FROM accounts INTERSECT SELECT name FROM deals",
        "SELECT name FROM accounts EXCEPT SELECT name FROM deals",
        "SELECT * FROM accounts a, LATERAL "
        "(SELECT * FROM deals WHERE organization_id = 'globex') x",
        "SELECT * FROM accounts a CROSS JOIN LATERAL "
        "(SELECT name FROM deals d WHERE d.organization_id <> a.organization_id) x",
        "SELECT * FROM deals d1 JOIN deals d2 ON d1.organization_id <> d2.organization_id",
        "SELECT * FROM organizations",
        "SELECT * FROM \"DEALS\" WHERE organization_id = 'globex'",
        "SELECT * FROM DeAlS",
        "VALUES ((SELECT count(*) FROM deals WHERE organization_id = 'globex'))",
        "SELECT * FROM unnest((SELECT array_agg(name) FROM deals "
        "WHERE organization_id = 'globex')) AS u(name)",
        "SELECT string_agg(name, ',') FROM activities WHERE subject LIKE '%SECRET%'",
        "SELECT a.name FROM accounts a FULL JOIN (SELECT * FROM deals) x ON false",
        "SELECT * FROM deals AS pg_tables",
        "FROM deals",
    ),
    *_contained("cross-org tricks", "SELECT * FROM ONLY deals", dialects=("postgres",)),
    *_contained(
        "comment tricks",
        "SELECT 1 -- ; DELETE FROM deals",
        "SELECT name /* */ FROM deals -- */ DELETE FROM deals",
        "SELECT /*+ SET(statement_timeout 0) */ name FROM deals",
        # Parses as a column aliased DELETE: a SELECT, rewritten like any other.
        "SELECT 1 /* ; */ DELETE FROM deals",
    ),
    *_contained(
        "runaway queries",
        "SELECT count(*) FROM deals a, deals b, deals c, deals d, deals e, deals f, "
        "deals g, deals h, deals i, deals j",
        "SELECT a.name FROM deals a, deals b, deals c, deals d, deals e, deals f, deals g",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT n FROM t",
        "SELECT * FROM generate_series(1, 10000000000) AS g(n)",
        "SELECT count(*) FROM generate_series(1, 100000000000) AS g(n)",
    ),
]


# --- the two organizations' data -------------------------------------------------------------

STAGES = [  # label, order, probability, closed, won, forecast category
    ("Discovery", 1, "0.10", False, False, "pipeline"),
    ("Proposal", 2, "0.40", False, False, "best_case"),
    ("Negotiation", 3, "0.70", False, False, "commit"),
    ("Closed Won", 4, "1.00", True, True, "closed"),
    ("Closed Lost", 5, "0.00", True, False, "omitted"),
]


def two_org_rows() -> dict[str, list[dict[str, object]]]:
    """A small CRM per organization; globex's text columns all carry ``MARKER``."""
    from datetime import UTC, date, datetime, timedelta
    from decimal import Decimal

    from revtops_kernel.ids import record_id

    t0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    rows: dict[str, list[dict[str, object]]] = {
        name: [] for name in ("owners", "accounts", "contacts", "pipelines", "deal_stages", "deals")
    }
    rows["activities"] = []
    for org in (CALLER, OTHER):
        tag = MARKER if org == OTHER else org

        def rid(table: str, source_id: str, org: str = org) -> object:
            return record_id(org, "hubspot", table, source_id)

        def base(source_id: str, org: str = org) -> dict[str, object]:
            return {
                "organization_id": org,
                "source_system": "hubspot",
                "source_id": source_id,
                "created_at": t0 - timedelta(days=90),
                "updated_at": t0,
            }

        for i in range(3):
            rows["owners"].append(
                {
                    **base(f"o{i}"),
                    "email": f"rep{i}@{org}.com",
                    "full_name": f"{tag} Rep {i}",
                    "first_name": tag,
                    "last_name": f"Rep {i}",
                    "is_active": True,
                }
            )
        for i in range(4):
            rows["accounts"].append(
                {
                    **base(f"a{i}"),
                    "name": f"{tag} Account {i}",
                    "domain": f"account{i}.{org}.com",
                    "industry": ["Software", "Retail"][i % 2],
                    "owner_id": rid("owners", f"o{i % 3}"),
                    "employee_count": 50 * (i + 1),
                }
            )
        for i in range(6):
            rows["contacts"].append(
                {
                    **base(f"c{i}"),
                    "email": f"person{i}@account{i % 4}.{org}.com",
                    "full_name": f"{tag} Person {i}",
                    "title": ["VP Sales", "CFO", "Engineer"][i % 3],
                    "account_id": rid("accounts", f"a{i % 4}"),
                }
            )
        rows["pipelines"].append({**base("p0"), "name": f"{tag} New Business"})
        for label, order, probability, closed, won, category in STAGES:
            rows["deal_stages"].append(
                {
                    **base(f"s{order}"),
                    "pipeline_id": rid("pipelines", "p0"),
                    "label": label if org == CALLER else f"{label} {MARKER}",
                    "display_order": order,
                    "probability": Decimal(probability),
                    "is_closed": closed,
                    "is_won": won,
                    "forecast_category": category,
                }
            )
        for i in range(12):
            label, order, probability, closed, won, category = STAGES[i % 5]
            rows["deals"].append(
                {
                    **base(f"d{i}"),
                    "created_at": t0 - timedelta(days=20 + 7 * i),
                    "name": f"{tag} Deal {i}",
                    "amount": Decimal(1000 * (i + 1)),
                    "currency": "USD",
                    "pipeline_id": rid("pipelines", "p0"),
                    "stage_id": rid("deal_stages", f"s{order}"),
                    "stage_name": label,
                    "close_date": date(2026, 1 + i % 6, 1 + i),
                    "owner_id": rid("owners", f"o{i % 3}"),
                    "account_id": rid("accounts", f"a{i % 4}"),
                    "is_closed": closed,
                    "is_won": won,
                    "probability": Decimal(probability),
                    "forecast_category": category,
                    "deal_type": "New Business" if i % 2 else "Renewal",
                    "lead_source": ["Inbound", "Outbound", "Partner"][i % 3],
                    "deleted_at": t0 if i == 11 else None,
                }
            )
        for i in range(20):
            rows["activities"].append(
                {
                    **base(f"m{i}"),
                    "activity_type": ["meeting", "call", "email", "note"][i % 4],
                    "subject": f"{tag} touchpoint {i}",
                    "occurred_at": t0 - timedelta(days=3 * i, hours=i),
                    "duration_seconds": 600 * (i % 4),
                    "owner_id": rid("owners", f"o{i % 3}"),
                    "deal_id": rid("deals", f"d{i % 12}"),
                    "account_id": rid("accounts", f"a{i % 4}"),
                    "contact_id": rid("contacts", f"c{i % 6}"),
                }
            )
    return rows


def load_two_orgs(db: object) -> None:
    """Write both organizations (and their CRM rows) into ``db``, a ``Database``."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from revtops_kernel.store import Database
    from revtops_kernel.store.upsert import upsert

    assert isinstance(db, Database)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    with db.begin() as conn:
        for org in (CALLER, OTHER):
            conn.execute(
                text(
                    "INSERT INTO organizations (id, name, created_at, updated_at) "
                    "VALUES (:id, :name, :t, :t)"
                ),
                {"id": org, "name": MARKER if org == OTHER else "Acme", "t": now},
            )
        for table, table_rows in two_org_rows().items():
            upsert(conn, table, table_rows)


def truncate_readable(db: object) -> None:
    from sqlalchemy import text

    from revtops_kernel.store import Database
    from revtops_kernel.store.schema import readable_tables

    assert isinstance(db, Database)
    with db.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(readable_tables())}"))
