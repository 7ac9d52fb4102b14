"""Slack Web API: the messages of every channel the app can read, incrementally by ``ts``.

One stream, ``messages``. Each sync first reads the workspace directory (``users.list``, with
profile emails) and the channel list (``conversations.list``): messages are handed to the
normalizer with their channel's name and their author's and mentioned users' emails (see
``normalize.slack``). Authors from other workspaces (Slack Connect) are not in the directory:
``users.info`` answers for them, once per user per sync.

Per channel, the checkpoint keeps ``latest``: the newest ``ts`` stored (top-level or reply).
A later read asks ``conversations.history`` for messages from ``latest - look-back window`` on
(``oldest``), not from ``latest``: replies are not in the history, and a new reply to an old
thread only shows as a changed ``latest_reply`` on its parent. So every parent in that window
whose ``latest_reply`` is newer than ``latest`` (or any parent, on a first read) has its thread
re-read with ``conversations.replies``. Of what was re-read, only messages newer than
``latest``, edited since, or whose thread grew are handed on (the rest are stored as they are).
The window is measured back from the channel's own
``latest`` rather than the wall clock, so it means "threads started within N days of the last
message we saw", whatever the clocks. A reply to a thread whose parent is older than the window
is not seen (that is the window's trade: a longer one costs more calls every sync); a full
refresh reads everything again. Edits in the window are picked up; deletions and reactions
on unchanged messages are not visible this way (Slack's Events API would be the way).

A channel's checkpoint moves only when the channel is done (history and its threads): a crash
re-reads that channel from where it was, never skipping anything.

Errors: Slack answers application errors with HTTP 200 and ``{"ok": false, "error": ...}``:
they become ``ConnectorError``s naming the method and Slack's error code. 429 carries
``Retry-After`` (the client waits it). Each method belongs to a rate tier (per method, per
workspace): the client keeps under the tier's budget.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from revtops_kernel.connectors.base import Page, dump_checkpoint, load_checkpoint
from revtops_kernel.connectors.http import (
    CallStats,
    ProviderClient,
    RateBudget,
    TokenSource,
    paginate,
)
from revtops_kernel.errors import ConnectorError, ProviderAuthError
from revtops_kernel.normalize.identity import mentioned_user_ids

log = logging.getLogger(__name__)

Record = dict[str, Any]

STREAMS: tuple[str, ...] = ("messages",)
# Tier limits per method per workspace (requests a minute): Tier 2 "20+", Tier 3 "50+".
TIER_2_PER_MINUTE = 20
TIER_3_PER_MINUTE = 50
METHOD_TIERS = {
    "conversations.list": "tier2",
    "users.list": "tier2",
    "users.info": "tier4",
    "conversations.history": "tier3",
    "conversations.replies": "tier3",
}
PAGE_LIMIT = 200  # history/replies accept up to 999; Slack recommends no more than 200
DEFAULT_THREAD_LOOKBACK_DAYS = 14
# A channel the app cannot read (left, removed, or never joined): skipped, not fatal.
UNREADABLE_CHANNEL_ERRORS = ("not_in_channel", "channel_not_found")
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


def slack_budgets(requests_per_minute: int = TIER_3_PER_MINUTE) -> dict[str, RateBudget]:
    """Budgets per tier, scaled from the Tier 3 figure (a workspace may grant more)."""
    tier3 = max(1, requests_per_minute)
    tier2 = max(1, tier3 * TIER_2_PER_MINUTE // TIER_3_PER_MINUTE)
    return {
        "tier2": RateBudget(tier2, 60.0),
        "tier3": RateBudget(tier3, 60.0),
        "tier4": RateBudget(tier3 * 2, 60.0),
    }


class SlackClient(ProviderClient):
    """A Web API call is a method name; ``ok: false`` on HTTP 200 is an error."""

    def call(self, method: str, params: dict[str, Any]) -> Record:
        try:
            return self._call(method, params)
        except ProviderAuthError:
            # Slack says invalid_auth with HTTP 200, which the base client's 401 rule never
            # sees: ask the token source for a fresh token once (Nango rotates them).
            if not self.tokens.refresh():
                raise
            return self._call(method, params)

    def _call(self, method: str, params: dict[str, Any]) -> Record:
        tier = METHOD_TIERS.get(method, "tier3")
        response = self.get(f"/{method}", params=params, budgets=(tier,))
        try:
            data = response.json()
        except ValueError:
            raise ConnectorError(
                self.provider, method, response.status_code, "the answer is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise ConnectorError(self.provider, method, response.status_code, "not a JSON object")
        if data.get("ok") is not True:
            error = str(data.get("error") or "unknown_error")
            detail = f"Slack error {error}"
            if data.get("needed"):
                detail += f" (needed scope {data['needed']})"
            kind = ProviderAuthError if error in AUTH_ERRORS else ConnectorError
            raise kind(self.provider, method, response.status_code, detail)
        return data

    def pages(self, method: str, params: dict[str, Any]) -> Iterator[Record]:
        """Every page of a cursor-paginated method (``response_metadata.next_cursor``)."""

        def fetch(cursor: str | None) -> tuple[Record, str | None]:
            query = dict(params)
            if cursor:
                query["cursor"] = cursor
            data = self.call(method, query)
            return data, (data.get("response_metadata") or {}).get("next_cursor") or None

        yield from paginate(fetch, provider=self.provider, endpoint=method)


@dataclass
class _Person:
    id: str
    email: str | None
    name: str | None
    internal: bool

    def as_dict(self) -> Record:
        return {"id": self.id, "email": self.email, "name": self.name, "internal": self.internal}


@dataclass
class _Directory:
    """The workspace's members, and the outsiders looked up one by one during this sync."""

    people: dict[str, _Person] = field(default_factory=dict)


