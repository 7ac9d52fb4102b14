"""A warm read-only DuckDB handle per file, reused by the organization-scoped reads (issue 13).

A cold read pays for opening the file read-only (starting an instance, reading the catalog,
replaying the write-ahead log), for a temporary view per table scoping it to the organization,
and for closing it again: most of a small query's time. So a process keeps one read-only
instance per file open between reads, its configuration locked once, with one connection per
organization that holds that organization's views.

Views are made as statements need them (``Lease.scope``), not all 31 up front: each
connection's ``search_path`` is its own temporary schema alone, set before the configuration is
locked, so a table name no view shadows yet is not found at all (``deals``, ``main.deals`` and
``query_table('deals')`` alike), never read unscoped. (A catalog-qualified name reaches the file,
as it always did: the guard refuses those.)

The handle is given up:

- before this process writes: ``Database.exclusive()`` and every read-write connect close it
  first (DuckDB refuses a read-only and a read-write handle on one file in one process);
- as soon as another process wants to write. A read-only handle holds a shared lock on the
  file, which keeps writers out, so a writer that finds the file locked keeps
  ``<file>.write-intent`` fresh while it waits (``database.retry_while_locked``). A watcher
  thread beside the warm handle looks for it every ``WATCH_SECONDS`` and closes the handle
  between reads; a read finishing sees it too; and no reader opens the file while the intent is
  fresh. A writer waits at most for the read running, plus ``WATCH_SECONDS`` and its own retry
  interval (at most 0.75 s);
- after ``IDLE_SECONDS`` without a read;
- when the file or its write-ahead log changed since it was opened (inode, size, mtime), which
  the shared lock should make impossible: a read never sees a store older than its last write.

So a process that writes between its reads pays the open again after each write: DuckDB's own
start, about what an in-memory connect costs, is the floor of that first read. (The copilot's
loop writes a question's ledger rows and messages when it ends, not between rounds:
``agent.ledger.Ledger.hold``.)
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from revtops_kernel.errors import QueryError, QueryTimeoutError
from revtops_kernel.store.database import _file_lock, writer_waiting

if TYPE_CHECKING:
    from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

IDLE_SECONDS = 5.0  # a copilot turn's reads come seconds apart at most
WATCH_SECONDS = 0.1  # how often the watcher looks for a waiting writer
# Connections made (their search_path set) before the configuration is locked; one per
# organization, the least recently used one's views dropped when a further organization comes.
CONNECTIONS = 8

Generation = tuple[tuple[int, int, int] | None, ...]
# (connection, organization, the file's catalog, table names): create those views.
Scope = Callable[[duckdb.DuckDBPyConnection, str, str, Iterable[str]], None]


def _generation(path: str) -> Generation:
    """Inode, size and mtime of the file and its write-ahead log: a write changes one of them."""
    out: list[tuple[int, int, int] | None] = []
    for name in (path, f"{path}.wal"):
        try:
            stat = Path(name).stat()
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


@dataclass
class _OrgConnection:
    connection: duckdb.DuckDBPyConnection
    scoped: set[str] = field(default_factory=set)  # the tables it has a view of


@dataclass
class _Warm:
    path: str
    handle: duckdb.DuckDBPyConnection
    config: dict[str, Any]
    generation: Generation
    catalog: str
    stored: frozenset[str]  # the file's tables
    spare: list[duckdb.DuckDBPyConnection]
    pid: int = field(default_factory=os.getpid)
    orgs: dict[str, _OrgConnection] = field(default_factory=dict)  # least recently used first
    last_used: float = field(default_factory=time.monotonic)
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        for connection in [*(o.connection for o in self.orgs.values()), *self.spare]:
            with suppress(duckdb.Error):
                connection.close()
        self.orgs.clear()
        self.spare.clear()
        with suppress(duckdb.Error):
            self.handle.close()

    def connection_for(self, org: str) -> _OrgConnection | None:
        """``org``'s connection: its own, a spare one, or the least recently used other's."""
        mine = self.orgs.pop(org, None)
        if mine is None and self.spare:
            mine = _OrgConnection(self.spare.pop())
        if mine is None and self.orgs:
            other = next(iter(self.orgs))
            mine = self.orgs.pop(other)
            try:
                for name in mine.scoped:
                    mine.connection.execute(f'DROP VIEW IF EXISTS temp.main."{name}"')
            except duckdb.Error:  # not reusable after all: the caller starts afresh
                with suppress(duckdb.Error):
                    mine.connection.close()
                return None
            mine.scoped.clear()
        if mine is not None:
            self.orgs[org] = mine  # now the most recently used
        return mine


# One warm handle per file; read and changed only under the file's lock (database._file_lock).
_warm: dict[str, _Warm] = {}
opens = 0  # read-only opens so far (tests and benchmarks)


def release(path: str) -> None:
    """Close ``path``'s warm handle in this process, if any; call under the file's lock."""
    warm = _warm.pop(path, None)
    if warm is None:
        return
    if warm.pid != os.getpid():  # inherited through fork: not ours to close
        return
    warm.close()


@atexit.register
def _release_all() -> None:
    for path in list(_warm):
        lock = _file_lock(path)
        if lock.acquire(timeout=1):  # a daemon thread's read may still hold it: leave that one
            try:
                release(path)
            finally:
                lock.release()


@dataclass
class Lease:
    """``org``'s connection on the warm handle, for one read."""

    _org_connection: _OrgConnection
    _warm: _Warm
    _org: str
    _scope: Scope
    discarded: bool = False

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        return self._org_connection.connection

    def scope(self, names: Iterable[str] | None = None) -> bool:
        """Make the views of ``names`` (every table if None) the connection lacks yet; whether
        there were any. A name that is no table of the file stays unknown to the query."""
        wanted = self._warm.stored if names is None else self._warm.stored & set(names)
        new = sorted(wanted - self._org_connection.scoped)
        if new:
            try:
                self._scope(self.connection, self._org, self._warm.catalog, new)
            except BaseException:
                self.discard()  # some of them may exist: not a connection to reuse
                raise
            self._org_connection.scoped.update(new)
        return bool(new)

    def discard(self) -> None:
        """Do not reuse this connection (the read was interrupted): the next one is fresh."""
        self.discarded = True


