"""Small writes around the data: organizations, sync runs, cursors, quarantine, integrations.

Portable SQL (PostgreSQL and DuckDB both speak ``INSERT … ON CONFLICT``); each function runs in
the caller's transaction so a sync can commit a page's rows and its cursor together.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, select, text, update

from revtops_kernel.run_status import SyncRunStatus
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import utcnow

_runs = metadata.tables["sync_runs"]
_cursors = metadata.tables["sync_cursors"]
_quarantine = metadata.tables["quarantined_records"]
_integrations = metadata.tables["integrations"]


def ensure_organization(conn: Connection, org: str, *, name: str | None = None) -> None:
    now = utcnow()
    conn.execute(
        text(
            "INSERT INTO organizations (id, name, created_at, updated_at) "
            "VALUES (:id, :name, :now, :now) ON CONFLICT (id) DO NOTHING"
        ),
        {"id": org, "name": name or org, "now": now},
    )


def start_run(conn: Connection, org: str, provider: str, *, full_refresh: bool) -> uuid.UUID:
    reap_interrupted_runs(conn)
    run_id = uuid.uuid4()
    conn.execute(
        _runs.insert().values(
            id=run_id,
            organization_id=org,
            provider=provider,
            full_refresh=full_refresh,
            status=SyncRunStatus.RUNNING,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=utcnow(),
            fetched=0,
            upserted=0,
            deleted=0,
            quarantined=0,
            api_calls=0,
            rate_limited=0,
        )
    )
    return run_id


def reap_interrupted_runs(conn: Connection) -> int:
    """Mark 'running' runs of this host whose process is gone as interrupted; return how many.

    A sync killed outright (SIGKILL, a crash, a reboot) cannot record its own end. Its cursors
    are safe (they move only after commits), but its row would claim to be running forever.
    Runs of other hosts are left alone: their processes cannot be checked from here.
    """
    host = socket.gethostname()
    running = conn.execute(
        select(_runs.c.id, _runs.c.pid).where(
            _runs.c.status == SyncRunStatus.RUNNING, _runs.c.host == host
        )
    ).all()
    gone = [row.id for row in running if row.pid is not None and not _process_alive(row.pid)]
    if gone:
        conn.execute(
            update(_runs)
            .where(_runs.c.id.in_(gone))
            .values(
                status=SyncRunStatus.INTERRUPTED,
                finished_at=utcnow(),
                error="the sync's process ended without recording an outcome (killed or crashed)",
            )
        )
    return len(gone)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@dataclass
class RunCounts:
    fetched: int = 0
    upserted: int = 0
    deleted: int = 0
    quarantined: int = 0
    api_calls: int = 0
    rate_limited: int = 0


def finish_run(
    conn: Connection,
    run_id: uuid.UUID,
    status: SyncRunStatus,
    counts: RunCounts,
    error: str | None,
) -> None:
    conn.execute(
        update(_runs)
        .where(_runs.c.id == run_id)
        .values(
            status=status,
            finished_at=utcnow(),
            error=error,
            fetched=counts.fetched,
            upserted=counts.upserted,
            deleted=counts.deleted,
            quarantined=counts.quarantined,
            api_calls=counts.api_calls,
            rate_limited=counts.rate_limited,
        )
    )


def load_cursor(conn: Connection, org: str, provider: str, stream: str) -> str | None:
    row = conn.execute(
        select(_cursors.c.cursor).where(
            _cursors.c.organization_id == org,
            _cursors.c.provider == provider,
            _cursors.c.stream == stream,
        )
    ).first()
    return None if row is None else row.cursor


def load_cursors(conn: Connection, org: str, provider: str) -> dict[str, str]:
    """Every stream's cursor of ``provider`` for ``org``, in one query (a sync reads them once:
    on DuckDB each unit of work opens the file)."""
    rows = conn.execute(
        select(_cursors.c.stream, _cursors.c.cursor).where(
            _cursors.c.organization_id == org, _cursors.c.provider == provider
        )
    )
    return {str(row.stream): str(row.cursor) for row in rows if row.cursor is not None}


def save_cursor(conn: Connection, org: str, provider: str, stream: str, cursor: str) -> None:
    conn.execute(
        text(
            "INSERT INTO sync_cursors (organization_id, provider, stream, cursor, updated_at) "
            "VALUES (:org, :provider, :stream, :cursor, :now) "
            "ON CONFLICT (organization_id, provider, stream) "
            "DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at"
        ),
        {"org": org, "provider": provider, "stream": stream, "cursor": cursor, "now": utcnow()},
    )


def has_cursors(conn: Connection, org: str, provider: str) -> bool:
    """Has a sync of ``provider`` for ``org`` committed anything yet?"""
    found = conn.execute(
        select(_cursors.c.stream)
        .where(_cursors.c.organization_id == org, _cursors.c.provider == provider)
        .limit(1)
    ).first()
    return found is not None


def clear_cursors(conn: Connection, org: str, provider: str) -> None:
    conn.execute(
        delete(_cursors).where(_cursors.c.organization_id == org, _cursors.c.provider == provider)
    )


@dataclass(frozen=True)
class QuarantineEntry:
    stream: str
    source_id: str | None
    reason: str
    raw: Any


def has_quarantined(conn: Connection, org: str, source_system: str) -> bool:
    return (
        conn.execute(
            select(_quarantine.c.id)
            .where(
                _quarantine.c.organization_id == org,
                _quarantine.c.source_system == source_system,
            )
            .limit(1)
        ).first()
        is not None
    )


def quarantine(
    conn: Connection,
    org: str,
    source_system: str,
    run_id: uuid.UUID,
    entries: Sequence[QuarantineEntry],
) -> None:
    """Set records aside with their reason; a record seen again replaces its older entry."""
    if not entries:
        return
    release(conn, org, source_system, entries[0].stream, [e.source_id for e in entries])
    now = utcnow()
    conn.execute(
        _quarantine.insert(),
        [
            {
                "id": uuid.uuid4(),
                "organization_id": org,
                "source_system": source_system,
                "stream": entry.stream,
                "source_id": entry.source_id,
                "reason": entry.reason,
                "raw": _jsonable(entry.raw),
                "sync_run_id": run_id,
                "created_at": now,
            }
            for entry in entries
        ],
    )


def release(
    conn: Connection,
    org: str,
    source_system: str,
    stream: str,
    source_ids: Iterable[str | None],
) -> None:
    """Drop quarantine entries of records that now normalize (or are quarantined anew)."""
    ids = [i for i in source_ids if i is not None]
    if not ids:
        return
    conn.execute(
        delete(_quarantine).where(
            _quarantine.c.organization_id == org,
            _quarantine.c.source_system == source_system,
            _quarantine.c.stream == stream,
            _quarantine.c.source_id.in_(bindparam("ids", expanding=True)),
        ),
        {"ids": ids},
    )


def record_sync(
    conn: Connection, org: str, provider: str, *, succeeded_at: datetime | None, error: str | None
) -> None:
    """Keep the integration's status and freshness (created on the first sync with a token)."""
    now = utcnow()
    conn.execute(
        text(
            "INSERT INTO integrations (id, organization_id, provider, status, created_at, "
            "updated_at) VALUES (:id, :org, :provider, 'connected', :now, :now) "
            "ON CONFLICT (organization_id, provider) DO NOTHING"
        ),
        {"id": uuid.uuid4(), "org": org, "provider": provider, "now": now},
    )
    values: dict[str, Any] = {"updated_at": now, "last_error": error}
    values["status"] = "error" if error else "connected"
    if succeeded_at is not None:
        values["last_sync_at"] = succeeded_at
    conn.execute(
        update(_integrations)
        .where(_integrations.c.organization_id == org, _integrations.c.provider == provider)
        .values(**values)
    )


def last_synced_at(conn: Connection, org: str) -> datetime | None:
    """When any of ``org``'s integrations last synced successfully (None: never): what a view
    of derived numbers compares with its own reading time to know it is stale."""
    value = conn.execute(
        select(func.max(_integrations.c.last_sync_at)).where(_integrations.c.organization_id == org)
    ).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


def _jsonable(value: Any) -> Any:
    # Quarantined payloads are whatever arrived; keep them as JSON whatever they are.
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return {"unserializable": repr(value)[:10_000]}
    return value


def interrupt_own_runs(conn: Connection, reason: str) -> int:
    """Mark this process's 'running' runs as interrupted (Ctrl-C); return how many.

    The interrupted process records its own end, so the run does not claim to be running
    until the next sync reaps it. Its cursors are safe: they move only after commits.
    """
    done = conn.execute(
        update(_runs)
        .where(
            _runs.c.status == SyncRunStatus.RUNNING,
            _runs.c.host == socket.gethostname(),
            _runs.c.pid == os.getpid(),
        )
        .values(status=SyncRunStatus.INTERRUPTED, finished_at=utcnow(), error=reason)
    )
    return int(done.rowcount or 0)
