"""Credentials go only to each provider's configured origin (and the Nango key only to Nango's).

A second, real HTTP server on loopback (another port: another origin) records every request
and its Authorization header. The sandbox (or, for Nango, a small stub) is made to point at it:
Salesforce's ``nextRecordsUrl``, Slack's ``upload_url``, a 307 redirect from any provider or
from Nango, the instance URL Nango reports. Each time the recorder must see nothing, the error
must name the refused origin (never a token), a sync must end recorded as failed with that line
and its cursor must not move. Relative links (Salesforce's real format) and absolute links on
the configured origin keep working.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from helpers import sandbox_settings
from pydantic import SecretStr
from sqlalchemy import text

from revtops_kernel.connectors.credentials import NangoConnection, NangoToken, StaticToken
from revtops_kernel.connectors.google_calendar import GoogleCalendarConnector
from revtops_kernel.connectors.http import ProviderClient, make_http_client
from revtops_kernel.connectors.hubspot import HubSpotConnector
from revtops_kernel.connectors.origins import origin_of, require_origin
from revtops_kernel.connectors.salesforce import SalesforceConnector
from revtops_kernel.connectors.slack import SlackConnector
from revtops_kernel.connectors.slack_post import UPLOAD_ORIGINS, SlackPoster
from revtops_kernel.errors import ConnectorError, ForeignOriginError
from revtops_kernel.integrations import EndUser, create_connect_session, handle_webhook
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.bookkeeping import load_cursor
from revtops_kernel.sync import run_sync
from revtops_sandbox import SandboxServer

ORG = "northwind"
NANGO_KEY = "nango-secret-key-of-the-test"
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class Server:
    """A real HTTP server in a thread that records what reaches it and answers ``answer``."""

    answer: Callable[[str], Answer]
    host: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.seen.append(Seen(self.command, self.path, self.headers["Authorization"]))
                status, headers, body = server.answer(self.path)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def origin_url(self, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def ok_json(_path: str) -> Answer:
    """What a server handing out tokens' worth of data would answer: anything plausible."""
    return 200, {}, b'{"ok": true, "done": true, "records": [], "results": [], "items": []}'


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(answer: Callable[[str], Answer] = ok_json, host: str = "127.0.0.1") -> Server:
        server = Server(answer, host)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def recorder(servers: Callable[..., Server]) -> Server:
    """The other origin: it must never see a request carrying credentials (or any request)."""
    return servers()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.02, seed=3) as server:
        yield server


@pytest.fixture(autouse=True)
def no_faults(sandbox: SandboxServer) -> Iterator[None]:
    yield
    sandbox.faults.reset()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with make_http_client() as client:
        yield client


def settings_for(sandbox: SandboxServer, db: Database, **extra: str) -> Settings:
    return sandbox_settings(sandbox, db, "hubspot", "salesforce", org=ORG, **extra)


def salesforce_in_pages(sandbox: SandboxServer, http: httpx.Client) -> SalesforceConnector:
    """The real connector, asking Salesforce for 200-record batches (a documented request
    option) so that Contacts (425 at this scale) come in three pages, linked by
    ``nextRecordsUrl``."""
    http.headers["Sforce-Query-Options"] = "batchSize=200"
    tokens = StaticToken("salesforce", SecretStr(sandbox.token))
    return SalesforceConnector.connect(sandbox.salesforce_instance_url, tokens, http)


def stored(db: Database, sql: str) -> Any:
    with db.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def contacts_in_sandbox(sandbox: SandboxServer) -> int:
    answer = httpx.get(
        f"{sandbox.salesforce_instance_url}/services/data/v59.0/queryAll",
        params={"q": "SELECT Id FROM Contact"},
        headers={"Authorization": f"Bearer {sandbox.token}"},
    )
    return int(answer.json()["totalSize"])


