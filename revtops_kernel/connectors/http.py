"""The one HTTP layer under every connector: pooled client, retries, rate budget, pagination.

Only this module sets timeouts, the user agent, retry and backoff rules. A connector gets a
``ProviderClient`` and asks it for responses; the client

- waits for its turn in the provider's client-side ``RateBudget`` (so the steady state sees no
  429 at all), then sends with the current token;
- on 429 (or what a provider calls a rate limit) waits ``Retry-After`` when the server sent one,
  else an exponential backoff with jitter, and tries again; 5xx and network failures likewise;
- on 401 asks its token source for a fresh token once (Nango refreshes) and retries;
- sends the token only to its configured origin (``origins``): every URL, a path joined to the
  base URL or an absolute link from a response, and every redirect's ``Location`` is checked
  first; redirects are never followed by httpx, and one to another origin raises
  ``ForeignOriginError`` (a redirect on the same origin is followed, checked, up to
  ``MAX_REDIRECTS``);
- turns what is left into ``ConnectorError``s naming provider, endpoint and status, never a token;
- logs one line per request: provider, method, path, status, milliseconds.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from revtops_kernel import __version__, jsoncodec
from revtops_kernel.connectors.origins import (
    Origin,
    join,
    origin_of,
    redirect_location,
    require_origin,
)
from revtops_kernel.errors import (
    ConnectorError,
    ProviderAuthError,
    ProviderUnavailableError,
    RateLimitError,
)

log = logging.getLogger(__name__)

USER_AGENT = f"revtops-workbench/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
ERROR_BODY_CHARS = 300
MAX_REDIRECTS = 5

T = TypeVar("T")


def make_http_client(
    *, transport: httpx.BaseTransport | None = None, max_connections: int = 8
) -> httpx.Client:
    """The pooled client every connector shares (one per sync run)."""
    return httpx.Client(
        timeout=DEFAULT_TIMEOUT,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        transport=transport,
        follow_redirects=False,
    )


class ProviderResponse(httpx.Response):
    """An ``httpx.Response`` whose ``json()`` decodes with orjson (``jsoncodec.loads``, the same
    values as the standard library): decoding was ~40% of a page's client time."""

    def json(self, **kwargs: Any) -> Any:
        if kwargs:  # json.loads options (object_hook, ...) only the standard library takes
            return super().json(**kwargs)
        return jsoncodec.loads(self.content)


