"""Planner statistics are never missing on PostgreSQL: without them a bulk-loaded table plans as
one row (nested loops over everything, issue 13); a sync, a sync killed midway and a sync run
by a role that does not own the tables all leave them in place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from helpers import SANDBOX_SCALE, SANDBOX_SEED, sandbox_settings
from sqlalchemy import text
from sqlalchemy.engine import make_url

from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import metadata
from revtops_kernel.store.scratch import scratch_postgres
from revtops_kernel.store.statistics import (
    ANALYZE_FUNCTION,
    BATCH_SHARE,
    REFRESH_SHARE,
    StatisticsRefresh,
    analyze_tables,
)
from revtops_kernel.store.upsert import upsert
from revtops_kernel.sync import run_sync
from revtops_kernel.timeutil import utcnow
from revtops_sandbox import SandboxServer

pytestmark = pytest.mark.postgres

ORG = "acme"
CRM_STREAMS = ("owners", "pipelines", "companies", "contacts", "deals")
ENGAGED = """
SELECT a.deal_id, count(DISTINCT ap.email) FROM activities a
JOIN activity_participants ap ON ap.activity_id = a.id
WHERE a.organization_id = :org AND ap.organization_id = :org AND a.deleted_at IS NULL
  AND ap.deleted_at IS NULL AND a.deal_id IS NOT NULL
