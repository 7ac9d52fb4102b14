"""Salesforce's incremental re-sync reads what changed, per object, and loses nothing: against
the sandbox over real HTTP. The cursor a complete read leaves is the moment its query ran less
``SETTLE_SECONDS`` (`connectors.salesforce`), not the newest SystemModstamp it saw, so the
records that share a quiet object's newest second are not read again, while a record
committed late with a stamp inside that margin, or sharing the cursor's second, still is."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from helpers import sandbox_settings
from pydantic import SecretStr
from sqlalchemy import text

from revtops_kernel.connectors.base import Page
from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.salesforce import (
    SETTLE_SECONDS,
    STREAMS,
    ModstampCursor,
    SalesforceConnector,
    sf_stamp,
)
from revtops_kernel.store import Database, upgrade
from revtops_kernel.sync import run_sync
from revtops_kernel.timeutil import to_utc
from revtops_sandbox.company import sf_datetime
from revtops_sandbox.server import SandboxServer

ORG = "sf-incremental"
SETTLE = timedelta(seconds=SETTLE_SECONDS)
# The sandbox's object types behind each Salesforce object the mutation touches.
TYPES = {
    "Account": ("companies",),
    "Contact": ("contacts",),
    "Opportunity": ("deals",),
    "Task": ("tasks", "emails", "calls", "notes"),
    "Event": ("meetings",),
}


def anchor() -> datetime:
    """A month before today: the generated data is in the past whatever the machine's date."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=30)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.05, seed=3, anchor=anchor(), freeze_gc=False) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    client = make_http_client()
    yield client
    client.close()


def connector(sb: SandboxServer, http: httpx.Client) -> SalesforceConnector:
    tokens = StaticToken("salesforce", SecretStr(sb.token_for("salesforce")))
    made = SalesforceConnector.connect(sb.salesforce_instance_url, tokens, http)
    return SalesforceConnector(made.client, bulk_threshold=0)  # REST: pages of 2,000


def count_since(sb: SandboxServer, http: httpx.Client, sobject: str, ms: int) -> int:
    """Records of ``sobject`` (deleted ones included) stamped in ``ms``'s second or later."""
    literal = sf_datetime(ms - ms % 1000)[:19] + "Z"
    response = http.get(
        f"{sb.salesforce_instance_url}/services/data/v59.0/queryAll",
        params={"q": f"SELECT COUNT() FROM {sobject} WHERE SystemModstamp >= {literal}"},
        headers={"Authorization": f"Bearer {sb.token_for('salesforce')}"},
    )
    return int(response.json()["totalSize"])


def test_a_re_sync_after_changes_reads_the_changed_records_of_each_object(
    sandbox: SandboxServer, http: httpx.Client, tmp_path: Path
) -> None:
    db = Database(f"duckdb:///{tmp_path / 'store'}.duckdb", lock_timeout=10)
    upgrade(db)
    settings = sandbox_settings(sandbox, db, "salesforce", org=ORG)
    first = run_sync(db, settings, "salesforce")
    assert first.ok, first.error
    # The generated company ends on one second: many records share the newest stamp.
    newest = {s: count_since(sandbox, http, s, sandbox.company.anchor_ms) for s in TYPES}
    assert newest["Task"] > 50, newest

    changed = sandbox.mutate(modified_pct=2.0, archived_pct=1.0, seed=7)
    again = run_sync(db, settings, "salesforce")
    assert again.ok, again.error
    fetched = {s: again.streams[s].fetched for s in STREAMS}
    for sobject, types in TYPES.items():
        want = sum(len(changed.changed(t)) for t in types)  # modified and archived (IsDeleted)
        assert want > 0 and fetched[sobject] == want, (sobject, fetched, want)
    # Stage history and contact roles: the snapshots the edits wrote and the rows deleted with
    # their opportunities, as queryAll counts them from the first change on.
    for sobject in ("OpportunityHistory", "OpportunityContactRole"):
        assert fetched[sobject] == count_since(sandbox, http, sobject, changed.started_ms)
    assert fetched["OpportunityHistory"] > 0 and fetched["OpportunityContactRole"] > 0
    assert fetched["User"] == 0
    assert fetched["OpportunityStage"] == first.streams["OpportunityStage"].fetched  # read whole
    assert sum(fetched.values()) < first.counts.fetched / 20
    # The archived records arrived with IsDeleted and are soft deletes now.
    with db.connect() as conn:
        sql = (
            "SELECT count(*) FROM accounts "
            "WHERE source_system = 'salesforce' AND deleted_at IS NOT NULL"
        )
        deleted = conn.execute(text(sql)).scalar_one()
    assert deleted == len(changed.archived["companies"])

    # Nothing changed since: the next re-sync reads only what the margin keeps in view (the
    # changes just read, stamped within SETTLE_SECONDS of its queries), and no generated record.
    third = run_sync(db, settings, "salesforce")
    assert third.ok, third.error
    for sobject, types in TYPES.items():
        assert third.streams[sobject].fetched <= sum(len(changed.changed(t)) for t in types)
    db.dispose()


