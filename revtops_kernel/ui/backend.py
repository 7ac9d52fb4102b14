"""What the chat panel needs from the world, as one small interface.

The panel is a view: it asks, lists, renames, deletes, reloads and exports through a
``ChatBackend``. ``CopilotBackend`` is the real one (the agent loop and the conversation
store); tests inject a scripted one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from revtops_kernel.agent.events import AgentEvent

ExportKind = Literal["pdf", "ipynb"]


@dataclass(frozen=True)
class ConversationItem:
    """A row of the conversation list."""

    id: uuid.UUID
    title: str
    updated_at: datetime | None = None
    message_count: int = 0


@dataclass(frozen=True)
class Turn:
    """One question and the events of its answer, as reloaded from the store."""

    question: str
    events: list[AgentEvent] = field(default_factory=list)


@dataclass(frozen=True)
class ExportFile:
    filename: str
    mime: str
    data: bytes


class ChatBackend(Protocol):
    def ask(
        self,
        question: str,
        *,
        conversation_id: uuid.UUID | None,
        timezone: str | None,
        cancel: threading.Event,
    ) -> Iterator[AgentEvent]: ...

    def list_conversations(self) -> list[ConversationItem]: ...

    def rename_conversation(self, conversation_id: uuid.UUID, title: str) -> None: ...

    def delete_conversation(self, conversation_id: uuid.UUID) -> None: ...

    def load_transcript(self, conversation_id: uuid.UUID) -> list[Turn]: ...

    def export(
        self, conversation_id: uuid.UUID, kind: ExportKind, *, timezone: str
    ) -> ExportFile: ...

    def export_artifact(self, artifact_id: uuid.UUID, *, timezone: str) -> ExportFile: ...
