"""The cost ledger: a row in ``llm_usage`` for every Messages API call, and the caps' check.

Before a call, ``admit`` checks the organization's daily and monthly caps and writes the call's
row as ``reserved``, holding the most the call can cost (its input priced as uncached, plus
``max_tokens`` of output). The check counts every settled call *and every call still in flight*
(their reservations), and the check and the reservation are one transaction serialized per
organization (a PostgreSQL advisory lock; on DuckDB the one writer per file), so two kernels
asking at once cannot both pass a nearly exhausted cap: the first holds its worst case, the
second sees it. A cap can be overshot by at most the one call that started below it.

After the call, ``settle`` replaces the reservation with the usage the API reported, its cost
from the dated price table and the latency. A reservation whose kernel died is ignored after
``STALE_AFTER`` (longer than a call with all its retries can take).

An organization without caps needs no reservation: its call's row is written once, when the
call ends (on DuckDB each unit of work opens the file, ~0.1-0.3 s; ``bench/ledger.py``). Whether
an organization has its own caps is read at most every ``CAPS_TTL`` seconds per ledger, so a
cap an admin sets applies to kernels already running within that time.

On DuckDB a write in this process closes the warm read-only handle (``store.duckdb_reader``), so
a row written between the model's call and the tool calls it asked for made the round's first
query reopen the file (0.1-0.2 s a round). The copilot's loop therefore ``hold``s the rows of a
question's calls without a reservation and writes them together when the question ends, beside
its messages; a reserved call (its organization has a cap) is still settled at once, since the
next admission's check must see what it really cost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Insert, Update, and_, func, insert, or_, select, text, update

from revtops_kernel.agent.caps import caps_for, period_bounds
from revtops_kernel.agent.pricing import ModelPrice, cost_of, price_of
from revtops_kernel.errors import CostCapError
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import LlmUsage

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=30)
CAPS_TTL = 30.0  # seconds an organization's own caps are remembered (whether it has any)
CHARS_PER_TOKEN = 3  # a conservative estimate of the request's size before the API counts it
LOCK_NAMESPACE = "revtops-llm-cost-cap:"


@dataclass(frozen=True)
class CallUsage:
    """What one call used, as the API reported it (``CallOutcome`` carries these fields)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0


@dataclass(frozen=True)
class Ticket:
    """An admitted call: its ledger row (``reserved``: already written) and when it started."""

    row_id: uuid.UUID
    model: str
    started: float  # time.perf_counter()
    price: ModelPrice | None
    meter: Meter
    started_at: datetime
    reserved: bool


