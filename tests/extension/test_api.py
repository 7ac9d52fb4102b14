"""The REST API of the server extension, over HTTP, as a browser or a script would use it.

The server runs on PostgreSQL. Each attack of the security review is performed here and must
fail: unverified emails, non-email identities, NUL and control characters in fields and
query strings, an off-site ``next`` after sign-in, and cross-origin reads (CORS).
"""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest

from .conftest import ADMIN_KEY, SECRET, SUPABASE_URL, Server

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server(pg_server: Server) -> Server:
    """Every test here runs against the store on PostgreSQL (which refuses NUL in text)."""
    return pg_server


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


# --- identities the review found admitted, or crashing the server ------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"user_metadata": {"email_verified": False}},
        {"email_verified": False},
        {"user_metadata": {"email_verified": "false"}},
    ],
    ids=["user_metadata", "top-level", "string"],
)
def test_an_unverified_email_is_not_admitted_to_its_domains_org(
    server: Server, claims: dict[str, object]
) -> None:
    org, _ = _org_with_members(server, "verico.com")
    token = server.token("mallory@verico.com", **claims)  # type: ignore[arg-type]
    with server.client(token) as client:
        reply = client.post("/revtops/api/register")
        assert reply.status_code == 403
        assert reply.json()["status"] == "unverified_email"
        assert "verify your email first" in reply.json()["message"].lower()
        denied = client.get(f"/revtops/api/organizations/{org}/members")
        assert denied.status_code == 403 and "verify your email" in denied.text.lower()
    with server.client(server.token("rep@verico.com")) as member:
        emails = [m["email"] for m in member.get(f"/revtops/api/organizations/{org}/members")
                  .json()["members"]]  # fmt: skip
    assert "mallory@verico.com" not in emails
    listed = httpx.get(
        f"{server.url}/revtops/api/admin/waitlist", headers={"X-Admin-Key": ADMIN_KEY}
    ).json()["waitlist"]
    assert "mallory@verico.com" not in [entry["email"] for entry in listed]


def test_a_verified_claim_is_admitted(server: Server) -> None:
    _org_with_members(server, "verico.com")
    token = server.token("vera@verico.com", user_metadata={"email_verified": True})
    with server.client(token) as client:
        assert client.post("/revtops/api/register").json()["status"] == "admitted"


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "x\x00@acme.com", "@acme.com"])
def test_a_token_whose_email_is_not_an_email_is_refused_clearly(server: Server, email: str) -> None:
    token = server.token(email, subject="sub-of-a-bad-email")
    with server.client(token) as client:
        me = client.get("/revtops/api/me")  # says who you are, and that you are not admitted
        assert me.status_code == 200 and me.json()["status"] == "invalid_email", me.text
        denied = client.get("/revtops/api/available-integrations")
        assert denied.status_code == 403 and "not an email address" in denied.text
        registered = client.post("/revtops/api/register")
        assert registered.status_code == 403
        assert "not an email address" in registered.json()["message"]
    cookie = httpx.post(
        f"{server.url}/revtops/api/session", json={"access_token": server.token(email)}
    )
    assert cookie.status_code in (200, 401) and cookie.json().get("status") != "admitted"


def test_control_characters_in_token_claims_do_not_reach_the_store(server: Server) -> None:
    _org_with_members(server, "claimco.com")
    named = server.token("nul@claimco.com", user_metadata={"full_name": "Nu\x00ll\u0085 Person"})
    with server.client(named) as client:
        me = client.get("/revtops/api/me")
        assert me.status_code == 200 and me.json()["name"] == "Nu ll Person"
    bad_subject = server.token("sub@claimco.com", subject="sub\x00ject")
    with server.client(bad_subject) as client:
        assert client.get("/revtops/api/me").status_code == 401


# --- text at the boundary ----------------------------------------------------------------------


