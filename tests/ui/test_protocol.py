"""The chat's wire protocol: every agent event becomes its message; the kept state is what a
view builds from the messages; a snapshot restores it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

from revtops_kernel.agent.events import (
    AgentEvent,
    ArtifactCreated,
    Done,
    Error,
    Notice,
    SuggestedQuestion,
    Suggestions,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    Usage,
    VerifiedAnswer,
)
from revtops_kernel.ui.protocol import ChatState, EventTranslator, Message, turn_message
from tests.ui.fakes import PIPELINE_FIGURE, PIPELINE_TABLE

ARTIFACT = uuid.UUID("00000000-0000-0000-0000-00000000a1a1")
THREAD = uuid.UUID("00000000-0000-0000-0000-0000000000c1")


def translate(events: list[AgentEvent]) -> list[Message]:
    sent: list[Message] = []
    translator = EventTranslator(sent.append, max_rate=1e12)  # every delta flushes at once
    for event in events:
        translator.handle(event)
    translator.done(next((e.stop_reason for e in events if isinstance(e, Done)), None), THREAD)
    return sent


def test_every_event_type_has_its_message() -> None:
    verified = VerifiedAnswer(
        name="pipeline_by_stage",
        title="Pipeline by stage",
        params={"period": "2026-Q4"},
        sql="SELECT 1",
        table=PIPELINE_TABLE,
        chart=PIPELINE_FIGURE,
        note="open deals only",
    )
    suggestions = Suggestions(
        questions=(SuggestedQuestion("What is our pipeline?", "pipeline_by_stage", "Pipeline"),),
        message="Set ANTHROPIC_API_KEY to ask anything else.",
        reason="no verified query mentions churn",
    )
    sent = translate(
        [
            verified,
            TextDelta("Hel"),
            TextDelta("lo"),
            ToolCallStarted("t1", "run_sql_query", {"sql": "SELECT 2"}),
            ToolCallStarted("t2", "list_tables", {"schema": "main"}),
            ToolResult(
                "t1",
                "run_sql_query",
                ok=True,
                summary="2 rows",
                sql="SELECT 2 /*org*/",
                table=PIPELINE_TABLE,
                verified=True,
            ),
            ArtifactCreated(ARTIFACT, "chart", "Deals", figures=[PIPELINE_FIGURE], markdown="*m*"),
            Usage("claude", 10, 5, cost_usd=Decimal("0.01")),
            Notice("Rate limited, retrying in 4 s."),
            suggestions,
            Error("Stopped.", kind="cancelled"),
            Done(THREAD, "cancelled"),
        ]
    )
    table = {"columns": ["stage", "amount"], "rows": PIPELINE_TABLE.rows, "total_rows": 2,
             "truncated": False}  # fmt: skip
    assert sent == [
        {"t": "item", "item": {"k": "verified", "name": "pipeline_by_stage",
         "title": "Pipeline by stage", "params": {"period": "2026-Q4"}, "sql": "SELECT 1",
         "table": table, "chart": PIPELINE_FIGURE, "note": "open deals only"}},
        "Hel",
        "lo",
        {"t": "item", "item": {"k": "tool", "id": "t1", "name": "run_sql_query",
         "sql": "SELECT 2", "input": None}},
        {"t": "item", "item": {"k": "tool", "id": "t2", "name": "list_tables", "sql": None,
         "input": {"schema": "main"}}},
        {"t": "tool_end", "id": "t1", "name": "run_sql_query", "ok": True, "summary": "2 rows",
         "sql": "SELECT 2", "ran": "SELECT 2 /*org*/", "verified": True, "table": table},
        {"t": "item", "item": {"k": "artifact", "id": str(ARTIFACT), "kind": "chart",
         "title": "Deals", "verified": False, "figs": [PIPELINE_FIGURE], "table": None,
         "md": "*m*"}},
        {"t": "item", "item": {"k": "notice", "msg": "Rate limited, retrying in 4 s."}},
        {"t": "item", "item": {"k": "suggest", "msg": suggestions.message,
         "reason": suggestions.reason,
         "questions": [{"q": "What is our pipeline?", "title": "Pipeline"}]}},
        {"t": "item", "item": {"k": "error", "msg": "Stopped.", "kind": "cancelled"}},
        {"t": "done", "stop": "cancelled", "verified": True, "current": str(THREAD)},
    ]  # fmt: skip
    json.dumps(sent)  # every message is plain JSON


def test_the_state_is_what_the_messages_build_and_a_snapshot_restores_it() -> None:
    state = ChatState(suggestions=["q?"])
    state.apply({"t": "list", "conversations": [{"id": str(THREAD), "title": "T"}],
                 "current": None})  # fmt: skip
    from datetime import UTC, datetime

    state.apply(turn_message("How much?", datetime(2026, 12, 6, 9, 30, tzinfo=UTC)))
    assert state.running
    for message in translate(
        [
            TextDelta("One "),
            TextDelta("two."),
            ToolCallStarted("t1", "run_sql_query", {"sql": "SELECT 2"}),
            ToolResult("t1", "run_sql_query", ok=False, summary="refused"),
            TextDelta("After."),
            Done(THREAD, "end_turn"),
        ]
    ):
        state.apply(message)
    (turn,) = state.turns
    assert turn["q"] == "How much?" and turn["at"] == "2026-12-06T09:30:00Z"
    assert turn["stop"] == "end_turn" and not turn["verified"] and not state.running
    assert [i["k"] for i in turn["items"]] == ["text", "tool", "text"]
    assert turn["items"][0]["md"] == "One two." and turn["items"][2]["md"] == "After."
    assert turn["items"][1]["ok"] is False and turn["items"][1]["summary"] == "refused"
    assert state.current == str(THREAD)

    restored = ChatState()
    restored.apply(state.snapshot())
    assert restored == state
    snapshot = state.snapshot()
    snapshot["turns"][0]["items"].clear()  # a snapshot is a copy: sending it changes nothing
    assert state.turns[0]["items"]


def test_a_text_delta_before_any_turn_is_ignored() -> None:
    state = ChatState()
    state.apply("stray")
    assert state.turns == []


def test_a_result_without_its_start_still_shows() -> None:
    state = ChatState()
    state.apply({"t": "turn", "q": "q", "at": None})
    for message in translate([ToolResult("x", "run_sql_query", ok=True, summary="1 row")]):
        state.apply(message)
    assert state.turns[0]["items"][0]["k"] == "tool"
    assert state.turns[0]["items"][0]["summary"] == "1 row"
