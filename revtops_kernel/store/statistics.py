"""Planner statistics that are never missing: refresh them for the tables a sync wrote.

PostgreSQL plans with the statistics ``ANALYZE`` gathers. After a bulk load autoanalyze may not
run for minutes, and the planner then takes a freshly loaded table for a handful of rows and
picks nested loops: identity resolution ran 30 s instead of 0.04 s at scale 0.2, and the
verified queries 1–20 s instead of 0.1 s (issue 13). So the sync counts the rows it writes per
table and refreshes a table's statistics when the rows written since its last analyze reach a
share of its size (or it was never analyzed):

- after every committed batch, once they reach ``BATCH_SHARE`` (the table doubled): a sync
  killed midway leaves estimates within a factor of two of the truth, which is what decides a
  plan (the failure is 1 row estimated for 60,000), so no pass is needed at the start of the
  next sync; a first load of N rows analyzes each table about log2(N / batch) times;
- before identity resolution and at the end of the sync, once they reach ``REFRESH_SHARE``.

``ANALYZE`` samples (30,000 rows at the default target) but reads every sampled value, so it
skips the JSON documents (``raw``): they are never compared whole, and detoasting them was most
of its time (0.5-1.5 s per table of a scale-1 store on this 2-core machine).

Only the owner may ANALYZE a table; a sync running as an organization role goes through
``revtops_analyze(table_name)``, a ``SECURITY DEFINER`` function ``db upgrade`` creates (owned
by the admin role, ``search_path`` pinned, the product's tables only). The store always calls
it when it exists, so there is one path whoever the user is.

Statistics are not all the planner needs. The read path's covering indexes (``schema``: the
``ix_*_live_*`` ones) answer a query from the index alone only on pages the visibility map marks
all-visible, which only ``VACUUM`` sets. Autovacuum would get to a freshly loaded table within
minutes where it is on (it is off on some servers, this project's CI among them); until then
every "index-only" scan fetches the wide rows too (``deal_risks`` 13-16 s at scale 10 against
4.9 s vacuumed, measured 2026-12-06). So at its end a sync vacuums the tables it rewrote a
``VACUUM_SHARE`` of (``vacuum_due``): a first load, or a re-sync that replaced a tenth of a
table. ``VACUUM`` cannot run in a transaction or a function and only the owner may run it; any
other role gets a warning from the server and the sync goes on (autovacuum's job then).

DuckDB keeps row counts, min/max, null and distinct-count statistics itself as rows are
appended; its ``ANALYZE`` only recomputes the distinct counts. Measured (100k activities, 300k
participants loaded through ``upsert``, the join of ``single_threaded_deals``): the same plan
and the same estimates before and after it, and no change in time, so DuckDB skips it. What
helps there is a ``CHECKPOINT`` before resolution and at the end of a sync that wrote rows:
each later open (resolution's, every query's read-only handle) then has no log to replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import JSON, Connection, text
from sqlalchemy.exc import OperationalError

from revtops_kernel.errors import StoreError
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata

log = logging.getLogger(__name__)

ANALYZE_FUNCTION = "revtops_analyze"
REFRESH_SHARE = 0.10  # of a table's rows written since its last analyze
BATCH_SHARE = 1.0  # the same, between a sync's batches
VACUUM_SHARE = 0.10  # of a table's rows written by one sync, for a VACUUM at its end
# The function waits this long for a table's lock (an autovacuum holding it) and then skips it.
ANALYZE_LOCK_TIMEOUT = "5s"


def analyze_allowlist() -> tuple[str, ...]:
    """The tables ``revtops_analyze`` accepts: the product's own."""
    return tuple(sorted(metadata.tables))


