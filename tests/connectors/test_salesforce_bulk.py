"""The Salesforce connector's Bulk API 2.0 path against the sandbox over real HTTP: the same
records and stored rows as REST, fewer calls, resumption after a crash, failures, REST for
incremental reads and the origin check."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from revtops_kernel.connectors import salesforce as salesforce_connector
from revtops_kernel.connectors.base import Page
from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.salesforce import (
    API_VERSION,
    SETTLE_SECONDS,
    STREAMS_BY_NAME,
    SalesforceConnector,
)
from revtops_kernel.connectors.salesforce_bulk import BulkQuery, CsvRecords, CsvSet, PollPolicy
from revtops_kernel.errors import ConnectorError, ForeignOriginError
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import metadata
from revtops_kernel.sync import run_sync
from revtops_kernel.timeutil import to_utc
from revtops_sandbox.salesforce_bulk import bulk_knobs
from revtops_sandbox.server import SandboxServer

ORG = "bulk-org"
URL = "/services/data/v59.0/sobjects"
SETTLE = timedelta(seconds=SETTLE_SECONDS)
FAST_POLL = PollPolicy(first=0.01, factor=1.5, max_delay=0.1, timeout_s=30.0)
TABLES = (
    "owners", "accounts", "contacts", "pipelines", "deal_stages", "deals", "deal_stage_history",
    "deal_contacts", "activities", "activity_participants",
)  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.05, seed=5, freeze_gc=False) as server:
        bulk_knobs(server.state).processing_s = 0.05
        # Deleted and archived records, and changes, so queryAll's IsDeleted rows are in play.
        server.mutate(modified_pct=2.0, archived_pct=3.0, seed=11)
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    client = make_http_client()
    yield client
    client.close()


def connector(
    sb: SandboxServer, http: httpx.Client, *, threshold: int, max_records: int = 50_000
) -> SalesforceConnector:
    tokens = StaticToken("salesforce", SecretStr(sb.token_for("salesforce")))
    made = SalesforceConnector.connect(sb.salesforce_instance_url, tokens, http)
    bulk = BulkQuery(made.client, API_VERSION, poll=FAST_POLL, max_records=max_records)
    return SalesforceConnector(made.client, bulk_threshold=threshold, bulk=bulk)


def read_all(conn: SalesforceConnector, stream: str, checkpoint: str | None = None) -> list[Page]:
    return list(conn.read(stream, checkpoint))


def records_of(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


def store(tmp_path: Path, name: str) -> Database:
    db = Database(f"duckdb:///{tmp_path / name}.duckdb", lock_timeout=10)
    upgrade(db)
    return db


def table_rows(db: Database, table: str) -> list[dict[str, Any]]:
    columns = [c.name for c in metadata.tables[table].columns]
    with db.connect() as conn:
        order = "source_id, reason" if table == "quarantined_records" else "id"
        result = conn.execute(text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"))
        return [
            {k: json.loads(v) if k == "raw" and isinstance(v, str) else v for k, v in r.items()}
            for r in result.mappings()
        ]


@pytest.mark.slow
def test_a_bulk_sync_stores_the_same_rows_as_a_rest_sync(
    sandbox: SandboxServer, http: httpx.Client, tmp_path: Path
) -> None:
    """The same org synced by REST and by Bulk into two stores: every normalized table
    equal row by row (raw records included), with far fewer calls for the big objects."""
    settings = load_settings(REVTOPS_ORG=ORG, REVTOPS_SALESFORCE_TOKEN=sandbox.token)
    results = {}
    dbs = {}
    for how, threshold in (("rest", 0), ("bulk", 1)):
        dbs[how] = store(tmp_path, how)
        conn = connector(sandbox, http, threshold=threshold, max_records=1_000)
        results[how] = run_sync(dbs[how], settings, "salesforce", connector=conn)
        assert results[how].ok, results[how].error
    assert results["bulk"].streams["Task"].fetched == results["rest"].streams["Task"].fetched
    for table in TABLES:
        rest, bulk = table_rows(dbs["rest"], table), table_rows(dbs["bulk"], table)
        assert rest, table
        assert len(rest) == len(bulk), table
        for want, got in zip(rest, bulk, strict=True):
            assert got == want, (table, want["source_id"])
    deleted = table_rows(dbs["bulk"], "contacts")
    assert any(r["deleted_at"] is not None for r in deleted)  # queryAll's IsDeleted rows
    for db in dbs.values():
        db.dispose()


@pytest.mark.slow
def test_malformed_records_are_quarantined_alike_by_both_paths(
    fresh_sandbox: SandboxServer, http: httpx.Client, tmp_path: Path
) -> None:
    fresh_sandbox.faults.salesforce.malformed_rate = 0.05
    settings = load_settings(REVTOPS_ORG=ORG, REVTOPS_SALESFORCE_TOKEN=fresh_sandbox.token)
    quarantined = {}
    for how, threshold in (("rest", 0), ("bulk", 1)):
        db = store(tmp_path, how)
        conn = connector(fresh_sandbox, http, threshold=threshold)
        assert run_sync(db, settings, "salesforce", connector=conn).ok
        quarantined[how] = sorted(
            # A record without an Id: REST's attributes.url still names it, the CSV cannot.
            (r["stream"], r["source_id"] or "", r["reason"], drop_attributes(r["raw"]))
            for r in table_rows(db, "quarantined_records")
        )
        db.dispose()
    assert len(quarantined["rest"]) > 5
    assert quarantined["bulk"] == quarantined["rest"]


def drop_attributes(raw: Any) -> str:
    return json.dumps({k: v for k, v in (raw or {}).items() if k != "attributes"}, sort_keys=True)


def test_bulk_reads_the_records_rest_reads_in_results_sets(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    rest_conn = connector(sandbox, http, threshold=0)
    rest = records_of(read_all(rest_conn, "Task"))
    before = sandbox.stats.count("salesforce POST /jobs/query")
    bulk_conn = connector(sandbox, http, threshold=1_000)
    started = datetime.now(UTC).replace(microsecond=0)
    pages = read_all(bulk_conn, "Task")
    finished = datetime.now(UTC)
    bulk = records_of(pages)
    assert sandbox.stats.count("salesforce POST /jobs/query") == before + 1
    assert sorted(bulk, key=lambda r: r["Id"]) == sorted(rest, key=lambda r: r["Id"])
    assert len(rest) > 2_000 and rest_conn.stats.api_calls == -(-len(rest) // 2_000)
    calls = {k.rsplit("/v59.0", 1)[-1]: n for k, n in bulk_conn.stats.by_endpoint.items()}
    polls = sum(n for k, n in calls.items() if k.startswith("/jobs/query/7") and "results" not in k)
    # count, describe, create, one results set of 50,000 rows at most, and polls
    assert bulk_conn.stats.api_calls - polls == 4
    assert [n for k, n in calls.items() if k.endswith("/results")] == [1]
    # Only the last page moves the cursor: to the job's creation (its query ran after it) less
    # the settling margin, here before the fixture's changes, so they are read once more.
    final = json.loads(pages[-1].checkpoint or "{}")
    since = to_utc(final["since"])
    assert started - SETTLE <= since <= finished - SETTLE
    assert since < to_utc(max(r["SystemModstamp"] for r in rest))
    assert all("since" not in json.loads(p.checkpoint or "{}") for p in pages[:-1])


def test_small_objects_and_incremental_reads_stay_on_rest(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    conn = connector(sandbox, http, threshold=100_000)
    before = sandbox.stats.count("salesforce POST /jobs/query")
    pages = read_all(conn, "Event")  # a count call, then REST pages
    assert sandbox.stats.count("salesforce POST /jobs/query") == before
    bulk = connector(sandbox, http, threshold=1)
    full = read_all(bulk, "Event")
    assert sandbox.stats.count("salesforce POST /jobs/query") == before + 1
    again = read_all(bulk, "Event", full[-1].checkpoint)  # incremental: REST with WHERE
    assert sandbox.stats.count("salesforce POST /jobs/query") == before + 1
    # From the settled cursor: the records stamped in its second or later, no others.
    since = to_utc(json.loads(full[-1].checkpoint or "{}")["since"])
    recent = {r["Id"] for r in records_of(pages) if to_utc(r["SystemModstamp"]) >= since}
    assert {r["Id"] for r in records_of(again)} == recent


def test_a_sync_stopped_midway_resumes_the_same_job_after_its_last_stored_page(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    conn = connector(sandbox, http, threshold=1, max_records=700)
    everything = records_of(read_all(conn, "Task"))
    jobs = sandbox.stats.count("salesforce POST /jobs/query")
    stopped = connector(sandbox, http, threshold=1, max_records=700)
    reader = stopped.read("Task", None)
    first = [next(reader), next(reader)]  # two results sets stored, then the process dies
    reader.close()
    position = json.loads(first[-1].checkpoint or "{}")
    assert "since" not in position and position["bulk"]["locator"]
    assert sandbox.stats.count("salesforce POST /jobs/query") == jobs + 1

    older = json.loads(first[-1].checkpoint or "{}")
    older["bulk"]["version"] = "v58.0"  # written before an upgrade: its results would be 409
    elsewhere = connector(sandbox, http, threshold=1, max_records=700)
    assert len(records_of(read_all(elsewhere, "Task", json.dumps(older)))) == len(everything)
    assert sandbox.stats.count("salesforce POST /jobs/query") == jobs + 2
    jobs += 1

    resumed = connector(sandbox, http, threshold=1, max_records=700)
    rest = records_of(read_all(resumed, "Task", first[-1].checkpoint))
    assert sandbox.stats.count("salesforce POST /jobs/query") == jobs + 1  # no new job
    assert resumed.stats.by_endpoint.get("GET /salesforce/services/data/v59.0/queryAll") is None
    ids = [r["Id"] for r in records_of(first) + rest]
    assert len(ids) == len(set(ids)) == len(everything)
    assert set(ids) == {r["Id"] for r in everything}


def test_a_sync_stopped_inside_a_results_set_resumes_at_the_next_row(
    sandbox: SandboxServer, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(salesforce_connector, "BULK_PAGE_RECORDS", 300)  # 3 pages per set
    everything = records_of(
        read_all(connector(sandbox, http, threshold=1, max_records=700), "Task")
    )
    stopped = connector(sandbox, http, threshold=1, max_records=700)
    reader = stopped.read("Task", None)
    first = next(reader)
    reader.close()
    position = json.loads(first.checkpoint or "{}")["bulk"]
    assert (position["locator"], position["skip"]) == (None, 300)
    resumed = records_of(read_all(stopped, "Task", first.checkpoint))
    ids = [r["Id"] for r in first.records + resumed]
    assert len(ids) == len(set(ids)) == len(everything)


def test_a_resumed_sync_whose_job_is_gone_starts_a_new_full_read(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    gone = json.dumps(
        {
            "bulk": {
                "job": "7505g00000000zzAAA",
                "version": API_VERSION,
                "locator": "MTAwMA",
                "skip": 0,
                "highest": None,
            },
            "fields": STREAMS_BY_NAME["Task"].fingerprint,
        }
    )
    jobs = sandbox.stats.count("salesforce POST /jobs/query")
    conn = connector(sandbox, http, threshold=1)
    records = records_of(read_all(conn, "Task", gone))
    assert sandbox.stats.count("salesforce POST /jobs/query") == jobs + 1
    rest = records_of(read_all(connector(sandbox, http, threshold=0), "Task"))
    assert sorted(r["Id"] for r in records) == sorted(r["Id"] for r in rest)


def test_a_failed_job_fails_the_read_with_its_error_message(
    fresh_sandbox: SandboxServer, http: httpx.Client
) -> None:
    knobs = bulk_knobs(fresh_sandbox.state)
    knobs.fail_jobs, knobs.error_message = True, "InternalServerError: retried more than 15 times"
    conn = connector(fresh_sandbox, http, threshold=1)
    with pytest.raises(ConnectorError, match="ended Failed: InternalServerError: retried more"):
        read_all(conn, "Account")


def test_a_job_running_past_the_timeout_is_aborted(
    fresh_sandbox: SandboxServer, http: httpx.Client
) -> None:
    bulk_knobs(fresh_sandbox.state).processing_s = 60.0
    conn = connector(fresh_sandbox, http, threshold=1)
    patient = PollPolicy(first=0.01, factor=2.0, max_delay=0.05, timeout_s=0.2)
    conn.bulk = BulkQuery(conn.client, API_VERSION, poll=patient)
    with pytest.raises(ConnectorError, match=r"still InProgress after 0 s; aborted it"):
        read_all(conn, "Account")
    label = "salesforce PATCH /jobs/query/{id}"  # the abort, answered 200
    assert fresh_sandbox.stats.count(label) == 1
    assert fresh_sandbox.stats.responses[(label, 200)] == 1


def test_a_redirect_off_the_instance_is_refused_on_the_bulk_path(
    fresh_sandbox: SandboxServer, http: httpx.Client
) -> None:
    """Resuming a job (the first call is the job's state): a 307 elsewhere is not followed."""
    position = json.dumps(
        {
            "bulk": {
                "job": "7505g0000000001AAA",
                "version": API_VERSION,
                "locator": None,
                "skip": 0,
                "highest": None,
            },
            "fields": STREAMS_BY_NAME["Account"].fingerprint,
        }
    )
    fresh_sandbox.faults.salesforce.redirect_to = "http://127.0.0.2:9"
    conn = connector(fresh_sandbox, http, threshold=1)
    with pytest.raises(ForeignOriginError):
        read_all(conn, "Account", position)
    assert fresh_sandbox.stats.count("salesforce POST /jobs/query") == 0


@pytest.fixture
def fresh_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.01, seed=2, freeze_gc=False) as server:
        bulk_knobs(server.state).processing_s = 0.0
        yield server


