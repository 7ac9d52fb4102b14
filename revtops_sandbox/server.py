"""Run the sandbox: in a background thread for tests (`SandboxServer`) or blocking for the CLI.

    with SandboxServer(scale=0.05, seed=1) as sb:
        client = httpx.Client(base_url=sb.hubspot_base_url,
                              headers={"Authorization": f"Bearer {sb.token}"})
        ...
        changed = sb.mutate(modified_pct=1.0, archived_pct=0.1)

The CLI wires ``revtops sandbox serve`` with `options.add_cli_arguments` and `run_from_args`.
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import sys
import threading
import time
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from revtops_sandbox.admin import admin_routes
from revtops_sandbox.company import DEFAULT_ANCHOR, OBJECT_TYPES, Company
from revtops_sandbox.faults import Faults
from revtops_sandbox.gate import ASGIApp, Gate
from revtops_sandbox.gcalendar import CalendarAPI
from revtops_sandbox.generate import generate_company
from revtops_sandbox.hubspot import HubSpotAPI
from revtops_sandbox.mutate import ActivityChanges, MutationResult
from revtops_sandbox.nango import NangoAPI
from revtops_sandbox.options import DEFAULT_PORT, add_cli_arguments
from revtops_sandbox.salesforce import SalesforceAPI
from revtops_sandbox.slack import SlackAPI
from revtops_sandbox.slack_data import SlackPost
from revtops_sandbox.state import SandboxState, Stats

logger = logging.getLogger(__name__)


def build_app(state: SandboxState) -> ASGIApp:
    """The whole sandbox as one ASGI app: providers behind the gate, admin beside them."""
    nango = NangoAPI(state)
    app = Starlette(
        routes=[
            Mount("/hubspot", routes=HubSpotAPI(state).routes()),
            Mount("/salesforce", routes=SalesforceAPI(state).routes()),
            Mount("/slack", routes=SlackAPI(state).routes()),
            Mount("/calendar/v3", routes=CalendarAPI(state).routes()),
            Mount("/nango", routes=nango.routes()),
            Mount("/_sandbox", routes=admin_routes(state)),
        ]
    )
    gate = Gate(state, app)
    nango.upstream = gate  # the proxy forwards through the gate, faults and all
    return gate


def _uvicorn_config(app: ASGIApp, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )


class SandboxServer:
    """A sandbox on 127.0.0.1 in a background thread; a context manager for tests."""

    def __init__(
        self,
        scale: float = 0.05,
        seed: int = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        anchor: datetime = DEFAULT_ANCHOR,
        company: Company | None = None,
        faults: Faults | None = None,
        log_level: str = "warning",
        freeze_gc: bool = True,
    ) -> None:
        """``freeze_gc`` moves the company out of the cyclic collector's sight (`gc.freeze`)
        while the server runs: at scale 10 a full collection would otherwise walk ~1M records
        every few hundred pages. It is undone by `stop`."""
        company = company if company is not None else generate_company(scale, seed, anchor)
        self.state = SandboxState(company, faults)
        self._freeze_gc = freeze_gc
        self.host = host
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # -- life cycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> SandboxServer:
        if self._server is not None:
            return self
        # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted connections of
        # such sockets, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = _uvicorn_config(build_app(self.state), self.host, self._port, self._log_level)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="revtops-sandbox", daemon=True
        )
        if self._freeze_gc:
            gc.freeze()
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the sandbox did not start on {self.host}:{self._port} within {timeout_s}s; "
                    "see the uvicorn log above (is the port taken?)"
                )
            time.sleep(0.01)
        logger.info("sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        if self._freeze_gc and self._server is not None:
            gc.unfreeze()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where and who ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def hubspot_base_url(self) -> str:
        return f"{self.url}/hubspot"

    @property
    def salesforce_instance_url(self) -> str:
        return f"{self.url}/salesforce"

    @property
    def slack_base_url(self) -> str:
        """Where Slack's ``https://slack.com/api`` is: append ``/conversations.list`` etc."""
        return f"{self.url}/slack/api"

    def slack_posts(self) -> list[SlackPost]:
        """What the app posted (chat.postMessage, completed file uploads), oldest first."""
        with self.state.lock:
            return list(self.state.company.slack.posts)

    @property
    def google_calendar_base_url(self) -> str:
        """Where ``https://www.googleapis.com/calendar/v3`` is."""
        return f"{self.url}/calendar/v3"

    def expire_calendar_sync_tokens(self) -> None:
        """Every sync token issued so far now answers 410 fullSyncRequired."""
        self.state.expire_calendar_sync_tokens()

    @property
    def nango_base_url(self) -> str:
        """Where ``https://api.nango.dev`` is (the Nango client's host)."""
        return f"{self.url}/nango"

    @property
    def nango_secret_key(self) -> str:
        return self.state.nango.secret_key

    @property
    def nango_webhook_secret(self) -> str:
        """The key Nango signs webhooks with (``X-Nango-Hmac-Sha256``)."""
        return self.state.nango.webhook_secret

    @property
    def nango_token_ttl_s(self) -> float:
        """Lifetime Nango gives a credential; a fetch after it rotates the provider token."""
        return self.state.nango.token_ttl_s

    @nango_token_ttl_s.setter
    def nango_token_ttl_s(self, seconds: float) -> None:
        with self.state.lock:
            self.state.nango.token_ttl_s = seconds
            for conn in self.state.nango.connections.values():
                conn.expires_at_s = min(conn.expires_at_s, conn.updated_s + seconds)

    def nango_webhook(
        self,
        provider_config_key: str = "hubspot",
        *,
        session_token: str | None = None,
        tags: dict[str, str] | None = None,
        success: bool = True,
        operation: str = "creation",
        connection_id: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The auth webhook Nango sends when an end user finishes connecting: the raw body
        and its headers (signed). A successful creation also creates the connection, with
        the end user and tags of ``session_token``'s connect session when given."""
        with self.state.lock:
            nango = self.state.nango
            session = None
            if session_token is not None:
                session = nango.sessions.get(session_token)
                if session is None:
                    raise KeyError(f"no connect session with token {session_token!r}")
            existing = nango.connections.get(connection_id or "")
            if existing is not None:
                conn = existing
            elif success and operation == "creation":
                conn = nango.create_connection(
                    provider_config_key, session=session, tags=tags, connection_id=connection_id
                )
            else:  # a failed attempt: Nango reports it but stores no connection
                from revtops_sandbox.nango_data import Connection

                conn = Connection(0, connection_id or "failed", provider_config_key, 0.0, 0.0)
                if session is not None:
                    conn.end_user, conn.tags = session.end_user, dict(session.tags)
            hook = nango.auth_webhook(conn, operation=operation, success=success)
        return hook.body, hook.headers

    def send_nango_webhook(self, url: str, **kwargs: Any) -> httpx.Response:
        """Build a webhook with `nango_webhook` and POST it to ``url``, as Nango would."""
        body, headers = self.nango_webhook(**kwargs)
        return httpx.post(url, content=body, headers=headers, timeout=30)

    @property
    def token(self) -> str:
        """The bearer token every provider accepts (until tokens are rotated separately)."""
        tokens = {self.state.token_for(p) for p in self.state.tokens}
        if len(tokens) != 1:
            raise RuntimeError(
                "providers hold different tokens since one was rotated alone; "
                "use token_for('hubspot') or token_for('salesforce')"
            )
        return tokens.pop()

    def token_for(self, provider: str) -> str:
        return self.state.token_for(provider)

    def rotate_token(self, provider: str | None = None) -> str:
        """Issue a new valid token (for one provider, or all); the old one now gets 401."""
        return self.state.rotate_token(provider)

    def expire_token(self, provider: str | None = None) -> None:
        """Expire the current token now: calls get the provider's 401 until `rotate_token`."""
        self.state.expire_token(provider)

    # -- ground truth, knobs, counters ------------------------------------------------------

    @property
    def company(self) -> Company:
        return self.state.company

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def stats(self) -> Stats:
        return self.state.stats

    def reset_stats(self) -> None:
        """Zero the counters and the rate-limit windows (e.g. between test phases)."""
        self.state.stats.reset()
        self.state.reset_limits()

    def malformed(self, provider: str = "hubspot") -> dict[str, dict[str, str]]:
        """Records rendered corrupt at the current ``malformed_rate``: type -> {id: kind}."""
        return self.state.malformed(provider)

    def mutate(
        self,
        modified_pct: float = 1.0,
        archived_pct: float = 0.0,
        deleted_pct: float = 0.0,
        *,
        seed: int | None = None,
        object_types: tuple[str, ...] = OBJECT_TYPES,
    ) -> MutationResult:
        return self.state.mutate(
            modified_pct=modified_pct,
            archived_pct=archived_pct,
            deleted_pct=deleted_pct,
            seed=seed,
            object_types=object_types,
        )

    def mutate_slack(
        self, new_messages: int = 10, late_replies: int = 5, *, seed: int | None = None
    ) -> ActivityChanges:
        """New messages, and replies arriving late in threads older than a week."""
        return self.state.mutate_slack(
            new_messages=new_messages, late_replies=late_replies, seed=seed
        )

    def mutate_calendar(
        self, moved: int = 5, cancelled: int = 3, new: int = 5, *, seed: int | None = None
    ) -> ActivityChanges:
        """Meetings moved, cancelled (one recurring instance among them) and newly booked."""
        return self.state.mutate_calendar(moved=moved, cancelled=cancelled, new=new, seed=seed)

    def bump(self, object_type: str, n: int = 30_000, *, seed: int | None = None) -> MutationResult:
        """Modify ``n`` records of one type at once (past search's 10,000-result window)."""
        return self.state.bump(object_type, n, seed=seed)

    def bump_same_timestamp(
        self, object_type: str, n: int = 300, *, seed: int | None = None
    ) -> MutationResult:
        """Modify ``n`` records giving all of them one modification timestamp."""
        return self.state.bump(object_type, n, same_timestamp=True, seed=seed)


# -- the CLI ----------------------------------------------------------------------------------


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    scale: float = 1.0,
    seed: int = 0,
    *,
    anchor: datetime = DEFAULT_ANCHOR,
    faults: Faults | None = None,
    log_level: str = "info",
) -> None:
    """Generate the company and serve it until interrupted (Ctrl-C)."""
    started = time.perf_counter()
    print(f"Generating the synthetic company (scale {scale}, seed {seed})...", flush=True)
    company = generate_company(scale, seed, anchor)
    state = SandboxState(company, faults)
    gc.freeze()  # the company lives as long as the process: keep the collector off it
    base = f"http://{host}:{port}"
    counts = ", ".join(f"{n} {t}" for t, n in company.counts().items())
    print(
        f"Generated in {time.perf_counter() - started:.1f}s: {counts}\n"
        f"HubSpot base URL:        {base}/hubspot\n"
        f"Salesforce instance URL: {base}/salesforce\n"
        f"Slack base URL:          {base}/slack/api\n"
        f"Google Calendar base:    {base}/calendar/v3\n"
        f"Nango host:              {base}/nango (secret key {state.nango.secret_key})\n"
        f"Bearer token:            {state.token_for('hubspot')}\n"
        f"Admin:                   {base}/_sandbox/info",
        flush=True,
    )
    uvicorn.Server(_uvicorn_config(build_app(state), host, port, log_level)).run()


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point for the CLI: ``return run_from_args(args)``."""
    faults = Faults(seed=args.seed)
    for pf in (faults.hubspot, faults.salesforce, faults.slack, faults.google_calendar):
        pf.rate_limits = bool(args.rate_limits)
        pf.malformed_rate = float(args.malformed_rate)
    try:
        serve(
            args.host,
            args.port,
            args.scale,
            args.seed,
            anchor=args.anchor,
            faults=faults,
            log_level=args.log_level,
        )
    except KeyboardInterrupt:
        return 0
    except (OSError, ValueError) as exc:
        print(f"revtops sandbox: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m revtops_sandbox.server`` works without the CLI too."""
    parser = argparse.ArgumentParser(prog="revtops-sandbox", description=__doc__)
    add_cli_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
