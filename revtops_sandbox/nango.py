"""The Nango API as Starlette routes, mounted at ``/nango``.

A client configured with host ``{sandbox}/nango`` calls the same paths as on
``https://api.nango.dev``, with ``Authorization: Bearer <secret key>``:

    POST   /connect/sessions        201 {"data": {"token", "connect_link", "expires_at"}}
    GET    /integrations
    GET    /connections[?connectionId=&endUserId=]
    GET    /connections/{id}?provider_config_key=  (and the deprecated /connection/{id})
    DELETE /connections/{id}?provider_config_key=  (and /connection/{id})  {"success": true}
    *      /proxy/{path}  headers Connection-Id, Provider-Config-Key

The proxy forwards the request, in process, to the sandbox provider of the connection (through
the gate, so faults and auth apply) with the connection's current token, and returns the
provider's status, headers and body unchanged.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revtops_sandbox.gate import ASGIApp
from revtops_sandbox.nango_data import INTEGRATIONS, Connection, iso_s
from revtops_sandbox.state import SandboxState

_SESSION_KEYS = {
    "end_user", "organization", "allowed_integrations", "integrations_config_defaults",
    "overrides", "tags",
}  # fmt: skip
_END_USER_KEYS = {"id", "email", "display_name", "tags"}
# Headers of the provider's answer the proxy passes back.
_PASS_HEADERS = {
    "content-type", "retry-after", "www-authenticate", "sforce-limit-info",
}  # fmt: skip


_AUTH_MESSAGES = {
    "missing": "Authentication failed. The request is missing the Authorization header.",
    "malformed": "Authentication failed. The Authorization header is malformed.",
    "unknown": "Authentication failed. The provided authorization header does not match any "
    "account.",
}


_UNKNOWN_CONNECTION = (
    "No connection matching the provided params of 'connection_id' and 'provider_config_key'."
)


def nango_json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/json; charset=utf-8",
    )


def nango_error(status: int, code: str, message: str | None = None, **extra: Any) -> Response:
    error: dict[str, Any] = {"code": code}
    if message:
        error["message"] = message
    error.update(extra)
    return nango_json({"error": error}, status)


def _issue(path: list[str | int], message: str, code: str = "custom") -> dict[str, Any]:
    return {"code": code, "message": message, "path": path}


class NangoAPI:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.upstream: ASGIApp | None = None  # the whole sandbox app, set by build_app

    def routes(self) -> list[Route]:
        return [
            Route("/connect/sessions", self.post_session, methods=["POST"]),
            Route("/integrations", self.list_integrations, methods=["GET"]),
            Route("/connections", self.list_connections, methods=["GET"]),
            Route("/connections/{connection_id}", self.connection, methods=["GET", "DELETE"]),
            Route("/connection/{connection_id}", self.connection, methods=["GET", "DELETE"]),
            Route(
                "/proxy/{path:path}",
                self.proxy,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if not header:
            return nango_error(401, "missing_auth_header", _AUTH_MESSAGES["missing"])
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return nango_error(401, "malformed_auth_header", _AUTH_MESSAGES["malformed"])
        if key.strip() != self.state.nango.secret_key:
            return nango_error(401, "unknown_account", _AUTH_MESSAGES["unknown"])
        return None

    # -- connect sessions ------------------------------------------------------------------

    async def post_session(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return nango_error(400, "invalid_body", errors=[_issue([], "Invalid JSON")])
        issues = _validate_session(body)
        if issues:
            return nango_error(400, "invalid_body", errors=issues)
        with self.state.lock:
            session = self.state.nango.create_session(
                body.get("end_user"),
                body.get("organization"),
                body.get("allowed_integrations"),
                body.get("tags"),
            )
        return nango_json(
            {
                "data": {
                    "token": session.token,
                    "connect_link": f"https://connect.nango.dev?session_token={session.token}",
                    "expires_at": iso_s(session.expires_at_s),
                }
            },
            201,
        )

    # -- integrations and connections ---------------------------------------------------------

    async def list_integrations(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        data = [
            {
                "unique_key": key,
                "provider": provider,
                "display_name": provider.replace("-", " ").title(),
                "logo": f"https://app.nango.dev/images/template-logos/{provider}.svg",
                "created_at": "2025-01-01T00:00:00.000Z",
                "updated_at": "2025-01-01T00:00:00.000Z",
            }
            for key, (provider, _, _) in INTEGRATIONS.items()
        ]
        return nango_json({"data": data})

    async def list_connections(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        q = request.query_params
        with self.state.lock:
            conns = list(self.state.nango.connections.values())
        if q.get("connectionId"):
            conns = [c for c in conns if c.connection_id == q["connectionId"]]
        if q.get("endUserId"):
            conns = [c for c in conns if (c.end_user or {}).get("id") == q["endUserId"]]
        return nango_json(
            {
                "connections": [
                    {
                        "id": c.id,
                        "connection_id": c.connection_id,
                        "provider": c.provider,
                        "provider_config_key": c.provider_config_key,
                        "created": iso_s(c.created_s),
                        "metadata": c.metadata or None,
                        "errors": [],
                        "end_user": _end_user_json(c),
                        "tags": c.tags,
                    }
                    for c in conns
                ]
            }
        )

    def _find(self, request: Request, connection_id: str, key: str | None) -> Connection | Response:
        if not key:
            return nango_error(
                400,
                "invalid_query_params",
                errors=[_issue(["provider_config_key"], "Required", "invalid_type")],
            )
        conn = self.state.nango.connections.get(connection_id)
        if conn is None or conn.provider_config_key != key:
            if request.method == "DELETE":  # Nango's delete answers 400 without a message
                return nango_error(400, "unknown_connection")
            return nango_error(404, "unknown_connection", _UNKNOWN_CONNECTION)
        return conn

    async def connection(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        q = request.query_params
        with self.state.lock:
            found = self._find(
                request, request.path_params["connection_id"], q.get("provider_config_key")
            )
            if isinstance(found, Response):
                return found
            if request.method == "DELETE":
                del self.state.nango.connections[found.connection_id]
                return nango_json({"success": True})
            force = q.get("force_refresh", "").lower() == "true"
            token = self.credentials(found, force=force)
            base = str(request.base_url).rstrip("/")
            return nango_json(self.connection_json(found, token, base))

    def credentials(self, conn: Connection, *, force: bool = False) -> str:
        """The connection's access token, refreshed (the provider token rotated) when it has
        expired, was used up by ``token_ttl_calls``, or ``force`` asks for it."""
        st = self.state
        provider = conn.sandbox_provider
        now = time.time()
        if force or now >= conn.expires_at_s or not st.tokens[provider].current:
            st.rotate_token(provider)
            conn.expires_at_s = now + st.nango.token_ttl_s
            conn.refreshes += 1
            conn.updated_s = now
        conn.last_fetched_s = now
        return st.token_for(provider)

    def connection_json(self, conn: Connection, token: str, base: str) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": max(0, int(conn.expires_at_s - time.time())),
            "refresh_token": f"sbx-refresh-{conn.connection_id}",
        }
        config: dict[str, Any] = {}
        if conn.provider_config_key == "salesforce":
            raw["instance_url"] = f"{base}/salesforce"
            config["instance_url"] = f"{base}/salesforce"
        elif conn.provider_config_key == "slack":
            raw["team"] = {"id": "T0SANDBOX", "name": "Northwind Sales Cloud"}
            raw["bot_user_id"] = "U0SANDBOXBOT"
        elif conn.provider_config_key == "hubspot":
            config["portalId"] = 4_120_917
        return {
            "id": conn.id,
            "connection_id": conn.connection_id,
            "provider_config_key": conn.provider_config_key,
            "provider": conn.provider,
            "errors": [],
            "end_user": _end_user_json(conn),
            "tags": conn.tags,
            "metadata": conn.metadata or None,
            "connection_config": config,
            "webhook_url_override": None,
            # a fetched connection spells its own timestamps with +00:00, credentials with Z
            "created_at": iso_s(conn.created_s).replace("Z", "+00:00"),
            "updated_at": iso_s(conn.updated_s).replace("Z", "+00:00"),
            "last_fetched_at": iso_s(conn.last_fetched_s or conn.created_s).replace("Z", "+00:00"),
            "credentials": {
                "type": "OAUTH2",
                "access_token": token,
                "refresh_token": raw["refresh_token"],
                "expires_at": iso_s(conn.expires_at_s),
                "raw": raw,
            },
        }

    # -- proxy ---------------------------------------------------------------------------------

    async def proxy(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        connection_id = request.headers.get("connection-id")
        key = request.headers.get("provider-config-key")
        if not connection_id or not key:
            return nango_error(
                400, "missing_headers",
                "Missing Connection-Id or Provider-Config-Key header",
            )  # fmt: skip
        with self.state.lock:
            found = self._find(request, connection_id, key)
            if isinstance(found, Response):
                return found
            token = self.credentials(found)
            mount = INTEGRATIONS[key][2]
        assert self.upstream is not None, "build_app sets NangoAPI.upstream"
        path = "/" + request.path_params["path"].lstrip("/")
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("authorization", "host", "content-length", "connection-id",
                                 "provider-config-key", "retries", "base-url-override")
        }  # fmt: skip
        headers["authorization"] = f"Bearer {token}"
        transport = httpx.ASGITransport(app=self.upstream)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            try:
                answer = await client.request(
                    request.method,
                    mount + path,
                    params=list(request.query_params.multi_items()),
                    content=await request.body(),
                    headers=headers,
                )
            except (httpx.HTTPError, RuntimeError) as exc:  # the provider hung up
                return nango_error(502, "proxy_error", f"The upstream request failed: {exc}")
        passed = {k: v for k, v in answer.headers.items() if k.lower() in _PASS_HEADERS}
        passed.update({k: v for k, v in answer.headers.items() if k.lower().startswith("x-")})
        return Response(answer.content, status_code=answer.status_code, headers=passed)


def _end_user_json(conn: Connection) -> dict[str, Any] | None:
    if not conn.end_user:
        return None
    out: dict[str, Any] = {
        "id": conn.end_user["id"],
        "email": conn.end_user.get("email"),
        "display_name": conn.end_user.get("display_name"),
    }
    if conn.organization:
        out["organization"] = {
            "id": conn.organization["id"],
            "display_name": conn.organization.get("display_name"),
        }
    return out


def _validate_session(body: Any) -> list[dict[str, Any]]:
    """Nango's strict body schema, reduced to what matters: unknown keys and bad shapes."""
    if not isinstance(body, dict):
        return [_issue([], "Expected object", "invalid_type")]
    issues = [
        _issue([k], f"Unrecognized key: {k!r}", "unrecognized_keys")
        for k in body
        if k not in _SESSION_KEYS
    ]
    end_user = body.get("end_user")
    if end_user is not None:
        if not isinstance(end_user, dict):
            issues.append(_issue(["end_user"], "Expected object", "invalid_type"))
        else:
            if not isinstance(end_user.get("id"), str) or not end_user["id"]:
                issues.append(_issue(["end_user", "id"], "Required", "invalid_type"))
            email = end_user.get("email")
            if email is not None and (not isinstance(email, str) or "@" not in email):
                issues.append(_issue(["end_user", "email"], "Invalid email", "invalid_format"))
            issues += [
                _issue(["end_user", k], f"Unrecognized key: {k!r}", "unrecognized_keys")
                for k in end_user
                if k not in _END_USER_KEYS
            ]
    org = body.get("organization")
    if org is not None and (not isinstance(org, dict) or not isinstance(org.get("id"), str)):
        issues.append(_issue(["organization", "id"], "Required", "invalid_type"))
    allowed = body.get("allowed_integrations")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            issues.append(_issue(["allowed_integrations"], "Expected array", "invalid_type"))
        else:
            issues += [
                _issue(["allowed_integrations", i], "Integration does not exist")
                for i, a in enumerate(allowed)
                if a not in INTEGRATIONS
            ]
    tags = body.get("tags")
    if tags is not None and (
        not isinstance(tags, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    ):
        issues.append(_issue(["tags"], "Expected a record of strings", "invalid_type"))
    return issues
