"""HubSpot CRM v3 over real HTTP: shapes, paging, properties, associations, search, auth."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from revtops_sandbox.company import LIVE, PIPELINES, iso_ms
from revtops_sandbox.server import SandboxServer

ISO_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def walk(client: httpx.Client, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """All results of a list endpoint, following paging.next.after; and the page count."""
    results: list[dict[str, Any]] = []
    pages = 0
    after = None
    while True:
        query = {**params, **({"after": after} if after else {})}
        r = client.get(path, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        results += body["results"]
        if "paging" not in body:
            return results, pages
        assert set(body["paging"]["next"]) == {"after", "link"}
        assert body["paging"]["next"]["link"].startswith(client.base_url.scheme + "://")
        after = body["paging"]["next"]["after"]


def test_list_walks_every_page_and_the_last_has_no_paging(
    sb: SandboxServer, hs: httpx.Client
) -> None:
    truth = sb.company.counts()
    for object_type in ("companies", "contacts", "deals", "meetings"):
        results, pages = walk(hs, f"/crm/v3/objects/{object_type}", limit=100)
        assert len(results) == truth[object_type]
        assert pages == -(-truth[object_type] // 100)
        ids = [int(r["id"]) for r in results]
        assert ids == sorted(set(ids))
        expected = {str(sb.company.hs_id(object_type, r)) for r in sb.company.live(object_type)}
        assert {r["id"] for r in results} == expected


def test_default_limit_is_ten_and_over_100_is_a_400(hs: httpx.Client) -> None:
    assert len(hs.get("/crm/v3/objects/deals").json()["results"]) == 10
    r = hs.get("/crm/v3/objects/deals", params={"limit": 101})
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert body["correlationId"] and "limit" in body["message"]
    assert hs.get("/crm/v3/objects/deals", params={"limit": 100}).status_code == 200


def test_property_values_are_strings_or_null(sb: SandboxServer, hs: httpx.Client) -> None:
    props = (
        "dealname,amount,dealstage,pipeline,closedate,hubspot_owner_id,"
        "hs_deal_stage_probability,hs_is_closed,hs_is_closed_won,no_such_property"
    )
    body = hs.get("/crm/v3/objects/deals", params={"limit": 100, "properties": props}).json()
    for obj in body["results"]:
        p = obj["properties"]
        assert "no_such_property" not in p  # unknown names are silently omitted
        for key in ("hs_object_id", "createdate", "hs_lastmodifieddate"):  # always returned
            assert key in p
        for value in p.values():
            assert value is None or isinstance(value, str)
        assert p["hs_object_id"] == obj["id"]
        assert p["createdate"] == obj["createdAt"] and p["hs_lastmodifieddate"] == obj["updatedAt"]
        assert p["hs_is_closed"] in ("true", "false")
        deal = sb.company.find("deals", obj["id"])
        assert deal is not None
        if deal.amount_cents >= 0:
            assert p["amount"] == f"{deal.amount_cents / 100:.2f}"
        else:
            assert p["amount"] is None
        assert p["dealstage"] == sb.company.stage(deal).hs_id
        assert p["closedate"].endswith("T00:00:00.000Z")
        assert obj["createdAt"] == iso_ms(deal.created_ms)


def test_default_properties_when_none_requested(hs: httpx.Client) -> None:
    contact = hs.get("/crm/v3/objects/contacts", params={"limit": 1}).json()["results"][0]
    assert set(contact["properties"]) == {
        "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname",
    }  # fmt: skip
    assert contact["archived"] is False and "archivedAt" not in contact
    assert "associations" not in contact
    meeting = hs.get("/crm/v3/objects/meetings", params={"limit": 1}).json()["results"][0]
    assert set(meeting["properties"]) == {"hs_createdate", "hs_lastmodifieddate", "hs_object_id"}


def test_repeated_and_comma_separated_parameters_are_equivalent(hs: httpx.Client) -> None:
    a = hs.get(
        "/crm/v3/objects/deals",
        params=[("properties", "dealname,amount"), ("associations", "companies,contacts")],
    ).json()
    b = hs.get(
        "/crm/v3/objects/deals",
        params=[
            ("properties", "dealname"),
            ("properties", "amount"),
            ("associations", "companies"),
            ("associations", "contacts"),
        ],
    ).json()
    assert a["results"] == b["results"]


def test_associations_match_the_ground_truth(sb: SandboxServer, hs: httpx.Client) -> None:
    co = sb.company
    deals, _ = walk(hs, "/crm/v3/objects/deals", limit=100, associations="companies,contacts")
    for obj in deals:
        deal = co.find("deals", obj["id"])
        assert deal is not None
        companies = obj["associations"]["companies"]["results"]
        assert companies == [
            {"id": str(co.hs_id("companies", co.accounts[deal.account])), "type": "deal_to_company"}
        ]
        contacts = obj["associations"].get("contacts", {"results": []})["results"]
        assert [c["id"] for c in contacts] == [
            str(co.hs_id("contacts", co.contacts[i])) for i in deal.contacts
        ]
        assert all(c["type"] == "deal_to_contact" for c in contacts)
    # the reverse direction, and "key only present when there are some"
    companies, _ = walk(hs, "/crm/v3/objects/companies", limit=100, associations="deals,contacts")
    with_deals = [c for c in companies if "deals" in c.get("associations", {})]
    without = [c for c in companies if "deals" not in c.get("associations", {})]
    assert with_deals and without
    total = sum(len(c["associations"]["deals"]["results"]) for c in with_deals)
    assert total == len(deals)
    assert with_deals[0]["associations"]["deals"]["results"][0]["type"] == "company_to_deal"
    emails = hs.get("/crm/v3/objects/emails", params={"associations": "contacts"}).json()
    types = {r["type"] for e in emails["results"] for r in e["associations"]["contacts"]["results"]}
    assert types == {"email_to_contact"}


def test_engagement_properties(sb: SandboxServer, hs: httpx.Client) -> None:
    meeting = hs.get(
        "/crm/v3/objects/meetings",
        params={"properties": "hs_meeting_title,hs_meeting_start_time,hs_meeting_end_time,"
                "hs_timestamp,hubspot_owner_id,hs_meeting_body"},
    ).json()["results"][0]  # fmt: skip
    p = meeting["properties"]
    assert p["hs_meeting_start_time"] == p["hs_timestamp"] < p["hs_meeting_end_time"]
    assert p["hs_meeting_title"] and p["hs_meeting_body"]
    owner_ids = {str(o.hs_id) for o in sb.company.owners}
    assert p["hubspot_owner_id"] in owner_ids
    call = hs.get(
        "/crm/v3/objects/calls", params={"properties": "hs_call_duration,hs_call_direction"}
    ).json()["results"][0]["properties"]
    assert call["hs_call_duration"].isdigit() and call["hs_call_direction"] in (
        "OUTBOUND",
        "INBOUND",
    )
    email = hs.get(
        "/crm/v3/objects/emails",
        params={"properties": "hs_email_direction,hs_email_from_email,hs_email_to_email"},
    ).json()["results"][0]["properties"]
    assert email["hs_email_direction"] in ("EMAIL", "INCOMING_EMAIL")
    assert "@" in email["hs_email_from_email"]
    task = hs.get(
        "/crm/v3/objects/tasks", params={"properties": "hs_task_status,hs_task_subject"}
    ).json()["results"][0]["properties"]
    assert task["hs_task_status"] in (
        "NOT_STARTED", "IN_PROGRESS", "WAITING", "DEFERRED", "COMPLETED",
    )  # fmt: skip
    note = hs.get("/crm/v3/objects/notes", params={"properties": "hs_note_body"}).json()
    assert note["results"][0]["properties"]["hs_note_body"].startswith("<p>")


def test_single_object_and_unknown_ids(sb: SandboxServer, hs: httpx.Client) -> None:
    deal = sb.company.deals[3]
    hs_id = sb.company.hs_id("deals", deal)
    r = hs.get(f"/crm/v3/objects/deals/{hs_id}", params={"properties": "dealname"})
    assert r.status_code == 200 and r.json()["id"] == str(hs_id)
    assert hs.get("/crm/v3/objects/deals/1").status_code == 404
    assert hs.get("/crm/v3/objects/widgets").status_code == 400


# -- search ----------------------------------------------------------------------------------


def search(client: httpx.Client, object_type: str, **body: Any) -> httpx.Response:
    return client.post(f"/crm/v3/objects/{object_type}/search", json=body)


def test_search_filters_sort_and_pages(sb: SandboxServer, hs: httpx.Client) -> None:
    co = sb.company
    threshold_ms = sorted(d.updated_ms for d in co.deals)[len(co.deals) // 2]
    expected = sorted(
        (
            d
            for d in co.deals
            if d.state == LIVE and d.updated_ms >= threshold_ms and d.pipeline == 0
        ),
        key=lambda d: (d.updated_ms, d.idx),
    )
    body: dict[str, Any] = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                     "value": str(threshold_ms)},
                    {"propertyName": "pipeline", "operator": "EQ", "value": "default"},
                ]
            }
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["dealname", "hs_lastmodifieddate"],
        "limit": 50,
    }  # fmt: skip
    got: list[dict[str, Any]] = []
    while True:
        r = search(hs, "deals", **body)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == len(expected)
        assert "associations" not in page["results"][0]
        got += page["results"]
        if "paging" not in page:
            break
        assert set(page["paging"]["next"]) == {"after"}  # no link on search pages
        body["after"] = page["paging"]["next"]["after"]
    assert [g["id"] for g in got] == [str(co.hs_id("deals", d)) for d in expected]
    stamps = [g["properties"]["hs_lastmodifieddate"] for g in got]
    assert stamps == sorted(stamps)


def test_search_operators(sb: SandboxServer, hs: httpx.Client) -> None:
    co = sb.company
    live = [d for d in co.deals if d.state == LIVE]

    def total(*filters: dict[str, Any], groups: list[list[dict[str, Any]]] | None = None) -> int:
        fg = [{"filters": list(f)} for f in groups] if groups else [{"filters": list(filters)}]
        r = search(hs, "deals", filterGroups=fg, limit=1)
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    def count(pred: Callable[[Any], bool]) -> int:
        return sum(1 for d in live if pred(d))

    assert total({"propertyName": "amount", "operator": "GT", "value": "50000"}) == count(
        lambda d: d.amount_cents > 5_000_000
    )
    assert total(
        {"propertyName": "amount", "operator": "BETWEEN", "value": "10000", "highValue": "20000"}
    ) == count(lambda d: 1_000_000 <= d.amount_cents <= 2_000_000)
    assert total({"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"}) == count(
        lambda d: d.amount_cents < 0
    )
    assert total({"propertyName": "amount", "operator": "HAS_PROPERTY"}) == count(
        lambda d: d.amount_cents >= 0
    )
    assert total(
        {"propertyName": "dealstage", "operator": "IN", "values": ["closedwon", "closedlost"]}
    ) == count(lambda d: d.pipeline == 0 and co.stage(d).is_closed)
    assert total({"propertyName": "dealstage", "operator": "NEQ", "value": "closedwon"}) == count(
        lambda d: co.stage(d).hs_id != "closedwon"
    )
    # OR of groups
    either = total(
        groups=[
            [{"propertyName": "pipeline", "operator": "EQ", "value": "default"}],
            [{"propertyName": "hs_is_closed_won", "operator": "EQ", "value": "true"}],
        ]
    )
    assert either == count(lambda d: d.pipeline == 0 or co.stage(d).is_won)
    day = co.deals[0].close_day * 86_400_000
    assert total({"propertyName": "closedate", "operator": "LT", "value": str(day)}) == count(
        lambda d: d.close_day * 86_400_000 < day
    )


def test_search_never_returns_archived_and_sorts_descending(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    changed = sb.mutate(modified_pct=0, archived_pct=10, object_types=("contacts",))
    archived = set(changed.archived["contacts"])
    hs = client_for(sb, "hubspot")
    page = search(
        hs, "contacts", sorts=[{"propertyName": "createdate", "direction": "DESCENDING"}],
        limit=200, properties=["email"],
    ).json()  # fmt: skip
    assert page["total"] == sb.company.counts()["contacts"]
    assert not archived & {r["id"] for r in page["results"]}
    created = [r["properties"]["createdate"] for r in page["results"]]
    assert created == sorted(created, reverse=True)


def test_search_stops_at_ten_thousand_and_validates_like_hubspot(hs: httpx.Client) -> None:
    r = search(hs, "contacts", limit=100, after="9950")
    assert r.status_code == 400
    assert r.json()["category"] == "VALIDATION_ERROR" and "10000" in r.json()["message"]
    assert search(hs, "contacts", limit=100, after="9900").status_code == 200
    assert search(hs, "contacts", limit=201).status_code == 400
    many = [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 7
    assert search(hs, "contacts", filterGroups=[{"filters": many}]).status_code == 400
    groups = [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6
    assert search(hs, "contacts", filterGroups=groups).status_code == 400
    nineteen = [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 4}] * 5
    assert search(hs, "contacts", filterGroups=nineteen).status_code == 400
    huge = {"query": "x" * 3000}
    assert search(hs, "contacts", **huge).status_code == 400
    bad_op = [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "a"}]}]
    assert search(hs, "contacts", filterGroups=bad_op).status_code == 400
    two_sorts = [{"propertyName": "email"}, {"propertyName": "createdate"}]
    assert search(hs, "contacts", sorts=two_sorts).status_code == 400


def test_search_query_text(sb: SandboxServer, hs: httpx.Client) -> None:
    account = sb.company.accounts[5]
    r = search(hs, "companies", query=account.domain, properties=["domain"])
    assert [x["properties"]["domain"] for x in r.json()["results"]] == [account.domain]


# -- owners, pipelines, auth --------------------------------------------------------------------


def test_owners(sb: SandboxServer, hs: httpx.Client) -> None:
    active = [o for o in sb.company.owners if o.active]
    for path in ("/crm/v3/owners/", "/crm/v3/owners"):
        owners, pages = walk(hs, path, limit=20)
        assert len(owners) == len(active) and pages == -(-len(active) // 20)
    first = owners[0]
    assert set(first) >= {
        "id", "email", "type", "firstName", "lastName", "userId", "userIdIncludingInactive",
        "createdAt", "updatedAt", "archived", "teams",
    }  # fmt: skip
    assert isinstance(first["id"], str) and isinstance(first["userId"], int)
    assert first["type"] == "PERSON" and first["archived"] is False
    by_email = hs.get("/crm/v3/owners/", params={"email": active[-1].email}).json()["results"]
    assert [o["id"] for o in by_email] == [str(active[-1].hs_id)]
    gone = hs.get("/crm/v3/owners/", params={"archived": "true"}).json()["results"]
    assert len(gone) == len(sb.company.owners) - len(active)
    assert all(o["archived"] for o in gone)


def test_pipelines_have_string_metadata(hs: httpx.Client) -> None:
    body = hs.get("/crm/v3/pipelines/deals").json()
    assert "paging" not in body
    assert [p["label"] for p in body["results"]] == [p.label for p in PIPELINES]
    stages = body["results"][0]["stages"]
    assert [s["displayOrder"] for s in stages] == list(range(len(stages)))
    won = next(s for s in stages if s["id"] == "closedwon")
    assert won["metadata"] == {"isClosed": "true", "probability": "1.0"}
    first = stages[0]
    assert first["metadata"]["isClosed"] == "false" and first["archived"] is False
    assert isinstance(first["metadata"]["probability"], str)
    renewals = body["results"][1]
    assert hs.get(f"/crm/v3/pipelines/deals/{renewals['id']}").json()["label"] == "Renewals"


def test_missing_wrong_and_expired_tokens_get_401(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    no_auth = httpx.get(sb.hubspot_base_url + "/crm/v3/objects/deals")
    assert no_auth.status_code == 401
    body = no_auth.json()
    assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"]
    assert "x-hubspot-ratelimit-max" in no_auth.headers
    bad = client_for(sb, "hubspot", token="sbx-wrong")
    assert bad.get("/crm/v3/objects/deals").json()["category"] == "INVALID_AUTHENTICATION"
    old = sb.token
    sb.expire_token("hubspot")
    r = client_for(sb, "hubspot", token=old).get("/crm/v3/objects/deals")
    assert r.status_code == 401 and r.json()["category"] == "EXPIRED_AUTHENTICATION"
    new = sb.rotate_token("hubspot")
    assert new != old
    assert client_for(sb, "hubspot", token=new).get("/crm/v3/objects/deals").status_code == 200
    assert sb.stats.event("hubspot", "unauthorized") == 3


def test_rate_limit_headers_on_every_response(hs: httpx.Client) -> None:
    r = hs.get("/crm/v3/objects/companies")
    h = r.headers
    assert h["x-hubspot-ratelimit-interval-milliseconds"] == "10000"
    assert h["x-hubspot-ratelimit-max"] == "190"
    assert 0 <= int(h["x-hubspot-ratelimit-remaining"]) < 190
    for name in ("secondly", "secondly-remaining", "daily", "daily-remaining"):
        assert h[f"x-hubspot-ratelimit-{name}"].isdigit()


def test_stats_count_requests_per_endpoint(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    hs = client_for(sb, "hubspot")
    walk(hs, "/crm/v3/objects/deals", limit=100)
    search(hs, "deals", limit=1)
    hs.get("/crm/v3/objects/deals", params={"limit": 500})
    pages = -(-sb.company.counts()["deals"] // 100)
    assert sb.stats.count("hubspot GET /crm/v3/objects/deals") == pages + 1
    assert sb.stats.count("hubspot POST /crm/v3/objects/deals/search") == 1
    assert sb.stats.responses[("hubspot GET /crm/v3/objects/deals", 400)] == 1
    assert sb.stats.status_count("hubspot", 200) == pages + 1


def test_v4_association_batch_read(sb: SandboxServer, hs: httpx.Client) -> None:
    co = sb.company
    deals = co.deals[:30]
    ids = [str(co.hs_id("deals", d)) for d in deals]
    r = hs.post(
        "/crm/v4/associations/deals/contacts/batch/read",
        json={"inputs": [{"id": i} for i in [*ids, "1"]]},
    )
    assert r.status_code == 207  # "1" is no deal: it lands in errors
    body = r.json()
    assert body["status"] == "COMPLETE" and body["numErrors"] >= 1
    assert {"startedAt", "completedAt"} <= set(body)
    got = {x["from"]["id"]: [t["toObjectId"] for t in x["to"]] for x in body["results"]}
    expected = {
        str(co.hs_id("deals", d)): [co.hs_id("contacts", co.contacts[i]) for i in d.contacts]
        for d in deals
        if d.contacts
    }
    assert got == expected
    first = body["results"][0]["to"][0]
    assert isinstance(first["toObjectId"], int)
    assert first["associationTypes"] == [
        {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}
    ]
    assert {e["context"]["fromObjectId"][0] for e in body["errors"]} >= {"1"}
    # singular names work too, and a batch where every input has links is a plain 200
    with_company = [str(co.hs_id("contacts", c)) for c in co.contacts[:5]]
    ok = hs.post(
        "/crm/v4/associations/contact/company/batch/read",
        json={"inputs": [{"id": i} for i in with_company]},
    )
    assert ok.status_code == 200 and "errors" not in ok.json()
    types = ok.json()["results"][0]["to"][0]["associationTypes"]
    assert [t["typeId"] for t in types] == [1, 279]
    too_many = hs.post(
        "/crm/v4/associations/deals/contacts/batch/read",
        json={"inputs": [{"id": str(i)} for i in range(1001)]},
    )
    assert too_many.status_code == 400


def test_properties_with_history_give_every_stage_change_newest_first(
    sb: SandboxServer, hs: httpx.Client
) -> None:
    assert (
        hs.get(
            "/crm/v3/objects/deals", params={"limit": 51, "propertiesWithHistory": "dealstage"}
        ).status_code
        == 400
    )  # HubSpot's limit with history is 50
    results, pages = walk(
        hs, "/crm/v3/objects/deals", limit=50, propertiesWithHistory="dealstage,dealname,nope"
    )
    assert pages == -(-sb.company.counts()["deals"] // 50)
    for record in results:
        deal: Any = sb.company.find("deals", record["id"])
        stages = PIPELINES[deal.pipeline].stages
        history = record["propertiesWithHistory"]
        assert set(history) == {"dealstage", "dealname"}  # unknown names are ignored
        versions = history["dealstage"]
        expected = [
            (stages[deal.history[k]].hs_id, iso_ms(deal.history[k + 1]))
            for k in range(0, len(deal.history), 2)
        ]
        assert [(v["value"], v["timestamp"]) for v in versions] == expected[::-1]
        assert all(v["sourceType"] and isinstance(v["updatedByUserId"], int) for v in versions)


def test_batch_read_returns_records_with_history_and_207_for_missing_ids(
    sb: SandboxServer, hs: httpx.Client
) -> None:
    live = [sb.company.hs_id("deals", d) for d in sb.company.live("deals")]
    body = {
        "inputs": [{"id": str(i)} for i in live[:3]] + [{"id": "1"}],
        "properties": ["dealstage", "amount"],
        "propertiesWithHistory": ["dealstage"],
    }
    r = hs.post("/crm/v3/objects/deals/batch/read", json=body)
    assert r.status_code == 207
    answer = r.json()
    assert answer["status"] == "COMPLETE" and answer["errors"][0]["context"]["ids"] == ["1"]
    assert [x["id"] for x in answer["results"]] == [str(i) for i in live[:3]]
    for record in answer["results"]:
        deal: Any = sb.company.find("deals", record["id"])
        assert record["properties"]["dealstage"] == sb.company.stage(deal).hs_id
        assert len(record["propertiesWithHistory"]["dealstage"]) == len(deal.history) // 2
    too_many = {**body, "inputs": [{"id": str(i)} for i in live[:51]]}
    assert hs.post("/crm/v3/objects/deals/batch/read", json=too_many).status_code == 400
    plain = {"inputs": [{"id": str(i)} for i in live[:3]], "properties": ["dealname"]}
    r = hs.post("/crm/v3/objects/deals/batch/read", json=plain)
    assert r.status_code == 200 and "propertiesWithHistory" not in r.json()["results"][0]


def test_pipelines_list_archived_stages(hs: httpx.Client) -> None:
    pipelines = hs.get("/crm/v3/pipelines/deals").json()["results"]
    archived = [
        (p["id"], s["label"]) for p in pipelines for s in p["stages"] if s["archived"] is True
    ]
    assert archived == [("default", "Legal Review")]
    stage = next(s for p in pipelines for s in p["stages"] if s["archived"])
    assert stage["archivedAt"] and stage["displayOrder"] == len(PIPELINES[0].stages)
