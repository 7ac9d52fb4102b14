"""`revtops app` as a real process, wired to the providers' sandbox and a scripted Messages API.

Shared by the browser tests and bench/app.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from revtops_server.supabase import mint_token
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

SECRET = "browser-test-jwt-secret-with-32-bytes-or-more"
SUPABASE_URL = "http://127.0.0.1:9/supabase"  # never contacted: HS256 tokens verify locally
ADMIN_KEY = "browser-admin-key"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def token(self, email: str, name: str) -> str:
        return mint_token(
            secret=SECRET,
            supabase_url=SUPABASE_URL,
            subject=f"sub-{email}",
            email=email,
            name=name,
        )

    def create_org(self, name: str, domain: str) -> None:
        reply = httpx.post(
            f"{self.url}/revtops/api/organizations",
            headers={"X-Admin-Key": ADMIN_KEY},
            json={"name": name, "domain": domain},
            timeout=30,
        )
        if reply.status_code not in (201, 409):
            raise RuntimeError(reply.text)


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the app's health endpoint until it answers 200; fail with the log's tail if the
    process exits or 300 s pass (a cold start beside xdist workers can take minutes)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/revtops/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)


@contextmanager
def running_app(
    home: Path,
    *,
    pool_size: int = 2,
    supabase: bool = True,
    code: Path | None = None,
    **env: str,
) -> Iterator[RunningApp]:
    """Start ``revtops app`` with Supabase sign-in on a free port; stop it afterwards.

    ``supabase=False`` starts it in local mode instead: Jupyter's token (pass ``JUPYTER_TOKEN``)
    admits the machine's owner. ``code``: a tree holding another version's ``revtops_kernel``
    and ``extensions/`` (a baseline), put first on the server's and its kernels' path.
    """
    port = free_port()
    log = home / "app.log"
    sign_in = {"SUPABASE_URL": SUPABASE_URL, "SUPABASE_JWT_SECRET": SECRET} if supabase else {}
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REVTOPS_", "SUPABASE_"))},
        "REVTOPS_HOME": str(home / "revtops"),
        **sign_in,
        "REVTOPS_ADMIN_KEY": ADMIN_KEY,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        **({"PYTHONPATH": f"{code}{os.pathsep}{code / 'extensions'}"} if code else {}),
        **env,
    }
    revtops = str(Path(sys.executable).with_name("revtops"))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [revtops, "app", f"--port={port}", "--no-browser", f"--pool-size={pool_size}"],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield RunningApp(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def kernel_message(
    msg_type: str, content: dict[str, Any], metadata: dict[str, Any] | None = None
) -> str:
    """A kernel message for a kernel's websocket (shell channel, the legacy JSON protocol)."""
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "username": "attacker",
        "session": uuid.uuid4().hex,
        "version": "5.3",
        "date": "",
    }
    return json.dumps(
        {
            "header": header,
            "parent_header": {},
            "metadata": metadata or {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
    )


def decode(raw: str | bytes) -> dict[str, Any]:
    """A kernel message from the websocket's legacy protocol (JSON, or binary with buffers)."""
    if isinstance(raw, str):
        return dict(json.loads(raw))
    count = struct.unpack("!I", raw[:4])[0]
    offsets = struct.unpack("!" + "I" * count, raw[4 : 4 + 4 * count])
    end = offsets[1] if count > 1 else len(raw)
    return dict(json.loads(raw[offsets[0] : end]))


def widget_states(app_url: str, kernel_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """What a page's own widget manager asks its kernel for: every widget's state (by model
    id), over the kernel's websocket with ``headers`` (the visitor's credentials)."""

    async def ask() -> dict[str, Any]:
        url = app_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        conn = await websocket_connect(HTTPRequest(url, headers=headers, connect_timeout=30))
        comm_id = uuid.uuid4().hex
        opening = {"comm_id": comm_id, "target_name": "jupyter.widget.control", "data": {}}
        # As ipywidgets' front end opens it (control protocol 1.x), then asks for every state.
        await conn.write_message(kernel_message("comm_open", opening, {"version": "1.0.0"}))
        request = {"comm_id": comm_id, "data": {"method": "request_states"}}
        await conn.write_message(kernel_message("comm_msg", request))
        try:
            while True:
                raw = await asyncio.wait_for(conn.read_message(), timeout=30)
                assert raw is not None, "the kernel's websocket closed"
                message = decode(raw)
                data = message.get("content", {}).get("data", {})
                if message["header"]["msg_type"] == "comm_msg" and "states" in data:
                    return dict(data["states"])
        finally:
            conn.close()

    return asyncio.run(ask())


def visitor_header(states: dict[str, Any]) -> str:
    """The app's header among a page's widget states: a preheated kernel builds the page before
    its visitor arrives and binds them after it is served, so who the page works for is in the
    widgets' state, not in the served HTML."""
    found = [
        str(state["state"].get("value", ""))
        for state in states.values()
        if 'class="rt-header"' in str(state["state"].get("value", ""))
    ]
    assert len(found) == 1, found
    return found[0]
