"""A stored conversation as turns to export: each question with its answer, queries, artifacts.

Built on ``agent.conversations.load_transcript`` (which pairs each tool_use with its result);
this module only groups those items by question and keeps what an export shows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from revtops_kernel.agent.conversations import load_transcript
from revtops_kernel.errors import ConversationNotFoundError
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import Conversation

QUERY_TOOLS = ("run_sql_query", "run_verified_query")


@dataclass(frozen=True)
class AnswerText:
    markdown: str


@dataclass(frozen=True)
class QueryCall:
    tool_name: str
    sql: str | None  # None for a verified query (it runs trusted SQL by name)
    ok: bool
    summary: str
    verified_name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # What the query returned, as stored with the conversation: the rows the model saw (its
    # context caps them) and the query's full row count.
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    row_count: int | None = None


@dataclass(frozen=True)
class ArtifactRef:
    artifact_id: uuid.UUID
    title: str


Entry = AnswerText | QueryCall | ArtifactRef


@dataclass
class Turn:
    question: str | None  # None for answer items before any question (never in practice)
    entries: list[Entry] = field(default_factory=list)


@dataclass(frozen=True)
class ConversationDoc:
    conversation_id: uuid.UUID
    title: str
    created_at: datetime | None
    turns: list[Turn]


def conversation_doc(
    db: Database, conversation_id: uuid.UUID | str, *, org: str
) -> ConversationDoc:
    """The conversation's title and turns; ``ConversationNotFoundError`` outside ``org``."""
    key = conversation_id if isinstance(conversation_id, uuid.UUID) else uuid.UUID(conversation_id)
    with db.connect() as connection:
        row = connection.execute(
            select(Conversation.title, Conversation.created_at).where(
                Conversation.id == key, Conversation.organization_id == org
            )
        ).first()
    if row is None:
        raise ConversationNotFoundError(key, org)
    turns: list[Turn] = []
    for item in load_transcript(db, key, org=org):
        if item.kind == "user":
            turns.append(Turn(item.text or ""))
            continue
        if not turns:
            turns.append(Turn(None))
        entry = _entry(item)
        if entry is not None:
            turns[-1].entries.append(entry)
    return ConversationDoc(key, row.title or "Conversation", row.created_at, turns)


def _entry(item: Any) -> Entry | None:
    if item.kind == "assistant" and item.text:
        return AnswerText(item.text)
    if item.kind == "artifact" and item.artifact_id is not None:
        return ArtifactRef(item.artifact_id, item.title or "")
    if item.kind == "tool_call" and item.tool_name in QUERY_TOOLS:
        verified = item.tool_name == "run_verified_query"
        params = item.tool_input.get("params") if verified else None
        columns, rows, row_count = _result_rows(item.result)
        return QueryCall(
            tool_name=item.tool_name,
            sql=item.sql,
            ok=bool(item.ok),
            summary=item.summary or "",
            verified_name=str(item.tool_input.get("name")) if verified else None,
            params=params if isinstance(params, dict) else {},
            columns=columns,
            rows=rows,
            row_count=row_count,
        )
    return None


def _result_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]], int | None]:
    """Columns, rows and row count of a stored query result; nothing when it holds none."""
    columns, rows, count = result.get("columns"), result.get("rows"), result.get("row_count")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return [], [], None
    width = len(columns)
    kept = [row for row in rows if isinstance(row, list) and len(row) == width]
    return [str(c) for c in columns], kept, count if isinstance(count, int) else len(kept)