GROUP BY a.deal_id
"""


@pytest.fixture
def fresh(postgres_url: str) -> Iterator[Database]:
    """An upgraded PostgreSQL store of its own: statistics survive TRUNCATE, so the shared
    test database would not start from none."""
    with scratch_postgres(
        make_url(postgres_url).set(database="postgres"), prefix="h6_stats"
    ) as url:
        db = Database(url)
        upgrade(db)
        try:
            yield db
        finally:
            db.dispose()


def load_meetings(db: Database, meetings: int, attendees: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        {
            "organization_id": ORG,
            "source_system": "google_calendar",
            "source_id": f"e{i}",
            "activity_type": "calendar_event",
            "occurred_at": start + timedelta(hours=i),
            "updated_at": start,
            "deal_id": str(uuid.UUID(int=i % 1000 + 1)),
        }
        for i in range(meetings)
    ]
    with db.begin() as conn:
        upsert(conn, "activities", events)
        ids = dict(conn.execute(text("SELECT source_id, id FROM activities")).all())
        people = [
            {
                "organization_id": ORG,
                "source_system": "google_calendar",
                "source_id": f"p{i}",
                "activity_id": ids[f"e{i % meetings}"],
                "email": f"u{i % 5000}@co{i % 700}.example",
                "updated_at": start,
            }
            for i in range(attendees)
        ]
        upsert(conn, "activity_participants", people)


def plan(db: Database, sql: str) -> dict[str, Any]:
    with db.connect() as conn:
        explained = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"), {"org": ORG}).scalar_one()
    return dict(explained[0]["Plan"])


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def join_types(node: dict[str, Any]) -> set[str]:
    return {n["Node Type"] for n in nodes(node) if n["Node Type"].endswith(("Join", "Loop"))}


def scan_estimate(node: dict[str, Any], table: str) -> float:
    return max(float(n["Plan Rows"]) for n in nodes(node) if n.get("Relation Name") == table)


def table_stats(db: Database, tables: tuple[str, ...]) -> dict[str, tuple[float, int, Any]]:
    """reltuples, count(*) and last_analyze per table."""
    found: dict[str, tuple[float, int, Any]] = {}
    with db.connect() as conn:
        for table in tables:
            reltuples = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
            ).scalar_one()
            count = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            analyzed = conn.execute(
                text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"),
                {"t": table},
            ).scalar_one()
            found[table] = (float(reltuples), int(count), analyzed)
    return found


def assert_analyzed_since(
    db: Database, tables: tuple[str, ...], since: datetime, share: float = REFRESH_SHARE
) -> None:
    """Each table was analyzed after ``since`` and the rows written after that are less than
    ``share`` of its row estimate."""
    for table, (reltuples, count, analyzed) in table_stats(db, tables).items():
        assert count > 0, table
        assert analyzed is not None and analyzed >= since, (table, analyzed, since)
        assert count - reltuples < share * reltuples + 1, (table, reltuples, count)


def test_without_statistics_a_loaded_table_plans_as_one_row(fresh: Database) -> None:
    load_meetings(fresh, meetings=20_000, attendees=60_000)
    blind = plan(fresh, ENGAGED)
    assert scan_estimate(blind, "activity_participants") < 100  # 60,000 rows in it
    assert "Nested Loop" in join_types(blind)
    with fresh.begin() as conn:
        assert analyze_tables(conn, ["activities", "activity_participants"])
    informed = plan(fresh, ENGAGED)
    assert scan_estimate(informed, "activity_participants") > 50_000
    assert "Nested Loop" not in join_types(informed)
    assert "Hash Join" in join_types(informed)


def test_statistics_refresh_follows_the_share_of_rows_written(fresh: Database) -> None:
    load_meetings(fresh, meetings=2_000, attendees=4_000)
    refresh = StatisticsRefresh(fresh)
    refresh.note("activities", 2_000)
    assert refresh.refresh_due() == ["activities"]  # reltuples was 0: always due
    refresh.note("activities", 150)  # 7.5% of 2,000
    assert refresh.refresh_due() == []
    refresh.note("activities", 60)  # 10.5% now
    assert refresh.refresh_due() == ["activities"]
    assert refresh.analyzed == {"activities": 2}
    refresh.note("activities", 1_000)  # half of 2,210: due at 10%, not yet at BATCH_SHARE
    assert refresh.refresh_due(BATCH_SHARE) == []
    assert refresh.refresh_due() == ["activities"]


def test_vacuum_follows_the_share_of_rows_one_sync_wrote(fresh: Database) -> None:
    load_meetings(fresh, meetings=2_000, attendees=4_000)
    with fresh.begin() as conn:
        analyze_tables(conn, ["activities", "activity_participants"])
    refresh = StatisticsRefresh(fresh)
    refresh.note("activities", 100)  # 5% of the table: left to autovacuum
    refresh.note("activity_participants", 1_000)  # 25%
    assert refresh.vacuum_due() == ["activity_participants"]
    assert refresh.vacuumed == ["activity_participants"]
    assert refresh.vacuum_due() == []  # counted once per sync
    with fresh.engine.connect() as conn:  # the pooled connection it used: its settings back
        assert conn.execute(text("SHOW lock_timeout")).scalar_one() == "0"


@pytest.mark.slow
def test_a_sync_leaves_the_tables_it_wrote_analyzed(fresh: Database) -> None:
    started = utcnow()
    with SandboxServer(scale=SANDBOX_SCALE, seed=SANDBOX_SEED) as sandbox:
        settings = sandbox_settings(sandbox, fresh, "hubspot", "google_calendar", org=ORG)
        crm = run_sync(fresh, settings, "hubspot", streams=CRM_STREAMS)
        calendar = run_sync(fresh, settings, "google_calendar")
    assert crm.ok and calendar.ok, (crm.error, calendar.error)
    assert {"owners", "accounts", "contacts", "deals"} <= crm.analyzed.keys()
    assert {"activities", "activity_participants"} <= calendar.analyzed.keys()
    assert calendar.statistics_seconds > 0
    touched = ("owners", "accounts", "contacts", "deals", "activities", "activity_participants")
    assert_analyzed_since(fresh, touched, started)
    # A first load is vacuumed at its end: the visibility map lets the read path's covering
    # indexes answer without the wide rows (relallvisible stays 0 with autovacuum off).
    assert {"accounts", "contacts", "deals"} <= set(crm.vacuumed)
    assert {"activities", "activity_participants"} <= set(calendar.vacuumed)
    with fresh.connect() as conn:
        visible = dict(
            conn.execute(
                text(
                    "SELECT relname, relallvisible FROM pg_class "
                    "WHERE relname IN ('deals', 'activities', 'activity_participants')"
                )
            ).all()
        )
    assert all(pages > 0 for pages in visible.values()), visible


@pytest.mark.slow
def test_a_second_crm_first_load_leaves_its_derived_history_analyzed(fresh: Database) -> None:
    """Salesforce's field history is written by the pass after its streams, not by a batch.
    Uncounted, a Salesforce first load into a store where HubSpot's history already stood left
    the table analyzed without the new organization: the planner took its 260k rows (scale 10)
    for one, and the deal-states refresh right after planned a nested loop over them (stuck
    for 17 min before it was cancelled)."""
    other = "acme-sf"
    with SandboxServer(scale=SANDBOX_SCALE, seed=SANDBOX_SEED) as sandbox:
        settings = sandbox_settings(sandbox, fresh, "hubspot", "salesforce", org=ORG)
        crm = run_sync(fresh, settings, "hubspot")
        started = utcnow()
        salesforce = run_sync(fresh, settings, "salesforce", org=other)
    assert crm.ok and salesforce.ok, (crm.error, salesforce.error)
    assert "deal_field_history" in salesforce.analyzed
    assert_analyzed_since(fresh, ("deal_field_history",), started)
    with fresh.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM deal_field_history WHERE organization_id = :o"),
            {"o": other},
        ).scalar_one()
    assert stored > 0
    estimated = scan_estimate(
        plan(fresh, f"SELECT * FROM deal_field_history WHERE organization_id = '{other}'"),
        "deal_field_history",
    )
    assert estimated > stored / 2, (estimated, stored)


@pytest.mark.slow
def test_a_sync_killed_midway_leaves_what_it_committed_analyzed(fresh: Database) -> None:
    started = utcnow()
    with SandboxServer(scale=0.05, seed=9) as sandbox:
        # Slow the provider down so the run is long enough to be killed in the middle of it.
        sandbox.faults.hubspot.rate_limits = True
        sandbox.faults.hubspot.ten_second_limit = 50
        env = {
            **os.environ,
            "REVTOPS_DATABASE_URL": fresh.url.render_as_string(hide_password=False),
            "REVTOPS_ORG": ORG,
            "REVTOPS_HUBSPOT_BASE_URL": sandbox.hubspot_base_url,
            "REVTOPS_HUBSPOT_TOKEN": sandbox.token,
        }
        victim = subprocess.Popen(
            [sys.executable, "-m", "revtops_kernel.cli", "sync", "--provider", "hubspot"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            # owners, pipelines and companies done; contacts under way
            wait_for_cursors(fresh, victim, 4)
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    with fresh.connect() as conn:
        running = conn.execute(text("SELECT count(*) FROM sync_runs WHERE status = 'running'"))
        assert running.scalar_one() == 1  # it never got to its end (nor its resolution)
    # Between batches the estimates may lag by up to BATCH_SHARE (a factor of two).
    done = ("owners", "pipelines", "deal_stages", "accounts")
    assert_analyzed_since(fresh, done, started, BATCH_SHARE)


def wait_for_cursors(db: Database, process: subprocess.Popen[bytes], streams: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        with db.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM sync_cursors")).scalar_one() >= streams:
                return
        time.sleep(0.1)
    raise AssertionError(f"the sync did not reach {streams} streams in 120 s")


@pytest.fixture
def outsider(fresh: Database) -> Iterator[Database]:
    """The store as a login role that owns none of its tables (as an organization role's
    workflow sync would run), with write access to them; dropped afterwards."""
    role = f"h6_stats_{uuid.uuid4().hex[:10]}"
    admin = make_url(fresh.url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    db = Database(fresh.url.set(username=role, password=None))
    try:
        yield db
    finally:
        db.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_a_role_that_does_not_own_the_tables_analyzes_through_the_function(
    fresh: Database, outsider: Database
) -> None:
    load_meetings(fresh, meetings=2_000, attendees=4_000)
    before = table_stats(fresh, ("activities",))["activities"]
    with outsider.begin() as conn:
        conn.execute(text("ANALYZE activities"))  # PostgreSQL skips it with a warning
    assert table_stats(fresh, ("activities",))["activities"] == before
    with outsider.begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one().startswith("h6_stats_")
        analyze_tables(conn, ["activities"])
    reltuples, count, analyzed = table_stats(fresh, ("activities",))["activities"]
    assert (reltuples, count) == (2_000.0, 2_000) and analyzed is not None
    # VACUUM has no such way round (not in a function): a role that owns nothing skips it.
    refresh = StatisticsRefresh(outsider)
    refresh.note("activities", 2_000)
    assert refresh.vacuum_due() == [] and refresh.vacuumed == []


@pytest.mark.parametrize(
    "name", ["pg_authid", "pg_class", "revtops_schema_x", "activities; DROP TABLE deals", ""]
)
def test_the_function_refuses_anything_but_the_product_tables(
    outsider: Database, name: str
) -> None:
    with outsider.connect() as conn, pytest.raises(Exception, match="not a table of Revtops"):
        conn.execute(text(f"SELECT {ANALYZE_FUNCTION}(:name)"), {"name": name})


def test_upgrade_creates_the_function_and_analyzes_the_tables_it_creates(
    fresh: Database,
) -> None:
    with fresh.connect() as conn:
        definer = conn.execute(
            text(
                "SELECT p.prosecdef, pg_get_userbyid(p.proowner), p.proconfig "
                "FROM pg_proc p WHERE p.proname = :name"
            ),
            {"name": ANALYZE_FUNCTION},
        ).one()
        never = conn.execute(
            text(
                "SELECT count(*) FROM pg_class WHERE reltuples < 0 "
                "AND oid IN (SELECT to_regclass(t) FROM unnest(CAST(:tables AS text[])) AS t)"
            ),
            {"tables": sorted(metadata.tables)},
        ).scalar_one()
    assert definer.prosecdef is True and definer.pg_get_userbyid == "postgres"
    assert any(setting.startswith("search_path=") for setting in definer.proconfig)
    assert never == 0  # every table created has statistics (of an empty table)


def test_upgrade_adds_indexes_the_models_gained_to_existing_tables(fresh: Database) -> None:
    index = "ix_activity_participants_resolution_pending"
    with fresh.begin() as conn:
        conn.execute(text(f"DROP INDEX {index}"))
    upgrade(fresh)
    with fresh.connect() as conn:
        found = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"), {"name": index}
        ).scalar_one()
    assert "WHERE resolution_pending" in found


def test_case_insensitive_matches_are_estimated_from_statistics(fresh: Database) -> None:
    """Resolution joins on lower(email): the store's ANALYZE (a column list, without JSON) must
    leave statistics of that expression, or a join of 3 keys against 60,000 participants is
    estimated as a fraction of the whole table and planned as a scan (resolve.py)."""
    with fresh.begin() as conn:  # an older store: the statistics object is not there yet
        conn.execute(
            text("DROP STATISTICS st_ix_activity_participants_organization_id_lower_email")
        )
    upgrade(fresh)  # puts it back
    load_meetings(fresh, meetings=20_000, attendees=60_000)
    with fresh.begin() as conn:
        analyze_tables(conn, ["activity_participants"])
    sql = (
        "SELECT p.id FROM activity_participants p WHERE p.organization_id = :org "
        "AND lower(p.email) IN ('u1@co1.example', 'u2@co2.example', 'u3@co3.example')"
    )
    estimate = scan_estimate(plan(fresh, sql), "activity_participants")
    assert estimate < 100, estimate  # 6 rows match; without the statistics: 900
