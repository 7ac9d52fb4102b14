"""``revtops db upgrade``: create or migrate the schema, idempotently, on both backends.

Why not Alembic: DuckDB's ALTER TABLE cannot change constraints or types of indexed columns,
so Alembic's generated operations fail there half the time, and two backends would need two
migration histories. Instead the models are the truth and the upgrade reconciles towards them:

1. create missing tables and indexes (``create_all`` only creates what is absent);
2. add columns the models have and the database lacks, with their comments;
3. run numbered ``MIGRATIONS`` not yet recorded, for the changes that are not additive
   (renames, backfills), each in the upgrade's transaction;
4. on PostgreSQL, the org roles' row-level-security policies, grants and revocations
   (``store.org_roles``);
5. on PostgreSQL, indexes the models gained since a table was created, those they retired
   (``schema.RETIRED_INDEXES``) dropped, the ``revtops_analyze`` function
   (``store.statistics``), and statistics of the tables just created, so the planner never
   works from none;
6. on DuckDB, after that transaction, synced tables whose unique constraints are not the
   models' (made before the primary key on ``id`` became their one unique index:
   ``schema._natural_key``) rebuilt, since DuckDB cannot drop a constraint: each table in its
   own transaction (retried with more memory if DuckDB runs out), then a checkpoint.

The applied version is recorded in ``revtops_schema``; a database newer than this code is
refused rather than silently written to.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TextClause,
    UniqueConstraint,
    text,
)
from sqlalchemy.schema import SetColumnComment

from revtops_kernel.errors import SchemaError
from revtops_kernel.store import (
    change_journal,
    deal_states,
    meeting_accounts,
    org_roles,
    risk_facts,
    statistics,
)
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import RETIRED_INDEXES, metadata, synced_tables
from revtops_kernel.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """A change that reconciliation cannot make by itself (rename, backfill, type change)."""

    version: int
    name: str
    apply: Callable[[Connection], None]


# Tables derived from others, and what builds them (deal_states' one function builds both of
# its tables): built when an upgrade creates them (a store that predates them holds the rows
# they derive from) and rebuilt when it adds a column to them (the new column filled, every
# row's fingerprint changed); the sync keeps them up to date afterwards.
BUILT_ON_CREATE: dict[str, Callable[[Connection], object]] = {
    deal_states.TABLE: deal_states.build_all,
    deal_states.VISITS: deal_states.build_all,
    risk_facts.TABLE: risk_facts.rebuild_all,
    meeting_accounts.TABLE: meeting_accounts.rebuild_all,
}


def _drop_won_stage_ranks(conn: Connection) -> None:
    """deal_risk_facts' won_stage rows became one per stage (its won deals' days as a sorted
    ``won_days``) instead of one per won deal and stage with its rank: a deal won re-ranked
    thousands of rows. Their ``position`` and ``days`` go (the index on them with them); the
    added ``won_days`` makes this upgrade rebuild the table (``BUILT_ON_CREATE``)."""
    for column in ("position", "days"):
        conn.execute(text(f"ALTER TABLE {risk_facts.TABLE} DROP COLUMN IF EXISTS {column}"))


# Version 1 is the common schema as the models define it; later non-additive changes go here.
BASELINE_VERSION = 1
MIGRATIONS: list[Migration] = [
    Migration(2, "deal_risk_facts: a won_stage row per stage", _drop_won_stage_ranks),
]

_bookkeeping = MetaData()
schema_versions = Table(
    "revtops_schema",
    _bookkeeping,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


@dataclass
class UpgradeReport:
    created_tables: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    applied_migrations: list[str] = field(default_factory=list)
    version: int = 0
    warnings: list[str] = field(default_factory=list)
    dropped_indexes: list[str] = field(default_factory=list)
    # Indexes the models gained since their table was created (PostgreSQL), created here.
    created_indexes: list[str] = field(default_factory=list)
    # Derived tables built or rebuilt here, then vacuumed (PostgreSQL), so the read path's
    # index-only scans of them skip their rows from the first query, not after a sync.
    vacuumed: list[str] = field(default_factory=list)
    # Synced tables rebuilt without the natural key's UNIQUE constraint (DuckDB).
    rebuilt_tables: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.created_tables
            or self.added_columns
            or self.applied_migrations
            or self.dropped_indexes
            or self.created_indexes
            or self.rebuilt_tables
        )


def target_version(migrations: list[Migration] | None = None) -> int:
    steps = MIGRATIONS if migrations is None else migrations
    return max([BASELINE_VERSION, *(m.version for m in steps)])


def upgrade(db: Database, migrations: list[Migration] | None = None) -> UpgradeReport:
    """Bring the database to this code's schema; safe to run any number of times."""
    steps = sorted(MIGRATIONS if migrations is None else migrations, key=lambda m: m.version)
    report = UpgradeReport()
    with db.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes upgrading at once take turns instead of racing on CREATE TABLE.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('revtops_schema'))"))
        _bookkeeping.create_all(conn)  # checkfirst: a fast has_table for one table
        applied = {row.version for row in conn.execute(schema_versions.select())}
        newest = max(applied, default=0)
        if newest > target_version(steps):
            raise SchemaError(
                f"the database schema is at version {newest}, newer than this revtops "
                f"({target_version(steps)}): upgrade the revtops_kernel package"
            )
        report.created_tables = _create_missing_tables(conn)
        report.added_columns = _add_missing_columns(conn)
        if BASELINE_VERSION not in applied:
            _record(conn, BASELINE_VERSION, "common schema")
        for step in steps:
            if step.version not in applied:
                log.info("applying migration %s: %s", step.version, step.name)
                step.apply(conn)
                _record(conn, step.version, step.name)
                report.applied_migrations.append(f"{step.version} {step.name}")
        # Before the derived tables are built: a store whose triggers are new has writes they
        # never saw, so its organizations' next refreshes derive every deal (change_journal).
        change_journal.install(conn)
        built = _build_derived(conn, report)
        if conn.dialect.name == "postgresql":
            report.warnings += org_roles.prepare_database(conn, password_for=db.org_reader_password)
            report.dropped_indexes = _drop_retired_indexes(conn)
            report.created_indexes, indexed = _create_missing_indexes(conn)
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            for statement in statistics.analyze_function_sql(schema):
                conn.execute(text(statement))
            statistics.analyze_tables(conn, [*report.created_tables, *indexed, *built])
        report.version = target_version(steps)
    if db.is_duckdb:
        report.rebuilt_tables = rebuild_duckdb_unique_keys(db)
    report.vacuumed = statistics.vacuum_tables(db, built)
    return report


