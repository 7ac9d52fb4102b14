"""The panel over the real backend: the agent loop against the scripted Messages API, the
conversation store, reload, rename, delete, and the PDF / notebook exports (in process)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.ui.chat_panel import ChatPanel
from revtops_sandbox.anthropic import ScriptedMessagesServer, scripted_settings_overrides
from tests.agent.copilot_fixtures import ORG, load_crm
from tests.ui.notebook_env import PIPELINE_QUESTION, PIPELINE_SQL, pipeline_turns
from tests.ui.wire import Wire

pytestmark = pytest.mark.slow


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[tuple[ChatPanel, ScriptedMessagesServer]]:
    db = Database(f"duckdb:///{tmp_path / 'store.duckdb'}")
    upgrade(db)
    load_crm(db)
    with ScriptedMessagesServer() as api:
        settings = load_settings(**scripted_settings_overrides(api), REVTOPS_ORG=ORG)
        yield ChatPanel(db=db, settings=settings, author="ana@acme.test", suggestions=[]), api
    db.dispose()


def saved(wire: Wire) -> bytes:
    """The bytes of the last download the widget sent (one message: the browser saves it)."""
    files = [b for c, b in wire.sent if isinstance(c, dict) and c.get("t") == "file"]
    assert files, wire.of("status")
    return files[-1][0]


def test_ask_reload_export_rename_delete(panel: tuple[ChatPanel, ScriptedMessagesServer]) -> None:
    chat, api = panel
    wire = Wire(chat)
    api.script(*pipeline_turns())
    chat.ask(PIPELINE_QUESTION)
    answer = chat.wait(120)
    assert answer is not None and answer.error is None and answer.stop_reason == "end_turn"
    # the router's verified query first, then the model's query and its chart
    assert [(q.ok, q.verified) for q in answer.queries] == [
        (True, True),
        (True, False),
        (True, False),
    ]
    thread = answer.conversation_id
    assert wire.of("list")[-1]["current"] == str(thread)

    wire.browser(t="new")
    wire.browser(t="open", id=str(thread))  # reopen it from the store
    (turn,) = wire.last_state()["turns"]
    assert turn["q"] == PIPELINE_QUESTION
    shown = json.dumps(turn)
    assert PIPELINE_SQL in shown and "**$78,000**" in shown
    (artifact,) = [i for i in turn["items"] if i["k"] == "artifact"]
    assert artifact["figs"][0]["data"][0]["type"] == "bar"  # redrawn from its stored spec

    wire.browser(t="export", kind="pdf")
    assert saved(wire).startswith(b"%PDF")
    wire.browser(t="export", kind="ipynb")
    notebook = nbformat.reads(saved(wire).decode(), as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells)
    wire.browser(t="artifact_pdf", id=artifact["id"])
    assert saved(wire).startswith(b"%PDF")

    wire.browser(t="rename", id=str(thread), title="Pipeline review")
    assert wire.of("list")[-1]["conversations"][0]["title"] == "Pipeline review"
    wire.browser(t="delete", id=str(thread))
    assert wire.of("list")[-1]["conversations"] == [] and chat.conversation_id is None
    assert wire.last_state()["turns"] == []


def test_missing_api_key_says_what_to_set(tmp_path: Path) -> None:
    db = Database(f"duckdb:///{tmp_path / 'store.duckdb'}")
    upgrade(db)
    chat = ChatPanel(db=db, settings=load_settings(REVTOPS_ORG=ORG), suggestions=[])
    wire = Wire(chat)
    chat.ask("Write a poem about our notes")  # no verified query answers this
    answer = chat.wait(60)
    assert answer is not None
    said = [m["item"].get("msg", "") for m in wire.of("item")]
    assert any("ANTHROPIC_API_KEY" in line for line in said), said  # an error or suggestions
    assert "ANTHROPIC_API_KEY" in (answer.error or " ".join(answer.notices))
    db.dispose()


def test_stop_cancels_the_real_loop(panel: tuple[ChatPanel, ScriptedMessagesServer]) -> None:
    from revtops_sandbox.anthropic import Turn

    chat, api = panel
    wire = Wire(chat)
    api.script(Turn.reply("word " * 2000, event_delay=0.01))
    chat.ask("Tell me everything.")
    deadline = time.monotonic() + 60
    while "word" not in "".join(wire.deltas()) and time.monotonic() < deadline:
        time.sleep(0.05)
    wire.browser(t="stop")
    answer = chat.wait(60)
    assert answer is not None and answer.stop_reason == "cancelled"
    assert 0 < answer.text.count("word") < 2000
    assert not chat.running and wire.of("done")[-1]["stop"] == "cancelled"