def _person(member: Record, *, internal: bool) -> _Person:
    profile = member.get("profile") or {}
    name = (
        profile.get("real_name")
        or member.get("real_name")
        or profile.get("display_name")
        or member.get("name")
    )
    # Guests (restricted accounts) are members of the workspace but not of the organization.
    guest = bool(member.get("is_restricted") or member.get("is_ultra_restricted"))
    return _Person(
        str(member["id"]), profile.get("email") or None, name or None, internal and not guest
    )


def _changed_since(message: Record, previous: str | None) -> bool:
    """Is this message new or changed since the channel's cursor? Re-read messages that are
    not (the look-back window re-reads many) are not handed on: their rows are as stored."""
    if previous is None:
        return True
    cursor = ts_decimal(previous)
    stamps = [
        message.get("ts"),
        (message.get("edited") or {}).get("ts"),
        message.get("latest_reply"),
    ]
    return any(ts_decimal(str(s)) > cursor for s in stamps if s)


def ts_decimal(ts: str) -> Decimal:
    return Decimal(ts)


def ts_minus(ts: str, seconds: int) -> str:
    """``ts`` moved back by ``seconds``, as a Slack ``ts`` string (never before 0)."""
    moved = max(Decimal(0), Decimal(ts) - seconds)
    return f"{moved:.6f}"


