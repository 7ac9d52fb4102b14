"""What the agent loop yields, one typed event at a time.

Every front end (the chat panel, the ``%%ask`` magic, ``revtops ask``, tests) consumes these
alike, so they carry data only: no widget, no SDK object. Order within one answer:

    ToolCallStarted(id) precedes its ToolResult(id); ArtifactCreated follows the ToolResult of the
    create_artifact call that made it; Usage comes once per Messages API call; Done is last, and
    an Error, if any, comes just before it. A routed question starts with VerifiedAnswer; an
    unrouted one without a key gets Suggestions (then Done).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """What went wrong, for a front end to choose its reply (the values are the wire's)."""

    CONFIGURATION = "configuration"  # no or a refused API key, an unknown timezone
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    UNREACHABLE = "unreachable"
    API = "api"  # any other API error
    REFUSAL = "refusal"  # Claude declined to answer
    STORE = "store"
    INTERNAL = "internal"
    QUESTION_TOO_LONG = "question_too_long"
    TOKEN_CAP = "token_cap"
    TOOL_ROUNDS_CAP = "tool_rounds_cap"
    COST_CAP = "cost_cap"  # the organization reached a model cost cap (agent/ledger.py)
    CANCELLED = "cancelled"  # a front end's own, when the user stops an answer
    ERROR = "error"  # unclassified

    @property
    def retryable(self) -> bool:
        """Asking again later may succeed."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {ErrorKind.RATE_LIMITED, ErrorKind.OVERLOADED, ErrorKind.UNREACHABLE, ErrorKind.API}
)


class AnswerStop(StrEnum):
    """Why an answer ended (``Done.stop_reason``): the API's last stop reason, or the loop's."""

    # the Messages API's stop reasons (anthropic.types.StopReason)
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    PAUSE_TURN = "pause_turn"
    REFUSAL = "refusal"
    MODEL_CONTEXT_WINDOW_EXCEEDED = "model_context_window_exceeded"
    # the loop's own
    TOOL_ROUNDS_CAP = "tool_rounds_cap"
    TOKEN_CAP = "token_cap"
    QUESTION_TOO_LONG = "question_too_long"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class TextDelta:
    """A piece of the assistant's answer text, in order (markdown)."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    """The model asked for a tool; ``input`` is the complete, parsed tool input."""

    id: str
    name: str
    input: dict[str, Any]

    @property
    def sql(self) -> str | None:
        """The SQL the call runs, for tools that take one (shown under "Querying…")."""
        value = self.input.get("sql")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class TablePreview:
    """The first rows of a result, JSON-safe (ISO 8601 ``Z`` times, decimals as numbers)."""

    columns: list[str]
    rows: list[list[Any]]
    total_rows: int
    truncated: bool = False


@dataclass(frozen=True)
class ToolResult:
    """A tool finished. ``ok`` False means the model got an ``is_error`` tool_result."""

    id: str
    name: str
    ok: bool
    summary: str  # one line for people: "42 rows in 12 ms", or the refusal's reason
    sql: str | None = None  # the SQL that actually ran (after the guard's rewrite), if any
    table: TablePreview | None = None
    verified: bool = False  # answered by a verified query
    elapsed_ms: float | None = None


@dataclass(frozen=True)
class ArtifactCreated:
    """A chart, table, report or dashboard was stored in ``artifacts``."""

    artifact_id: uuid.UUID
    kind: str  # chart, table, report or dashboard
    title: str
    figures: list[dict[str, Any]] = field(default_factory=list)  # Plotly figure JSON, in order
    table: TablePreview | None = None
    markdown: str | None = None
    verified: bool = False


@dataclass(frozen=True)
class VerifiedAnswer:
    """A verified query answered the question, before any model text: what ran and its rows.

    Comes first in an answer the router sent to a verified query. ``narrated`` is True when the
    model writes text around these numbers next (a key is set); the text that follows is the
    model's, the table, chart and SQL are the verified query's."""

    name: str  # the verified query, e.g. pipeline_by_stage
    title: str
    params: dict[str, Any]  # JSON-safe (dates as ISO text)
    sql: str  # as it ran, parameters written in
    table: TablePreview
    chart: dict[str, Any] | None = None  # Plotly figure JSON, when the rows make one
    note: str | None = None  # an approximation the query makes
    confidence: float = 0.0
    narrated: bool = False


@dataclass(frozen=True)
class SuggestedQuestion:
    """A verified question a user can ask as is (click to ask)."""

    question: str
    name: str  # the verified query that answers it
    title: str


@dataclass(frozen=True)
class Suggestions:
    """No verified query answers the question and no model is configured: the closest
    verified questions, and ``message`` saying how to ask free-form questions."""

    questions: tuple[SuggestedQuestion, ...]
    message: str
    reason: str | None = None  # why the router did not answer (plain words)


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one Messages API call."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: Decimal | None = None


@dataclass(frozen=True)
class Notice:
    """Something the user should see that is not an answer: "rate limited, retrying in 4 s"."""

    message: str
    # True when a call broke off mid-stream and is retried: the text streamed since the last
    # Usage event (or since the question began) is dropped and will be streamed again.
    restarts_answer: bool = False


@dataclass(frozen=True)
class Error:
    """The answer could not be completed. ``message`` is plain and says what to do."""

    message: str
    kind: ErrorKind = ErrorKind.ERROR
    retryable: bool = False


@dataclass(frozen=True)
class Done:
    """The answer is over (after ``end_turn``, an error, a cap, or a cancel)."""

    conversation_id: uuid.UUID | None
    stop_reason: AnswerStop
    rounds: int = 0


AgentEvent = (
    TextDelta
    | ToolCallStarted
    | ToolResult
    | ArtifactCreated
    | VerifiedAnswer
    | Suggestions
    | Usage
    | Notice
    | Error
    | Done
)
