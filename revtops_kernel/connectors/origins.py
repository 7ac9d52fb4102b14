"""Where credentials may go: the origin (scheme, host, port) a provider was configured with.

A bearer token or the Nango secret key is sent only to its configured origin. Every URL a
request is about to use (a path joined to the base URL, a ``nextRecordsUrl``, a redirect's
``Location``, an instance URL Nango hands out) is resolved first and its origin compared with
the configured one; anything else raises ``ForeignOriginError`` before a byte is sent. Paths are
joined by concatenation (the base URL may carry a path, like ``https://slack.com/api``), so the
comparison runs on the joined URL: ``@evil.example`` or ``.evil.example`` glued onto a host is
caught like an absolute URL is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from revtops_kernel.errors import ForeignOriginError

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = DEFAULT_PORTS.get(self.scheme)
        return f"{self.scheme}://{self.host}" + ("" if self.port == default else f":{self.port}")


def origin_of(url: str | httpx.URL) -> Origin:
    """The origin of an absolute http(s) URL; ValueError for anything else."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise ValueError("expected an absolute http(s) URL")
    return Origin(parsed.scheme, parsed.host.lower(), parsed.port or DEFAULT_PORTS[parsed.scheme])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def join(base_url: str, path: str) -> httpx.URL:
    """``path`` as the request URL: an absolute URL as is, else appended to ``base_url``."""
    try:
        candidate = httpx.URL(path)
        return candidate if candidate.scheme else httpx.URL(f"{base_url}{path}")
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc


def require_origin(
    provider: str,
    method: str,
    url: str | httpx.URL,
    allowed: Origin | Iterable[Origin],
    *,
    status: int | None = None,
    why: str = "a link",
) -> httpx.URL:
    """``url`` parsed, if its origin is allowed; else ``ForeignOriginError`` naming both."""
    origins = (allowed,) if isinstance(allowed, Origin) else tuple(allowed)
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        origin: Origin | str = origin_of(parsed)
    except (httpx.InvalidURL, ValueError):
        parsed, origin = None, "an unreadable URL"
    if parsed is not None and origin in origins:
        return parsed
    raise ForeignOriginError(
        provider,
        f"{method} {parsed.path if parsed is not None else '?'}"[:200],
        status,
        refused=str(origin),
        allowed=tuple(str(o) for o in origins),
        why=why,
    )


def redirect_location(response: httpx.Response) -> httpx.URL | None:
    """Where a 3xx points, resolved against the request's URL (None if it has no Location)."""
    location = response.headers.get("Location")
    if not response.is_redirect or not location:
        return None
    try:
        return response.request.url.join(location)
    except httpx.InvalidURL:
        return None


def require_secure(provider: str, url: str, *, endpoint: str, what: str) -> str:
    """``url`` (without a trailing slash) if it is https, or http on a loopback host (a local
    sandbox): a URL handed to us at run time must never carry a token in clear text."""
    try:
        origin: Origin | None = origin_of(url)
    except ValueError:
        origin = None
    if origin is not None and (origin.scheme == "https" or is_loopback(origin.host)):
        return url.rstrip("/")
    raise ForeignOriginError(
        provider,
        endpoint,
        None,
        refused=str(origin) if origin is not None else "an unreadable URL",
        allowed=("https://<any host>", "http://<a loopback host>"),
        why=what,
    )


def refuse_foreign_redirect(
    provider: str, method: str, response: httpx.Response, allowed: Origin
) -> None:
    """Raise ``ForeignOriginError`` if ``response`` redirects off ``allowed`` (for callers that
    never follow redirects and treat a same-origin one as an unexpected answer)."""
    if response.is_redirect:
        status = response.status_code
        target = redirect_location(response) or httpx.URL()
        require_origin(provider, method, target, allowed, status=status, why=f"a {status} redirect")
