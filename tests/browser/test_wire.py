"""The web app's kernel websocket is compressed (permessage-deflate): every widget message carries
~550 bytes of Jupyter headers, and compressed a streamed answer costs less than its text on the
wire (bench/chat_stream.py --browser: 6.9x the text plain, 0.8x compressed)."""

from __future__ import annotations

from typing import Any

import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer

from .app_server import RunningApp

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_kernel_websocket_negotiates_permessage_deflate(
    world: tuple[RunningApp, ScriptedMessagesServer], browser: Any
) -> None:
    app, _ = world
    context = browser.new_context()
    context.add_cookies(
        [{"name": "revtops_session", "value": app.token("hal@globex.com", "Hal"),
          "url": app.url + "/"}]
    )  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(120_000)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sockets: dict[str, str] = {}
    extensions: dict[str, str] = {}
    cdp.on("Network.webSocketCreated", lambda e: sockets.update({e["requestId"]: e["url"]}))
    cdp.on(
        "Network.webSocketHandshakeResponseReceived",
        lambda e: extensions.update(
            {
                e["requestId"]: {k.lower(): v for k, v in e["response"]["headers"].items()}.get(
                    "sec-websocket-extensions", ""
                )
            }
        ),
    )
    try:
        page.goto(app.url + "/")
        page.locator(".revtops-chat textarea.rt-input").wait_for()
        page.wait_for_timeout(500)
        kernel = [rid for rid, url in sockets.items() if "/api/kernels/" in url]
        assert kernel, sockets
        for rid in kernel:
            assert "permessage-deflate" in extensions.get(rid, ""), (sockets[rid], extensions)
    finally:
        context.close()
