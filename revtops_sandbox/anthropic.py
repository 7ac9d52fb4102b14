"""A scripted Anthropic Messages API on loopback, for tests, benchmarks and demos.

It speaks the real wire format, so the real ``anthropic`` SDK talks to it through
``base_url`` (or ``ANTHROPIC_BASE_URL``): ``POST /v1/messages`` streaming (SSE) or not, headers
checked like the API checks them, errors in the API's shape, usage with a simulated prompt
cache. What the model "says" comes from a script of turns, consumed one per request:

    with ScriptedMessagesServer() as api:
        api.script(
            Turn.tool("run_sql_query", {"sql": "SELECT 1"}),
            Fault.rate_limited(retry_after=1),
            lambda request: Turn.reply(f"got {len(request.tool_results)} results"),
        )
        client = anthropic.Anthropic(api_key=api.api_key, base_url=api.base_url)
        ...
        api.requests[0].body["tools"]  # what the client sent

The prompt cache follows the API's rules closely enough to measure a client's cache placement:
a ``cache_control`` breakpoint stores the prefix (tools, then system, then messages) up to its
block; a later request reads the longest stored prefix found at a block boundary up to 20
blocks before one of its own breakpoints; prefixes shorter than the model's minimum cacheable
length are never cached. Tokens are estimated with ``estimate_tokens`` (see its docstring).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_VERSION = "2023-06-01"
DEFAULT_API_KEY = "sk-ant-scripted-test-key"
# Minimum cacheable prefix per model family (tokens): below it the API silently caches nothing.
MIN_CACHEABLE_TOKENS = {"opus-4-5": 4096, "haiku-4-5": 4096, "opus": 4096, "haiku": 2048}
DEFAULT_MIN_CACHEABLE = 1024  # Sonnet 4.x, Opus 4 / 4.1
CACHE_LOOKBACK_BLOCKS = 20
TEXT_CHUNK_CHARS = 24
JSON_CHUNK_CHARS = 16


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``, estimated as ceil(characters / 3.5).

    Claude's tokenizer is not public; Anthropic's rule of thumb is ~3.5 characters per token
    for English prose, and code and JSON tokenize denser, so this estimate errs on the low side
    for SQL and schemas (good for checking a minimum length). The count_tokens endpoint gives
    the exact figure when an API key is at hand.
    """
    return math.ceil(len(text) / 3.5) if text else 0


def min_cacheable_tokens(model: str) -> int:
    for family, minimum in MIN_CACHEABLE_TOKENS.items():
        if family in model:
            return minimum
    return DEFAULT_MIN_CACHEABLE


# --- the script ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextOut:
    text: str


@dataclass(frozen=True)
class ToolUseOut:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_{uuid.uuid4().hex[:24]}")


@dataclass(frozen=True)
class Turn:
    """One assistant response: content blocks, a stop reason, and how to deliver it.

    ``stream_error`` sends an in-stream ``error`` event of that type after ``error_after``
    events (the HTTP status stays 200, as with the real API's mid-stream overloads).
    ``event_delay`` sleeps before every SSE event (seconds).
    """

    blocks: tuple[TextOut | ToolUseOut, ...] = ()
    stop_reason: str | None = None  # default: tool_use if a tool is used, else end_turn
    event_delay: float = 0.0
    stream_error: str | None = None
    error_after: int = 3
    output_tokens: int | None = None  # default: estimated from the content

    @staticmethod
    def reply(text: str, *, stop_reason: str = "end_turn", **options: Any) -> Turn:
        return Turn((TextOut(text),), stop_reason=stop_reason, **options)

    @staticmethod
    def tool(
        name: str, tool_input: dict[str, Any], *, text: str | None = None, **options: Any
    ) -> Turn:
        blocks: list[TextOut | ToolUseOut] = [TextOut(text)] if text else []
        blocks.append(ToolUseOut(name, tool_input))
        return Turn(tuple(blocks), **options)

    @property
    def effective_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUseOut) for b in self.blocks) else "end_turn"


