"""A question longer than REVTOPS_MAX_QUESTION_CHARS is refused before it is stored or sent.

Every front end (chat panel, ``%%ask``, ``revtops ask``, the web app) asks through
``Copilot.ask``, so the cap is tested there, against the scripted Messages API, on both backends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from copilot_fixtures import make_copilot, of_type
from sqlalchemy import func, select

from revtops_kernel.agent.events import Done, Error, TextDelta
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn


def _stored(db: Database) -> tuple[int, int]:
    conversations, messages = metadata.tables["conversations"], metadata.tables["messages"]
    with db.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(conversations)).scalar_one(),
            conn.execute(select(func.count()).select_from(messages)).scalar_one(),
        )


def test_a_megabyte_question_is_refused_unstored_and_unsent(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    scripted.script(Turn.reply("never sent"))
    question = "How big is the pipeline? " + "x" * (1_000_000 - 25)
    events = list(make_copilot(db, scripted).ask(question))
    assert events == [
        Error(
            "Your question is 1,000,000 characters; the limit is 8,000 "
            "(REVTOPS_MAX_QUESTION_CHARS). Shorten it, or ask about a smaller part at a time.",
            kind="question_too_long",
        ),
        Done(None, "question_too_long"),
    ]
    assert scripted.requests == [] and scripted.pending == 1
    assert _stored(db) == (0, 0)


def test_the_cap_is_a_setting_and_a_question_at_the_limit_is_answered(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    copilot = make_copilot(db, scripted, REVTOPS_MAX_QUESTION_CHARS="120")
    scripted.script(Turn.reply("Answered."))
    answered = list(copilot.ask("q" * 120))
    assert "".join(e.text for e in of_type(answered, TextDelta)) == "Answered."
    assert len(scripted.requests) == 1
    refused = list(copilot.ask("q" * 121))
    (error,) = of_type(refused, Error)
    assert error.message.startswith("Your question is 121 characters; the limit is 120 ")
    assert len(scripted.requests) == 1  # the second question never reached the API
    assert _stored(db) == (1, 2)  # the first question and its answer only


def test_revtops_ask_says_why_and_sends_nothing(
    scripted: ScriptedMessagesServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from revtops_kernel.cli import main

    monkeypatch.setenv("REVTOPS_DATABASE_URL", f"duckdb:///{tmp_path / 'store.duckdb'}")
    monkeypatch.setenv("REVTOPS_ORG", "acme")
    monkeypatch.setenv("ANTHROPIC_API_KEY", scripted.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", scripted.base_url)
    assert main(["ask", "y" * 9_000]) == 1
    _, err = capsys.readouterr()
    assert "Your question is 9,000 characters; the limit is 8,000" in err
    assert scripted.requests == []
