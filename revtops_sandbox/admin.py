"""``/_sandbox/...``: drive a sandbox over HTTP (for one started by ``revtops sandbox serve``).

The same operations `SandboxServer` offers in-process: read info, stats and ground truth,
patch faults, mutate and bump records, rotate or expire tokens. No auth: the sandbox only
listens on loopback.

    GET  /_sandbox/info                 urls, tokens, seed, scale, clock, live counts
    GET  /_sandbox/stats                POST /_sandbox/stats/reset
    GET  /_sandbox/faults               POST /_sandbox/faults {"hubspot": {"rate_limits": true}}
    POST /_sandbox/faults/reset
    POST /_sandbox/mutate               {"modified_pct": 1, "archived_pct": 0.1, "seed": 7}
    POST /_sandbox/mutate/slack         {"new_messages": 10, "late_replies": 5, "seed": 3}
    POST /_sandbox/mutate/calendar      {"moved": 5, "cancelled": 3, "new": 5, "seed": 3}
    POST /_sandbox/calendar/expire-sync-tokens
    GET  /_sandbox/slack/posts          what the app posted (chat.postMessage, file uploads)
    POST /_sandbox/nango/webhook        {"provider_config_key": "slack", "session_token": "...",
                                         "tags": {...}, "success": true, "target_url": "..."}
                                        creates the connection; returns the signed body and
                                        headers, and POSTs them to target_url when given
    POST /_sandbox/bump                 {"object_type": "deals", "n": 300, "same_timestamp": true}
    POST /_sandbox/tokens/rotate        {"provider": "hubspot"} (omit provider: all)
    POST /_sandbox/tokens/expire        {"provider": "salesforce"}
    GET  /_sandbox/malformed?provider=hubspot
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revtops_sandbox.company import OBJECT_TYPES, iso_ms
from revtops_sandbox.nango_data import Connection
from revtops_sandbox.state import SandboxState


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data).encode(), status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def admin_routes(state: SandboxState) -> list[Route]:
    async def info(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        co = state.company
        return _json(
            {
                "hubspot_base_url": f"{base}/hubspot",
                "salesforce_instance_url": f"{base}/salesforce",
                "slack_base_url": f"{base}/slack/api",
                "google_calendar_base_url": f"{base}/calendar/v3",
                "nango_base_url": f"{base}/nango",
                "nango_secret_key": state.nango.secret_key,
                "nango_webhook_secret": state.nango.webhook_secret,
                "tokens": {p: state.token_for(p) for p in state.tokens},
                "seed": co.seed,
                "scale": co.scale,
                "clock": iso_ms(co.clock_ms),
                "counts": co.counts(),
            }
        )

    async def stats(request: Request) -> Response:
        return _json(state.stats.as_dict())

    async def stats_reset(request: Request) -> Response:
        state.stats.reset()
        state.reset_limits()
        return _json({"ok": True})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                patch = await _body(request)
                with state.lock:
                    state.faults.update(patch)
            except (ValueError, TypeError) as exc:
                return _json({"error": str(exc)}, 400)
        return _json(state.faults.as_dict())

    async def faults_reset(request: Request) -> Response:
        with state.lock:
            state.faults.reset()
        return _json(state.faults.as_dict())

    async def mutate(request: Request) -> Response:
        try:
            body = await _body(request)
            result = state.mutate(
                modified_pct=float(body.get("modified_pct", 1.0)),
                archived_pct=float(body.get("archived_pct", 0.0)),
                deleted_pct=float(body.get("deleted_pct", 0.0)),
                seed=body.get("seed"),
                object_types=body.get("object_types") or OBJECT_TYPES,
            )
        except (ValueError, TypeError, KeyError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(result.as_dict())

    async def mutate_slack(request: Request) -> Response:
        try:
            body = await _body(request)
            result = state.mutate_slack(
                new_messages=int(body.get("new_messages", 10)),
                late_replies=int(body.get("late_replies", 5)),
                seed=body.get("seed"),
            )
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(result.as_dict())

    async def mutate_calendar(request: Request) -> Response:
        try:
            body = await _body(request)
            result = state.mutate_calendar(
                moved=int(body.get("moved", 5)),
                cancelled=int(body.get("cancelled", 3)),
                new=int(body.get("new", 5)),
                seed=body.get("seed"),
            )
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(result.as_dict())

    async def expire_sync_tokens(request: Request) -> Response:
        state.expire_calendar_sync_tokens()
        return _json({"ok": True})

    async def slack_posts(request: Request) -> Response:
        with state.lock:
            posts = [
                {
                    "method": p.method,
                    "channel": p.channel_id,
                    "ts": p.ts,
                    "text": p.text,
                    "thread_ts": p.thread_ts,
                    "blocks": p.blocks,
                    "files": [
                        {k: v for k, v in f.items() if k != "data"} | {"bytes": len(f["data"])}
                        for f in p.files
                    ],
                }
                for p in state.company.slack.posts
            ]
        return _json({"posts": posts})

    async def nango_webhook(request: Request) -> Response:
        try:
            body = await _body(request)
            with state.lock:
                nango = state.nango
                token = body.get("session_token")
                session = nango.sessions.get(str(token)) if token else None
                if token and session is None:
                    raise ValueError(f"no connect session with token {token!r}")
                success = bool(body.get("success", True))
                key = str(body.get("provider_config_key", "hubspot"))
                if success:
                    conn = nango.create_connection(key, session=session, tags=body.get("tags"))
                else:
                    conn = Connection(0, "failed", key, 0.0, 0.0)
                hook = nango.auth_webhook(conn, success=success)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        out: dict[str, Any] = {
            "connection_id": hook.connection_id if success else None,
            "body": hook.body.decode(),
            "headers": hook.headers,
        }
        target = body.get("target_url")
        if target:
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(str(target), content=hook.body, headers=hook.headers)
            out["delivered_status"] = answer.status_code
        return _json(out)

    async def bump(request: Request) -> Response:
        try:
            body = await _body(request)
            result = state.bump(
                str(body["object_type"]),
                int(body.get("n", 300)),
                same_timestamp=bool(body.get("same_timestamp", False)),
                seed=body.get("seed"),
            )
        except (ValueError, TypeError, KeyError) as exc:
            return _json({"error": f"bad bump request: {exc}"}, 400)
        return _json(result.as_dict())

    async def rotate(request: Request) -> Response:
        try:
            provider = (await _body(request)).get("provider")
            state.rotate_token(provider)
        except (ValueError, KeyError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"tokens": {p: state.token_for(p) for p in state.tokens}})

    async def expire(request: Request) -> Response:
        try:
            state.expire_token((await _body(request)).get("provider"))
        except (ValueError, KeyError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"ok": True})

    async def malformed(request: Request) -> Response:
        provider = request.query_params.get("provider", "hubspot")
        try:
            return _json(state.malformed(provider))
        except KeyError as exc:
            return _json({"error": str(exc)}, 400)

    return [
        Route("/info", info, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/stats/reset", stats_reset, methods=["POST"]),
        Route("/faults", faults, methods=["GET", "POST"]),
        Route("/faults/reset", faults_reset, methods=["POST"]),
        Route("/mutate", mutate, methods=["POST"]),
        Route("/mutate/slack", mutate_slack, methods=["POST"]),
        Route("/mutate/calendar", mutate_calendar, methods=["POST"]),
        Route("/calendar/expire-sync-tokens", expire_sync_tokens, methods=["POST"]),
        Route("/slack/posts", slack_posts, methods=["GET"]),
        Route("/nango/webhook", nango_webhook, methods=["POST"]),
        Route("/bump", bump, methods=["POST"]),
        Route("/tokens/rotate", rotate, methods=["POST"]),
        Route("/tokens/expire", expire, methods=["POST"]),
        Route("/malformed", malformed, methods=["GET"]),
    ]