@dataclass(frozen=True)
class Fault:
    """An HTTP error answer instead of a turn: the API's status, error type and headers."""

    status: int
    error_type: str
    message: str
    retry_after: float | None = None

    @staticmethod
    def rate_limited(retry_after: float | None = 1.0) -> Fault:
        return Fault(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            retry_after,
        )

    @staticmethod
    def overloaded() -> Fault:
        return Fault(529, "overloaded_error", "Overloaded")

    @staticmethod
    def server_error() -> Fault:
        return Fault(500, "api_error", "Internal server error")

    @staticmethod
    def invalid_request(message: str) -> Fault:
        return Fault(400, "invalid_request_error", message)


Step = Turn | Fault | Callable[["RecordedRequest"], "Turn | Fault"]


@dataclass(frozen=True)
class RecordedRequest:
    """A request as received: its JSON body and headers (lower-cased names)."""

    body: dict[str, Any]
    headers: dict[str, str]
    answered_with: str  # turn, fault or rejected

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """tool_result blocks of the last user message, in order."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    return [b for b in content if b.get("type") == "tool_result"]
                return []
        return []

    @property
    def tool_names(self) -> list[str]:
        return [tool["name"] for tool in self.body.get("tools", [])]


@dataclass(frozen=True)
class CacheOutcome:
    input_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


class PromptCache:
    """Prefix hashes stored at breakpoints, as the API stores them (one organization, no TTL)."""

    def __init__(self) -> None:
        self._stored: set[str] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._stored.clear()

    def apply(self, body: dict[str, Any]) -> CacheOutcome:
        blocks = _prefix_blocks(body)
        hashes, totals = [], []
        digest = hashlib.sha256(str(body.get("model", "")).encode())
        running = 0
        for text, _ in blocks:
            digest.update(text.encode())
            hashes.append(digest.copy().hexdigest())
            running += estimate_tokens(text)
            totals.append(running)
        total = running
        minimum = min_cacheable_tokens(str(body.get("model", "")))
        breakpoints = [i for i, (_, marked) in enumerate(blocks) if marked]
        read_at = -1
        with self._lock:
            for point in breakpoints:
                for index in range(point, max(-1, point - CACHE_LOOKBACK_BLOCKS - 1), -1):
                    if hashes[index] in self._stored:
                        read_at = max(read_at, index)
                        break
            read = totals[read_at] if read_at >= 0 else 0
            written_to = read_at
            for point in breakpoints:
                if totals[point] >= minimum:
                    self._stored.add(hashes[point])
                    written_to = max(written_to, point)
        created = totals[written_to] - read if written_to > read_at else 0
        return CacheOutcome(total - read - created, read, created)


def _prefix_blocks(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """(text, has cache_control) per block, in the API's prefix order: tools, system, messages."""
    blocks: list[tuple[str, bool]] = []
    for tool in body.get("tools") or []:
        shown = {k: v for k, v in tool.items() if k != "cache_control"}
        blocks.append((json.dumps(shown, ensure_ascii=False), "cache_control" in tool))
    system = body.get("system")
    if isinstance(system, str):
        blocks.append((system, False))
    elif isinstance(system, list):
        for block in system:
            blocks.append((str(block.get("text", "")), "cache_control" in block))
    for message in body.get("messages") or []:
        content = message.get("content")
        role = str(message.get("role"))
        if isinstance(content, str):
            blocks.append((f"{role}:{content}", False))
            continue
        for block in content or []:
            shown = {k: v for k, v in block.items() if k != "cache_control"}
            blocks.append(
                (f"{role}:{json.dumps(shown, ensure_ascii=False)}", "cache_control" in block)
            )
    return blocks


# --- validation like the API's ---------------------------------------------------------------


def _invalid(message: str) -> Fault:
    return Fault.invalid_request(message)


