"""The sandbox's Bulk API 2.0 query jobs over real HTTP: states, CSV results, errors, faults."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from revtops_sandbox.company import ARCHIVED, LIVE, MEETING
from revtops_sandbox.salesforce_bulk import bulk_knobs
from revtops_sandbox.server import SandboxServer

JOBS = "/services/data/v59.0/jobs/query"
TASK_QUERY = (
    "SELECT Id, Subject, IsDeleted, IsClosed, CallDurationInSeconds, ActivityDate, WhoId, "
    "SystemModstamp, Owner.Email, Account.Name FROM Task"
)


def create(client: httpx.Client, query: str, operation: str = "queryAll", **extra: Any) -> Any:
    return client.post(JOBS, json={"operation": operation, "query": query, **extra})


def wait_complete(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info: dict[str, Any] = client.get(f"{JOBS}/{job_id}").json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never completed")


def all_results(
    client: httpx.Client, job_id: str, max_records: int
) -> tuple[list[str], list[list[str]], int]:
    """Header, rows and the number of calls, following Sforce-Locator."""
    locator, rows, calls, header = "", [], 0, []
    while True:
        params: dict[str, Any] = {"maxRecords": max_records}
        if locator:
            params["locator"] = locator
        r = client.get(f"{JOBS}/{job_id}/results", params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        calls += 1
        parsed = list(csv.reader(io.StringIO(r.text, newline="")))
        header, page = parsed[0], parsed[1:]
        assert int(r.headers["Sforce-NumberOfRecords"]) == len(page)
        rows += page
        locator = r.headers["Sforce-Locator"]
        if locator == "null":
            return header, rows, calls


def rest_records(client: httpx.Client, query: str) -> list[dict[str, Any]]:
    body = client.get("/services/data/v59.0/queryAll", params={"q": query}).json()
    records = list(body["records"])
    while not body["done"]:
        body = client.get(body["nextRecordsUrl"]).json()
        records += body["records"]
    return records


def test_a_job_goes_through_its_states_and_serves_csv_by_locator(
    fresh: Callable[..., SandboxServer], client_for: Any
) -> None:
    sb = fresh(scale=0.05)
    bulk_knobs(sb.state).processing_s = 0.3
    sf = client_for(sb, "salesforce")
    created = create(sf, TASK_QUERY)
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750")
    assert job["object"] == "Task" and job["operation"] == "queryAll"
    assert (job["contentType"], job["columnDelimiter"], job["lineEnding"]) == ("CSV", "COMMA", "LF")
    assert sf.get(f"{JOBS}/{job['id']}").json()["state"] == "InProgress"
    early = sf.get(f"{JOBS}/{job['id']}/results")
    assert early.status_code == 400 and early.json()[0]["errorCode"] == "INVALIDJOBSTATE"

    info = wait_complete(sf, job["id"])
    tasks = [a for a in sb.company.activities if a.kind != MEETING and a.state in (LIVE, ARCHIVED)]
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Query"
    assert info["numberRecordsProcessed"] == len(tasks) > 1000

    header, rows, calls = all_results(sf, job["id"], max_records=500)
    assert calls == -(-len(tasks) // 500)
    assert header == [
        "Id", "Subject", "IsDeleted", "IsClosed", "CallDurationInSeconds", "ActivityDate",
        "WhoId", "SystemModstamp", "Owner.Email", "Account.Name",
    ]  # fmt: skip
    # The same records and values as REST's queryAll, written as CSV.
    rest = {r["Id"]: r for r in rest_records(sf, TASK_QUERY)}
    assert sorted(row[0] for row in rows) == sorted(rest)
    for row in rows:
        record = dict(zip(header, row, strict=True))
        want = rest[record["Id"]]
        assert record["IsDeleted"] == ("true" if want["IsDeleted"] else "false")
        assert record["IsClosed"] in ("true", "false")
        assert record["CallDurationInSeconds"] == (
            "" if want["CallDurationInSeconds"] is None else str(want["CallDurationInSeconds"])
        )
        assert record["WhoId"] == (want["WhoId"] or "")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", record["SystemModstamp"])
        assert record["SystemModstamp"][:-1] == want["SystemModstamp"][:-5]
        assert record["ActivityDate"] == want["ActivityDate"]
        assert record["Owner.Email"] == want["Owner"]["Email"]
        assert record["Account.Name"] == want["Account"]["Name"]
    # A locator can be read again while the job exists.
    first = sf.get(f"{JOBS}/{job['id']}/results", params={"maxRecords": 500})
    again = sf.get(
        f"{JOBS}/{job['id']}/results",
        params={"maxRecords": 500, "locator": first.headers["Sforce-Locator"]},
    )
    repeat = sf.get(
        f"{JOBS}/{job['id']}/results",
        params={"maxRecords": 500, "locator": first.headers["Sforce-Locator"]},
    )
    assert again.text == repeat.text and again.text.split("\n")[1] == ",".join(
        f'"{v}"' for v in rows[500]
    )


def test_query_leaves_out_deleted_rows_that_query_all_returns(
    fresh: Callable[..., SandboxServer], client_for: Any
) -> None:
    sb = fresh(scale=0.02)
    bulk_knobs(sb.state).processing_s = 0.0
    changed = sb.mutate(modified_pct=0.0, archived_pct=5.0, seed=2)
    archived = {sb.company.salesforce_id("contacts", i) for i in changed.archived["contacts"]}
    assert archived
    sf = client_for(sb, "salesforce")
    ids: dict[str, set[str]] = {}
    for operation in ("query", "queryAll"):
        job = create(sf, "SELECT Id, IsDeleted FROM Contact", operation).json()
        assert wait_complete(sf, job["id"])["state"] == "JobComplete"
        _, rows, _ = all_results(sf, job["id"], 100_000)
        ids[operation] = {r[0] for r in rows}
        assert {r[0] for r in rows if r[1] == "true"} == (
            archived if operation == "queryAll" else set()
        )
    assert ids["queryAll"] - ids["query"] == archived


def test_bad_jobs_and_requests_get_salesforce_errors(sb: SandboxServer, sf: httpx.Client) -> None:
    bad_field = create(sf, "SELECT Id, Nope FROM Task")
    assert bad_field.status_code == 400
    assert bad_field.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Nope'" in bad_field.json()[0]["message"]
    assert create(sf, "SELECT Id FROM Nothing").json()[0]["errorCode"] == "INVALID_TYPE"
    for query in ("SELECT COUNT() FROM Task", "SELECT Id FROM Task OFFSET 5"):
        refused = create(sf, query)
        assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALIDJOB"
    assert create(sf, "SELECT Id FROM Task", "delete").status_code == 400
    assert create(sf, "SELECT Id FROM Task", contentType="JSON").status_code == 400
    assert sf.post(JOBS, content=b"{not json").json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    missing = sf.get(f"{JOBS}/750000000000000AAA")
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"

    bulk_knobs(sb.state).processing_s = 0.0
    job = create(sf, "SELECT Id FROM User").json()
    wait_complete(sf, job["id"])
    other_version = sf.get(f"/services/data/v60.0/jobs/query/{job['id']}/results")
    assert other_version.status_code == 409
    bad_locator = sf.get(f"{JOBS}/{job['id']}/results", params={"locator": "!!"})
    assert bad_locator.status_code == 400
    assert sf.get(f"{JOBS}/{job['id']}/results", params={"maxRecords": "0"}).status_code == 400
    assert sf.delete(f"{JOBS}/{job['id']}").status_code == 204
    assert sf.get(f"{JOBS}/{job['id']}").status_code == 404


def test_failed_and_aborted_jobs(fresh: Callable[..., SandboxServer], client_for: Any) -> None:
    sb = fresh(scale=0.02)
    knobs = bulk_knobs(sb.state)
    knobs.processing_s, knobs.fail_jobs = 0.0, True
    sf = client_for(sb, "salesforce")
    failed = wait_complete(sf, create(sf, "SELECT Id FROM Account").json()["id"])
    assert failed["state"] == "Failed" and "UNKNOWN_EXCEPTION" in failed["errorMessage"]
    knobs.processing_s, knobs.fail_jobs = 30.0, False
    job = create(sf, "SELECT Id FROM Account").json()
    aborted = sf.patch(f"{JOBS}/{job['id']}", json={"state": "Aborted"})
    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    assert sf.get(f"{JOBS}/{job['id']}").json()["state"] == "Aborted"
    assert sf.get(f"{JOBS}/{job['id']}/results").status_code == 400


def test_the_gate_applies_auth_limits_and_faults_to_jobs(
    fresh: Callable[..., SandboxServer], client_for: Any
) -> None:
    sb = fresh(scale=0.02)
    stranger = client_for(sb, "salesforce", token="not-a-token")
    refused = create(stranger, "SELECT Id FROM Task")
    assert refused.status_code == 401
    assert refused.json()[0]["errorCode"] == "INVALID_SESSION_ID"

    sf = client_for(sb, "salesforce")
    sb.faults.salesforce.rate_limits = True
    sb.faults.salesforce.daily_limit = sb.state.daily_calls["salesforce"]
    limited = create(sf, "SELECT Id FROM Task")
    assert limited.status_code == 403
    assert limited.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    sb.faults.salesforce.rate_limits = False

    sb.faults.salesforce.error_rate, sb.faults.salesforce.error_statuses = 1.0, (503,)
    assert create(sf, "SELECT Id FROM Task").status_code == 503
    sb.faults.salesforce.error_rate = 0.0
    assert sb.stats.count("salesforce POST /jobs/query") == 3


def test_malformed_records_are_the_same_as_from_rest(
    fresh: Callable[..., SandboxServer], client_for: Any
) -> None:
    sb = fresh(scale=0.05)
    bulk_knobs(sb.state).processing_s = 0.0
    sb.faults.salesforce.malformed_rate = 0.05
    sf = client_for(sb, "salesforce")
    query = "SELECT Id, Name, Amount, CloseDate, AccountId FROM Opportunity"
    rest = rest_records(sf, query)
    job = create(sf, query).json()
    wait_complete(sf, job["id"])
    header, rows, _ = all_results(sf, job["id"], 100_000)
    assert [r[0] for r in rows] == [r["Id"] or "" for r in rest]
    corrupt = 0
    for row, want in zip(rows, rest, strict=True):
        record = dict(zip(header, row, strict=True))
        amount = want["Amount"]
        assert record["Amount"] == ("" if amount is None else str(amount))
        assert record["CloseDate"] == want["CloseDate"]
        corrupt += want["Amount"] == "12,5O0" or want["Id"] is None
    assert corrupt > 0
