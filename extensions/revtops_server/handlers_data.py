"""REST endpoints over the organization's data: integrations, Nango connect, sync, chat history.

Every query is scoped to the caller's organization (and, for conversations, to the caller):
an id of another organization's object answers 404, exactly like an id that does not exist.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from revtops_kernel.agent.conversations import (
    conversation_visible,
    list_conversations,
    load_transcript,
)
from revtops_kernel.integrations import (
    EndUser,
    create_connect_session,
    delete_integration,
    handle_webhook,
    list_integrations,
)
from revtops_kernel.providers import ALL_PROVIDERS, settings_token
from revtops_kernel.status import provider_statuses

from .base import ApiHandler, Principal, PublicHandler, to_json
from .context import Context

# Syncs run off the server's event loop, two at a time: they are I/O- and database-bound.
_SYNC_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="revtops-sync")
_running: dict[tuple[str, str], asyncio.Future[Any]] = {}


class IntegrationsHandler(ApiHandler):
    def get(self) -> None:
        org = self.principal().organization_id
        items = []
        for status in provider_statuses(self.ctx.db, self.ctx.settings, org):
            item = to_json(status)
            item["syncing"] = status.syncing or (org, status.provider) in _running
            items.append(item)
        self.reply({"integrations": items})


class IntegrationHandler(ApiHandler):
    def delete(self, provider: str) -> None:
        org = self.principal().organization_id
        if not delete_integration(self.ctx.db, self.ctx.settings, org, provider):
            raise web.HTTPError(404, f"{provider} is not connected")
        self.reply({"provider": provider, "status": "disconnected"})


class ConnectSessionHandler(ApiHandler):
    """A Nango Connect session for the caller's organization (the front end opens Nango's UI)."""

    def post(self, provider: str) -> None:
        self.reply(_connect(self, provider), 201)


class ConnectHandler(ApiHandler):
    """The same, as a redirect to Nango's hosted connect page."""

    def get(self, provider: str) -> None:
        session = _connect(self, provider)
        if not session.get("connect_link"):
            raise web.HTTPError(502, "Nango returned no connect link")
        self.redirect(session["connect_link"])


def _connect(handler: ApiHandler, provider: str) -> dict[str, Any]:
    principal = handler.principal()
    if handler.ctx.settings.nango_secret_key is None:
        raise web.HTTPError(
            409, "connecting needs Nango (NANGO_SECRET_KEY); or set the provider's token"
        )
    user = EndUser(id=str(principal.member_id or principal.organization_id), email=principal.email)
    session = create_connect_session(
        handler.ctx.settings, principal.organization_id, provider, user
    )
    return {
        "provider": provider,
        "token": session.token,
        "connect_link": session.connect_link,
        "expires_at": session.expires_at,
    }


class CallbackHandler(PublicHandler):
    """Where the OAuth flow sends the browser back: the connection itself arrives by webhook."""

    @allow_unauthenticated
    def get(self) -> None:
        provider = self.get_argument("provider", "")
        target = self.base_url + ("?connected=" + provider if provider in ALL_PROVIDERS else "")
        self.redirect(target)


class NangoWebhookHandler(PublicHandler):
    """Nango's auth webhook: HMAC over the raw body, replays recognized, unknown types ignored."""

    def check_xsrf_cookie(self) -> None:
        return None  # authenticated by its signature, not by a cookie

    @allow_unauthenticated
    def post(self) -> None:
        result = handle_webhook(
            self.ctx.db, self.ctx.settings, self.request.body, dict(self.request.headers)
        )
        self.reply({"status": result.status, "detail": result.detail}, result.http_status)


class SyncHandler(ApiHandler):
    """Start a sync of one provider (or all configured ones) in the background: 202."""

    async def post(self) -> None:
        org = self.principal().organization_id
        requested = self.text_field(self.body(), "provider") or "all"
        if requested == "all":
            providers = list(_token_providers(self) | _nango_providers(self, org))
        elif requested in ALL_PROVIDERS:
            providers = [requested]
        else:
            raise web.HTTPError(
                400, f"unknown provider {requested!r}; expected one of {ALL_PROVIDERS} or 'all'"
            )
        if not providers:
            raise web.HTTPError(409, "no integration is connected yet")
        started, already = [], []
        for provider in sorted(providers):
            key = (org, provider)
            if key in _running:
                already.append(provider)
                continue
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(_SYNC_POOL, _sync, self.ctx, org, provider)
            _running[key] = future
            future.add_done_callback(_forget(key))
            started.append(provider)
        self.reply({"started": started, "already_running": already}, 202)


def _forget(key: tuple[str, str]) -> Any:
    def done(_: asyncio.Future[Any]) -> None:
        _running.pop(key, None)

    return done


def _sync(ctx: Context, org: str, provider: str) -> str:
    # The sync path (pandas, pyarrow, every connector) loads on the first sync, not with the
    # server: it is most of the extension's import time.
    from revtops_kernel.sync import run_sync

    return run_sync(ctx.db, ctx.settings, provider, org=org).status


class SyncStatusHandler(ApiHandler):
    def get(self) -> None:
        org = self.principal().organization_id
        providers = [
            {
                "provider": status.provider,
                "syncing": status.syncing or (org, status.provider) in _running,
                "last_run": to_json(status.last_run),
            }
            for status in provider_statuses(self.ctx.db, self.ctx.settings, org)
        ]
        self.reply({"providers": providers})


class ConversationsHandler(ApiHandler):
    def get(self) -> None:
        principal = self.principal()
        found = list_conversations(
            self.ctx.db, org=principal.organization_id, user_id=principal.member_id
        )
        self.reply({"conversations": to_json(found)})


class ConversationHandler(ApiHandler):
    def get(self, conversation_id: str) -> None:
        principal = self.principal()
        ident = _owned_conversation(self, principal, conversation_id)
        items = load_transcript(self.ctx.db, ident, org=principal.organization_id)
        self.reply({"id": str(ident), "items": to_json(items)})


def _owned_conversation(handler: ApiHandler, principal: Principal, raw: str) -> uuid.UUID:
    """The conversation's id when the caller may read it; 404 alike for absent and not theirs."""
    try:
        ident = uuid.UUID(raw)
    except ValueError:
        raise web.HTTPError(404, "no such conversation") from None
    if not conversation_visible(
        handler.ctx.db, ident, org=principal.organization_id, user_id=principal.member_id
    ):
        raise web.HTTPError(404, "no such conversation")
    return ident


def _token_providers(handler: ApiHandler) -> set[str]:
    settings = handler.ctx.settings
    return {p for p in ALL_PROVIDERS if settings_token(settings, p) is not None}


def _nango_providers(handler: ApiHandler, org: str) -> set[str]:
    return {i.provider for i in list_integrations(handler.ctx.db, org) if i.via_nango}
