"""One Messages API call: streamed into events, accumulated into blocks, retried.

Retries (429, 529, 5xx, connection errors and in-stream ``error`` events) honour
``retry-after`` up to a cap, otherwise back off exponentially with jitter; each retry is a
``Notice``. The SDK's own retries are off (``max_retries=0``) so that the user hears about
them and a cancel can interrupt the wait.

With a ``Meter`` (the cost ledger, ``agent/ledger.py``), each attempt is admitted against the
organization's cost caps before it starts and writes its ``llm_usage`` row when it ends, with
the usage the API reported (also for a failed or cancelled attempt: what was streamed counts).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import anthropic

from revtops_kernel.agent.events import (
    AgentEvent,
    Error,
    ErrorKind,
    Notice,
    TextDelta,
    ToolCallStarted,
)
from revtops_kernel.agent.ledger import CallUsage, Meter
from revtops_kernel.agent.wire import canonical_block
from revtops_kernel.errors import CostCapError


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4
    base_delay: float = 1.0  # seconds; doubled per attempt, with jitter
    max_wait: float = 60.0  # the longest retry-after honoured

    def backoff(self, attempt: int) -> float:
        return self.base_delay * (2**attempt) * (0.75 + 0.5 * random.random())


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
    def usage(self) -> CallUsage:
        return CallUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_creation_tokens=self.cache_creation_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_creation_tokens
        )


class CallFailed(Exception):
    """The call failed for good; ``error`` is the event that says so."""

    def __init__(self, error: Error) -> None:
        self.error = error
        super().__init__(error.message)


def call_with_retries(
    client: anthropic.Anthropic,
    request: dict[str, Any],
    cancel: threading.Event,
    policy: RetryPolicy,
    *,
    meter: Meter | None = None,
) -> Generator[AgentEvent, None, CallOutcome]:
    """One call, streamed, retried per ``policy``; raises ``CallFailed`` once it gives up (or
    when ``meter`` finds the organization over a cost cap)."""
    attempt = 0
    streamed = threading.Event()  # set once text of this call reached the consumer
    while True:
        streamed.clear()
        try:
            return (yield from metered_call(client, request, cancel, streamed, meter))
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            retryable, kind, wait = classify(exc)
            broke_off = streamed.is_set()
            if not retryable or attempt >= policy.retries:
                raise CallFailed(final_error(exc, kind, attempt)) from exc
            delay = min(wait if wait is not None else policy.backoff(attempt), policy.max_wait)
            attempt += 1
            yield Notice(
                f"Claude's API is {_describe(kind)}; retrying in {delay:.1f} s "
                f"(attempt {attempt + 1} of {policy.retries + 1}).",
                restarts_answer=broke_off,
            )
            if cancel.wait(delay):
                return CallOutcome(cancelled=True)


def metered_call(
    client: anthropic.Anthropic,
    request: dict[str, Any],
    cancel: threading.Event,
    streamed: threading.Event,
    meter: Meter | None,
) -> Generator[AgentEvent, None, CallOutcome]:
    """One attempt, admitted by the cost caps and written to the ledger however it ends."""
    if meter is None:
        return (yield from stream_call(client, request, cancel, streamed))
    try:
        ticket = meter.admit(request)
    except CostCapError as exc:
        raise CallFailed(Error(str(exc), kind=ErrorKind.COST_CAP)) from exc
    outcome = CallOutcome()
    status = "failed"
    try:
        yield from stream_call(client, request, cancel, streamed, outcome)
        status = "cancelled" if outcome.cancelled else "done"
        return outcome
    except BaseException as exc:  # a closed generator or Ctrl-C stops a call the API bills
        status = "failed" if isinstance(exc, Exception) else "cancelled"
        raise
    finally:
        meter.settle(ticket, outcome.usage, status)


def stream_call(
    client: anthropic.Anthropic,
    request: dict[str, Any],
    cancel: threading.Event,
    streamed: threading.Event,
    outcome: CallOutcome | None = None,
) -> Generator[AgentEvent, None, CallOutcome]:
    """Stream one call: text deltas and finished tool calls as events, blocks accumulated.

    ``cancel`` is checked between stream events; the stream is closed however this ends.
    ``streamed`` is set once text reached the consumer (a retry then restarts the answer).
    ``outcome`` is filled in place when given, so its usage survives a call that fails."""
    outcome = outcome if outcome is not None else CallOutcome()
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
                    partial[event.index]["text"] = partial[event.index].get("text", "") + delta.text
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
        outcome.blocks += [canonical_block(b) for b in partial.values() if b.get("type") == "text"]
    return outcome


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


def classify(exc: Exception) -> tuple[bool, ErrorKind, float | None]:
    """(retryable, kind, seconds the server asked to wait)."""
    if isinstance(exc, anthropic.APIConnectionError):
        return True, ErrorKind.UNREACHABLE, None
    assert isinstance(exc, anthropic.APIStatusError)
    status = exc.status_code
    error_type = _error_type(exc)
    wait = _retry_after(exc)
    if status == 429 or error_type == "rate_limit_error":
        return True, ErrorKind.RATE_LIMITED, wait
    if status == 529 or error_type == "overloaded_error":
        return True, ErrorKind.OVERLOADED, wait
    if status >= 500 or error_type == "api_error":
        return True, ErrorKind.API, wait
    if status in (401, 403):
        return False, ErrorKind.CONFIGURATION, None
    return False, ErrorKind.API, None


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


def final_error(exc: Exception, kind: ErrorKind, retries: int) -> Error:
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
    return Error(message, kind=kind, retryable=kind.retryable)


def _api_message(exc: Exception) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return f"{body['error'].get('type')}: {body['error'].get('message')}"
        return f"HTTP {exc.status_code}"
    return str(exc)
