"""Syncs over real HTTP against the sandbox into both stores, checked against ground truth."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from helpers import sandbox_settings
from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.bookkeeping import load_cursor, save_cursor
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer
from revtops_sandbox.company import HS_ID_BASE, LIVE, PIPELINES
from revtops_sandbox.deal_history import snapshots
from revtops_sandbox.hubspot_schema import deal_name

ORG = "northwind"
ENGAGEMENT_TYPES = {
    "meetings": "meeting",
    "calls": "call",
    "emails": "email",
    "notes": "note",
    "tasks": "task",
}


def settings_for(sandbox: SandboxServer, db: Database) -> Settings:
    return sandbox_settings(sandbox, db, "hubspot", "salesforce", org=ORG)


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def live_count(db: Database, table: str, system: str, where: str = "") -> int:
    extra = f" AND {where}" if where else ""
    return int(
        rows(
            db,
            f"SELECT count(*) FROM {table} WHERE source_system = :s AND deleted_at IS NULL{extra}",
            s=system,
        )[0][0]
    )


DEAL_TABLES = ("deals", "deal_contacts", "deal_stage_history", "deal_field_history")


def checksum(db: Database, table: str) -> list[Any]:
    return rows(db, f"SELECT * FROM {table} ORDER BY id")


def by_id(db: Database, table: str) -> dict[Any, Any]:
    return {r.id: r for r in checksum(db, table)}


def test_a_full_hubspot_sync_lands_exactly_the_sandbox_records(
    db: Database, sandbox: SandboxServer
) -> None:
    result = run_sync(db, settings_for(sandbox, db), "hubspot")
    assert result.ok, result.error
    truth = sandbox.company.counts()
    assert live_count(db, "owners", "hubspot") == truth["owners"]
    assert live_count(db, "accounts", "hubspot") == truth["companies"]
    assert live_count(db, "contacts", "hubspot") == truth["contacts"]
    assert live_count(db, "deals", "hubspot") == truth["deals"]
    for stream, activity_type in ENGAGEMENT_TYPES.items():
        assert (
            live_count(db, "activities", "hubspot", f"activity_type = '{activity_type}'")
            == (truth[stream])
        ), stream
    assert result.counts.quarantined == 0

    # Field by field, every deal against the company it was rendered from.
    stored = {
        r.source_id: r
        for r in rows(
            db,
            "SELECT source_id, name, amount, close_date, stage_name, is_closed, is_won, "
            "owner_id, account_id FROM deals WHERE source_system = 'hubspot'",
        )
    }
    company = sandbox.company
    for deal in company.live("deals"):
        row = stored[str(company.hs_id("deals", deal))]
        account = company.accounts[deal.account]
        stage = company.stage(deal)  # type: ignore[arg-type]
        assert row.name == deal_name(account, deal)  # type: ignore[arg-type]
        expected_amount = None if deal.amount_cents < 0 else Decimal(deal.amount_cents) / 100
        assert row.amount == expected_amount
        assert row.close_date == date(1970, 1, 1) + timedelta(days=deal.close_day)
        assert (row.stage_name, row.is_closed, row.is_won) == (
            stage.label,
            stage.is_closed,
            stage.is_won,
        )
        owner_hs_id = HS_ID_BASE["owners"] + deal.owner
        assert row.owner_id == record_id(ORG, "hubspot", "owners", str(owner_hs_id))
        account_hs_id = HS_ID_BASE["companies"] + deal.account
        assert row.account_id == record_id(ORG, "hubspot", "accounts", str(account_hs_id))

    # The run is recorded with its counts, and the integration is fresh.
    run = rows(db, "SELECT status, fetched, api_calls FROM sync_runs WHERE provider = 'hubspot'")
    assert run == [("succeeded", result.counts.fetched, result.counts.api_calls)]
    freshness = rows(db, "SELECT last_sync_at FROM integrations WHERE provider = 'hubspot'")
    assert freshness[0].last_sync_at is not None


def test_an_immediate_resync_only_looks_and_changes_nothing(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    assert run_sync(db, settings, "hubspot").ok
    before = {table: checksum(db, table) for table in ("deals", "contacts", "activities")}
    sandbox.reset_stats()
    again = run_sync(db, settings, "hubspot")
    assert again.ok, again.error
    assert again.counts.upserted == 0
    # owners (live + archived listing), pipelines, one search and one archived listing per
    # object stream: nothing re-listed.
    assert again.counts.api_calls == sandbox.stats.total("hubspot") <= 2 + 1 + 8 * 2
    assert sandbox.stats.count("hubspot GET /crm/v3/objects/deals") == 1  # archived listing only
    for table, contents in before.items():
        assert checksum(db, table) == contents, table


def test_an_incremental_sync_picks_up_exactly_what_changed(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    assert run_sync(db, settings, "hubspot").ok
    untouched_before = {r.source_id: r for r in rows(db, "SELECT * FROM deals")}
    deal_tables_before = {table: by_id(db, table) for table in DEAL_TABLES}
    changed = sandbox.mutate(modified_pct=5.0, archived_pct=2.0, seed=11, object_types=["deals"])
    modified, archived = set(changed.modified["deals"]), set(changed.archived["deals"])
    assert modified and archived

    result = run_sync(db, settings, "hubspot")
    assert result.ok, result.error
    after = {r.source_id: r for r in rows(db, "SELECT * FROM deals")}
    company = sandbox.company
    for source_id in modified - archived:
        deal = company.find("deals", source_id)
        assert deal is not None
        expected = None if deal.amount_cents < 0 else Decimal(deal.amount_cents) / 100  # type: ignore[union-attr]
        assert after[source_id].amount == expected
        assert after[source_id].updated_at > untouched_before[source_id].updated_at
    for source_id in archived:
        assert after[source_id].deleted_at is not None
    for source_id, row in untouched_before.items():
        if source_id not in modified | archived:
            assert after[source_id] == row  # rows nobody touched are left alone
    # The deals stream writes exactly the rows that changed: the deals themselves, their
    # contact links (restamped with the deal's new version), stage changes and amount and
    # close-date history.
    rewritten = {
        table: sum(1 for i, r in by_id(db, table).items() if before.get(i) != r)
        for table, before in deal_tables_before.items()
    }
    assert result.streams["deals"].upserted == sum(rewritten.values())
    assert rewritten["deals"] == len(modified | archived)
    assert live_count(db, "deals", "hubspot") == company.counts()["deals"]


def test_malformed_records_are_quarantined_not_dropped(
    db: Database, sandbox: SandboxServer
) -> None:
    sandbox.faults.hubspot.malformed_rate = 0.05
    bad = sandbox.malformed("hubspot")
    result = run_sync(db, settings_for(sandbox, db), "hubspot")
    assert result.ok, result.error  # never fatal
    quarantined = rows(db, "SELECT stream, source_id, reason, raw FROM quarantined_records")
    # A dangling association is a link to a record that does not exist: well-formed on its
    # own, so it lands (and shows up as an orphan link), it is not quarantined.
    expected = {
        (stream, record_id_)
        for stream, records in bad.items()
        for record_id_, kind in records.items()
        if kind not in ("dangling_association", "missing_id")
    }
    got = {(q.stream, q.source_id) for q in quarantined if q.source_id is not None}
    assert expected <= got
    missing_ids = sum(1 for r in bad.values() for kind in r.values() if kind == "missing_id")
    assert len(quarantined) == len(expected) + missing_ids
    assert result.counts.quarantined == len(quarantined)
    assert all(q.reason and q.raw for q in quarantined)
    good = sandbox.company.counts()["deals"] - len(bad.get("deals", {}))
    dangling = sum(1 for kind in bad.get("deals", {}).values() if kind == "dangling_association")
    assert live_count(db, "deals", "hubspot") == good + dangling


def test_a_full_salesforce_sync_lands_the_same_company(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    result = run_sync(db, settings, "salesforce")
    assert result.ok, result.error
    truth = sandbox.company.counts()
    assert live_count(db, "accounts", "salesforce") == truth["companies"]
    assert live_count(db, "contacts", "salesforce") == truth["contacts"]
    assert live_count(db, "deals", "salesforce") == truth["deals"]
    assert (
        live_count(db, "activities", "salesforce", "activity_type = 'meeting'")
        == (truth["meetings"])
    )
    # One schema for both CRMs: the same question has the same answer from either.
    totals = rows(
        db,
        "SELECT source_system, count(*) AS n, sum(amount) AS total FROM deals "
        "WHERE deleted_at IS NULL AND is_won GROUP BY source_system ORDER BY source_system",
    )
    if totals:
        by_system = {t.source_system: (t.n, t.total) for t in totals}
        assert by_system.get("salesforce") is not None
    again = run_sync(db, settings, "salesforce")
    assert again.ok and again.counts.upserted == 0


def test_a_provider_failure_is_recorded_not_raised(db: Database, sandbox: SandboxServer) -> None:
    settings = load_settings(
        REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False),
        REVTOPS_ORG=ORG,
        REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
        REVTOPS_HUBSPOT_TOKEN="wrong-token",
    )
    result = run_sync(db, settings, "hubspot")
    assert not result.ok
    assert "401" in (result.error or "")
    assert "wrong-token" not in (result.error or "")
    status = rows(db, "SELECT status, error FROM sync_runs")
    assert status[0].status == "failed"
    integration = rows(db, "SELECT status, last_error FROM integrations")
    assert integration[0].status == "error"
    assert sandbox.company.deals[0].state == LIVE


def live_source_ids(db: Database, table: str, system: str) -> list[str]:
    return sorted(
        r.source_id
        for r in rows(
            db,
            f"SELECT source_id FROM {table} WHERE source_system = :s AND deleted_at IS NULL",
            s=system,
        )
    )


def hubspot_history_truth(company: Any) -> list[str]:
    """``deal_stage_history.source_id`` of every stage every live deal entered."""
    out = []
    for deal in company.live("deals"):
        stages = PIPELINES[deal.pipeline].stages
        h = deal.history
        deal_id = company.hs_id("deals", deal)
        out += [f"{deal_id}:{stages[h[k]].hs_id}:{h[k + 1]}" for k in range(0, len(h), 2)]
    return sorted(out)


def hubspot_links_truth(company: Any) -> list[str]:
    return sorted(
        f"{company.hs_id('deals', deal)}:{HS_ID_BASE['contacts'] + contact}"
        for deal in company.live("deals")
        for contact in deal.contacts
    )


def stage_entered_matches_history(db: Database, system: str) -> None:
    """Every live deal entered its current stage when its history says: the first of the
    newest rows that share its stage (a Salesforce snapshot written for an amount or close-date
    change alone repeats the stage before it)."""
    history: dict[str, list[tuple[Any, Any]]] = {}
    entered_at: dict[str, Any] = {}
    for r in rows(
        db,
        "SELECT d.source_id, d.stage_entered_at, h.stage_name, h.entered_at "
        "FROM deals d JOIN deal_stage_history h ON h.deal_id = d.id AND h.deleted_at IS NULL "
        "WHERE d.source_system = :s AND d.deleted_at IS NULL "
        "ORDER BY d.source_id, h.entered_at, h.source_id",
        s=system,
    ):
        history.setdefault(r.source_id, []).append((r.stage_name, r.entered_at))
        entered_at[r.source_id] = r.stage_entered_at
    mismatched = []
    for deal, steps in history.items():
        k = len(steps) - 1
        while k > 0 and steps[k - 1][0] == steps[-1][0]:
            k -= 1
        if entered_at[deal] != steps[k][1]:
            mismatched.append((deal, entered_at[deal], steps[k][1]))
    assert mismatched == []


@pytest.mark.slow
def test_stage_history_and_deal_contacts_follow_incremental_syncs(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    company = sandbox.company
    assert run_sync(db, settings, "hubspot").ok
    assert live_source_ids(db, "deal_stage_history", "hubspot") == hubspot_history_truth(company)
    assert live_source_ids(db, "deal_contacts", "hubspot") == hubspot_links_truth(company)
    stage_entered_at = live_count(db, "deals", "hubspot", "stage_entered_at IS NOT NULL")
    assert stage_entered_at == company.counts()["deals"]
    stage_entered_matches_history(db, "hubspot")
    history_before = len(hubspot_history_truth(company))

    sandbox.mutate(modified_pct=40.0, seed=5, object_types=("deals",))  # some change stage
    deal = next(d for d in company.live("deals") if len(d.contacts) >= 2)  # type: ignore[arg-type, attr-defined]
    removed = f"{company.hs_id('deals', deal)}:{HS_ID_BASE['contacts'] + deal.contacts[-1]}"
    with sandbox.state.lock:
        company.take_contact_off_deal(deal, deal.contacts[-1])
    result = run_sync(db, settings, "hubspot")
    assert result.ok, result.error
    history = live_source_ids(db, "deal_stage_history", "hubspot")
    assert len(history) > history_before  # new stage changes arrived...
    assert history == hubspot_history_truth(company)  # ...each once, none lost
    assert live_source_ids(db, "deal_contacts", "hubspot") == hubspot_links_truth(company)
    gone = rows(db, "SELECT deleted_at FROM deal_contacts WHERE source_id = :i", i=removed)
    assert gone[0].deleted_at is not None  # the removed link is soft-deleted, not dropped
    stage_entered_matches_history(db, "hubspot")

    again = run_sync(db, settings, "hubspot")
    assert again.ok and again.counts.upserted == 0 and again.counts.deleted == 0


def test_a_cursor_from_before_stage_history_lists_deals_once_more(
    db: Database, sandbox: SandboxServer
) -> None:
    """A store synced before history was read: its deals cursor has no ``history`` flag, so
    the next sync lists deals again (the one-time backfill); other streams stay incremental."""
    settings = settings_for(sandbox, db)
    assert run_sync(db, settings, "hubspot").ok
    with db.begin() as conn:
        cursor = json.loads(load_cursor(conn, ORG, "hubspot", "deals") or "{}")
        assert cursor.pop("history") == ["dealstage", "closedate", "amount"]
        save_cursor(conn, ORG, "hubspot", "deals", json.dumps(cursor))
        conn.execute(text("DELETE FROM deal_stage_history"))
        conn.execute(text("UPDATE deals SET stage_entered_at = NULL"))
    sandbox.reset_stats()
    result = run_sync(db, settings, "hubspot")
    assert result.ok, result.error
    company = sandbox.company
    assert live_source_ids(db, "deal_stage_history", "hubspot") == hubspot_history_truth(company)
    stage_entered_matches_history(db, "hubspot")
    deal_pages = -(-company.counts()["deals"] // 50)
    assert sandbox.stats.count("hubspot GET /crm/v3/objects/deals") == deal_pages + 1
    assert sandbox.stats.count("hubspot GET /crm/v3/objects/contacts") == 1  # archived only


@pytest.mark.slow
def test_salesforce_stage_history_and_contact_roles(db: Database, sandbox: SandboxServer) -> None:
    settings = settings_for(sandbox, db)
    company = sandbox.company
    assert run_sync(db, settings, "salesforce").ok
    live_deals = list(company.live("deals"))
    # a snapshot per stage entry and per amount or close-date change
    steps = sum(len(snapshots(d)) for d in live_deals)  # type: ignore[arg-type]
    assert live_count(db, "deal_stage_history", "salesforce") == steps
    links = sum(len(d.contacts) for d in live_deals)  # type: ignore[union-attr]
    assert live_count(db, "deal_contacts", "salesforce") == links
    assert live_count(db, "deal_contacts", "salesforce", "is_primary") == sum(
        1
        for d in live_deals
        if d.contacts  # type: ignore[union-attr]
    )
    assert live_count(db, "deal_stages", "salesforce", "NOT is_active") == 1
    stage_entered_matches_history(db, "salesforce")

    deal: Any = next(d for d in live_deals if len(d.contacts) >= 2)  # type: ignore[union-attr]
    with sandbox.state.lock:
        company.take_contact_off_deal(deal, deal.contacts[-1])
    sandbox.mutate(modified_pct=40.0, seed=5, object_types=("deals",))
    result = run_sync(db, settings, "salesforce")
    assert result.ok, result.error
    assert live_count(db, "deal_contacts", "salesforce") == links - 1
    # the removed role came back from queryAll with IsDeleted: soft-deleted, not dropped
    assert rows(db, "SELECT count(*) FROM deal_contacts WHERE deleted_at IS NOT NULL")[0][0] == 1
    steps = sum(len(snapshots(d)) for d in company.live("deals"))  # type: ignore[arg-type]
    assert live_count(db, "deal_stage_history", "salesforce") == steps
    stage_entered_matches_history(db, "salesforce")

    # A cursor written for an older field list (before LastStageChangeDate): that object is
    # read again from the start, the others stay incremental.
    with db.begin() as conn:
        cursor = json.loads(load_cursor(conn, ORG, "salesforce", "Opportunity") or "{}")
        assert cursor.pop("fields")
        save_cursor(conn, ORG, "salesforce", "Opportunity", json.dumps(cursor))
        conn.execute(text("UPDATE deals SET stage_entered_at = NULL"))
    backfill = run_sync(db, settings, "salesforce")
    assert backfill.ok, backfill.error
    assert backfill.streams["Opportunity"].fetched >= company.counts()["deals"]
    assert backfill.streams["Account"].fetched < 10  # the boundary second only
    assert live_count(db, "deals", "salesforce", "stage_entered_at IS NULL") == 0


STREAM_TABLES = {
    "companies": "accounts",
    "contacts": "contacts",
    "deals": "deals",
    **dict.fromkeys(ENGAGEMENT_TYPES, "activities"),
}


def stored_source_id(stream: str, hubspot_id: str) -> str:
    return f"{ENGAGEMENT_TYPES[stream]}:{hubspot_id}" if stream in ENGAGEMENT_TYPES else hubspot_id


@pytest.mark.slow
def test_one_percent_modified_and_a_tenth_archived_are_exactly_what_moves(
    db: Database,
) -> None:
    with SandboxServer(scale=0.1, seed=4) as sandbox:
        settings = settings_for(sandbox, db)
        assert run_sync(db, settings, "hubspot").ok
        before = {
            table: {r.source_id: r for r in rows(db, f"SELECT * FROM {table}")}
            for table in set(STREAM_TABLES.values())
        }
        changed = sandbox.mutate(modified_pct=1.0, archived_pct=0.1, seed=21)
        assert sum(len(ids) for ids in changed.archived.values()) >= 5
        result = run_sync(db, settings, "hubspot")
        company = sandbox.company
        assert result.ok, result.error
        for stream, table in STREAM_TABLES.items():
            modified = {stored_source_id(stream, i) for i in changed.modified.get(stream, [])}
            archived = {stored_source_id(stream, i) for i in changed.archived.get(stream, [])}
            assert modified, stream
            after = {r.source_id: r for r in rows(db, f"SELECT * FROM {table}")}
            kind = ENGAGEMENT_TYPES.get(stream)
            for source_id, row in before[table].items():
                if kind is not None and not source_id.startswith(f"{kind}:"):
                    continue
                if source_id in archived:
                    assert after[source_id].deleted_at is not None, (stream, source_id)
                elif source_id in modified:
                    record = company.find(stream, source_id.split(":")[-1])
                    assert record is not None
                    stamp = int(after[source_id].updated_at.timestamp() * 1000)
                    assert stamp == record.updated_ms, (stream, source_id)
                else:
                    assert after[source_id] == row, (stream, source_id)
            where = f"activity_type = '{kind}'" if kind else ""
            assert live_count(db, table, "hubspot", where) == company.counts()[stream], stream
