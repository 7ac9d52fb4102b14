"""What a running sandbox shares between its routes and its owner: one `SandboxState`.

The server's event-loop thread renders pages while a test thread may call ``mutate``; both
hold ``state.lock`` while they touch the company, so a page never sees half a mutation.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from revtops_sandbox import mutate as _mutate
from revtops_sandbox.company import OBJECT_TYPES, Company
from revtops_sandbox.faults import (
    PROVIDERS,
    Faults,
    RollingWindow,
    fault_rng,
    malformed_kind,
)
from revtops_sandbox.mutate import ActivityChanges, MutationResult
from revtops_sandbox.nango_data import NangoState

TokenCheck = Literal["ok", "missing", "invalid", "expired"]


def make_token(seed: int, n: int) -> str:
    """The n-th token a sandbox issues: predictable per seed (it guards nothing real)."""
    digest = hashlib.sha256(f"revtops-sandbox:{seed}:{n}".encode()).hexdigest()
    return f"sbx-{digest[:40]}"


class TokenStore:
    """The one valid bearer token of a provider, the ones that expired, and its call count."""

    def __init__(self, token: str) -> None:
        self.current = token
        self.expired: set[str] = set()
        self.calls = 0

    def check(self, token: str | None, ttl_calls: int | None) -> TokenCheck:
        """Judge one call's token; a valid one counts the call and may expire on it."""
        if not token:
            return "missing"
        if token in self.expired:
            return "expired"
        if token != self.current:
            return "invalid"
        if ttl_calls is not None and self.calls >= ttl_calls:
            self.expire()
            return "expired"
        self.calls += 1
        return "ok"

    def rotate(self, token: str) -> str:
        """Make ``token`` the valid one; the previous one now reads as expired."""
        if self.current:
            self.expired.add(self.current)
        self.current = token
        self.calls = 0
        return token

    def expire(self) -> None:
        """Expire the current token now; calls get 401 until `rotate`."""
        self.expired.add(self.current)
        self.current = ""


@dataclass(slots=True)
class Stats:
    """What the connector did to the sandbox; tests read it to check retries and paging.

    ``requests`` counts by endpoint label (``"hubspot GET /crm/v3/objects/deals"``),
    ``responses`` by (endpoint label, status), ``events`` by (provider, event) where event is
    one of ``rate_limited``, ``retry_after``, ``dropped``, ``injected_error``,
    ``unauthorized``, ``daily_limit``.
    """

    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)

    def total(self, provider: str | None = None) -> int:
        # copies: the server thread may be counting while a test reads
        requests = self.requests.copy()
        return sum(n for k, n in requests.items() if provider is None or k.startswith(provider))

    def per_provider(self) -> dict[str, int]:
        """Requests per provider (``hubspot``, ``salesforce``, ``slack``, ``google_calendar``,
        ``nango``); calls through Nango's proxy count under both Nango and the provider."""
        out: Counter[str] = Counter()
        for label, n in self.requests.copy().items():
            out[label.split(" ", 1)[0]] += n
        return dict(out)

    def count(self, endpoint: str) -> int:
        """Requests to one endpoint label, e.g. ``"hubspot POST /crm/v3/objects/deals/search"``."""
        return self.requests[endpoint]

    def status_count(self, provider: str, status: int) -> int:
        responses = self.responses.copy()
        return sum(n for (k, s), n in responses.items() if s == status and k.startswith(provider))

    def event(self, provider: str, name: str) -> int:
        return self.events[(provider, name)]

    def rate_limited(self, provider: str = "hubspot") -> int:
        """429s (HubSpot) or REQUEST_LIMIT_EXCEEDED 403s (Salesforce) sent."""
        return self.events[(provider, "rate_limited")]

    def reset(self) -> None:
        self.requests.clear()
        self.responses.clear()
        self.events.clear()

    def as_dict(self) -> dict[str, Any]:
        return {
            "per_provider": self.per_provider(),
            "requests": dict(self.requests),
            "responses": {f"{k} {s}": n for (k, s), n in self.responses.copy().items()},
            "events": {f"{p} {e}": n for (p, e), n in self.events.copy().items()},
        }


