"""``revtops ask`` streams the answer to stdout and shows tool calls on stderr."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import duckdb_copy

from revtops_kernel.cli import main
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.upsert import upsert
from revtops_sandbox.anthropic import RecordedRequest, ScriptedMessagesServer, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, duckdb_template: Path
) -> Iterator[ScriptedMessagesServer]:
    url = duckdb_copy(duckdb_template, tmp_path / "store.duckdb")
    db = Database(url)
    upgrade(db)
    t = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        {"organization_id": "acme", "source_system": "hubspot", "source_id": str(i),
         "name": f"Deal {i}", "amount": 100 * i, "updated_at": t}
        for i in range(3)
    ]  # fmt: skip
    with db.begin() as conn:
        upsert(conn, "deals", rows)
    db.dispose()
    with ScriptedMessagesServer() as server:
        monkeypatch.setenv("REVTOPS_DATABASE_URL", url)
        monkeypatch.setenv("REVTOPS_ORG", "acme")
        monkeypatch.setenv("ANTHROPIC_API_KEY", server.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def test_ask_streams_the_answer_and_shows_tool_calls(
    api: ScriptedMessagesServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def answer(request: RecordedRequest) -> Turn:
        return Turn.reply("There are **3 deals** worth $300.")

    api.script(Turn.tool("run_sql_query", {"sql": "SELECT name, amount FROM deals"}), answer)
    assert main(["ask", "How many deals do we have?"]) == 0
    out, err = capsys.readouterr()
    assert out == "There are **3 deals** worth $300.\n"
    assert "→ run_sql_query: SELECT name, amount FROM deals" in err
    assert "✓ 3 rows in" in err
    conversation = re.search(r"--conversation ([0-9a-f-]{36})", err)
    assert conversation is not None

    api.script(Turn.reply("Deal 2 is the largest."))
    assert main(["ask", "Which is largest?", "--conversation", conversation.group(1)]) == 0
    out, _ = capsys.readouterr()
    assert out == "Deal 2 is the largest.\n"
    assert len(api.requests[-1].messages) == 5  # the first exchange came back from the store


def test_ask_without_a_key_says_what_to_set(
    api: ScriptedMessagesServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert main(["ask", "Anything?"]) == 1  # no key: verified questions only; this is none
    _, err = capsys.readouterr()
    assert "Set ANTHROPIC_API_KEY" in err
    assert api.requests == []


def test_a_refused_query_shows_as_failed_and_the_answer_goes_on(
    api: ScriptedMessagesServer, capsys: pytest.CaptureFixture[str]
) -> None:
    api.script(
        Turn.tool("run_sql_query", {"sql": "DROP TABLE deals"}),
        Turn.reply("I can only read data."),
    )
    assert main(["ask", "Please delete all the deals"]) == 0  # not a lookup: the model answers
    out, err = capsys.readouterr()
    assert "✗ " in err and out == "I can only read data.\n"
    assert api.requests[1].tool_results[0]["is_error"] is True


def test_ask_about_an_unknown_org_exits_2_before_calling_the_model(
    api: ScriptedMessagesServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "How many deals?", "--org", "acmee"]) == 2
    _, err = capsys.readouterr()
    assert "unknown organization 'acmee' (did you mean 'acme'?)" in err
    assert api.requests == []


def _conversation_count(url: str) -> int:
    from sqlalchemy import func, select

    from revtops_kernel.store.schema import metadata

    db = Database(url)
    try:
        with db.connect() as conn:
            table = metadata.tables["conversations"]
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    finally:
        db.dispose()


@pytest.mark.parametrize("failure", ["bad key", "unreachable"])
def test_a_failed_first_question_leaves_no_conversation(
    api: ScriptedMessagesServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: str,
) -> None:
    import os
    import socket

    monkeypatch.setenv("REVTOPS_API_RETRIES", "0")
    if failure == "bad key":
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-the-key")
    else:
        with socket.socket() as free:  # a port nothing listens on
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    # A refused key is configuration (2), an unreachable API a failed answer (1).
    assert main(["ask", "How many deals?"]) == (2 if failure == "bad key" else 1)
    _, err = capsys.readouterr()
    assert "revtops ask:" in err and "--conversation" not in err
    assert _conversation_count(os.environ["REVTOPS_DATABASE_URL"]) == 0
    assert main(["conversations", "list"]) == 0
    assert capsys.readouterr().out == "no conversations in organization acme\n"


def test_conversations_and_artifacts_are_listed_with_their_ids(
    api: ScriptedMessagesServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    chart = {"kind": "chart", "title": "Deals by amount", "sql": "SELECT name, amount FROM deals",
             "type": "bar", "x": "name", "y": ["amount"]}  # fmt: skip
    api.script(Turn.tool("create_artifact", chart), Turn.reply("Here it is."))
    assert main(["ask", "Chart the deals"]) == 0
    err = capsys.readouterr().err
    conversation = re.search(r"--conversation ([0-9a-f-]{36})", err)
    artifact = re.search(r"saved as artifact ([0-9a-f-]{36})", err)
    assert conversation is not None and artifact is not None, err
    api.script(Turn.reply("Three."))
    assert main(["ask", "How many deals?"]) == 0
    capsys.readouterr()

    assert main(["conversations", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "(2 conversations in organization acme)"
    assert lines[0].split()[0] != conversation.group(1)  # newest first
    assert lines[1].startswith(conversation.group(1)) and lines[1].endswith("Chart the deals")
    assert main(["conversations", "list", "--limit", "1", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["title"] == "How many deals?" and record["messages"] == 2

    assert main(["artifacts", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(artifact.group(1)) and "chart" in lines[0]
    assert lines[0].endswith("Deals by amount")
    assert main(["artifacts", "list", "--kind", "report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["artifacts", "list", "--org", "acmee"]) == 2
    assert "did you mean 'acme'?" in capsys.readouterr().err


def test_a_routed_question_prints_the_verified_table_then_the_models_narrative(
    api: ScriptedMessagesServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def narrate(request: RecordedRequest) -> Turn:
        assert request.tool_results and "pipeline_by_stage" in request.tool_results[0]["content"]
        return Turn.reply("Open pipeline is $300 across 3 deals.")

    api.script(narrate)
    assert main(["ask", "what's our pipeline by stage?"]) == 0
    out, err = capsys.readouterr()
    table, _, narrative = out.rpartition(")\n")  # the table ends with its "(n rows)" line
    assert re.search(r"\(\d+ rows?$", table) and "amount" in table
    assert narrative == "Open pipeline is $300 across 3 deals.\n"
    assert "verified: pipeline_by_stage (" in err and "FROM deals" in err
    assert len(api.requests) == 1  # the model did not query again
