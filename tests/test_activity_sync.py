"""Slack and Calendar syncs over real HTTP against the sandbox, into both stores, checked against
the sandbox's ground truth: full, incremental, 410 resync, identity resolution, the
accounts-met-last-week question, the CLI, and a sync killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import sandbox_env
from sqlalchemy import text
from test_sync_resilience import BUSINESS_TABLES, second_store  # noqa: F401

from revtops_kernel.email_domains import is_consumer_domain
from revtops_kernel.ids import record_id
from revtops_kernel.resolve import ACCOUNTS_MET_SQL
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer
from revtops_sandbox.calendar_data import CalendarEvent, utc_basic
from revtops_sandbox.company import HS_ID_BASE, LIVE, Company

ORG = "northwind"
CRM_STREAMS = ("owners", "pipelines", "companies", "contacts", "deals")


def environment(sandbox: SandboxServer, db: Database) -> dict[str, str]:
    return sandbox_env(sandbox, db, "hubspot", "slack", "google_calendar", org=ORG)


def settings_for(sandbox: SandboxServer, db: Database) -> Settings:
    return load_settings(**environment(sandbox, db))


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def account_row_id(index: int) -> Any:
    return record_id(ORG, "hubspot", "accounts", str(HS_ID_BASE["companies"] + index))


# --- the sandbox's calendars, as the API shows them (instances expanded) ----------------------


def calendar_truth(company: Company) -> dict[str, tuple[str, int, CalendarEvent]]:
    """event id -> (status, start ms, the event whose attendees it has)."""
    events = company.calendars.events
    truth: dict[str, tuple[str, int, CalendarEvent]] = {}
    for event in events:
        if event.is_master:
            for start in event.instance_starts():
                if start not in event.exceptions:
                    truth[f"{event.id}_{utc_basic(start)}"] = (event.status, start, event)
        else:
            truth[event.id] = (event.status, event.start_ms, event)
    return truth


def assert_calendar_matches(db: Database, company: Company) -> None:
    truth = calendar_truth(company)
    stored = {
        r.source_id: r
        for r in rows(
            db,
            "SELECT source_id, status, occurred_at, deleted_at FROM activities "
            "WHERE source_system = 'google_calendar'",
        )
    }
    assert stored.keys() == truth.keys()  # no duplicates, no orphans
    for event_id, (status, start_ms, _) in truth.items():
        row = stored[event_id]
        assert row.status == status, event_id
        assert (row.deleted_at is not None) == (status == "cancelled"), event_id
        if status != "cancelled":
            assert int(row.occurred_at.timestamp() * 1000) == start_ms, event_id


@pytest.mark.slow
def test_calendar_full_incremental_and_410_resync_with_identities_resolved(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    assert run_sync(db, settings, "hubspot", streams=CRM_STREAMS).ok
    first = run_sync(db, settings, "google_calendar")
    assert first.ok, first.error
    assert first.counts.quarantined == 0
    assert_calendar_matches(db, sandbox.company)

    # Moved, cancelled (a recurring instance among them) and new meetings: only they come back.
    changes = sandbox.mutate_calendar(moved=4, cancelled=3, new=3, seed=2)
    second = run_sync(db, settings, "google_calendar")
    assert second.ok, second.error
    changed = {e for _, e in changes.events_moved + changes.events_cancelled + changes.events_new}
    assert second.counts.fetched <= 2 * len(changed)  # one copy per calendar showing it
    assert_calendar_matches(db, sandbox.company)
    cancelled = {e for _, e in changes.events_cancelled}
    got = rows(db, "SELECT source_id, status FROM activities WHERE status = 'cancelled'")
    assert cancelled <= {r.source_id for r in got}

    # Every sync token expires: each calendar is read again in full, with the same result.
    sandbox.expire_calendar_sync_tokens()
    live = "SELECT * FROM activities WHERE deleted_at IS NULL ORDER BY id"
    before = rows(db, live)
    third = run_sync(db, settings, "google_calendar")
    assert third.ok, third.error
    assert_calendar_matches(db, sandbox.company)
    assert rows(db, live) == before  # deletion stubs alone are stamped anew

    # Identity: meeting attendees resolve to the account the sandbox says, never by a
    # consumer domain.
    resolved = dict(
        rows(
            db,
            "SELECT email, account_id FROM activity_participants "
            "WHERE source_system = 'google_calendar' AND deleted_at IS NULL",
        )
    )
    outcome: Counter[str] = Counter()
    for event in sandbox.company.calendars.meetings():
        if event.status == "cancelled":
            continue
        for attendee in event.attendees:
            if attendee.kind == "owner":
                continue
            want = account_row_id(attendee.account) if attendee.account >= 0 else None
            outcome["right" if resolved.get(attendee.email.lower()) == want else "wrong"] += 1
    assert outcome["right"] >= 0.95 * (outcome["right"] + outcome["wrong"]), outcome
    consumer_matches = [
        email
        for email, account in resolved.items()
        if account is not None and is_consumer_domain(email.rsplit("@", 1)[1])
    ]
    assert consumer_matches == []
    internal = rows(
        db,
        "SELECT count(*) FROM activity_participants WHERE source_system = 'google_calendar' "
        "AND is_internal AND owner_id IS NULL",
    )
    assert internal[0][0] == 0  # every internal attendee is a rep the CRM knows
    assert_accounts_met_last_week(db, sandbox.company)


def test_calendar_quota_errors_are_retried(db: Database, sandbox: SandboxServer) -> None:
    sandbox.faults.google_calendar.rate_limits = True
    # One call per 0.6 s: the events listing follows the calendar list at once, so the quota
    # refuses it however slow a loaded machine makes the writes between pages (two calls in
    # 0.5 s were not always made under load).
    sandbox.faults.google_calendar.window_s = 0.6
    sandbox.faults.google_calendar.per_window_limit = 1
    result = run_sync(db, settings_for(sandbox, db), "google_calendar")
    assert result.ok, result.error
    assert result.counts.rate_limited > 0
    assert_calendar_matches(db, sandbox.company)


def busiest_week(company: Company) -> datetime:
    """The Monday (UTC) of the week with the most meetings: the test's "last week"."""
    weeks: Counter[datetime] = Counter()
    for status, start, event in calendar_truth(company).values():
        if status != "cancelled" and not event.all_day:
            day = datetime.fromtimestamp(start / 1000, UTC).replace(hour=0, minute=0, second=0)
            weeks[day - timedelta(days=day.weekday())] += 1
    return weeks.most_common(1)[0][0].replace(microsecond=0)