def analyze_function_sql(schema: str) -> list[str]:
    """Statements creating ``revtops_analyze(table_name text)`` in ``schema`` (run by the
    migrator, whose role then owns it: ANALYZE runs with the owner's rights)."""
    allowed = ", ".join(f"'{name}'" for name in analyze_allowlist())
    column_lists = " ".join(
        f"WHEN '{name}' THEN '{columns}'"
        for name in analyze_allowlist()
        if (columns := analyzed_columns(name)) is not None
    )
    columns_case = f"CASE table_name {column_lists} END" if column_lists else "NULL"
    quoted = '"' + schema.replace('"', '""') + '"'
    literal = "'" + schema.replace("'", "''") + "'"
    return [
        f"""
CREATE OR REPLACE FUNCTION {quoted}.{ANALYZE_FUNCTION}(table_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {quoted}, pg_temp
SET lock_timeout = '{ANALYZE_LOCK_TIMEOUT}'
AS $fn$
DECLARE
    columns text;
BEGIN
    IF table_name IS NULL OR NOT (table_name = ANY (ARRAY[{allowed}])) THEN
        RAISE EXCEPTION '{ANALYZE_FUNCTION}: % is not a table of Revtops', table_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    columns := {columns_case};
    IF columns IS NULL THEN
        EXECUTE format('ANALYZE %I.%I', {literal}, table_name);
    ELSE
        EXECUTE format('ANALYZE %I.%I (%s)', {literal}, table_name, columns);
    END IF;
EXCEPTION WHEN lock_not_available THEN
    RAISE NOTICE '{ANALYZE_FUNCTION}: % is locked (autovacuum?); skipped', table_name;
END
$fn$""",
        # Harmless to anyone: it only refreshes statistics of the product's tables.
        f"GRANT EXECUTE ON FUNCTION {quoted}.{ANALYZE_FUNCTION}(text) TO PUBLIC",
    ]


def analyzed_columns(table: str) -> str | None:
    """The columns ANALYZE reads of ``table`` (quoted, comma-separated), or None for all."""
    columns = metadata.tables[table].columns
    kept = [c.name for c in columns if not isinstance(c.type, JSON)]
    if len(kept) == len(columns):
        return None
    return ", ".join(f'"{name}"' for name in kept)


def analyze_tables(conn: Connection, tables: Iterable[str]) -> list[str]:
    """Refresh the planner statistics of ``tables`` (PostgreSQL; a no-op on DuckDB)."""
    names = list(dict.fromkeys(tables))
    unknown = [name for name in names if name not in metadata.tables]
    if unknown:
        raise StoreError(f"cannot analyze {', '.join(unknown)}: not a table of Revtops")
    if conn.dialect.name != "postgresql" or not names:
        return []
    through_function = _has_analyze_function(conn)
    for name in names:
        if through_function:
            conn.execute(text(f"SELECT {ANALYZE_FUNCTION}(:name)"), {"name": name})
        else:  # a store not upgraded since the function came: only its owner syncs
            columns = analyzed_columns(name)
            conn.execute(text(f'ANALYZE "{name}"' + (f" ({columns})" if columns else "")))
    return names


def _has_analyze_function(conn: Connection) -> bool:
    found = conn.execute(
        text("SELECT to_regprocedure(:signature) IS NOT NULL"),
        {"signature": f"{ANALYZE_FUNCTION}(text)"},
    ).scalar_one()
    return bool(found)


