"""Conversations in the store, on both backends: list, rename, delete, transcript, isolation."""

from __future__ import annotations

import time
import uuid

import pytest
from copilot_fixtures import ORG

from revtops_kernel.agent.conversations import (
    ConversationNotFoundError,
    NewMessage,
    append_messages,
    auto_title,
    create_conversation,
    delete_conversation,
    list_conversations,
    load_messages,
    load_transcript,
    rename_conversation,
)
from revtops_kernel.agent.wire import api_messages
from revtops_kernel.store import Database

USER = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


def test_titles_come_from_the_first_question() -> None:
    assert auto_title("  How many deals\n closed last week? ") == "How many deals closed last week?"
    long = "Which of our enterprise accounts in the EMEA region have open renewals " * 2
    title = auto_title(long)
    assert len(title) <= 61 and title.endswith("…") and not title.endswith(" …")
    assert title.startswith("Which of our enterprise accounts in the EMEA region have")
    assert auto_title("   ") == "New conversation"


def test_list_rename_delete_newest_first(db: Database) -> None:
    first = create_conversation(db, org=ORG, user_id=USER, title="First", model="m")
    time.sleep(0.01)
    second = create_conversation(db, org=ORG, user_id=USER, title="Second", model="m")
    other_user = create_conversation(db, org=ORG, user_id=None, title="Shared", model="m")
    create_conversation(db, org="globex", user_id=USER, title="Not ours", model="m")
    time.sleep(0.01)
    append_messages(db, first, [NewMessage("user", [{"type": "text", "text": "hi"}])], org=ORG)

    mine = list_conversations(db, org=ORG, user_id=USER)
    assert [c.title for c in mine] == ["First", "Second"]  # the newest message first
    assert [c.message_count for c in mine] == [1, 0]
    assert {c.id for c in list_conversations(db, org=ORG)} == {first, second, other_user}

    rename_conversation(db, second, "  Pipeline   review ", org=ORG)
    assert list_conversations(db, org=ORG, user_id=USER)[0].title == "Pipeline review"
    with pytest.raises(ValueError):
        rename_conversation(db, second, "   ", org=ORG)

    delete_conversation(db, first, org=ORG)
    assert [c.id for c in list_conversations(db, org=ORG, user_id=USER)] == [second]
    with pytest.raises(ConversationNotFoundError):
        load_messages(db, first, org=ORG)


def test_another_organization_cannot_read_or_change_a_conversation(db: Database) -> None:
    conversation = create_conversation(db, org=ORG, user_id=None, title="Ours", model=None)
    for action in (
        lambda: load_messages(db, conversation, org="globex"),
        lambda: load_transcript(db, conversation, org="globex"),
        lambda: rename_conversation(db, conversation, "x", org="globex"),
        lambda: delete_conversation(db, conversation, org="globex"),
        lambda: append_messages(db, conversation, [NewMessage("user", [])], org="globex"),
    ):
        with pytest.raises(ConversationNotFoundError):
            action()
    assert list_conversations(db, org=ORG)[0].title == "Ours"


def test_blocks_round_trip_into_the_same_request(db: Database) -> None:
    """PostgreSQL's jsonb reorders keys; the request built from stored blocks must not change."""
    conversation = create_conversation(db, org=ORG, user_id=None, title="t", model=None)
    tool_input = {"sql": "SELECT 1", "purpose": "one", "a_longer_key": [1, {"z": 1, "a": 2}]}
    use = {"type": "tool_use", "id": "toolu_1", "name": "run_sql_query", "input": tool_input}
    result = {"type": "tool_result", "tool_use_id": "toolu_1",
              "content": '{"rows":[[1]]}', "is_error": True}  # fmt: skip
    history = [
        ("user", [{"type": "text", "text": "q ünïcode ✓"}]),
        ("assistant", [{"type": "text", "text": "Looking"}, use]),
        ("user", [result]),
    ]
    append_messages(
        db, conversation, [NewMessage(role, blocks) for role, blocks in history], org=ORG
    )
    stored = load_messages(db, conversation, org=ORG)
    reloaded = [(m.role, m.blocks) for m in stored]
    assert api_messages(reloaded) == api_messages(history)
    assert [m.seq for m in stored] == [0, 1, 2]


def test_transcript_lists_questions_answers_calls_and_artifacts(db: Database) -> None:
    conversation = create_conversation(db, org=ORG, user_id=None, title="t", model=None)
    artifact_id = uuid.uuid4()
    messages = [
        NewMessage("user", [{"type": "text", "text": "Chart pipeline"}]),
        NewMessage("assistant", [
            {"type": "tool_use", "id": "t1", "name": "run_sql_query", "input": {"sql": "bad"}},
            {"type": "tool_use", "id": "t2", "name": "create_artifact",
             "input": {"kind": "chart", "sql": "SELECT 1"}}]),
        NewMessage("user", [
            {"type": "tool_result", "tool_use_id": "t1", "content": '{"error":"refused: DELETE"}',
             "is_error": True},
            {"type": "tool_result", "tool_use_id": "t2",
             "content": f'{{"artifact_id":"{artifact_id}","kind":"chart","title":"Pipeline"}}'}]),
        NewMessage("assistant", [{"type": "text", "text": "Here it is."}]),
    ]  # fmt: skip
    append_messages(db, conversation, messages, org=ORG)
    items = load_transcript(db, conversation, org=ORG)
    assert [i.kind for i in items] == ["user", "tool_call", "tool_call", "artifact", "assistant"]
    assert items[1].ok is False and items[1].summary == "refused: DELETE" and items[1].sql == "bad"
    assert items[2].ok is True and items[2].summary == "chart created"
    assert items[3].artifact_id == artifact_id and items[3].title == "Pipeline"
    assert items[4].text == "Here it is."
