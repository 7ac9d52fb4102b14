"""The web app as served: Voila behind Supabase sign-in, preheated kernels, signed identity."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from revtops_server.supabase import mint_token
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .conftest import ADMIN_KEY, SECRET, SUPABASE_URL, free_port

pytestmark = pytest.mark.slow


class App:
    def __init__(self, url: str) -> None:
        self.url = url

    def token(self, email: str, name: str = "Someone") -> str:
        return mint_token(
            secret=SECRET, supabase_url=SUPABASE_URL, subject=f"sub-{email}", email=email, name=name
        )

    def page(self, token: str | None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.url + "/", headers=headers, timeout=120, follow_redirects=False)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    home = tmp_path_factory.mktemp("app-home")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REVTOPS_", "SUPABASE_"))},
        "REVTOPS_HOME": str(home / "revtops"),
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": SECRET,
        "REVTOPS_ADMIN_KEY": ADMIN_KEY,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    log = home / "app.log"
    revtops = str(Path(sys.executable).with_name("revtops"))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [revtops, "app", f"--port={port}", "--no-browser", "--pool-size=2"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/revtops/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"revtops app did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)
    for domain in ("acme.com", "globex.com"):
        made = httpx.post(
            f"{url}/revtops/api/organizations",
            headers={"X-Admin-Key": ADMIN_KEY},
            json={"name": domain.split(".")[0].title(), "domain": domain},
        )
        assert made.status_code == 201, made.text
    yield App(url)
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def header_of(page: httpx.Response) -> str:
    # The app cell's plain-text fallback, as Voila embeds it in the page's JSON.
    match = re.search(r"Revtops Workbench: [^\\\"<>]* at [a-z0-9_-]+", page.text)
    assert match, page.text[-3000:]
    return match.group(0).encode().decode("unicode_escape")


def test_visitors_without_a_session_are_sent_to_sign_in(app: App) -> None:
    page = app.page(None)
    assert page.status_code == 302 and "/login" in page.headers["location"]


def test_each_visitor_gets_their_own_org_and_forged_identity_is_ignored(app: App) -> None:
    forged = {"X-Revtops-Identity": "forged.envelope", "X-Forwarded-User": "boss@globex.com"}
    acme = header_of(app.page(app.token("ana@acme.com", "Ana"), **forged))
    globex = header_of(app.page(app.token("gus@globex.com", "Gus")))
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
