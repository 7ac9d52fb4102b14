"""The chat widget's wire protocol: agent events in, small JSON messages out, one state.

The kernel sends only what changed; the browser (``static/chat.js``, ``reduce``) and
``ChatState.apply`` here apply the same messages to the same state, so a reconnecting view
(page reload, a second view of the widget) gets ``ChatState.snapshot()`` in one message.

Kernel -> browser:
    "text"                                    a text delta: appended to the answer's open text
    {"t": "turn", "q", "at"}                  a question was asked (ISO 8601 Z); running
    {"t": "item", "item": {...}}              a tool call, an artifact, a notice or an error
    {"t": "tool_end", "id", "ok", "summary", "sql", "ran", "verified", "table"}
    {"t": "done", "stop", "verified", "current"}
    {"t": "list", "conversations", "current"} the conversation list changed
    {"t": "state", ...ChatState}              everything, for a (re)connecting view
    {"t": "status", "msg", "error"}           a line under the thread (export progress, errors)
    {"t": "file", "name", "mime"} + buffer    a download (one click: the browser saves it)
    {"t": "plotly"} + buffer                  plotly.min.js, on the first chart only

Browser -> kernel: hello (with the browser's timezone), ask, stop, new, open, rename, delete,
export, artifact_pdf, plotly.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from revtops_kernel.agent.events import (
    AgentEvent,
    ArtifactCreated,
    Done,
    Error,
    Notice,
    Suggestions,
    TablePreview,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    Usage,
    VerifiedAnswer,
)
from revtops_kernel.timeutil import iso_z
from revtops_kernel.ui.backend import ConversationItem
from revtops_kernel.ui.stream import DEFAULT_MAX_RATE, TextCoalescer

Message = str | dict[str, Any]
Send = Callable[[Message], None]

# 14 text flushes a second: a word waits at most ~71 ms for its flush, so with the trip to the
# browser and its paint the p95 stays under the 100 ms goal (at 11 a second it was 102-108 ms
# in Chromium under load). Each flush costs ~90 bytes of comm content and ~550 of Jupyter
# headers, which the app's compressed websocket shrinks to a few bytes (bench/chat_stream.py).
DELTA_RATE = 14.0
assert DELTA_RATE <= DEFAULT_MAX_RATE


def table_json(table: TablePreview | None) -> dict[str, Any] | None:
    if table is None:
        return None
    return {
        "columns": list(table.columns),
        "rows": table.rows,
        "total_rows": table.total_rows,
        "truncated": table.truncated,
    }


def conversation_json(item: ConversationItem) -> dict[str, Any]:
    return {
        "id": str(item.id),
        "title": item.title or "Untitled",
        "at": iso_z(item.updated_at) if item.updated_at else None,
        "n": item.message_count,
    }


def turn_message(question: str, at: datetime) -> dict[str, Any]:
    return {"t": "turn", "q": question, "at": iso_z(at)}


class EventTranslator:
    """One answer's events -> messages. Text is coalesced (<= ``max_rate`` sends a second) and
    sent as the new characters only; any other item closes the open text."""

    def __init__(self, send: Send, *, max_rate: float = DELTA_RATE) -> None:
        self._send = send
        self._sent = 0
        self.coalescer = TextCoalescer(self._flush_text, max_rate=max_rate)
        self._calls: dict[str, ToolCallStarted] = {}
        self.verified = False

    def _flush_text(self, text: str) -> None:
        delta, self._sent = text[self._sent :], len(text)
        if delta:
            self._send(delta)

    def _close_text(self) -> None:
        self.coalescer.flush()
        self.coalescer.retarget(self._flush_text, "")
        self._sent = 0

    def _item(self, item: dict[str, Any]) -> None:
        self._close_text()
        self._send({"t": "item", "item": item})

    def handle(self, event: AgentEvent) -> None:
        if isinstance(event, TextDelta):
            self.coalescer.add(event.text)
        elif isinstance(event, ToolCallStarted):
            self._calls[event.id] = event
            sql = event.sql
            self._item(
                {
                    "k": "tool",
                    "id": event.id,
                    "name": event.name,
                    "sql": sql,
                    "input": None if sql is not None else event.input,
                }
            )
        elif isinstance(event, ToolResult):
            self._close_text()
            call = self._calls.pop(event.id, None)
            asked = call.sql if call is not None else None
            self.verified |= event.verified and event.ok
            self._send(
                {
                    "t": "tool_end",
                    "id": event.id,
                    "name": event.name,
                    "ok": event.ok,
                    "summary": event.summary,
                    "sql": asked or event.sql,
                    "ran": event.sql,
                    "verified": event.verified,
                    "table": table_json(event.table),
                }
            )
        elif isinstance(event, ArtifactCreated):
            self.verified |= event.verified
            self._item(
                {
                    "k": "artifact",
                    "id": str(event.artifact_id),
                    "kind": event.kind,
                    "title": event.title,
                    "verified": event.verified,
                    "figs": event.figures,
                    "table": table_json(event.table),
                    "md": event.markdown,
                }
            )
        elif isinstance(event, VerifiedAnswer):
            self.verified = True
            self._item(
                {
                    "k": "verified",
                    "name": event.name,
                    "title": event.title,
                    "params": event.params,
                    "sql": event.sql,
                    "table": table_json(event.table),
                    "chart": event.chart,
                    "note": event.note,
                }
            )
        elif isinstance(event, Suggestions):
            self._item(
                {
                    "k": "suggest",
                    "msg": event.message,
                    "reason": event.reason,
                    "questions": [{"q": s.question, "title": s.title} for s in event.questions],
                }
            )
        elif isinstance(event, Notice):
            self._item({"k": "notice", "msg": event.message})
        elif isinstance(event, Error):
            self.error(event.message, event.kind)
        elif isinstance(event, Done):
            self._close_text()
        elif isinstance(event, Usage):
            return

    def error(self, message: str, kind: str = "error") -> None:
        self._item({"k": "error", "msg": message, "kind": kind})

    def done(self, stop_reason: str | None, current: uuid.UUID | None) -> None:
        self._close_text()
        self._send(
            {
                "t": "done",
                "stop": stop_reason,
                "verified": self.verified,
                "current": str(current) if current else None,
            }
        )


@dataclass
class ChatState:
    """What a view shows, kept in the kernel; ``apply`` mirrors ``reduce`` in chat.js."""

    conversations: list[dict[str, Any]] = field(default_factory=list)
    current: str | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)
    running: bool = False
    suggestions: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {
            "t": "state",
            "conversations": copy.deepcopy(self.conversations),
            "current": self.current,
            "turns": copy.deepcopy(self.turns),
            "running": self.running,
            "suggestions": list(self.suggestions),
        }

    def apply(self, message: Message) -> None:
        if isinstance(message, str):
            if not self.turns:
                return
            items = self.turns[-1]["items"]
            if items and items[-1]["k"] == "text":
                items[-1]["md"] += message
            else:
                items.append({"k": "text", "md": message})
            return
        kind = message.get("t")
        if kind == "state":
            body = copy.deepcopy(message)
            self.conversations = body["conversations"]
            self.current = body["current"]
            self.turns = body["turns"]
            self.running = body["running"]
            self.suggestions = body["suggestions"]
        elif kind == "list":
            self.conversations = copy.deepcopy(message["conversations"])
            self.current = message["current"]
        elif kind == "turn":
            self.turns.append(
                {
                    "q": message["q"],
                    "at": message["at"],
                    "items": [],
                    "stop": None,
                    "verified": False,
                }
            )
            self.running = True
        elif kind == "item" and self.turns:
            self.turns[-1]["items"].append(copy.deepcopy(message["item"]))
        elif kind == "tool_end" and self.turns:
            fields = {k: v for k, v in copy.deepcopy(message).items() if k != "t"}
            items = self.turns[-1]["items"]
            for item in items:
                if item["k"] == "tool" and item["id"] == message["id"]:
                    item.update(fields)
                    break
            else:
                items.append({"k": "tool", **fields})
        elif kind == "done":
            if self.turns:
                self.turns[-1]["stop"] = message["stop"]
                self.turns[-1]["verified"] = message["verified"]
            self.running = False
            if "current" in message:
                self.current = message["current"]
