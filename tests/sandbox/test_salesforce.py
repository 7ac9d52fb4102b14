"""Salesforce REST over real HTTP: SOQL, queryMore, queryAll, value formats and errors."""

from __future__ import annotations

import re
from typing import Any

import httpx

from revtops_sandbox.company import ARCHIVED, LIVE, PIPELINES, day_iso, sf_datetime
from revtops_sandbox.deal_history import close_versions, pushes, snapshots
from revtops_sandbox.server import SandboxServer

SF_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
SF_ID = re.compile(r"^[0-9A-Za-z]{18}$")


def soql(client: httpx.Client, q: str, *, all_rows: bool = False, **kw: Any) -> httpx.Response:
    return client.get(
        f"/services/data/v59.0/{'queryAll' if all_rows else 'query'}", params={"q": q}, **kw
    )


def fetch_all(client: httpx.Client, q: str, **kw: Any) -> tuple[list[dict[str, Any]], int]:
    """Every record of a query, following the relative nextRecordsUrl; and the batch count."""
    r = soql(client, q, **kw)
    assert r.status_code == 200, r.text
    body = r.json()
    records, batches = list(body["records"]), 1
    while not body["done"]:
        url = body["nextRecordsUrl"]
        assert url.startswith("/services/data/v59.0/query/01g")  # relative, a real locator
        r = client.get(url)  # relative to the instance URL, as connectors resolve it
        assert r.status_code == 200, r.text
        body = r.json()
        records += body["records"]
        batches += 1
    assert "nextRecordsUrl" not in body
    return records, batches


