"""Slack connector: Web API errors, rate limits and the thread look-back, on mocked HTTP; then
the real thing against the sandbox on both stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from helpers import sandbox_settings
from pydantic import SecretStr
from sqlalchemy import text

from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import RetryPolicy
from revtops_kernel.connectors.slack import SlackClient, SlackConnector, slack_budgets
from revtops_kernel.errors import ConnectorError, ProviderAuthError
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer

ORG = "northwind"
Handler = Callable[[httpx.Request], httpx.Response]


def connector(handler: Handler, sleeps: list[float] | None = None, **kw: Any) -> SlackConnector:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = SlackClient(
        "slack",
        "https://slack.test/api",
        StaticToken("slack", SecretStr("xoxb-secret")),
        http,
        budgets=slack_budgets(10_000),
        retry=RetryPolicy(max_attempts=4, base_delay=0.01),
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
    )
    return SlackConnector(client, **kw)


def ok(**body: Any) -> httpx.Response:
    return httpx.Response(200, json={"ok": True, **body})


def test_ok_false_on_http_200_is_an_error_naming_slacks_code() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": False, "error": "missing_scope", "needed": "x:read"})

    with pytest.raises(
        ConnectorError, match=r"users\.list -> HTTP 200: Slack error missing_scope"
    ) as e:
        connector(handle).directory()
    assert "xoxb-secret" not in str(e.value)

    def auth(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": False, "error": "invalid_auth"})

    with pytest.raises(ProviderAuthError, match="invalid_auth"):
        connector(auth).channels()


def test_429_waits_retry_after() -> None:
    calls: list[str] = []
    sleeps: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            return httpx.Response(
                429, headers={"Retry-After": "3"}, json={"ok": False, "error": "ratelimited"}
            )
        return ok(channels=[{"id": "C1", "name": "general", "is_member": True}])

    assert [c["id"] for c in connector(handle, sleeps).channels()] == ["C1"]
    assert sleeps == [3.0] and len(calls) == 2


class FakeWorkspace:
    """One channel whose history and threads a test edits between reads."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []  # newest first, as Slack returns it
        self.replies: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[1]
        params = dict(request.url.params)
        self.requests.append((method, params))
        if method == "users.list":
            return ok(members=[{"id": "U1", "profile": {"email": "ann@northwind.example"}}],
                      response_metadata={"next_cursor": ""})  # fmt: skip
        if method == "users.info":
            return ok(user={"id": params["user"], "profile": {"email": "bo@acme.example"}})
        if method == "conversations.list":
            return ok(channels=[{"id": "C1", "name": "acme", "is_member": True},
                                {"id": "C2", "name": "private", "is_member": False}])  # fmt: skip
        if method == "conversations.history":
            oldest = float(params.get("oldest", "0"))
            return ok(messages=[m for m in self.history if float(m["ts"]) >= oldest],
                      has_more=False)  # fmt: skip
        if method == "conversations.replies":
            parent = next(m for m in self.history if m["ts"] == params["ts"])
            return ok(messages=[parent, *self.replies[params["ts"]]], has_more=False)
        raise AssertionError(method)

    def post(self, ts: str, user: str = "U1", thread: str | None = None) -> None:
        message = {"type": "message", "user": user, "text": f"at {ts}", "ts": ts}
        if thread is None:
            self.history.insert(0, message)
            return
        parent = next(m for m in self.history if m["ts"] == thread)
        parent.update(thread_ts=thread, reply_count=parent.get("reply_count", 0) + 1,
                      latest_reply=ts)  # fmt: skip
        self.replies.setdefault(thread, []).append({**message, "thread_ts": thread})


def read_all(conn: SlackConnector, checkpoint: str | None) -> tuple[list[str], str | None]:
    ts: list[str] = []
    for page in conn.read("messages", checkpoint):
        ts.extend(r["message"]["ts"] for r in page.records)
        checkpoint = page.checkpoint
    return ts, checkpoint


DAY = 86_400