class SandboxState:
    """Company, faults, stats, tokens and limiters of one sandbox."""

    def __init__(self, company: Company, faults: Faults | None = None) -> None:
        self.company = company
        self.faults = faults if faults is not None else Faults(seed=company.seed)
        self.stats = Stats()
        self._issued = 0
        self.tokens = {p: TokenStore(make_token(company.seed, 0)) for p in PROVIDERS}
        self.lock = threading.RLock()
        self.rng = {p: fault_rng(self.faults.seed, p) for p in PROVIDERS}
        self.hubspot_window = RollingWindow(10.0)
        self.hubspot_second_window = RollingWindow(1.0)
        self.hubspot_search_window = RollingWindow(1.0)
        self.slack_windows: dict[str, RollingWindow] = {}  # per Slack method
        self.calendar_window = RollingWindow(60.0)
        self.daily_calls = dict.fromkeys(PROVIDERS, 0)
        self.nango = NangoState(company.seed)

    def reset_limits(self) -> None:
        with self.lock:
            self.slack_windows.clear()
            self.calendar_window.clear()
            self.hubspot_window.clear()
            self.hubspot_second_window.clear()
            self.hubspot_search_window.clear()
            self.daily_calls = dict.fromkeys(PROVIDERS, 0)

    # -- operations shared by SandboxServer and the admin routes -------------------------------

    def mutate(
        self,
        *,
        modified_pct: float = 1.0,
        archived_pct: float = 0.0,
        deleted_pct: float = 0.0,
        seed: int | None = None,
        object_types: Iterable[str] = OBJECT_TYPES,
    ) -> MutationResult:
        with self.lock:
            return _mutate.mutate(
                self.company,
                modified_pct=modified_pct,
                archived_pct=archived_pct,
                deleted_pct=deleted_pct,
                seed=seed,
                object_types=tuple(object_types),
            )

    def bump(
        self, object_type: str, n: int, *, same_timestamp: bool = False, seed: int | None = None
    ) -> MutationResult:
        with self.lock:
            return _mutate.bump(
                self.company, object_type, n, same_timestamp=same_timestamp, seed=seed
            )

    def mutate_slack(
        self, *, new_messages: int = 10, late_replies: int = 5, seed: int | None = None
    ) -> ActivityChanges:
        with self.lock:
            return _mutate.mutate_slack(
                self.company, new_messages=new_messages, late_replies=late_replies, seed=seed
            )

    def mutate_calendar(
        self, *, moved: int = 5, cancelled: int = 3, new: int = 5, seed: int | None = None
    ) -> ActivityChanges:
        with self.lock:
            return _mutate.mutate_calendar(
                self.company, moved=moved, cancelled=cancelled, new=new, seed=seed
            )

    def rotate_token(self, provider: str | None = None) -> str:
        """New valid token for one provider or (None) all of them; old tokens now expired."""
        with self.lock:
            self._issued += 1
            token = make_token(self.company.seed, self._issued)
            for p in self._providers(provider):
                self.tokens[p].rotate(token)
        return token

    def expire_token(self, provider: str | None = None) -> None:
        with self.lock:
            for p in self._providers(provider):
                self.tokens[p].expire()

    def expire_calendar_sync_tokens(self) -> None:
        with self.lock:
            self.company.calendars.sync_epoch += 1

    def token_for(self, provider: str) -> str:
        return self.tokens[provider].current

    def malformed(self, provider: str = "hubspot") -> dict[str, dict[str, str]]:
        """Ground truth of the records rendered corrupt at the provider's current
        ``malformed_rate``: object type -> {id as that provider spells it: kind}."""
        rate = self.faults.provider(provider).malformed_rate
        out: dict[str, dict[str, str]] = {}
        if provider in ("slack", "google_calendar"):
            with self.lock:
                return self._malformed_activity(provider, rate)
        with self.lock:
            co = self.company
            for object_type in OBJECT_TYPES:
                found: dict[str, str] = {}
                for rec in co.records(object_type):
                    kind = malformed_kind(co.seed, object_type, rec.idx, rate)
                    if kind is not None:
                        key = (
                            str(co.hs_id(object_type, rec))
                            if provider == "hubspot"
                            else co.sf_id(object_type, rec)
                        )
                        found[key] = kind
                if found:
                    out[object_type] = found
        return out

    def _malformed_activity(self, provider: str, rate: float) -> dict[str, dict[str, str]]:
        """Slack messages by ``"<channel id>:<ts>"``, calendar events by event id (a
        recurring master's instances share its fate)."""
        co = self.company
        found: dict[str, str] = {}
        if provider == "slack":
            ws = co.slack
            for m in ws.messages:
                kind = malformed_kind(co.seed, "slack_messages", m.idx, rate)
                if kind == "dangling_thread" and m.thread_ts_us:
                    continue  # only messages outside threads get a thread_ts that leads nowhere
                if kind is not None:
                    found[f"{ws.channels[m.channel].id}:{m.ts}"] = kind
            return {"slack_messages": found} if found else {}
        for e in co.calendars.events:
            kind = malformed_kind(co.seed, "calendar_events", e.idx, rate)
            if kind is not None and e.status != "cancelled":  # cancelled ones render minimal
                found[e.id] = kind
        return {"calendar_events": found} if found else {}

    @staticmethod
    def _providers(provider: str | None) -> tuple[str, ...]:
        if provider is None:
            return PROVIDERS
        if provider not in PROVIDERS:
            raise KeyError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
        return (provider,)
