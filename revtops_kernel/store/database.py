"""One ``Database`` per store URL: engines, write transactions, and DuckDB's one-writer rule.

PostgreSQL takes concurrent writers; a DuckDB file takes one process at a time (a writer locks
it exclusively, and readers in other processes can't open it meanwhile). Kernels, Voila
sessions, scheduled runs and the CLI all share the embedded file, so on DuckDB:

- every unit of work opens its own connection and closes it when done (``NullPool``), so the
  file lock is held for one transaction, not for the life of a kernel;
- opening retries with backoff while another process holds the lock, and gives up with
  ``DatabaseLockedError`` (naming the holder's PID, as DuckDB reports it) after
  ``lock_timeout`` seconds;
- within one process a lock per file serializes units of work, because DuckDB refuses a
  read-only and a read-write handle on the same file in one process;
- the organization-scoped reads keep a warm read-only handle between them
  (``store.duckdb_reader``): a unit of work here closes it first, and a writer that finds the
  file locked keeps ``<file>.write-intent`` fresh while it waits, which tells the readers of
  every process to let go of the file;
- a sync keeps its read-write connection across its units of work (``Database.writer_held``):
  each open of the file reads its catalog and replays the write-ahead log (25 ms on an empty
  log, 250 ms after a 21 MB batch), a sixth of a scale-1 sync's CPU in a dozen opens. Units
  still commit one by one; between them the connection is closed as soon as another process
  waits for the file (a reader that finds it locked keeps ``<file>.read-intent`` fresh, a
  writer its write intent; a watcher looks every ``HELD_WATCH_SECONDS``), and before any
  read-only open in this process.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from revtops_kernel.errors import DatabaseLockedError, StoreError
from revtops_kernel.settings import DEFAULT_DUCKDB_MEMORY_LIMIT

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings

log = logging.getLogger(__name__)

# Run on every DuckDB handle: times in UTC like the rest of the project (a SET, not a config
# entry: at connect time the built-in ICU extension that owns TimeZone is not loaded yet), and
# no progress bar of DuckDB's own: a long statement drew one into the sync's output.
DUCKDB_SESSION_SQL = "SET TimeZone = 'UTC'; SET enable_progress_bar = false"
POSTGRES_APPLICATION_NAME = "revtops"
# How often a PostgreSQL backend running one of the store's statements checks that its client
# is still there (client_connection_check_interval, PostgreSQL 14+). Without it, a sync killed
# mid-statement leaves its backend running to the end: a scale-10 refresh's INSERT ran ~55 min
# after its process died, holding its locks and blocking CREATE DATABASE ... TEMPLATE.
DEAD_CLIENT_CHECK = "10s"

# DuckDB's memory on a write connection. REVTOPS_DUCKDB_MEMORY_LIMIT bounds what DuckDB can
# evict or spill (its cache of table blocks, joins, sorts). An ART index (every primary key
# and UNIQUE constraint) is different: the nodes a write loads stay pinned until a checkpoint
# writes the index out, counted against memory_limit but never evicted, and a batch of
# changed rows at random keys loads most of a table's index (~45 bytes a row for a synced
# table's one, its primary key on id: 100 MiB for 2.26M participants at scale 10; 203 MiB
# while the natural key's UNIQUE index stood beside it, schema._natural_key). A scale-10
# HubSpot re-sync pins ~246 MiB that way (~520 MiB with both indexes); under a fixed 256MiB
# its statements failed with "Out of Memory" once the pinned indexes filled it. So a write
# connection's limit is its base plus what its indexes pin (``fit_duckdb_memory_limit``, at
# each unit of work and before each upsert), and a unit that still runs out (one statement
# loading more index than the base leaves free) is retried with the base doubled, up to
# DuckDB's own default of 80% of RAM (store.retry).
DUCKDB_BASE_LIMIT_KEY = "revtops_duckdb_base_limit"  # on the DBAPI connection's record info
DUCKDB_MEMORY_CAP_SHARE = 0.8  # DuckDB's default memory_limit: 80% of physical memory
# A limit this near what is wanted (or an eighth of the base, if less) is left as it is.
DUCKDB_LIMIT_SLACK = 16 * 2**20
_PINNED_SQL = (
    "SELECT (SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
    "WHERE tag = 'ART_INDEX'), current_setting('memory_limit')"
)
_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*(%|[KMGTP]i?B|B|bytes)?\s*$")
_UNITS = {"B": 1, "BYTES": 1}
_UNITS.update({f"{p}B": 1000 ** (i + 1) for i, p in enumerate("KMGTP")})
_UNITS.update({f"{p}IB": 1024 ** (i + 1) for i, p in enumerate("KMGTP")})


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_size_bytes(value: str) -> int:
    """A DuckDB memory size (``256MiB``, ``1GB``, ``50%`` of RAM, or DuckDB's own rendering
    such as ``256.0 MiB``) in bytes."""
    match = _SIZE.match(value)
    if match is None or match.group(2) is None:
        raise ValueError(f"not a memory size: {value!r}")
    number, unit = float(match.group(1)), match.group(2).upper()
    if unit == "%":
        return int(physical_memory_bytes() * number / 100)
    return int(number * _UNITS[unit])


def out_of_memory(exc: BaseException) -> duckdb.Error | None:
    """The DuckDB out-of-memory error behind ``exc`` (itself, as SQLAlchemy wrapped it, a
    cause or a context), if any: an ``OutOfMemoryException``, or a commit that could not
    allocate (a ``TransactionException``: 'Failed to commit: could not allocate block ...',
    seen when a transaction's new index outgrew the limit as it was written)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        error = current.orig if isinstance(current, DBAPIError) else current
        if isinstance(error, duckdb.OutOfMemoryException) or (
            isinstance(error, duckdb.TransactionException) and _commit_out_of_memory(error)
        ):
            return error
        current = current.__cause__ or current.__context__
    return None


def _commit_out_of_memory(exc: BaseException) -> bool:
    message = str(exc)
    return "Failed to commit" in message and (
        "could not allocate" in message or "pin block" in message or "Out of Memory" in message
    )


def _replay_out_of_memory(exc: BaseException) -> bool:
    # DuckDB reports it as a TransactionException: 'Failure while replaying WAL file ...:
    # Failed to commit: could not allocate block of size ...'.
    message = str(exc)
    return "replaying WAL" in message and (
        "allocate" in message or "pin block" in message or "Out of Memory" in message
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def fit_duckdb_memory_limit(connection: Connection) -> None:
    """Set a DuckDB write connection's memory_limit to its base plus the index memory pinned
    now (the database instance's, shared by its connections): what is not pinned keeps the
    base to spill within. No-op on PostgreSQL and on handles the store did not open."""
    base = connection.info.get(DUCKDB_BASE_LIMIT_KEY)
    if base is None:
        return
    raw = driver_connection(connection)
    ((pinned, current),) = raw.execute(_PINNED_SQL).fetchall()
    wanted, limit = base + int(pinned), memory_size_bytes(current)
    if abs(wanted - limit) <= min(DUCKDB_LIMIT_SLACK, base // 8):
        return  # near enough: no SET for every unit
    try:
        raw.execute(f"SET memory_limit = '{wanted}B'")
    except duckdb.OutOfMemoryException:  # lowering: what is in use would not fit; keep it
        log.debug("DuckDB memory_limit kept at %s (wanted %d bytes)", current, wanted)


T = TypeVar("T")


class Backend(StrEnum):
    """The store's engine, named as SQLAlchemy names it (``conn.dialect.name``)."""

    DUCKDB = "duckdb"
    POSTGRESQL = "postgresql"

    @property
    def sqlglot_dialect(self) -> str:
        """sqlglot's name for this backend's SQL (sqlglot calls PostgreSQL ``postgres``)."""
        return "postgres" if self is Backend.POSTGRESQL else "duckdb"


_file_locks: dict[str, threading.RLock] = {}
_file_locks_guard = threading.Lock()


def _file_lock(path: str) -> threading.RLock:
    with _file_locks_guard:
        return _file_locks.setdefault(path, threading.RLock())


# A writer waiting for the file refreshes its intent at least this often (its retry interval is
# at most 0.75 s); an older intent is a crashed writer's and is ignored.
WRITE_INTENT_FRESH_SECONDS = 3.0


def write_intent_path(path: str) -> Path:
    return Path(f"{path}.write-intent")


def read_intent_path(path: str) -> Path:
    return Path(f"{path}.read-intent")


def writer_waiting(path: str) -> bool:
    """Whether a process is waiting to write ``path`` (its intent file is fresh)."""
    try:
        touched = write_intent_path(path).stat().st_mtime
    except OSError:
        return False
    return time.time() - touched < WRITE_INTENT_FRESH_SECONDS


def reader_waiting(path: str) -> bool:
    """Whether a process is waiting to read ``path`` (its read intent is fresh)."""
    try:
        touched = read_intent_path(path).stat().st_mtime
    except OSError:
        return False
    return time.time() - touched < WRITE_INTENT_FRESH_SECONDS


def _announce(intent: Path) -> None:
    try:
        intent.write_text(str(os.getpid()))
    except OSError as exc:  # a read-only directory: holders let go on their own timers only
        log.debug("cannot write %s: %s", intent, exc)


def release_warm_reader(path: str) -> None:
    """Close this process's warm read-only handle on ``path`` (call under its file lock)."""
    reader = sys.modules.get("revtops_kernel.store.duckdb_reader")
    if reader is not None:  # never imported: no warm handle to close
        reader.release(path)


# How often a held writer looks for another process waiting for the file.
HELD_WATCH_SECONDS = 0.1


class _HeldWriter:
    """One read-write connection a ``Database`` keeps across its units of work while
    ``writer_held`` runs. Used and closed only under the file's lock (``_file_lock``)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.connection: Connection | None = None
        self.busy = False  # a unit of work is using the connection
        self.stopped = threading.Event()

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # closing a broken handle: nothing left to keep
                log.debug("closing the held DuckDB connection failed", exc_info=True)

    def watch(self, path: str) -> None:
        """Close the connection between units of work once another process waits for it."""
        lock = _file_lock(path)
        while not self.stopped.wait(HELD_WATCH_SECONDS):
            if self.connection is None or not (writer_waiting(path) or reader_waiting(path)):
                continue
            if lock.acquire(blocking=False):
                try:
                    if not self.busy:
                        self.close()
                finally:
                    lock.release()


_held_writers: dict[str, _HeldWriter] = {}  # DuckDB path -> its held writer (under _file_lock)


def release_held_writer(path: str) -> None:
    """Close the held read-write connection on ``path``, if any (call under its file lock)."""
    held = _held_writers.get(path)
    if held is not None and not held.busy:
        held.close()


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def retry_while_locked(
    open_handle: Callable[[], T], path: str, timeout: float, *, writer: bool = False
) -> T:
    """Call ``open_handle`` until the DuckDB file lock is free or ``timeout`` seconds pass.

    A ``writer`` keeps the file's write intent fresh while it waits, so readers let go of it;
    a reader keeps its read intent fresh, so a sync's held writer lets go between its units.
    """
    started = time.monotonic()
    delay = 0.02
    announced = intent = False
    intent_path = write_intent_path(path) if writer else read_intent_path(path)
    try:
        while True:
            try:
                return open_handle()
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_conflict(exc):
                    raise
                _announce(intent_path)
                intent = True
                waited = time.monotonic() - started
                if waited >= timeout:
                    raise DatabaseLockedError(path, waited, _lock_holder(exc)) from exc
                if not announced and waited > 1:
                    # Once, at WARNING: a command would otherwise sit silent for the whole
                    # timeout (the CLI prints this line on stderr).
                    log.warning(
                        "waiting for the DuckDB file %s: %s holds it; giving up in %.0f s "
                        "(REVTOPS_DB_LOCK_TIMEOUT)",
                        path,
                        _holder_phrase(exc),
                        timeout - waited,
                    )
                    announced = True
                time.sleep(min(delay, timeout - waited) * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
    finally:
        if intent:
            intent_path.unlink(missing_ok=True)


def _holder_phrase(exc: BaseException) -> str:
    holder = _lock_holder(exc)
    return f"another process ({holder})" if holder.startswith("PID") else "another process"


def _lock_holder(exc: BaseException) -> str:
    text = str(exc)
    marker = text.find("PID")
    return text[marker:].split(")")[0].strip() if marker >= 0 else "held by another process"


def _absolute_duckdb_path(url: URL) -> URL:
    """``duckdb:///relative/file`` as users type it: resolved against the working directory
    (and ``~``) once, so every message names the absolute file really used."""
    path = url.database
    if url.get_backend_name() != Backend.DUCKDB or not path or path == ":memory:":
        return url
    return url.set(database=str(Path(path).expanduser().absolute()))


# Idle sessions kept per organization's read role, and how long one serves before it is closed.
READER_POOL_SIZE = 1
READER_RECYCLE_SECONDS = 300


def _reset_reader_session(dbapi_connection: Any, _record: Any, reset_state: Any) -> None:
    """Leave a read session as a new one: the query's transaction rolled back, then
    ``DISCARD ALL`` (outside a transaction, as it must run): session settings (``SET``,
    ``set_config``), prepared statements, temporary tables, advisory locks, cursors, LISTEN,
    cached plans and sequence state. A failure here makes the pool close the session."""
    dbapi_connection.rollback()
    if reset_state.terminate_only:
        return  # being closed anyway
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("DISCARD ALL")  # psycopg forgets its prepared names too
    finally:
        dbapi_connection.autocommit = False


def driver_connection(connection: Connection) -> Any:
    """The DB-API connection under a SQLAlchemy connection (psycopg's, or duckdb-engine's)."""
    raw = connection.connection.driver_connection
    if raw is None:
        raise StoreError("the database connection is closed")
    return raw


class Database:
    """The store at one URL: a SQLAlchemy engine for writes and schema, helpers per backend."""

    def __init__(
        self,
        url: str | URL,
        *,
        readonly_url: str | URL | None = None,
        lock_timeout: float = 60.0,
        duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
    ) -> None:
        self.url = _absolute_duckdb_path(make_url(url))
        backend = self.url.get_backend_name()
        if backend not in (Backend.DUCKDB, Backend.POSTGRESQL):
            raise StoreError(f"unsupported database {backend!r}: use PostgreSQL or DuckDB")
        self.backend = Backend(backend)
        self.lock_timeout = lock_timeout
        self.duckdb_memory_limit = duckdb_memory_limit
        # The base of a write connection's memory_limit (fit_duckdb_memory_limit): the setting,
        # doubled by raise_duckdb_memory_base after a unit ran out, up to the cap.
        self.duckdb_memory_base = (
            memory_size_bytes(duckdb_memory_limit) if self.backend is Backend.DUCKDB else 0
        )
        self.duckdb_memory_cap = int(physical_memory_bytes() * DUCKDB_MEMORY_CAP_SHARE)
        self._readonly_url = make_url(readonly_url) if readonly_url else None
        self._engine: Engine | None = None
        self._reader_engines: dict[str, Engine] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(
            settings.database_url,
            readonly_url=settings.readonly_database_url,
            lock_timeout=settings.db_lock_timeout,
            duckdb_memory_limit=settings.duckdb_memory_limit,
        )

    def __repr__(self) -> str:
        return f"Database({self.display_url})"

    @property
    def display_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @property
    def is_duckdb(self) -> bool:
        return self.backend is Backend.DUCKDB

    @property
    def duckdb_path(self) -> str:
        if not self.is_duckdb or not self.url.database:
            raise StoreError(f"{self.display_url} is not a DuckDB file")
        return self.url.database

    # --- engines -----------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        if self.is_duckdb:
            Path(self.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
            # Bounds DuckDB's buffer cache (its default: 80% of the machine) from the open on,
            # the write-ahead log's replay included: a sync's peak RSS stays its own batches
            # plus this (joins and sorts above it spill to <file>.tmp). The base, raised after
            # a unit ran out of memory, is set at each open (_connect_when_unlocked).
            engine = create_engine(
                self.url,
                poolclass=NullPool,
                connect_args={"config": {"memory_limit": self.duckdb_memory_limit}},
            )
            path, timeout = self.duckdb_path, self.lock_timeout

            @event.listens_for(engine, "do_connect")
            def _connect_when_unlocked(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
                with _file_lock(path):
                    release_warm_reader(path)  # one configuration per file in a process
                    while True:
                        config = {**cparams.get("config", {})}
                        config["memory_limit"] = f"{self.duckdb_memory_base}B"
                        params = {**cparams, "config": config}
                        try:
                            opening = partial(dialect.connect, *cargs, **params)
                            return retry_while_locked(opening, path, timeout, writer=True)
                        except duckdb.Error as exc:
                            # Replaying the write-ahead log inserts its rows into the indexes
                            # too, pinning them: a log of changes all over a big table can
                            # need more than the base at the open itself.
                            if not _replay_out_of_memory(exc) or not self.ran_out_of_memory(exc):
                                raise

            @event.listens_for(engine, "connect")
            def _utc_session(dbapi_connection: Any, record: Any) -> None:
                dbapi_connection.execute(DUCKDB_SESSION_SQL)
                record.info[DUCKDB_BASE_LIMIT_KEY] = self.duckdb_memory_base
                # Each unit of work closes the file; by default that checkpoints, rewriting
                # whole compressed columns (raw JSON) for a few changed rows. Leave changes in
                # the write-ahead log instead and let DuckDB checkpoint once the log passes its
                # threshold: a 10k-row upsert into a 1M-row table drops from ~0.6 s to ~0.2 s.
                dbapi_connection.execute("PRAGMA disable_checkpoint_on_shutdown")

            return engine
        connect_args = {"options": "-c timezone=UTC"}
        if "application_name" not in self.url.query:
            # Names the store's sessions in pg_stat_activity (an operator, or a test, can tell
            # a sync's backend from others); a URL's own application_name wins.
            connect_args["application_name"] = POSTGRES_APPLICATION_NAME
        engine = create_engine(self.url, pool_pre_ping=True, connect_args=connect_args)
        event.listen(engine, "connect", _check_for_dead_client)
        return engine

    def raise_duckdb_memory_base(self) -> int | None:
        """Double the base of the write connections' memory_limit for this store's next
        connections (up to ``duckdb_memory_cap``); the new base, or None at the cap."""
        if self.duckdb_memory_base >= self.duckdb_memory_cap:
            return None
        self.duckdb_memory_base = min(self.duckdb_memory_base * 2, self.duckdb_memory_cap)
        return self.duckdb_memory_base

    def org_reader_engine(self, role: str) -> Engine:
        """PostgreSQL engine for an organization's queries, connected as its login role.

        With a read-only URL (REVTOPS_READONLY_DATABASE_URL) its host, port, database and
        options are used, with the role as user and the password derived from the URL's
        password (``org_reader_password``); without one, the store URL as the role, no
        password (trust, peer, certificate or .pgpass authentication).
        """
        if self.is_duckdb:
            raise StoreError("DuckDB reads open their own read-only handle (store.query)")
        engine = self._reader_engines.get(role)
        if engine is None:
            base = self._readonly_url or self.url
            url = base.set(username=role, password=self.org_reader_password(role))
            # One idle session kept per organization's role (a new backend and its cold
            # catalog caches cost ~30 ms of every query, planning included), reset on return
            # to the pool as a new one would be (_reset_reader_session); more at once are
            # opened and closed as needed. Only the same role ever reuses a session, so
            # whatever a reset could miss stays within the organization. A role's settings
            # (ALTER ROLE ... SET) reach a kept session only when it is recycled or the
            # store disposed; pre_ping replaces one the server ended.
            engine = create_engine(
                url,
                pool_size=READER_POOL_SIZE,
                max_overflow=-1,
                pool_recycle=READER_RECYCLE_SECONDS,
                pool_pre_ping=True,
                pool_reset_on_return=None,  # _reset_reader_session does it
                connect_args={"options": "-c timezone=UTC"},
            )
            event.listen(engine, "reset", _reset_reader_session)
            self._reader_engines[role] = engine
        return engine

    def org_reader_password(self, role: str) -> str | None:
        """The password of an org role: HMAC of the read-only URL's password, or none."""
        secret = self._readonly_url.password if self._readonly_url else None
        if not secret:
            return None
        from revtops_kernel.store.org_roles import role_password

        return role_password(str(secret), role)

    # --- units of work -------------------------------------------------------------------------
    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold this process's turn on the DuckDB file (no-op on PostgreSQL)."""
        if not self.is_duckdb:
            yield
            return
        with _file_lock(self.duckdb_path):
            release_warm_reader(self.duckdb_path)  # the caller may write, or open its own
            yield

    @contextmanager
    def writer_held(self) -> Iterator[None]:
        """Keep one read-write connection for the units of work (``connect``, ``begin``) run
        inside, instead of opening the file for each (DuckDB; PostgreSQL pools anyway).

        Each unit still commits, or rolls back, on its own, and a failed unit's connection is
        closed. Between units the file is let go as soon as another process waits for it, or
        this process opens it read-only; the next unit opens it again. Nested or concurrent
        holds of one file keep the first one's connection.
        """
        if not self.is_duckdb:
            yield
            return
        path = self.duckdb_path
        with _file_lock(path):
            if path in _held_writers:
                held = None
            else:
                held = _held_writers[path] = _HeldWriter(self)
        if held is None:
            yield
            return
        watcher = threading.Thread(
            target=held.watch, args=(path,), name="duckdb-held-writer", daemon=True
        )
        watcher.start()
        try:
            yield
        finally:
            held.stopped.set()
            with _file_lock(path):
                del _held_writers[path]
                held.close()
            watcher.join()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.exclusive():
            held = _held_writers.get(self.duckdb_path) if self.is_duckdb else None
            if held is not None and (held.busy or held.db is not self):
                if held.db is not self and not held.busy:
                    held.close()  # another configuration of the file: one at a time
                held = None
            if held is not None:
                with self._held_unit(held) as connection:
                    fit_duckdb_memory_limit(connection)
                    yield connection
                return
            with self._open() as connection:
                fit_duckdb_memory_limit(connection)
                yield connection

    def ran_out_of_memory(self, exc: BaseException) -> bool:
        """After ``exc``, DuckDB running out of memory: the next connections get twice the
        base (a retried unit among them: store.retry), up to ``duckdb_memory_cap``; whether it
        was raised (False at the cap)."""
        failed = self.duckdb_memory_base
        raised = self.raise_duckdb_memory_base()
        if raised is not None:
            log.warning(
                "DuckDB ran out of memory with a memory_limit base of %.0f MiB (%s); the next "
                "connections to %s get %.0f MiB (REVTOPS_DUCKDB_MEMORY_LIMIT=%s)",
                failed / 2**20,
                first_line(out_of_memory(exc) or exc),
                self.display_url,
                raised / 2**20,
                self.duckdb_memory_limit,
            )
        return raised is not None

    @contextmanager
    def _open(self) -> Iterator[Connection]:
        try:
            connection = self.engine.connect()
        except OperationalError as exc:
            raise StoreError(f"cannot connect to {self.display_url}: {exc.orig}") from exc
        with connection:
            yield connection

    @contextmanager
    def _held_unit(self, held: _HeldWriter) -> Iterator[Connection]:
        """A unit of work on the held connection (under the file lock): opened if it was let
        go, and left as closing would leave it, with no transaction open."""
        if held.connection is None:
            try:
                held.connection = self.engine.connect()
            except OperationalError as exc:
                raise StoreError(f"cannot connect to {self.display_url}: {exc.orig}") from exc
        connection = held.connection
        held.busy = True
        try:
            yield connection
            if connection.in_transaction():  # what closing the connection would do
                connection.rollback()
        except BaseException:
            held.close()  # whatever state the failure left it in
            raise
        finally:
            held.busy = False

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error."""
        with self.connect() as connection, connection.begin():
            yield connection

    def open_duckdb_readonly(self, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        """A read-only DuckDB handle with ``config``; call inside ``exclusive()``."""
        path = self.duckdb_path
        release_held_writer(path)  # DuckDB refuses both kinds of handle in one process
        if not Path(path).exists():
            raise StoreError(f"no database at {path}: run `revtops db upgrade` first")
        handle = retry_while_locked(
            lambda: duckdb.connect(path, read_only=True, config=config),
            path,
            self.lock_timeout,
        )
        handle.execute(DUCKDB_SESSION_SQL)
        return handle

    def dispose(self) -> None:
        if self.is_duckdb and self.url.database:
            with _file_lock(self.duckdb_path):
                release_warm_reader(self.duckdb_path)
                release_held_writer(self.duckdb_path)
        for engine in (self._engine, *self._reader_engines.values()):
            if engine is not None:
                engine.dispose()
        self._engine = None
        self._reader_engines = {}


def _check_for_dead_client(dbapi_connection: Any, _record: Any) -> None:
    """Have the store's PostgreSQL backend end a statement whose client has gone
    (``DEAD_CLIENT_CHECK``). Set after connecting, not in the startup options: a server
    before 14 refuses the connection over a parameter it does not know."""
    if dbapi_connection.info.server_version < 140000:
        return
    dbapi_connection.execute(
        "SELECT set_config('client_connection_check_interval', %s, false)", (DEAD_CLIENT_CHECK,)
    )
    dbapi_connection.commit()  # a session setting made in a transaction ends with it
