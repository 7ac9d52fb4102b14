"""The connectors' wire: HTTP/1.1 on the standard library's ``http.client``, as an httpx transport.

A sync makes hundreds of calls for pages of 50-100 KB. With httpx's own transport (httpcore
and h11, pure Python state machines over each chunk read) a call cost 0.6-0.9 ms of CPU, a
fifth of a HubSpot sync's client CPU on PostgreSQL; ``http.client`` reads the status line and
headers through a C-buffered file and a body in one read: 0.45-0.55 ms a call with httpx's
client above it (bench/README.md). Everything above the wire stays httpx's:
``ProviderClient``, event hooks, cookies, the Request and Response objects, and the tests'
``MockTransport``.

What the transport keeps of httpcore's behaviour:

- a pool of keep-alive connections per (scheme, host, port), at most ``max_connections`` in
  use at once (a request waits up to the pool timeout, then ``httpx.PoolTimeout``) and at most
  ``max_keepalive_connections`` idle; an idle connection is dropped after ``keepalive_expiry``
  seconds or when its socket turned readable (the server closed it);
- httpx's timeouts per operation (connect, write, read), and TLS with httpx's default context
  (certifi, ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made on the first https request;
- failures as httpx's exceptions (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``,
  ...), which ``ProviderClient`` retries; a connection that failed is closed, never reused.

Responses are read whole before they are returned (the connectors never stream a body).
``make_http_client`` uses httpx's own transport when the environment names a proxy.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from typing import NamedTuple

import httpx

KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpcore's default)

_Origin = tuple[str, str, int]  # scheme, host, port


class _Idle(NamedTuple):
    connection: http.client.HTTPConnection
    since: float


class StdlibTransport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` over pooled ``http.client`` connections (HTTP/1.1)."""

    def __init__(
        self,
        limits: httpx.Limits | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        limits = limits or httpx.Limits()
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = limits.max_keepalive_connections
        self._slots = (
            None
            if limits.max_connections is None
            else threading.BoundedSemaphore(limits.max_connections)
        )
        self._idle: dict[_Origin, list[_Idle]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{url.scheme}://'.", request=request
            )
        timeouts = request.extensions.get("timeout", {})
        if self._slots is not None:
            pool = timeouts.get("pool")
            if not self._slots.acquire(timeout=pool):
                raise httpx.PoolTimeout("no connection free in the pool", request=request)
        try:
            return self._exchange(request, timeouts)
        finally:
            if self._slots is not None:
                self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for entries in idle.values():
            for entry in entries:
                entry.connection.close()

    # --- one request and its response ----------------------------------------------------------
    def _exchange(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        url = request.url
        https = url.scheme == "https"
        origin = (url.scheme, url.host, url.port or (443 if https else 80))
        body = request.read()
        connection = self._checkout(origin)
        try:
            if connection is None:
                connection = self._connect(request, origin, timeouts.get("connect"))
            sock = connection.sock
            with _mapped(request, httpx.WriteTimeout, httpx.WriteError):
                sock.settimeout(timeouts.get("write"))
                connection.putrequest(
                    request.method,
                    url.raw_path.decode("ascii"),
                    skip_host=True,  # httpx's Request has its Host and Accept-Encoding headers
                    skip_accept_encoding=True,
                )
                for name, value in request.headers.raw:
                    connection.putheader(name, value)
                chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
                connection.endheaders(body or None, encode_chunked=chunked)
            with _mapped(request, httpx.ReadTimeout, httpx.ReadError):
                sock.settimeout(timeouts.get("read"))
                answer = connection.getresponse()
                content = answer.read()
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        if answer.will_close or request.headers.get("connection", "").lower() == "close":
            connection.close()
        else:
            self._checkin(origin, connection)
        return httpx.Response(
            answer.status,
            headers=[
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in answer.getheaders()
            ],
            stream=httpx.ByteStream(content),
            extensions={
                "http_version": b"HTTP/1.0" if answer.version == 10 else b"HTTP/1.1",
                "reason_phrase": answer.reason.encode("latin-1", "replace"),
            },
        )

    def _connect(
        self, request: httpx.Request, origin: _Origin, timeout: float | None
    ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._tls()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        with _mapped(request, httpx.ConnectTimeout, httpx.ConnectError):
            connection.connect()
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    # --- the pool --------------------------------------------------------------------------------
    def _checkout(self, origin: _Origin) -> http.client.HTTPConnection | None:
        """An idle connection to ``origin`` still worth using, or None (connect anew)."""
        now = time.monotonic()
        while True:
            with self._lock:
                entries = self._idle.get(origin)
                if not entries:
                    return None
                entry = entries.pop()
            connection = entry.connection
            if now - entry.since < self._keepalive_expiry and not _readable(connection.sock):
                return connection
            connection.close()  # expired, or closed by the server (or it sent what we never asked)

    def _checkin(self, origin: _Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            room = self._max_idle is None or self._idle_count() < self._max_idle
            if not self._closed and room:
                self._idle.setdefault(origin, []).append(_Idle(connection, time.monotonic()))
                return
        connection.close()

    def _idle_count(self) -> int:
        return sum(len(entries) for entries in self._idle.values())


def _readable(sock: socket.socket | None) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it (or
    sent bytes no request asked for); either way it is not reused."""
    if sock is None or sock.fileno() < 0:
        return True
    if not hasattr(select, "poll"):  # Windows: select() has no descriptor limit there
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _mapped:
    """Turns the standard library's failures inside the block into httpx's: ``timeout`` for
    a socket timeout, ``error`` for any other OS error, ``RemoteProtocolError`` for a reply
    http.client cannot read."""

    def __init__(
        self,
        request: httpx.Request,
        timeout: type[httpx.TimeoutException],
        error: type[httpx.NetworkError],
    ) -> None:
        self.request, self.timeout, self.error = request, timeout, error

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
            raise self.timeout(str(exc) or "timed out", request=self.request) from exc
        if isinstance(exc, http.client.RemoteDisconnected):  # also a ConnectionResetError
            raise httpx.RemoteProtocolError(str(exc), request=self.request) from exc
        if isinstance(exc, OSError):  # ssl.SSLError included
            raise self.error(str(exc) or type(exc).__name__, request=self.request) from exc
        if isinstance(exc, http.client.HTTPException):
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=self.request
            ) from exc
