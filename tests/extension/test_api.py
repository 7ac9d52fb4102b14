"""The REST API of the server extension, over HTTP, as a browser or a script would use it."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from .conftest import ADMIN_KEY, SECRET, SUPABASE_URL, Server

PROTECTED = [
    ("GET", "/revtops/api/me"),
    ("POST", "/revtops/api/register"),
    ("POST", "/revtops/api/users/sync"),
    ("GET", "/revtops/api/organizations/by-domain?domain=acme.com"),
    ("GET", "/revtops/api/organizations/acme-com/members"),
    ("GET", "/revtops/api/available-integrations"),
]


def test_health_is_public(server: Server) -> None:
    reply = httpx.get(f"{server.url}/revtops/api/health")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ok"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_need_a_session(server: Server, method: str, path: str) -> None:
    reply = httpx.request(method, server.url + path, json={})
    assert reply.status_code == 401
    assert reply.json()["error"]["message"] == "sign in first"


def _forged(server: Server) -> dict[str, str]:
    now = int(time.time())
    good = {
        "sub": "s",
        "email": "eve@acme.com",
        "aud": "authenticated",
        "iss": SUPABASE_URL + "/auth/v1",
        "exp": now + 600,
    }
    return {
        "wrong secret": jwt.encode(good, "another-secret-another-secret-000", algorithm="HS256"),
        "expired": jwt.encode({**good, "exp": now - 120}, SECRET, algorithm="HS256"),
        "wrong audience": jwt.encode({**good, "aud": "anon"}, SECRET, algorithm="HS256"),
        "wrong issuer": jwt.encode({**good, "iss": "https://evil/auth/v1"}, SECRET, "HS256"),
        "alg none": jwt.encode(good, None, algorithm="none"),
        "missing exp": jwt.encode(
            {k: v for k, v in good.items() if k != "exp"}, SECRET, algorithm="HS256"
        ),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong secret",
        "expired",
        "wrong audience",
        "wrong issuer",
        "alg none",
        "missing exp",
        "garbage",
    ],
)
def test_bad_tokens_are_refused(server: Server, case: str) -> None:
    token = _forged(server)[case]
    with server.client(token) as client:
        assert client.get("/revtops/api/me").status_code == 401
    cookie_reply = httpx.post(f"{server.url}/revtops/api/session", json={"access_token": token})
    assert cookie_reply.status_code == 401


def test_consumer_mailbox_is_refused_with_a_clear_message(server: Server) -> None:
    with server.client(server.token("pat@gmail.com")) as client:
        reply = client.post("/revtops/api/register")
        assert reply.status_code == 403
        assert "work email" in reply.json()["message"]
        assert client.get("/revtops/api/available-integrations").status_code == 403


def test_uninvited_user_lands_on_the_waitlist_until_invited(server: Server) -> None:
    token = server.token("lee@lateco.io")
    with server.client(token) as client:
        first = client.post("/revtops/api/register")
        assert first.status_code == 202 and first.json()["status"] == "waitlisted"
        assert client.get("/revtops/api/available-integrations").status_code == 403
    admin = {"X-Admin-Key": ADMIN_KEY}
    listed = httpx.get(f"{server.url}/revtops/api/admin/waitlist", headers=admin).json()
    assert "lee@lateco.io" in [entry["email"] for entry in listed["waitlist"]]
    invited = httpx.post(
        f"{server.url}/revtops/api/admin/waitlist/invite",
        headers=admin,
        json={"email": "lee@lateco.io"},
    )
    assert invited.status_code == 200 and invited.json()["status"] == "invited"
    # A new token (the admission cache is per token): the invitee founds lateco-io.
    with server.client(server.token("lee@lateco.io", iat=int(time.time()) - 1)) as client:
        me = client.post("/revtops/api/register").json()
        assert me["status"] == "admitted" and me["organization_id"] == "lateco-io"
        assert me["role"] == "admin"


def test_admin_routes_need_the_key(server: Server) -> None:
    assert httpx.get(f"{server.url}/revtops/api/admin/waitlist").status_code == 403
    wrong = httpx.get(f"{server.url}/revtops/api/admin/waitlist", headers={"X-Admin-Key": "x"})
    assert wrong.status_code == 403


def _org_with_members(server: Server, domain: str) -> tuple[str, str]:
    admin = {"X-Admin-Key": ADMIN_KEY}
    made = httpx.post(
        f"{server.url}/revtops/api/organizations",
        headers=admin,
        json={"name": domain, "domain": domain},
    )
    assert made.status_code in (201, 409), made.text
    token = server.token(f"rep@{domain}")
    with server.client(token) as client:
        me = client.get("/revtops/api/me").json()
    return me["organization_id"], token


def test_members_see_their_org_only(server: Server) -> None:
    acme, acme_token = _org_with_members(server, "acme.com")
    globex, _ = _org_with_members(server, "globex.com")
    assert acme == "acme-com" and globex == "globex-com"
    with server.client(acme_token) as client:
        own = client.get(f"/revtops/api/organizations/{acme}/members")
        assert own.status_code == 200
        assert [m["email"] for m in own.json()["members"]] == ["rep@acme.com"]
        assert client.get(f"/revtops/api/organizations/{globex}/members").status_code == 404
        by_domain = client.get("/revtops/api/organizations/by-domain?domain=globex.com")
        assert by_domain.status_code == 404
        providers = client.get("/revtops/api/available-integrations").json()["providers"]
        assert {p["provider"] for p in providers} >= {"hubspot", "salesforce", "slack"}


def test_forged_identity_headers_and_parameters_gain_nothing(server: Server) -> None:
    _, acme_token = _org_with_members(server, "acme.com")
    forged = {
        "X-Forwarded-User": "rep@globex.com",
        "X-Remote-User": "rep@globex.com",
        "X-Revtops-Org": "globex-com",
    }
    with server.client(acme_token) as client:
        me = client.get("/revtops/api/me?organization_id=globex-com", headers=forged).json()
        assert me["organization_id"] == "acme-com"
    assert httpx.get(f"{server.url}/revtops/api/me", headers=forged).status_code == 401


@pytest.mark.parametrize(
    "path", ["/api/contents", "/api/kernels", "/api/terminals", "/api/sessions", "/api/kernelspecs"]
)
def test_app_users_cannot_reach_jupyter_apis(server: Server, path: str) -> None:
    _, token = _org_with_members(server, "acme.com")
    with server.client(token) as client:
        assert client.get(path).status_code == 403
    assert httpx.get(server.url + path).status_code in (401, 403)


def test_cookie_session_and_xsrf(server: Server) -> None:
    _, token = _org_with_members(server, "acme.com")
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        signed_in = browser.post("/revtops/api/session", json={"access_token": token})
        assert signed_in.status_code == 200 and signed_in.json()["status"] == "admitted"
        cookie_header = signed_in.headers["set-cookie"]
        assert "revtops_session=" in cookie_header and "HttpOnly" in cookie_header
        assert browser.get("/revtops/api/me").json()["email"] == "rep@acme.com"
        # A cookie-borne write without the XSRF token is refused...
        assert browser.post("/revtops/api/users/sync", json={"name": "R"}).status_code == 403
        # ...and passes with it, as Jupyter's front end sends it.
        browser.get("/login")
        xsrf = browser.cookies.get("_xsrf")
        assert xsrf
        ok = browser.post(
            "/revtops/api/users/sync", json={"name": "R"}, headers={"X-XSRFToken": xsrf}
        )
        assert ok.status_code == 200
        browser.delete("/revtops/api/session", headers={"X-XSRFToken": xsrf})
        browser.cookies.delete("revtops_session")
        assert browser.get("/revtops/api/me").status_code == 401


def test_waitlist_is_validated_and_rate_limited(server: Server) -> None:
    url = f"{server.url}/revtops/api/waitlist"
    bad = httpx.post(url, json={"email": "not-an-email"})
    assert bad.status_code == 400 and "not an email address" in bad.json()["error"]["message"]
    assert httpx.post(url, content=b"{nope").status_code == 400
    assert httpx.post(url, json={"email": 42}).status_code == 400
    statuses = [
        httpx.post(url, json={"email": f"person{i}@waitco.io"}).status_code for i in range(6)
    ]
    assert 429 in statuses and statuses[0] in (201, 429)


def test_sign_in_page_links_to_supabase_google_oauth(server: Server) -> None:
    page = httpx.get(f"{server.url}/login?next=/</script><script>alert(1)</script>")
    assert page.status_code == 200
    assert f"{SUPABASE_URL}/auth/v1/authorize?provider=google" in page.text
    assert "<script>alert(1)" not in page.text
