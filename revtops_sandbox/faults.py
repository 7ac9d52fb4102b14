"""Faults on demand: the knobs, the rolling-window rate limiters and the malformed-record draw.

`Faults` is plain mutable data (one `ProviderFaults` per provider) that tests flip at runtime
(``sb.faults.hubspot.rate_limits = True``) or a CLI user patches through
``POST /_sandbox/faults``. Decisions that need chance (which request gets a 503, which 429
carries Retry-After) come from one `random.Random` per provider seeded from ``Faults.seed``, so
a fixed sequence of requests meets a fixed sequence of faults.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PROVIDERS = ("hubspot", "salesforce", "slack", "google_calendar")
CRM_PROVIDERS = ("hubspot", "salesforce")

# Which corruptions each object type can suffer. The same record index gets the same kind in
# both providers, so one ground-truth list serves both.
MALFORMED_KINDS: dict[str, tuple[str, ...]] = {
    "companies": ("missing_id",),
    "contacts": ("dangling_association", "missing_id"),
    "deals": ("bad_amount", "bad_date", "dangling_association", "missing_id"),
    "meetings": ("bad_date", "dangling_association"),
    "calls": ("bad_date", "dangling_association"),
    "emails": ("bad_date", "dangling_association"),
    "notes": ("bad_date", "dangling_association"),
    "tasks": ("bad_date", "dangling_association"),
    # Slack messages: no author at all, or a thread_ts that names no message.
    "slack_messages": ("missing_user", "dangling_thread"),
    # Calendar events: an impossible dateTime, or neither dateTime nor date in start.
    "calendar_events": ("bad_date", "missing_start"),
}
_TYPE_SALT = {t: i * 0x9E3779B1 for i, t in enumerate(MALFORMED_KINDS, start=1)}
_MASK = (1 << 64) - 1


@dataclass(slots=True)
class ProviderFaults:
    """What one provider does wrong. Everything is off by default."""

    rate_limits: bool = False
    # HubSpot: rolling 10 s window for all calls and a 1 s window for search.
    ten_second_limit: int = 190
    search_per_second: int = 5
    # Share of 429 responses that carry Retry-After (HubSpot's is unverified: handle both).
    retry_after_share: float = 0.5
    # Calls allowed per day (Salesforce answers 403 REQUEST_LIMIT_EXCEEDED past it when
    # rate_limits is on; HubSpot reports it in X-HubSpot-RateLimit-Daily*).
    daily_limit: int = 100_000
    error_rate: float = 0.0  # share of requests answered with a transient 5xx
    error_statuses: tuple[int, ...] = (500, 502, 503)
    drop_rate: float = 0.0  # share of requests whose connection is closed without a reply
    token_ttl_calls: int | None = None  # the token expires after this many authorised calls
    malformed_rate: float = 0.0  # share of records rendered corrupt (see MALFORMED_KINDS)
    # Off-site links, as a proxy, a misconfigured instance or a forged answer would send:
    # a 307 to ``redirect_to`` + the same path for every authorised request, and an absolute
    # URL under ``link_base`` for Salesforce's ``nextRecordsUrl`` and Slack's ``upload_url``.
    # Empty: off.
    redirect_to: str = ""
    link_base: str = ""


# Slack's published tiers (calls per minute per method per workspace). chat.postMessage is
# "special" (about 1 per second per channel): counted per channel.
SLACK_TIERS: dict[str, str] = {
    "conversations.list": "tier2",
    "users.list": "tier2",
    "conversations.history": "tier3",
    "conversations.replies": "tier3",
    "conversations.info": "tier3",
    "users.info": "tier4",
    "chat.postMessage": "post",
    "files.getUploadURLExternal": "tier4",
    "files.completeUploadExternal": "tier4",
    "auth.test": "tier4",
}


def _slack_tier_limits() -> dict[str, int]:
    return {"tier1": 1, "tier2": 20, "tier3": 50, "tier4": 100, "post": 60}


@dataclass(slots=True)
class SlackFaults(ProviderFaults):
    """Slack's tier limits, enforced per method in a rolling ``window_s`` window when
    ``rate_limits`` is on. Tests shrink ``window_s`` so that Retry-After stays short."""

    window_s: float = 60.0
    tier_limits: dict[str, int] = field(default_factory=_slack_tier_limits)
    # Commercially distributed non-Marketplace apps: history/replies 1 call per window and
    # at most 15 messages per page (Slack's 2025 limits).
    non_marketplace: bool = False


@dataclass(slots=True)
class CalendarFaults(ProviderFaults):
    """Google Calendar's per-user quota: ``per_window_limit`` calls per ``window_s`` when
    ``rate_limits`` is on; over it, 403 userRateLimitExceeded or 429 rateLimitExceeded."""

    window_s: float = 60.0
    per_window_limit: int = 600


@dataclass(slots=True)
class Faults:
    hubspot: ProviderFaults = field(default_factory=ProviderFaults)
    salesforce: ProviderFaults = field(default_factory=ProviderFaults)
    slack: SlackFaults = field(default_factory=SlackFaults)
    google_calendar: CalendarFaults = field(default_factory=CalendarFaults)
    seed: int = 0

    def provider(self, name: str) -> ProviderFaults:
        if name not in PROVIDERS:
            raise KeyError(f"unknown provider {name!r}; expected one of {PROVIDERS}")
        pf: ProviderFaults = getattr(self, name)
        return pf

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, **{p: asdict(self.provider(p)) for p in PROVIDERS}}

    def update(self, patch: dict[str, Any]) -> None:
        """Apply a JSON patch such as ``{"hubspot": {"rate_limits": true}}``.

        Unknown providers or fields raise ValueError naming the accepted ones, so a typo in an
        admin request fails loudly instead of silently doing nothing.
        """
        for key, value in patch.items():
            if key == "seed":
                self.seed = int(value)
                continue
            if key not in PROVIDERS or not isinstance(value, dict):
                raise ValueError(f"unknown fault section {key!r}; expected one of {PROVIDERS}")
            target = self.provider(key)
            known = {f.name for f in fields(target)}
            for name, v in value.items():
                if name not in known:
                    raise ValueError(f"unknown fault {name!r}; expected one of {sorted(known)}")
                setattr(target, name, tuple(v) if name == "error_statuses" else v)

    def reset(self) -> None:
        self.hubspot, self.salesforce = ProviderFaults(), ProviderFaults()
        self.slack, self.google_calendar = SlackFaults(), CalendarFaults()


class RollingWindow:
    """Counts events in the last ``window_s`` seconds (a true rolling window, like HubSpot's)."""

    __slots__ = ("_clock", "_events", "window_s")

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._events: deque[float] = deque()
        self._clock = clock

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        events = self._events
        while events and events[0] <= horizon:
            events.popleft()

    def count(self) -> int:
        self._trim(self._clock())
        return len(self._events)

    def add(self) -> None:
        now = self._clock()
        self._trim(now)
        self._events.append(now)

    def retry_after_s(self) -> float:
        """Seconds until the oldest event leaves the window (a free slot appears)."""
        if not self._events:
            return 0.0
        return max(0.0, self._events[0] + self.window_s - self._clock())

    def clear(self) -> None:
        self._events.clear()


def malformed_kind(seed: int, object_type: str, idx: int, rate: float) -> str | None:
    """The corruption record ``idx`` suffers at ``rate``, or None. Pure and cheap (a hash)."""
    if rate <= 0.0:
        return None
    kinds = MALFORMED_KINDS.get(object_type)
    if not kinds:
        return None
    h = _mix((seed * 0x632BE59BD9B4E019 + _TYPE_SALT[object_type] + idx) & _MASK)
    if (h >> 11) / (1 << 53) >= rate:
        return None
    return kinds[h % len(kinds)]


def _mix(x: int) -> int:
    """splitmix64 finaliser: spreads nearby integers over the whole 64-bit range."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def fault_rng(seed: int, provider: str) -> random.Random:
    return random.Random(f"faults:{seed}:{provider}")
