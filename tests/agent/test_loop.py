"""The copilot end to end: the real SDK, the scripted Messages API, the store on both backends.

The scripted conversation: bad SQL -> refusal (is_error) -> corrected SQL -> chart -> answer;
it persists, reloads in a fresh Copilot, and continues with exactly the request an
uninterrupted session sends.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from copilot_fixtures import (
    ORG,
    answer_text,
    load_crm,
    make_copilot,
    of_type,
)
from sqlalchemy import text

from revtops_kernel.agent.conversations import list_conversations, load_transcript
from revtops_kernel.agent.events import (
    ArtifactCreated,
    Done,
    Error,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    Usage,
)
from revtops_kernel.settings import DEFAULT_MODEL
from revtops_kernel.store import Database
from revtops_sandbox.anthropic import (
    RecordedRequest,
    ScriptedMessagesServer,
    Turn,
    min_cacheable_tokens,
)

GOOD_SQL = (
    "SELECT stage_name AS stage, sum(amount) AS amount FROM deals "
    "WHERE NOT is_closed GROUP BY stage_name ORDER BY stage_name"
)
FINAL = "Open pipeline is $33,000 across 2 stages."
CHART = {"kind": "chart", "title": "Open pipeline by stage", "sql": GOOD_SQL, "type": "bar",
         "x": "stage", "y": ["amount"]}  # fmt: skip


def _payload(request: RecordedRequest) -> dict[str, Any]:
    (result,) = request.tool_results
    return dict(json.loads(result["content"]))


def pipeline_script(seen: dict[str, Any]) -> list[Any]:
    def corrected(request: RecordedRequest) -> Turn:
        (result,) = request.tool_results
        seen["refusal"] = result
        return Turn.tool("run_sql_query", {"sql": GOOD_SQL, "purpose": "open pipeline by stage"})

    def chart(request: RecordedRequest) -> Turn:
        seen["rows"] = _payload(request)
        return Turn.tool("create_artifact", CHART, text="Here is the chart.")

    def answer(request: RecordedRequest) -> Turn:
        seen["artifact"] = _payload(request)
        total = sum(row[1] for row in seen["rows"]["rows"])
        return Turn.reply(f"Open pipeline is ${total:,} across 2 stages.")

    return [
        Turn.tool("run_sql_query", {"sql": "DELETE FROM deals"}, text="Let me look."),
        corrected,
        chart,
        answer,
    ]


def strip_cache_control(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = copy.deepcopy(messages)
    for message in cleaned:
        for block in message["content"]:
            block.pop("cache_control", None)
    return cleaned


def test_bad_sql_refusal_fix_chart_answer_persist_reload_continue(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    load_crm(db)
    seen: dict[str, Any] = {}
    scripted.script(*pipeline_script(seen))
    copilot = make_copilot(db, scripted)

    events = list(copilot.ask("What is our open pipeline by stage? Chart it."))

    # The events: two SQL calls (one refused), a chart, the answer, usage per call, done.
    done = events[-1]
    assert isinstance(done, Done) and done.stop_reason == "end_turn" and done.rounds == 3
    assert not of_type(events, Error)
    started = of_type(events, ToolCallStarted)
    assert [s.name for s in started] == ["run_sql_query", "run_sql_query", "create_artifact"]
    results = of_type(events, ToolResult)
    assert [r.ok for r in results] == [False, True, True]
    assert "DELETE" in results[0].summary or "delete" in results[0].summary.lower()
    assert results[1].table is not None and results[1].table.total_rows == 2
    assert results[1].sql is not None and "acme" in results[1].sql  # the guard's rewrite
    (artifact,) = of_type(events, ArtifactCreated)
    assert artifact.kind == "chart" and artifact.title == CHART["title"]
    assert events.index(artifact) > events.index(results[2])
    assert len(of_type(events, Usage)) == 4
    assert answer_text(events).endswith("Open pipeline is $33,000 across 2 stages.")

    # What the model got back: the refusal as an is_error tool_result, rows in a data envelope.
    refusal = seen["refusal"]
    assert refusal["is_error"] is True
    assert "error" in json.loads(refusal["content"])
    rows = seen["rows"]
    assert "not instructions" in rows["note"]
    assert rows["columns"] == ["stage", "amount"]
    assert rows["rows"] == [["Discovery", 15000], ["Proposal", 18000]]  # decimals as numbers
    assert "Globex" not in json.dumps(rows)
    assert seen["artifact"]["artifact_id"] == str(artifact.artifact_id)

    # What the client sent: tools, cache breakpoints, tool results in order.
    requests = scripted.requests
    assert len(requests) == 4
    first = requests[0].body
    assert first["stream"] is True and first["model"] == DEFAULT_MODEL
    assert first["tools"][0]["name"] == "run_sql_query"
    assert {"create_artifact", "describe_table", "run_verified_query"} <= set(
        requests[0].tool_names
    )
    assert [("cache_control" in t) for t in first["tools"]] == [False] * (
        len(first["tools"]) - 1
    ) + [True]
    assert "cache_control" in first["system"][0] and "cache_control" not in first["system"][1]
    assert (
        "DuckDB" in first["system"][0]["text"]
        if db.is_duckdb
        else "PostgreSQL" in (first["system"][0]["text"])
    )
    assert "deals (synced)" in first["system"][0]["text"]
    assert "Europe" not in first["system"][1]["text"] and "UTC" in first["system"][1]["text"]
    assert "hubspot last synced 2026-11-20T12:00:00Z" in first["system"][1]["text"]
    for request in requests:
        marked = [b for m in request.messages for b in m["content"] if "cache_control" in b]
        assert marked == [request.messages[-1]["content"][-1]]
    second = requests[1]
    assert second.messages[1]["content"][-1]["type"] == "tool_use"
    assert second.tool_results[0]["tool_use_id"] == second.messages[1]["content"][-1]["id"]

    # The prompt cache: the stable prefix is long enough, written on call 1, read from call 2.
    usages = of_type(events, Usage)
    assert usages[0].cache_creation_tokens >= min_cacheable_tokens("claude-opus-4-5")
    assert usages[0].cache_read_tokens == 0
    for usage in usages[1:]:
        assert usage.cache_read_tokens >= usages[0].cache_creation_tokens
        share = usage.cache_read_tokens / (
            usage.cache_read_tokens + usage.cache_creation_tokens + usage.input_tokens
        )
        assert share > 0.9
    assert all(u.cost_usd is not None and u.cost_usd > 0 for u in usages)

    # Persisted: the conversation, its messages with usage and cost, the transcript.
    (summary,) = list_conversations(db, org=ORG)
    assert summary.id == done.conversation_id
    assert summary.title == "What is our open pipeline by stage? Chart it."
    assert summary.message_count == 8  # question, 3 x (tool_use + results), answer
    with db.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT role, input_tokens, output_tokens, cost_usd, stop_reason FROM messages "
                "WHERE conversation_id = :c ORDER BY seq"
            ),
            {"c": done.conversation_id},
        ).all()
        artifact_rows = conn.execute(text("SELECT conversation_id FROM artifacts")).all()
    assert [r.role for r in stored] == ["user"] + ["assistant", "user"] * 3 + ["assistant"]
    assert all(r.cost_usd is not None and r.output_tokens for r in stored if r.role == "assistant")
    assert [r.stop_reason for r in stored if r.role == "assistant"] == ["tool_use"] * 3 + [
        "end_turn"
    ]
    assert artifact_rows == [(done.conversation_id,)]
    transcript = load_transcript(db, done.conversation_id, org=ORG)
    assert [i.kind for i in transcript] == [
        "user", "assistant", "tool_call", "tool_call", "assistant", "tool_call", "artifact",
        "assistant",
    ]  # fmt: skip
    calls = [i for i in transcript if i.kind == "tool_call"]
    assert [c.ok for c in calls] == [False, True, True]
    assert calls[1].sql == GOOD_SQL and calls[1].summary == "2 rows"
    assert transcript[6].artifact_id == artifact.artifact_id

    # Reload in a fresh Copilot (new client) and continue: the request is the uninterrupted one.
    scripted.script(Turn.reply("Proposal holds two thirds of it."))
    again = make_copilot(db, scripted)
    follow_up = list(again.ask("Which stage holds most?", conversation_id=done.conversation_id))
    assert isinstance(follow_up[-1], Done) and follow_up[-1].conversation_id == summary.id
    last_q1, q2 = requests[-1].body, scripted.requests[-1].body
    expected = [
        *strip_cache_control(last_q1["messages"]),
        {"role": "assistant", "content": [{"type": "text", "text": FINAL}]},
        {"role": "user", "content": [{"type": "text", "text": "Which stage holds most?"}]},
    ]
    assert strip_cache_control(q2["messages"]) == expected
    assert q2["tools"] == last_q1["tools"] and q2["system"] == last_q1["system"]
    assert of_type(follow_up, Usage)[0].cache_read_tokens > 0
    assert list_conversations(db, org=ORG)[0].message_count == 10


def test_text_streams_in_pieces_and_sql_input_arrives_whole(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    load_crm(db)
    long_sql = GOOD_SQL + " -- " + "x" * 200
    scripted.script(
        Turn.tool("run_sql_query", {"sql": long_sql}),
        Turn.reply("A fairly long answer that the server splits into several text deltas."),
    )
    events = list(make_copilot(db, scripted).ask("pipeline?"))
    assert len(of_type(events, TextDelta)) >= 3
    (started,) = of_type(events, ToolCallStarted)
    assert started.sql == long_sql
