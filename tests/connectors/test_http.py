"""The shared HTTP layer, against httpx.MockTransport scripts (the real sandbox tests the rest)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import httpx
import pytest

from revtops_kernel.connectors.http import (
    ProviderClient,
    RateBudget,
    RetryPolicy,
    make_http_client,
    paginate,
    retry_after_seconds,
    with_params,
)
from revtops_kernel.errors import (
    ConnectorError,
    ForeignOriginError,
    ProviderAuthError,
    ProviderUnavailableError,
    RateLimitError,
)

SECRET = "pat-na1-0123-secret"


class Tokens:
    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.refreshes = 0

    def token(self) -> str:
        return self.tokens[0]

    def refresh(self) -> bool:
        self.refreshes += 1
        if len(self.tokens) > 1:
            self.tokens.pop(0)
            return True
        return False


def scripted(*steps: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering each request with the next step (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        step = steps[min(len(seen), len(steps) - 1)]
        seen.append(request)
        if isinstance(step, Exception):
            raise step
        return step

    return httpx.MockTransport(handle), seen


def client(
    transport: httpx.MockTransport, tokens: Tokens | None = None, **kwargs: object
) -> tuple[ProviderClient, list[float]]:
    sleeps: list[float] = []
    provider = ProviderClient(
        "hubspot",
        "https://api.example.test",
        tokens or Tokens(SECRET),
        make_http_client(transport=transport),
        sleep=sleeps.append,
        rng=random.Random(7),
        **kwargs,  # type: ignore[arg-type]
    )
    return provider, sleeps


def ok(body: object = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"results": []})


def test_a_success_carries_the_token_and_user_agent() -> None:
    transport, seen = scripted(ok({"results": [1]}))
    provider, sleeps = client(transport)
    response = provider.get("/crm/v3/objects/deals", params={"limit": 100})
    assert response.json() == {"results": [1]}
    assert seen[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert seen[0].headers["User-Agent"].startswith("revtops-workbench/")
    assert str(seen[0].url) == "https://api.example.test/crm/v3/objects/deals?limit=100"
    assert sleeps == []
    assert provider.stats.api_calls == 1


def test_429_waits_retry_after_then_succeeds() -> None:
    transport, seen = scripted(httpx.Response(429, headers={"Retry-After": "3"}), ok())
    provider, sleeps = client(transport)
    provider.get("/x")
    assert sleeps == [3.0]
    assert len(seen) == 2
    assert (provider.stats.rate_limited, provider.stats.api_calls) == (1, 2)


def test_429_without_retry_after_backs_off_exponentially_with_jitter() -> None:
    transport, _ = scripted(*[httpx.Response(429)] * 4, ok())
    provider, sleeps = client(transport, retry=RetryPolicy(base_delay=1.0, max_delay=60))
    provider.get("/x")
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps):
        ceiling = 2**attempt
        assert ceiling / 2 <= slept <= ceiling


def test_a_daily_quota_is_not_retried() -> None:
    transport, seen = scripted(httpx.Response(429, headers={"Retry-After": "86400"}))
    provider, sleeps = client(transport)
    with pytest.raises(RateLimitError):
        provider.get("/x")
    assert (len(seen), sleeps) == (1, [])


def test_server_errors_and_dropped_connections_are_retried() -> None:
    transport, seen = scripted(
        httpx.Response(502, text="bad gateway"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ConnectError("connection refused"),
        ok(),
    )
    provider, sleeps = client(transport)
    assert provider.get("/x").status_code == 200
    assert len(seen) == 4 and len(sleeps) == 3
    assert (provider.stats.server_errors, provider.stats.network_errors) == (1, 2)


def test_retries_run_out_with_an_error_naming_provider_endpoint_and_status() -> None:
    transport, seen = scripted(httpx.Response(503, text="down for maintenance"))
    provider, _ = client(transport, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ProviderUnavailableError) as caught:
        provider.get("/crm/v3/objects/deals", params={"after": "abc"})
    error = caught.value
    assert (error.provider, error.endpoint, error.status) == (
        "hubspot",
        "GET /crm/v3/objects/deals",
        503,
    )
    assert "down for maintenance" in str(error)
    assert SECRET not in str(error)
    assert len(seen) == 3


def test_a_401_fetches_a_fresh_token_once() -> None:
    transport, seen = scripted(httpx.Response(401), ok())
    tokens = Tokens("old-token", "new-token")
    provider, _ = client(transport, tokens)
    provider.get("/x")
    assert [r.headers["Authorization"] for r in seen] == ["Bearer old-token", "Bearer new-token"]

    transport, seen = scripted(httpx.Response(401, json={"message": "expired"}))
    provider, _ = client(transport, Tokens("a", "b", "c"))
    with pytest.raises(ProviderAuthError) as caught:
        provider.get("/x")
    assert len(seen) == 2  # one retry with the fresh token, not a loop
    assert caught.value.status == 401


def test_other_client_errors_are_not_retried() -> None:
    transport, seen = scripted(httpx.Response(400, json={"message": "limit must be <= 100"}))
    provider, _ = client(transport)
    with pytest.raises(ConnectorError, match="limit must be <= 100"):
        provider.get("/x")
    assert len(seen) == 1


def test_the_token_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport, _ = scripted(httpx.ConnectError("boom"), httpx.Response(500), ok())
    provider, _ = client(transport)
    provider.get("/crm/v3/objects/deals")
    assert "GET /crm/v3/objects/deals -> 200" in caplog.text
    assert SECRET not in caplog.text


def test_a_provider_can_say_what_a_rate_limit_looks_like() -> None:
    class Salesforceish(ProviderClient):
        def is_rate_limited(self, response: httpx.Response) -> bool:
            return response.status_code == 403 and "REQUEST_LIMIT" in response.text

    transport, _ = scripted(
        httpx.Response(403, json=[{"errorCode": "REQUEST_LIMIT_EXCEEDED"}]), ok()
    )
    sleeps: list[float] = []
    provider = Salesforceish(
        "salesforce",
        "https://x.test",
        Tokens(SECRET),
        make_http_client(transport=transport),
        sleep=sleeps.append,
    )
    provider.get("/q")
    assert provider.stats.rate_limited == 1 and len(sleeps) == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_rate_budget_keeps_a_rolling_window() -> None:
    clock = FakeClock()
    budget = RateBudget(3, 10.0, clock=clock, sleep=clock.sleep)
    assert [budget.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.acquire() == pytest.approx(10.0)  # the 4th waits for the 1st to age out
    clock.now += 4
    assert budget.acquire() == 0.0  # 4 s later only one request is in the window
    sent: list[float] = []
    for _ in range(9):
        budget.acquire()
        sent.append(clock.now)
    for i in range(3, len(sent)):
        assert sent[i] - sent[i - 3] >= 10.0 - 1e-9  # never more than 3 in any 10 s


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    future = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert (retry_after_seconds(future) or 0) > 1e6
    assert retry_after_seconds(httpx.Response(429)) is None
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"})) is None


def pages_of(*cursors: str | None) -> Callable[[str | None], tuple[str | None, str | None]]:
    chain = dict(zip([None, *cursors[:-1]], cursors, strict=True))
    return lambda cursor: (cursor, chain[cursor])


def test_paginate_walks_until_no_cursor() -> None:
    pages = list(paginate(pages_of("a", "b", None), provider="p", endpoint="e"))
    assert pages == [None, "a", "b"]
    assert list(paginate(pages_of(""), provider="p", endpoint="e")) == [None]


def test_paginate_refuses_a_cursor_that_repeats() -> None:
    fetch = {None: (1, "a"), "a": (2, "b"), "b": (3, "a")}
    with pytest.raises(ConnectorError, match="repeated the page cursor 'a'"):
        list(paginate(lambda c: fetch[c], provider="p", endpoint="e"))


@pytest.mark.parametrize(
    "base",
    [
        "https://api.example.test/crm/v3/objects/deals",
        "http://127.0.0.1:8765/hubspot/crm/v3/objects/deals",
        "https://example.test/a%20b/c%2Fd/caf%C3%A9",
        "https://user@example.test:8443/x",
        "https://example.test",
    ],
)
@pytest.mark.parametrize(
    "params",
    [
        {"limit": 100},
        {"limit": 50, "properties": "dealname,amount,closedate", "archived": "false"},
        {"after": "9870009401", "q": "a b&c=d/é?#%", "empty": "", "n": -3, "zero": 0},
        {"names": "ü€😀", "plus": "1+1", "tilde": "~._-", "brackets": "[x]{y}|\\^`"},
        {"flag": "true", "limit": 10, "LIMIT": "10"},
    ],
)
def test_with_params_makes_the_url_httpx_makes(base: str, params: dict[str, object]) -> None:
    url = httpx.URL(base)
    fast = with_params(url, params)
    expected = url.copy_merge_params(params)  # type: ignore[arg-type]
    assert fast is not None
    assert fast == expected
    assert str(fast) == str(expected)
    assert fast.raw_path == expected.raw_path
    assert fast.params == expected.params
    request = httpx.Request("GET", fast)
    assert str(request.url) == str(httpx.Request("GET", url, params=params).url)  # type: ignore[arg-type]
    assert with_params(url, params) == expected  # encoded pairs reused


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("https://example.test/x?a=1", {"b": "2"}),  # a query of its own: httpx merges
        ("https://example.test/x?", {"b": "2"}),
        ("https://example.test/x", {"b": True}),  # True is not 1: httpx writes "true"
        ("https://example.test/x", {"b": None}),
        ("https://example.test/x", {"b": ["1", "2"]}),
        ("https://example.test/x", {"b": 1.5}),
        ("https://example.test/x", [("b", "1")]),
    ],
)
def test_with_params_leaves_other_shapes_to_httpx(url: str, params: object) -> None:
    assert with_params(httpx.URL(url), params) is None


def test_list_pages_send_the_query_httpx_would() -> None:
    transport, seen = scripted(ok())
    provider, _ = client(transport)
    for after in (None, "10", "20"):
        query = {"limit": 100, "properties": "name,domain", "archived": "false"}
        if after:
            query["after"] = after
        provider.get("/crm/v3/objects/companies", params=query)
        provider.get("/crm/v3/objects/companies", params={"flag": True, "after": after})
    assert [str(r.url) for r in seen] == [
        "https://api.example.test/crm/v3/objects/companies?limit=100&properties=name%2Cdomain&archived=false",
        "https://api.example.test/crm/v3/objects/companies?flag=true&after=",
        "https://api.example.test/crm/v3/objects/companies?limit=100&properties=name%2Cdomain&archived=false&after=10",
        "https://api.example.test/crm/v3/objects/companies?flag=true&after=10",
        "https://api.example.test/crm/v3/objects/companies?limit=100&properties=name%2Cdomain&archived=false&after=20",
        "https://api.example.test/crm/v3/objects/companies?flag=true&after=20",
    ]


def test_a_checked_path_is_kept_but_a_refused_one_is_refused_every_time() -> None:
    transport, seen = scripted(ok())
    provider, _ = client(transport)
    provider.get("/x")
    provider.get("/x")
    assert [str(r.url) for r in seen] == ["https://api.example.test/x"] * 2
    for _ in range(2):
        with pytest.raises(ForeignOriginError):
            provider.get("https://elsewhere.test/x")
    provider.base_url = "https://other.example.test"  # a changed base is checked again
    with pytest.raises(ForeignOriginError):
        provider.get("/x")
    assert len(seen) == 2
