"""A tiny stand-in for Supabase Auth's token endpoint, on loopback, for the session tests.

``POST /auth/v1/token?grant_type=refresh_token`` with ``{"refresh_token": …}`` and the
``apikey`` header, answered as Supabase does: a new access token (HS256, the tests' secret), a
new refresh token (the old one is rotated out), ``expires_in`` and ``expires_at``; an unknown,
rotated or revoked refresh token gets 400 ``refresh_token_not_found``. Test-only.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from revtops_server.supabase import mint_token

ANON_KEY = "anon-key-for-tests"


@dataclass
class Person:
    email: str
    subject: str


class SupabaseStub:
    def __init__(self, secret: str, *, access_lifetime: int = 3600) -> None:
        self.secret = secret
        self.access_lifetime = access_lifetime
        self.delay = 0.0  # seconds each refresh takes: lets concurrent requests overlap
        self.fail_with: int | None = None  # answer every refresh with this status (e.g. 503)
        self.calls = 0
        self._sessions: dict[str, Person] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/supabase"

    def __enter__(self) -> SupabaseStub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sign_in(self, email: str, *, lifetime: int | None = None) -> tuple[str, str]:
        """An access token (``lifetime`` seconds; negative: already expired) and a refresh token."""
        person = Person(email, f"sub-{email}")
        refresh = secrets.token_urlsafe(16)
        with self._lock:
            self._sessions[refresh] = person
        return self.access_token(person, lifetime), refresh

    def access_token(self, person: Person, lifetime: int | None = None) -> str:
        return mint_token(
            secret=self.secret,
            supabase_url=self.url,
            subject=person.subject,
            email=person.email,
            lifetime=self.access_lifetime if lifetime is None else lifetime,
            jti=secrets.token_hex(8),  # distinct tokens, even within one second
        )

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            self._sessions.pop(refresh_token, None)

    def _refresh(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls += 1
            if self.fail_with is not None:
                return self.fail_with, {"code": self.fail_with, "msg": "unavailable"}
            person = self._sessions.pop(str(body.get("refresh_token")), None)
            if person is None:
                return 400, {
                    "code": 400,
                    "error_code": "refresh_token_not_found",
                    "msg": "Invalid Refresh Token: Refresh Token Not Found",
                }
            refresh = secrets.token_urlsafe(16)
            self._sessions[refresh] = person
        now = int(time.time())
        return 200, {
            "access_token": self.access_token(person),
            "token_type": "bearer",
            "expires_in": self.access_lifetime,
            "expires_at": now + self.access_lifetime,
            "refresh_token": refresh,
            "user": {"id": person.subject, "email": person.email},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                return None

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if parts.path != "/supabase/auth/v1/token":
                    self._send(404, {"code": 404, "msg": "not found"})
                elif parse_qs(parts.query).get("grant_type") != ["refresh_token"]:
                    self._send(400, {"code": 400, "error_code": "validation_failed"})
                elif self.headers.get("apikey") != ANON_KEY:
                    self._send(401, {"message": "No API key found in request"})
                else:
                    if stub.delay:
                        time.sleep(stub.delay)
                    self._send(*stub._refresh(json.loads(raw or b"{}")))

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