def _cookie_browser(server: Server, token: str) -> tuple[httpx.Client, dict[str, str]]:
    browser = httpx.Client(base_url=server.url, timeout=30)
    browser.post("/revtops/api/session", json={"access_token": token})
    browser.get("/login")
    return browser, {"X-XSRFToken": browser.cookies.get("_xsrf") or ""}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Nu\x00l", "'name' must not contain control characters"),
        ("Bell\x07", "'name' must not contain control characters"),
        ("C1\x9b", "'name' must not contain control characters"),
        ("two\nlines", "'name' must not contain control characters"),
        ("lone \ud800", "'name' must not contain surrogate characters"),
        ("x" * 201, "'name' is longer than 200 characters"),
        (42, "'name' must be a string"),
        (["a"], "'name' must be a string"),
    ],
)
def test_users_sync_refuses_bad_text_naming_the_field(
    server: Server, value: object, problem: str
) -> None:
    _, token = _org_with_members(server, "acme.com")
    with server.client(token) as client:
        # json.dumps escapes a lone surrogate as "\ud800", as a browser's JSON.stringify does
        reply = client.post("/revtops/api/users/sync", content=json.dumps({"name": value}))
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["message"].startswith(problem)
        ok = client.post("/revtops/api/users/sync", json={"name": "  Rep Ortega  "})
        assert ok.status_code == 200
        members = client.get("/revtops/api/organizations/acme-com/members").json()["members"]
        assert members[0]["name"] == "Rep Ortega"  # trimmed


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"email": "nul\x00@waitco.io"}, "'email' must not contain control characters"),
        ({"email": "x" * 250 + "@waitco.io"}, "'email' is longer than 254 characters"),
        ({"email": "ok@waitco.io", "name": "N\x00"}, "'name' must not contain control"),
        ({"email": "ok@waitco.io", "company": "\x1b[31m"}, "'company' must not contain control"),
        ({"email": "ok@waitco.io", "note": "a\x00b"}, "'note' must not contain control"),
        ({"email": "ok@waitco.io", "note": "n" * 2001}, "'note' is longer than 2,000"),
        ({"email": ["ok@waitco.io"]}, "'email' must be a string"),
        ({"name": "no email"}, "'email' is required"),
    ],
)
def test_waitlist_refuses_bad_text_naming_the_field(
    server: Server, body: dict[str, object], problem: str
) -> None:
    reply = httpx.post(f"{server.url}/revtops/api/waitlist", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["message"].startswith(problem)


def test_waitlist_note_may_span_lines(server: Server) -> None:
    reply = httpx.post(
        f"{server.url}/revtops/api/waitlist",
        json={"email": "lines@notes.io", "note": "line one\nline two\ttabbed"},
    )
    assert reply.status_code in (201, 429), reply.text  # 429: the minute's quota is shared


def test_workflow_fields_get_the_same_validation(server: Server) -> None:
    _, token = _org_with_members(server, "flowco.com")  # the org's first member: its admin
    with server.client(token) as client:
        assert client.get("/revtops/api/me").json()["role"] == "admin"
        for field in ("name", "notebook", "cron"):
            body = {"name": "nightly", "notebook": "sync.ipynb", "cron": "0 2 * * *"}
            body[field] = body[field] + "\x00"
            reply = client.post("/revtops/api/workflows", json=body)
            assert reply.status_code == 400, reply.text
            assert f"'{field}' must not contain control characters" in reply.text


def test_bodies_that_are_not_plain_json_are_400(server: Server) -> None:
    _, token = _org_with_members(server, "acme.com")
    with server.client(token) as client:
        for raw in (b"[" * 50_000, b'{"name": NaN}', b'{"name": 1' + b"0" * 10_000 + b"}", b"\xff"):
            reply = client.post("/revtops/api/users/sync", content=raw)
            assert reply.status_code == 400, (raw[:20], reply.text)
            assert reply.json()["error"]["message"] == "the body is not valid JSON"


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("domain=acme.com%00", "'domain' must not contain control characters"),
        ("domain=acme.com%0A", "'domain' must not contain control characters"),
        ("domain=https://acme.com/x", "'domain' is not a domain name"),
        ("domain=" + "a" * 300 + ".com", "'domain' is longer than 253 characters"),
        ("domain=", "'domain' is required"),
    ],
)
def test_by_domain_query_is_validated(server: Server, query: str, problem: str) -> None:
    _, token = _org_with_members(server, "acme.com")
    with server.client(token) as client:
        reply = client.get(f"/revtops/api/organizations/by-domain?{query}")
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["message"].startswith(problem)
        assert client.get("/revtops/api/organizations/by-domain?domain=ACME.com").status_code == 200


