"""The copilot: one question in, a stream of typed events out (``Copilot.ask``).

A question runs as a short recipe: check the configuration, open (or create) the
conversation, store the question, then call the Messages API (streaming) until the model ends
its turn, running the tools it asks for in between. Every call is retried on 429/529/5xx and
on in-stream errors (honouring ``retry-after``, with a ``Notice`` each time), and the loop is
bounded by tool rounds and tokens per question (settings). A ``threading.Event`` cancels it
between stream events; the stream is closed and nothing half-finished is stored.

Requests are built only from stored content blocks (canonicalized), so a conversation
reloaded from the store continues with exactly the request an uninterrupted session sends.
Prompt caching: breakpoints on the last tool, on the stable system block and on the last
block of the conversation, so the tools + schema prefix is read from the cache from the
second call on, and within a question each round reads the rounds before it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anthropic

from revtops_kernel.agent import conversations as store
from revtops_kernel.agent.events import (
    AgentEvent,
    Done,
    Error,
    Notice,
    TextDelta,
    ToolCallStarted,
    Usage,
)
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
from revtops_kernel.errors import RevtopsError
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

MISSING_KEY_MESSAGE = (
    "No Anthropic API key is configured. Set ANTHROPIC_API_KEY to a key from "
    "https://console.anthropic.com/settings/keys (in the environment, or in a .env file in the "
    "working directory), then ask again."
)
RETRYABLE_ERROR_TYPES = ("overloaded_error", "rate_limit_error", "api_error")
REQUEST_TIMEOUT_SECONDS = 300.0


@dataclass
class CallOutcome:
    """One Messages API call, accumulated from its stream."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cancelled: bool = False
    incomplete_tool_use: bool = False

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.blocks if b.get("type") == "tool_use"]

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_creation_tokens
        )


class _CallFailed(Exception):
    def __init__(self, error: Error) -> None:
        self.error = error
        super().__init__(error.message)