def test_csv_rows_become_rest_records() -> None:
    types = {"Id": "id", "IsDeleted": "boolean", "Amount": "currency", "N": "int",
             "SystemModstamp": "datetime", "CloseDate": "date", "Name": "string"}  # fmt: skip
    header = ["Id", "IsDeleted", "Amount", "N", "SystemModstamp", "CloseDate", "Name",
              "Owner.Email", "Owner.Name", "Account.Name"]  # fmt: skip
    convert = CsvRecords("Opportunity", types, "v59.0").converter(header)
    row = ["006A", "true", "12.5", "", "2024-01-15T10:22:33.000Z", "2024-06-30", "",
           "a@x.example", "", ""]  # fmt: skip
    assert convert(row) == {
        "attributes": {"type": "Opportunity", "url": f"{URL}/Opportunity/006A"},
        "Id": "006A",
        "IsDeleted": True,
        "Amount": 12.5,
        "N": None,
        "SystemModstamp": "2024-01-15T10:22:33.000+0000",
        "CloseDate": "2024-06-30",
        "Name": None,
        "Owner": {"Email": "a@x.example", "Name": None},
        "Account": None,
    }
    corrupt = convert(["006B", "false", "12,5O0", "7", "", "2025-02-31", "x", "", "", ""])
    assert corrupt["Amount"] == "12,5O0" and corrupt["N"] == 7 and corrupt["IsDeleted"] is False


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
def test_a_results_set_is_parsed_as_the_csv_module_reads_it(line_ending: str) -> None:
    """CsvSet (pyarrow's CSV reader) reads what the csv module reads: quoted commas, quotes and
    line breaks kept, empty values "", non-ASCII text; then pages of records equal the rows'."""
    types = {"Id": "id", "Name": "string", "N": "int", "IsDeleted": "boolean",
             "SystemModstamp": "datetime"}  # fmt: skip
    header = ["Id", "Name", "N", "IsDeleted", "SystemModstamp", "Owner.Name"]
    rows = [
        ["001A", 'a "quoted", comma\nnew line\r\nx', "3", "true", "2024-01-15T10:22:33.000Z", ""],
        ["", "", "", "", "", "é — ü"],
        ["001C", "  spaced ", "x", "maybe", "2024-01-15T10:22:33.000+0000", '"'],
    ]
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator=line_ending).writerows([header, *rows])
    results = CsvSet(buffer.getvalue().encode())
    assert (results.header, results.num_rows) == (header, 3)
    assert results.columns(0, 3) == [list(column) for column in zip(*rows, strict=True)]
    convert = CsvRecords("Account", types, "v59.0")
    expected = [convert.converter(header)(row) for row in rows]
    assert convert.from_set(results, 0, 2) + convert.from_set(results, 2, 9) == expected
    assert expected[0]["SystemModstamp"] == "2024-01-15T10:22:33.000+0000"
    assert expected[1]["Owner"] == {"Name": "é — ü"} and expected[0]["Owner"] is None
    assert convert.from_set(results, 3, 9) == []