def test_admin_waitlist_status_is_validated(server: Server) -> None:
    admin = {"X-Admin-Key": ADMIN_KEY}
    url = f"{server.url}/revtops/api/admin/waitlist"
    for status in ("bogus", "waiting%00", "x" * 30):
        reply = httpx.get(f"{url}?status={status}", headers=admin)
        assert reply.status_code == 400 and "'status'" in reply.json()["error"]["message"]
    assert httpx.get(f"{url}?status=invited", headers=admin).status_code == 200
    made = httpx.post(
        f"{server.url}/revtops/api/organizations",
        headers=admin,
        json={"name": "Evil", "domain": "evil.example/../x"},
    )
    assert made.status_code == 400 and "'domain' is not a domain name" in made.text


# --- where the browser goes after sign-in -------------------------------------------------------


def _next_url(server: Server, raw_query: str) -> str:
    page = httpx.get(f"{server.url}/login?{raw_query}")
    assert page.status_code == 200
    embedded = page.text.split("location.assign(", 1)[1].split(")", 1)[0]
    return str(json.loads(embedded))


@pytest.mark.parametrize(
    "raw",
    [
        "next=/%5Cevil.example/x",
        "next=%2F%5Cevil.example",
        "next=/%2F%2Fevil.example",
        "next=//evil.example",
        "next=/%252F%252Fevil.example",
        "next=/%255Cevil.example",
        "next=/%09/evil.example",
        "next=/%0D%0A/evil.example",
        "next=https://evil.example/",
        "next=javascript:alert(1)",
        "next=/%00/evil.example",
        "next=%20/evil.example",
    ],
)
def test_login_never_sends_the_browser_off_site(server: Server, raw: str) -> None:
    assert _next_url(server, raw) == "/"


def test_login_keeps_a_same_origin_next(server: Server) -> None:
    assert (
        _next_url(server, "next=/voila/render/app.ipynb%3Fx%3D1") == "/voila/render/app.ipynb?x=1"
    )
    assert _next_url(server, "") == "/"


# --- no cross-origin reads -----------------------------------------------------------------------

CORS = ("access-control-allow-origin", "access-control-allow-credentials")
EVIL = {"Origin": "https://evil.example"}


def test_no_cors_headers_for_bearer_cookie_preflight_or_pages(server: Server) -> None:
    _, token = _org_with_members(server, "acme.com")
    with server.client(token) as client:
        bearer = client.get("/revtops/api/me", headers=EVIL)
        assert bearer.status_code == 200
        assert not [h for h in CORS if h in bearer.headers], bearer.headers
        failed = client.get("/revtops/api/organizations/nope/members", headers=EVIL)
        assert failed.status_code == 404 and "access-control-allow-origin" not in failed.headers
    browser, xsrf = _cookie_browser(server, token)
    try:
        assert browser.get("/revtops/api/me").json()["email"] == "rep@acme.com"
        # Cookie-borne and cross-origin: Jupyter's origin check refuses it, without CORS headers.
        cookie = browser.get("/revtops/api/me", headers=EVIL)
        assert cookie.status_code == 404 and "rep@acme.com" not in cookie.text
        assert not [h for h in CORS if h in cookie.headers]
        write = browser.post("/revtops/api/users/sync", json={}, headers={**EVIL, **xsrf})
        assert write.status_code == 404 and not [h for h in CORS if h in write.headers]
    finally:
        browser.close()
    preflight = httpx.options(
        f"{server.url}/revtops/api/health",
        headers={**EVIL, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"},
    )  # fmt: skip
    assert preflight.status_code < 500
    assert not [h for h in preflight.headers if h.startswith("access-control-")]
    protected = httpx.options(
        f"{server.url}/revtops/api/me",
        headers={**EVIL, "Access-Control-Request-Headers": "authorization"},
    )
    assert not [h for h in protected.headers if h.startswith("access-control-")]
    page = httpx.get(f"{server.url}/login", headers=EVIL)
    assert not [h for h in CORS if h in page.headers]
