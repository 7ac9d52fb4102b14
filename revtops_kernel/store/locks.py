"""Locks that hold across processes: one sync of a provider per organization at a time, one
identity resolution per organization at a time, one admission per email domain at a time.

Several app processes, workers and `revtops sync` may sync the same organization at once.
Without these, two syncs of one provider both think they own the run (the second marks the
first ``interrupted``) and two resolutions UPDATE the same participants in different orders
until PostgreSQL reports a deadlock. PostgreSQL's advisory locks are keyed by a 64-bit hash of
the name; a session lock dies with its connection, so a killed process never leaves one behind.
A DuckDB file has one writing process at a time already (its file lock); nothing to do there.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from revtops_kernel.errors import SyncBusyError
from revtops_kernel.settings import DEFAULT_SYNC_LOCK_WAIT_SECONDS
from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

_TRY = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_WAIT = text("SELECT pg_advisory_lock(hashtextextended(:key, 0))")
_RELEASE = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
_IN_TRANSACTION = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_SHARED_SESSION = text("SELECT pg_advisory_lock_shared(hashtextextended(:key, 0))")
_SHARED_RELEASE = text("SELECT pg_advisory_unlock_shared(hashtextextended(:key, 0))")
_SHARED_IN_TRANSACTION = text("SELECT pg_advisory_xact_lock_shared(hashtextextended(:key, 0))")
_LOCK_NOT_AVAILABLE = "55P03"
# Who holds the lock: a bigint advisory key shows in pg_locks as its high and low 32 bits.
_HOLDER = text(
    """
    SELECT a.pid, a.application_name, a.client_addr,
        a.backend_start AT TIME ZONE 'UTC' AS backend_start
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid::bigint = (hashtextextended(:key, 0) >> 32) & 4294967295
        AND l.objid::bigint = hashtextextended(:key, 0) & 4294967295
    """
)


def sync_lock_key(org: str, provider: str) -> str:
    return f"revtops:sync:{org}:{provider}"


@contextmanager
def exclusive_sync(
    db: Database,
    org: str,
    provider: str,
    *,
    wait_seconds: float = DEFAULT_SYNC_LOCK_WAIT_SECONDS,
) -> Iterator[None]:
    """Hold the sync lock of ``provider`` for ``org`` while the block runs; a second sync
    waits for the first to finish (then reads only what changed since), whichever process
    started it, for at most ``wait_seconds``: then ``SyncBusyError`` names the holder."""
    if db.is_duckdb:
        yield
        return
    key = {"key": sync_lock_key(org, provider)}
    # Its own session, outside the sync's transactions: the lock lives exactly as long as it.
    with db.engine.connect() as session:
        if not session.execute(_TRY, key).scalar_one():
            session.commit()
            _wait_for(session, key, org, provider, wait_seconds)
        session.commit()  # the session lock outlives the transaction that took it
        try:
            yield
        finally:
            session.execute(_RELEASE, key)
            session.commit()


def _wait_for(
    session: Connection, key: dict[str, str], org: str, provider: str, wait_seconds: float
) -> None:
    holder = _holder(session, key)
    log.warning(
        "a sync of %s for %s is running in another process (%s); pid %s waits for it",
        provider,
        org,
        holder,
        os.getpid(),
    )
    started = time.monotonic()
    # lock_timeout bounds advisory lock waits too; SET LOCAL ends with this transaction, so
    # the pooled connection goes back with no timeout left on it.
    session.execute(text(f"SET LOCAL lock_timeout = '{max(1, round(wait_seconds * 1000))}ms'"))
    try:
        session.execute(_WAIT, key)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        session.rollback()
        waited = time.monotonic() - started
        raise SyncBusyError(org, provider, waited, _holder(session, key)) from None


def _holder(session: Connection, key: dict[str, str]) -> str | None:
    row = session.execute(_HOLDER, key).first()
    session.commit()
    if row is None:
        return None
    since = row.backend_start.strftime("%Y-%m-%d %H:%M UTC") if row.backend_start else "?"
    where = f" from {row.client_addr}" if row.client_addr else ""
    name = f" ({row.application_name})" if row.application_name else ""
    return f"server pid {row.pid}{name}{where}, connected since {since}"


def lock_resolution(conn: Connection, org: str) -> None:
    """Serialize ``org``'s identity resolutions until the caller's transaction ends."""
    _lock_in_transaction(conn, f"revtops:resolve:{org}")


def share_resolution(conn: Connection, org: str) -> None:
    """Keep ``org``'s identity resolutions out until the caller's transaction ends, beside other
    holders of this shared lock (sync batches that resolve their own rows before writing them:
    a resolution that started before such a batch committed would miss the batch's rows, the
    batch having read the CRM rows before the ones this resolution looks at were committed)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SHARED_IN_TRANSACTION, {"key": f"revtops:resolve:{org}"})


@contextmanager
def resolution_shared(db: Database, org: str) -> Iterator[int | None]:
    """Hold ``org``'s resolution lock shared, on a session of its own, while the block runs:
    resolutions wait for the block to end (``share_resolution``, for a whole sync's batches).
    Yields the holding backend's pid (None on DuckDB, where there is nothing to hold)."""
    if db.is_duckdb:
        yield None
        return
    key = {"key": f"revtops:resolve:{org}"}
    with db.engine.connect() as session:
        session.execute(_SHARED_SESSION, key)
        pid = int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        session.commit()  # the session lock outlives the transaction that took it
        try:
            yield pid
        finally:
            try:
                session.execute(_SHARED_RELEASE, key)
                session.commit()
            except Exception:  # a dropped session released it already
                log.warning("releasing the shared resolution lock of %s failed", org)


def lock_admission(conn: Connection, domain: str) -> None:
    """Serialize sign-ins from ``domain`` until the caller's transaction ends.

    Admission reads, then writes (is anyone in this organization yet? then the newcomer is its
    admin); two first colleagues signing in at once on two app processes would otherwise both
    read "nobody" and both become admins, or both found the organization of an invitation.
    """
    _lock_in_transaction(conn, f"revtops:admit:{domain}")


def _lock_in_transaction(conn: Connection, key: str) -> None:
    # DuckDB has one writing process and this process's writers take turns: nothing to do.
    if conn.dialect.name == "postgresql":
        conn.execute(_IN_TRANSACTION, {"key": key})
