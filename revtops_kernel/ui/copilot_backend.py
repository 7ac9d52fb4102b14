"""The panel's real backend: the answering path (verified queries first, then the agent loop),
the conversation store, the artifact exports."""

from __future__ import annotations

import getpass
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from revtops_kernel.agent.events import (
    AgentEvent,
    AnswerStop,
    ArtifactCreated,
    Done,
    Notice,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from revtops_kernel.errors import RevtopsError
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store.database import Database
from revtops_kernel.ui.backend import ConversationItem, ExportFile, ExportKind, Turn

log = logging.getLogger(__name__)


class CopilotBackend:
    """``ChatBackend`` over ``Copilot`` and ``revtops_kernel.agent.conversations``."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        org: str | None = None,
        user_id: Any = None,
        author: str | None = None,
    ) -> None:
        from revtops_kernel.answering import Answerer

        self.db = db
        self.settings = settings
        self.org = org or settings.org
        self.user_id = user_id
        self.author = author or getpass.getuser()  # the PDF header's author
        self.answerer = Answerer(db, settings, org=self.org, user_id=user_id)
        self.copilot = self.answerer.copilot

    @classmethod
    def create(
        cls,
        *,
        db: Database | None = None,
        settings: Settings | None = None,
        org: str | None = None,
        user_id: Any = None,
        author: str | None = None,
    ) -> CopilotBackend:
        """From explicit objects (an embedding app) or from the environment (a notebook)."""
        settings = settings or load_settings()
        if db is None:
            from revtops_kernel.api import database

            db = database(settings)
        return cls(db, settings, org=org, user_id=user_id, author=author)

    @property
    def default_timezone(self) -> str:
        return self.settings.timezone

    def ask(
        self,
        question: str,
        *,
        conversation_id: uuid.UUID | None,
        timezone: str | None,
        cancel: threading.Event,
    ) -> Iterator[AgentEvent]:
        return self.answerer.ask(
            question, conversation_id=conversation_id, timezone=timezone, cancel=cancel
        )

    def list_conversations(self) -> list[ConversationItem]:
        from revtops_kernel.agent import conversations

        return [
            ConversationItem(c.id, c.title, c.updated_at, c.message_count)
            for c in conversations.list_conversations(self.db, org=self.org, user_id=self.user_id)
        ]

    def rename_conversation(self, conversation_id: uuid.UUID, title: str) -> None:
        from revtops_kernel.agent import conversations

        conversations.rename_conversation(self.db, conversation_id, title, org=self.org)

    def delete_conversation(self, conversation_id: uuid.UUID) -> None:
        from revtops_kernel.agent import conversations

        conversations.delete_conversation(self.db, conversation_id, org=self.org)

    def load_transcript(self, conversation_id: uuid.UUID) -> list[Turn]:
        """The stored conversation as questions and replayable events (charts re-rendered)."""
        from revtops_kernel.agent import conversations

        items = conversations.load_transcript(self.db, conversation_id, org=self.org)
        turns: list[Turn] = []
        for index, item in enumerate(items):
            if item.kind == "user":
                turns.append(Turn(item.text or ""))
                continue
            if not turns:
                turns.append(Turn(""))
            turns[-1].events.extend(self._replay(item, index))
        for turn in turns:
            turn.events.append(Done(conversation_id, AnswerStop.END_TURN))
        return turns

    def _replay(self, item: Any, index: int) -> list[AgentEvent]:
        if item.kind == "assistant":
            return [TextDelta((item.text or "") + "\n\n")]
        if item.kind == "tool_call":
            call_id = f"stored-{index}"
            name = item.tool_name or "tool"
            return [
                ToolCallStarted(call_id, name, dict(item.tool_input)),
                ToolResult(
                    call_id, name, ok=bool(item.ok), summary=item.summary or "", sql=item.sql
                ),
            ]
        if item.kind == "artifact" and item.artifact_id is not None:
            return [self._artifact(item.artifact_id, item.title or "")]
        return []

    def _artifact(self, artifact_id: uuid.UUID, title: str) -> AgentEvent:
        from revtops_kernel.artifacts import render_artifact

        try:
            event: ArtifactCreated = render_artifact(self.db, artifact_id, org=self.org).event()
        except RevtopsError as exc:
            return Notice(f"The artifact {title!r} could not be redrawn: {exc}")
        return event

    def export(self, conversation_id: uuid.UUID, kind: ExportKind, *, timezone: str) -> ExportFile:
        """A PDF or a runnable notebook of the conversation (the artifacts package makes it)."""
        import revtops_kernel.artifacts as artifacts

        if kind == "pdf":
            data = artifacts.conversation_to_pdf(
                self.db, conversation_id, org=self.org, author=self.author, timezone=timezone
            )
            return ExportFile(f"conversation-{conversation_id}.pdf", "application/pdf", data)
        import nbformat

        notebook = artifacts.conversation_to_notebook(self.db, conversation_id, org=self.org)
        text = nbformat.writes(notebook)
        return ExportFile(
            f"conversation-{conversation_id}.ipynb", "application/x-ipynb+json", text.encode()
        )

    def export_artifact(self, artifact_id: uuid.UUID, *, timezone: str) -> ExportFile:
        """One chart, table, report or dashboard as a PDF, re-rendered on today's data."""
        import revtops_kernel.artifacts as artifacts

        data = artifacts.artifact_to_pdf(
            self.db, artifact_id, org=self.org, author=self.author, timezone=timezone
        )
        return ExportFile(f"artifact-{artifact_id}.pdf", "application/pdf", data)