def assert_accounts_met_last_week(db: Database, company: Company) -> None:
    week = busiest_week(company)
    start_ms, end_ms = (int(w.timestamp() * 1000) for w in (week, week + timedelta(days=7)))
    met: set[int] = set()
    for status, start, event in calendar_truth(company).values():
        if status == "cancelled" or event.all_day or not start_ms <= start < end_ms:
            continue
        met |= {a.account for a in event.attendees if a.kind != "owner" and a.account >= 0}
    assert met
    pipeline: dict[Any, Decimal] = {}
    for index in met:
        open_deals = [
            d
            for d in company.deals
            if d.account == index and d.state == LIVE and not company.stage(d).is_closed
        ]
        pipeline[account_row_id(index)] = sum(
            (Decimal(d.amount_cents) / 100 for d in open_deals if d.amount_cents >= 0), Decimal(0)
        )
    answer = rows(db, ACCOUNTS_MET_SQL, org=ORG, week_start=week, week_end=week + timedelta(days=7))
    assert {r.account_id: Decimal(r.open_pipeline) for r in answer} == pipeline


def slack_truth(sandbox: SandboxServer) -> set[str]:
    readable = [c for c in sandbox.company.slack.channels if c.is_member]
    return {f"{c.id}:{m.ts}" for c in readable for m in c.messages} | {
        f"{c.id}:{r.ts}" for c in readable for m in c.messages for r in m.replies
    }


@pytest.mark.parametrize("lookback_days", [14, 3650])
def test_slack_new_messages_and_late_replies_within_the_look_back_window(
    db: Database, sandbox: SandboxServer, lookback_days: int
) -> None:
    settings = load_settings(
        **environment(sandbox, db), REVTOPS_SLACK_THREAD_LOOKBACK_DAYS=str(lookback_days)
    )
    assert run_sync(db, settings, "hubspot", streams=("owners", "companies", "contacts")).ok
    first = run_sync(db, settings, "slack")
    assert first.ok, first.error
    with db.connect() as conn:
        cursors = conn.execute(
            text("SELECT cursor FROM sync_cursors WHERE provider = 'slack'")
        ).scalar_one()
    latest = {c: Decimal(p["latest"]) for c, p in json.loads(cursors)["channels"].items()}
    changes = sandbox.mutate_slack(new_messages=6, late_replies=4, seed=3)
    assert changes.slack_late_replies
    second = run_sync(db, settings, "slack")
    assert second.ok, second.error
    stored = {
        r.source_id
        for r in rows(db, "SELECT source_id FROM activities WHERE source_system = 'slack'")
    }
    window = Decimal(lookback_days * 86_400)
    reachable = {
        f"{channel}:{ts}"
        for channel, thread_ts, ts in changes.slack_late_replies
        if Decimal(thread_ts) >= latest[channel] - window
    }
    missed = {f"{channel}:{ts}" for channel, _, ts in changes.slack_late_replies} - reachable
    # Every new message and every late reply inside the window; none beyond it.
    assert stored == slack_truth(sandbox) - missed
    if lookback_days == 3650:
        assert not missed  # a window as long as the history misses nothing
    assert second.counts.api_calls < first.counts.api_calls
    # Authors resolve to owners (reps) and contacts (Slack Connect guests) by email.
    ws = sandbox.company.slack
    authors = rows(
        db,
        "SELECT p.email, p.owner_id, p.contact_id FROM activity_participants p "
        "WHERE p.role = 'author' AND p.email IS NOT NULL",
    )
    reps = {u.email for u in ws.users if u.owner >= 0}
    externals = {u.email for u in ws.users if u.contact >= 0}
    assert authors and all(a.owner_id is not None for a in authors if a.email in reps)
    assert all(a.contact_id is not None for a in authors if a.email in externals)