def _build_derived(conn: Connection, report: UpgradeReport) -> list[str]:
    """Build the derived tables this upgrade created or added a column to, each builder once,
    from the rows in the store (after the migrations); return every table they built."""
    added_to = {column.split(".")[0] for column in report.added_columns}
    touched = set(report.created_tables) | added_to
    builders = list(dict.fromkeys(b for n, b in BUILT_ON_CREATE.items() if n in touched))
    for build in builders:
        build(conn)
    return [name for name, build in BUILT_ON_CREATE.items() if build in builders]


def current_version(db: Database) -> int | None:
    """The recorded schema version, or None for a database that was never upgraded."""
    with db.connect() as conn:
        if schema_versions.name not in _existing_columns(conn):
            return None
        versions = [row.version for row in conn.execute(schema_versions.select())]
    return max(versions, default=None)


def _record(conn: Connection, version: int, name: str) -> None:
    conn.execute(schema_versions.insert().values(version=version, name=name, applied_at=utcnow()))


def _existing_columns(conn: Connection) -> dict[str, set[str]]:
    # One information_schema query instead of SQLAlchemy reflection, which duckdb-engine
    # emulates with a slow pg_catalog query per table.
    rows = conn.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_catalog = current_database()"
        )
    )
    columns: dict[str, set[str]] = {}
    for table_name, column_name in rows:
        columns.setdefault(table_name, set()).add(column_name)
    return columns


def _create_missing_tables(conn: Connection) -> list[str]:
    existing = _existing_columns(conn)
    missing = [t for t in metadata.sorted_tables if t.name not in existing]
    metadata.create_all(conn, tables=missing, checkfirst=False)
    return [t.name for t in missing]


