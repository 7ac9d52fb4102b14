"""The read-only query path under the assistant: ``read_sql`` → a DataFrame and a truncation flag.

The SQL guard (``agent``) checks a query's shape before it gets here; this layer makes sure that
even a query that slipped past the guard cannot write, cannot leave its organization, cannot
reach files, URLs or Python objects, and cannot run forever.

PostgreSQL: a connection as the organization's own login role (``store.org_roles``: SELECT on
readable tables only, row-level security keyed on ``current_user``, created on first use), a
session of that role's pool (one kept idle per role, reset with ``DISCARD ALL`` after each query:
settings, prepared statements, temporary tables, advisory locks; one whose query the client's
timer cancelled is closed, not reused), a ``READ ONLY`` transaction that is always rolled
back (so even a ``set_config`` is undone), ``statement_timeout``, and the query sent as a
prepared statement (the extended protocol: one statement only) and run to completion in one
step, the way PostgreSQL may run it with parallel workers (a cursor fetched in portions never
is). Only a
SELECT's (or VALUES') rows come back: a statement whose command tag says otherwise (SHOW,
EXPLAIN, SET...) is refused once it ran, its effects rolled back and reset. The guard's
LIMIT (max_rows + 1) bounds what the server sends. A timer cancels the query from the client if
the server's timeout did not stop it.

DuckDB: a separate read-only handle with external access off (no files, URLs, ATTACH or
extension installs), Python replacement scans off (no DataFrame in scope is reachable), its
configuration locked so no query can undo any of it, and on it one connection per organization
whose temporary views shadow every table: the readable ones filtered to the organization, the
others empty. The handle stays open between queries until a writer needs the file
(``store.duckdb_reader``). A timer interrupts the query at the deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, OperationalError

from revtops_kernel.errors import QueryError, QueryRefusedError, QueryTimeoutError
from revtops_kernel.settings import (
    DEFAULT_QUERY_MAX_ROWS,
    DEFAULT_QUERY_TIMEOUT_SECONDS,
    ORG_ID_PATTERN,
)
from revtops_kernel.store import duckdb_reader, org_roles
from revtops_kernel.store.database import Database, driver_connection
from revtops_kernel.store.schema import readable_tables

if TYPE_CHECKING:  # imported where used: a one-shot `revtops sql` on DuckDB needs neither
    import pandas as pd
    import psycopg
    import pyarrow as pa

log = logging.getLogger(__name__)

# Fetch a little past max_rows to know whether the result was cut.
FETCH_BATCH_ROWS = 2_048
# Extra time the client allows past the server-side timeout before cancelling on its own.
CLIENT_GRACE_SECONDS = 0.5
# work_mem of a read on PostgreSQL, per sort or hash node (the server's default is 4 MB).
READ_WORK_MEM_KB = 16 * 1024

DUCKDB_READONLY_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    # No Python object in scope is reachable by name (a DataFrame, say), on every connection
    # of the instance (set here: its configuration is locked before any query runs).
    "python_enable_replacements": False,
    "python_scan_all_frames": False,
}


@dataclass(frozen=True)
class QueryResult:
    frame: pd.DataFrame
    truncated: bool  # more rows existed than max_rows
    elapsed_seconds: float

    @property
    def row_count(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class RowsResult:
    """``read_rows``' answer: plain Python values (``Decimal``, ``datetime``…), no pandas."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_seconds: float


