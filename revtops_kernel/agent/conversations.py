"""Conversations in the store: threads, their messages, and a transcript for re-rendering.

A message row holds ``{"blocks": [...]}``: the Messages API content blocks exactly as sent or
received, so a conversation reloads into the very request an uninterrupted session would send
(``api_messages``). Tool-use turns are written together with their tool results, so a stored
conversation never ends on a ``tool_use`` without its ``tool_result``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from revtops_kernel.errors import ConversationNotFoundError
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import utcnow

_conversations = metadata.tables["conversations"]
_messages = metadata.tables["messages"]
TITLE_MAX_CHARS = 60


@dataclass(frozen=True)
class ConversationSummary:
    id: uuid.UUID
    title: str
    updated_at: datetime
    message_count: int
    model: str | None = None


@dataclass(frozen=True)
class NewMessage:
    """A message to append: its role and blocks, and for assistant turns the call's usage."""

    role: str
    blocks: list[dict[str, Any]]
    model: str | None = None
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    cost_usd: Decimal | None = None


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    role: str
    blocks: list[dict[str, Any]]
    model: str | None
    created_at: datetime


@dataclass(frozen=True)
class TranscriptItem:
    """One thing to show when re-rendering a conversation, in order.

    kind: ``user`` (text), ``assistant`` (text), ``tool_call`` (name, input, sql, ok, summary)
    or ``artifact`` (artifact_id, title).
    """

    kind: str
    text: str | None = None
    tool_name: str | None = None
    tool_input: dict[str, Any] = field(default_factory=dict)
    sql: str | None = None
    ok: bool | None = None
    summary: str | None = None
    artifact_id: uuid.UUID | None = None
    title: str | None = None
    created_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)  # the tool_result's JSON (rows...)


def auto_title(question: str) -> str:
    """The first question, on one line, cut at a word boundary near 60 characters."""
    text = " ".join(question.split())
    if len(text) <= TITLE_MAX_CHARS:
        return text or "New conversation"
    cut = text[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] or text[:TITLE_MAX_CHARS]
    return cut.rstrip(" ,;:.-") + "…"


def create_conversation(
    db: Database, *, org: str, user_id: uuid.UUID | None, title: str, model: str | None
) -> uuid.UUID:
    conversation_id = uuid.uuid4()
    now = utcnow()
    with db.begin() as conn:
        conn.execute(
            _conversations.insert().values(
                id=conversation_id,
                organization_id=org,
                user_id=user_id,
                title=title,
                model=model,
                created_at=now,
                updated_at=now,
            )
        )
    return conversation_id


def _require(conn: Connection, conversation_id: uuid.UUID, org: str) -> None:
    found = conn.execute(
        select(_conversations.c.id).where(
            _conversations.c.id == conversation_id, _conversations.c.organization_id == org
        )
    ).first()
    if found is None:
        raise ConversationNotFoundError(conversation_id, org)


def append_messages(
    db: Database, conversation_id: uuid.UUID, messages: Sequence[NewMessage], *, org: str
) -> None:
    """Append messages in one transaction (a tool_use turn with its results, atomically)."""
    if not messages:
        return
    now = utcnow()
    with db.begin() as conn:
        _require(conn, conversation_id, org)
        last = conn.execute(
            select(func.max(_messages.c.seq)).where(_messages.c.conversation_id == conversation_id)
        ).scalar_one()
        seq = -1 if last is None else int(last)
        rows = []
        for message in messages:
            seq += 1
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "conversation_id": conversation_id,
                    "organization_id": org,
                    "seq": seq,
                    "role": message.role,
                    "content": {"blocks": message.blocks},
                    "model": message.model,
                    "stop_reason": message.stop_reason,
                    "input_tokens": message.input_tokens,
                    "output_tokens": message.output_tokens,
                    "cache_read_tokens": message.cache_read_tokens,
                    "cache_creation_tokens": message.cache_creation_tokens,
                    "cost_usd": message.cost_usd,
                    "created_at": now,
                }
            )
        conn.execute(_messages.insert(), rows)
        conn.execute(
            update(_conversations)
            .where(_conversations.c.id == conversation_id)
            .values(updated_at=now)
        )


def load_messages(db: Database, conversation_id: uuid.UUID, *, org: str) -> list[StoredMessage]:
    with db.connect() as conn:
        _require(conn, conversation_id, org)
        rows = conn.execute(
            select(
                _messages.c.seq,
                _messages.c.role,
                _messages.c.content,
                _messages.c.model,
                _messages.c.created_at,
            )
            .where(
                _messages.c.conversation_id == conversation_id, _messages.c.organization_id == org
            )
            .order_by(_messages.c.seq)
        ).all()
    return [
        StoredMessage(row.seq, row.role, _blocks(row.content), row.model, row.created_at)
        for row in rows
    ]


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):  # DuckDB's JSON may come back as text
        content = json.loads(content)
    blocks = content.get("blocks", []) if isinstance(content, dict) else []
    return [dict(block) for block in blocks]


