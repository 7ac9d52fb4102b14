"""The names the router matches (owners, pipelines, stages), read from an organization's store.

Kept apart from the router, which does no I/O: a front end reads them once per question (or
caches them) and passes them in. They are read through the SQL guard, scoped to ``org``.
"""

from __future__ import annotations

from datetime import datetime

from revtops_kernel.agent.guard import run_guarded
from revtops_kernel.agent.routing.names import OwnerName
from revtops_kernel.agent.routing.router import RouteContext
from revtops_kernel.store.database import Database

MAX_NAMES = 5_000  # more owners than this is not a team the router's name matching serves


def load_route_context(db: Database, *, org: str, now: datetime, timezone: str) -> RouteContext:
    """A ``RouteContext`` for ``org``: its current owners, pipelines and stage labels."""

    def column(sql: str) -> list[str]:
        frame = run_guarded(db, sql, org=org, max_rows=MAX_NAMES).frame
        return [str(v) for v in frame.iloc[:, 0] if isinstance(v, str) and v.strip()]

    owners = run_guarded(
        db, "SELECT full_name, email FROM owners WHERE deleted_at IS NULL", org=org,
        max_rows=MAX_NAMES,
    ).frame  # fmt: skip
    return RouteContext(
        now=now,
        timezone=timezone,
        owners=tuple(
            OwnerName(_text(row.full_name), _text(row.email))
            for row in owners.itertuples(index=False)
        ),
        pipelines=tuple(column("SELECT DISTINCT name FROM pipelines WHERE deleted_at IS NULL")),
        stages=tuple(column("SELECT DISTINCT label FROM deal_stages WHERE deleted_at IS NULL")),
    )


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
