"""Every stop reason the installed SDK declares has one outcome in the loop, and the ones the
other tests do not reach behave as their outcome says."""

from __future__ import annotations

import json
import typing

from anthropic.types import StopReason
from copilot_fixtures import ORG, answer_text, make_copilot, of_type

from revtops_kernel.agent.conversations import load_messages
from revtops_kernel.agent.events import AnswerStop, Done, Error, ErrorKind, Notice
from revtops_kernel.agent.loop import STOP_OUTCOMES, StopOutcome, stop_of
from revtops_kernel.store import Database
from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn


def test_the_mapping_covers_every_stop_reason_the_sdk_declares() -> None:
    declared = set(typing.get_args(StopReason))
    assert declared, "anthropic.types.StopReason declares no values"
    assert {str(stop) for stop in STOP_OUTCOMES} == declared
    # and each is a member of the stop reasons a Done carries
    assert declared <= {stop.value for stop in AnswerStop}


def test_a_reason_the_code_does_not_know_ends_the_turn() -> None:
    assert stop_of(None) is AnswerStop.END_TURN
    assert stop_of("tool_use") is AnswerStop.TOOL_USE
    assert stop_of("a_reason_from_a_newer_api") is AnswerStop.END_TURN
    # the loop's own reasons never come from the API
    assert stop_of("tool_rounds_cap") is AnswerStop.END_TURN
    assert STOP_OUTCOMES[stop_of("a_reason_from_a_newer_api")] is StopOutcome.ANSWERED


def test_enums_keep_the_wire_values() -> None:
    assert json.dumps({"kind": ErrorKind.RATE_LIMITED}) == '{"kind": "rate_limited"}'
    assert f"{AnswerStop.END_TURN}" == "end_turn" and AnswerStop.END_TURN == "end_turn"
    assert [k for k in ErrorKind if k.retryable] == [
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.UNREACHABLE,
        ErrorKind.API,
    ]


def test_stop_sequence_is_an_answer(duck: Database, scripted: ScriptedMessagesServer) -> None:
    scripted.script(Turn.reply("Twelve deals.", stop_reason="stop_sequence"))
    events = list(make_copilot(duck, scripted).ask("How many deals?"))
    assert answer_text(events) == "Twelve deals."
    assert not of_type(events, Error) and not of_type(events, Notice)
    done = events[-1]
    assert isinstance(done, Done) and done.stop_reason is AnswerStop.STOP_SEQUENCE
    stored = load_messages(duck, done.conversation_id, org=ORG)  # type: ignore[arg-type]
    assert [m.role for m in stored] == ["user", "assistant"]


def test_a_full_context_window_keeps_the_text_and_says_so(
    duck: Database, scripted: ScriptedMessagesServer
) -> None:
    scripted.script(Turn.reply("So far:", stop_reason="model_context_window_exceeded"))
    events = list(make_copilot(duck, scripted).ask("Summarize everything"))
    (notice,) = of_type(events, Notice)
    assert "context window" in notice.message and "new conversation" in notice.message
    done = events[-1]
    assert isinstance(done, Done)
    assert done.stop_reason is AnswerStop.MODEL_CONTEXT_WINDOW_EXCEEDED
    stored = load_messages(duck, done.conversation_id, org=ORG)  # type: ignore[arg-type]
    assert stored[-1].blocks == [{"type": "text", "text": "So far:"}]