class SlackConnector:
    provider = "slack"

    def __init__(self, client: SlackClient, *, thread_lookback_days: int = 14) -> None:
        self.client = client
        self.lookback_seconds = max(0, thread_lookback_days) * 86_400
        self._directory: _Directory | None = None

    @classmethod
    def connect(
        cls,
        base_url: str,
        tokens: TokenSource,
        http: httpx.Client,
        *,
        thread_lookback_days: int = DEFAULT_THREAD_LOOKBACK_DAYS,
        requests_per_minute: int = TIER_3_PER_MINUTE,
    ) -> SlackConnector:
        client = SlackClient(
            "slack", base_url, tokens, http, budgets=slack_budgets(requests_per_minute)
        )
        return cls(client, thread_lookback_days=thread_lookback_days)

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def streams(self) -> tuple[str, ...]:
        return STREAMS

    def read(self, stream: str, checkpoint: str | None) -> Iterator[Page]:
        if stream != "messages":
            raise ValueError(f"unknown Slack stream {stream!r}; streams: {', '.join(STREAMS)}")
        state = load_checkpoint(checkpoint) or {}
        channels_state: dict[str, Any] = dict(state.get("channels") or {})
        for channel in self.channels():
            channel_id = str(channel["id"])
            previous = (channels_state.get(channel_id) or {}).get("latest")
            try:
                records, newest = self._channel_messages(channel, previous)
            except ConnectorError as exc:
                if not any(code in str(exc) for code in UNREADABLE_CHANNEL_ERRORS):
                    raise
                log.info("slack: skipping channel %s: %s", channel_id, exc)
                continue
            if newest is not None:
                channels_state[channel_id] = {"latest": newest}
            yield Page(records, dump_checkpoint({"channels": channels_state}))

    # --- the directory and the channels --------------------------------------------------------
    def directory(self) -> _Directory:
        if self._directory is None:
            directory = _Directory()
            for page in self.client.pages("users.list", {"limit": PAGE_LIMIT}):
                for member in page.get("members") or []:
                    if member.get("id"):
                        person = _person(member, internal=True)
                        directory.people[person.id] = person
            self._directory = directory
        return self._directory

    def person(self, user_id: str) -> _Person:
        directory = self.directory()
        known = directory.people.get(user_id)
        if known is None:
            try:
                user = self.client.call("users.info", {"user": user_id}).get("user") or {}
                known = _person({"id": user_id, **user}, internal=False)
            except ConnectorError as exc:
                if isinstance(exc, ProviderAuthError):
                    raise
                log.info("slack: user %s could not be looked up: %s", user_id, exc)
                known = _Person(user_id, None, None, internal=False)
            directory.people[user_id] = known
        return known

    def channels(self) -> list[Record]:
        params = {
            "types": "public_channel,private_channel",
            "exclude_archived": "false",
            "limit": PAGE_LIMIT,
        }
        found: list[Record] = []
        for page in self.client.pages("conversations.list", params):
            # A channel the app's bot is not in answers history with not_in_channel.
            found.extend(
                c
                for c in page.get("channels") or []
                if c.get("id") and c.get("is_member") is not False
            )
        return found

    # --- one channel ---------------------------------------------------------------------------
    def _channel_messages(
        self, channel: Record, previous: str | None
    ) -> tuple[list[Record], str | None]:
        """The channel's new messages, and the replies of its threads active since ``previous``."""
        channel_id = str(channel["id"])
        params: dict[str, Any] = {"channel": channel_id, "limit": PAGE_LIMIT}
        if previous is not None:
            params["oldest"] = ts_minus(previous, self.lookback_seconds)
            params["inclusive"] = "true"
        messages: list[Record] = []
        for page in self.client.pages("conversations.history", params):
            messages.extend(m for m in page.get("messages") or [] if m.get("ts"))
        replies: list[Record] = []
        for parent in messages:
            if not parent.get("reply_count") or parent.get("thread_ts") != parent.get("ts"):
                continue
            latest_reply = parent.get("latest_reply")
            if (
                previous is not None
                and latest_reply
                and ts_decimal(latest_reply) <= ts_decimal(previous)
            ):
                continue  # nothing new in this thread
            replies.extend(self._replies(channel_id, str(parent["ts"])))
        everything = messages + replies
        stamps = [str(m["ts"]) for m in everything]
        if previous is not None:
            stamps.append(previous)
        newest = max(stamps, key=ts_decimal) if stamps else None
        changed = [m for m in everything if _changed_since(m, previous)]
        return [self._envelope(channel, m) for m in changed], newest

    def _replies(self, channel_id: str, thread_ts: str) -> list[Record]:
        params = {"channel": channel_id, "ts": thread_ts, "limit": PAGE_LIMIT}
        found: list[Record] = []
        for page in self.client.pages("conversations.replies", params):
            # The parent comes first on every page: it is already in the history.
            found.extend(
                m for m in page.get("messages") or [] if m.get("ts") and m.get("ts") != thread_ts
            )
        return found

    def _envelope(self, channel: Record, message: Record) -> Record:
        author_id = message.get("user")
        author = self.person(str(author_id)).as_dict() if author_id else None
        mentions = [self.person(u).as_dict() for u in mentioned_user_ids(message.get("text"))]
        return {
            "id": f"{channel['id']}:{message['ts']}",
            "channel": {"id": channel["id"], "name": channel.get("name")},
            "message": message,
            "author": author,
            "mentions": mentions,
        }
