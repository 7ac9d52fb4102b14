"""Changes between syncs: exact changed ids, reflected by both APIs."""

from __future__ import annotations

from typing import Any

import httpx

from revtops_kernel.sandbox.company import ARCHIVED, LIVE, PURGED


def search_ids(hs: httpx.Client, object_type: str, prop: str, since_ms: int) -> list[str]:
    """Ids modified at or after ``since_ms``, paging the search API."""
    body: dict[str, Any] = {
        "filterGroups": [
            {"filters": [{"propertyName": prop, "operator": "GTE", "value": str(since_ms)}]}
        ],
        "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
        "limit": 200,
    }
    ids: list[str] = []
    while True:
        r = hs.post(f"/crm/v3/objects/{object_type}/search", json=body)
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [x["id"] for x in page["results"]]
        if "paging" not in page:
            return ids
        body["after"] = page["paging"]["next"]["after"]


def test_mutate_reports_exactly_what_changed(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    clock_before = sb.company.clock_ms
    live_before = sb.company.counts()
    changed = sb.mutate(modified_pct=10, archived_pct=2, deleted_pct=1, seed=5)
    assert changed.started_ms > clock_before and sb.company.clock_ms > changed.finished_ms
    hs = client_for(sb, "hubspot")
    for object_type, prop in (("deals", "hs_lastmodifieddate"), ("contacts", "lastmodifieddate")):
        modified = changed.modified[object_type]
        archived = changed.archived.get(object_type, [])
        deleted = changed.deleted.get(object_type, [])
        assert len(modified) == round(live_before[object_type] * 0.10)
        assert not set(modified) & set(archived) and not set(archived) & set(deleted)
        # an incremental search from the mutation's start finds the modified ones, no others
        assert sorted(search_ids(hs, object_type, prop, changed.started_ms), key=int) == modified
        listed = hs.get(
            f"/crm/v3/objects/{object_type}", params={"archived": "true", "limit": 100}
        ).json()
        assert sorted((o["id"] for o in listed["results"]), key=int) == archived
        assert all(o["archived"] is True and o["archivedAt"] for o in listed["results"])
        for ident in deleted:
            assert sb.company.find(object_type, ident).state == PURGED  # type: ignore[union-attr]
            assert hs.get(f"/crm/v3/objects/{object_type}/{ident}").status_code == 404
        assert sb.company.counts()[object_type] == live_before[object_type] - len(archived) - len(
            deleted
        )


def test_modified_records_have_new_values_and_times(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    hs = client_for(sb, "hubspot")
    props = "dealname,amount,dealstage,closedate,hs_lastmodifieddate"

    def snapshot(ids: list[str]) -> dict[str, dict[str, Any]]:
        return {
            i: hs.get(f"/crm/v3/objects/deals/{i}", params={"properties": props}).json()[
                "properties"
            ]
            for i in ids
        }

    ids = [str(sb.company.hs_id("deals", d)) for d in sb.company.deals]
    before = snapshot(ids)
    changed = sb.mutate(modified_pct=20, seed=9, object_types=("deals",))
    after = snapshot(changed.modified["deals"])
    for ident, now in after.items():
        old = before[ident]
        assert now["hs_lastmodifieddate"] > old["hs_lastmodifieddate"]
        assert any(now[k] != old[k] for k in ("amount", "dealstage", "closedate"))
    untouched = set(ids) - set(changed.modified["deals"])
    assert snapshot(sorted(untouched)[:20]) == {i: before[i] for i in sorted(untouched)[:20]}


def test_same_seed_same_mutation(fresh: Any) -> None:
    # The same records change in the same way; the times are the wall clock's, as in a real API.
    a, b = fresh(), fresh()
    first = a.mutate(modified_pct=3, archived_pct=1, seed=11).as_dict()
    second = b.mutate(modified_pct=3, archived_pct=1, seed=11).as_dict()
    for outcome in (first, second):
        del outcome["started_ms"], outcome["finished_ms"]
    assert first == second


def test_edits_are_stamped_no_earlier_than_now(fresh: Any) -> None:
    import time

    before = int(time.time() * 1000)
    changed = fresh().mutate(modified_pct=3, seed=1)
    assert changed.started_ms >= before


def test_bump_same_timestamp_straddles_a_page(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    changed = sb.bump_same_timestamp("contacts", n=300)
    ids = changed.modified["contacts"]
    assert len(ids) == 300 and changed.started_ms == changed.finished_ms
    stamps = {sb.company.find("contacts", i).updated_ms for i in ids}  # type: ignore[union-attr]
    assert stamps == {changed.started_ms}
    hs = client_for(sb, "hubspot")
    # two pages of 200 share one timestamp: a connector paging with GT on the last value it
    # saw would lose the rest of the group
    first = hs.post(
        "/crm/v3/objects/contacts/search",
        json={
            "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                           "value": str(changed.started_ms)}]}],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "limit": 200, "properties": ["lastmodifieddate"],
        },
    ).json()  # fmt: skip
    assert first["total"] == 300 and first["paging"]["next"]["after"] == "200"
    last_seen = first["results"][-1]["properties"]["lastmodifieddate"]
    assert {r["properties"]["lastmodifieddate"] for r in first["results"]} == {last_seen}
    sf = client_for(sb, "salesforce")
    q = f"SELECT COUNT() FROM Contact WHERE SystemModstamp = {last_seen[:19]}Z"  # 1 s precision
    assert sf.get("/services/data/v59.0/query", params={"q": q}).json()["totalSize"] >= 300


def test_mass_bump_runs_past_the_search_window(fresh: Any, client_for: Any) -> None:
    sb = fresh(scale=0.5)  # ~10,500 contacts
    changed = sb.bump("contacts", n=30_000)
    live = sb.company.counts()["contacts"]
    assert len(changed.modified["contacts"]) == live > 10_000
    hs = client_for(sb, "hubspot")
    body: dict[str, Any] = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                          "value": str(changed.started_ms)}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "limit": 200, "after": "9800",
    }  # fmt: skip
    page = hs.post("/crm/v3/objects/contacts/search", json=body).json()
    assert page["total"] == live and page["paging"]["next"]["after"] == "10000"
    body["after"] = "10000"
    r = hs.post("/crm/v3/objects/contacts/search", json=body)
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR"


def test_archived_records_leave_salesforce_query_but_not_query_all(
    fresh: Any, client_for: Any
) -> None:
    sb = fresh()
    changed = sb.mutate(modified_pct=0, archived_pct=5, object_types=("deals", "meetings"))
    sf = client_for(sb, "salesforce")
    for object_type, sobject in (("deals", "Opportunity"), ("meetings", "Event")):
        ids = {sb.company.salesforce_id(object_type, i) for i in changed.archived[object_type]}
        q = f"SELECT Id FROM {sobject} WHERE IsDeleted = true"
        got = sf.get("/services/data/v59.0/queryAll", params={"q": q}).json()["records"]
        assert {r["Id"] for r in got} == ids
        assert sf.get("/services/data/v59.0/query", params={"q": q}).json()["totalSize"] == 0
    assert all(sb.company.find("deals", i).state == ARCHIVED for i in changed.archived["deals"])  # type: ignore[union-attr]
    assert sum(1 for d in sb.company.deals if d.state == LIVE) == sb.company.counts()["deals"]
