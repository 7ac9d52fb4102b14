"""Each provider's state for one organization: connected how, last sync and its counts.

One answer for every front end (the REST API, the web app's integrations panel, the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from revtops_kernel.providers import PROVIDERS, settings_token
from revtops_kernel.run_status import SyncRunStatus
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata

PROVIDER_NAMES = {p.value: info.display_name for p, info in PROVIDERS.items()}


@dataclass(frozen=True)
class RunSummary:
    status: SyncRunStatus
    started_at: datetime
    finished_at: datetime | None
    fetched: int
    upserted: int
    deleted: int
    quarantined: int
    error: str | None


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    name: str
    status: str  # available, connected, error (as recorded for a Nango connection), ...
    via: str | None  # nango or token; None when not connected
    last_sync_at: datetime | None
    last_error: str | None
    last_run: RunSummary | None

    @property
    def connected(self) -> bool:
        return self.via is not None

    @property
    def syncing(self) -> bool:
        return self.last_run is not None and self.last_run.status is SyncRunStatus.RUNNING


def provider_statuses(db: Database, settings: Settings, org: str) -> list[ProviderStatus]:
    integrations = metadata.tables["integrations"]
    runs = metadata.tables["sync_runs"]
    with db.connect() as conn:
        recorded = {
            row.provider: row
            for row in conn.execute(
                select(integrations).where(integrations.c.organization_id == org)
            )
        }
        latest: dict[str, RunSummary] = {}
        query = (
            select(runs)
            .where(runs.c.organization_id == org)
            .order_by(runs.c.provider, runs.c.started_at.desc())
        )
        for run_row in conn.execute(query):
            if run_row.provider not in latest:
                latest[run_row.provider] = RunSummary(
                    SyncRunStatus(run_row.status),
                    run_row.started_at,
                    run_row.finished_at,
                    run_row.fetched,
                    run_row.upserted,
                    run_row.deleted,
                    run_row.quarantined,
                    run_row.error,
                )
    statuses = []
    for provider, info in PROVIDERS.items():
        row = recorded.get(provider)
        has_token = settings_token(settings, provider) is not None
        if row is not None and row.nango_connection_id:
            via: str | None = "nango"
            status = row.status
        elif has_token:
            via, status = "token", "connected"
        else:
            via, status = None, "available"
        run = latest.get(provider)
        last_sync = row.last_sync_at if row is not None else None
        if last_sync is None and run is not None and run.status is SyncRunStatus.SUCCEEDED:
            last_sync = run.finished_at
        statuses.append(
            ProviderStatus(
                provider.value,
                info.display_name,
                status,
                via,
                last_sync,
                row.last_error if row is not None else None,
                run,
            )
        )
    return statuses
