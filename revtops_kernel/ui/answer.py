"""One answer, rendered as it streams: the agent's events in, cards on a surface out.

The same renderer drives the chat panel (a surface of widgets), the ``%%ask`` magic (a surface
of display handles) and ``ask()`` (no surface, only the record). Text is coalesced (<= 25
updates per second) and split into markdown blocks: a finished block is rendered once; only
the open tail block is re-sent while tokens arrive.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
from revtops_kernel.ui import views
from revtops_kernel.ui.markdown import render_markdown
from revtops_kernel.ui.stream import DEFAULT_MAX_RATE, TextCoalescer, split_blocks


class Slot(Protocol):
    """A piece of HTML already on screen that can be replaced."""

    def update(self, html: str) -> None: ...


class Surface(Protocol):
    """Where an answer's pieces appear, in order."""

    def add_html(self, html: str) -> Slot: ...

    def add_figure(self, figure: dict[str, Any]) -> None: ...

    def add_artifact_actions(self, artifact: ArtifactCreated) -> None:
        """Controls under an artifact (the panel's "PDF" button); may add nothing."""


@dataclass(frozen=True)
class QueryRun:
    """One tool call as the answer records it."""

    tool: str
    sql: str | None
    ok: bool
    summary: str
    verified: bool = False
    table: TablePreview | None = None


@dataclass
class Answer:
    """What ``ask()`` returns: the text, the queries that ran, the artifacts, the thread."""

    question: str
    text: str = ""
    queries: list[QueryRun] = field(default_factory=list)
    artifacts: list[ArtifactCreated] = field(default_factory=list)
    conversation_id: uuid.UUID | None = None
    stop_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    notices: list[str] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    text_updates: int = 0  # how many times the streaming text was re-drawn (coalesced)

    @property
    def verified(self) -> bool:
        """True when a verified query answered (a query result or an artifact)."""
        return any(q.verified and q.ok for q in self.queries) or any(
            a.verified for a in self.artifacts
        )

    @property
    def figures(self) -> list[dict[str, Any]]:
        return [figure for artifact in self.artifacts for figure in artifact.figures]

    def _repr_html_(self) -> str:
        parts = [views.STYLE, '<div class="revtops-answer">']
        if self.text:
            parts.append(f'<div class="rt-text">{render_markdown(self.text)}</div>')
        for query in self.queries:
            mark = "✓" if query.ok else "✗"
            parts.append(
                f'<div class="rt-status">{mark} {views.escape(query.summary)}'
                f"{views.verified_badge() if query.verified else ''}</div>"
            )
        if self.error:
            parts.append(views.error_card(self.error))
        parts.append("</div>")
        return "".join(parts)


class _NoSlot:
    def update(self, html: str) -> None:
        return None


class NullSurface:
    """Renders nothing: ``ask()`` keeps the record only."""

    def add_html(self, html: str) -> Slot:
        return _NoSlot()

    def add_figure(self, figure: dict[str, Any]) -> None:
        return None

    def add_artifact_actions(self, artifact: ArtifactCreated) -> None:
        return None


class AnswerRecorder:
    """The record of one answer (text, queries, artifacts, usage, errors), drawing nothing."""

    def __init__(self, question: str) -> None:
        self.answer = Answer(question=question)
        self._calls: dict[str, ToolCallStarted] = {}
        self._segment_break = False

    def handle(self, event: AgentEvent) -> None:
        answer = self.answer
        if isinstance(event, TextDelta):
            if self._segment_break and answer.text:
                answer.text += "\n\n"  # text before and after a tool call: two paragraphs
            self._segment_break = False
            answer.text += event.text
        elif isinstance(event, ToolCallStarted):
            self._calls[event.id] = event
            self._segment_break = True
        elif isinstance(event, ToolResult):
            call = self._calls.pop(event.id, None)
            answer.queries.append(
                QueryRun(
                    tool=event.name,
                    sql=event.sql or (call.sql if call is not None else None),
                    ok=event.ok,
                    summary=event.summary,
                    verified=event.verified,
                    table=event.table,
                )
            )
        elif isinstance(event, ArtifactCreated):
            self._segment_break = True
            answer.artifacts.append(event)
        elif isinstance(event, VerifiedAnswer):
            self._segment_break = True
            answer.queries.append(
                QueryRun(
                    tool=event.name,
                    sql=event.sql,
                    ok=True,
                    summary=event.title,
                    verified=True,
                    table=event.table,
                )
            )
        elif isinstance(event, Suggestions):
            answer.notices.append(event.message)
        elif isinstance(event, Usage):
            answer.usage.append(event)
        elif isinstance(event, Notice):
            answer.notices.append(event.message)
        elif isinstance(event, Error):
            self.error(event.message, event.kind)
        elif isinstance(event, Done):
            self._segment_break = True
            answer.conversation_id = event.conversation_id
            answer.stop_reason = event.stop_reason

    def error(self, message: str, kind: str = "error") -> None:
        """The first error is the answer's error."""
        self._segment_break = True
        if self.answer.error is None:
            self.answer.error = message
            self.answer.error_kind = kind


