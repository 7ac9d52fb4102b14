"""Faults on demand: rate limits, 5xx, dropped connections, expiring tokens, bad records."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from revtops_sandbox.faults import RollingWindow, malformed_kind


def test_hubspot_ten_second_limit_answers_429_like_hubspot(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    sb.faults.hubspot.rate_limits = True
    sb.faults.hubspot.ten_second_limit = 20
    hs = client_for(sb, "hubspot")
    statuses = [hs.get("/crm/v3/objects/companies", params={"limit": 1}) for _ in range(30)]
    ok = [r for r in statuses if r.status_code == 200]
    limited = [r for r in statuses if r.status_code == 429]
    assert len(ok) == 20 and len(limited) == 10
    body = limited[0].json()
    assert body["status"] == "error" and body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert re.fullmatch(r"[0-9a-f-]{36}", body["correlationId"])
    assert limited[0].headers["x-hubspot-ratelimit-remaining"] == "0"
    assert limited[0].headers["x-hubspot-ratelimit-max"] == "20"
    assert int(ok[0].headers["x-hubspot-ratelimit-remaining"]) == 19
    assert sb.stats.rate_limited("hubspot") == 10
    # Retry-After on some 429s only (default share 0.5): connectors must cope with both
    with_retry = [r for r in limited if "retry-after" in r.headers]
    assert 0 < len(with_retry) < len(limited)
    assert all(1 <= int(r.headers["retry-after"]) <= 10 for r in with_retry)
    assert sb.stats.event("hubspot", "retry_after") == len(with_retry)


def test_hubspot_search_is_limited_per_second(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    sb.faults.hubspot.rate_limits = True
    sb.faults.hubspot.retry_after_share = 1.0
    hs = client_for(sb, "hubspot")
    answers = [hs.post("/crm/v3/objects/deals/search", json={"limit": 1}) for _ in range(8)]
    codes = [r.status_code for r in answers]
    assert codes.count(429) >= 2 and codes[:5] == [200] * 5
    limited = next(r for r in answers if r.status_code == 429)
    assert limited.json()["policyName"] == "SECONDLY"
    assert limited.headers["retry-after"] == "1"
    # lists are not limited by the search policy
    assert hs.get("/crm/v3/objects/deals").status_code == 200


def test_rate_limits_off_by_default(sb: Any, hs: httpx.Client) -> None:
    assert all(hs.get("/crm/v3/owners").status_code == 200 for _ in range(25))


def test_salesforce_daily_limit_is_403_request_limit_exceeded(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    sb.faults.salesforce.rate_limits = True
    sb.faults.salesforce.daily_limit = 5
    sf = client_for(sb, "salesforce")
    answers = [
        sf.get("/services/data/v59.0/query", params={"q": "SELECT Id FROM User"}) for _ in range(7)
    ]
    assert [r.status_code for r in answers] == [200] * 5 + [403] * 2
    assert answers[-1].json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert answers[4].headers["sforce-limit-info"] == "api-usage=5/5"
    assert sb.stats.rate_limited("salesforce") == 2


def test_dropped_connections_reach_the_client_as_protocol_errors(
    fresh: Any, client_for: Any
) -> None:
    sb = fresh()
    sb.faults.hubspot.drop_rate = 1.0
    hs = client_for(sb, "hubspot")
    with pytest.raises(httpx.RemoteProtocolError):
        hs.get("/crm/v3/objects/deals")
    sb.faults.hubspot.drop_rate = 0.5
    outcomes = []
    for _ in range(40):
        try:
            outcomes.append(hs.get("/crm/v3/objects/deals", params={"limit": 1}).status_code)
        except httpx.RemoteProtocolError:
            outcomes.append("dropped")
    assert 5 < outcomes.count("dropped") < 35 and outcomes.count(200) == 40 - outcomes.count(
        "dropped"
    )
    assert sb.stats.event("hubspot", "dropped") == 1 + outcomes.count("dropped")
    # Salesforce is unaffected by HubSpot's faults
    sf = client_for(sb, "salesforce")
    assert sf.get("/services/data/v59.0/query", params={"q": "SELECT Id FROM User"}).is_success


def test_transient_server_errors(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    sb.faults.salesforce.error_rate = 1.0
    sb.faults.salesforce.error_statuses = (503,)
    sf = client_for(sb, "salesforce")
    r = sf.get("/services/data/v59.0/query", params={"q": "SELECT Id FROM User"})
    assert r.status_code == 503
    assert r.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    sb.faults.hubspot.error_rate = 0.3
    sb.faults.hubspot.error_statuses = (500, 502)
    hs = client_for(sb, "hubspot")
    codes = [hs.get("/crm/v3/objects/deals", params={"limit": 1}).status_code for _ in range(60)]
    assert set(codes) <= {200, 500, 502} and 5 < codes.count(200) < 55
    assert codes.count(500) + codes.count(502) == sb.stats.event("hubspot", "injected_error")
    proxy = next(
        r for r in (hs.get("/crm/v3/objects/deals") for _ in range(200)) if r.status_code == 502
    )
    assert proxy.headers["content-type"].startswith("text/html")  # from the edge, not JSON


def test_tokens_expire_after_n_calls_and_can_be_renewed(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    sb.faults.hubspot.token_ttl_calls = 3
    hs = client_for(sb, "hubspot")
    codes = [hs.get("/crm/v3/objects/deals", params={"limit": 1}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 401, 401]
    refreshed = httpx.post(
        sb.hubspot_base_url + "/oauth/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": "r", "client_id": "c"},
    ).json()
    assert refreshed["expires_in"] == 1800 and refreshed["token_type"] == "bearer"
    fresh_client = client_for(sb, "hubspot", token=refreshed["access_token"])
    assert fresh_client.get("/crm/v3/objects/deals").status_code == 200
    assert hs.get("/crm/v3/objects/deals").json()["category"] == "EXPIRED_AUTHENTICATION"


def test_malformed_records_follow_the_ground_truth(fresh: Any, client_for: Any) -> None:
    sb = fresh()
    sb.faults.hubspot.malformed_rate = 0.05
    sb.faults.salesforce.malformed_rate = 0.05
    truth = sb.malformed("hubspot")["deals"]
    assert 5 < len(truth) < 60
    assert truth == sb.malformed("hubspot")["deals"]  # deterministic
    hs = client_for(sb, "hubspot")
    seen: dict[str, str] = {}
    after = None
    while True:
        params: dict[str, Any] = {
            "limit": 100,
            "properties": "amount,closedate",
            "associations": "companies",
            **({"after": after} if after else {}),
        }
        body = hs.get("/crm/v3/objects/deals", params=params).json()
        for obj in body["results"]:
            p = obj["properties"]
            if obj["id"] is None:
                seen[f"missing:{p['createdate']}"] = "missing_id"
            elif p["amount"] is not None and not re.fullmatch(r"\d+\.\d\d", p["amount"]):
                seen[obj["id"]] = "bad_amount"
            elif not re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", p["closedate"] or "2000-01-01T0Z"):
                seen[obj["id"]] = "bad_date"
            elif not sb.company.find(
                "companies", obj["associations"]["companies"]["results"][0]["id"]
            ):
                seen[obj["id"]] = "dangling_association"
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
    by_kind = sorted(truth.values())
    assert sorted(seen.values()) == by_kind
    assert {k: v for k, v in seen.items() if not k.startswith("missing:")} == {
        k: v for k, v in truth.items() if v != "missing_id"
    }
    # Salesforce corrupts the same records
    sf_truth = sb.malformed("salesforce")["deals"]
    assert sorted(sf_truth.values()) == by_kind
    sf = client_for(sb, "salesforce")
    bad_amounts = [
        r
        for r in sf.get(
            "/services/data/v59.0/query", params={"q": "SELECT Id, Amount FROM Opportunity"}
        ).json()["records"]
        if isinstance(r["Amount"], str)
    ]
    assert {r["Id"] for r in bad_amounts} == {
        i for i, kind in sf_truth.items() if kind == "bad_amount"
    }


def test_malformed_draw_is_pure() -> None:
    kinds = [malformed_kind(3, "deals", i, 0.1) for i in range(5000)]
    assert kinds == [malformed_kind(3, "deals", i, 0.1) for i in range(5000)]
    share = sum(k is not None for k in kinds) / len(kinds)
    assert 0.08 < share < 0.12
    assert malformed_kind(3, "deals", 1, 0.0) is None


def test_rolling_window_forgets_old_events() -> None:
    now = [100.0]
    window = RollingWindow(10.0, clock=lambda: now[0])
    for _ in range(3):
        window.add()
    assert window.count() == 3 and window.retry_after_s() == pytest.approx(10.0)
    now[0] = 109.5
    window.add()
    assert window.count() == 4
    now[0] = 110.0
    assert window.count() == 1  # the three at t=100 left the window
    assert window.retry_after_s() == pytest.approx(9.5)


def test_admin_endpoints_drive_a_cli_started_sandbox(fresh: Any) -> None:
    sb = fresh()
    admin = httpx.Client(base_url=sb.url + "/_sandbox")
    info = admin.get("/info").json()
    assert info["hubspot_base_url"] == sb.hubspot_base_url
    assert info["salesforce_instance_url"] == sb.salesforce_instance_url
    assert info["tokens"]["hubspot"] == sb.token
    faults = admin.post("/faults", json={"hubspot": {"rate_limits": True, "error_rate": 0.25}})
    assert faults.json()["hubspot"]["rate_limits"] is True
    assert sb.faults.hubspot.error_rate == 0.25
    assert admin.post("/faults", json={"hubspot": {"nope": 1}}).status_code == 400
    admin.post("/faults/reset")
    assert sb.faults.hubspot.rate_limits is False
    result = admin.post("/mutate", json={"modified_pct": 5, "seed": 4}).json()
    assert len(result["modified"]["deals"]) == round(len(sb.company.deals) * 0.05)
    bumped = admin.post("/bump", json={"object_type": "contacts", "n": 7, "same_timestamp": True})
    assert len(bumped.json()["modified"]["contacts"]) == 7
    rotated = admin.post("/tokens/rotate", json={}).json()["tokens"]
    assert rotated["hubspot"] == sb.token != info["tokens"]["hubspot"]
    stats = admin.get("/stats").json()
    assert stats["requests"] == {}  # admin calls are not counted as provider traffic
    admin.close()


# -- Slack and Google Calendar -------------------------------------------------------------------


def _slack(sb: Any) -> httpx.Client:
    return httpx.Client(
        base_url=sb.slack_base_url,
        headers={"Authorization": f"Bearer {sb.token_for('slack')}"},
        timeout=30,
    )


def _calendar(sb: Any) -> httpx.Client:
    return httpx.Client(
        base_url=sb.google_calendar_base_url,
        headers={"Authorization": f"Bearer {sb.token_for('google_calendar')}"},
        timeout=30,
    )


def test_slack_and_calendar_transient_errors_and_drops(fresh: Any) -> None:
    sb = fresh()
    sb.faults.slack.error_rate = 1.0
    sb.faults.slack.error_statuses = (503,)
    sb.faults.google_calendar.error_rate = 1.0
    sb.faults.google_calendar.error_statuses = (500,)
    with _slack(sb) as sl, _calendar(sb) as gc:
        r = sl.get("/conversations.list")
        assert r.status_code == 503 and r.json() == {"ok": False, "error": "service_unavailable"}
        g = gc.get("/users/me/calendarList")
        assert g.status_code == 500 and g.json()["error"]["errors"][0]["reason"] == "backendError"
        sb.faults.slack.error_rate = sb.faults.google_calendar.error_rate = 0.0
        sb.faults.slack.drop_rate = 1.0
        with pytest.raises(httpx.RemoteProtocolError):
            sl.get("/users.list")
        assert gc.get("/users/me/calendarList").status_code == 200  # only Slack drops
    assert sb.stats.event("slack", "injected_error") == 1
    assert sb.stats.event("slack", "dropped") == 1
    assert sb.stats.event("google_calendar", "injected_error") == 1


def test_fault_patches_reach_slack_and_calendar(fresh: Any) -> None:
    sb = fresh()
    with httpx.Client(base_url=sb.url + "/_sandbox") as admin:
        patch = {
            "slack": {"rate_limits": True, "window_s": 2.0, "tier_limits": {"tier3": 1}},
            "google_calendar": {"per_window_limit": 9, "malformed_rate": 0.1},
        }
        got = admin.post("/faults", json=patch).json()
        assert got["slack"]["tier_limits"] == {"tier3": 1}
        assert got["google_calendar"]["per_window_limit"] == 9
        assert admin.post("/faults", json={"slack": {"per_window_limit": 3}}).status_code == 400
    assert sb.faults.slack.window_s == 2.0 and sb.faults.google_calendar.malformed_rate == 0.1
    channel = next(c for c in sb.company.slack.channels if c.is_member)
    with _slack(sb) as sl:
        first = sl.get("/conversations.history", params={"channel": channel.id})
        second = sl.get("/conversations.history", params={"channel": channel.id})
        assert first.status_code == 200 and second.status_code == 429
        assert second.headers["retry-after"] in ("1", "2")


def test_slack_non_marketplace_limits(fresh: Any) -> None:
    sb = fresh()
    sb.faults.slack.rate_limits = True
    sb.faults.slack.non_marketplace = True
    channel = max(sb.company.slack.channels, key=lambda c: len(c.messages) * c.is_member)
    with _slack(sb) as sl:
        page = sl.get("/conversations.history", params={"channel": channel.id, "limit": 200})
        assert len(page.json()["messages"]) == 15 and page.json()["has_more"] is True
        assert sl.get("/conversations.history", params={"channel": channel.id}).status_code == 429


def test_slack_and_calendar_malformed_records_follow_the_ground_truth(fresh: Any) -> None:
    sb = fresh()
    sb.faults.slack.malformed_rate = 0.2
    sb.faults.google_calendar.malformed_rate = 0.2
    bad_messages = sb.malformed("slack")["slack_messages"]
    bad_events = sb.malformed("google_calendar")["calendar_events"]
    assert bad_messages and bad_events
    channel = next(c for c in sb.company.slack.channels if c.is_member and c.name == "general")
    with _slack(sb) as sl:
        rendered = sl.get(
            "/conversations.history", params={"channel": channel.id, "limit": 999}
        ).json()["messages"]
    for m in rendered:
        kind = bad_messages.get(f"{channel.id}:{m['ts']}")
        if kind == "missing_user":
            assert "user" not in m and "bot_id" not in m
        elif kind == "dangling_thread":
            assert "reply_count" not in m and m["thread_ts"] != m["ts"]
        else:
            assert "user" in m or "bot_id" in m
    calendar = sb.company.calendars.calendars[0]
    with _calendar(sb) as gc:
        items = gc.get(f"/calendars/{calendar.id}/events", params={"maxResults": 2500}).json()[
            "items"
        ]
    for item in items:
        kind = bad_events.get(item["id"])
        if kind == "missing_start":
            assert item["start"] == {}
        elif kind == "bad_date":
            assert item["start"]["dateTime"].startswith("2026-02-30")
        else:
            assert item["start"].get("dateTime") or item["start"].get("date")