def test_malformed_messages_and_events_are_quarantined_never_fatal(
    db: Database, sandbox: SandboxServer
) -> None:
    sandbox.faults.slack.malformed_rate = 0.05
    sandbox.faults.google_calendar.malformed_rate = 0.05
    settings = settings_for(sandbox, db)
    readable = {c.id for c in sandbox.company.slack.channels if c.is_member}
    bad_messages = {
        key: kind
        for key, kind in sandbox.malformed("slack")["slack_messages"].items()
        if key.split(":")[0] in readable
    }
    bad_events = sandbox.malformed("google_calendar")["calendar_events"]
    for provider in ("slack", "google_calendar"):
        result = run_sync(db, settings, provider)
        assert result.ok, result.error
    quarantined = {
        (r.stream, r.source_id): r.reason
        for r in rows(db, "SELECT stream, source_id, reason FROM quarantined_records")
    }
    # No author: quarantined. A thread_ts naming no message is a link like a dangling
    # association: well-formed on its own, it lands.
    authorless = {k for k, kind in bad_messages.items() if kind == "missing_user"}
    assert {s for (stream, s) in quarantined if stream == "messages"} == authorless
    landed = {r.source_id for r in rows(db, "SELECT source_id FROM activities")}
    assert {k for k, kind in bad_messages.items() if kind == "dangling_thread"} <= landed
    # An event's instances share its fate: every id of a bad event is quarantined.
    events = {s for (stream, s) in quarantined if stream == "events"}
    assert events and {e.split("_")[0] for e in events} == set(bad_events)
    assert not events & landed


def test_the_cli_accepts_every_provider() -> None:
    from revtops_kernel.cli import build_parser

    for provider in ("hubspot", "salesforce", "slack", "google_calendar", "all"):
        assert build_parser().parse_args(["sync", "--provider", provider]).provider == provider


@pytest.mark.slow
def test_the_cli_syncs_all_configured_providers(sandbox: SandboxServer, tmp_path: Path) -> None:
    store = Database(f"duckdb:///{tmp_path / 'cli.duckdb'}")
    env = {**os.environ, **environment(sandbox, store)}
    del env["REVTOPS_HUBSPOT_TOKEN"]  # "all" = the providers with credentials
    done = subprocess.run(
        [sys.executable, "-m", "revtops_kernel.cli", "sync", "--provider", "all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    synced = [line.split(":")[0] for line in done.stdout.splitlines() if "succeeded" in line]
    assert synced == ["slack", "google_calendar"]


@pytest.mark.slow
def test_a_sync_killed_at_a_random_point_resumes_to_the_same_contents(
    db: Database,
    second_store: Database,  # noqa: F811
) -> None:
    with SandboxServer(scale=0.05, seed=9) as sandbox:
        for provider in ("slack", "google_calendar"):
            assert run_sync(db, settings_for(sandbox, db), provider).ok
        sandbox.faults.slack.rate_limits = True  # slow enough to be killed mid-run
        sandbox.faults.slack.window_s = 1.0
        sandbox.faults.slack.tier_limits.update(tier3=8)
        env = {**os.environ, **environment(sandbox, second_store)}
        victim = subprocess.Popen(
            [sys.executable, "-m", "revtops_kernel.cli", "sync", "--provider", "slack"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
            try:
                with second_store.connect() as conn:
                    cursor = conn.execute(text("SELECT cursor FROM sync_cursors")).scalar()
                if cursor and cursor.count('"latest"') >= 3:
                    break
            except Exception:  # the writer holds the DuckDB file; look again
                pass
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        sandbox.faults.slack.rate_limits = False
        for provider in ("slack", "google_calendar"):
            resumed = run_sync(second_store, settings_for(sandbox, second_store), provider)
            assert resumed.ok, resumed.error
    assert_converged(second_store, db)


def comparable(db: Database) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every business table by row id. A calendar deletion stub carries the time a sync read
    it (two runs read it at two times): that it has one is compared, not its value."""
    out: dict[str, dict[Any, dict[str, Any]]] = {}
    with db.connect() as conn:
        for table in BUSINESS_TABLES:
            out[table] = {}
            for row in conn.execute(text(f"SELECT * FROM {table}")).all():
                values = dict(row._mapping)
                if (
                    values.get("source_system") == "google_calendar"
                    and values.get("status") == "cancelled"
                    and "updated" not in (values.get("raw") or {})
                ):
                    values["updated_at"] = values["updated_at"] is not None
                    values["deleted_at"] = values["deleted_at"] is not None
                out[table][values["id"]] = values
    return out


def assert_converged(actual: Database, expected: Database) -> None:
    got, want = comparable(actual), comparable(expected)
    for table in BUSINESS_TABLES:
        differences = [
            (row_id, column)
            for row_id in got[table].keys() | want[table].keys()
            for column in (want[table].get(row_id) or got[table].get(row_id) or {})
            if (got[table].get(row_id) or {}).get(column)
            != (want[table].get(row_id) or {}).get(column)
        ]
        assert not differences, f"{table}: {len(differences)} differences: {differences[:3]}"