def validate_request(body: dict[str, Any]) -> Fault | None:
    """The checks the API makes that a client loop can get wrong; None when the body is fine."""
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return _invalid(f"{key}: Field required")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return _invalid("messages: at least one message is required")
    if messages[0].get("role") != "user":
        return _invalid('messages: first message must use the "user" role')
    breakpoints = sum(flag for _, flag in _prefix_blocks(body))
    if breakpoints > 4:
        return _invalid(
            f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
        )
    tool_names = {tool.get("name") for tool in body.get("tools") or []}
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") not in ("user", "assistant"):
            return _invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        if isinstance(content, list) and not content:
            return _invalid(f"messages.{index}: all messages must have non-empty content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        uses = [b for b in content if b.get("type") == "tool_use"]
        for use in uses:
            if use.get("name") not in tool_names:
                return _invalid(f"messages.{index}: tool_use names unknown tool {use.get('name')}")
        if not uses:
            continue
        following = messages[index + 1] if index + 1 < len(messages) else None
        results = []
        if following is not None and isinstance(following.get("content"), list):
            for block in following["content"]:
                if block.get("type") != "tool_result":
                    break
                results.append(block.get("tool_use_id"))
        missing = [use["id"] for use in uses if use["id"] not in results]
        if following is not None and missing:
            return _invalid(
                f"messages.{index + 1}.content.0: unexpected `tool_use_id` found in "
                "`tool_result` blocks"
                if results
                else f"messages.{index + 1}: `tool_use` ids were found without `tool_result` "
                f"blocks immediately after: {', '.join(missing)}. Each `tool_use` block must "
                "have a corresponding `tool_result` block in the next message."
            )
    return None


def _forbids_tools(body: dict[str, Any]) -> bool:
    choice = body.get("tool_choice")
    return isinstance(choice, dict) and choice.get("type") == "none"


def _uses_tools(turn: Turn) -> bool:
    return any(isinstance(block, ToolUseOut) for block in turn.blocks)


# --- the server ------------------------------------------------------------------------------


def _error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class ScriptedMessagesServer:
    """The Messages API on 127.0.0.1 in a background thread; a context manager.

    ``script(*steps)`` appends steps; each request consumes one. A step is a ``Turn``, a
    ``Fault``, or a callable that gets the ``RecordedRequest`` and returns either. A request
    with nothing scripted gets a 500 ``api_error`` saying so, which fails the test loudly.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        default_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.default_delay = default_delay
        self.cache = PromptCache()
        self._port = port
        self._steps: list[Step] = []
        self._requests: list[RecordedRequest] = []
        self._billed: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.streams_closed_early = 0  # streams the client hung up on before message_stop

    # -- script and records -----------------------------------------------------------------

    def script(self, *steps: Step) -> ScriptedMessagesServer:
        with self._lock:
            self._steps.extend(steps)
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._steps)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def billed(self) -> list[dict[str, Any]]:
        """The final usage of every answered turn, in order, as the API reported it."""
        with self._lock:
            return list(self._billed)

    def reset(self) -> None:
        """Forget requests, steps and the cache."""
        with self._lock:
            self._steps.clear()
            self._requests.clear()
            self._billed.clear()
        self.cache.clear()

    # -- life cycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def start(self, timeout_s: float = 10.0) -> ScriptedMessagesServer:
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._socket = sock
        self._port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="scripted-anthropic",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the scripted Messages API did not start on port {self._port}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> ScriptedMessagesServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the endpoint -----------------------------------------------------------------------

    async def _messages(self, request: Request) -> Response:
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        headers = {"request-id": request_id}
        recorded_headers = {k.lower(): v for k, v in request.headers.items()}
        # The API takes the key as X-Api-Key; newer SDKs send it as a bearer token.
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            return JSONResponse(
                _error_body("authentication_error", "invalid x-api-key", request_id),
                status_code=401,
                headers=headers,
            )
        if not request.headers.get("anthropic-version"):
            return JSONResponse(
                _error_body(
                    "invalid_request_error", "anthropic-version: header is required", request_id
                ),
                status_code=400,
                headers=headers,
            )
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            return JSONResponse(
                _error_body("invalid_request_error", f"invalid JSON body: {exc}", request_id),
                status_code=400,
                headers=headers,
            )
        problem = validate_request(body)
        recorded = RecordedRequest(body, recorded_headers, "rejected" if problem else "pending")
        step: Step | None = None
        with self._lock:
            if problem is None and self._steps:
                step = self._steps.pop(0)
        if problem is None and step is None:
            problem = Fault(500, "api_error", "scripted server: no turn left in the script")
        if step is not None and not isinstance(step, Turn | Fault):
            step = step(recorded)
        answer = problem or step
        assert answer is not None
        if _forbids_tools(body) and isinstance(answer, Turn) and _uses_tools(answer):
            # The real API never answers tool_choice none with a tool call: the script is wrong.
            answer = Fault(500, "api_error", "scripted turn uses a tool under tool_choice none")
        kind = "rejected" if problem else "fault" if isinstance(answer, Fault) else "turn"
        with self._lock:
            self._requests.append(RecordedRequest(body, recorded_headers, kind))
        if isinstance(answer, Fault):
            if answer.retry_after is not None:
                headers["retry-after"] = f"{answer.retry_after:g}"
            if answer.status in (429, 529) or answer.status >= 500:
                headers["x-should-retry"] = "true"
            return JSONResponse(
                _error_body(answer.error_type, answer.message, request_id),
                status_code=answer.status,
                headers=headers,
            )
        usage = self.cache.apply(body)
        with self._lock:
            self._billed.append(self._usage(usage, self._output_tokens(answer)))
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        if not body.get("stream"):
            if answer.event_delay:
                await asyncio.sleep(answer.event_delay)
            return JSONResponse(
                self._message_json(answer, body, message_id, usage), headers=headers
            )
        return StreamingResponse(
            self._stream(answer, body, message_id, usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    def _output_tokens(self, turn: Turn) -> int:
        if turn.output_tokens is not None:
            return turn.output_tokens
        total = 0
        for block in turn.blocks:
            text = block.text if isinstance(block, TextOut) else json.dumps(block.input)
            total += estimate_tokens(text)
        return max(total, 1)

    def _usage(self, usage: CacheOutcome, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "output_tokens": output_tokens,
        }

    def _message_json(
        self, turn: Turn, body: dict[str, Any], message_id: str, usage: CacheOutcome
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for block in turn.blocks:
            if isinstance(block, TextOut):
                content.append({"type": "text", "text": block.text})
            else:
                content.append(
                    {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
                )
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": turn.effective_stop_reason,
            "stop_sequence": None,
            "usage": self._usage(usage, self._output_tokens(turn)),
        }

    def _events(
        self, turn: Turn, body: dict[str, Any], message_id: str, usage: CacheOutcome
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": self._usage(usage, 1),
                },
            }
        ]
        for index, block in enumerate(turn.blocks):
            if isinstance(block, TextOut):
                start: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": piece}
                    for piece in _chunks(block.text, TEXT_CHUNK_CHARS)
                ]
            else:
                start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
                # The API's first input_json_delta is often empty; the rest split the JSON text.
                deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in _chunks(json.dumps(block.input), JSON_CHUNK_CHARS)
                ]
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            if index == 0:
                events.append({"type": "ping"})
            events.extend(
                {"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas
            )
            events.append({"type": "content_block_stop", "index": index})
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": turn.effective_stop_reason, "stop_sequence": None},
                "usage": self._usage(usage, self._output_tokens(turn)),
            }
        )
        events.append({"type": "message_stop"})
        return events

    async def _stream(
        self, turn: Turn, body: dict[str, Any], message_id: str, usage: CacheOutcome
    ) -> AsyncIterator[bytes]:
        delay = turn.event_delay or self.default_delay
        events = self._events(turn, body, message_id, usage)
        finished = False
        try:
            for count, event in enumerate(events):
                if turn.stream_error and count == turn.error_after:
                    message = "Overloaded" if turn.stream_error == "overloaded_error" else "error"
                    yield _sse(_error_body(turn.stream_error, message, message_id))
                    finished = True
                    return
                if delay:
                    await asyncio.sleep(delay)
                yield _sse(event)
            finished = True
        finally:
            if not finished:
                with self._lock:
                    self.streams_closed_early += 1


def scripted_settings_overrides(server: ScriptedMessagesServer) -> dict[str, str]:
    """``load_settings(**...)`` overrides that point the assistant at ``server``."""
    return {"ANTHROPIC_API_KEY": server.api_key, "ANTHROPIC_BASE_URL": server.base_url}


__all__: Sequence[str] = (
    "Fault",
    "RecordedRequest",
    "ScriptedMessagesServer",
    "TextOut",
    "ToolUseOut",
    "Turn",
    "estimate_tokens",
    "scripted_settings_overrides",
)
