"""StdlibTransport (http.client under httpx) against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.http_transport import StdlibTransport


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, object]]

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))

    def _answer(self, body: bytes) -> None:
        self.server.seen.append(  # type: ignore[attr-defined]
            {
                "path": self.path,
                "peer": self.client_address[1],
                "headers": dict(self.headers.items()),
                "body": body,
            }
        )
        if self.path.startswith("/slow"):
            time.sleep(0.5)
        if self.path.startswith("/garbage"):
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            self.close_connection = True
            return
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"a":', b"[1,2,", b"3]}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = json.dumps({"path": self.path, "body": body.decode()}).encode()
        self.send_response(201 if body else 200, "Fine Thanks")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        if self.path.startswith("/close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        if self.path.startswith("/drop"):  # closes after answering, without saying so
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def client(**limits: int) -> httpx.Client:
    transport = StdlibTransport(httpx.Limits(**limits) if limits else None)
    return httpx.Client(transport=transport, timeout=httpx.Timeout(2.0))


def test_get_and_post_round_trip(server: ThreadingHTTPServer) -> None:
    with client() as http:
        got = http.get(f"{base(server)}/items?limit=100&after=a%2Cb", headers={"X-Token": "t"})
        posted = http.post(f"{base(server)}/search", json={"q": "é"})
    assert got.status_code == 200 and got.reason_phrase == "Fine Thanks"
    assert got.http_version == "HTTP/1.1"
    assert got.json() == {"path": "/items?limit=100&after=a%2Cb", "body": ""}
    assert got.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert posted.status_code == 201
    assert json.loads(posted.json()["body"]) == {"q": "é"}
    first, second = server.seen  # type: ignore[attr-defined]
    assert first["headers"]["X-Token"] == "t"
    assert first["headers"]["Host"] == f"127.0.0.1:{server.server_address[1]}"
    assert second["headers"]["Content-Type"] == "application/json"


def test_keep_alive_reuses_one_connection(server: ThreadingHTTPServer) -> None:
    with client() as http:
        for _ in range(3):
            assert http.get(f"{base(server)}/a").status_code == 200
    assert len({seen["peer"] for seen in server.seen}) == 1  # type: ignore[attr-defined]


def test_closed_connections_are_not_reused(server: ThreadingHTTPServer) -> None:
    with client() as http:
        assert http.get(f"{base(server)}/close").status_code == 200  # Connection: close
        assert http.get(f"{base(server)}/drop").status_code == 200  # closed without a word
        time.sleep(0.05)  # the server's FIN arrives; the idle socket turns readable
        assert http.get(f"{base(server)}/after").status_code == 200
    peers = [seen["peer"] for seen in server.seen]  # type: ignore[attr-defined]
    assert len(set(peers)) == 3


def test_expired_idle_connection_is_replaced(server: ThreadingHTTPServer) -> None:
    transport = StdlibTransport(keepalive_expiry=0.0)
    with httpx.Client(transport=transport) as http:
        http.get(f"{base(server)}/a")
        http.get(f"{base(server)}/b")
    assert len({seen["peer"] for seen in server.seen}) == 2  # type: ignore[attr-defined]


def test_chunked_response(server: ThreadingHTTPServer) -> None:
    with client() as http:
        assert http.get(f"{base(server)}/chunked").json() == {"a": [1, 2, 3]}


def test_failures_are_httpx_errors(server: ThreadingHTTPServer) -> None:
    with httpx.Client(transport=StdlibTransport(), timeout=httpx.Timeout(0.1)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"{base(server)}/slow")
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"{base(server)}/garbage")
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        with pytest.raises(httpx.ConnectError):
            http.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(httpx.UnsupportedProtocol):
            http.get("ftp://127.0.0.1/")
        assert http.get(f"{base(server)}/fine").status_code == 200  # a failure is not reused


def test_pool_timeout_when_every_connection_is_busy(server: ThreadingHTTPServer) -> None:
    transport = StdlibTransport(httpx.Limits(max_connections=1))
    http = httpx.Client(transport=transport, timeout=httpx.Timeout(2.0, pool=0.05))
    slow = threading.Thread(target=http.get, args=(f"{base(server)}/slow",))
    slow.start()
    time.sleep(0.1)
    with pytest.raises(httpx.PoolTimeout):
        http.get(f"{base(server)}/a")
    slow.join()
    assert http.get(f"{base(server)}/a").status_code == 200
    http.close()


def test_make_http_client_uses_it_unless_a_proxy_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert isinstance(make_http_client()._transport, StdlibTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert isinstance(make_http_client()._transport, httpx.HTTPTransport)