def assert_refused(error: str | BaseException | None, refused: str, token: str) -> None:
    message = str(error)
    assert f"refused to send credentials to {refused}" in message, message
    assert token not in message


# --- Salesforce: nextRecordsUrl -------------------------------------------------------------


@pytest.mark.parametrize("link", ["relative", "absolute on the instance"])
def test_salesforce_follows_next_records_urls_on_its_instance(
    db: Database,
    sandbox: SandboxServer,
    http: httpx.Client,
    recorder: Server,
    link: str,
) -> None:
    if link != "relative":
        sandbox.faults.salesforce.link_base = sandbox.salesforce_instance_url
    before = sandbox.stats.count("salesforce GET /query/{locator}")
    result = run_sync(
        db,
        settings_for(sandbox, db),
        "salesforce",
        connector=salesforce_in_pages(sandbox, http),
        streams=("Contact",),
    )
    assert result.ok, result.error
    assert sandbox.stats.count("salesforce GET /query/{locator}") - before == 2  # pages 2 and 3
    total = contacts_in_sandbox(sandbox)
    assert stored(db, "SELECT count(*) FROM contacts") == total
    assert recorder.seen == []


def test_salesforce_refuses_a_next_records_url_on_another_origin(
    db: Database, sandbox: SandboxServer, http: httpx.Client, recorder: Server
) -> None:
    sandbox.faults.salesforce.link_base = recorder.origin_url()
    result = run_sync(
        db,
        settings_for(sandbox, db),
        "salesforce",
        connector=salesforce_in_pages(sandbox, http),
        streams=("Contact",),
    )
    assert recorder.seen == []  # not a single request, with or without the token
    assert result.status == "failed"
    assert_refused(result.error, recorder.origin_url(), sandbox.token)
    assert "a link in the provider's answer points outside the allowed origin" in str(result.error)
    # The run is recorded failed with that one line; the page read before the foreign link
    # was not committed, so the cursor did not move and the next run starts where it was.
    with db.connect() as conn:
        run = conn.execute(text("SELECT status, error FROM sync_runs")).one()
        assert tuple(run) == ("failed", result.error) and "\n" not in str(result.error)
        assert load_cursor(conn, ORG, "salesforce", "Contact") is None
    assert stored(db, "SELECT count(*) FROM contacts") == 0


# --- a redirect to another origin, for each provider ------------------------------------------


CONNECTORS: dict[str, tuple[str, Callable[[SandboxServer, httpx.Client], Any]]] = {
    "hubspot": (
        "companies",
        lambda sb, http: HubSpotConnector.connect(
            sb.hubspot_base_url, StaticToken("hubspot", SecretStr(sb.token)), http
        ),
    ),
    "salesforce": (
        "Account",
        lambda sb, http: SalesforceConnector.connect(
            sb.salesforce_instance_url, StaticToken("salesforce", SecretStr(sb.token)), http
        ),
    ),
    "slack": (
        "messages",
        lambda sb, http: SlackConnector.connect(
            sb.slack_base_url, StaticToken("slack", SecretStr(sb.token)), http
        ),
    ),
    "google_calendar": (
        "events",
        lambda sb, http: GoogleCalendarConnector.connect(
            sb.google_calendar_base_url, StaticToken("google_calendar", SecretStr(sb.token)), http
        ),
    ),
}


@pytest.mark.parametrize("provider", list(CONNECTORS))
def test_a_redirect_to_another_origin_is_refused(
    provider: str, sandbox: SandboxServer, http: httpx.Client, recorder: Server
) -> None:
    # A client that would follow redirects on its own must not do so either.
    http.follow_redirects = True
    sandbox.faults.provider(provider).redirect_to = recorder.origin_url()
    stream, connect = CONNECTORS[provider]
    connector = connect(sandbox, http)
    with pytest.raises(ForeignOriginError) as caught:
        for _page in connector.read(stream, None):
            pass
    assert recorder.seen == []
    assert caught.value.status == 307 and caught.value.provider == provider
    assert caught.value.refused == recorder.origin_url()
    assert_refused(caught.value, recorder.origin_url(), sandbox.token)
    assert "a 307 redirect points outside" in str(caught.value)


