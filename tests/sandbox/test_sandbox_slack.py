"""The Slack Web API emulation, over real HTTP: listings, cursors, threads, errors, posting."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from revtops_sandbox.server import SandboxServer
from revtops_sandbox.slack_data import parse_ts


def slack_client(server: SandboxServer, token: str | None = None) -> httpx.Client:
    token = server.token_for("slack") if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.slack_base_url, headers=headers, timeout=30)


@pytest.fixture
def sl(sb: SandboxServer) -> Iterator[httpx.Client]:
    with slack_client(sb) as client:
        yield client


def call(client: httpx.Client, method: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/{method}", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def walk_history(client: httpx.Client, channel: str, limit: int, **params: Any) -> list[dict]:
    out: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = call(
            client, "conversations.history", channel=channel, limit=limit, cursor=cursor, **params
        )
        assert body["ok"], body
        out += body["messages"]
        cursor = body["response_metadata"]["next_cursor"]
        assert body["has_more"] == bool(cursor)
        if not cursor:
            return out


def test_users_list_has_reps_with_emails_and_no_externals(
    sb: SandboxServer, sl: httpx.Client
) -> None:
    first = call(sl, "users.list", limit=2)
    assert first["ok"] and len(first["members"]) == 2
    members = list(first["members"])
    cursor = first["response_metadata"]["next_cursor"]
    while cursor:
        page = call(sl, "users.list", limit=2, cursor=cursor)
        members += page["members"]
        cursor = page["response_metadata"]["next_cursor"]
    co = sb.company
    emails = {m["profile"].get("email") for m in members}
    assert {o.email for o in co.owners} <= emails
    assert all(e is None or e.endswith("@" + co.seller_domain) for e in emails)
    assert any(m["is_bot"] for m in members) and any(m["id"] == "USLACKBOT" for m in members)
    deleted = {m["profile"]["email"] for m in members if m["deleted"]}
    assert deleted == {o.email for o in co.owners if not o.active}
    # external Slack Connect people are not members, but users.info knows them
    external = next(u for u in co.slack.users if u.external)
    assert external.id not in {m["id"] for m in members}
    info = call(sl, "users.info", user=external.id)
    assert info["user"]["profile"]["email"] == co.contacts[external.contact].email
    assert call(sl, "users.info", user="U000NOPE")["error"] == "user_not_found"


def test_conversations_list_types_cursor_and_archived(sb: SandboxServer, sl: httpx.Client) -> None:
    ws = sb.company.slack
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = call(
            sl, "conversations.list", types="public_channel,private_channel", limit=3, cursor=cursor
        )
        assert body["ok"] and len(body["channels"]) <= 3
        seen += body["channels"]
        cursor = body["response_metadata"]["next_cursor"]
        if not cursor:
            break
    expected = {c.id for c in ws.channels if c.is_member or not c.is_private}
    assert [c["id"] for c in seen] == [c.id for c in ws.channels if c.id in expected]
    names = {c["name"] for c in seen}
    assert any(n.startswith("acct-") for n in names) and any(n.startswith("deal-") for n in names)
    public = call(sl, "conversations.list", limit=500)["channels"]
    assert public and not any(c["is_private"] for c in public)
    live = call(
        sl,
        "conversations.list",
        types="public_channel,private_channel",
        exclude_archived="true",
        limit=500,
    )["channels"]
    assert not any(c["is_archived"] for c in live)
    assert len(live) == sum(1 for c in ws.channels if c.id in expected and not c.is_archived)
    assert call(sl, "conversations.list", cursor="garbage!")["error"] == "invalid_cursor"
    assert call(sl, "conversations.list", types="dm")["error"] == "invalid_types"


def test_history_pages_newest_first_with_bounds(sb: SandboxServer, sl: httpx.Client) -> None:
    ws = sb.company.slack
    ch = max(ws.channels, key=lambda c: len(c.messages) if c.is_member else -1)
    msgs = walk_history(sl, ch.id, limit=7)
    ts = [m["ts"] for m in msgs]
    assert ts == [m.ts for m in reversed(ch.messages)]
    assert all(isinstance(t, str) for t in ts)
    as_us = [parse_ts(t) or 0 for t in ts]
    assert as_us == sorted(as_us, reverse=True) and len(set(as_us)) == len(as_us)
    # oldest/latest are exclusive unless inclusive=true
    lo, hi = ch.messages[3], ch.messages[10]
    inside = walk_history(sl, ch.id, limit=4, oldest=lo.ts, latest=hi.ts)
    assert [m["ts"] for m in inside] == [m.ts for m in reversed(ch.messages[4:10])]
    both = walk_history(sl, ch.id, limit=100, oldest=lo.ts, latest=hi.ts, inclusive="true")
    assert [m["ts"] for m in both] == [m.ts for m in reversed(ch.messages[3:11])]
    # thread parents carry reply metadata; replies are not in history
    parent = next(m for m in ch.messages if m.replies)
    shown = next(m for m in msgs if m["ts"] == parent.ts)
    assert shown["thread_ts"] == parent.ts and shown["reply_count"] == len(parent.replies)
    assert shown["latest_reply"] == parent.replies[-1].ts
    reply_ts = {r.ts for m in ch.messages for r in m.replies}
    assert not reply_ts & set(ts)
    assert call(sl, "conversations.history", channel=ch.id, cursor="bm9wZQ==")["error"] == (
        "invalid_cursor"
    )


def test_replies_parent_first_then_oldest_to_newest(sb: SandboxServer, sl: httpx.Client) -> None:
    ws = sb.company.slack
    ch, parent = next(
        (c, m) for c in ws.channels if c.is_member for m in c.messages if len(m.replies) >= 3
    )
    got: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = call(
            sl, "conversations.replies", channel=ch.id, ts=parent.ts, limit=2, cursor=cursor
        )
        assert body["ok"], body
        got += body["messages"]
        cursor = body["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert got[0]["ts"] == parent.ts and got[0]["reply_count"] == len(parent.replies)
    replies = [m for m in got if m["ts"] != parent.ts]
    assert [m["ts"] for m in replies] == [r.ts for r in parent.replies]
    assert all(m["thread_ts"] == parent.ts and "parent_user_id" in m for m in replies)
    # asking with a reply's ts gives the same thread
    again = call(sl, "conversations.replies", channel=ch.id, ts=parent.replies[0].ts)
    assert again["messages"][0]["ts"] == parent.ts
    missing = call(sl, "conversations.replies", channel=ch.id, ts="1000000000.000001")
    assert missing == {"ok": False, "error": "thread_not_found"}


def test_content_mentions_accounts_and_external_authors(
    sb: SandboxServer, sl: httpx.Client
) -> None:
    co = sb.company
    ws = co.slack
    shared = next(c for c in ws.channels if c.is_ext_shared)
    assert shared.name.startswith("acct-")
    msgs = walk_history(sl, shared.id, limit=200)
    externals = {u.id: u for u in ws.users if u.external}
    replies = [r for m in shared.messages for r in m.replies]
    authors = {str(m.get("user")) for m in msgs} | {ws.users[r.user].id for r in replies}
    assert authors & set(externals), "a shared channel has external authors"
    for uid in authors & set(externals):
        u = externals[uid]
        assert co.contacts[u.contact].account == shared.account
        assert u.email.endswith("@" + co.accounts[shared.account].domain)
    deal_rooms = [c for c in ws.channels if c.kind == "deal"]
    assert deal_rooms and all(c.deal >= 0 for c in deal_rooms)
    account_names = {co.accounts[c.account].name for c in deal_rooms}
    texts = [m.text for c in deal_rooms for m in c.messages]
    assert any(name in t for t in texts for name in account_names)


def test_errors_are_ok_false_on_http_200(sb: SandboxServer, sl: httpx.Client) -> None:
    assert call(sl, "conversations.history", channel="C0NOPE")["error"] == "channel_not_found"
    # only posting takes channel names; reading needs the id
    assert call(sl, "conversations.history", channel="general")["error"] == "channel_not_found"
    outside = next(c for c in sb.company.slack.channels if not c.is_member)
    assert call(sl, "conversations.history", channel=outside.id)["error"] == "not_in_channel"
    with slack_client(sb, token="") as anon:
        assert call(anon, "conversations.list") == {"ok": False, "error": "not_authed"}
    with slack_client(sb, token="xoxb-wrong") as wrong:
        assert call(wrong, "conversations.list") == {"ok": False, "error": "invalid_auth"}
    assert sl.get("/no.such.method").json()["error"] == "unknown_method"


def test_post_message_and_file_upload_are_recorded(fresh: Any) -> None:
    sb = fresh()
    ws = sb.company.slack
    ch = next(c for c in ws.channels if c.name == "sales")
    with slack_client(sb) as sl:
        r = sl.post(
            "/chat.postMessage",
            json={"channel": ch.id, "text": "Weekly digest", "blocks": [{"type": "section"}]},
        )
        body = r.json()
        assert (
            body["ok"] and body["channel"] == ch.id and body["message"]["text"] == "Weekly digest"
        )
        newest = call(sl, "conversations.history", channel=ch.id, limit=1)["messages"][0]
        assert newest["ts"] == body["ts"] and newest["bot_id"]
        # a reply in the thread it started
        r2 = sl.post(
            "/chat.postMessage",
            data={"channel": "#sales", "text": "details", "thread_ts": body["ts"]},
        )
        assert r2.json()["ok"] and r2.json()["message"]["thread_ts"] == body["ts"]
        assert sl.post("/chat.postMessage", json={"channel": ch.id}).json()["error"] == "no_text"
        archived = next((c for c in ws.channels if c.is_archived), None)
        if archived is not None:
            bad = sl.post("/chat.postMessage", json={"channel": archived.id, "text": "x"})
            assert bad.json()["error"] == "is_archived"
        # the current upload flow
        pdf = b"%PDF-1.4 digest"
        up = call(sl, "files.getUploadURLExternal", filename="digest.pdf", length=len(pdf))
        assert up["ok"] and up["file_id"].startswith("F")
        put = httpx.post(up["upload_url"], content=pdf)
        assert put.status_code == 200 and put.text == f"OK - {len(pdf)}"
        done = sl.post(
            "/files.completeUploadExternal",
            data={
                "files": json.dumps([{"id": up["file_id"], "title": "Digest"}]),
                "channel_id": ch.id,
                "initial_comment": "This week's digest",
            },
        )
        assert done.json() == {"ok": True, "files": [{"id": up["file_id"], "title": "Digest"}]}
        again = sl.post(
            "/files.completeUploadExternal", data={"files": json.dumps([{"id": up["file_id"]}])}
        )
        assert again.json()["error"] == "file_not_found"
        shared = call(sl, "conversations.history", channel=ch.id, limit=1)["messages"][0]
        assert shared["files"][0]["id"] == up["file_id"]
    posts = sb.slack_posts()
    assert [p.method for p in posts] == [
        "chat.postMessage",
        "chat.postMessage",
        "files.completeUploadExternal",
    ]
    assert posts[0].text == "Weekly digest" and posts[0].blocks == [{"type": "section"}]
    assert posts[1].thread_ts == body["ts"]
    assert posts[2].files[0]["data"] == pdf and posts[2].text == "This week's digest"


def test_tier_rate_limit_429_with_retry_after(fresh: Any) -> None:
    sb = fresh()
    sb.faults.slack.rate_limits = True
    sb.faults.slack.tier_limits["tier2"] = 3
    sb.faults.slack.window_s = 5.0
    with slack_client(sb) as sl:
        answers = [sl.get("/conversations.list") for _ in range(5)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
        limited = answers[-1]
        assert limited.json() == {"ok": False, "error": "ratelimited"}
        assert 1 <= int(limited.headers["retry-after"]) <= 5
        # tiers are per method: history is still allowed
        ch = next(c for c in sb.company.slack.channels if c.is_member)
        assert sl.get("/conversations.history", params={"channel": ch.id}).status_code == 200
    assert sb.stats.rate_limited("slack") == 2
    assert sb.stats.count("slack GET /api/conversations.list") == 5


def test_expired_token_reads_token_expired(fresh: Any) -> None:
    sb = fresh()
    sb.faults.slack.token_ttl_calls = 2
    with slack_client(sb) as sl:
        assert call(sl, "auth.test")["ok"] and call(sl, "auth.test")["ok"]
        assert call(sl, "auth.test") == {"ok": False, "error": "token_expired"}
    new = sb.rotate_token("slack")
    with slack_client(sb, token=new) as sl:
        assert call(sl, "auth.test")["ok"]


def test_cursor_is_slack_like_base64() -> None:
    from revtops_sandbox.slack import decode_cursor, encode_cursor

    c = encode_cursor("next_ts", "1512085950.000216")
    assert base64.b64decode(c).startswith(b"next_ts:")
    assert decode_cursor(c, "next_ts") == "1512085950.000216"
    assert decode_cursor(c, "team") is None and decode_cursor("%%%", "team") is None
