"""The outermost ASGI layer: what happens to a request before a provider route sees it.

In order: count it, maybe drop the connection, maybe answer a transient 5xx, check the bearer
token, apply the provider's rate limits; then pass it on, adding the provider's usage headers
to whatever the route answers. Errors use each provider's real wire format.

It is raw ASGI (not Starlette middleware) for two reasons: it must run before Starlette wraps
``send`` (dropping a connection needs the server's own transport), and it sits on every
request of a benchmark that pushes hundreds of pages a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from revtops_sandbox import google_errors, hubspot, salesforce
from revtops_sandbox.faults import SLACK_TIERS, RollingWindow
from revtops_sandbox.state import SandboxState

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HUBSPOT_LABELS = (
    (re.compile(r"^/crm/v3/objects/([^/]+)/search$"), r"/crm/v3/objects/\1/search"),
    (re.compile(r"^/crm/v3/objects/([^/]+)/[^/]+$"), r"/crm/v3/objects/\1/{id}"),
    (re.compile(r"^/crm/v3/owners/?$"), "/crm/v3/owners"),
)
_SF_LABELS = (
    (re.compile(r"^/services/data/v\d+\.\d+/(query|queryAll)/[^/]+$"), r"/\1/{locator}"),
    (re.compile(r"^/services/data/v\d+\.\d+/jobs/query/[^/]+(/results)?$"), r"/jobs/query/{id}\1"),
    (re.compile(r"^/services/data/v\d+\.\d+/sobjects/([^/]+)/describe$"), r"/sobjects/\1/describe"),
    (re.compile(r"^/services/data/v\d+\.\d+/sobjects/([^/]+)/[^/]+$"), r"/sobjects/\1/{id}"),
    (re.compile(r"^/services/data/v\d+\.\d+(/.*)?$"), r"\1"),
)
_SLACK_LABELS = (
    (re.compile(r"^/api/([^/]+)$"), r"/api/\1"),
    (re.compile(r"^/files/upload/.*$"), "/files/upload"),
)
_CALENDAR_LABELS = (
    (re.compile(r"^/calendars/[^/]+/events/[^/]+$"), "/calendars/{calendarId}/events/{eventId}"),
    (re.compile(r"^/calendars/[^/]+/events$"), "/calendars/{calendarId}/events"),
    (re.compile(r"^/calendars/[^/]+$"), "/calendars/{calendarId}"),
)
_NANGO_LABELS = (
    (re.compile(r"^/connections?/[^/]+$"), "/connection/{id}"),
    (re.compile(r"^/proxy/.*$"), "/proxy"),
)
_LABELS = {
    "hubspot": _HUBSPOT_LABELS,
    "salesforce": _SF_LABELS,
    "slack": _SLACK_LABELS,
    "google_calendar": _CALENDAR_LABELS,
    "nango": _NANGO_LABELS,
}
# Where each provider is mounted; the rest of the path is the provider's own.
PREFIXES = (
    ("/hubspot", "hubspot"),
    ("/salesforce", "salesforce"),
    ("/slack", "slack"),
    ("/calendar/v3", "google_calendar"),
    ("/nango", "nango"),
)
# Paths that issue tokens or are pre-signed, so they need none.
_OPEN_PATHS = ("/oauth/v1/token", "/services/oauth2/token")


def endpoint_label(provider: str, method: str, path: str) -> str:
    """``hubspot GET /crm/v3/objects/deals``: ids, locators and API versions folded away."""
    for pattern, repl in _LABELS.get(provider, ()):
        if pattern.match(path):
            path = pattern.sub(repl, path) or "/"
            break
    return f"{provider} {method} {path}"


def provider_of(path: str) -> tuple[str, str] | None:
    """(provider, the path below its mount) or None for admin and unknown paths."""
    for prefix, provider in PREFIXES:
        if path.startswith(prefix + "/"):
            return provider, path[len(prefix) :]
    return None


@dataclass(slots=True)
class Verdict:
    drop: bool = False
    status: int = 0  # answer now with this status (0: pass the request on)
    body: bytes = b""
    content_type: bytes = b"application/json;charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Gate:
    """Wraps the Starlette app; everything under /hubspot and /salesforce passes through it."""

    def __init__(self, state: SandboxState, app: ASGIApp) -> None:
        self.state = state
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = provider_of(scope["path"])
        if found is None:  # admin routes and unknown paths: no faults, no counting
            await self.app(scope, receive, send)
            return
        provider, sub = found
        label = endpoint_label(provider, scope["method"], sub)
        with self.state.lock:
            if provider == "nango":  # Nango checks its secret key itself; no faults
                self.state.stats.requests[label] += 1
                verdict = Verdict()
            else:
                verdict = self._judge(provider, sub, scope, label)
        if verdict.drop:
            await _drop_connection(send)
            return
        if verdict.status:
            self.state.stats.responses[(label, verdict.status)] += 1
            await send(
                {
                    "type": "http.response.start",
                    "status": verdict.status,
                    "headers": [
                        (b"content-type", verdict.content_type),
                        (b"content-length", str(len(verdict.body)).encode()),
                        *verdict.headers,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": verdict.body})
            return
        extra = verdict.headers
        responses = self.state.stats.responses

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                responses[(label, message["status"])] += 1
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    # -- the decision, under the state lock -----------------------------------------------------

    def _judge(self, provider: str, sub: str, scope: Scope, label: str) -> Verdict:
        st = self.state
        st.stats.requests[label] += 1
        pf = st.faults.provider(provider)
        rng = st.rng[provider]
        if pf.drop_rate and rng.random() < pf.drop_rate:
            st.stats.events[(provider, "dropped")] += 1
            return Verdict(drop=True)
        if pf.error_rate and rng.random() < pf.error_rate:
            st.stats.events[(provider, "injected_error")] += 1
            return _server_error(provider, rng.choice(pf.error_statuses))
        if sub in _OPEN_PATHS or (provider == "slack" and sub.startswith("/files/upload/")):
            return Verdict()
        check = st.tokens[provider].check(_bearer(scope), pf.token_ttl_calls)
        if check != "ok":
            st.stats.events[(provider, "unauthorized")] += 1
            verdict = _unauthorized(provider, check)
            verdict.headers += self._usage_headers(provider)
            return verdict
        if pf.redirect_to:
            st.stats.events[(provider, "redirected")] += 1
            query = scope.get("query_string") or b""
            location = pf.redirect_to.rstrip("/").encode() + scope["path"].encode()
            return Verdict(
                status=307, headers=[(b"location", location + (b"?" + query if query else b""))]
            )
        if provider == "hubspot":
            return self._hubspot_limits(sub, scope)
        if provider == "slack":
            return self._slack_limits(sub)
        if provider == "google_calendar":
            return self._calendar_limits()
        return self._salesforce_limits()

    def _slack_limits(self, sub: str) -> Verdict:
        """Slack's tiers: calls per method per workspace in a rolling window."""
        st = self.state
        pf = st.faults.slack
        method = sub.removeprefix("/api/")
        st.daily_calls["slack"] += 1
        if not pf.rate_limits:
            return Verdict()
        tier = SLACK_TIERS.get(method, "tier3")
        limit = pf.tier_limits.get(tier, 50)
        if pf.non_marketplace and method in ("conversations.history", "conversations.replies"):
            limit = 1
        window = st.slack_windows.get(method)
        if window is None:
            window = st.slack_windows[method] = RollingWindow(pf.window_s)
        window.window_s = pf.window_s
        if window.count() < limit:
            window.add()
            return Verdict()
        st.daily_calls["slack"] -= 1
        st.stats.events[("slack", "rate_limited")] += 1
        st.stats.events[("slack", "retry_after")] += 1
        wait = str(max(1, math.ceil(window.retry_after_s()))).encode()
        return Verdict(status=429, body=_SLACK_RATELIMITED, headers=[(b"retry-after", wait)])

    def _calendar_limits(self) -> Verdict:
        """Google's per-user quota: 403 userRateLimitExceeded or 429 rateLimitExceeded."""
        st = self.state
        pf = st.faults.google_calendar
        st.daily_calls["google_calendar"] += 1
        if not pf.rate_limits:
            return Verdict()
        window = st.calendar_window
        window.window_s = pf.window_s
        if window.count() < pf.per_window_limit:
            window.add()
            return Verdict()
        st.daily_calls["google_calendar"] -= 1
        st.stats.events[("google_calendar", "rate_limited")] += 1
        if st.rng["google_calendar"].random() < 0.5:
            body = google_errors.error_bytes(
                403, "Rate Limit Exceeded", "userRateLimitExceeded", domain="usageLimits"
            )
            return Verdict(status=403, body=body)
        body = google_errors.error_bytes(
            429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits"
        )
        return Verdict(status=429, body=body)

    def _hubspot_limits(self, sub: str, scope: Scope) -> Verdict:
        st = self.state
        pf = st.faults.hubspot
        is_search = scope["method"] == "POST" and sub.endswith("/search")
        policy = None
        wait_s = 0.0
        if pf.rate_limits:
            if st.hubspot_window.count() >= pf.ten_second_limit:
                policy, wait_s = "TEN_SECONDLY_ROLLING", st.hubspot_window.retry_after_s()
            elif is_search and st.hubspot_search_window.count() >= pf.search_per_second:
                policy, wait_s = "SECONDLY", st.hubspot_search_window.retry_after_s()
            elif st.daily_calls["hubspot"] >= pf.daily_limit:
                policy, wait_s = "DAILY", 3600.0
        if policy is None:
            st.hubspot_window.add()
            st.hubspot_second_window.add()
            if is_search:
                st.hubspot_search_window.add()
            st.daily_calls["hubspot"] += 1
            return Verdict(headers=self._usage_headers("hubspot"))
        st.stats.events[("hubspot", "rate_limited")] += 1
        headers = self._usage_headers("hubspot")
        if st.rng["hubspot"].random() < pf.retry_after_share:
            st.stats.events[("hubspot", "retry_after")] += 1
            headers.append((b"retry-after", str(max(1, math.ceil(wait_s))).encode()))
        body = json.dumps(hubspot.rate_limit_body(policy), separators=(",", ":")).encode()
        return Verdict(status=429, body=body, headers=headers)

    def _salesforce_limits(self) -> Verdict:
        st = self.state
        pf = st.faults.salesforce
        if pf.rate_limits and st.daily_calls["salesforce"] >= pf.daily_limit:
            st.stats.events[("salesforce", "rate_limited")] += 1
            body = salesforce.error_bytes("TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
            return Verdict(status=403, body=body, headers=self._usage_headers("salesforce"))
        st.daily_calls["salesforce"] += 1
        return Verdict(headers=self._usage_headers("salesforce"))

    def _usage_headers(self, provider: str) -> list[tuple[bytes, bytes]]:
        st = self.state
        pf = st.faults.provider(provider)
        used = st.daily_calls[provider]
        if provider in ("slack", "google_calendar"):
            return []
        if provider == "salesforce":
            return [(b"sforce-limit-info", f"api-usage={used}/{pf.daily_limit}".encode())]
        in_window = st.hubspot_window.count()
        per_second = max(1, pf.ten_second_limit // 10)
        in_second = st.hubspot_second_window.count()
        return [
            (b"x-hubspot-ratelimit-interval-milliseconds", b"10000"),
            (b"x-hubspot-ratelimit-max", str(pf.ten_second_limit).encode()),
            (
                b"x-hubspot-ratelimit-remaining",
                str(max(0, pf.ten_second_limit - in_window)).encode(),
            ),
            (b"x-hubspot-ratelimit-secondly", str(per_second).encode()),
            (
                b"x-hubspot-ratelimit-secondly-remaining",
                str(max(0, per_second - in_second)).encode(),
            ),
            (b"x-hubspot-ratelimit-daily", str(pf.daily_limit).encode()),
            (b"x-hubspot-ratelimit-daily-remaining", str(max(0, pf.daily_limit - used)).encode()),
        ]


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            # Salesforce also accepts the older "OAuth <token>" scheme.
            if scheme.lower() in ("bearer", "oauth"):
                return token.strip() or None
            return None
    return None


_SLACK_RATELIMITED = b'{"ok":false,"error":"ratelimited"}'
_SLACK_AUTH_ERRORS = {
    "missing": "not_authed",
    "invalid": "invalid_auth",
    "expired": "token_expired",
}


def _unauthorized(provider: str, check: str) -> Verdict:
    if provider == "slack":  # Slack reports auth failures as application errors
        body = json.dumps({"ok": False, "error": _SLACK_AUTH_ERRORS[check]}).encode()
        return Verdict(status=200, body=body)
    if provider == "google_calendar":
        return Verdict(
            status=401,
            body=google_errors.auth_error_bytes(),
            headers=[(b"www-authenticate", b'Bearer realm="https://accounts.google.com/"')],
        )
    if provider == "salesforce":
        body = salesforce.error_bytes("Session expired or invalid", "INVALID_SESSION_ID")
        return Verdict(status=401, body=body)
    if check == "expired":
        data = hubspot.error_body(
            "The OAuth token used to make this call expired 0 second(s) ago.",
            "EXPIRED_AUTHENTICATION",
        )
    else:  # missing or unknown token: HubSpot answers both the same way
        data = hubspot.error_body(
            "Authentication credentials not found. This API supports OAuth 2.0 authentication "
            "and you can find more details at "
            "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        )
    return Verdict(status=401, body=json.dumps(data, separators=(",", ":")).encode())


def _server_error(provider: str, status: int) -> Verdict:
    """A transient failure as each provider (or the proxy in front of it) really sends it."""
    if status in (502, 504):  # from the edge proxy: HTML, not JSON
        title = "502 Bad Gateway" if status == 502 else "504 Gateway Time-out"
        html = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return Verdict(status=status, body=html.encode(), content_type=b"text/html")
    if provider == "slack":
        error = "service_unavailable" if status == 503 else "internal_error"
        return Verdict(status=status, body=json.dumps({"ok": False, "error": error}).encode())
    if provider == "google_calendar":
        if status == 503:
            body = google_errors.error_bytes(503, "The service is currently unavailable.",
                                             "backendError")  # fmt: skip
        else:
            body = google_errors.error_bytes(500, "Backend Error", "backendError")
        return Verdict(status=status, body=body)
    if provider == "salesforce":
        code = "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION"
        body = salesforce.error_bytes("An unexpected error occurred. Please try again.", code)
        return Verdict(status=status, body=body)
    data = hubspot.error_body(
        "internal error" if status == 500 else "Service temporarily unavailable",
        "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE",
    )
    return Verdict(status=status, body=json.dumps(data, separators=(",", ":")).encode())


async def _drop_connection(send: Send) -> None:
    """Close the TCP connection without answering, as a crashed proxy or a reset would.

    ASGI has no "hang up" message, so this reaches for the uvicorn transport behind ``send``
    (its per-request cycle object) and closes it; once the close has run, uvicorn sees a
    disconnected client and writes nothing more.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        logger.warning("cannot drop the connection (server is not uvicorn); answering 500")
        raise RuntimeError("sandbox fault: dropped connection")
    transport.close()
    for _ in range(3):  # let connection_lost run so uvicorn marks the cycle disconnected
        await asyncio.sleep(0)
