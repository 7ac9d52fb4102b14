"""The copilot: one question in, a stream of typed events out (``Copilot.ask``).

A question runs as a short recipe: check the configuration, open (or create) the
conversation, store the question, then call the Messages API (streaming) until the model ends
its turn, running the tools it asks for in between. Every call is retried on 429/529/5xx and
on in-stream errors (honouring ``retry-after``, with a ``Notice`` each time), and the loop is
bounded by tool rounds and tokens per question (settings). A ``threading.Event`` cancels it
between stream events; the stream is closed and nothing half-finished is stored.

Requests are built only from stored content blocks (canonicalized, ``wire``), so a
conversation reloaded from the store continues with exactly the request an uninterrupted
session sends. One call, streamed and retried, is ``calls``.
Prompt caching: breakpoints on the last tool, on the stable system block and on the last
block of the conversation, so the tools + schema prefix is read from the cache from the
second call on, and within a question each round reads the rounds before it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anthropic

from revtops_kernel.agent import conversations as store
from revtops_kernel.agent.calls import CallFailed, CallOutcome, RetryPolicy, call_with_retries
from revtops_kernel.agent.events import (
    AgentEvent,
    AnswerStop,
    Done,
    Error,
    ErrorKind,
    Notice,
    Usage,
)
from revtops_kernel.agent.ledger import Ledger
from revtops_kernel.agent.pricing import cost_usd
from revtops_kernel.agent.prompt import (
    CACHE_CONTROL,
    context_text,
    data_freshness,
    dialect_name,
    stable_system_text,
    system_blocks,
)
from revtops_kernel.agent.tools import ToolContext, run_tool, tool_definitions
from revtops_kernel.agent.wire import api_messages
from revtops_kernel.errors import RevtopsError
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

MISSING_KEY_MESSAGE = (
    "No Anthropic API key is configured. Set ANTHROPIC_API_KEY to a key from "
    "https://console.anthropic.com/settings/keys (in the environment, or in a .env file in the "
    "working directory), then ask again."
)
REQUEST_TIMEOUT_SECONDS = 300.0


class StopOutcome(Enum):
    """What the loop does after a call, by the call's stop reason."""

    ANSWERED = "answered"  # the turn is over: store the answer
    RUN_TOOLS = "run_tools"  # run the tool calls and call again (or stop at the round cap)
    RESUME = "resume"  # a paused server-side turn: send it back as is
    CUT_OFF = "cut_off"  # stopped at a limit: keep the text, tell the user
    REFUSED = "refused"  # Claude declined: an Error, the reply is not stored


# Every stop reason the SDK declares (anthropic.types.StopReason; a test holds this complete).
STOP_OUTCOMES: Mapping[AnswerStop, StopOutcome] = {
    AnswerStop.END_TURN: StopOutcome.ANSWERED,
    AnswerStop.STOP_SEQUENCE: StopOutcome.ANSWERED,
    AnswerStop.TOOL_USE: StopOutcome.RUN_TOOLS,
    AnswerStop.PAUSE_TURN: StopOutcome.RESUME,
    AnswerStop.MAX_TOKENS: StopOutcome.CUT_OFF,
    AnswerStop.MODEL_CONTEXT_WINDOW_EXCEEDED: StopOutcome.CUT_OFF,
    AnswerStop.REFUSAL: StopOutcome.REFUSED,
}


def stop_of(reason: str | None) -> AnswerStop:
    """A call's stop reason; one this code does not know (a newer API's) ends the turn."""
    if reason is None:
        return AnswerStop.END_TURN
    stop = AnswerStop._value2member_map_.get(reason)
    if not isinstance(stop, AnswerStop) or stop not in STOP_OUTCOMES:
        log.warning("unknown stop reason %r: treated as end_turn", reason)
        return AnswerStop.END_TURN
    return stop