def _add_missing_columns(conn: Connection) -> list[str]:
    existing = _existing_columns(conn)
    added: list[str] = []
    for table in metadata.sorted_tables:
        present = existing.get(table.name, set())
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable and column.server_default is None:
                raise SchemaError(
                    f"cannot add NOT NULL column {table.name}.{column.name} without a default: "
                    "write a numbered migration for it"
                )
            type_sql = column.type.compile(dialect=conn.dialect)
            preparer = conn.dialect.identifier_preparer
            conn.execute(
                text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {preparer.format_column(column)} {type_sql}"
                )
            )
            if column.comment:
                conn.execute(SetColumnComment(column))
            added.append(f"{table.name}.{column.name}")
    return added


def _drop_retired_indexes(conn: Connection) -> list[str]:
    """Indexes earlier versions created and the models no longer have (``RETIRED_INDEXES``):
    each costs every write an entry. PostgreSQL only, like every secondary index; named, so an
    index added by hand is never dropped."""
    present = conn.execute(
        text(
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND indexname = ANY(:names)"
        ),
        {"names": list(RETIRED_INDEXES)},
    ).scalars()
    dropped = sorted(present)
    for name in dropped:
        log.info("dropping retired index %s", name)
        conn.execute(text(f"DROP INDEX {conn.dialect.identifier_preparer.quote(name)}"))
    return dropped


def _create_missing_indexes(conn: Connection) -> tuple[list[str], list[str]]:
    """Indexes added to the models after their table was created (``create_all`` only builds
    a new table's). PostgreSQL only: DuckDB gets no secondary indexes (``schema._pg_index``).
    Returns the indexes created and the tables that got one: an expression index
    (``lower(email)``) has no statistics until its table is analyzed again."""
    existing = set(
        conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        ).scalars()
    )
    statistics_objects = set(
        conn.execute(
            text(
                "SELECT stxname FROM pg_statistic_ext "
                "WHERE stxnamespace = CAST(current_schema() AS regnamespace)"
            )
        ).scalars()
    )
    created: list[str] = []
    grown: list[str] = []
    for table in metadata.sorted_tables:
        for index in table.indexes:
            if index.name not in existing:
                index.create(conn, checkfirst=True)
                created.append(str(index.name))
                grown.append(table.name)
            # The store analyzes a column list (statistics.analyzed_columns: no JSON), and
            # PostgreSQL gathers an expression index's statistics only in a whole-table
            # ANALYZE; a statistics object on the expression is gathered with the columns.
            for expression in index.expressions:
                name = f"st_{index.name}"[:63]
                if isinstance(expression, TextClause) and name not in statistics_objects:
                    conn.execute(
                        text(f"CREATE STATISTICS {name} ON ({expression.text}) FROM {table.name}")
                    )
                    statistics_objects.add(name)
                    grown.append(table.name)
    return created, list(dict.fromkeys(grown))


# --- DuckDB: synced tables with the models' unique constraints ------------------------------

_OLD_SUFFIX = "__revtops_old"


def rebuild_duckdb_unique_keys(db: Database) -> list[str]:
    """Rebuild the synced tables whose PRIMARY KEY and UNIQUE constraints are not the ones the
    models create on DuckDB (a store made when the natural key's UNIQUE index stood beside the
    primary key: ``schema._natural_key``). DuckDB cannot drop a constraint, so each is renamed,
    created again from the model, filled from the old one and the old one dropped, in a
    transaction of its own, then checkpointed: a rebuilt table's new index stays pinned in
    memory until a checkpoint, and at scale 10 all of them in one transaction outgrew the
    256MiB limit. A table that still runs out is retried with the limit's base doubled
    (store.retry). Returns the tables rebuilt; none once done, or after a run stopped midway
    has been run again."""
    with db.connect() as conn:
        stale = _stale_unique_keys(conn)
    if not stale:
        return stale
    # Here, not at the top: store.retry imports psycopg, which `revtops sql` on DuckDB (every
    # command imports this module through revtops_kernel.store) must not load.
    from revtops_kernel.store.retry import in_transaction

    log.warning(
        "rebuilding %d synced tables whose unique indexes changed (once; the larger ones "
        "take a while): %s",
        len(stale),
        ", ".join(stale),
    )
    tables = synced_tables()
    for name in stale:
        started = time.monotonic()
        in_transaction(db, functools.partial(_rebuild_table, table=tables[name]),
                       what=f"rebuilding {name}")  # fmt: skip
        with db.connect() as conn:
            conn.execute(text("CHECKPOINT"))  # the new index written out, its memory let go
        log.info("rebuilt %s in %.1f s", name, time.monotonic() - started)
    return stale