def canonical_block(block: dict[str, Any]) -> dict[str, Any]:
    """A content block with a fixed key order (tool inputs sorted), the same after a reload.

    PostgreSQL's jsonb reorders object keys; sorting keeps the request byte-identical whether
    its blocks come from memory or from the store, which the prompt cache needs.
    """
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "tool_use":
        return {
            "type": "tool_use",
            "id": block["id"],
            "name": block["name"],
            "input": _sorted(block.get("input") or {}),
        }
    if kind == "tool_result":
        result = {
            "type": "tool_result",
            "tool_use_id": block["tool_use_id"],
            "content": _sorted(block.get("content", "")),
        }
        if block.get("is_error"):
            result["is_error"] = True
        return result
    return {key: _sorted(block[key]) for key in sorted(block) if key != "cache_control"}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def api_messages(history: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Stored (role, blocks) in order → API messages; consecutive same-role rows merge (as the
    API itself merges them), e.g. a question after an interrupted one."""
    messages: list[dict[str, Any]] = []
    for role, blocks in history:
        content = [canonical_block(b) for b in blocks]
        if not content:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": role, "content": content})
    return messages


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
    ) -> None:
        self.db = db
        self.settings = settings
        self.org = org or settings.org
        self.user_id = user_id
        self._client = client
        self._clock = clock or (lambda: datetime.now(UTC))
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
    ) -> Iterator[AgentEvent]:
        """Answer ``question``; creates a conversation when none is given (see ``Done``)."""
        state = _QuestionState(conversation_id)
        finished = False
        try:
            try:
                stop = yield from self._answer(
                    question, timezone, cancel or threading.Event(), state
                )
            except _CallFailed as failed:
                yield failed.error
                stop = "error"
            except RevtopsError as exc:  # the store: a lock, an unknown conversation...
                yield Error(str(exc), kind="store")
                stop = "error"
            except Exception as exc:  # the loop never crashes its front end
                log.exception("the copilot failed")
                yield Error(f"Something went wrong: {type(exc).__name__}: {exc}", kind="internal")
                stop = "error"
            try:
                self._flush(state)
            except Exception as exc:
                log.exception("could not store conversation %s", state.conversation_id)
                yield Error(f"The conversation could not be saved: {exc}", kind="store")
                stop = "error"
            finished = True
        finally:
            if not finished:  # the consumer closed the generator mid-answer: keep whole rounds
                with contextlib.suppress(Exception):
                    self._flush(state)
        yield Done(state.conversation_id, stop, state.rounds)

    def _answer(
        self, question: str, timezone: str | None, cancel: threading.Event, state: _QuestionState
    ) -> Generator[AgentEvent, None, str]:
        """The question's events but ``Done``; returns the stop reason."""
        client = self.client()
        if client is None:
            yield Error(MISSING_KEY_MESSAGE, kind="configuration")
            return "error"
        zone_name = timezone or self.settings.timezone
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            yield Error(f"Unknown timezone {zone_name!r}: use an IANA name such as Europe/Paris.",
                        kind="configuration")  # fmt: skip
            return "error"
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
        answer_now = False
        calls = 0
        while True:
            if cancel.is_set():
                return "cancelled"
            if state.tokens >= self.settings.max_question_tokens:
                yield Error(
                    f"This question used {state.tokens:,} tokens, past the "
                    f"{self.settings.max_question_tokens:,} allowed per question "
                    "(REVTOPS_MAX_QUESTION_TOKENS); ask a narrower question.",
                    kind="token_cap",
                )
                return "token_cap"
            request = self.build_request(history, system, answer_now=answer_now)
            self.last_request = request
            outcome = yield from self._call(client, request, cancel)
            calls += 1
            if outcome.cancelled:
                return "cancelled"
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
            stop = outcome.stop_reason or "end_turn"
            if stop == "tool_use" and outcome.tool_uses and not answer_now:
                results, cancelled = yield from self._run_tools(outcome, tools, state, cancel)
                if cancelled:
                    return "cancelled"
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
            if stop == "pause_turn" and calls <= 2 * self.settings.max_tool_rounds:
                self._save(state, [reply])  # sent back as is; the model resumes its turn
                history.append(("assistant", reply.blocks))
                continue
            return (yield from self._finish(outcome, reply, state))

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
        self, outcome: CallOutcome, reply: store.NewMessage, state: _QuestionState
    ) -> Generator[AgentEvent, None, str]:
        stop = outcome.stop_reason or "end_turn"
        # A tool call the model never finished (cut by max_tokens) cannot run and must not be
        # stored without a result; the text before it stays.
        blocks = [b for b in reply.blocks if b.get("type") != "tool_use"]
        if stop == "refusal":
            yield Error(
                "Claude declined to answer this request. Rephrase the question, or start a new "
                "conversation.",
                kind="refusal",
            )
        elif blocks:
            self._save(state, [_with_blocks(reply, blocks)])
        if stop == "max_tokens":
            yield Notice(
                f"The answer reached the {self.settings.max_output_tokens:,}-token output limit "
                "(REVTOPS_MAX_OUTPUT_TOKENS) and was cut off."
            )
        elif stop == "pause_turn":
            yield Notice("The model paused its turn too many times; stopping here.")
        elif stop == "tool_use":  # still asking for tools after the cap
            yield Error(
                "The model kept asking for tools past the tool round limit; stopping.",
                kind="tool_rounds_cap",
            )
        return "tool_rounds_cap" if state.capped else stop

    # -- one API call, streamed and retried --------------------------------------------------------

    def _call(
        self, client: anthropic.Anthropic, request: dict[str, Any], cancel: threading.Event
    ) -> Generator[AgentEvent, None, CallOutcome]:
        attempt = 0
        streamed = threading.Event()  # set once text of this call reached the consumer
        while True:
            streamed.clear()
            try:
                return (yield from self._stream(client, request, cancel, streamed))
            except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
                retryable, kind, wait = _classify(exc)
                broke_off = streamed.is_set()
                if not retryable or attempt >= self.settings.api_retries:
                    raise _CallFailed(_final_error(exc, kind, attempt)) from exc
                delay = wait if wait is not None else self._backoff(attempt)
                delay = min(delay, self.max_retry_wait)
                attempt += 1
                yield Notice(
                    f"Claude's API is {_describe(kind)}; retrying in {delay:.1f} s "
                    f"(attempt {attempt + 1} of {self.settings.api_retries + 1}).",
                    restarts_answer=broke_off,
                )
                if cancel.wait(delay):
                    return CallOutcome(cancelled=True)

    def _backoff(self, attempt: int) -> float:
        return self.retry_base_delay * (2**attempt) * (0.75 + 0.5 * random.random())

    def _stream(
        self,
        client: anthropic.Anthropic,
        request: dict[str, Any],
        cancel: threading.Event,
        streamed: threading.Event,
    ) -> Generator[AgentEvent, None, CallOutcome]:
        outcome = CallOutcome()
        partial: dict[int, dict[str, Any]] = {}
        json_parts: dict[int, list[str]] = {}
        stream = client.messages.create(**request, stream=True)
        try:
            for event in stream:
                if cancel.is_set():
                    outcome.cancelled = True
                    return outcome
                kind = event.type
                if kind == "message_start":
                    _read_usage(outcome, event.message.usage)
                elif kind == "content_block_start":
                    partial[event.index] = event.content_block.model_dump(exclude_none=True)
                    json_parts[event.index] = []
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        partial[event.index]["text"] = (
                            partial[event.index].get("text", "") + delta.text
                        )
                        streamed.set()
                        yield TextDelta(delta.text)
                    elif delta.type == "input_json_delta":
                        json_parts[event.index].append(delta.partial_json)
                elif kind == "content_block_stop":
                    block = partial.pop(event.index)
                    if block.get("type") == "tool_use":
                        text = "".join(json_parts.pop(event.index, []))
                        try:
                            block["input"] = json.loads(text) if text.strip() else {}
                        except json.JSONDecodeError:  # cut by max_tokens mid-input
                            outcome.incomplete_tool_use = True
                            continue
                        yield ToolCallStarted(block["id"], block["name"], block["input"])
                    outcome.blocks.append(canonical_block(block))
                elif kind == "message_delta":
                    outcome.stop_reason = event.delta.stop_reason
                    _read_usage(outcome, event.usage)
        finally:
            stream.close()
        if partial:  # blocks without their stop: cut mid-block (max_tokens)
            outcome.incomplete_tool_use = any(b.get("type") == "tool_use" for b in partial.values())
            outcome.blocks += [
                canonical_block(b) for b in partial.values() if b.get("type") == "text"
            ]
        return outcome