@contextmanager
def org_connection(db: Database, org: str, config: dict[str, Any], scope: Scope) -> Iterator[Lease]:
    """Hold this process's turn on the file; yield ``org``'s scoped connection on the warm
    read-only handle (opened with ``config`` if there is none), ``scope`` making the views."""
    path = db.duckdb_path
    with _file_lock(path):
        warm = _current(db, config)
        mine = warm.connection_for(org)
        if mine is None:  # every connection was discarded: start afresh
            release(path)
            warm = _current(db, config)
            mine = warm.connection_for(org)
            assert mine is not None
        lease = Lease(mine, warm, org, scope)
        try:
            yield lease
        except QueryError as exc:
            if isinstance(exc, QueryTimeoutError):
                lease.discard()
            raise  # a refused or failed query leaves its connection as it was
        except BaseException:
            lease.discard()
            raise
        finally:
            warm.last_used = time.monotonic()
            if lease.discarded:
                warm.orgs.pop(org, None)
                with suppress(duckdb.Error):
                    lease.connection.close()
            if writer_waiting(path):
                release(path)


def _current(db: Database, config: dict[str, Any]) -> _Warm:
    """The warm handle of ``db``'s file, reopened if it may be stale; under the file's lock."""
    global opens
    path = db.duckdb_path
    warm = _warm.get(path)
    if warm is not None and warm.pid != os.getpid():
        _warm.pop(path)  # a forked child's copy: start afresh, leave the parent's alone
        warm = None
    if warm is not None and (
        warm.config != config or warm.generation != _generation(path) or writer_waiting(path)
    ):
        release(path)
        warm = None
    if warm is not None:
        return warm
    _wait_for_writers(path, db.lock_timeout)
    generation = _generation(path)  # before opening: a write meanwhile shows as a change
    handle = db.open_duckdb_readonly(config)
    opens += 1
    try:
        # Every connection of the instance inherits this; the search path is per connection.
        handle.execute("SET GLOBAL TimeZone = 'UTC'")
        spare = []
        for _ in range(CONNECTIONS):
            connection = handle.cursor()
            connection.execute("SET search_path = 'temp.main'")
            spare.append(connection)
        handle.execute("SET lock_configuration = true")  # then nothing may change them
        (catalog,) = handle.execute("SELECT current_database()").fetchone() or ("",)
        stored = frozenset(
            row[0]
            for row in handle.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        )
    except BaseException:
        handle.close()
        raise
    warm = _Warm(path, handle, dict(config), generation, str(catalog), stored, spare)
    _warm[path] = warm
    threading.Thread(target=_watch, args=(warm,), name="duckdb-warm-reader", daemon=True).start()
    return warm


def _wait_for_writers(path: str, timeout: float) -> None:
    """Let a writer that is waiting for the file go first (at most ``timeout`` seconds)."""
    started = time.monotonic()
    while writer_waiting(path) and time.monotonic() - started < timeout:
        time.sleep(0.02)


def _watch(warm: _Warm) -> None:
    """Close ``warm`` when a writer waits or it has been idle; leaves once it is closed."""
    lock = _file_lock(warm.path)
    while not warm.closed:
        time.sleep(WATCH_SECONDS)
        if not lock.acquire(blocking=False):
            continue  # a read (or this process's write) has the file: look again later
        try:
            if warm.closed or _warm.get(warm.path) is not warm:
                return
            if writer_waiting(warm.path) or time.monotonic() - warm.last_used >= IDLE_SECONDS:
                release(warm.path)
                return
        finally:
            lock.release()
