"""Retrying a unit of work that a transient store fault rolled back.

A long sync writes hundreds of batches; one dropped PostgreSQL connection (a failover, an
idle-session reaper, ``pg_terminate_backend``), a serialization failure or a deadlock should
cost one batch's retry, not the run. ``in_transaction`` runs a unit of work in ``db.begin()``
and, when it fails with one of those faults, runs it again on a fresh connection after a
jittered exponential backoff, up to a bound; after that it raises a ``StoreError`` of one
line. Retrying is safe only for work that is all in the transaction (a sync's batch commits
with its cursor), so nothing else is retried.

Transient, by SQLSTATE or exception type:

- PostgreSQL: a lost connection (psycopg ``OperationalError`` without a server SQLSTATE, class
  08, or a connection SQLAlchemy invalidated), ``40001`` serialization failure, ``40P01``
  deadlock, ``57P01``-``57P03`` administrator/crash shutdown and "cannot connect now";
- DuckDB: a write-write conflict between transactions (``TransactionException``). A file held
  by another process already waits ``lock_timeout`` when opening (``DatabaseLockedError``):
  that is not retried again here.

DuckDB running out of memory (``OutOfMemoryException``) is retried differently: at once, on a
fresh connection whose memory_limit base is doubled (``Database.raise_duckdb_memory_base``,
kept for the store's later connections), up to 80% of RAM; past that, a ``StoreError`` of one
line names ``REVTOPS_DUCKDB_MEMORY_LIMIT``. What a write needs beyond the limit is index memory
DuckDB cannot spill (store.database), so a larger limit is the remedy, not a wait.

Anything else (a constraint, a bad value, a statement timeout) would fail again identically
and is raised at once.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import duckdb
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from revtops_kernel.errors import DatabaseLockedError, StoreError
from revtops_kernel.store.database import Database, first_line, out_of_memory

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_SQLSTATES = {
    "40001": "serialization failure",
    "40P01": "deadlock detected",
    "57P01": "server terminated the connection (admin shutdown)",
    "57P02": "server crash shutdown",
    "57P03": "server cannot accept connections now",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a unit of work is retried (settings ``store_retry_*``)."""

    attempts: int = 5  # in total, the first included
    base_delay: float = 0.5  # seconds before the first retry; doubles each time
    max_delay: float = 8.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Full-jitter backoff: retries of several writers hit by one fault spread out."""
        ceiling = min(self.max_delay, self.base_delay * 2**retry)
        return ceiling * (0.5 + rng.random() / 2)


def transient_fault(exc: BaseException) -> str | None:
    """Why ``exc`` is worth a retry on a fresh connection, or None if it is not."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the cause chain, wrappers first
        seen.add(id(current))
        reason = _own_reason(current)
        if reason is not None:
            return reason
        if isinstance(current, DatabaseLockedError):
            return None  # already waited for the file lock: its own bound
        current = current.__cause__ or current.__context__
    return None


def _own_reason(exc: BaseException) -> str | None:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "connection lost"
    # psycopg as loaded, if it is: a process that never loaded it (``revtops sql`` on DuckDB
    # keeps it off its start-up path) cannot be holding one of its errors.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state in TRANSIENT_SQLSTATES:
            return f"{TRANSIENT_SQLSTATES[state]} ({state})"
        if state is not None and state.startswith("08"):
            return f"connection failure ({state})"
        if state is None and isinstance(exc, psycopg.OperationalError):
            return "connection lost"
        return None
    if isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower():
        return "write-write conflict"
    return None


def in_transaction(
    db: Database,
    work: Callable[[Connection], T],
    *,
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work(conn)`` in one ``db.begin()`` transaction, retried on transient faults.

    ``what`` names the work in the log line of each retry and in the final error.
    """
    rng = rng or random.Random()
    attempt = 0
    while True:
        attempt += 1
        try:
            with db.begin() as conn:
                return work(conn)
        except Exception as exc:
            interrupt = _interrupt_behind(exc)
            if interrupt is not None:
                # Ctrl-C (or an exit) during a statement: psycopg cancels it and raises the
                # interrupt, the transaction's rollback then fails on the busy connection and
                # its error replaces the interrupt. That is the user stopping the sync, not a
                # lost connection: no retry.
                raise interrupt from None
            if db.is_duckdb and out_of_memory(exc) is not None:
                if not db.ran_out_of_memory(exc):  # the base is at its cap
                    raise _memory_cap_error(db, exc, what) from exc
                attempt -= 1  # not a transient fault's: bounded by the limit's cap
                continue  # at once, on a fresh connection with the raised base
            reason = transient_fault(exc)
            if reason is None:
                raise
            if attempt >= policy.attempts:
                raise StoreError(
                    f"{what}: the store failed {attempt} times in a row, giving up "
                    f"(last: {reason}: {_first_line(exc)})"
                ) from exc
            delay = policy.delay(attempt - 1, rng)
            log.warning(
                "%s: %s; retrying on a fresh connection in %.1f s (attempt %d of %d)",
                what,
                reason,
                delay,
                attempt + 1,
                policy.attempts,
            )
            sleep(delay)


def _memory_cap_error(db: Database, exc: BaseException, what: str) -> StoreError:
    return StoreError(
        f"{what}: DuckDB ran out of memory with a memory_limit base of "
        f"{db.duckdb_memory_base / 2**20:,.0f} MiB (REVTOPS_DUCKDB_MEMORY_LIMIT="
        f"{db.duckdb_memory_limit}, raised up to its cap, 80% of RAM) plus the indexes it "
        f"pinned; free memory or set REVTOPS_DUCKDB_MEMORY_LIMIT higher "
        f"({first_line(out_of_memory(exc) or exc)})"
    )


def _interrupt_behind(exc: BaseException) -> BaseException | None:
    """A KeyboardInterrupt or SystemExit that ``exc`` was raised while handling, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not isinstance(current, Exception):
            return current
        current = current.__cause__ or current.__context__
    return None


def _first_line(exc: BaseException) -> str:
    root = getattr(exc, "orig", None) or exc
    text = str(root).strip().splitlines()
    return text[0] if text else type(root).__name__