@dataclass(frozen=True)
class _Fetched:
    """What a backend fetched, converted only to what the caller asks for."""

    columns: list[str]
    arrow: pa.Table | None = None  # DuckDB
    records: list[tuple[Any, ...]] | None = None  # PostgreSQL

    def frame(self) -> pd.DataFrame:
        if self.arrow is not None:
            return self.arrow.to_pandas()
        import pandas as pd

        return pd.DataFrame.from_records(self.records or [], columns=self.columns)

    def rows(self) -> list[tuple[Any, ...]]:
        if self.arrow is None:
            return list(self.records or [])
        columns = [column.to_pylist() for column in self.arrow.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def __len__(self) -> int:
        return self.arrow.num_rows if self.arrow is not None else len(self.records or [])


def read_sql(
    db: Database,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    org: str,
    max_rows: int = DEFAULT_QUERY_MAX_ROWS,
    timeout: float = DEFAULT_QUERY_TIMEOUT_SECONDS,
) -> QueryResult:
    """Run one read-only query as organization ``org``; at most ``max_rows`` rows come back.

    ``params`` bind ``:name`` placeholders (SQLAlchemy ``text()`` style) on both backends.
    """
    fetched, truncated, elapsed = _read(db, sql, params, org, max_rows, timeout)
    return QueryResult(fetched.frame(), truncated, elapsed)


def read_rows(
    db: Database,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    org: str,
    max_rows: int = DEFAULT_QUERY_MAX_ROWS,
    timeout: float = DEFAULT_QUERY_TIMEOUT_SECONDS,
) -> RowsResult:
    """``read_sql`` without the DataFrame: the same query path, the rows as Python values."""
    fetched, truncated, elapsed = _read(db, sql, params, org, max_rows, timeout, arrow=False)
    return RowsResult(fetched.columns, fetched.rows(), truncated, elapsed)


def _read(
    db: Database,
    sql: str,
    params: Mapping[str, Any] | None,
    org: str,
    max_rows: int,
    timeout: float,
    *,
    arrow: bool = True,
) -> tuple[_Fetched, bool, float]:
    if not ORG_ID_PATTERN.match(org):
        raise QueryRefusedError(f"not an organization id: {org!r}")
    if max_rows < 1 or timeout <= 0:
        raise ValueError("max_rows must be >= 1 and timeout > 0")
    started = time.monotonic()
    values = dict(params or {})
    if db.is_duckdb:
        fetched, truncated = _read_duckdb(db, sql, values, org, max_rows, timeout, arrow=arrow)
    else:
        fetched, truncated = _read_postgresql(db, sql, values, org, max_rows, timeout)
    elapsed = time.monotonic() - started
    log.info("read_sql org=%s rows=%d truncated=%s %.3fs", org, len(fetched), truncated, elapsed)
    return fetched, truncated, elapsed


@contextmanager
def _deadline(seconds: float, cancel: Callable[[], None]) -> Iterator[threading.Event]:
    """Call ``cancel`` if the block is still running after ``seconds``; tell whether it fired."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        cancel()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        # A timer already firing finishes first: after the block, ``fired`` is final (a
        # session it cancelled a query on is not reused).
        timer.join()


def _bind(sql: str, params: dict[str, Any], dialect: Any) -> tuple[str, Any]:
    """Compile ``:name`` placeholders to the driver's style; SQL without params passes as is."""
    if not params:
        return sql, None
    compiled = text(sql).bindparams(**params).compile(dialect=dialect)
    if compiled.positiontup:
        return str(compiled), [compiled.params[name] for name in compiled.positiontup]
    return str(compiled), compiled.params


# --- PostgreSQL ------------------------------------------------------------------------------


def _read_postgresql(
    db: Database, sql: str, params: dict[str, Any], org: str, max_rows: int, timeout: float
) -> tuple[_Fetched, bool]:
    import psycopg

    connection = _connect_as_org(db, org)
    timer: threading.Event | None = None  # set if the client's timer fired (and cancelled)
    with connection:
        raw: psycopg.Connection[Any] = driver_connection(connection)
        statement, bound = _bind(sql, params, connection.dialect)
        try:
            with raw.cursor() as setup:
                setup.execute("SET TRANSACTION READ ONLY")
                setup.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    (f"{int(timeout * 1000)}ms",),
                )
                # No JIT: it compiles a plan per query (seconds on a busy machine: 5.6 s of
                # deal_risks' 7.2 s at scale 1) to save less than that on scans of this size.
                setup.execute("SELECT set_config('jit', 'off', true)")
                # Raised, never lowered: at the server's default 4 MB the sort of a 10,000-row
                # answer (deal_risks at scale 10) spills to disk, ~25% of its time.
                setup.execute(
                    "SELECT set_config('work_mem', %s, true) FROM pg_settings"
                    " WHERE name = 'work_mem' AND setting::bigint < %s",
                    (f"{READ_WORK_MEM_KB}kB", READ_WORK_MEM_KB),
                )
            with (
                _deadline(timeout + CLIENT_GRACE_SECONDS, raw.cancel_safe) as fired,
                raw.cursor() as cursor,
            ):
                timer = fired
                try:
                    # Prepared, so sent with the extended protocol (one statement, even without
                    # parameters) and executed to the end at once: PostgreSQL may then run a
                    # parallel plan, which it never does for a server-side cursor (DECLARE).
                    cursor.execute(statement, bound, prepare=True)
                    tag = cursor.statusmessage or ""
                    if tag.split(" ", 1)[0] != "SELECT":  # VALUES says SELECT too
                        raise QueryRefusedError(
                            "only a single SELECT (or VALUES) query can run here, "
                            f"not {tag or 'that'}"
                        )
                    rows = cursor.fetchmany(max_rows + 1)
                    names = [column.name for column in cursor.description or []]
                except psycopg.errors.QueryCanceled as exc:
                    raise QueryTimeoutError(timeout) from exc
                except psycopg.OperationalError as exc:
                    if fired.is_set():
                        raise QueryTimeoutError(timeout) from exc
                    raise
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise QueryRefusedError(f"the query tried to write: {exc}") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise QueryRefusedError(f"not allowed: {exc}") from exc
        except psycopg.errors.SyntaxError as exc:
            raise QueryRefusedError(
                f"only a single SELECT (or VALUES) query can run here: {exc}"
            ) from exc
        except (psycopg.Error, DBAPIError) as exc:
            raise QueryError(str(exc).strip()) from exc
        finally:
            if timer is not None and timer.is_set():
                # A cancel may still reach the session's next statement: closed, not pooled.
                connection.invalidate()
            else:
                try:
                    # Undoes anything, set_config included; going back to the pool the session
                    # is reset as a new one (database._reset_reader_session: DISCARD ALL).
                    raw.rollback()
                except (psycopg.Error, DBAPIError):
                    # A COPY left the session mid-protocol: closed, not rolled back.
                    connection.invalidate()
    truncated = len(rows) > max_rows
    return _Fetched(names, records=rows[:max_rows]), truncated