@dataclass
class _QuestionState:
    conversation_id: uuid.UUID | None
    rounds: int = 0
    tokens: int = 0
    capped: bool = False
    pending: list[store.NewMessage] = field(default_factory=list)


def _with_blocks(message: store.NewMessage, blocks: list[dict[str, Any]]) -> store.NewMessage:
    from dataclasses import replace

    return replace(message, blocks=blocks)


def _read_usage(outcome: CallOutcome, usage: Any) -> None:
    """Usage from message_start, then message_delta (whose counts are cumulative)."""
    if usage is None:
        return
    for source, target in (
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("cache_read_input_tokens", "cache_read_tokens"),
        ("cache_creation_input_tokens", "cache_creation_tokens"),
    ):
        value = getattr(usage, source, None)
        if isinstance(value, int):
            setattr(outcome, target, value)


def _error_type(exc: anthropic.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
    return None


def _classify(exc: Exception) -> tuple[bool, str, float | None]:
    """(retryable, kind, seconds the server asked to wait)."""
    if isinstance(exc, anthropic.APIConnectionError):
        return True, "unreachable", None
    assert isinstance(exc, anthropic.APIStatusError)
    status = exc.status_code
    error_type = _error_type(exc)
    wait = _retry_after(exc)
    if status == 429 or error_type == "rate_limit_error":
        return True, "rate_limited", wait
    if status == 529 or error_type == "overloaded_error":
        return True, "overloaded", wait
    if status >= 500 or error_type == "api_error":
        return True, "api", wait
    if status in (401, 403):
        return False, "configuration", None
    return False, "api", None


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _describe(kind: str) -> str:
    return {
        "rate_limited": "rate limiting this key",
        "overloaded": "overloaded",
        "unreachable": "unreachable",
    }.get(kind, "failing")


def _final_error(exc: Exception, kind: str, retries: int) -> Error:
    tried = f" after {retries + 1} attempts" if retries else ""
    if kind == "rate_limited":
        message = f"Claude's API is rate limiting this API key{tried}. Wait a minute and ask again."
    elif kind == "overloaded":
        message = f"Claude's API is overloaded{tried}. Try again in a few minutes."
    elif kind == "unreachable":
        message = (
            f"Could not reach Claude's API{tried} ({exc}). Check the network or ANTHROPIC_BASE_URL."
        )
    elif kind == "configuration":
        status = getattr(exc, "status_code", "")
        message = (
            f"Claude's API refused the API key (HTTP {status}). Check ANTHROPIC_API_KEY: it "
            "must be a valid key from https://console.anthropic.com/settings/keys."
        )
    else:
        message = f"Claude's API returned an error{tried}: {_api_message(exc)}"
    return Error(
        message, kind=kind, retryable=kind in ("rate_limited", "overloaded", "unreachable", "api")
    )


def _api_message(exc: Exception) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return f"{body['error'].get('type')}: {body['error'].get('message')}"
        return f"HTTP {exc.status_code}"
    return str(exc)