class Copilot:
    """Answers questions about one organization's data with Claude and the tools."""

    retry_base_delay = 1.0  # seconds; doubled per attempt, with jitter
    max_retry_wait = 60.0  # the longest retry-after honoured

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
        self._client = client
        self._clock = clock or (lambda: datetime.now(UTC))
        self.ledger = ledger or Ledger(db, settings, clock=self._clock)  # every call is a row
        self._tools: list[dict[str, Any]] | None = None
        self._stable: str | None = None
        self.last_request: dict[str, Any] | None = None

    # -- what every request carries ----------------------------------------------------------

    @property
    def tools(self) -> list[dict[str, Any]]:
        if self._tools is None:
            tools = copy.deepcopy(tool_definitions())
            tools[-1]["cache_control"] = dict(CACHE_CONTROL)
            self._tools = tools
        return self._tools

    @property
    def stable_system(self) -> str:
        if self._stable is None:
            self._stable = stable_system_text(dialect_name(self.db))
        return self._stable

    def client(self) -> anthropic.Anthropic | None:
        if self._client is None and self.settings.anthropic_api_key is not None:
            self._client = anthropic.Anthropic(
                api_key=self.settings.anthropic_api_key.get_secret_value(),
                base_url=self.settings.anthropic_base_url,
                max_retries=0,  # the loop retries itself, to tell the user and to honour cancel
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        return self._client

    def build_request(
        self,
        history: Sequence[tuple[str, list[dict[str, Any]]]],
        system: list[dict[str, Any]],
        *,
        answer_now: bool = False,
    ) -> dict[str, Any]:
        messages = api_messages(history)
        if messages:
            messages[-1]["content"][-1]["cache_control"] = dict(CACHE_CONTROL)
        request: dict[str, Any] = {
            "model": self.settings.model,
            "max_tokens": self.settings.max_output_tokens,
            "system": system,
            "tools": self.tools,
            "messages": messages,
        }
        if answer_now:
            request["tool_choice"] = {"type": "none"}
        return request

    # -- the question ---------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        conversation_id: uuid.UUID | None = None,
        timezone: str | None = None,
        cancel: threading.Event | None = None,
        prelude: Sequence[tuple[str, list[dict[str, Any]]]] = (),
    ) -> Iterator[AgentEvent]:
        """Answer ``question``; creates a conversation when none is given (see ``Done``).

        ``prelude``: messages stored after the question, before the first call (a verified
        query's completed tool call: the model writes its answer from that result)."""
        state = _QuestionState(conversation_id, prelude=list(prelude))
        finished = False
        refused_kind: ErrorKind | None = None  # the API error's kind when a call failed
        try:
            try:
                with self.ledger.hold():  # no ledger write between a call and its tool calls
                    stop = yield from self._answer(
                        question, timezone, cancel or threading.Event(), state
                    )
            except CallFailed as failed:
                yield failed.error
                stop = AnswerStop.ERROR
                refused_kind = failed.error.kind
            except RevtopsError as exc:  # the store: a lock, an unknown conversation...
                yield Error(str(exc), kind=ErrorKind.STORE)
                stop = AnswerStop.ERROR
            except Exception as exc:  # the loop never crashes its front end
                log.exception("the copilot failed")
                yield Error(
                    f"Something went wrong: {type(exc).__name__}: {exc}", kind=ErrorKind.INTERNAL
                )
                stop = AnswerStop.ERROR
            try:
                self._flush(state)
            except Exception as exc:
                log.exception("could not store conversation %s", state.conversation_id)
                yield Error(f"The conversation could not be saved: {exc}", kind=ErrorKind.STORE)
                stop = AnswerStop.ERROR
            finished = True
            if (
                conversation_id is None
                and state.conversation_id is not None
                and stop is AnswerStop.ERROR
                and refused_kind not in (ErrorKind.OVERLOADED, ErrorKind.RATE_LIMITED)
            ):
                # The API never took the first question (bad key, unreachable): no empty
                # thread is left behind. Overloaded or rate limited, the question stays so
                # the conversation can be retried.
                with contextlib.suppress(Exception):
                    if store.discard_unanswered(self.db, state.conversation_id, org=self.org):
                        state.conversation_id = None
        finally:
            if not finished:  # the consumer closed the generator mid-answer: keep whole rounds
                with contextlib.suppress(Exception):
                    self._flush(state)
        yield Done(state.conversation_id, stop, state.rounds)

    def _answer(
        self, question: str, timezone: str | None, cancel: threading.Event, state: _QuestionState
    ) -> Generator[AgentEvent, None, AnswerStop]:
        """The question's events but ``Done``; returns the stop reason."""
        if len(question) > self.settings.max_question_chars:
            # Refused before anything is stored or sent: every front end asks through here.
            yield Error(
                f"Your question is {len(question):,} characters; the limit is "
                f"{self.settings.max_question_chars:,} (REVTOPS_MAX_QUESTION_CHARS). "
                "Shorten it, or ask about a smaller part at a time.",
                kind=ErrorKind.QUESTION_TOO_LONG,
            )
            return AnswerStop.QUESTION_TOO_LONG
        client = self.client()
        if client is None:
            yield Error(MISSING_KEY_MESSAGE, kind=ErrorKind.CONFIGURATION)
            return AnswerStop.ERROR
        zone_name = timezone or self.settings.timezone
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            yield Error(f"Unknown timezone {zone_name!r}: use an IANA name such as Europe/Paris.",
                        kind=ErrorKind.CONFIGURATION)  # fmt: skip
            return AnswerStop.ERROR
        history = self._open_conversation(question, state)
        now = self._clock()
        system = system_blocks(
            self.stable_system,
            context_text(now, zone, zone_name, data_freshness(self.db, self.org)),
        )
        tools = ToolContext(
            self.db,
            self.settings,
            self.org,
            state.conversation_id,
            self.user_id,
            today=now.astimezone(zone).date(),
        )
        policy = RetryPolicy(self.settings.api_retries, self.retry_base_delay, self.max_retry_wait)
        answer_now = False
        calls = 0
        while True:
            if cancel.is_set():
                return AnswerStop.CANCELLED
            if state.tokens >= self.settings.max_question_tokens:
                yield Error(
                    f"This question used {state.tokens:,} tokens, past the "
                    f"{self.settings.max_question_tokens:,} allowed per question "
                    "(REVTOPS_MAX_QUESTION_TOKENS); ask a narrower question.",
                    kind=ErrorKind.TOKEN_CAP,
                )
                return AnswerStop.TOKEN_CAP
            request = self.build_request(history, system, answer_now=answer_now)
            self.last_request = request
            meter = self.ledger.meter(self.org, self.user_id, state.conversation_id)
            outcome = yield from call_with_retries(client, request, cancel, policy, meter=meter)
            calls += 1
            if outcome.cancelled:
                return AnswerStop.CANCELLED
            usage = self._usage(outcome)
            state.tokens += outcome.total_tokens
            yield usage
            reply = store.NewMessage(
                "assistant",
                outcome.blocks,
                model=self.settings.model,
                stop_reason=outcome.stop_reason,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_creation_tokens=usage.cache_creation_tokens,
                cost_usd=usage.cost_usd,
            )
            stop = stop_of(outcome.stop_reason)
            then = STOP_OUTCOMES[stop]
            if then is StopOutcome.RUN_TOOLS and outcome.tool_uses and not answer_now:
                results, cancelled = yield from self._run_tools(outcome, tools, state, cancel)
                if cancelled:
                    return AnswerStop.CANCELLED
                self._save(state, [reply, store.NewMessage("user", results)])
                history += [("assistant", reply.blocks), ("user", results)]
                if state.rounds >= self.settings.max_tool_rounds:
                    answer_now = state.capped = True  # the next call may not use tools
                    yield Notice(
                        f"Reached the limit of {self.settings.max_tool_rounds} tool rounds for "
                        "one question (REVTOPS_MAX_TOOL_ROUNDS); asking for an answer from "
                        "what was found so far."
                    )
                continue
            if then is StopOutcome.RESUME and calls <= 2 * self.settings.max_tool_rounds:
                self._save(state, [reply])  # sent back as is; the model resumes its turn
                history.append(("assistant", reply.blocks))
                continue
            return (yield from self._finish(stop, reply, state))

    def _open_conversation(
        self, question: str, state: _QuestionState
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        if state.conversation_id is None:
            state.conversation_id = store.create_conversation(
                self.db,
                org=self.org,
                user_id=self.user_id,
                title=store.auto_title(question),
                model=self.settings.model,
            )
            history: list[tuple[str, list[dict[str, Any]]]] = []
        else:
            stored = store.load_messages(self.db, state.conversation_id, org=self.org)
            history = [(m.role, m.blocks) for m in stored]
        blocks = [{"type": "text", "text": question}]
        self._save(state, [store.NewMessage("user", blocks)])
        history.append(("user", blocks))
        self._save(state, [store.NewMessage(role, b) for role, b in state.prelude])
        history += state.prelude
        return history

    def _save(self, state: _QuestionState, messages: list[store.NewMessage]) -> None:
        """Keep messages for the store; they are written when the question ends (``_flush``).

        One transaction per question instead of one per round: on DuckDB each unit of work
        opens the file, which costs more than everything else a round does.
        """
        state.pending.extend(messages)

    def _flush(self, state: _QuestionState) -> None:
        if not state.pending or state.conversation_id is None:
            return
        pending, state.pending = state.pending, []
        store.append_messages(self.db, state.conversation_id, pending, org=self.org)

    def _usage(self, outcome: CallOutcome) -> Usage:
        model = self.settings.model
        return Usage(
            model=model,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            cache_read_tokens=outcome.cache_read_tokens,
            cache_creation_tokens=outcome.cache_creation_tokens,
            cost_usd=cost_usd(
                model,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
                cache_read_tokens=outcome.cache_read_tokens,
                cache_creation_tokens=outcome.cache_creation_tokens,
            ),
        )

    def _run_tools(
        self,
        outcome: CallOutcome,
        context: ToolContext,
        state: _QuestionState,
        cancel: threading.Event,
    ) -> Generator[AgentEvent, None, tuple[list[dict[str, Any]], bool]]:
        """Run the round's tool calls; their results in call order (and whether cancelled)."""
        results: list[dict[str, Any]] = []
        for use in outcome.tool_uses:
            if cancel.is_set():
                return results, True
            done = run_tool(context, use["id"], use["name"], use["input"])
            results.append(done.block(use["id"]))
            yield done.result
            if done.artifact is not None:
                yield done.artifact
        state.rounds += 1
        return results, False

    def _finish(
        self, stop: AnswerStop, reply: store.NewMessage, state: _QuestionState
    ) -> Generator[AgentEvent, None, AnswerStop]:
        then = STOP_OUTCOMES[stop]
        # A tool call the model never finished (cut by max_tokens) cannot run and must not be
        # stored without a result; the text before it stays.
        blocks = [b for b in reply.blocks if b.get("type") != "tool_use"]
        if then is StopOutcome.REFUSED:
            yield Error(
                "Claude declined to answer this request. Rephrase the question, or start a new "
                "conversation.",
                kind=ErrorKind.REFUSAL,
            )
        elif blocks:
            self._save(state, [_with_blocks(reply, blocks)])
        if stop is AnswerStop.MAX_TOKENS:
            yield Notice(
                f"The answer reached the {self.settings.max_output_tokens:,}-token output limit "
                "(REVTOPS_MAX_OUTPUT_TOKENS) and was cut off."
            )
        elif then is StopOutcome.CUT_OFF:  # the model's context window is full
            yield Notice(
                "The conversation filled the model's context window and the answer was cut "
                "off; start a new conversation."
            )
        elif then is StopOutcome.RESUME:
            yield Notice("The model paused its turn too many times; stopping here.")
        elif then is StopOutcome.RUN_TOOLS:  # still asking for tools after the cap
            yield Error(
                "The model kept asking for tools past the tool round limit; stopping.",
                kind=ErrorKind.TOOL_ROUNDS_CAP,
            )
        return AnswerStop.TOOL_ROUNDS_CAP if state.capped else stop

    # -- one API call, streamed and retried --------------------------------------------------------


@dataclass
class _QuestionState:
    conversation_id: uuid.UUID | None
    rounds: int = 0
    tokens: int = 0
    capped: bool = False
    pending: list[store.NewMessage] = field(default_factory=list)
    prelude: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)


def _with_blocks(message: store.NewMessage, blocks: list[dict[str, Any]]) -> store.NewMessage:
    from dataclasses import replace

    return replace(message, blocks=blocks)
