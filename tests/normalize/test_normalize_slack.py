"""Slack messages -> activities and participants, from the payload shapes of provider-apis.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from revtops_kernel.ids import record_id
from revtops_kernel.normalize.base import NormalizeContext, normalize_page
from revtops_kernel.normalize.slack import normalize_message, parse_ts

CTX = NormalizeContext("northwind", "slack")


def envelope(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"C024BE91L:{message.get('ts')}",
        "channel": {"id": "C024BE91L", "name": "acme-deal"},
        "message": message,
        "author": {
            "id": "U012AB3CDE",
            "email": "Ann@Northwind.example",
            "name": "Ann Lee",
            "internal": True,
        },
        "mentions": [],
        **extra,
    }


PARENT = {
    "type": "message",
    "user": "U012AB3CDE",
    "text": "Q3 deal update, <@U061F7AUR> can you check?",
    "ts": "1512085950.000216",
    "thread_ts": "1512085950.000216",
    "reply_count": 2,
    "reply_users": ["U061F7AUR"],
    "latest_reply": "1512086000.000300",
}


def test_a_thread_parent_becomes_a_slack_message_with_channel_thread_and_author() -> None:
    mention = {"id": "U061F7AUR", "email": "bo@acme.example", "name": "Bo", "internal": False}
    rows = normalize_message(envelope(PARENT, mentions=[mention]), CTX)
    (activity,) = rows["activities"]
    assert activity["id"] == record_id(
        "northwind", "slack", "activities", "C024BE91L:1512085950.000216"
    )
    assert activity["activity_type"] == "slack_message"
    assert activity["channel"] == "acme-deal"
    assert activity["thread_id"] == "1512085950.000216"
    assert activity["body"] == PARENT["text"]
    # the ts, exact to the microsecond (a float would round it)
    assert activity["occurred_at"] == datetime(2017, 11, 30, 23, 52, 30, 216, tzinfo=UTC)
    assert activity["updated_at"] == activity["occurred_at"]
    assert activity["deleted_at"] is None
    assert activity["raw"] == PARENT
    author, mentioned = rows["activity_participants"]
    assert (author["role"], author["email"], author["display_name"], author["is_internal"]) == (
        "author", "ann@northwind.example", "Ann Lee", True,
    )  # fmt: skip
    assert author["source_id"] == "C024BE91L:1512085950.000216:author:U012AB3CDE"
    assert author["activity_id"] == activity["id"]
    assert (mentioned["role"], mentioned["email"], mentioned["is_internal"]) == (
        "mentioned", "bo@acme.example", False,
    )  # fmt: skip
    assert all(
        p["contact_id"] is None and p["owner_id"] is None for p in rows["activity_participants"]
    )


def test_a_reply_shares_the_thread_and_an_edit_moves_updated_at() -> None:
    reply = {
        "type": "message",
        "user": "U012AB3CDE",
        "text": "done",
        "ts": "1512086000.000300",
        "thread_ts": "1512085950.000216",
        "parent_user_id": "U012AB3CDE",
        "edited": {"user": "U012AB3CDE", "ts": "1512086100.000000"},
    }
    (activity,) = normalize_message(envelope(reply), CTX)["activities"]
    assert activity["thread_id"] == "1512085950.000216"
    assert activity["updated_at"] == parse_ts("1512086100.000000", "ts")
    assert activity["created_at"] == parse_ts("1512086000.000300", "ts")


def test_housekeeping_gives_no_rows_and_a_tombstone_is_deleted() -> None:
    join = {"type": "message", "subtype": "channel_join", "user": "U1", "ts": "1512085951.000001"}
    assert normalize_message(envelope(join), CTX) == {}
    tombstone = {**PARENT, "subtype": "tombstone", "text": "This message was deleted."}
    (activity,) = normalize_message(envelope(tombstone), CTX)["activities"]
    assert activity["deleted_at"] == activity["updated_at"] and activity["status"] == "deleted"


def test_a_bot_message_without_a_directory_entry_still_lands() -> None:
    bot = {"type": "message", "subtype": "bot_message", "bot_id": "B01", "text": "Deal won!",
           "ts": "1512085960.000001"}  # fmt: skip
    rows = normalize_message(envelope(bot, author=None), CTX)
    (participant,) = rows["activity_participants"]
    assert participant["source_id"].endswith(":author:B01") and participant["email"] is None


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"channel": {"id": "C1"}, "message": {"text": "no ts"}}, "ts is not a Slack timestamp"),
        ({"channel": {"id": "C1"}, "message": {"ts": "yesterday"}}, "ts is not a Slack timestamp"),
        ({"channel": {}, "message": {"ts": "1.000001"}}, "missing channel.id"),
        ({"channel": {"id": "C1"}, "message": "hello"}, "message is not an object"),
        (
            {"channel": {"id": "C1"}, "message": {"ts": "1.1", "user": "U1", "thread_ts": 5}},
            "thread_ts",
        ),
        (
            {
                "channel": {"id": "C1"},
                "message": {"ts": "1.1", "user": "U1", "edited": {"ts": "x"}},
            },
            "edited.ts",
        ),
        ({"channel": {"id": "C1"}, "message": {"ts": "1.1", "text": "who?"}}, "has no author"),
    ],
)
def test_malformed_messages_are_quarantined_with_the_reason(
    record: dict[str, Any], reason: str
) -> None:
    page = normalize_page("messages", [{"id": "C1:bad", **record}], normalize_message, CTX)
    assert page.rows == {}
    (bad,) = page.quarantined
    assert reason in bad.reason and bad.source_id == "C1:bad"


def test_parse_ts_is_exact() -> None:
    assert parse_ts("1512085950", "ts") == datetime(2017, 11, 30, 23, 52, 30, tzinfo=UTC)
    assert parse_ts("1512085950.5", "ts").microsecond == 500_000
