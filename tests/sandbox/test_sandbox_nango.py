"""The Nango emulation over real HTTP: sessions, connections, rotating tokens, webhooks, proxy."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from revtops_sandbox.server import SandboxServer


def nango_client(server: SandboxServer, key: str | None = None) -> httpx.Client:
    key = server.nango_secret_key if key is None else key
    return httpx.Client(
        base_url=server.nango_base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


@pytest.fixture
def ng(fresh: Any) -> Iterator[tuple[SandboxServer, httpx.Client]]:
    sb = fresh()
    with nango_client(sb) as client:
        yield sb, client


def connect(sb: SandboxServer, client: httpx.Client, key: str = "hubspot") -> str:
    r = client.post(
        "/connect/sessions",
        json={
            "end_user": {"id": "u_42", "email": "ana@acme.example", "display_name": "Ana"},
            "organization": {"id": "org_7"},
            "allowed_integrations": [key],
        },
    )
    assert r.status_code == 201, r.text
    body, _ = sb.nango_webhook(key, session_token=r.json()["data"]["token"])
    connection_id: str = json.loads(body)["connectionId"]
    return connection_id


def test_connect_session_is_201_with_data_wrapper(ng: tuple[SandboxServer, httpx.Client]) -> None:
    sb, client = ng
    r = client.post(
        "/connect/sessions",
        json={"end_user": {"id": "u_1"}, "allowed_integrations": ["hubspot", "slack"]},
    )
    assert r.status_code == 201
    data = r.json()["data"]
    assert data["token"].startswith("nango_connect_session_")
    assert data["expires_at"].endswith("Z") and data["connect_link"].endswith(data["token"])
    bad = client.post("/connect/sessions", json={"end_user": {"id": "u_1"}, "color": "red"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_body"
    unknown = client.post("/connect/sessions", json={"allowed_integrations": ["zendesk"]})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["errors"][0]["path"] == ["allowed_integrations", 0]
    with nango_client(sb, key="wrong") as wrong:
        denied = wrong.post("/connect/sessions", json={})
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unknown_account"


def test_webhook_is_signed_with_hmac_of_the_raw_body(
    ng: tuple[SandboxServer, httpx.Client],
) -> None:
    sb, client = ng
    session = client.post(
        "/connect/sessions",
        json={
            "end_user": {"id": "u_42", "email": "ana@acme.example"},
            "organization": {"id": "org_7"},
            "tags": {"plan": "pro"},
        },
    ).json()["data"]
    body, headers = sb.nango_webhook("slack", session_token=session["token"])
    expected = hmac.new(sb.nango_webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Nango-Hmac-Sha256"] == expected
    payload = json.loads(body)
    assert payload["from"] == "nango" and payload["type"] == "auth"
    assert payload["operation"] == "creation" and payload["success"] is True
    assert payload["providerConfigKey"] == "slack" and payload["provider"] == "slack"
    assert payload["endUser"] == {
        "endUserId": "u_42",
        "endUserEmail": "ana@acme.example",
        "organizationId": "org_7",
    }
    assert payload["tags"] == {
        "end_user_id": "u_42",
        "end_user_email": "ana@acme.example",
        "organization_id": "org_7",
        "plan": "pro",
    }
    # the connection exists now
    got = client.get(
        f"/connections/{payload['connectionId']}", params={"provider_config_key": "slack"}
    )
    assert got.status_code == 200 and got.json()["tags"]["organization_id"] == "org_7"
    # a failed attempt is reported but creates nothing
    failed, _ = sb.nango_webhook("hubspot", success=False)
    assert json.loads(failed)["success"] is False
    assert len(client.get("/connections").json()["connections"]) == 1
    # a session restricted to one integration refuses another
    only = client.post("/connect/sessions", json={"allowed_integrations": ["hubspot"]})
    with pytest.raises(ValueError, match="only allows"):
        sb.nango_webhook("slack", session_token=only.json()["data"]["token"])


def test_webhook_can_be_posted_to_a_target(ng: tuple[SandboxServer, httpx.Client]) -> None:
    sb, _ = ng
    target = f"{sb.url}/_sandbox/info"  # any URL that answers a POST with 405: delivery happened
    response = sb.send_nango_webhook(target, provider_config_key="google-calendar")
    assert response.status_code == 405
    assert response.request.headers["x-nango-hmac-sha256"]


def test_connection_credentials_and_both_paths(ng: tuple[SandboxServer, httpx.Client]) -> None:
    sb, client = ng
    cid = connect(sb, client, "salesforce")
    new = client.get(f"/connections/{cid}", params={"provider_config_key": "salesforce"})
    old = client.get(f"/connection/{cid}", params={"provider_config_key": "salesforce"})
    assert new.status_code == old.status_code == 200
    body = new.json()
    creds = body["credentials"]
    assert creds["type"] == "OAUTH2" and creds["access_token"] == sb.token_for("salesforce")
    assert creds["expires_at"].endswith("Z")
    assert body["connection_config"]["instance_url"] == sb.salesforce_instance_url
    assert body["end_user"]["id"] == "u_42" and body["provider"] == "salesforce"
    missing = client.get("/connections/nope", params={"provider_config_key": "salesforce"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_connection"
    assert client.get(f"/connections/{cid}").status_code == 400  # provider_config_key required
    listed = client.get("/connections").json()["connections"]
    assert [c["connection_id"] for c in listed] == [cid]
    params = {"provider_config_key": "salesforce"}
    deleted = client.delete(f"/connection/{cid}", params=params)
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert client.get("/connections").json()["connections"] == []
    again = client.delete(f"/connections/{cid}", params=params)
    assert again.status_code == 400 and again.json()["error"]["code"] == "unknown_connection"


def test_tokens_rotate_after_expiry_and_old_ones_get_401(
    ng: tuple[SandboxServer, httpx.Client],
) -> None:
    sb, client = ng
    cid = connect(sb, client, "hubspot")
    params = {"provider_config_key": "hubspot"}
    first = client.get(f"/connections/{cid}", params=params).json()["credentials"]["access_token"]
    assert (
        client.get(f"/connections/{cid}", params=params).json()["credentials"]["access_token"]
        == first
    )
    sb.faults.hubspot.token_ttl_calls = 2
    hs = httpx.Client(base_url=sb.hubspot_base_url, headers={"Authorization": f"Bearer {first}"})
    with hs:
        assert [hs.get("/crm/v3/owners").status_code for _ in range(3)] == [200, 200, 401]
        rotated = client.get(f"/connections/{cid}", params=params).json()["credentials"]
        assert rotated["access_token"] != first
        # the old token stays dead; the new one works
        assert hs.get("/crm/v3/owners").status_code == 401
        ok = hs.get(
            "/crm/v3/owners", headers={"Authorization": f"Bearer {rotated['access_token']}"}
        )
        assert ok.status_code == 200
    # force_refresh rotates on demand
    forced = client.get(f"/connections/{cid}", params={**params, "force_refresh": "true"})
    assert forced.json()["credentials"]["access_token"] not in (first, rotated["access_token"])


def test_proxy_forwards_with_the_connection_token(ng: tuple[SandboxServer, httpx.Client]) -> None:
    sb, client = ng
    slack = connect(sb, client, "slack")
    cal = connect(sb, client, "google-calendar")
    r = client.get(
        "/proxy/conversations.list",
        params={"limit": 2},
        headers={"Connection-Id": slack, "Provider-Config-Key": "slack"},
    )
    assert r.status_code == 200 and r.json()["ok"] and len(r.json()["channels"]) == 2
    r = client.get(
        "/proxy/calendar/v3/users/me/calendarList",
        headers={"Connection-Id": cal, "Provider-Config-Key": "google-calendar"},
    )
    assert r.status_code == 200 and r.json()["kind"] == "calendar#calendarList"
    # the provider's errors pass through unchanged
    sb.faults.google_calendar.rate_limits = True
    sb.faults.google_calendar.per_window_limit = 0
    limited = client.get(
        "/proxy/calendar/v3/users/me/calendarList",
        headers={"Connection-Id": cal, "Provider-Config-Key": "google-calendar"},
    )
    assert limited.status_code in (403, 429)
    assert limited.json()["error"]["errors"][0]["reason"].endswith("ateLimitExceeded")
    assert client.get("/proxy/auth.test").status_code == 400  # headers required
    assert sb.stats.count("slack GET /api/conversations.list") == 1


def test_admin_webhook_creates_the_connection_and_delivers(
    ng: tuple[SandboxServer, httpx.Client],
) -> None:
    sb, client = ng
    with httpx.Client(base_url=sb.url + "/_sandbox") as admin:
        out = admin.post(
            "/nango/webhook",
            json={
                "provider_config_key": "slack",
                "tags": {"organization_id": "org_9"},
                "target_url": f"{sb.url}/_sandbox/info",
            },
        ).json()
        assert out["delivered_status"] == 405
        raw = out["body"].encode()
        mac = hmac.new(sb.nango_webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
        assert out["headers"]["X-Nango-Hmac-Sha256"] == mac
        got = client.get(
            f"/connections/{out['connection_id']}", params={"provider_config_key": "slack"}
        )
        assert got.json()["tags"] == {"organization_id": "org_9"}
        bad = admin.post("/nango/webhook", json={"provider_config_key": "zendesk"})
        assert bad.status_code == 400 and "unknown integration" in bad.json()["error"]


def test_proxy_reaches_the_crms_and_refreshes_a_used_up_token(
    ng: tuple[SandboxServer, httpx.Client],
) -> None:
    sb, client = ng
    hubspot = connect(sb, client, "hubspot")
    salesforce = connect(sb, client, "salesforce")
    hs_headers = {"Connection-Id": hubspot, "Provider-Config-Key": "hubspot"}
    sf_headers = {"Connection-Id": salesforce, "Provider-Config-Key": "salesforce"}
    deals = client.get("/proxy/crm/v3/objects/deals", params={"limit": 3}, headers=hs_headers)
    assert deals.status_code == 200 and len(deals.json()["results"]) == 3
    assert deals.headers["x-hubspot-ratelimit-max"]  # the provider's headers come back
    users = client.get(
        "/proxy/services/data/v59.0/query", params={"q": "SELECT Id FROM User"}, headers=sf_headers
    )
    assert users.status_code == 200 and users.json()["done"] is True
    first = sb.token_for("hubspot")
    sb.faults.hubspot.token_ttl_calls = sb.state.tokens["hubspot"].calls + 2  # two more calls
    codes = [client.get("/proxy/crm/v3/owners", headers=hs_headers).status_code for _ in range(4)]
    # the token runs out on the third call; Nango refreshes it before the fourth
    assert codes == [200, 200, 401, 200]
    assert sb.token_for("hubspot") != first


def test_credentials_rotate_when_their_lifetime_ends(
    ng: tuple[SandboxServer, httpx.Client],
) -> None:
    sb, client = ng
    cid = connect(sb, client, "google-calendar")
    params = {"provider_config_key": "google-calendar"}
    before = client.get(f"/connections/{cid}", params=params).json()["credentials"]
    sb.nango_token_ttl_s = 0.0  # every fetch now finds the credential expired
    after = client.get(f"/connections/{cid}", params=params).json()["credentials"]
    assert after["access_token"] != before["access_token"]
    with httpx.Client(base_url=sb.google_calendar_base_url) as gc:
        old = gc.get(
            "/users/me/calendarList", headers={"Authorization": f"Bearer {before['access_token']}"}
        )
        new = gc.get(
            "/users/me/calendarList", headers={"Authorization": f"Bearer {after['access_token']}"}
        )
    assert old.status_code == 401 and new.status_code == 200
    # the CRMs keep their token: only the connection's provider rotated
    assert sb.token_for("hubspot") == before["access_token"]
    per = sb.stats.per_provider()
    assert per["nango"] >= 3 and per["google_calendar"] == 2