_ensured: set[tuple[str, str]] = set()
_ensured_lock = threading.Lock()


def _connect_as_org(db: Database, org: str) -> Connection:
    """A connection as ``org``'s login role, creating and mapping the role on first use."""
    if (db.url.username or "").startswith(org_roles.WRITER_PREFIX):
        # A workflow run's kernel logs in as its organization's writer, which row-level
        # security keeps to that organization's rows, and cannot log in as anyone else: its
        # reads go through the same login, in the read-only transaction of the caller.
        return db.engine.connect()
    role = org_roles.role_name(org)
    key = (db.display_url, org)
    if key not in _ensured:
        with _ensured_lock, db.begin() as admin:
            org_roles.ensure_org_role(admin, org)
        _ensured.add(key)
    try:
        return db.org_reader_engine(role).connect()
    except OperationalError as first:
        if db.org_reader_password(role) is None:
            raise _cannot_connect(role, first) from first
    # A configured password may not be on the role yet (created elsewhere, secret rotated).
    with db.begin() as admin:
        org_roles.ensure_org_role(admin, org, password=db.org_reader_password(role))
    try:
        return db.org_reader_engine(role).connect()
    except OperationalError as exc:
        raise _cannot_connect(role, exc) from exc


def _cannot_connect(role: str, exc: OperationalError) -> QueryError:
    return QueryError(
        f"cannot connect as the organization's read-only role {role} ({exc.orig}); check "
        "REVTOPS_READONLY_DATABASE_URL and that the server accepts this role's login"
    )


# --- DuckDB ----------------------------------------------------------------------------------


def _read_duckdb(
    db: Database,
    sql: str,
    params: dict[str, Any],
    org: str,
    max_rows: int,
    timeout: float,
    *,
    arrow: bool = True,
) -> tuple[_Fetched, bool]:
    """``arrow``: fetch Arrow batches (a DataFrame is built from them); else Python rows, which
    spares a caller that prints them (``revtops sql``) loading pyarrow and numpy."""
    # The engine (its dialect compiles the parameters) is built only if there are any.
    statement, bound = _bind(sql, params, db.engine.dialect) if params else (sql, None)
    with duckdb_reader.org_connection(db, org, DUCKDB_READONLY_CONFIG, _scope_to_org) as lease:
        handle = lease.connection
        _require_single_select(handle, statement)
        dialect = db.engine.dialect if params else None
        lease.scope(_tables_read(handle, sql, params, dialect))
        with _deadline(timeout, handle.interrupt) as fired:
            try:
                try:
                    result = _run_duckdb(handle, statement, bound, max_rows, arrow=arrow)
                except duckdb.CatalogException:
                    # A table the parser did not see (inside a string bound later, say): with
                    # every view made, once more.
                    if not lease.scope(None) or fired.is_set():
                        raise
                    result = _run_duckdb(handle, statement, bound, max_rows, arrow=arrow)
            except duckdb.InterruptException as exc:
                raise QueryTimeoutError(timeout) from exc
            except duckdb.Error as exc:
                if fired.is_set():
                    raise QueryTimeoutError(timeout) from exc
                raise _duckdb_error(exc) from exc
            finally:
                # The timer may fire as the query ends: a connection it may have interrupted
                # is not reused.
                if fired.is_set():
                    lease.discard()
            if fired.is_set():
                raise QueryTimeoutError(timeout)
    return result