def test_a_late_reply_in_an_old_thread_within_the_window_is_read() -> None:
    ws = FakeWorkspace()
    base = 1_700_000_000
    ws.post(f"{base}.000100")  # an old thread, 10 days before the newest message
    ws.post(f"{base + 1}.000000", user="U9", thread=f"{base}.000100")
    ws.post(f"{base + 10 * DAY}.000000")
    first, checkpoint = read_all(connector(ws, thread_lookback_days=14), None)
    assert sorted(first) == sorted(
        [f"{base}.000100", f"{base + 1}.000000", f"{base + 10 * DAY}.000000"]
    )
    assert json.loads(checkpoint or "")["channels"] == {
        "C1": {"latest": f"{base + 10 * DAY}.000000"}
    }

    # The author of the reply (U9) is not a member: users.info answered for them.
    assert ("users.info", {"user": "U9"}) in ws.requests
    ws.post(f"{base + 11 * DAY}.000000", thread=f"{base}.000100")  # a late reply
    ws.post(f"{base + 11 * DAY}.000005")
    ws.requests.clear()
    second, checkpoint = read_all(connector(ws, thread_lookback_days=14), checkpoint)
    assert f"{base + 11 * DAY}.000000" in second and f"{base + 11 * DAY}.000005" in second
    history = [p for m, p in ws.requests if m == "conversations.history"]
    assert history[0]["oldest"] == f"{base - 4 * DAY}.000000"  # 14 days before the cursor
    assert json.loads(checkpoint or "")["channels"]["C1"]["latest"] == f"{base + 11 * DAY}.000005"
    # Of what the look-back re-read, only the changed are handed on: the grown thread's parent.
    assert sorted(second) == sorted(
        [f"{base}.000100", f"{base + 11 * DAY}.000000", f"{base + 11 * DAY}.000005"]
    )

    # A thread older than the window is out of reach (the window's documented trade).
    ws.post(f"{base + 40 * DAY}.000000")
    _, checkpoint = read_all(connector(ws, thread_lookback_days=14), checkpoint)
    ws.post(f"{base + 41 * DAY}.000000", thread=f"{base}.000100")
    third, _ = read_all(connector(ws, thread_lookback_days=14), checkpoint)
    assert f"{base + 41 * DAY}.000000" not in third


# --- against the sandbox -----------------------------------------------------------------------


def settings_for(sandbox: SandboxServer, db: Database, **extra: str) -> Settings:
    return sandbox_settings(sandbox, db, "slack", org=ORG, **extra)


def stored(db: Database, sql: str) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text(sql)).all())


def test_a_slack_sync_stores_every_readable_message_then_picks_up_a_late_reply(
    db: Database, sandbox: SandboxServer
) -> None:
    settings = settings_for(sandbox, db)
    first = run_sync(db, settings, "slack")
    assert first.ok, first.error
    ws = sandbox.company.slack
    readable = [c for c in ws.channels if c.is_member]
    expected = {f"{c.id}:{m.ts}" for c in readable for m in c.messages} | {
        f"{c.id}:{r.ts}" for c in readable for m in c.messages for r in m.replies
    }
    got = {r.source_id for r in stored(db, "SELECT source_id FROM activities")}
    assert got == expected
    assert first.counts.quarantined == 0
    authors = stored(
        db,
        "SELECT p.email, p.is_internal FROM activity_participants p WHERE p.role = 'author' "
        "AND p.email IS NOT NULL",
    )
    members = {u.email for u in ws.users if u.email and not u.external}
    assert {a.email for a in authors if a.is_internal} <= members

    # An immediate resync re-reads the look-back window and writes nothing.
    before = stored(db, "SELECT * FROM activities ORDER BY id")
    again = run_sync(db, settings, "slack")
    assert again.ok and again.counts.upserted == 0, again
    assert stored(db, "SELECT * FROM activities ORDER BY id") == before

    # A reply to a thread older than the cursor (but inside the look-back window).
    channel = max(readable, key=lambda c: len(c.messages))
    parent = next(m for m in reversed(channel.messages) if m.replies)
    posted = httpx.post(
        f"{sandbox.slack_base_url}/chat.postMessage",
        headers={"Authorization": f"Bearer {sandbox.token}"},
        json={"channel": channel.id, "text": "late news", "thread_ts": parent.ts},
    ).json()
    assert posted["ok"]
    second = run_sync(db, settings, "slack")
    assert second.ok, second.error
    late = stored(
        db,
        f"SELECT thread_id, body FROM activities WHERE source_id = '{channel.id}:{posted['ts']}'",
    )
    assert late == [(parent.ts, "late news")]
    assert second.counts.api_calls < first.counts.api_calls


def test_a_429_storm_is_survived(db: Database, sandbox: SandboxServer) -> None:
    sandbox.faults.slack.rate_limits = True
    sandbox.faults.slack.window_s = 1.0
    sandbox.faults.slack.tier_limits.update(tier2=5, tier3=25, tier4=25)
    result = run_sync(db, settings_for(sandbox, db), "slack")
    assert result.ok, result.error
    assert result.counts.rate_limited > 0
    truth = sum(
        1 + len(m.replies)
        for c in sandbox.company.slack.channels
        if c.is_member
        for m in c.messages
    )
    assert stored(db, "SELECT count(*) FROM activities")[0][0] == truth
