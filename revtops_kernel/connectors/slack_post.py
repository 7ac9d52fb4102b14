"""Posting to Slack: a message (``chat.postMessage``) and a file (Slack's current upload flow).

It rides on the sync's ``SlackClient`` (same base URL, token source, rate budgets, retries,
and the same rule that ``{"ok": false}`` on HTTP 200 is an error naming Slack's code), so a
token from settings or a Nango connection works the same for reading and for posting.

A file goes up in three steps, as Slack asks since ``files.upload`` was retired:
``files.getUploadURLExternal`` (filename, length) hands out an ``upload_url`` and a
``file_id``; the bytes are POSTed to that URL; ``files.completeUploadExternal`` (files,
``channel_id``, ``initial_comment``, ``thread_ts``) shares the file in the channel. The upload
URL is pre-signed: the bearer token is not sent there. Slack hands it out on
``https://files.slack.com`` (another host than the API), so the upload may go to the API's own
origin or to ``UPLOAD_ORIGINS`` and nowhere else, and a redirect from it is never followed.

A channel is given as an id (``C0123ABCD``) or a name (``#deals`` or ``deals``); a name is
looked up with ``conversations.list`` (public and private channels the app can see).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from revtops_kernel.connectors.credentials import NangoConnection, token_source
from revtops_kernel.connectors.http import TokenSource
from revtops_kernel.connectors.origins import Origin, require_origin
from revtops_kernel.connectors.slack import (
    AUTH_ERRORS,
    METHOD_TIERS,
    PAGE_LIMIT,
    SlackClient,
    slack_budgets,
)
from revtops_kernel.errors import ProviderAuthError, SlackPostError
from revtops_kernel.settings import Settings

Record = dict[str, Any]

# Posting methods' tiers: chat.postMessage is "special" (about one message a second per
# channel); the upload methods are Tier 4 and Tier 3.
POST_TIERS = {
    "chat.postMessage": "tier3",
    "files.getUploadURLExternal": "tier4",
    "files.completeUploadExternal": "tier3",
}
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
MAX_TEXT_CHARS = 40_000  # Slack refuses longer messages with msg_too_long
# Where Slack's pre-signed upload URLs live (files.getUploadURLExternal answers
# https://files.slack.com/upload/v1/...), besides the API's own origin (the sandbox's).
UPLOAD_ORIGINS = (Origin("https", "files.slack.com", 443),)


@dataclass(frozen=True)
class PostedMessage:
    channel_id: str
    ts: str


@dataclass(frozen=True)
class UploadedFile:
    file_id: str
    channel_id: str
    title: str


class SlackPoster:
    """Posts messages and files through a ``SlackClient``."""

    def __init__(self, client: SlackClient) -> None:
        self.client = client
        self._channel_ids: dict[str, str] = {}

    @classmethod
    def connect(cls, base_url: str, tokens: TokenSource, http: httpx.Client) -> SlackPoster:
        return cls(SlackClient("slack", base_url, tokens, http, budgets=slack_budgets()))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        http: httpx.Client,
        *,
        nango_connection: NangoConnection | None = None,
    ) -> SlackPoster:
        """Slack's URL and token from ``settings``, or the token of ``nango_connection``.

        Which connection an organization has is the store's to say:
        `revtops_kernel.reports.slack_poster.slack_poster` looks it up and calls this.
        """
        tokens = token_source(settings, "slack", http=http, nango_connection=nango_connection)
        return cls.connect(str(settings.slack_base_url), tokens, http)

    # --- channels ----------------------------------------------------------------------------
    def channel_id(self, channel: str) -> str:
        """The id of ``channel`` (an id is returned as is; a name is looked up once)."""
        name = channel.strip().lstrip("#")
        if not name:
            raise SlackPostError("slack", "conversations.list", None, "no channel given")
        if _CHANNEL_ID.match(name):
            return name
        if name not in self._channel_ids:
            for page in self.client.pages(
                "conversations.list",
                {
                    "types": "public_channel,private_channel",
                    "exclude_archived": "true",
                    "limit": PAGE_LIMIT,
                },
            ):
                for found in page.get("channels") or []:
                    self._channel_ids.setdefault(str(found.get("name")), str(found.get("id")))
                if name in self._channel_ids:
                    break
        if name not in self._channel_ids:
            raise SlackPostError(
                "slack",
                "conversations.list",
                None,
                f"no channel named #{name} that the app can see (invite the app to it, or "
                "give the channel id)",
            )
        return self._channel_ids[name]

    # --- posting -----------------------------------------------------------------------------
    def post_message(
        self,
        channel: str,
        text: str,
        *,
        blocks: list[Record] | None = None,
        thread_ts: str | None = None,
    ) -> PostedMessage:
        """``chat.postMessage``: ``text`` is Slack mrkdwn (escape <, > and & in data)."""
        if len(text) > MAX_TEXT_CHARS:
            raise SlackPostError(
                "slack", "chat.postMessage", None, f"text longer than {MAX_TEXT_CHARS} characters"
            )
        body: Record = {"channel": self.channel_id(channel), "text": text}
        if blocks:
            body["blocks"] = blocks
        if thread_ts:
            body["thread_ts"] = thread_ts
        data = self._call("chat.postMessage", json_body=body)
        return PostedMessage(str(data.get("channel") or body["channel"]), str(data["ts"]))

    def upload_file(
        self,
        channel: str,
        content: bytes,
        filename: str,
        *,
        title: str | None = None,
        initial_comment: str = "",
        thread_ts: str | None = None,
    ) -> UploadedFile:
        """Upload ``content`` and share it in ``channel`` (with a comment, in a thread)."""
        channel_id = self.channel_id(channel)
        ticket = self._call(
            "files.getUploadURLExternal", form={"filename": filename, "length": len(content)}
        )
        upload_url, file_id = str(ticket.get("upload_url") or ""), str(ticket.get("file_id") or "")
        if not upload_url or not file_id:
            raise SlackPostError(
                "slack", "files.getUploadURLExternal", None, "no upload_url or file_id returned"
            )
        self._send_bytes(upload_url, content, filename)
        shown = title or filename
        form: Record = {
            "files": json.dumps([{"id": file_id, "title": shown}]),
            "channel_id": channel_id,
        }
        if initial_comment:
            form["initial_comment"] = initial_comment
        if thread_ts:
            form["thread_ts"] = thread_ts
        self._call("files.completeUploadExternal", form=form)
        return UploadedFile(file_id, channel_id, shown)

    # --- steps -------------------------------------------------------------------------------
    def _call(
        self, method: str, *, json_body: Record | None = None, form: Record | None = None
    ) -> Record:
        try:
            return self._post(method, json_body=json_body, form=form)
        except ProviderAuthError:
            if not self.client.tokens.refresh():  # Nango rotates tokens: retry once
                raise
            return self._post(method, json_body=json_body, form=form)

    def _post(self, method: str, *, json_body: Record | None, form: Record | None) -> Record:
        tier = POST_TIERS.get(method) or METHOD_TIERS.get(method, "tier3")
        # Form arguments travel in the query string of the POST, as Slack's own SDK sends
        # them: every Web API method reads its arguments from there too.
        response = self.client.post(f"/{method}", json=json_body, params=form, budgets=(tier,))
        try:
            data = response.json()
        except ValueError:
            raise SlackPostError(
                "slack", method, response.status_code, "the answer is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise SlackPostError("slack", method, response.status_code, "not a JSON object")
        if data.get("ok") is not True:
            error = str(data.get("error") or "unknown_error")
            detail = f"Slack error {error}"
            if data.get("needed"):
                detail += f" (needed scope {data['needed']})"
            if error in AUTH_ERRORS:
                raise ProviderAuthError("slack", method, response.status_code, detail)
            raise SlackPostError("slack", method, response.status_code, detail + _hint(error))
        return data

    def _send_bytes(self, url: str, content: bytes, filename: str) -> None:
        # The pre-signed URL is not the API: no bearer token, one plain POST of the bytes, and
        # only to Slack's upload host (or the API's own origin).
        target = require_origin(
            "slack",
            "POST",
            url,
            (self.client.origin, *UPLOAD_ORIGINS),
            why="the upload_url from files.getUploadURLExternal",
        )
        try:
            response = self.client.http.post(
                target,
                content=content,
                headers={"Content-Type": "application/octet-stream"},
                follow_redirects=False,
            )
        except httpx.TransportError as exc:
            raise SlackPostError(
                "slack", "file upload", None, f"{filename}: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code >= 300:
            raise SlackPostError(
                "slack",
                "file upload",
                response.status_code,
                f"{filename}: {response.text[:200].strip() or response.reason_phrase}",
            )


def _hint(error: str) -> str:
    hints = {
        "channel_not_found": ": the channel does not exist or the app cannot see it",
        "not_in_channel": ": invite the app to the channel (/invite @app)",
        "is_archived": ": the channel is archived",
        "missing_scope": "",
    }
    return hints.get(error, "")
