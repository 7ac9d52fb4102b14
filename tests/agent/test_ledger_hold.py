"""The copilot's ledger rows on DuckDB are written when the question ends, not between a model
call and the tool calls it asked for: a write there closed the warm read-only handle, and each
round's first query reopened the file (``store.duckdb_reader``)."""

from __future__ import annotations

from typing import Any

import pytest
from copilot_fixtures import load_crm, make_copilot
from sqlalchemy import select

from revtops_kernel.agent.events import Done, ToolResult
from revtops_kernel.store import Database, duckdb_reader
from revtops_kernel.store.schema import LlmUsage
from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COUNT = Turn.tool("run_sql_query", {"sql": "SELECT count(*) AS n FROM deals"})


def ledger_statuses(db: Database) -> list[str]:
    with db.connect() as connection:
        return sorted(connection.execute(select(LlmUsage.status)).scalars())


@pytest.mark.parametrize("db", ["duckdb"], indirect=True)
def test_two_tool_rounds_open_the_file_once_and_every_call_still_has_its_row(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    load_crm(db)
    copilot = make_copilot(db, scripted)
    scripted.script(COUNT, COUNT, Turn.reply("There are 12 deals."))
    rows_seen: list[int] = []
    opens = duckdb_reader.opens
    for event in copilot.ask("How many deals?"):
        if isinstance(event, ToolResult):
            rows_seen.append(len(copilot.ledger._held))
    done: Any = event
    assert isinstance(done, Done) and done.stop_reason == "end_turn"
    assert duckdb_reader.opens - opens == 1  # was one per round: the settle's write closed it
    assert rows_seen == [1, 2]  # held while the question ran...
    assert ledger_statuses(db) == ["done", "done", "done"]  # ...and all written when it ended
    assert copilot.ledger._held == []


@pytest.mark.parametrize("db", ["duckdb"], indirect=True)
def test_a_question_closed_mid_answer_still_writes_its_calls(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    load_crm(db)
    copilot = make_copilot(db, scripted)
    scripted.script(COUNT, Turn.reply("There are 12 deals."))
    events = copilot.ask("How many deals?")
    for event in events:
        if isinstance(event, ToolResult):
            break
    assert ledger_statuses(db) == []  # held
    events.close()  # the front end went away
    assert ledger_statuses(db) == ["done"]


@pytest.mark.parametrize("db", ["duckdb"], indirect=True)
def test_a_capped_organization_is_still_settled_at_once(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    load_crm(db)
    copilot = make_copilot(db, scripted, REVTOPS_DAILY_COST_CAP_USD="1000")
    scripted.script(COUNT, Turn.reply("There are 12 deals."))
    statuses: list[list[str]] = []
    for event in copilot.ask("How many deals?"):
        if isinstance(event, ToolResult):
            statuses.append(ledger_statuses(db))
    # The next admission's check must see what the call cost, not its reservation.
    assert statuses == [["done"]]
    assert ledger_statuses(db) == ["done", "done"]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.postgres
def test_postgresql_writes_each_row_at_once(db: Database, scripted: ScriptedMessagesServer) -> None:
    load_crm(db)
    copilot = make_copilot(db, scripted)
    scripted.script(COUNT, Turn.reply("There are 12 deals."))
    statuses: list[list[str]] = []
    for event in copilot.ask("How many deals?"):
        if isinstance(event, ToolResult):
            statuses.append(ledger_statuses(db))
    assert statuses == [["done"]]