def test_query_and_query_more_walk_every_record(sb: SandboxServer, sf: httpx.Client) -> None:
    live = [c for c in sb.company.contacts if c.state == LIVE]
    records, batches = fetch_all(
        sf, "SELECT Id, Email FROM Contact", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    assert len(records) == len(live)
    assert batches == -(-len(live) // 200)
    assert [r["Email"] for r in records] == [c.email for c in live]
    assert len({r["Id"] for r in records}) == len(records)
    first = soql(sf, "SELECT Id FROM Contact").json()
    assert first["totalSize"] == len(live) and first["done"] is (len(live) <= 2000)


def test_default_batch_is_two_thousand(fresh: Any, client_for: Any) -> None:
    sb = fresh(scale=0.15)  # ~3,000 contacts
    sf = client_for(sb, "salesforce")
    body = soql(sf, "SELECT Id FROM Contact").json()
    assert body["totalSize"] > 2000 and len(body["records"]) == 2000 and body["done"] is False
    assert body["nextRecordsUrl"].endswith("-2000")
    # batchSize below the minimum is raised to 200
    small = soql(sf, "SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(small.json()["records"]) == 200


def test_record_shapes_and_value_types(sb: SandboxServer, sf: httpx.Client) -> None:
    q = (
        "SELECT Id, Name, Amount, StageName, CloseDate, IsClosed, IsWon, Probability, "
        "ForecastCategoryName, OwnerId, AccountId, Owner.Name, Account.Name, Account.Industry, "
        "LastModifiedDate, SystemModstamp FROM Opportunity LIMIT 50"
    )
    body = soql(sf, q).json()
    assert body["totalSize"] == 50 and body["done"] is True
    for rec in body["records"]:
        assert rec["attributes"]["type"] == "Opportunity"
        assert rec["attributes"]["url"] == f"/services/data/v59.0/sobjects/Opportunity/{rec['Id']}"
        assert SF_ID.match(rec["Id"]) and rec["Id"].startswith("006")
        assert rec["OwnerId"].startswith("005") and rec["AccountId"].startswith("001")
        assert SF_DATETIME.match(rec["SystemModstamp"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", rec["CloseDate"])
        assert isinstance(rec["IsClosed"], bool) and isinstance(rec["Probability"], float)
        assert rec["Amount"] is None or isinstance(rec["Amount"], float)
        assert rec["Owner"]["attributes"]["type"] == "User" and rec["Owner"]["Name"]
        assert set(rec["Account"]) == {"attributes", "Name", "Industry"}
    deal = sb.company.deals[0]
    rec = body["records"][0]
    stage = sb.company.stage(deal)
    assert rec["StageName"] == stage.label and rec["IsWon"] is stage.is_won
    assert rec["SystemModstamp"] == sf_datetime(deal.updated_ms)
    assert rec["Account"]["Name"] == sb.company.accounts[deal.account].name


def test_where_on_system_modstamp_with_unquoted_datetimes(
    sb: SandboxServer, sf: httpx.Client
) -> None:
    deals = sb.company.deals
    cut = sorted(d.updated_ms for d in deals)[len(deals) // 3]
    cut_s = cut - cut % 1000
    expected = sorted(
        (d for d in deals if d.state == LIVE and d.updated_ms - d.updated_ms % 1000 > cut_s),
        key=lambda d: (d.updated_ms // 1000, d.idx),
    )
    literal = sf_datetime(cut).replace(".000+0000", "Z")
    for text in (literal, literal.replace("Z", "+0000"), literal.replace("Z", ".000+00:00")):
        records, _ = fetch_all(
            sf, f"SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp > {text} "
            "ORDER BY SystemModstamp ASC",
        )  # fmt: skip
        assert [r["Id"] for r in records] == [sb.company.sf_id("deals", d) for d in expected]
    # quoted datetimes are a type error, exactly as Salesforce says it
    r = soql(sf, f"SELECT Id FROM Opportunity WHERE SystemModstamp > '{literal}'")
    assert r.status_code == 400
    [err] = r.json()
    assert (
        err["errorCode"] == "INVALID_FIELD" and "should not be enclosed in quotes" in err["message"]
    )


def test_order_by_limit_and_boolean_filters(sb: SandboxServer, sf: httpx.Client) -> None:
    won = [d for d in sb.company.deals if d.state == LIVE and sb.company.stage(d).is_won]
    top = sorted((d for d in won if d.amount_cents >= 0), key=lambda d: -d.amount_cents)[:5]
    body = soql(
        sf,
        "SELECT Id, Amount FROM Opportunity WHERE IsWon = TRUE AND Amount != null "
        "ORDER BY Amount DESC LIMIT 5",
    ).json()
    assert [r["Amount"] for r in body["records"]] == [d.amount_cents / 100 for d in top]
    assert body["totalSize"] == 5
    count = soql(sf, "SELECT COUNT() FROM Opportunity WHERE IsWon = true").json()
    assert count == {"totalSize": len(won), "done": True, "records": []}
    stage = PIPELINES[0].stages[1].label
    ins = soql(sf, f"SELECT Id FROM Opportunity WHERE StageName IN ('{stage}', 'Closed Won')")
    assert ins.json()["totalSize"] == sum(
        1
        for d in sb.company.deals
        if d.state == LIVE and sb.company.stage(d).label in (stage, "Closed Won")
    )
    mixed = soql(
        sf, "SELECT Id FROM Opportunity WHERE IsWon = true AND IsClosed = true OR Amount > 5"
    )
    assert mixed.status_code == 400 and mixed.json()[0]["errorCode"] == "MALFORMED_QUERY"
    grouped = soql(
        sf, "SELECT Id FROM Opportunity WHERE (IsWon = true AND IsClosed = true) OR Amount > 5"
    )
    assert grouped.status_code == 200


def test_errors_are_json_arrays(sb: SandboxServer, sf: httpx.Client) -> None:
    cases = {
        "SELECT Idd FROM Opportunity": "INVALID_FIELD",
        "SELECT Id FROM Opportunity WHERE Nope = 'x'": "INVALID_FIELD",
        "SELECT Id, Owner.Nope FROM Opportunity": "INVALID_FIELD",
        "SELECT Id FROM Widget": "INVALID_TYPE",
        "SELECT Id FROM": "MALFORMED_QUERY",
        "SELECT Id Opportunity": "MALFORMED_QUERY",
        "SELECT Id FROM Opportunity WHERE CloseDate > 2024-01-01T00:00:00 0000": "MALFORMED_QUERY",
        "SELECT Id FROM Opportunity WHERE IsWon = 'true'": "INVALID_FIELD",
        "SELECT Id FROM Opportunity WHERE CloseDate > 2024-01-01T00:00:00Z": "INVALID_FIELD",
        "SELECT Id FROM User WHERE IsDeleted = false": "INVALID_FIELD",
    }
    for q, code in cases.items():
        r = soql(sf, q)
        assert r.status_code == 400, q
        body = r.json()
        assert isinstance(body, list) and body[0]["errorCode"] == code, (q, body)
        assert set(body[0]) == {"message", "errorCode"}
    r = soql(sf, "SELECT Idd FROM Opportunity")
    assert "No such column 'Idd' on entity 'Opportunity'" in r.json()[0]["message"]
    assert "ERROR at Row:1:Column:8" in r.json()[0]["message"]
    missing = sf.get("/services/data/v59.0/sobjects/Opportunity/006000000000000AAA")
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
    assert sf.get("/services/data/v59.0/nothing/here").json()[0]["errorCode"] == "NOT_FOUND"
    bad_locator = sf.get("/services/data/v59.0/query/01g5g0000000zzzAAA-2000")
    assert bad_locator.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_any_api_version_and_the_usage_header(sb: SandboxServer, sf: httpx.Client) -> None:
    r = sf.get("/services/data/v62.0/query", params={"q": "SELECT Id FROM User LIMIT 1"})
    assert r.status_code == 200
    assert r.json()["records"][0]["attributes"]["url"].startswith("/services/data/v62.0/")
    assert re.fullmatch(r"api-usage=\d+/\d+", r.headers["sforce-limit-info"])
    account_id = sb.company.sf_id("companies", sb.company.accounts[2])
    got = sf.get(f"/services/data/v59.0/sobjects/Account/{account_id}")
    assert got.status_code == 200 and got.json()["Name"] == sb.company.accounts[2].name


def test_invalid_session_is_401_json_array(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    r = httpx.get(
        sb.salesforce_instance_url + "/services/data/v59.0/query",
        params={"q": "SELECT Id FROM User"},
    )
    assert r.status_code == 401
    assert r.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    old = sb.token_for("salesforce")
    sb.expire_token("salesforce")
    assert soql(client_for(sb, "salesforce", token=old), "SELECT Id FROM User").status_code == 401
    token = httpx.post(
        sb.salesforce_instance_url + "/services/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "y"},
    ).json()
    assert token["instance_url"] == sb.salesforce_instance_url
    assert (
        soql(
            client_for(sb, "salesforce", token=token["access_token"]), "SELECT Id FROM User"
        ).status_code
        == 200
    )
    # HubSpot's token was not touched
    assert client_for(sb, "hubspot").get("/crm/v3/objects/deals").status_code == 200


def test_stages_and_history(sb: SandboxServer, sf: httpx.Client) -> None:
    stages = soql(
        sf,
        "SELECT MasterLabel, SortOrder, DefaultProbability, IsClosed, IsWon, ForecastCategoryName, "
        "IsActive FROM OpportunityStage ORDER BY SortOrder",
    ).json()["records"]
    labels = [s["MasterLabel"] for s in stages]
    # 5 + 3 open, Closed Won/Lost shared, and one retired (inactive) stage no deal is in
    assert len(labels) == len(set(labels)) == 11
    assert [s["MasterLabel"] for s in stages if not s["IsActive"]] == ["Legal Review"]
    won = next(s for s in stages if s["MasterLabel"] == "Closed Won")
    assert won["IsWon"] is True and won["DefaultProbability"] == 100.0
    assert won["ForecastCategoryName"] == "Closed"
    deal = next(d for d in sb.company.deals if len(d.history) >= 6 and d.state == LIVE)
    opp_id = sb.company.sf_id("deals", deal)
    hist = soql(
        sf,
        f"SELECT StageName, CreatedDate FROM OpportunityHistory WHERE OpportunityId = '{opp_id}' "
        "ORDER BY CreatedDate",
    ).json()["records"]
    stages_of = PIPELINES[deal.pipeline].stages
    # One snapshot per stage entry, plus one per amount or close-date change between them
    # (which repeats the stage then): deduplicated, the stage path.
    path = [h["StageName"] for h in hist]
    assert [s for i, s in enumerate(path) if i == 0 or s != path[i - 1]] == [
        stages_of[s].label for s in deal.history[::2]
    ]
    assert len(hist) == len(snapshots(deal))


def test_history_snapshots_carry_amount_and_close_date_then(
    sb: SandboxServer, sf: httpx.Client
) -> None:
    """Each OpportunityHistory row holds the amount and close date in effect when it was
    written; a change alone writes a row too, so the derived histories match the deal's."""
    deal = next(d for d in sb.company.deals if d.state == LIVE and pushes(d) >= 2)
    opp_id = sb.company.sf_id("deals", deal)
    hist = soql(
        sf,
        "SELECT Amount, CloseDate, CreatedDate FROM OpportunityHistory "
        f"WHERE OpportunityId = '{opp_id}' ORDER BY CreatedDate",
    ).json()["records"]
    closes = [h["CloseDate"] for h in hist]
    changes = [c for i, c in enumerate(closes) if i == 0 or c != closes[i - 1]]
    assert changes == [day_iso(day) for _, day in close_versions(deal)]
    assert closes[-1] == day_iso(deal.close_day) and len(changes) >= 3
    amounts = [h["Amount"] for h in hist]
    assert amounts[-1] == (None if deal.amount_cents < 0 else deal.amount_cents / 100)
    # 15-character Ids are accepted too
    short = soql(sf, f"SELECT Id FROM OpportunityHistory WHERE OpportunityId = '{opp_id[:15]}'")
    assert short.json()["totalSize"] == len(hist)


def test_tasks_and_events(sb: SandboxServer, sf: httpx.Client) -> None:
    counts = sb.company.counts()
    events = soql(sf, "SELECT COUNT() FROM Event").json()["totalSize"]
    tasks = soql(sf, "SELECT COUNT() FROM Task").json()["totalSize"]
    assert events == counts["meetings"]
    assert tasks == counts["calls"] + counts["emails"] + counts["notes"] + counts["tasks"]
    calls = soql(
        sf,
        "SELECT Id, Subject, CallDurationInSeconds, WhoId, WhatId, ActivityDate FROM Task "
        "WHERE TaskSubtype = 'Call' LIMIT 5",
    ).json()["records"]
    assert all(c["Subject"].startswith("Call: ") and c["CallDurationInSeconds"] >= 0 for c in calls)
    ev = soql(sf, "SELECT StartDateTime, EndDateTime, DurationInMinutes FROM Event LIMIT 1").json()
    e = ev["records"][0]
    assert e["StartDateTime"] < e["EndDateTime"] and isinstance(e["DurationInMinutes"], int)


def test_query_all_shows_deleted_after_mutate(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    sf = client_for(sb, "salesforce")
    before = soql(sf, "SELECT COUNT() FROM Account").json()["totalSize"]
    changed = sb.mutate(modified_pct=2, archived_pct=3, deleted_pct=1, object_types=("companies",))
    archived = {sb.company.salesforce_id("companies", i) for i in changed.archived["companies"]}
    deleted = {sb.company.salesforce_id("companies", i) for i in changed.deleted["companies"]}
    assert archived and deleted
    live, _ = fetch_all(sf, "SELECT Id, IsDeleted FROM Account")
    assert len(live) == before - len(archived) - len(deleted)
    assert not {r["Id"] for r in live} & (archived | deleted)
    everything, _ = fetch_all(sf, "SELECT Id, IsDeleted FROM Account", all_rows=True)
    flagged = {r["Id"] for r in everything if r["IsDeleted"]}
    assert flagged == archived
    assert not {r["Id"] for r in everything} & deleted  # purged: gone even from queryAll
    assert all(
        sb.company.find("companies", i).state == ARCHIVED for i in changed.archived["companies"]
    )  # type: ignore[union-attr]
    only_deleted = soql(sf, "SELECT Id FROM Account WHERE IsDeleted = true", all_rows=True)
    assert only_deleted.json()["totalSize"] == len(archived)


def test_contact_roles_and_last_stage_change(fresh: Any, client_for: Any) -> None:
    sb = fresh(scale=0.02, seed=5)
    sf = client_for(sb, "salesforce")
    company = sb.company
    deal: Any = next(d for d in company.deals if d.state == LIVE and len(d.contacts) >= 2)
    opp_id = company.sf_id("deals", deal)
    fields = "Id, ContactId, Role, IsPrimary, IsDeleted, SystemModstamp"
    where = f"FROM OpportunityContactRole WHERE OpportunityId = '{opp_id}'"
    roles = soql(sf, f"SELECT {fields} {where}").json()["records"]
    contact_ids = [company.sf_id("contacts", company.contacts[c]) for c in deal.contacts]
    assert sorted(r["ContactId"] for r in roles) == sorted(contact_ids)
    assert [r["IsPrimary"] for r in roles].count(True) == 1 and all(r["Role"] for r in roles)
    opp = soql(sf, f"SELECT LastStageChangeDate FROM Opportunity WHERE Id = '{opp_id}'")
    assert opp.json()["records"][0]["LastStageChangeDate"] == sf_datetime(
        deal.history[-1] - deal.history[-1] % 1000
    )

    removed = deal.contacts[-1]
    with sb.state.lock:
        ts = company.take_contact_off_deal(deal, removed)
    live = soql(sf, f"SELECT {fields} {where}").json()["records"]
    every = soql(sf, f"SELECT {fields} {where}", all_rows=True).json()["records"]
    gone = company.sf_id("contacts", company.contacts[removed])
    assert gone not in {r["ContactId"] for r in live} and len(live) == len(roles) - 1
    (deleted,) = [r for r in every if r["IsDeleted"]]
    assert deleted["ContactId"] == gone
    assert deleted["SystemModstamp"] == sf_datetime(ts - ts % 1000)
    # Ids never shift when a contact is removed
    assert {r["Id"] for r in every} == {r["Id"] for r in roles}
