"""Shared pieces of the copilot tests: the scripted API, a small store, a Copilot bound to both.

Not a conftest: other helpers own tests in this folder; test modules import what they use.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import duckdb_copy
from sqlalchemy import text

from revtops_kernel.agent.events import AgentEvent
from revtops_kernel.agent.loop import Copilot
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.upsert import upsert
from revtops_sandbox.anthropic import ScriptedMessagesServer, scripted_settings_overrides

ORG = "acme"
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
STAGES = (
    ("s1", "Discovery", 0, False, False),
    ("s2", "Proposal", 1, False, False),
    ("won", "Closed Won", 2, True, True),
    ("lost", "Closed Lost", 3, True, False),
)


def stage_id(source_id: str) -> uuid.UUID:
    from revtops_kernel.ids import record_id

    return record_id(ORG, "hubspot", "deal_stages", source_id)


def load_crm(db: Database) -> None:
    """Four stages and twelve deals for ``acme``, three for ``globex`` (which must never show)."""
    stages = [
        {"organization_id": ORG, "source_system": "hubspot", "source_id": sid,
         "id": stage_id(sid), "label": label, "display_order": order,
         "is_closed": closed, "is_won": won, "updated_at": NOW}
        for sid, label, order, closed, won in STAGES
    ]  # fmt: skip
    deals = []
    for i in range(12):
        sid, label, _, closed, won = STAGES[i % 4]
        deals.append(
            {"organization_id": ORG, "source_system": "hubspot", "source_id": f"d{i}",
             "name": f"Deal {i}", "amount": Decimal(1000 * (i + 1)), "currency": "USD",
             "stage_id": stage_id(sid), "stage_name": label, "is_closed": closed, "is_won": won,
             "close_date": date(2026, 11, 1 + i), "updated_at": NOW, "created_at": NOW}
        )  # fmt: skip
    deals += [
        {"organization_id": "globex", "source_system": "hubspot", "source_id": f"g{i}",
         "name": f"Globex secret {i}", "amount": Decimal(999_999), "updated_at": NOW}
        for i in range(3)
    ]  # fmt: skip
    with db.begin() as conn:
        upsert(conn, "deal_stages", stages)
        upsert(conn, "deals", deals)
        conn.execute(
            text(
                "INSERT INTO sync_runs (id, organization_id, provider, full_refresh, status, "
                "started_at, finished_at, fetched, upserted, deleted, quarantined, api_calls, "
                "rate_limited) VALUES (:id, :org, 'hubspot', true, 'succeeded', :t, :t, "
                "0, 0, 0, 0, 0, 0)"
            ),
            {"id": uuid.uuid4(), "org": ORG, "t": datetime(2026, 11, 20, 12, 0, tzinfo=UTC)},
        )


@pytest.fixture(scope="module")
def api() -> Iterator[ScriptedMessagesServer]:
    with ScriptedMessagesServer() as server:
        yield server


@pytest.fixture
def scripted(api: ScriptedMessagesServer) -> Iterator[ScriptedMessagesServer]:
    api.reset()
    yield api
    api.reset()


def settings_for(api: ScriptedMessagesServer, **overrides: str) -> Settings:
    values = {**scripted_settings_overrides(api), "REVTOPS_ORG": ORG, **overrides}
    return load_settings(**values)


def make_copilot(db: Database, api: ScriptedMessagesServer, **overrides: str) -> Copilot:
    copilot = Copilot(db, settings_for(api, **overrides), clock=lambda: NOW)
    copilot.retry_base_delay = 0.01
    return copilot


def collect(events: Iterable[AgentEvent]) -> list[AgentEvent]:
    return list(events)


def of_type(events: Iterable[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def answer_text(events: Iterable[AgentEvent]) -> str:
    from revtops_kernel.agent.events import TextDelta

    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.fixture
def duck(tmp_path: Path, duckdb_template: Path) -> Iterator[Database]:
    """The store on DuckDB only: for loop behaviour that does not depend on the backend."""
    from revtops_kernel.store import upgrade

    database = Database(duckdb_copy(duckdb_template, tmp_path / "store.duckdb"), lock_timeout=10)
    upgrade(database)
    yield database
    database.dispose()
