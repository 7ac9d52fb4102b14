"""The answering path with the real SDK against the scripted Messages API: a routed question is
answered from its verified query first (the model writes around those numbers, in the same
turn, without querying again); a free-form one goes to the model's SQL; without a key the
verified answer alone, or the closest verified questions, through every front end."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import duckdb_copy

sys.path.insert(0, str(Path(__file__).parent / "agent"))
from copilot_fixtures import NOW, ORG, load_crm, of_type, settings_for

from revtops_kernel import api
from revtops_kernel.agent import conversations
from revtops_kernel.agent.events import (
    AgentEvent,
    Done,
    Error,
    Suggestions,
    TextDelta,
    ToolResult,
    VerifiedAnswer,
)
from revtops_kernel.agent.verified import run_verified
from revtops_kernel.answering import Answerer
from revtops_kernel.answering.record import collect
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_sandbox.anthropic import RecordedRequest, ScriptedMessagesServer, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROUTED = "what's our pipeline by stage?"
FREE_FORM = "why did we lose the biggest deal last month?"


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedMessagesServer]:
    with ScriptedMessagesServer() as api_server:
        yield api_server


@pytest.fixture
def scripted(server: ScriptedMessagesServer) -> Iterator[ScriptedMessagesServer]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def store(db: Database) -> Database:
    load_crm(db)
    return db


def ask(answerer: Answerer, question: str, **options: Any) -> list[AgentEvent]:
    return list(answerer.ask(question, **options))


def pipeline_total(db: Database) -> Decimal:
    frame = run_verified(db, "pipeline_by_stage", {}, org=ORG, today=NOW.date()).frame
    return Decimal(sum(Decimal(str(v)) for v in frame["amount"]))


def test_a_routed_question_is_answered_from_the_verified_query_and_narrated_by_the_model(
    store: Database, scripted: ScriptedMessagesServer
) -> None:
    def narrate(request: RecordedRequest) -> Turn:
        payload = json.loads(request.tool_results[0]["content"])
        amount = payload["columns"].index("amount")
        total = sum(Decimal(str(row[amount])) for row in payload["rows"])
        return Turn.reply(f"Open pipeline is ${total:,.0f} (from the verified query).")

    scripted.script(narrate)
    answerer = Answerer(store, settings_for(scripted), clock=lambda: NOW)
    events = ask(answerer, ROUTED)

    first = events[0]
    assert isinstance(first, VerifiedAnswer) and first.narrated
    assert first.name == "pipeline_by_stage" and "FROM deals" in first.sql
    assert first.chart is not None and first.chart["data"][0]["type"] == "bar"
    total = pipeline_total(store)
    shown = sum(Decimal(str(r[first.table.columns.index("amount")])) for r in first.table.rows)
    assert shown == total

    # One call: the model got the verified result as a completed tool call and did not query.
    assert len(scripted.requests) == 1
    messages = scripted.requests[0].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    call = messages[1]["content"][0]
    assert call["type"] == "tool_use" and call["name"] == "run_verified_query"
    assert call["input"]["name"] == "pipeline_by_stage"
    result = json.loads(messages[2]["content"][0]["content"])
    assert result["verified"] is True and result["verified_query"] == "pipeline_by_stage"
    assert not of_type(events, ToolResult)  # no tool ran during the model's turn

    text = "".join(e.text for e in of_type(events, TextDelta))
    assert f"${total:,.0f}" in text  # the narrative's number is the verified query's
    done = of_type(events, Done)[0]
    assert done.stop_reason == "end_turn" and not of_type(events, Error)

    record = collect(ROUTED, iter(events))
    assert record.verified_queries == ["pipeline_by_stage"] and record.text == text
    assert "verified: Open pipeline by stage" in record._repr_html_()
    stored = conversations.load_messages(store, done.conversation_id, org=ORG)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]


def test_a_free_form_question_goes_to_the_model_and_its_sql(
    store: Database, scripted: ScriptedMessagesServer
) -> None:
    sql = "SELECT name, amount FROM deals WHERE is_closed AND NOT is_won ORDER BY amount DESC"
    scripted.script(
        Turn.tool("run_sql_query", {"sql": sql}),
        Turn.reply("Deal 11 was the biggest loss."),
    )
    answerer = Answerer(store, settings_for(scripted), clock=lambda: NOW)
    events = ask(answerer, FREE_FORM)
    assert not of_type(events, VerifiedAnswer)
    results = of_type(events, ToolResult)
    assert [r.name for r in results] == ["run_sql_query"] and results[0].ok
    assert results[0].sql is not None and "deals" in results[0].sql
    assert results[0].table is not None and results[0].table.total_rows == 3
    assert len(scripted.requests) == 2
    assert scripted.requests[0].messages[-1]["content"][-1]["text"] == FREE_FORM


def test_without_a_key_the_verified_answer_alone_is_stored_and_a_key_later_continues_it(
    store: Database, scripted: ScriptedMessagesServer
) -> None:
    no_key = load_settings(REVTOPS_ORG=ORG)
    events = ask(Answerer(store, no_key, clock=lambda: NOW), ROUTED)
    assert [type(e) for e in events] == [VerifiedAnswer, Done]
    answer, done = events[0], events[1]
    assert isinstance(answer, VerifiedAnswer) and not answer.narrated
    assert isinstance(done, Done) and done.conversation_id is not None
    assert len(scripted.requests) == 0

    scripted.script(lambda request: Turn.reply(f"{len(request.messages)} messages seen."))
    keyed = Answerer(store, settings_for(scripted), clock=lambda: NOW)
    follow = ask(keyed, "Which stage is the biggest?", conversation_id=done.conversation_id)
    assert not of_type(follow, Error)
    messages = scripted.requests[0].messages
    assert messages[1]["content"][0]["name"] == "run_verified_query"
    assert messages[2]["content"][0]["type"] == "tool_result"
    assert messages[2]["content"][-1]["text"] == "Which stage is the biggest?"


def test_without_a_key_an_unrouted_question_gets_the_closest_verified_questions(
    store: Database,
) -> None:
    events = ask(Answerer(store, load_settings(REVTOPS_ORG=ORG), clock=lambda: NOW), FREE_FORM)
    assert [type(e) for e in events] == [Suggestions, Done]
    suggestions = events[0]
    assert isinstance(suggestions, Suggestions) and len(suggestions.questions) == 3
    assert "ANTHROPIC_API_KEY" in suggestions.message and suggestions.reason
    done = events[1]
    assert isinstance(done, Done) and done.conversation_id is None  # nothing stored


@pytest.fixture
def notebook_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_template: Path
) -> Iterator[Database]:
    """A store the notebook API and the magics open from the environment (no key)."""
    url = duckdb_copy(duckdb_template, tmp_path / "notebook.duckdb")
    db = Database(url, lock_timeout=10)
    upgrade(db)
    load_crm(db)
    monkeypatch.setenv("REVTOPS_DATABASE_URL", url)
    monkeypatch.setenv("REVTOPS_ORG", ORG)
    api._settings.cache_clear()
    api.database.cache_clear()
    yield db
    api.database(api._settings()).dispose()
    api._settings.cache_clear()
    api.database.cache_clear()
    db.dispose()


def test_without_a_key_the_notebook_ask_answers_verified_questions(
    notebook_store: Database,
) -> None:
    record = api.ask(ROUTED)
    assert record.verified_queries == ["pipeline_by_stage"] and record.text == ""
    assert record.error is None and record.conversation_id is not None
    assert record.figures and "✓ verified" in record._repr_html_()
    unrouted = api.ask(FREE_FORM)
    assert unrouted.suggestions is not None and len(unrouted.suggestions.questions) == 3
    assert "ANTHROPIC_API_KEY" in unrouted._repr_html_()


def test_without_a_key_the_ask_magic_and_the_chat_backend_answer_verified_questions(
    notebook_store: Database,
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from revtops_kernel.ui.copilot_backend import CopilotBackend

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "revtops_kernel")
        shell.run_cell_magic("ask", "-o answer", ROUTED)
        answer = shell.user_ns["answer"]
        assert answer.verified and answer.error is None
        assert [q.tool for q in answer.queries] == ["pipeline_by_stage"]
    finally:
        shell.run_line_magic("unload_ext", "revtops_kernel")
        InteractiveShell.clear_instance()

    backend = CopilotBackend.create(org=ORG)
    events = list(
        backend.ask(ROUTED, conversation_id=None, timezone="UTC", cancel=threading.Event())
    )
    assert isinstance(events[0], VerifiedAnswer) and events[0].name == "pipeline_by_stage"
    assert isinstance(events[-1], Done) and events[-1].conversation_id is not None
    turns = backend.load_transcript(events[-1].conversation_id)
    assert turns[0].question == ROUTED
    replayed = [e for e in turns[0].events if isinstance(e, ToolResult)]
    assert [e.name for e in replayed] == ["run_verified_query"]
