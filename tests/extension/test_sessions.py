"""Web-app sessions renew with Supabase's refresh token, and end when Supabase revokes it.

A real Jupyter Server (store on PostgreSQL) whose ``SUPABASE_URL`` points at a stub of
Supabase's token endpoint on loopback (`supabase_stub`), driven over HTTP like a browser:
cookies in a jar, XSRF where Jupyter wants it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from revtops_kernel.store.scratch import scratch_postgres

from .conftest import ADMIN_KEY, SECRET, Server, launch, stop
from .supabase_stub import ANON_KEY, Person, SupabaseStub

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

API = "/revtops/api"


@dataclass
class World:
    server: Server
    stub: SupabaseStub

    def browser(self, access: str | None, refresh: str | None) -> httpx.Client:
        """A browser whose jar holds the session cookies as `SessionHandler` set them."""
        client = httpx.Client(base_url=self.server.url, timeout=30)
        if access:
            client.cookies.set("revtops_session", access, domain="127.0.0.1", path="/")
        if refresh:
            client.cookies.set("revtops_refresh", refresh, domain="127.0.0.1", path="/")
        return client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[World]:
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with (
        SupabaseStub(SECRET) as stub,
        scratch_postgres(admin_url, prefix="revtops_test_sessions") as url,
    ):
        server = launch(
            tmp_path_factory.mktemp("sessions"),
            REVTOPS_DATABASE_URL=url,
            SUPABASE_URL=stub.url,
            SUPABASE_ANON_KEY=ANON_KEY,
        )
        try:
            made = httpx.post(
                f"{server.url}{API}/organizations",
                headers={"X-Admin-Key": ADMIN_KEY},
                json={"name": "Renewco", "domain": "renewco.com"},
            )
            assert made.status_code == 201, made.text
            yield World(server, stub)
        finally:
            stop(server)


@pytest.fixture
def stub(world: World) -> Iterator[SupabaseStub]:
    world.stub.calls, world.stub.delay, world.stub.fail_with = 0, 0.0, None
    yield world.stub
    world.stub.delay, world.stub.fail_with = 0.0, None


def _cookie(reply: httpx.Response, name: str) -> str | None:
    for header in reply.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    return None


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


def test_sign_in_sets_an_httponly_refresh_cookie_scoped_to_the_app(
    world: World, stub: SupabaseStub
) -> None:
    access, refresh = stub.sign_in("ana@renewco.com")
    with httpx.Client(base_url=world.server.url, timeout=30) as browser:
        reply = browser.post(
            f"{API}/session", json={"access_token": access, "refresh_token": refresh}
        )
        assert reply.status_code == 200 and reply.json()["status"] == "admitted"
        header = _cookie(reply, "revtops_refresh")
        assert header is not None and refresh in header
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
        assert browser.get(f"{API}/me").json()["email"] == "ana@renewco.com"
    assert stub.calls == 0  # a fresh token is not renewed


def test_an_expired_access_token_is_renewed_with_the_refresh_cookie(
    world: World, stub: SupabaseStub
) -> None:
    expired, refresh = stub.sign_in("bo@renewco.com", lifetime=-600)
    with world.browser(expired, refresh) as browser:
        reply = browser.get(f"{API}/me")
        assert reply.status_code == 200, reply.text
        assert reply.json()["email"] == "bo@renewco.com"
        assert stub.calls == 1
        new_access = browser.cookies.get("revtops_session")
        new_refresh = browser.cookies.get("revtops_refresh")
        assert new_access and new_access != expired and _exp(new_access) > time.time() + 3000
        assert new_refresh and new_refresh != refresh  # Supabase rotates it
        header = _cookie(reply, "revtops_refresh")
        assert header is not None and "HttpOnly" in header and "SameSite=Lax" in header
        # The renewed session goes on without asking Supabase again.
        assert browser.get(f"{API}/available-integrations").status_code == 200
        assert stub.calls == 1


def test_a_token_expiring_within_minutes_is_renewed_before_it_expires(
    world: World, stub: SupabaseStub
) -> None:
    soon, refresh = stub.sign_in("cy@renewco.com", lifetime=120)
    with world.browser(soon, refresh) as browser:
        assert browser.get(f"{API}/me").status_code == 200
        assert stub.calls == 1 and browser.cookies.get("revtops_session") != soon


def test_a_missing_access_cookie_is_renewed_from_the_refresh_cookie(
    world: World, stub: SupabaseStub
) -> None:
    _, refresh = stub.sign_in("di@renewco.com")
    with world.browser(None, refresh) as browser:  # the access cookie's max-age ran out
        assert browser.get(f"{API}/me").json()["email"] == "di@renewco.com"
        assert stub.calls == 1


def test_a_revoked_refresh_token_signs_the_person_out(world: World, stub: SupabaseStub) -> None:
    expired, refresh = stub.sign_in("ed@renewco.com", lifetime=-600)
    stub.revoke(refresh)  # signed out elsewhere, or revoked by an admin
    with world.browser(expired, refresh) as browser:
        reply = browser.get(f"{API}/me")
        assert reply.status_code == 401
        assert reply.json()["error"]["message"] == "your session has ended; sign in again"
        for name in ("revtops_session", "revtops_refresh"):
            header = _cookie(reply, name)
            assert header is not None and ("Max-Age=0" in header or "expires=" in header.lower())
        assert browser.cookies.get("revtops_refresh") is None  # the jar honoured the clearing
        assert stub.calls == 1
        assert browser.get(f"{API}/me").status_code == 401
        assert stub.calls == 1  # nothing left to renew with
        assert browser.get("/login").status_code == 200


def test_concurrent_requests_with_one_expired_token_renew_once(
    world: World, stub: SupabaseStub
) -> None:
    expired, refresh = stub.sign_in("fa@renewco.com", lifetime=-600)
    stub.delay = 0.5  # every request arrives while the first renewal is in flight

    def one(_: int) -> int:
        with world.browser(expired, refresh) as browser:
            return browser.get(f"{API}/me").status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(one, range(24)))
    assert statuses == [200] * 24
    assert stub.calls == 1


def test_supabase_unavailable_keeps_the_session_and_does_not_sign_out(
    world: World, stub: SupabaseStub
) -> None:
    soon, refresh = stub.sign_in("gi@renewco.com", lifetime=120)
    stub.fail_with = 503
    with world.browser(soon, refresh) as browser:
        reply = browser.get(f"{API}/me")
        assert reply.status_code == 200  # the current token is still valid for two minutes
        assert _cookie(reply, "revtops_refresh") is None  # nothing cleared, nothing replaced
        assert stub.calls == 1
        stub.fail_with = None
        assert browser.get(f"{API}/me").status_code == 200
        assert stub.calls == 2  # a passing failure is not cached: the next request renews
        assert browser.cookies.get("revtops_session") != soon


def test_bearer_callers_are_never_renewed(world: World, stub: SupabaseStub) -> None:
    expired, refresh = stub.sign_in("ha@renewco.com", lifetime=-600)
    with world.browser(None, refresh) as browser:
        reply = browser.get(f"{API}/me", headers={"Authorization": f"Bearer {expired}"})
        assert reply.status_code == 401
    assert stub.calls == 0


def test_signing_out_clears_both_cookies(world: World, stub: SupabaseStub) -> None:
    access, refresh = stub.sign_in("io@renewco.com")
    with httpx.Client(base_url=world.server.url, timeout=30) as browser:
        browser.post(f"{API}/session", json={"access_token": access, "refresh_token": refresh})
        browser.get("/login")
        xsrf = browser.cookies.get("_xsrf") or ""
        reply = browser.delete(f"{API}/session", headers={"X-XSRFToken": xsrf})
        assert reply.status_code == 200
        assert _cookie(reply, "revtops_session") and _cookie(reply, "revtops_refresh")
        assert browser.cookies.get("revtops_refresh") is None
        assert browser.get(f"{API}/me").status_code == 401
    assert stub.calls == 0


def test_the_sign_in_page_keeps_the_refresh_token_and_the_browser_renews(
    world: World, stub: SupabaseStub
) -> None:
    """In Chromium: Supabase's fragment carries both tokens; /login hands both to the server,
    which keeps them HttpOnly (the page's script never stores them) and renews on expiry."""
    from tests.browser.app_server import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    access, refresh = stub.sign_in("jo@renewco.com")
    url = world.server.url
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = chromium.new_context()
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(
                f"{url}/login?next=/revtops/api/me#access_token={access}"
                f"&refresh_token={refresh}&token_type=bearer&expires_in=3600"
            )
            page.wait_for_url("**/revtops/api/me")
            assert '"jo@renewco.com"' in page.content()
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies["revtops_refresh"]["value"] == refresh
            assert cookies["revtops_refresh"]["httpOnly"] and cookies["revtops_session"]["httpOnly"]
            assert cookies["revtops_refresh"]["sameSite"] == "Lax"
            expired = stub.access_token(stub_person("jo@renewco.com"), lifetime=-600)
            context.add_cookies([{"name": "revtops_session", "value": expired, "url": url}])
            page.reload()
            assert '"jo@renewco.com"' in page.content() and stub.calls == 1
            renewed = {c["name"]: c["value"] for c in context.cookies()}
            assert renewed["revtops_session"] != expired and renewed["revtops_refresh"] != refresh
        finally:
            chromium.close()


def stub_person(email: str) -> Person:
    return Person(email, f"sub-{email}")
