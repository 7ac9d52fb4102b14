"""Changes between syncs: exact changed ids, reflected by both APIs."""

from __future__ import annotations

from typing import Any

import httpx

from revtops_sandbox.company import ARCHIVED, LIVE, PURGED


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


# -- Slack and Google Calendar -------------------------------------------------------------------


def test_late_replies_land_in_old_threads_that_history_does_not_show(fresh: Any) -> None:
    sb = fresh()
    ws = sb.company.slack
    with httpx.Client(
        base_url=sb.slack_base_url, timeout=30, headers={"Authorization": f"Bearer {sb.token}"}
    ) as sl:
        newest = {c.id: c.messages[-1].ts for c in ws.channels if c.is_member and c.messages}
        changes = sb.mutate_slack(new_messages=6, late_replies=4, seed=2)
        assert len(changes.slack_new) == 6 and len(changes.slack_late_replies) == 4
        new_by_channel: dict[str, set[str]] = {}
        for channel_id, ts in changes.slack_new:
            new_by_channel.setdefault(channel_id, set()).add(ts)
        for channel_id, since in newest.items():
            page = sl.get(
                "/conversations.history",
                params={"channel": channel_id, "oldest": since, "limit": 999},
            ).json()
            assert {m["ts"] for m in page["messages"]} == new_by_channel.get(channel_id, set())
        for channel_id, thread_ts, ts in changes.slack_late_replies:
            assert float(thread_ts) < float(ts) - 7 * 86_400
            thread = sl.get(
                "/conversations.replies", params={"channel": channel_id, "ts": thread_ts}
            ).json()["messages"]
            assert thread[0]["ts"] == thread_ts and thread[-1]["ts"] >= ts
            assert ts in {m["ts"] for m in thread}
            assert thread[0]["latest_reply"] == thread[-1]["ts"]


def test_activity_data_does_not_depend_on_when_it_is_first_built(fresh: Any) -> None:
    from revtops_sandbox.generate import generate_company
    from revtops_sandbox.mutate import mutate

    early = generate_company(0.05, 3)
    early_view = (
        [(c.name, len(c.messages)) for c in early.slack.channels],
        [(e.id, e.start_ms, len(e.attendees)) for e in early.calendars.events],
    )
    late = generate_company(0.05, 3)
    mutate(late, modified_pct=30, archived_pct=5, seed=1)
    late_view = (
        [(c.name, len(c.messages)) for c in late.slack.channels],
        [(e.id, e.start_ms, len(e.attendees)) for e in late.calendars.events],
    )
    assert early_view == late_view


def test_admin_mutates_slack_and_calendar_and_expires_sync_tokens(fresh: Any) -> None:
    sb = fresh()
    with httpx.Client(base_url=sb.url + "/_sandbox") as admin:
        slack = admin.post("/mutate/slack", json={"new_messages": 2, "late_replies": 1}).json()
        assert len(slack["slack_new"]) == 2 and len(slack["slack_late_replies"]) == 1
        cal = admin.post("/mutate/calendar", json={"moved": 1, "cancelled": 1, "new": 2}).json()
        assert len(cal["events_moved"]) == 1 and len(cal["events_new"]) == 2
        epoch = sb.company.calendars.sync_epoch
        assert admin.post("/calendar/expire-sync-tokens").json() == {"ok": True}
        assert sb.company.calendars.sync_epoch == epoch + 1
        assert admin.get("/slack/posts").json() == {"posts": []}
        info = admin.get("/info").json()
        assert info["slack_base_url"] == sb.slack_base_url
        assert info["nango_secret_key"] == sb.nango_secret_key
