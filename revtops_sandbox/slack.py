"""The Slack Web API as Starlette routes, mounted at ``/slack``.

A connector configured with base URL ``{sandbox}/slack/api`` calls the same method paths as on
``https://slack.com/api``. Auth, tier rate limits and injected faults are applied before these
handlers by `gate.py`. Arguments come as query parameters, a form body or a JSON body, as Slack
accepts them. Errors are Slack's: HTTP 200 with ``{"ok": false, "error": "..."}``.

File uploads follow Slack's current flow: ``files.getUploadURLExternal`` hands out an upload
URL under ``/slack/files/upload/v1/<secret>`` (no auth, like Slack's pre-signed URL), the
client POSTs the bytes there, then ``files.completeUploadExternal`` shares the file.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revtops_sandbox.company import Company
from revtops_sandbox.faults import malformed_kind
from revtops_sandbox.slack_data import (
    PendingUpload,
    SlackChannel,
    SlackMessage,
    SlackPost,
    SlackUser,
    SlackWorkspace,
    parse_ts,
    slack_id,
    ts_str,
)
from revtops_sandbox.state import SandboxState

CHANNEL_TYPES = ("public_channel", "private_channel", "mpim", "im")
MAX_LIMIT = 999
NON_MARKETPLACE_LIMIT = 15


def slack_json(data: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json; charset=utf-8")


def slack_error(error: str, **extra: Any) -> Response:
    """Slack's application error: HTTP 200, ``ok: false``."""
    return slack_json({"ok": False, "error": error, **extra})


def error_bytes(error: str) -> bytes:
    return json.dumps({"ok": False, "error": error}, separators=(",", ":")).encode()


def encode_cursor(kind: str, value: str) -> str:
    """Slack's opaque cursors are base64 of ``kind:value`` (``bmV4dF90czo...`` = next_ts:...)."""
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: str, kind: str) -> str | None:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, sep, value = text.partition(":")
    return value if sep and prefix == kind and value else None


async def slack_args(request: Request) -> dict[str, Any]:
    """Method arguments from the query string, a form body or a JSON body."""
    args: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        if raw.strip():
            if ctype.startswith("application/json"):
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    args.update(data)
                else:
                    args["__invalid_json__"] = True
            else:
                text = raw.decode("utf-8", errors="replace")
                args.update(parse_qsl(text, keep_blank_values=True))
    return args