class Ledger:
    """Records calls in ``llm_usage`` and enforces the cost caps, for one store."""

    def __init__(
        self, db: Database, settings: Settings, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._own_caps: dict[str, tuple[float, bool]] = {}  # org -> (read at, has any)
        self._lock = threading.Lock()
        self._holds = 0  # open ``hold`` blocks
        self._held: list[dict[str, Any]] = []  # rows of unreserved calls, written when they end

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the rows of calls without a reservation settled inside the block and write them
        in one unit of work when it ends, however it ends (DuckDB; PostgreSQL writes at once:
        a write there closes no reader)."""
        if not self.db.is_duckdb:
            yield
            return
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
                rows, self._held = (self._held, []) if self._holds == 0 else ([], self._held)
            if rows:
                try:
                    with self.db.begin() as connection:
                        connection.execute(insert(LlmUsage), rows)
                except Exception:  # the answer is already paid for and streamed: log this
                    log.exception("could not write %d held ledger rows", len(rows))

    def meter(
        self, org: str, user_id: uuid.UUID | None, conversation_id: uuid.UUID | None
    ) -> Meter:
        return Meter(self, org, user_id, conversation_id)

    # -- before the call ------------------------------------------------------------------------

    def admit(self, meter: Meter, request: dict[str, Any]) -> Ticket:
        """Check the caps and reserve the call's worst case; ``CostCapError`` if over a cap."""
        model = str(request.get("model", self.settings.model))
        now = self._clock()
        price = price_of(model, now.date())
        row_id = uuid.uuid4()
        if not self._capped(meter.org):
            return Ticket(row_id, model, time.perf_counter(), price, meter, now, reserved=False)
        reserve = _worst_case(request, price)
        with self.db.begin() as connection:
            refusal = self._check(connection, meter.org, now, lock=True)
            if refusal is not None:
                raise refusal
            connection.execute(
                insert(LlmUsage).values(
                    id=row_id,
                    organization_id=meter.org,
                    user_id=meter.user_id,
                    conversation_id=meter.conversation_id,
                    model=model,
                    status="reserved",
                    reserved_usd=reserve,
                    price_date=price.effective if price else None,
                    started_at=now,
                )
            )
        return Ticket(row_id, model, time.perf_counter(), price, meter, now, reserved=True)

    def _capped(self, org: str) -> bool:
        """Whether ``org`` may have a cap (from the settings, or its own, read now and then)."""
        if self.settings.daily_cost_cap_usd > 0 or self.settings.monthly_cost_cap_usd > 0:
            return True
        read_at, has_own = self._own_caps.get(org, (float("-inf"), False))
        if time.monotonic() - read_at > CAPS_TTL:
            with self.db.connect() as connection:
                has_own = bool(caps_for(connection, self.settings, org).active())
            self._own_caps[org] = (time.monotonic(), has_own)
        return has_own

    def over_cap(self, org: str) -> CostCapError | None:
        """The cap ``org`` is over now, if any (a read: nothing reserved, nothing locked)."""
        if not self._capped(org):
            return None
        with self.db.connect() as connection:
            return self._check(connection, org, self._clock(), lock=False)

    def _check(
        self, connection: Connection, org: str, now: datetime, *, lock: bool
    ) -> CostCapError | None:
        caps = caps_for(connection, self.settings, org).active()
        if caps and lock:
            _lock_org(connection, org)
        for cap in caps:
            spent = spent_in(connection, org, cap.period, now)
            if spent >= cap.usd:
                return CostCapError(
                    org=org,
                    period=cap.period,
                    cap_usd=cap.usd,
                    spent_usd=spent,
                    setting=cap.source,
                    resets_at=period_bounds(cap.period, now)[1],
                )
        return None

    # -- after the call -------------------------------------------------------------------------

    def settle(self, ticket: Ticket, usage: CallUsage, status: str) -> Decimal | None:
        """Write what the call used; its cost (None for a model the table does not price)."""
        latency_ms = round((time.perf_counter() - ticket.started) * 1000)
        cost = (
            cost_of(
                ticket.price,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_creation_tokens=usage.cache_creation_tokens,
            )
            if ticket.price is not None
            else None
        )
        values = {
            "status": status,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_creation_tokens": usage.cache_creation_tokens,
            "cost_usd": cost if cost is not None else Decimal(0),
            "reserved_usd": Decimal(0),
            "latency_ms": latency_ms,
            "finished_at": self._clock(),
        }
        statement: Insert | Update
        if ticket.reserved:
            statement = update(LlmUsage).where(LlmUsage.id == ticket.row_id).values(**values)
        else:
            meter, price = ticket.meter, ticket.price
            row = dict(
                id=ticket.row_id, organization_id=meter.org, user_id=meter.user_id,
                conversation_id=meter.conversation_id, model=ticket.model,
                price_date=price.effective if price else None, started_at=ticket.started_at,
                **values,
            )  # fmt: skip
            with self._lock:
                if self._holds:
                    self._held.append(row)
                    return cost
            statement = insert(LlmUsage).values(**row)
        with self.db.begin() as connection:
            connection.execute(statement)
        return cost


@dataclass(frozen=True)
class Meter:
    """The ledger bound to one question's organization, user and conversation."""

    ledger: Ledger
    org: str
    user_id: uuid.UUID | None
    conversation_id: uuid.UUID | None

    def admit(self, request: dict[str, Any]) -> Ticket:
        return self.ledger.admit(self, request)

    def settle(self, ticket: Ticket, usage: CallUsage, status: str) -> None:
        try:
            self.ledger.settle(ticket, usage, status)
        except Exception:  # the answer is already paid for and streamed: keep it, log this
            log.exception("could not settle ledger row %s", ticket.row_id)


def _worst_case(request: dict[str, Any], price: ModelPrice | None) -> Decimal:
    if price is None:
        return Decimal(0)
    size = len(
        json.dumps(
            [request.get("system"), request.get("tools"), request.get("messages")],
            default=str,
            ensure_ascii=False,
        )
    )
    return cost_of(
        price,
        input_tokens=size // CHARS_PER_TOKEN + 1,
        output_tokens=int(request.get("max_tokens") or 0),
    )


def _lock_org(connection: Connection, org: str) -> None:
    """Serialize admissions of one organization until this transaction ends (PostgreSQL);
    DuckDB has one writer per file, and ``db.begin`` serializes this process's."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": LOCK_NAMESPACE + org},
        )


def spent_in(connection: Connection, org: str, period: str, now: datetime) -> Decimal:
    """Settled cost in the day or month holding ``now``, plus what calls in flight hold."""
    start, end = period_bounds(period, now)
    live = or_(LlmUsage.status != "reserved", LlmUsage.started_at >= now - STALE_AFTER)
    value = connection.execute(
        select(func.coalesce(func.sum(LlmUsage.cost_usd + LlmUsage.reserved_usd), 0)).where(
            and_(
                LlmUsage.organization_id == org,
                LlmUsage.started_at >= start,
                LlmUsage.started_at < end,
                live,
            )
        )
    ).scalar_one()
    return Decimal(value)