def list_conversations(
    db: Database, *, org: str, user_id: uuid.UUID | None = None
) -> list[ConversationSummary]:
    """The organization's conversations (one user's, if given), newest first."""
    counts = (
        select(_messages.c.conversation_id, func.count().label("n"))
        .group_by(_messages.c.conversation_id)
        .subquery()
    )
    query = (
        select(
            _conversations.c.id,
            _conversations.c.title,
            _conversations.c.updated_at,
            _conversations.c.model,
            func.coalesce(counts.c.n, 0),
        )
        .select_from(
            _conversations.outerjoin(counts, counts.c.conversation_id == _conversations.c.id)
        )
        .where(_conversations.c.organization_id == org)
        .order_by(_conversations.c.updated_at.desc(), _conversations.c.id)
    )
    if user_id is not None:
        query = query.where(_conversations.c.user_id == user_id)
    with db.connect() as conn:
        rows = conn.execute(query).all()
    return [
        ConversationSummary(row[0], row[1] or "Untitled", row[2], int(row[4]), row[3])
        for row in rows
    ]


def rename_conversation(db: Database, conversation_id: uuid.UUID, title: str, *, org: str) -> None:
    title = " ".join(title.split())
    if not title:
        raise ValueError("a conversation title cannot be empty")
    with db.begin() as conn:
        _require(conn, conversation_id, org)
        conn.execute(
            update(_conversations)
            .where(_conversations.c.id == conversation_id)
            .values(title=title[:200], updated_at=utcnow())
        )


def delete_conversation(db: Database, conversation_id: uuid.UUID, *, org: str) -> None:
    """Delete the conversation and its messages (artifacts stay: they stand on their own)."""
    with db.begin() as conn:
        _require(conn, conversation_id, org)
        conn.execute(delete(_messages).where(_messages.c.conversation_id == conversation_id))
        conn.execute(delete(_conversations).where(_conversations.c.id == conversation_id))


def discard_unanswered(db: Database, conversation_id: uuid.UUID, *, org: str) -> bool:
    """Delete a conversation that holds no answer (its first question failed); True if done.

    A bad key or an unreachable API must not leave a conversation with nothing in it behind.
    """
    with db.begin() as conn:
        answered = conn.execute(
            select(_messages.c.id).where(
                _messages.c.conversation_id == conversation_id,
                _messages.c.organization_id == org,
                _messages.c.role == "assistant",
            )
        ).first()
        if answered is not None:
            return False
        conn.execute(delete(_messages).where(_messages.c.conversation_id == conversation_id))
        done = conn.execute(
            delete(_conversations).where(
                _conversations.c.id == conversation_id, _conversations.c.organization_id == org
            )
        )
    return bool(done.rowcount)


def load_transcript(db: Database, conversation_id: uuid.UUID, *, org: str) -> list[TranscriptItem]:
    """User text, assistant text, tool calls with their SQL and outcome, artifacts: in order."""
    messages = load_messages(db, conversation_id, org=org)
    results: dict[str, dict[str, Any]] = {}
    for message in messages:
        for block in message.blocks:
            if block.get("type") == "tool_result":
                results[str(block.get("tool_use_id"))] = block
    items: list[TranscriptItem] = []
    for message in messages:
        for block in message.blocks:
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                items.append(
                    TranscriptItem(message.role, text=block["text"], created_at=message.created_at)
                )
            elif kind == "tool_use":
                items.extend(_tool_items(block, results.get(str(block.get("id"))), message))
    return items


def _tool_items(
    use: dict[str, Any], result: dict[str, Any] | None, message: StoredMessage
) -> list[TranscriptItem]:
    tool_input = use.get("input") if isinstance(use.get("input"), dict) else {}
    assert isinstance(tool_input, dict)
    sql = tool_input.get("sql") if isinstance(tool_input.get("sql"), str) else None
    payload = _result_payload(result)
    ok = result is not None and not result.get("is_error", False)
    if result is None:
        summary = "no result recorded"
    elif not ok:
        summary = str(payload.get("error") or payload.get("text") or "error")
    elif "row_count" in payload:
        count = int(payload["row_count"])
        summary = f"{count:,} row{'s' if count != 1 else ''}" + (
            " (truncated)" if payload.get("truncated") else ""
        )
    elif "artifact_id" in payload:
        summary = f"{payload.get('kind', 'artifact')} created"
    else:
        summary = "done"
    items = [
        TranscriptItem(
            "tool_call",
            tool_name=str(use.get("name")),
            tool_input=tool_input,
            sql=sql,
            ok=ok,
            summary=summary,
            created_at=message.created_at,
            result=payload if ok else {},
        )
    ]
    if ok and "artifact_id" in payload:
        items.append(
            TranscriptItem(
                "artifact",
                artifact_id=uuid.UUID(str(payload["artifact_id"])),
                title=str(payload.get("title") or ""),
                created_at=message.created_at,
            )
        )
    return items


def _result_payload(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {}
    content = result.get("content")
    if isinstance(content, list):
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    if not isinstance(content, str):
        return {}
    try:
        payload = json.loads(content)
    except json.JSONDecodeError:
        return {"text": content}
    return payload if isinstance(payload, dict) else {"text": content}


def conversation_visible(
    db: Database, conversation_id: uuid.UUID, *, org: str, user_id: uuid.UUID | None
) -> bool:
    """Whether the conversation exists in ``org`` and, when ``user_id`` is given, is theirs."""
    query = select(_conversations.c.user_id).where(
        _conversations.c.id == conversation_id, _conversations.c.organization_id == org
    )
    with db.connect() as conn:
        row = conn.execute(query).first()
    return row is not None and (user_id is None or row.user_id == user_id)