class AnswerRenderer:
    """Turns the agent's events into cards on ``surface``; ``answer`` is the record."""

    def __init__(
        self,
        question: str,
        surface: Surface,
        *,
        max_rate: float = DEFAULT_MAX_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recorder = AnswerRecorder(question)
        self.surface = surface
        self.coalescer = TextCoalescer(self._show_text, max_rate=max_rate, clock=clock)
        self._frozen_blocks = 0
        self._tail: Slot | None = None
        self._slots: dict[str, tuple[ToolCallStarted, Slot]] = {}

    @property
    def answer(self) -> Answer:
        return self.recorder.answer

    # --- text -----------------------------------------------------------------------------
    def _show_text(self, segment: str) -> None:
        finished, tail = split_blocks(segment)
        for block in finished[self._frozen_blocks :]:
            html = f'<div class="rt-text">{render_markdown(block)}</div>'
            if self._tail is not None:
                self._tail.update(html)  # the open block is finished: its last update
                self._tail = None
            else:
                self.surface.add_html(html)
            self._frozen_blocks += 1
        if tail.strip():
            html = f'<div class="rt-text">{render_markdown(tail)}</div>'
            if self._tail is None:
                self._tail = self.surface.add_html(html)
            else:
                self._tail.update(html)

    def _end_text_segment(self) -> None:
        """Text after a tool call or an artifact starts a new segment below it."""
        self.coalescer.flush()
        self.coalescer.retarget(self._show_text, "")
        self._frozen_blocks = 0
        self._tail = None

    # --- events ---------------------------------------------------------------------------
    def handle(self, event: AgentEvent) -> None:
        if isinstance(event, Error):
            self.show_error(event.message, event.kind)
            return
        self.recorder.handle(event)
        if isinstance(event, TextDelta):
            self.coalescer.add(event.text)
        elif isinstance(event, ToolCallStarted):
            self._end_text_segment()
            self._slots[event.id] = (event, self.surface.add_html(views.tool_call_card(event)))
        elif isinstance(event, ToolResult):
            call, slot = self._slots.pop(event.id, (None, None))
            html = views.tool_result_card(call, event)
            if slot is None:
                self.surface.add_html(html)
            else:
                slot.update(html)
        elif isinstance(event, ArtifactCreated):
            self._on_artifact(event)
        elif isinstance(event, VerifiedAnswer):
            self._end_text_segment()
            self.surface.add_html(views.verified_answer_card(event))
            if event.chart is not None:
                self.surface.add_figure(event.chart)
        elif isinstance(event, Suggestions):
            self.surface.add_html(views.suggestions_card(event))
        elif isinstance(event, Notice):
            self.surface.add_html(views.notice_line(event.message))
        elif isinstance(event, Done):
            self._end_text_segment()
            if self.answer.verified and self.answer.error is None:
                self.surface.add_html(
                    f'<div class="rt-status">{views.verified_badge()} '
                    "this answer comes from verified queries</div>"
                )

    def _on_artifact(self, artifact: ArtifactCreated) -> None:
        self._end_text_segment()
        if not artifact.figures or artifact.verified:  # a chart carries its own title
            self.surface.add_html(views.artifact_title(artifact.title, verified=artifact.verified))
        for figure in artifact.figures:
            self.surface.add_figure(figure)
        if artifact.table is not None and not artifact.figures:
            self.surface.add_html(views.table_html(artifact.table))
        if artifact.markdown:
            self.surface.add_html(
                f'<div class="rt-text">{render_markdown(artifact.markdown)}</div>'
            )
        self.surface.add_artifact_actions(artifact)

    def show_error(self, message: str, kind: str = "error") -> None:
        """A plain error card; the first error is the answer's error."""
        self._end_text_segment()
        self.recorder.error(message, kind)
        self.surface.add_html(views.error_card(message))