def _flag(value: Any, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("1", "true", "yes")


def _int(value: Any, default: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SlackAPI:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    @property
    def co(self) -> Company:
        return self.state.company

    def routes(self) -> list[Route]:
        methods = {
            "auth.test": self.auth_test,
            "conversations.list": self.conversations_list,
            "conversations.info": self.conversations_info,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "users.list": self.users_list,
            "users.info": self.users_info,
            "chat.postMessage": self.chat_post_message,
            "files.getUploadURLExternal": self.get_upload_url,
            "files.completeUploadExternal": self.complete_upload,
        }
        routes = [
            Route(f"/api/{name}", self._wrap(handler), methods=["GET", "POST"])
            for name, handler in methods.items()
        ]
        routes.append(Route("/api/{method}", self.unknown_method, methods=["GET", "POST"]))
        routes.append(Route("/files/upload/v1/{secret}", self.upload, methods=["POST", "PUT"]))
        return routes

    def _wrap(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            args = await slack_args(request)
            if args.pop("__invalid_json__", False):
                return slack_error("invalid_json")
            with self.state.lock:
                ws = self.co.slack
                response: Response = handler(request, ws, args)
                return response

        return endpoint

    async def unknown_method(self, request: Request) -> Response:
        return slack_json({"ok": False, "error": "unknown_method"}, 404)

    # -- rendering --------------------------------------------------------------------------

    def channel_json(self, ws: SlackWorkspace, ch: SlackChannel) -> dict[str, Any]:
        creator = ws.users[ch.creator].id
        topic_set = ch.created_s if ch.topic else 0
        return {
            "id": ch.id,
            "name": ch.name,
            "is_channel": not ch.is_private,
            "is_group": ch.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": ch.is_private,
            "created": ch.created_s,
            "is_archived": ch.is_archived,
            "is_general": ch.name == "general",
            "unlinked": 0,
            "name_normalized": ch.name,
            "is_shared": ch.is_ext_shared,
            "is_org_shared": False,
            "is_ext_shared": ch.is_ext_shared,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": ws.team_id,
            "updated": ch.created_s * 1000,
            "parent_conversation": None,
            "creator": creator,
            "is_member": ch.is_member,
            "topic": {
                "value": ch.topic,
                "creator": creator if ch.topic else "",
                "last_set": topic_set,
            },
            "purpose": {"value": ch.purpose, "creator": creator, "last_set": ch.created_s},
            "previous_names": [],
            "num_members": len(ch.members),
        }

    def user_json(self, ws: SlackWorkspace, u: SlackUser) -> dict[str, Any]:
        first, _, last = u.real_name.partition(" ")
        profile: dict[str, Any] = {
            "real_name": u.real_name,
            "display_name": u.name,
            "real_name_normalized": u.real_name,
            "display_name_normalized": u.name,
            "first_name": first,
            "last_name": last,
            "title": "",
            "team": u.team_id,
            "avatar_hash": hashlib.md5(u.id.encode()).hexdigest()[:12],
        }
        if u.email:
            profile["email"] = u.email
        if u.is_bot:
            profile["bot_id"] = u.bot_id
            profile["always_active"] = True
        out: dict[str, Any] = {
            "id": u.id,
            "team_id": u.team_id,
            "name": u.name,
            "deleted": u.deleted,
            "real_name": u.real_name,
            "profile": profile,
            "is_bot": u.is_bot,
            "is_app_user": False,
            "updated": u.updated_s,
        }
        if not u.deleted:
            out.update(
                color="9f69e7",
                tz=u.tz,
                tz_label=u.tz_label,
                tz_offset=u.tz_offset,
                is_admin=u.is_admin,
                is_owner=u.is_admin,
                is_primary_owner=u.is_admin and u.owner == 0,
                is_restricted=False,
                is_ultra_restricted=False,
                is_email_confirmed=bool(u.email),
            )
        return out

    def message_json(
        self, ws: SlackWorkspace, m: SlackMessage, parent: SlackMessage | None = None
    ) -> dict[str, Any]:
        u = ws.users[m.user]
        out: dict[str, Any] = {"type": "message"}
        if u.is_bot and not m.posted:  # an integration posting through a webhook
            out.update(subtype="bot_message", bot_id=u.bot_id, username=u.real_name)
        else:
            out["user"] = u.id
            if u.is_bot:
                out["bot_id"] = u.bot_id
                out["app_id"] = "A0" + u.bot_id[2:]
        out["text"] = m.text
        out["ts"] = m.ts
        out["team"] = u.team_id
        if u.external:
            out["user_team"] = u.team_id
            out["source_team"] = u.team_id
        if m.blocks is not None:
            out["blocks"] = m.blocks
        if m.files:
            out["files"] = [self.file_json(ws, f) for f in m.files]
            out["upload"] = True
        if m.replies:
            reply_users: list[str] = []
            for r in m.replies:
                uid = ws.users[r.user].id
                if uid not in reply_users:
                    reply_users.append(uid)
            out.update(
                thread_ts=m.ts,
                reply_count=len(m.replies),
                reply_users_count=len(reply_users),
                latest_reply=m.replies[-1].ts,
                reply_users=reply_users[:5],
                is_locked=False,
                subscribed=False,
            )
        elif m.is_reply and parent is not None:
            out["thread_ts"] = parent.ts
            out["parent_user_id"] = ws.users[parent.user].id
        kind = malformed_kind(
            self.co.seed, "slack_messages", m.idx, self.state.faults.slack.malformed_rate
        )
        if kind == "missing_user":
            out.pop("user", None)
            out.pop("bot_id", None)
            out.pop("subtype", None)
        elif kind == "dangling_thread" and "thread_ts" not in out:
            out["thread_ts"] = ts_str(max(1, m.ts_us - 7 * 86_400_000_000))
        return out

    def file_json(self, ws: SlackWorkspace, f: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in f.items() if k != "data"}

    # -- helpers -----------------------------------------------------------------------------

    def _channel(
        self, ws: SlackWorkspace, value: Any, *, by_name: bool = False
    ) -> SlackChannel | None:
        """A channel by id; posting methods also take a name (``#sales`` or ``sales``)."""
        if not value:
            return None
        text = str(value)
        ch = ws.channel(text)
        if ch is None and by_name:
            ch = ws.channel_named(text)
        return ch

    def _limit(self, args: dict[str, Any], default: int, cap: int) -> int | None:
        limit = _int(args.get("limit"), default)
        if limit is None or limit < 0:
            return None
        if limit == 0:
            limit = default
        return min(limit, cap)

    def _history_cap(self) -> int:
        return NON_MARKETPLACE_LIMIT if self.state.faults.slack.non_marketplace else MAX_LIMIT

    # -- methods -----------------------------------------------------------------------------

    def auth_test(self, request: Request, ws: SlackWorkspace, args: dict[str, Any]) -> Response:
        bot = ws.users[ws.bot_user]
        return slack_json(
            {
                "ok": True,
                "url": f"https://{ws.domain}.slack.com/",
                "team": ws.team_name,
                "user": bot.name,
                "team_id": ws.team_id,
                "user_id": bot.id,
                "bot_id": bot.bot_id,
                "is_enterprise_install": False,
            }
        )

    def conversations_list(
        self, request: Request, ws: SlackWorkspace, args: dict[str, Any]
    ) -> Response:
        types = [t.strip() for t in str(args.get("types") or "public_channel").split(",") if t]
        if any(t not in CHANNEL_TYPES for t in types):
            return slack_error("invalid_types")
        limit = self._limit(args, 100, MAX_LIMIT)
        if limit is None:
            return slack_error("invalid_limit")
        exclude_archived = _flag(args.get("exclude_archived"))
        start = 0
        cursor = args.get("cursor")
        if cursor:
            after = decode_cursor(str(cursor), "team")
            ch = ws.channel(after) if after else None
            if ch is None:
                return slack_error("invalid_cursor")
            start = ch.idx
        page: list[dict[str, Any]] = []
        next_cursor = ""
        for ch in ws.channels[start:]:
            kind = "private_channel" if ch.is_private else "public_channel"
            if kind not in types or (exclude_archived and ch.is_archived):
                continue
            if ch.is_private and not ch.is_member:
                continue  # private channels are only visible to members
            if len(page) == limit:
                next_cursor = encode_cursor("team", ch.id)
                break
            page.append(self.channel_json(ws, ch))
        return slack_json(
            {"ok": True, "channels": page, "response_metadata": {"next_cursor": next_cursor}}
        )

    def conversations_info(
        self, request: Request, ws: SlackWorkspace, args: dict[str, Any]
    ) -> Response:
        ch = self._channel(ws, args.get("channel"))
        if ch is None or (ch.is_private and not ch.is_member):
            return slack_error("channel_not_found")
        return slack_json({"ok": True, "channel": self.channel_json(ws, ch)})

    def _readable(self, ws: SlackWorkspace, args: dict[str, Any]) -> SlackChannel | Response:
        ch = self._channel(ws, args.get("channel"))
        if ch is None or (ch.is_private and not ch.is_member):
            return slack_error("channel_not_found")
        if not ch.is_member:
            return slack_error("not_in_channel")
        return ch

    def _bounds(self, args: dict[str, Any]) -> tuple[int, int] | None:
        """(lo, hi) inclusive ts bounds in microseconds from oldest/latest/inclusive."""
        inclusive = _flag(args.get("inclusive"))
        oldest = parse_ts(str(args.get("oldest") or "0"))
        latest_raw = args.get("latest")
        latest = parse_ts(str(latest_raw)) if latest_raw not in (None, "") else None
        if oldest is None or (latest_raw not in (None, "") and latest is None):
            return None
        lo = oldest if inclusive else oldest + 1
        hi = (latest if inclusive else latest - 1) if latest is not None else 1 << 62
        return lo, hi

    def conversations_history(
        self, request: Request, ws: SlackWorkspace, args: dict[str, Any]
    ) -> Response:
        ch = self._readable(ws, args)
        if isinstance(ch, Response):
            return ch
        limit = self._limit(args, 100, self._history_cap())
        bounds = self._bounds(args)
        if limit is None:
            return slack_error("invalid_limit")
        if bounds is None:
            return slack_error("invalid_ts_latest" if args.get("latest") else "invalid_ts_oldest")
        lo, hi = bounds
        cursor = args.get("cursor")
        if cursor:
            at = decode_cursor(str(cursor), "next_ts")
            at_us = parse_ts(at) if at else None
            if at_us is None:
                return slack_error("invalid_cursor")
            hi = min(hi, at_us)
        window = ws.window(ch, lo, hi)
        page = window[::-1][:limit]
        has_more = len(window) > limit
        next_cursor = encode_cursor("next_ts", window[-limit - 1].ts) if has_more else ""
        return slack_json(
            {
                "ok": True,
                "messages": [self.message_json(ws, m) for m in page],
                "has_more": has_more,
                "pin_count": 0,
                "channel_actions_ts": None,
                "channel_actions_count": 0,
                "response_metadata": {"next_cursor": next_cursor},
            }
        )

    def conversations_replies(
        self, request: Request, ws: SlackWorkspace, args: dict[str, Any]
    ) -> Response:
        ch = self._readable(ws, args)
        if isinstance(ch, Response):
            return ch
        ts_us = parse_ts(str(args.get("ts") or ""))
        if ts_us is None:
            return slack_error("thread_not_found")
        parent = ws.find(ch, ts_us)
        if parent is None:
            return slack_error("thread_not_found")
        limit = self._limit(args, 1000, 1000 if not self.state.faults.slack.non_marketplace else 15)
        bounds = self._bounds(args)
        if limit is None:
            return slack_error("invalid_limit")
        if bounds is None:
            return slack_error("invalid_ts_latest" if args.get("latest") else "invalid_ts_oldest")
        lo, hi = bounds
        cursor = args.get("cursor")
        first = True
        if cursor:
            at = decode_cursor(str(cursor), "next_ts")
            at_us = parse_ts(at) if at else None
            if at_us is None:
                return slack_error("invalid_cursor")
            lo, first = max(lo, at_us), False
        replies = [r for r in parent.replies if lo <= r.ts_us <= hi]
        room = max(1, limit - 1) if first else limit
        page = replies[:room]
        has_more = len(replies) > room
        messages = [self.message_json(ws, parent)] if first else []
        messages += [self.message_json(ws, r, parent) for r in page]
        next_cursor = encode_cursor("next_ts", replies[room].ts) if has_more else ""
        return slack_json(
            {
                "ok": True,
                "messages": messages,
                "has_more": has_more,
                "response_metadata": {"next_cursor": next_cursor},
            }
        )

    def users_list(self, request: Request, ws: SlackWorkspace, args: dict[str, Any]) -> Response:
        limit = self._limit(args, 1000, 1000)
        if limit is None:
            return slack_error("invalid_limit")
        members = ws.members()
        start = 0
        cursor = args.get("cursor")
        if cursor:
            after = decode_cursor(str(cursor), "user")
            start = next((i for i, u in enumerate(members) if u.id == after), -1)
            if start < 0:
                return slack_error("invalid_cursor")
        page = members[start : start + limit]
        next_cursor = (
            encode_cursor("user", members[start + limit].id) if start + limit < len(members) else ""
        )
        return slack_json(
            {
                "ok": True,
                "members": [self.user_json(ws, u) for u in page],
                "cache_ts": int(time.time()),
                "response_metadata": {"next_cursor": next_cursor},
            }
        )

    def users_info(self, request: Request, ws: SlackWorkspace, args: dict[str, Any]) -> Response:
        u = ws.user(str(args.get("user") or ""))
        if u is None:
            return slack_error("user_not_found")
        return slack_json({"ok": True, "user": self.user_json(ws, u)})

    def _postable(self, ws: SlackWorkspace, channel: Any) -> SlackChannel | Response:
        ch = self._channel(ws, channel, by_name=True)
        if ch is None or (ch.is_private and not ch.is_member):
            return slack_error("channel_not_found")
        if ch.is_archived:
            return slack_error("is_archived")
        if not ch.is_member:
            return slack_error("not_in_channel")
        return ch

    def _thread_parent(
        self, ws: SlackWorkspace, ch: SlackChannel, thread_ts: Any
    ) -> SlackMessage | Response | None:
        if not thread_ts:
            return None
        ts_us = parse_ts(str(thread_ts))
        parent = ws.find(ch, ts_us) if ts_us is not None else None
        if parent is None:
            return slack_error("thread_not_found")
        return parent

    def _post(
        self,
        ws: SlackWorkspace,
        ch: SlackChannel,
        parent: SlackMessage | None,
        text: str,
        blocks: list[Any] | None,
        files: list[dict[str, Any]],
    ) -> SlackMessage:
        at = int(time.time() * 1_000_000)
        ts_us = ws.next_ts_us(ch, at)
        if parent is not None:
            ts_us = max(ts_us, (parent.replies[-1].ts_us + 1) if parent.replies else 0)
        msg = SlackMessage(
            0, ch.idx, ts_us, ws.bot_user, text, 0, ch.account, ch.deal,
            posted=True, files=files, blocks=blocks,
        )  # fmt: skip
        return ws.add_message(msg, parent)

    def chat_post_message(
        self, request: Request, ws: SlackWorkspace, args: dict[str, Any]
    ) -> Response:
        ch = self._postable(ws, args.get("channel"))
        if isinstance(ch, Response):
            return ch
        blocks = args.get("blocks")
        if isinstance(blocks, str) and blocks:
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return slack_error("invalid_blocks_format")
        if blocks is not None and not isinstance(blocks, list):
            return slack_error("invalid_blocks_format")
        text = str(args.get("text") or "")
        if not text and not blocks and not args.get("attachments"):
            return slack_error("no_text")
        if len(text) > 40_000:
            return slack_error("msg_too_long")
        parent = self._thread_parent(ws, ch, args.get("thread_ts"))
        if isinstance(parent, Response):
            return parent
        msg = self._post(ws, ch, parent, text, blocks or None, [])
        ws.posts.append(
            SlackPost("chat.postMessage", ch.id, msg.ts, text, msg.thread_ts if parent else None,
                      blocks or None, [])
        )  # fmt: skip
        message = self.message_json(ws, msg, parent)
        return slack_json({"ok": True, "channel": ch.id, "ts": msg.ts, "message": message})

    def get_upload_url(
        self, request: Request, ws: SlackWorkspace, args: dict[str, Any]
    ) -> Response:
        filename = str(args.get("filename") or "")
        length = _int(args.get("length"), -1)
        if not filename or length is None or length < 0:
            return slack_error("invalid_arguments")
        n = len(ws.uploads) + len(ws.files)
        file_id = slack_id("F", self.co.seed, "file", n)
        secret = hashlib.sha256(f"{self.co.seed}:upload:{n}:{time.time_ns()}".encode()).hexdigest()
        ws.uploads[secret[:32]] = PendingUpload(
            file_id, filename, length, str(args.get("alt_txt") or "")
        )
        # faults.slack.link_base: the URL on another origin (as a forged answer would).
        base = (self.state.faults.slack.link_base or str(request.base_url)).rstrip("/")
        return slack_json(
            {
                "ok": True,
                "upload_url": f"{base}/slack/files/upload/v1/{secret[:32]}",
                "file_id": file_id,
            }
        )

    async def upload(self, request: Request) -> Response:
        secret = request.path_params["secret"]
        raw = await request.body()
        data = _file_bytes(raw, request.headers.get("content-type", ""))
        with self.state.lock:
            pending = self.co.slack.uploads.get(secret)
            if pending is None:
                return Response(b"not found", status_code=404, media_type="text/plain")
            pending.data = data
        return Response(f"OK - {len(data)}".encode(), media_type="text/plain")

    def complete_upload(
        self, request: Request, ws: SlackWorkspace, args: dict[str, Any]
    ) -> Response:
        files_arg = args.get("files")
        if isinstance(files_arg, str):
            try:
                files_arg = json.loads(files_arg)
            except ValueError:
                return slack_error("invalid_arguments")
        if not isinstance(files_arg, list) or not files_arg:
            return slack_error("invalid_arguments")
        by_id = {p.file_id: (s, p) for s, p in ws.uploads.items()}
        done: list[tuple[str, PendingUpload, str]] = []
        for item in files_arg:
            if not isinstance(item, dict) or "id" not in item:
                return slack_error("invalid_arguments")
            found = by_id.get(str(item["id"]))
            if found is None or found[1].data is None:
                return slack_error("file_not_found")
            secret, pending = found
            done.append((secret, pending, str(item.get("title") or pending.filename)))
        channel_arg = args.get("channel_id") or (str(args.get("channels") or "").split(",")[0])
        ch: SlackChannel | None = None
        parent: SlackMessage | None = None
        if channel_arg:
            found_ch = self._postable(ws, channel_arg)
            if isinstance(found_ch, Response):
                return found_ch
            ch = found_ch
            p = self._thread_parent(ws, ch, args.get("thread_ts"))
            if isinstance(p, Response):
                return p
            parent = p
        now = int(time.time())
        files: list[dict[str, Any]] = []
        for secret, pending, title in done:
            data = pending.data or b""
            ext = pending.filename.rsplit(".", 1)[-1].lower() if "." in pending.filename else ""
            f: dict[str, Any] = {
                "id": pending.file_id,
                "created": now,
                "timestamp": now,
                "name": pending.filename,
                "title": title,
                "mimetype": _MIME.get(ext, "application/octet-stream"),
                "filetype": ext or "binary",
                "user": ws.users[ws.bot_user].id,
                "size": len(data),
                "is_external": False,
                "alt_txt": pending.alt_txt,
                "shares": {},
                "data": data,
            }
            ws.files[pending.file_id] = f
            del ws.uploads[secret]
            files.append(f)
        comment = str(args.get("initial_comment") or "")
        ts = None
        if ch is not None:
            msg = self._post(ws, ch, parent, comment, None, files)
            ts = msg.ts
            for f in files:
                f["shares"] = {"public" if not ch.is_private else "private": {ch.id: [{"ts": ts}]}}
            ws.posts.append(
                SlackPost("files.completeUploadExternal", ch.id, ts, comment,
                          msg.thread_ts if parent else None, None, files)
            )  # fmt: skip
        return slack_json(
            {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in files]}
        )


_MIME = {
    "pdf": "application/pdf",
    "png": "image/png",
    "csv": "text/csv",
    "txt": "text/plain",
    "html": "text/html",
    "json": "application/json",
}


def _file_bytes(raw: bytes, content_type: str) -> bytes:
    """The uploaded file: the raw body, or the first file part of a multipart body."""
    if not content_type.startswith("multipart/form-data"):
        return raw
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    msg = parser.parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    parts = list(msg.iter_parts()) if msg.is_multipart() else []
    for part in parts:
        if part.get_filename() is not None:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    for part in parts:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return payload
    return raw
