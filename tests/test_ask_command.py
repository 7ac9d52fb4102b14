"""``revtops ask`` streams the answer to stdout and shows tool calls on stderr."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from revtops_kernel.cli import main
from revtops_kernel.sandbox.anthropic import RecordedRequest, ScriptedMessagesServer, Turn
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.upsert import upsert

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ScriptedMessagesServer]:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
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
    assert main(["ask", "Anything?"]) == 2
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
    assert main(["ask", "Drop the deals"]) == 0
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