def _stale_unique_keys(conn: Connection) -> list[str]:
    """Synced tables whose stored PRIMARY KEY and UNIQUE constraints differ from those the
    models create on this backend."""
    found: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
    for table, kind, columns in conn.execute(
        text(
            "SELECT table_name, constraint_type, constraint_column_names "
            "FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND schema_name = current_schema() "
            "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        )
    ):
        found.setdefault(table, set()).add((kind, tuple(columns)))
    # Only for ddl_if's test of the backend (SQLAlchemy's own DDL code passes no statement).
    compiler = conn.dialect.ddl_compiler(conn.dialect, None)  # type: ignore[arg-type]
    stale = []
    for name, table in sorted(synced_tables().items()):
        if name not in found:
            continue  # not created yet: create_all makes it as the model says
        wanted = {
            ("PRIMARY KEY" if isinstance(c, PrimaryKeyConstraint) else "UNIQUE",
             tuple(column.name for column in c.columns))
            for c in table.constraints
            if isinstance(c, PrimaryKeyConstraint | UniqueConstraint)
            and c.columns
            and c._should_create_for_compiler(compiler)  # ddl_if: this backend's only
        }  # fmt: skip
        if found[name] != wanted:
            stale.append(name)
    return stale


def _rebuild_table(conn: Connection, table: Table) -> None:
    """``table`` created again from its model, with every row and column of the stored one."""
    quote = conn.dialect.identifier_preparer.quote
    name, old = table.name, f"{table.name}{_OLD_SUFFIX}"
    params = {"table": name}
    scope = (
        "database_name = current_database() AND schema_name = current_schema() "
        "AND table_name = :table"
    )
    # An index on the table (added by hand: the models create none on DuckDB) blocks the
    # rename; it is dropped and created again on the new table.
    indexes = conn.execute(
        text(f"SELECT index_name, sql FROM duckdb_indexes() WHERE {scope}"), params
    ).all()
    stored = conn.execute(
        text(f"SELECT column_name, data_type, comment FROM duckdb_columns() WHERE {scope} "
             "ORDER BY column_index"),
        params,
    ).all()  # fmt: skip
    rows = conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar_one()
    log.warning("rebuilding %s (%d rows)", name, rows)
    for index_name, _sql in indexes:
        conn.execute(text(f"DROP INDEX {quote(index_name)}"))
    conn.execute(text(f"ALTER TABLE {quote(name)} RENAME TO {quote(old)}"))
    table.create(conn, checkfirst=False)  # the model's columns, comments and constraints
    for column, data_type, comment in stored:
        if column not in table.columns:  # not the models': kept, data and comment
            conn.execute(text(f"ALTER TABLE {quote(name)} ADD COLUMN {quote(column)} {data_type}"))
            if comment:
                literal = "'" + comment.replace("'", "''") + "'"  # no parameters in COMMENT
                conn.execute(text(f"COMMENT ON COLUMN {quote(name)}.{quote(column)} IS {literal}"))
    columns = ", ".join(quote(column) for column, _type, _comment in stored)
    conn.execute(text(f"INSERT INTO {quote(name)} ({columns}) SELECT {columns} FROM {quote(old)}"))
    copied = conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar_one()
    if copied != rows:  # cannot happen short of a DuckDB bug: the transaction rolls back
        raise SchemaError(f"rebuilding {name}: {copied} rows copied of {rows}")
    conn.execute(text(f"DROP TABLE {quote(old)}"))
    for _index_name, sql in indexes:
        if sql:
            conn.execute(text(sql))
