"""The web app as served: Voila behind Supabase sign-in, preheated kernels, signed identity."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.browser.app_server import RunningApp, running_app, visitor_header, widget_states

pytestmark = pytest.mark.slow


class App:
    def __init__(self, running: RunningApp) -> None:
        self.url = running.url
        self.running = running

    def token(self, email: str, name: str = "Someone") -> str:
        return self.running.token(email, name)

    def page(self, token: str | None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.url + "/", headers=headers, timeout=120, follow_redirects=False)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with running_app(tmp_path_factory.mktemp("app-home")) as running:
        running.create_org("Acme", "acme.com")
        running.create_org("Globex", "globex.com")
        yield App(running)


def header_of(app: App, token: str, page: httpx.Response) -> str:
    """The page's header as the visitor's kernel holds it (bound after the page is served)."""
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.text)
    assert kernel_id, page.text[-3000:]
    headers = {"Authorization": f"Bearer {token}"}
    return visitor_header(widget_states(app.url, kernel_id.group(1), headers))


def test_the_page_links_nothing_outside_the_app(app: App) -> None:
    """Voila's lab template links Font Awesome from a CDN; ours drops the links (Voila's bundle
    carries the font), so the app works offline and the page names no other origin."""
    page = app.page(app.token("ana@acme.com", "Ana"))
    assert page.status_code == 200
    assert "Revtops Workbench" in page.text
    assert "cdn.jsdelivr.net" not in page.text
    linked = re.findall(r'<(?:link|script)[^>]+(?:href|src)="(https?://[^"]+)"', page.text)
    assert linked == []


def test_visitors_without_a_session_are_sent_to_sign_in(app: App) -> None:
    page = app.page(None)
    assert page.status_code == 302 and "/login" in page.headers["location"]


def test_each_visitor_gets_their_own_org_and_forged_identity_is_ignored(app: App) -> None:
    forged = {"X-Revtops-Identity": "forged.envelope", "X-Forwarded-User": "boss@globex.com"}
    ana, gus = app.token("ana@acme.com", "Ana"), app.token("gus@globex.com", "Gus")
    acme = header_of(app, ana, app.page(ana, **forged))
    globex = header_of(app, gus, app.page(gus))
    assert "ana@acme.com" in acme and "acme-com" in acme and "globex" not in acme
    assert "gus@globex.com" in globex and "globex-com" in globex


def test_waitlisted_and_consumer_visitors_get_a_page_not_a_kernel(app: App) -> None:
    waiting = app.page(app.token("lee@unknown-startup.io"))
    assert waiting.status_code == 403 and "waitlist" in waiting.text
    personal = app.page(app.token("pat@gmail.com"))
    assert personal.status_code == 403 and "work email" in personal.text
    assert "kernelId" not in waiting.text + personal.text


def test_execute_request_over_the_kernel_websocket_does_not_run(app: App, tmp_path: Path) -> None:
    token = app.token("ana@acme.com", "Ana")
    page = app.page(token)
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.text)
    assert kernel_id, "the page names its kernel"
    marker = tmp_path / "ran.txt"

    async def attack() -> list[str]:
        ws_url = app.url.replace("http", "ws") + f"/api/kernels/{kernel_id.group(1)}/channels"
        request = HTTPRequest(ws_url, headers={"Authorization": f"Bearer {token}"})
        conn = await websocket_connect(request)
        session = uuid.uuid4().hex

        def header(msg_type: str) -> dict[str, str]:
            return {
                "msg_id": uuid.uuid4().hex,
                "msg_type": msg_type,
                "username": "x",
                "session": session,
                "version": "5.3",
                "date": "",
            }

        message = {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "msg_type": "execute_request",
                "username": "x",
                "session": uuid.uuid4().hex,
                "version": "5.3",
                "date": "",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": f"open({str(marker)!r}, 'w').write('pwned')",
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
            },
            "channel": "shell",
            "buffers": [],
        }
        await conn.write_message(json.dumps(message))
        # A message Voila allows, sent after it: its reply proves the channel itself works.
        probe = {**message, "header": header("kernel_info_request"), "content": {}}
        await conn.write_message(json.dumps(probe))
        seen: list[str] = []
        try:
            while True:
                reply = await asyncio.wait_for(conn.read_message(), timeout=3)
                if reply is None:
                    break
                if isinstance(reply, str):
                    seen.append(json.loads(reply)["header"]["msg_type"])
        except TimeoutError:
            pass
        conn.close()
        return seen

    seen = asyncio.run(attack())
    assert "kernel_info_reply" in seen
    assert "execute_reply" not in seen and "execute_input" not in seen
    assert not marker.exists()


def test_no_route_of_the_app_sends_cors_headers(app: App) -> None:
    """Jupyter echoes any Origin to bearer callers; none of the app's routes may (issue 12)."""
    token = app.token("ana@acme.com", "Ana")
    evil = {"Origin": "https://evil.example", "Authorization": f"Bearer {token}"}
    page = httpx.get(app.url + "/", headers=evil, timeout=120)
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.text)
    assert page.status_code == 200 and kernel_id
    answers = [
        page,
        httpx.get(app.url + f"/api/kernels/{kernel_id.group(1)}", headers=evil, timeout=30),
        httpx.get(app.url + "/api/kernelspecs", headers=evil, timeout=30),
        httpx.get(app.url + "/revtops/api/me", headers=evil, timeout=30),
        httpx.options(
            app.url + f"/api/kernels/{kernel_id.group(1)}",
            headers={**evil, "Access-Control-Request-Method": "DELETE"},
            timeout=30,
        ),
    ]
    for answer in answers:
        assert answer.status_code < 500, answer.text
        cors = {k: v for k, v in answer.headers.items() if k.lower().startswith("access-control")}
        assert cors == {}, (answer.request.url, cors)
