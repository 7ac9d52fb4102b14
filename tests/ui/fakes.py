"""A scripted ChatBackend: the panel's unit tests run without a model or a store."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from revtops_kernel.agent.events import (
    AgentEvent,
    ArtifactCreated,
    Done,
    Error,
    TablePreview,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from revtops_kernel.errors import RevtopsError
from revtops_kernel.ui.backend import ConversationItem, ExportFile, ExportKind, Turn

PIPELINE_SQL = "SELECT stage, SUM(amount) AS amount FROM deals GROUP BY stage"
PIPELINE_TABLE = TablePreview(
    columns=["stage", "amount"], rows=[["Proposal", 120000.5], ["Won", 80000]], total_rows=2
)
PIPELINE_FIGURE = {
    "data": [{"type": "bar", "x": ["Proposal", "Won"], "y": [120000.5, 80000]}],
    "layout": {"title": {"text": "Pipeline by stage"}},
}


def pipeline_answer(
    text: str = "Pipeline is **$200k**.\n\nMost of it is in Proposal.",
) -> list[AgentEvent]:
    """bad SQL -> refusal -> corrected SQL (verified) -> chart -> streamed answer."""
    events: list[AgentEvent] = [
        TextDelta("Let me look."),
        ToolCallStarted("t1", "run_sql_query", {"sql": "DELETE FROM deals"}),
        ToolResult("t1", "run_sql_query", ok=False, summary="refused: only SELECT is allowed"),
        ToolCallStarted("t2", "run_verified_query", {"sql": PIPELINE_SQL}),
        ToolResult(
            "t2",
            "run_verified_query",
            ok=True,
            summary="2 rows in 3 ms",
            sql=PIPELINE_SQL,
            table=PIPELINE_TABLE,
            verified=True,
        ),
        ArtifactCreated(
            uuid.uuid4(), "chart", "Pipeline by stage", figures=[PIPELINE_FIGURE], verified=True
        ),
    ]
    events += [TextDelta(text[i : i + 3]) for i in range(0, len(text), 3)]
    return events


@dataclass
class FakeBackend:
    """Answers each question with the next scripted list of events."""

    scripts: list[list[AgentEvent]] = field(default_factory=list)
    delay: float = 0.0
    fail_with: BaseException | None = None
    conversations: dict[uuid.UUID, tuple[str, list[Turn]]] = field(default_factory=dict)
    asked: list[dict[str, object]] = field(default_factory=list)
    default_timezone: str = "UTC"
    exports: list[tuple[str, uuid.UUID, str]] = field(default_factory=list)

    def ask(
        self,
        question: str,
        *,
        conversation_id: uuid.UUID | None,
        timezone: str | None,
        cancel: threading.Event,
    ) -> Iterator[AgentEvent]:
        self.asked.append(
            {"question": question, "conversation_id": conversation_id, "timezone": timezone}
        )
        if self.fail_with is not None:
            raise self.fail_with
        events = self.scripts.pop(0) if self.scripts else []
        conversation = conversation_id or uuid.uuid4()
        title, turns = self.conversations.get(conversation, (question[:40], []))
        done: list[AgentEvent] = []
        for event in events:
            if cancel.is_set():
                yield Error("Stopped.", kind="cancelled")
                yield Done(conversation, "cancelled")
                break
            time.sleep(self.delay)
            done.append(event)
            yield event
        else:
            yield Done(conversation, "end_turn")
        self.conversations[conversation] = (title, [*turns, Turn(question, done)])

    def list_conversations(self) -> list[ConversationItem]:
        now = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
        return [
            ConversationItem(id_, title, now, len(turns))
            for id_, (title, turns) in self.conversations.items()
        ]

    def rename_conversation(self, conversation_id: uuid.UUID, title: str) -> None:
        _, turns = self.conversations[conversation_id]
        self.conversations[conversation_id] = (title, turns)

    def delete_conversation(self, conversation_id: uuid.UUID) -> None:
        del self.conversations[conversation_id]

    def load_transcript(self, conversation_id: uuid.UUID) -> list[Turn]:
        if conversation_id not in self.conversations:
            raise RevtopsError(f"conversation {conversation_id} not found")
        return self.conversations[conversation_id][1]

    def export(self, conversation_id: uuid.UUID, kind: ExportKind, *, timezone: str) -> ExportFile:
        self.exports.append((kind, conversation_id, timezone))
        return ExportFile(f"conversation.{kind}", "application/pdf", b"%PDF-1.7 test double")

    def export_artifact(self, artifact_id: uuid.UUID, *, timezone: str) -> ExportFile:
        self.exports.append(("artifact", artifact_id, timezone))
        return ExportFile("artifact.pdf", "application/pdf", b"%PDF-1.7 artifact")
