"""The panel over the real backend: the agent loop against the scripted Messages API, the
conversation store, reload, rename, delete, and the PDF / notebook exports (in process)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets
import nbformat
import pytest

from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.ui.chat_panel import ChatPanel
from revtops_sandbox.anthropic import ScriptedMessagesServer, scripted_settings_overrides
from tests.agent.copilot_fixtures import ORG, load_crm
from tests.ui.notebook_env import PIPELINE_QUESTION, PIPELINE_SQL, pipeline_turns
from tests.ui.test_chat_panel import buttons, html_values, outputs

pytestmark = pytest.mark.slow


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[tuple[ChatPanel, ScriptedMessagesServer]]:
    db = Database(f"duckdb:///{tmp_path / 'store.duckdb'}")
    upgrade(db)
    load_crm(db)
    with ScriptedMessagesServer() as api:
        settings = load_settings(**scripted_settings_overrides(api), REVTOPS_ORG=ORG)
        yield ChatPanel(db=db, settings=settings, author="ana@acme.test"), api
    db.dispose()


def downloaded(panel: ChatPanel) -> bytes:
    match = re.search(r'href="data:[^;]+;base64,([^"]+)"', panel.download.value)
    assert match, panel.download.value + panel.status.value
    return base64.b64decode(match.group(1))


def test_ask_reload_export_rename_delete(panel: tuple[ChatPanel, ScriptedMessagesServer]) -> None:
    chat, api = panel
    api.script(*pipeline_turns())
    chat.ask(PIPELINE_QUESTION)
    answer = chat.wait(120)
    assert answer is not None and answer.error is None and answer.stop_reason == "end_turn"
    assert [q.ok for q in answer.queries] == [True, True]
    thread = answer.conversation_id
    assert chat.conversation_list.value == str(thread)

    chat.new_conversation()
    chat.conversation_list.value = str(thread)  # reopen it from the store
    shown = "\n".join(html_values(chat.messages))
    assert PIPELINE_QUESTION in shown and PIPELINE_SQL in shown
    assert "<strong>$78,000</strong>" in shown
    (chart,) = outputs(chat.messages)  # the chart is re-rendered from its stored spec
    assert chart.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["type"] == "bar"

    chat.pdf_button.click()
    pdf = downloaded(chat)
    assert pdf.startswith(b"%PDF")
    chat.notebook_button.click()
    notebook = nbformat.reads(downloaded(chat).decode(), as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells)
    (artifact_pdf,) = [b for b in buttons(chat.messages) if "rt-artifact-pdf" in b._dom_classes]
    artifact_pdf.click()
    assert downloaded(chat).startswith(b"%PDF")

    chat.title_input.value = "Pipeline review"
    chat.rename_button.click()
    assert next(label for label, _ in chat.conversation_list.options).endswith("Pipeline review")
    chat.delete_button.click()
    assert chat.conversation_list.options == () and chat.conversation_id is None
    assert isinstance(chat.messages, widgets.VBox) and chat.messages.children == ()


def test_missing_api_key_says_what_to_set(tmp_path: Path) -> None:
    db = Database(f"duckdb:///{tmp_path / 'store.duckdb'}")
    upgrade(db)
    chat = ChatPanel(db=db, settings=load_settings(REVTOPS_ORG=ORG))
    chat.ask("What is our pipeline?")
    answer = chat.wait(60)
    assert answer is not None and answer.error is not None
    assert "ANTHROPIC_API_KEY" in answer.error
    assert any("rt-error" in v and "ANTHROPIC_API_KEY" in v for v in html_values(chat.messages))
    db.dispose()


def test_stop_cancels_the_real_loop(panel: tuple[ChatPanel, ScriptedMessagesServer]) -> None:
    from revtops_sandbox.anthropic import Turn

    chat, api = panel
    api.script(Turn.reply("word " * 2000, event_delay=0.01))
    chat.ask("Tell me everything.")
    deadline = time.monotonic() + 60
    while "word" not in "".join(html_values(chat.messages)) and time.monotonic() < deadline:
        time.sleep(0.05)
    chat.stop_button.click()
    answer = chat.wait(60)
    assert answer is not None and answer.stop_reason == "cancelled"
    assert 0 < answer.text.count("word") < 2000
    assert not chat.running and not chat.send_button.disabled
