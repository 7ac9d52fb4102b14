"""The scripted Messages API speaks the wire format the real SDK expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from revtops_sandbox.anthropic import (
    Fault,
    PromptCache,
    ScriptedMessagesServer,
    Turn,
    estimate_tokens,
    validate_request,
)

MODEL = "claude-opus-4-5"
TOOL = {"name": "run_sql_query", "description": "Run SQL.",
        "input_schema": {"type": "object", "properties": {"sql": {"type": "string"}}}}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedMessagesServer]:
    with ScriptedMessagesServer() as api:
        yield api


@pytest.fixture
def api(server: ScriptedMessagesServer) -> Iterator[ScriptedMessagesServer]:
    server.reset()
    yield server


def client(api: ScriptedMessagesServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=api.api_key, base_url=api.base_url, max_retries=0)


def raw_post(api: ScriptedMessagesServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    sent = {"x-api-key": api.api_key, "anthropic-version": "2023-06-01", **headers}
    return httpx.post(f"{api.base_url}/v1/messages", json=body, headers=sent, timeout=10)


def ask(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}], **extra}  # fmt: skip


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_stream_events_in_the_api_order_and_the_sdk_assembles_them(
    api: ScriptedMessagesServer,
) -> None:
    api.script(Turn.tool("run_sql_query", {"sql": "SELECT 'a long enough query' AS x"}, text="Hi"))
    with httpx.stream(
        "POST",
        f"{api.base_url}/v1/messages",
        json=ask(stream=True, tools=[TOOL]),
        headers={"x-api-key": api.api_key, "anthropic-version": "2023-06-01"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")
        lines = [line for line in response.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    datas = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert [d["type"] for d in datas] == names  # the event line equals the data's type
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    json_pieces = [d["delta"]["partial_json"] for d in datas
                   if d["type"] == "content_block_delta" and d["index"] == 1]  # fmt: skip
    assert len(json_pieces) >= 3 and json_pieces[0] == ""
    assert json.loads("".join(json_pieces)) == {"sql": "SELECT 'a long enough query' AS x"}
    delta = datas[-2]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0

    api.script(Turn.tool("run_sql_query", {"sql": "SELECT 1"}, text="Hi"))
    message = client(api).messages.create(**ask(tools=[TOOL]), stream=False)
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"sql": "SELECT 1"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"


def test_auth_and_version_headers_are_checked_like_the_api(api: ScriptedMessagesServer) -> None:
    response = raw_post(api, ask(), **{"x-api-key": "wrong"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["type"] == "error" and response.headers["request-id"]
    response = httpx.post(
        f"{api.base_url}/v1/messages", json=ask(), headers={"x-api-key": api.api_key}, timeout=10
    )
    assert (
        response.status_code == 400 and "anthropic-version" in response.json()["error"]["message"]
    )
    assert api.requests == []  # refused before being recorded


def test_faults_carry_status_type_and_retry_after(api: ScriptedMessagesServer) -> None:
    api.script(Fault.rate_limited(retry_after=7), Fault.overloaded())
    first, second = raw_post(api, ask()), raw_post(api, ask())
    assert first.status_code == 429 and first.headers["retry-after"] == "7"
    assert first.json()["error"]["type"] == "rate_limit_error"
    assert second.status_code == 529 and second.json()["error"]["type"] == "overloaded_error"
    third = raw_post(api, ask())
    assert third.status_code == 500 and "no turn left" in third.json()["error"]["message"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_in_stream_error_event_raises_in_the_sdk(api: ScriptedMessagesServer) -> None:
    api.script(Turn.reply("some text here", stream_error="overloaded_error", error_after=3))
    stream = client(api).messages.create(**ask(), stream=True)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in stream:
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start"]  # ping is skipped by the SDK
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_requests_are_recorded_and_a_step_can_read_them(api: ScriptedMessagesServer) -> None:
    api.script(lambda request: Turn.reply(f"{len(request.messages)} message(s)"))
    response = raw_post(api, ask(system=[{"type": "text", "text": "Be brief."}]))
    assert response.json()["content"][0]["text"] == "1 message(s)"
    (recorded,) = api.requests
    assert recorded.body["system"][0]["text"] == "Be brief."
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert recorded.answered_with == "turn"


def test_tool_use_without_its_result_is_refused_like_the_api() -> None:
    history = [
        {"role": "user", "content": "count"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "run_sql_query", "input": {}}]},
        {"role": "user", "content": [{"type": "text", "text": "well?"}]},
    ]  # fmt: skip
    fault = validate_request(ask(messages=history, tools=[TOOL]))
    assert fault is not None and fault.status == 400 and "tool_result" in fault.message
    history[2]["content"] = [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "1"}]
    assert validate_request(ask(messages=history, tools=[TOOL])) is None
    marked = {"type": "ephemeral"}
    too_many = ask(system=[{"type": "text", "text": "x", "cache_control": marked}] * 5)
    assert "maximum of 4" in validate_request(too_many).message  # type: ignore[union-attr]


def test_the_cache_reads_prefixes_stored_at_breakpoints() -> None:
    cache = PromptCache()
    big = "schema " * 3000  # ~6,000 estimated tokens: over Opus 4.5's 4,096 minimum
    system = [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]
    first = cache.apply(ask(system=system))
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens == estimate_tokens(big)
    second = cache.apply(ask(system=system, messages=[{"role": "user", "content": "other"}]))
    assert second.cache_read_input_tokens == estimate_tokens(big)
    assert second.cache_creation_input_tokens == 0
    small = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    assert cache.apply(ask(system=small)).cache_creation_input_tokens == 0  # under the minimum
    changed = [{**system[0], "text": big + "!"}]
    assert cache.apply(ask(system=changed)).cache_read_input_tokens == 0  # a changed prefix misses


def test_the_cache_finds_an_earlier_breakpoint_within_20_blocks() -> None:
    cache = PromptCache()
    big = "x" * 20_000
    turns: list[dict[str, Any]] = [{"role": "user", "content": [
        {"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]}]  # fmt: skip
    cache.apply(ask(messages=turns))
    turns[0]["content"][0].pop("cache_control")
    turns += [
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": [{"type": "text", "text": "b",
                                      "cache_control": {"type": "ephemeral"}}]},
    ]  # fmt: skip
    outcome = cache.apply(ask(messages=turns))
    assert outcome.cache_read_input_tokens >= estimate_tokens(big)
    assert outcome.input_tokens == 0 and outcome.cache_creation_input_tokens > 0