def _run_duckdb(
    handle: duckdb.DuckDBPyConnection, statement: str, bound: Any, max_rows: int, *, arrow: bool
) -> tuple[_Fetched, bool]:
    if not arrow:
        cursor = handle.execute(statement, bound)
        records = cursor.fetchmany(max_rows + 1)
        names = [str(column[0]) for column in cursor.description or []]
        fetched = _Fetched(names, records=[tuple(r) for r in records[:max_rows]])
        return fetched, len(records) > max_rows
    reader = handle.sql(statement, params=bound).to_arrow_reader(FETCH_BATCH_ROWS)
    batches, count = [], 0
    for batch in reader:
        batches.append(batch)
        count += batch.num_rows
        if count > max_rows:
            break
    import pyarrow as pa  # loaded by DuckDB's reader already

    table = (
        pa.Table.from_batches(batches, schema=reader.schema)
        if batches
        else reader.schema.empty_table()
    )
    return _Fetched(table.column_names, arrow=table.slice(0, max_rows)), count > max_rows


def _require_single_select(handle: duckdb.DuckDBPyConnection, sql: str) -> None:
    # DuckDB runs every statement of a script and returns the last result; PostgreSQL's
    # read path runs one prepared statement and returns only a SELECT's rows. Hold DuckDB to
    # the same rule.
    try:
        statements = handle.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()) from exc
    if len(statements) != 1:
        raise QueryRefusedError(f"expected one statement, got {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        kind = statements[0].type.name
        raise QueryRefusedError(f"only a single SELECT query can run here, not {kind}")


def _duckdb_error(exc: duckdb.Error) -> QueryError:
    message = str(exc).strip()
    if isinstance(exc, duckdb.PermissionException) or "read-only mode" in message:
        return QueryRefusedError(message)
    if isinstance(exc, duckdb.InvalidInputException) and "configuration has been locked" in message:
        return QueryRefusedError(message)
    return QueryError(message)


def _scope_to_org(
    handle: duckdb.DuckDBPyConnection, org: str, catalog: str, names: Iterable[str]
) -> None:
    """Shadow the tables ``names`` with views: readable ones filtered to ``org``, others empty.

    Temporary views win name resolution over the file's tables (``deals`` and ``main.deals``
    both reach the view; the connection's search path is its temporary schema alone, so a
    table without a view is not found at all); the guard refuses the catalog-qualified names
    that would not. The views are the connection's own: each organization has its connection
    on the warm handle (``store.duckdb_reader``).
    """
    readable = readable_tables()
    views = []
    for name in names:
        source = f'"{catalog}".main."{name}"'
        if name in readable:
            scope_column = "id" if name == "organizations" else "organization_id"
            condition = f"{scope_column} = '{org}'"  # org matched ORG_ID_PATTERN: no quotes in it
        else:
            condition = "false"
        views.append(f'CREATE TEMP VIEW "{name}" AS SELECT * FROM {source} WHERE {condition}')
    handle.execute(";\n".join(views))  # one round through the parser, not one per table


def _tables_read(
    handle: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], dialect: Any
) -> set[str] | None:
    """The table names ``sql`` mentions (DuckDB's parser), or None if it cannot tell."""
    try:
        if params:  # the parser takes no placeholders: the values inlined, for this look only
            sql = str(
                text(sql)
                .bindparams(**params)
                .compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            )
        return set(handle.get_table_names(sql))
    except Exception:  # a value SQLAlchemy cannot inline, a parse DuckDB refuses: every view
        return None