def test_a_sync_meeting_a_redirect_fails_with_one_clear_line(
    db: Database, sandbox: SandboxServer, recorder: Server
) -> None:
    sandbox.faults.hubspot.redirect_to = recorder.origin_url()
    result = run_sync(db, settings_for(sandbox, db), "hubspot")
    assert recorder.seen == []
    assert result.status == "failed" and "\n" not in str(result.error)
    assert_refused(result.error, recorder.origin_url(), sandbox.token)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sync_cursors")).scalar_one() == 0
        assert conn.execute(text("SELECT status FROM sync_runs")).scalar_one() == "failed"


def test_redirects_on_the_configured_origin_are_followed_a_few_times_only(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    # The sandbox redirecting to itself: each hop is checked and followed, then it gives up.
    sandbox.faults.google_calendar.redirect_to = origin_url(sandbox.google_calendar_base_url)
    before = sandbox.stats.total("google_calendar")
    connector = CONNECTORS["google_calendar"][1](sandbox, http)
    with pytest.raises(ConnectorError, match="more than 5 redirects") as caught:
        list(connector.read("events", None))
    assert not isinstance(caught.value, ForeignOriginError)
    assert sandbox.stats.total("google_calendar") - before == 6


def origin_url(url: str) -> str:
    return str(origin_of(url))


# --- Slack: the upload URL ------------------------------------------------------------------


def test_slack_uploads_only_to_its_api_origin_or_files_slack_com(
    sandbox: SandboxServer, http: httpx.Client, recorder: Server
) -> None:
    poster = SlackPoster.connect(
        sandbox.slack_base_url, StaticToken("slack", SecretStr(sandbox.token)), http
    )
    sales = next(ch.id for ch in sandbox.state.company.slack.channels if ch.name == "sales")
    assert poster.upload_file(sales, b"%PDF-1.7 a", "a.pdf").channel_id == sales  # same origin

    sandbox.faults.slack.link_base = recorder.origin_url()
    with pytest.raises(ForeignOriginError) as caught:
        poster.upload_file(sales, b"%PDF-1.7 secret report", "b.pdf")
    assert recorder.seen == []  # neither the bytes nor a token
    assert caught.value.refused == recorder.origin_url()
    assert "upload_url" in str(caught.value) and sandbox.token not in str(caught.value)
    # Slack's real upload host is allowed (https only), and nothing else on slack.com's domain.
    assert str(UPLOAD_ORIGINS[0]) == "https://files.slack.com"
    allowed = (poster.client.origin, *UPLOAD_ORIGINS)
    require_origin("slack", "POST", "https://files.slack.com/upload/v1/CwABAAAA", allowed)
    for foreign in ("http://files.slack.com/upload/v1/x", "https://files.slack.com.evil.example/x"):
        with pytest.raises(ForeignOriginError):
            require_origin("slack", "POST", foreign, allowed)


# --- the request URL itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "@{other}/crm/v3/objects/companies",  # userinfo: the host becomes the other one
        "{other_url}/crm/v3/objects/companies",  # an absolute URL elsewhere
        ":1/crm/v3/objects/companies",  # another port
        ".evil.example/x",  # a longer host name
    ],
)
def test_a_path_cannot_move_the_request_off_the_base_url_origin(
    path: str, recorder: Server
) -> None:
    # A base URL without a path (a Salesforce instance) is where gluing text on would move
    # the host; the joined URL's origin is what gets checked.
    other = recorder.origin_url().removeprefix("http://")
    sent: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(ok)) as http:
        client = ProviderClient(
            "salesforce", "https://sf.example", StaticToken("salesforce", SecretStr("t-1")), http
        )
        with pytest.raises(ForeignOriginError, match="refused to send credentials"):
            client.get(path.format(other=other, other_url=recorder.origin_url()))
    assert sent == [] and recorder.seen == []