def test_an_empty_or_ragged_results_set() -> None:
    empty = CsvSet(b'"Id","Name"\n')
    assert (empty.header, empty.num_rows, empty.columns(0, 10)) == (["Id", "Name"], 0, [[], []])
    assert CsvRecords("Account", {}, "v59.0").from_set(empty, 0, 10) == []
    assert CsvSet(b"").num_rows == 0
    with pytest.raises(ValueError, match="not the CSV expected"):
        CsvSet(b'"Id","Name"\n"1","a"\n"2"\n')


def test_the_threshold_setting_reaches_the_syncs_own_connector(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """``run_sync`` builds its connector from settings: REVTOPS_SALESFORCE_BULK_THRESHOLD
    decides, 0 never uses the Bulk API."""
    jobs = "salesforce POST /jobs/query"
    for threshold, more_jobs in (("0", False), ("1", True)):
        settings = load_settings(
            REVTOPS_ORG=f"{ORG}-{threshold}",
            REVTOPS_SALESFORCE_TOKEN=sandbox.token,
            REVTOPS_SALESFORCE_INSTANCE_URL=sandbox.salesforce_instance_url,
            REVTOPS_SALESFORCE_BULK_THRESHOLD=threshold,
        )
        db = store(tmp_path, f"threshold-{threshold}")
        before = sandbox.stats.count(jobs)
        result = run_sync(db, settings, "salesforce", streams=("Event",))
        assert result.ok, result.error
        assert (sandbox.stats.count(jobs) > before) is more_jobs, threshold
        db.dispose()
