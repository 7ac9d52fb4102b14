"""Amount and close-date history, synced from the sandbox's HubSpot and Salesforce into each
backend, compared with the sandbox's own truth (`revtops_sandbox.deal_history`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from helpers import sandbox_settings
from sqlalchemy import text

from revtops_kernel.settings import Settings
from revtops_kernel.store import Database
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer
from revtops_sandbox.company import PIPELINES, Company, Deal
from revtops_sandbox.deal_history import amount_versions, close_versions, drop_since_stage, pushes

ORG = "acme"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.03, seed=5) as server:
        yield server


def settings_for(sandbox: SandboxServer, db: Database) -> Settings:
    return sandbox_settings(sandbox, db, "hubspot", "salesforce", org=ORG)


History = dict[tuple[str, str], list[tuple[datetime, Any]]]


def stored(db: Database, system: str) -> History:
    """(deal source id, field) -> [(changed_at to the second, value)], oldest first."""
    sql = """
        SELECT d.source_id AS deal, h.field, h.changed_at, h.amount, h.close_date
        FROM deal_field_history h JOIN deals d ON d.id = h.deal_id
        WHERE h.source_system = :s AND h.deleted_at IS NULL
        ORDER BY d.source_id, h.field, h.changed_at"""
    out: History = {}
    with db.connect() as conn:
        for r in conn.execute(text(sql), {"s": system}):
            value = r.amount if r.field == "amount" else r.close_date
            at = r.changed_at.astimezone(UTC).replace(microsecond=0)
            out.setdefault((r.deal, r.field), []).append((at, value))
    return out


def truth(company: Company, deal_key: Any) -> History:
    out: History = {}
    for deal in company.live("deals"):
        assert isinstance(deal, Deal)
        key = deal_key(deal)
        amounts = [(_at(ms), Decimal(c) / 100) for ms, c in amount_versions(deal)]
        closes = [(_at(ms), date.fromordinal(date(1970, 1, 1).toordinal() + day))
                  for ms, day in close_versions(deal)]  # fmt: skip
        if amounts:
            out[(key, "amount")] = amounts
        out[(key, "close_date")] = closes
    return out


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, UTC)


@pytest.mark.slow
def test_both_crms_sync_the_planted_history(db: Database, sandbox: SandboxServer) -> None:
    settings = settings_for(sandbox, db)
    company = sandbox.company
    for provider in ("hubspot", "salesforce"):
        result = run_sync(db, settings, provider)
        assert result.ok, result.error
        assert result.counts.quarantined == 0
        # A first sync deletes nothing: the Salesforce pass's derived history rows count as
        # written (they read as deleted before).
        assert result.counts.deleted == 0, provider

    hubspot = stored(db, "hubspot")
    assert hubspot == truth(company, lambda d: str(company.hs_id("deals", d)))
    salesforce = stored(db, "salesforce")
    assert salesforce == truth(company, lambda d: company.sf_id("deals", d))
    # Both views tell one story, and the planted patterns are there to find.
    assert len(hubspot) == len(salesforce)
    live = [d for d in company.live("deals") if isinstance(d, Deal)]
    open_deals = [d for d in live if not PIPELINES[d.pipeline].stages[d.stage].is_closed]
    assert any(pushes(d) >= 2 for d in open_deals)
    assert any(drop_since_stage(d) >= 0.2 for d in open_deals)
    assert any(pushes(d) <= 1 and drop_since_stage(d) < 0.2 for d in open_deals)

    # A second sync writes nothing (the Salesforce pass included).
    for provider in ("hubspot", "salesforce"):
        again = run_sync(db, settings, provider)
        assert again.ok and again.counts.upserted == 0 and again.counts.deleted == 0, provider


@pytest.mark.slow
def test_current_values_match_the_last_history_row(db: Database, sandbox: SandboxServer) -> None:
    """The history ends in the deal's current amount and close date on both CRMs."""
    settings = settings_for(sandbox, db)
    for provider in ("hubspot", "salesforce"):
        assert run_sync(db, settings, provider).ok
    sql = """
        WITH last AS (
            SELECT deal_id, field, amount, close_date,
                   row_number() OVER (PARTITION BY deal_id, field ORDER BY changed_at DESC) AS n
            FROM deal_field_history WHERE deleted_at IS NULL)
        SELECT count(*) FROM deals d JOIN last l ON l.deal_id = d.id AND l.n = 1
        WHERE d.deleted_at IS NULL AND (
            (l.field = 'amount' AND l.amount IS DISTINCT FROM d.amount)
            OR (l.field = 'close_date' AND l.close_date IS DISTINCT FROM d.close_date))"""
    with db.connect() as conn:
        assert conn.execute(text(sql)).scalar_one() == 0
        missing = conn.execute(
            text(
                "SELECT count(*) FROM deals d WHERE d.deleted_at IS NULL AND NOT EXISTS ("
                "SELECT 1 FROM deal_field_history h WHERE h.deal_id = d.id "
                "AND h.field = 'close_date')"
            )
        ).scalar_one()
    assert missing == 0
