"""One answering path for every front end: verified answers first, the model around them.

A question is answered in two steps. ``plan`` decides (no model call): the user's zone, the
router's verdict, the verified query's result when it routed, whether a model can be asked
(a key, and the organization under its cost caps). ``answer`` then yields the events:

- routed, model available: ``VerifiedAnswer`` (narrated), then the model's turn, which starts
  from the verified query as a completed tool call and writes the narrative around its numbers;
- routed, no model (no key, or over a cap): ``VerifiedAnswer`` alone, stored in the
  conversation so a later question (with a key) continues from it; over a cap, a ``Notice``
  names the cap;
- not routed, model available: the model as before (its SQL and artifact tools);
- not routed, no model: ``Suggestions``, the three closest verified questions and how to ask
  free-form ones (over a cap: the cap's ``Error``).

``Done`` always ends the stream. The chat panel, the web app, ``%%ask``, ``ask()`` and
``revtops ask`` all answer through ``Answerer``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anthropic

from revtops_kernel.agent import conversations
from revtops_kernel.agent.events import (
    AgentEvent,
    AnswerStop,
    Done,
    Error,
    ErrorKind,
    Notice,
    SuggestedQuestion,
    Suggestions,
)
from revtops_kernel.agent.ledger import Ledger
from revtops_kernel.agent.loop import Copilot
from revtops_kernel.agent.routing import Route, RouteContext, route
from revtops_kernel.agent.routing.store_names import load_route_context
from revtops_kernel.agent.verified import VERIFIED_QUERIES
from revtops_kernel.answering.verified_first import VerifiedRun, run_route
from revtops_kernel.errors import CostCapError, QueryError, RevtopsError, VerifiedQueryError
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

FREE_FORM_HINT = (
    "Set ANTHROPIC_API_KEY (https://console.anthropic.com/settings/keys) to ask free-form "
    "questions; without it, verified questions like these answer exactly."
)
CAP_HINT = "Verified questions like these still answer without the model."
NAMES_TTL = 60.0  # seconds the router's names (owners, pipelines, stages) are reused


@dataclass(frozen=True)
class Plan:
    """What answering a question will do, decided before any model call."""

    question: str
    timezone: str
    today: date | None = None
    route: Route | None = None
    verified: VerifiedRun | None = None
    verified_error: str | None = None  # the routed query failed (the model may still answer)
    model: bool = False  # a key is configured
    cap: CostCapError | None = None  # the organization is over a cost cap
    error: Error | None = None  # nothing can be answered (an unknown timezone)

    @property
    def may_ask_model(self) -> bool:
        return self.model and self.cap is None


class Answerer:
    """Answers one organization's questions: verified queries first, the model around them."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        org: str | None = None,
        user_id: uuid.UUID | None = None,
        client: anthropic.Anthropic | None = None,
        clock: Callable[[], datetime] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.org = org or settings.org
        self.user_id = user_id
        self._clock = clock or (lambda: datetime.now(UTC))
        self.ledger = ledger or Ledger(db, settings, clock=self._clock)
        self._names: tuple[float, RouteContext | None] = (0.0, None)
        self.copilot = Copilot(
            db, settings, org=self.org, user_id=user_id, client=client, clock=self._clock,
            ledger=self.ledger,
        )  # fmt: skip

    def ask(
        self,
        question: str,
        *,
        conversation_id: uuid.UUID | None = None,
        timezone: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[AgentEvent]:
        """The question's events, ``Done`` last (see the module's docstring)."""
        try:
            plan = self.plan(question, timezone=timezone)
        except RevtopsError as exc:  # the store could not be read (a lock, a bad URL)
            yield Error(str(exc), kind=ErrorKind.STORE)
            yield Done(conversation_id, AnswerStop.ERROR)
            return
        yield from self.answer(plan, conversation_id=conversation_id, cancel=cancel)

    # -- step 1: decide ---------------------------------------------------------------------------

    def plan(self, question: str, *, timezone: str | None = None) -> Plan:
        zone = timezone or self.settings.timezone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"Unknown timezone {zone!r}: use an IANA name such as Europe/Paris."
            return Plan(question, zone, error=Error(message, kind=ErrorKind.CONFIGURATION))
        model = self.copilot.client() is not None
        cap = self.ledger.over_cap(self.org) if model else None
        context = self._route_context(zone)
        routed = route(question, context)
        plan = Plan(question, zone, context.today, routed, model=model, cap=cap)
        if routed.name is None:
            return plan
        try:
            verified = run_route(self.db, self.settings, routed, org=self.org, today=context.today)
        except (VerifiedQueryError, QueryError) as exc:
            log.warning("verified query %s failed: %s", routed.name, exc)
            return replace(plan, verified_error=f"The verified query {routed.name} failed: {exc}")
        return replace(plan, verified=verified)

    def _route_context(self, zone: str) -> RouteContext:
        """The organization's owner, pipeline and stage names, read at most every
        ``NAMES_TTL`` seconds (they change with a sync), with the user's clock and zone."""
        now = self._clock()
        read_at, names = self._names
        if names is None or time.monotonic() - read_at > NAMES_TTL:
            names = load_route_context(self.db, org=self.org, now=now, timezone=zone)
            self._names = (time.monotonic(), names)
        return replace(names, now=now, timezone=zone)

    # -- step 2: answer ---------------------------------------------------------------------------

    def answer(
        self,
        plan: Plan,
        *,
        conversation_id: uuid.UUID | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[AgentEvent]:
        if plan.error is not None:
            yield plan.error
            yield Done(conversation_id, AnswerStop.ERROR)
            return
        if plan.verified is not None:
            yield plan.verified.event(narrated=plan.may_ask_model)
            if plan.may_ask_model:
                yield from self._model(plan, conversation_id, cancel, plan.verified.prelude())
                return
            if plan.cap is not None:
                yield Notice(f"Only the verified answer: {plan.cap}")
            stored = self._store_verified(plan, plan.verified, conversation_id)
            yield Done(stored, AnswerStop.END_TURN)
            return
        if plan.may_ask_model:
            if plan.verified_error is not None:
                yield Notice(plan.verified_error + "; the model answers instead.")
            yield from self._model(plan, conversation_id, cancel, [])
            return
        yield from self._unanswered(plan, conversation_id)

    def _model(
        self,
        plan: Plan,
        conversation_id: uuid.UUID | None,
        cancel: threading.Event | None,
        prelude: list[tuple[str, list[dict[str, Any]]]],
    ) -> Iterator[AgentEvent]:
        yield from self.copilot.ask(
            plan.question,
            conversation_id=conversation_id,
            timezone=plan.timezone,
            cancel=cancel,
            prelude=prelude,
        )

    def _unanswered(self, plan: Plan, conversation_id: uuid.UUID | None) -> Iterator[AgentEvent]:
        routed = plan.route
        questions = tuple(
            SuggestedQuestion(s.question, s.name, s.title)
            for s in (routed.alternatives if routed is not None else ())
        ) or tuple(
            SuggestedQuestion(q.phrasings[0], q.name, q.title)
            for q in list(VERIFIED_QUERIES.values())[:3]
            if q.phrasings
        )
        reason = plan.verified_error or (routed.reason if routed is not None else None)
        yield Suggestions(questions, CAP_HINT if plan.cap else FREE_FORM_HINT, reason)
        if plan.cap is not None:
            yield Error(str(plan.cap), kind=ErrorKind.COST_CAP)
            yield Done(conversation_id, AnswerStop.ERROR)
            return
        yield Done(conversation_id, AnswerStop.END_TURN)

    def _store_verified(
        self, plan: Plan, verified: VerifiedRun, conversation_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        """Keep the question and its verified answer in the conversation (for the history,
        and for the model to continue from once a key is set)."""
        try:
            if conversation_id is None:
                conversation_id = conversations.create_conversation(
                    self.db,
                    org=self.org,
                    user_id=self.user_id,
                    title=conversations.auto_title(plan.question),
                    model=None,
                )
            question = conversations.NewMessage("user", [{"type": "text", "text": plan.question}])
            answer = [conversations.NewMessage(role, blocks) for role, blocks in verified.prelude()]
            conversations.append_messages(
                self.db, conversation_id, [question, *answer], org=self.org
            )
        except RevtopsError:
            log.exception("could not store the verified answer")
            return conversation_id
        return conversation_id