# --- Nango: its secret key, its redirects, the instance URL it reports ----------------------------


def redirect_to(target: Server) -> Callable[[str], Answer]:
    return lambda path: (307, {"Location": f"{target.origin_url()}{path}"}, b"")


def test_the_nango_secret_key_never_follows_a_redirect_off_nango(
    servers: Callable[..., Server], recorder: Server, http: httpx.Client
) -> None:
    http.follow_redirects = True
    nango = servers(redirect_to(recorder))
    settings = load_settings(NANGO_BASE_URL=nango.origin_url(), NANGO_SECRET_KEY=NANGO_KEY)
    tokens = NangoToken(
        "hubspot",
        NangoConnection("conn-1", "hubspot"),
        base_url=nango.origin_url(),
        secret_key=SecretStr(NANGO_KEY),
        http=http,
    )
    with pytest.raises(ForeignOriginError) as fetching:
        tokens.token()
    with pytest.raises(ForeignOriginError) as connecting:
        create_connect_session(settings, ORG, "hubspot", EndUser("u1"), http=http)
    assert recorder.seen == []
    assert [s.authorization for s in nango.seen] == [f"Bearer {NANGO_KEY}"] * 2
    for caught in (fetching.value, connecting.value):
        assert caught.provider == "nango" and caught.status == 307
        assert_refused(caught, recorder.origin_url(), NANGO_KEY)


def outbound_address() -> str | None:
    """This host's non-loopback address (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_an_instance_url_from_nango_must_be_https(
    servers: Callable[..., Server], http: httpx.Client
) -> None:
    address = outbound_address()
    if address is None:
        pytest.skip("no non-loopback interface to serve a plain-http instance on")
    elsewhere = servers(host="0.0.0.0")
    instance = elsewhere.origin_url(address)

    def connection(_path: str) -> Answer:
        body = {
            "connection_config": {"instance_url": instance},
            "credentials": {"type": "OAUTH2", "access_token": "sf-token-from-nango"},
        }
        return 200, {}, json.dumps(body).encode()

    nango = servers(connection)
    tokens = NangoToken(
        "salesforce",
        NangoConnection("conn-sf", "salesforce"),
        base_url=nango.origin_url(),
        secret_key=SecretStr(NANGO_KEY),
        http=http,
    )
    with pytest.raises(ForeignOriginError) as caught:
        SalesforceConnector.connect("https://northwind.my.salesforce.com", tokens, http)
    assert elsewhere.seen == []
    assert caught.value.provider == "salesforce" and caught.value.refused == instance
    assert "outside the allowed origin https://<any host>" in str(caught.value)
    assert "sf-token-from-nango" not in str(caught.value)


def test_the_instance_url_nango_reports_is_the_connections_origin(
    db: Database, sandbox: SandboxServer, recorder: Server
) -> None:
    # REVTOPS_SALESFORCE_INSTANCE_URL points elsewhere; the org's Nango connection reports the
    # sandbox's instance, which is where its token goes.
    settings = settings_for(
        sandbox,
        db,
        REVTOPS_SALESFORCE_INSTANCE_URL=recorder.origin_url(),
        NANGO_BASE_URL=sandbox.nango_base_url,
        NANGO_SECRET_KEY=sandbox.nango_secret_key,
        NANGO_WEBHOOK_SECRET=sandbox.nango_webhook_secret,
    )
    body, headers = sandbox.nango_webhook("salesforce", tags={"organization_id": ORG})
    assert handle_webhook(db, settings, body, headers).status == "recorded"
    result = run_sync(db, settings, "salesforce", streams=("User",))
    assert result.ok, result.error
    assert recorder.seen == []
    assert stored(db, "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'") == 1
