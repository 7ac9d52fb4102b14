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
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

_TRY = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_WAIT = text("SELECT pg_advisory_lock(hashtextextended(:key, 0))")
_RELEASE = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
_IN_TRANSACTION = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def sync_lock_key(org: str, provider: str) -> str:
    return f"revtops:sync:{org}:{provider}"


@contextmanager
def exclusive_sync(db: Database, org: str, provider: str) -> Iterator[None]:
    """Hold the sync lock of ``provider`` for ``org`` while the block runs; a second sync
    waits for the first to finish (then reads only what changed since), whichever process
    started it."""
    if db.is_duckdb:
        yield
        return
    key = {"key": sync_lock_key(org, provider)}
    # Its own session, outside the sync's transactions: the lock lives exactly as long as it.
    with db.engine.connect() as session:
        if not session.execute(_TRY, key).scalar_one():
            log.warning(
                "a sync of %s for %s is running in another process; pid %s waits for it",
                provider,
                org,
                os.getpid(),
            )
            session.execute(_WAIT, key)
        session.commit()  # the session lock outlives the transaction that took it
        try:
            yield
        finally:
            session.execute(_RELEASE, key)
            session.commit()


def lock_resolution(conn: Connection, org: str) -> None:
    """Serialize ``org``'s identity resolutions until the caller's transaction ends."""
    _lock_in_transaction(conn, f"revtops:resolve:{org}")


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