def _vacuumable(conn: Connection, tables: Iterable[str]) -> set[str]:
    """Those of ``tables`` this role may VACUUM: its own (or a superuser's: any)."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c "
            "WHERE c.oid IN (SELECT to_regclass(n) FROM unnest(CAST(:names AS text[])) AS n) "
            "AND (pg_has_role(c.relowner, 'USAGE') "
            "OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))"
        ),
        {"names": list(tables)},
    )
    return {str(name) for (name,) in rows}


def vacuum_tables(db: Database, tables: Iterable[str]) -> list[str]:
    """``VACUUM`` those of ``tables`` this role may (PostgreSQL; DuckDB: nothing), so that
    index-only scans of freshly built tables skip their rows; return the ones vacuumed."""
    if db.is_duckdb:
        return []
    with db.engine.connect() as conn:
        mine = _vacuumable(conn, tables)
        conn.rollback()  # VACUUM runs outside any transaction
        return _vacuum(conn, [table for table in tables if table in mine])


def _vacuum(conn: Connection, tables: list[str]) -> list[str]:
    """VACUUM each table on ``conn`` (no transaction open), skipping one another session holds."""
    if not tables:
        return []
    done: list[str] = []
    vacuuming = conn.execution_options(isolation_level="AUTOCOMMIT")
    # Wait for no autovacuum or other maintenance holding a table: skip it then.
    # (A session setting: reset before the pooled connection serves anyone else.)
    vacuuming.execute(text(f"SET lock_timeout = '{ANALYZE_LOCK_TIMEOUT}'"))
    try:
        for table in tables:
            try:
                vacuuming.execute(text(f'VACUUM "{table}"'))
            except OperationalError as exc:  # lock_timeout: left to autovacuum
                log.info("VACUUM %s skipped: %s", table, exc.orig)
                continue
            done.append(table)
    finally:
        vacuuming.execute(text("RESET lock_timeout"))
    return done


def estimated_rows(conn: Connection, tables: Iterable[str]) -> dict[str, float]:
    """``pg_class.reltuples`` per table: -1 for a table never analyzed (or vacuumed)."""
    names = list(tables)
    if not names:
        return {}
    rows = conn.execute(
        text(
            "SELECT c.relname, c.reltuples FROM pg_class c "
            "WHERE c.oid IN (SELECT to_regclass(n) FROM unnest(CAST(:names AS text[])) AS n)"
        ),
        {"names": names},
    )
    return {str(name): float(tuples) for name, tuples in rows}


@dataclass
class StatisticsRefresh:
    """Counts the rows one sync writes per table and refreshes their statistics in time."""

    db: Database
    share: float = REFRESH_SHARE
    written: dict[str, int] = field(default_factory=dict)  # since each table's last analyze
    analyzed: dict[str, int] = field(default_factory=dict)  # refreshes per table, this sync
    seconds: float = 0.0
    unchecked_rows: int = 0  # DuckDB: rows written since this sync's last checkpoint
    written_in_sync: dict[str, int] = field(default_factory=dict)  # the whole sync's, per table
    vacuumed: list[str] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return not self.db.is_duckdb

    def note(self, table: str, rows: int) -> None:
        if rows > 0 and self.enabled:
            self.written[table] = self.written.get(table, 0) + rows
            self.written_in_sync[table] = self.written_in_sync.get(table, 0) + rows
        elif rows > 0:
            self.unchecked_rows += rows

    def refresh_due(self, share: float | None = None) -> list[str]:
        """Analyze the tables whose written rows reached ``share`` of them (default: the
        refresh's); return their names. On DuckDB the refresh's own calls (no ``share``: before
        identity resolution and at the end of a sync) checkpoint instead."""
        if not self.enabled:
            if share is None and self.unchecked_rows:
                self._checkpoint()
            return []
        share = self.share if share is None else share
        if not self.written:
            return []
        started = time.monotonic()
        with self.db.begin() as conn:
            sizes = estimated_rows(conn, self.written)
            due = [
                table
                for table, rows in self.written.items()
                if sizes.get(table, -1.0) < 0 or rows >= share * sizes[table]
            ]
            analyze_tables(conn, due)
        for table in due:
            del self.written[table]
            self.analyzed[table] = self.analyzed.get(table, 0) + 1
        self.seconds += time.monotonic() - started
        if due:
            log.debug("statistics refreshed: %s", ", ".join(due))
        return due

    def vacuum_due(self, share: float = VACUUM_SHARE) -> list[str]:
        """``VACUUM`` the tables this sync wrote ``share`` of (PostgreSQL), so that index-only
        scans of the read path's covering indexes skip the wide rows; return their names."""
        if not self.enabled or not self.written_in_sync:
            return []
        started = time.monotonic()
        with self.db.engine.connect() as conn:
            sizes = estimated_rows(conn, self.written_in_sync)
            mine = _vacuumable(conn, self.written_in_sync)
            conn.rollback()  # VACUUM runs outside any transaction
            due = [
                table
                for table, rows in self.written_in_sync.items()
                if table in mine and (sizes.get(table, -1.0) <= 0 or rows >= share * sizes[table])
            ]
            self.vacuumed += _vacuum(conn, due)
        self.written_in_sync.clear()
        self.seconds += time.monotonic() - started
        return due

    def _checkpoint(self) -> None:
        # The store leaves each unit of work's changes in DuckDB's write-ahead log (no
        # checkpoint on close, store.database), and every later open replays the log: identity
        # resolution's, and every read-only handle a query opens. After a sync's writes that
        # is up to the 16 MB threshold, ~1 s an open on this machine (0.3 s after a checkpoint).
        # After an incremental sync it is cheap since upsert stopped updating rows in place on
        # DuckDB (0.15-0.2 s after a scale-0.5 HubSpot re-sync, was 2.4-3.7 s: store.upsert).
        started = time.monotonic()
        with self.db.begin() as conn:
            conn.execute(text("CHECKPOINT"))
        self.unchecked_rows = 0
        self.seconds += time.monotonic() - started