class TokenSource(Protocol):
    """Where a connector's bearer token comes from (settings, or Nango)."""

    def token(self) -> str: ...

    def refresh(self) -> bool:
        """Get a new token after a 401; True if there is one worth retrying with."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential, with "equal jitter": half fixed, half random, so clients spread out."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class RateBudget:
    """At most ``limit`` requests in any ``window`` seconds, shared by the threads of a client.

    Set a little under the provider's published limit: the provider counts every call of the
    account, ours included from other processes.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate budget needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def resize(self, limit: int, window: float) -> None:
        """Adopt a limit the provider announced (e.g. in rate-limit headers)."""
        if limit < 1 or window <= 0:
            return
        with self._lock:
            self.limit, self.window = limit, window

    def acquire(self) -> float:
        """Block until a request may go; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return waited
                pause = self.window - (now - self._sent[0])
            self._sleep(pause)
            waited += pause


@dataclass
class CallStats:
    api_calls: int = 0  # responses received
    rate_limited: int = 0  # 429s (or provider equivalents) received
    server_errors: int = 0
    network_errors: int = 0
    budget_wait_seconds: float = 0.0
    by_endpoint: collections.Counter[str] = field(default_factory=collections.Counter)


class ProviderClient:
    """Requests to one provider, with its base URL, token, budgets and retry rules."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        tokens: TokenSource,
        http: httpx.Client,
        *,
        budgets: Mapping[str, RateBudget] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        try:
            self.origin = origin_of(self.base_url)  # where this client's token may go
        except ValueError as exc:
            raise ValueError(f"{provider} base URL {self.base_url!r}: {exc}") from exc
        self.tokens = tokens
        self.http = http
        self.budgets = dict(budgets or {})
        self.retry = retry or RetryPolicy()
        self.stats = CallStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        # Checked URLs of request paths (not of links from answers, each used once).
        self._checked: dict[tuple[str, Origin, str], httpx.URL] = {}

    # --- hooks a provider may override ---------------------------------------------------------
    def is_rate_limited(self, response: httpx.Response) -> bool:
        return response.status_code == 429

    def observe(self, response: httpx.Response) -> None:
        """See every response (a provider may read its rate-limit headers here)."""

    def error_message(self, response: httpx.Response) -> str:
        return response.text[:ERROR_BODY_CHARS].strip() or response.reason_phrase

    # --- requests ------------------------------------------------------------------------------
    def get(
        self, path: str, *, params: Any = None, budgets: tuple[str, ...] = ()
    ) -> httpx.Response:
        return self.request("GET", path, params=params, budgets=budgets)

    def post(
        self, path: str, *, json: Any = None, params: Any = None, budgets: tuple[str, ...] = ()
    ) -> httpx.Response:
        return self.request("POST", path, json=json, params=params, budgets=budgets)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        budgets: tuple[str, ...] = (),
    ) -> httpx.Response:
        """Send with retries; return a 2xx/3xx response or raise a ``ConnectorError``.

        ``path`` is joined to the base URL, or is an absolute URL (a provider's own link); either
        way its origin must be the configured one, or ``ForeignOriginError`` is raised before
        anything is sent.
        """
        url = self._checked_url(method, path)
        endpoint = f"{method} {url.path}"
        if params:
            merged = with_params(url, params)
            if merged is not None:
                url, params = merged, None
        refreshed = False
        failure: ConnectorError | None = None
        attempt = redirects = 0
        while attempt < self.retry.max_attempts:
            attempt += 1
            self._wait_for_budget(("default", *budgets))
            request_headers = {**(headers or {}), "Authorization": f"Bearer {self.tokens.token()}"}
            started = time.monotonic()
            try:
                response = self.http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=request_headers,
                    follow_redirects=False,  # whatever the client says: each hop is checked
                )
            except httpx.TransportError as exc:
                self.stats.network_errors += 1
                failure = ProviderUnavailableError(
                    self.provider, endpoint, None, f"{type(exc).__name__}: {exc}"
                )
                log.warning("%s %s failed: %s (attempt %d)", self.provider, endpoint, exc, attempt)
                self._sleep(self.retry.backoff(attempt - 1, self._rng))
                continue
            self._count(endpoint, response, started)
            if response.is_redirect:
                url = self._redirect_target(method, response, redirects)
                redirects, attempt = redirects + 1, attempt - 1  # a hop is not a retry
                params = None  # the Location carries its own query
                if response.status_code == 303 or (
                    response.status_code in (301, 302) and method == "POST"
                ):
                    method, json = "GET", None  # as browsers and httpx do
                continue
            if response.status_code == 401 and not refreshed:
                refreshed = True
                if self.tokens.refresh():
                    continue
            if self.is_rate_limited(response):
                self.stats.rate_limited += 1
                delay = retry_after_seconds(response)
                failure = RateLimitError(
                    self.provider, endpoint, response.status_code, self.error_message(response)
                )
                if delay is not None and delay > self.retry.max_delay:
                    raise failure  # a daily quota: retrying now only burns more of it
                self._sleep(
                    delay if delay is not None else self.retry.backoff(attempt - 1, self._rng)
                )
                continue
            if response.status_code >= 500:
                self.stats.server_errors += 1
                failure = ProviderUnavailableError(
                    self.provider, endpoint, response.status_code, self.error_message(response)
                )
                self._sleep(self.retry.backoff(attempt - 1, self._rng))
                continue
            if response.status_code in (401, 403):
                raise ProviderAuthError(
                    self.provider, endpoint, response.status_code, self.error_message(response)
                )
            if response.status_code >= 400:
                raise ConnectorError(
                    self.provider, endpoint, response.status_code, self.error_message(response)
                )
            response.__class__ = ProviderResponse  # same object and state, a faster json()
            return response
        assert failure is not None
        raise failure

    def _checked_url(self, method: str, path: str) -> httpx.URL:
        # A list walk asks for the same path page after page: parsing and checking it again
        # cost ~0.1 ms a call. Only accepted URLs are kept (a refusal raises every time).
        key = (self.base_url, self.origin, path)
        checked = self._checked.get(key)
        if checked is not None:
            return checked
        try:
            url = join(self.base_url, path)
        except ValueError:
            url = httpx.URL()  # unreadable: refused below like any foreign URL
        # Connectors pass absolute URLs only when an answer handed them one (nextRecordsUrl).
        absolute = path.lower().startswith(("http://", "https://"))
        why = "a link in the provider's answer" if absolute else "the request path"
        checked = require_origin(self.provider, method, url, self.origin, why=why)
        if not absolute:
            if len(self._checked) >= _CHECKED_URLS:
                self._checked.clear()
            self._checked[key] = checked
        return checked

    def _redirect_target(self, method: str, response: httpx.Response, hops: int) -> httpx.URL:
        """The next hop of a redirect, if it stays on the configured origin."""
        status = response.status_code
        target = redirect_location(response) or httpx.URL()
        url = require_origin(
            self.provider, method, target, self.origin, status=status, why=f"a {status} redirect"
        )
        if hops >= MAX_REDIRECTS:
            raise ConnectorError(
                self.provider,
                f"{method} {response.request.url.path}",
                status,
                f"more than {MAX_REDIRECTS} redirects; check the base URL setting",
            )
        return url

    def _wait_for_budget(self, names: tuple[str, ...]) -> None:
        for name in names:
            budget = self.budgets.get(name)
            if budget is not None:
                self.stats.budget_wait_seconds += budget.acquire()

    def _count(self, endpoint: str, response: httpx.Response, started: float) -> None:
        self.observe(response)
        self.stats.api_calls += 1
        self.stats.by_endpoint[endpoint] += 1
        log.info(
            "%s %s -> %d (%.0f ms)",
            self.provider,
            endpoint,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )


_CHECKED_URLS = 256
# Each query parameter's encoding ("name=value", httpx's own), by name, value type and value:
# a list walk sends the same names and values page after page, but for its cursor.
_ENCODED_PARAMS: dict[tuple[str, type, str | int], str] = {}
_ENCODED_PARAMS_MAX = 4096
# httpx's parsed URL (a named tuple of its parts), which with_params copies with a query; a
# version without it leaves every URL to httpx.
_URL_PARTS = hasattr(getattr(httpx.URL(), "_uri_reference", None), "_replace")


def with_params(url: httpx.URL, params: Any) -> httpx.URL | None:
    """``url.copy_merge_params(params)`` (what httpx does with ``params=``), the same URL,
    for a URL without a query and a mapping of text and integer values; None for anything
    else (httpx merges those itself). httpx encodes the parameters and then parses and
    checks the whole URL again, ~0.2 ms a call; here each ``name=value`` is encoded once, by
    httpx, and the URL takes the query as httpx would have written it (already escaped, so
    its check would leave it as it is)."""
    if not _URL_PARTS:
        return None
    reference = url._uri_reference
    if reference.query is not None or not isinstance(params, Mapping):
        return None
    parts = []
    for name, value in params.items():
        kind = value.__class__
        if name.__class__ is not str or (kind is not str and kind is not int):
            return None
        key = (name, kind, value)
        encoded = _ENCODED_PARAMS.get(key)
        if encoded is None:
            encoded = str(httpx.QueryParams({name: value}))
            if len(_ENCODED_PARAMS) >= _ENCODED_PARAMS_MAX:
                _ENCODED_PARAMS.clear()
            _ENCODED_PARAMS[key] = encoded
        parts.append(encoded)
    merged = httpx.URL.__new__(httpx.URL)
    merged._uri_reference = reference._replace(query="&".join(parts))
    return merged


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), if the server sent one."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def paginate(
    fetch_page: Callable[[str | None], tuple[T, str | None]],
    *,
    provider: str,
    endpoint: str,
    start: str | None = None,
) -> Iterator[T]:
    """Yield pages while the server hands out a next cursor; stop on a cursor that repeats.

    ``fetch_page(cursor) -> (page, next_cursor)``; ``next_cursor`` None (or "") ends the walk.
    """
    cursor = start
    seen: set[str] = set()
    while True:
        page, next_cursor = fetch_page(cursor)
        yield page
        if not next_cursor:
            return
        if next_cursor in seen:
            raise ConnectorError(
                provider, endpoint, None, f"the server repeated the page cursor {next_cursor!r}"
            )
        seen.add(next_cursor)
        cursor = next_cursor