def read(conn: SalesforceConnector, stream: str, checkpoint: str | None) -> tuple[list[Any], str]:
    records: list[dict[str, Any]] = []
    last = checkpoint
    for page in conn.read(stream, checkpoint):
        records.extend(page.records)
        last = page.checkpoint or last
    assert last is not None
    return records, last


def test_a_late_commit_stamped_before_the_cursor_is_still_read(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    """A record the first read could not see (its transaction still open) carries a stamp
    from before that read: within the margin, the next read gets it; so does a record stamped
    in the cursor's own second."""
    conn = connector(sandbox, http)
    started = datetime.now(UTC).replace(microsecond=0)
    everything, checkpoint = read(conn, "Contact", None)
    since = to_utc(json.loads(checkpoint)["since"])
    assert started - SETTLE - timedelta(seconds=2) <= since <= datetime.now(UTC) - SETTLE
    company = sandbox.company
    late, on_cursor = company.contacts[3], company.contacts[4]
    with sandbox.state.lock:
        late.updated_ms = int((started - timedelta(seconds=30)).timestamp() * 1000)
        on_cursor.updated_ms = int(since.timestamp() * 1000) + 999  # the same second
        company.version += 1
    again, _ = read(connector(sandbox, http), "Contact", checkpoint)
    ids = {r["Id"] for r in again}
    assert company.sf_id("contacts", late) in ids
    assert company.sf_id("contacts", on_cursor) in ids
    assert len(again) == 2 and len(everything) > 1_000


def test_a_read_stopped_midway_resumes_without_losing_a_group_sharing_one_stamp(
    http: httpx.Client,
) -> None:
    """2,500 contacts modified in one second span two pages: the first page's checkpoint
    (capped at the settled point) resumes a read that gets every one of them."""
    with SandboxServer(scale=0.15, seed=3, anchor=anchor(), freeze_gc=False) as sandbox:
        resume_a_group(sandbox, http)


def resume_a_group(sandbox: SandboxServer, http: httpx.Client) -> None:
    conn = connector(sandbox, http)
    _, checkpoint = read(conn, "Contact", None)
    changed = sandbox.bump_same_timestamp("contacts", n=2_500)
    group = {sandbox.company.salesforce_id("contacts", i) for i in changed.modified["contacts"]}
    reader = cast(Generator[Page], connector(sandbox, http).read("Contact", checkpoint))
    first_page = next(reader)
    reader.close()  # the process dies after storing the first page
    assert len(first_page.records) == 2_000 and first_page.checkpoint is not None
    resumed, _ = read(connector(sandbox, http), "Contact", first_page.checkpoint)
    assert group <= {r["Id"] for r in resumed}


def test_the_cursor_settles_at_the_query_time_less_the_margin() -> None:
    now = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    settled = sf_stamp(now - SETTLE)
    old, recent = "2026-11-01T00:00:00.000+0000", "2026-12-07T11:59:30.000+0000"

    quiet = ModstampCursor("2026-10-01T00:00:00.000+0000", server_time=now)
    quiet.saw([{"SystemModstamp": old}, {"SystemModstamp": "2026-10-02T00:00:00.000+0000"}])
    assert quiet.partial() == old  # more pages to come: the newest stamp read
    assert quiet.complete() == settled  # done: past the newest second, which is complete

    busy = ModstampCursor(old, server_time=now)
    busy.saw([{"SystemModstamp": recent}])
    assert busy.partial() == settled  # never past the settled point
    assert busy.complete() == settled  # the recent change is read again next time

    empty = ModstampCursor(None, server_time=now)
    assert empty.partial() is None and empty.complete() == settled

    ahead = ModstampCursor(settled, server_time=now - timedelta(minutes=10))
    assert ahead.complete() == settled  # never back before where the read started

    # No Date, or records stamped after the server's own clock: the newest stamp read.
    unknown = ModstampCursor(old)
    unknown.saw([{"SystemModstamp": recent}])
    assert unknown.partial() == unknown.complete() == recent
    future = "2026-12-07T12:03:00.000+0000"
    skewed = ModstampCursor(old, server_time=now)
    skewed.saw([{"SystemModstamp": future}])
    assert skewed.complete() == future
