"""Kernels bound to their users: the attacks of security issue 12, performed for real.

One `revtops app` (Supabase sign-in, preheated pool of two, PostgreSQL store) with Ana of Acme
(A), Gus of Globex (B), a waitlisted visitor and a consumer mailbox. Every kernel id an attacker
uses is read from the victim's page HTML, as an attacker who saw it would; pooled kernels' ids
(which no page shows) are read from the server's log, the most an attacker could ever learn.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from jupyter_server.services.kernels.handlers import KernelHandler
from revtops_server.kernel_binding import LOCAL_OWNER, KernelBindings, KernelOwner
from revtops_server.kernel_routes import (
    KernelQuerySocketHandler,
    OwnKernelExecutionHandler,
    OwnKernelShutdownHandler,
    guard_kernel_routes,
)
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.static_file_handler import TemplateStaticFileHandler
from voila.tornado.execution_request_handler import ExecutionRequestHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from revtops_kernel import app_identity
from revtops_kernel.errors import KernelBindingError
from revtops_kernel.store.scratch import scratch_postgres
from tests.browser.app_server import (
    RunningApp,
    decode,
    kernel_message,
    running_app,
    visitor_header,
)
from tests.browser.app_server import widget_states as app_widget_states

KERNEL_ID = re.compile(r'"kernelId": "([0-9a-f-]{36})"')
ENVELOPE = re.compile(r"[A-Za-z0-9_-]{40,}={0,2}\.[0-9a-f]{64}")  # app_identity.sign's shape
HANG_BOUND_SECONDS = 30.0  # the reported hang was 75 s; a healthy hand-over takes a few


# ---------------------------------------------------------------- the registry on its own


def test_a_kernel_is_reachable_only_by_whom_it_was_handed_to() -> None:
    ana = KernelOwner("member-a", "acme-com")
    gus = KernelOwner("member-b", "globex-com")
    bindings = KernelBindings()
    bindings.bind("k1", ana, running={"k1", "k2"})
    assert bindings.allows("k1", ana)
    assert not bindings.allows("k1", gus)
    assert not bindings.allows("k1", KernelOwner("member-a", "globex-com"))  # same id, other org
    assert not bindings.allows("k2", ana)  # running but never handed over (the pool)
    assert not bindings.allows("k1", None) and not bindings.allows(None, ana)
    assert not bindings.allows("k1", LOCAL_OWNER)
    with pytest.raises(KernelBindingError, match="k1 is already bound"):
        bindings.bind("k1", gus, running={"k1"})
    bindings.bind("k3", gus, running={"k3"})  # k1 stopped running: its binding goes
    assert bindings.owner_of("k1") is None and len(bindings) == 1


def test_the_kernel_proof_depends_on_the_kernel_and_the_secret() -> None:
    proof = app_identity.kernel_proof("kernel-a", "secret-1")
    assert proof == app_identity.kernel_proof("kernel-a", "secret-1")
    assert proof != app_identity.kernel_proof("kernel-b", "secret-1")
    assert proof != app_identity.kernel_proof("kernel-a", "secret-2")


KID = r"(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)"


def test_voila_kernel_routes_are_swapped_for_owner_only_ones() -> None:
    routes = [
        (f"/api/kernels/{KID}", KernelHandler),
        (f"/api/kernels/{KID}/channels", VoilaKernelWebsocketHandler),
        ("/voila/api/shutdown/(.*)", VoilaShutdownKernelHandler),
        (f"/voila/query/{KID}", RequestInfoSocketHandler),
        (f"/voila/execution/{KID}", ExecutionRequestHandler),
        ("/voila/templates/(.*)", TemplateStaticFileHandler, {"path": "x"}),
    ]
    guarded = guard_kernel_routes(routes)
    assert [route[1] for route in guarded] == [
        KernelHandler,  # asks the authorizer itself (@authorized)
        VoilaKernelWebsocketHandler,  # likewise (pre_get)
        OwnKernelShutdownHandler,
        KernelQuerySocketHandler,
        OwnKernelExecutionHandler,
        TemplateStaticFileHandler,
    ]
    assert guarded[-1][2] == {"path": "x"}  # options kept


def test_an_unknown_kernel_route_stops_the_app() -> None:
    with pytest.raises(RuntimeError, match=r"does not guard: /api/kernels/.*/interrupt"):
        guard_kernel_routes([(f"/api/kernels/{KID}/interrupt", web.RequestHandler)])


# ---------------------------------------------------------------- the app, attacked


@dataclass
class World:
    app: RunningApp

    @property
    def url(self) -> str:
        return self.app.url

    def token(self, email: str) -> str:
        return self.app.token(email, email.split("@")[0].title())

    def page(self, email: str) -> httpx.Response:
        reply = httpx.get(self.url + "/", headers=self.bearer(email), timeout=120)
        return reply

    def bearer(self, email: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(email)}"} if email else {}

    def kernel_of(self, email: str) -> tuple[str, httpx.Response]:
        page = self.page(email)
        assert page.status_code == 200, page.text[-2000:]
        found = KERNEL_ID.search(page.text)
        assert found, "the page names its kernel"
        return found.group(1), page

    def rest(self, method: str, path: str, email: str | None) -> httpx.Response:
        return httpx.request(method, self.url + path, headers=self.bearer(email), timeout=30)

    def alive(self, kernel_id: str, owner: str) -> bool:
        return self.rest("GET", f"/api/kernels/{kernel_id}", owner).status_code == 200


ALICE, GUS, WAITING, PERSONAL = (
    "ana@acme.com",
    "gus@globex.com",
    "lee@unknown-startup.io",
    "pat@gmail.com",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[World]:
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with (
        scratch_postgres(admin_url, prefix="revtops_test_kernels") as database_url,
        running_app(
            tmp_path_factory.mktemp("kernel-binding"), REVTOPS_DATABASE_URL=database_url
        ) as app,
    ):
        app.create_org("Acme", "acme.com")
        app.create_org("Globex", "globex.com")
        yield World(app)


def ws_url(world: World, path: str) -> str:
    return world.url.replace("http", "ws", 1) + path


async def connect(
    world: World, path: str, email: str | None = None, headers: dict[str, str] | None = None
) -> WebSocketClientConnection:
    request = HTTPRequest(
        ws_url(world, path),
        headers={**world.bearer(email), **(headers or {})},
        connect_timeout=30,
    )
    return await websocket_connect(request)


def refused(world: World, path: str, email: str | None, **headers: str) -> int:
    """Open a websocket that must be refused; the handshake's status (or 0 if it was closed)."""

    async def attempt() -> int:
        try:
            conn = await connect(world, path, email, headers)
        except HTTPClientError as exc:
            return exc.code
        # Upgraded after all: it must close without a single message.
        message = await asyncio.wait_for(conn.read_message(), timeout=5)
        assert message is None, f"a refused socket delivered {str(message)[:200]}"
        return 0

    return asyncio.run(attempt())


def widget_states(
    world: World, kernel_id: str, email: str | None, headers: dict[str, str] | None = None
) -> str:
    """What the page's own widget manager asks for: every widget's state, as one string."""
    states = app_widget_states(world.url, kernel_id, {**world.bearer(email), **(headers or {})})
    return json.dumps(states)


def kernel_info(world: World, kernel_id: str, email: str | None) -> str:
    async def ask() -> str:
        conn = await connect(world, f"/api/kernels/{kernel_id}/channels", email)
        await conn.write_message(kernel_message("kernel_info_request", {}))
        try:
            while True:
                raw = await asyncio.wait_for(conn.read_message(), timeout=30)
                assert raw is not None
                msg_type = str(decode(raw)["header"]["msg_type"])
                if msg_type == "kernel_info_reply":
                    return msg_type
        finally:
            conn.close()

    return asyncio.run(ask())


@pytest.mark.slow
@pytest.mark.postgres
def test_another_users_kernel_is_refused_over_rest(world: World) -> None:
    victim, _ = world.kernel_of(ALICE)
    assert world.alive(victim, ALICE)  # the owner reaches it: the check is not a blanket no

    assert world.rest("GET", f"/api/kernels/{victim}", GUS).status_code in (403, 404)
    assert world.rest("DELETE", f"/api/kernels/{victim}", GUS).status_code in (403, 404)
    for action in ("interrupt", "restart"):
        reply = world.rest("POST", f"/api/kernels/{victim}/{action}", GUS)
        assert not reply.is_success, (action, reply.status_code)
    for email in (WAITING, PERSONAL, None):
        assert world.rest("GET", f"/api/kernels/{victim}", email).status_code in (302, 403, 404)
        assert world.rest("DELETE", f"/api/kernels/{victim}", email).status_code in (403, 404)
    listing = world.rest("GET", "/api/kernels", GUS)
    assert victim not in listing.text
    assert world.alive(victim, ALICE)


@pytest.mark.slow
@pytest.mark.postgres
def test_another_users_kernel_channels_are_refused(world: World) -> None:
    victim, page = world.kernel_of(ALICE)
    channels = f"/api/kernels/{victim}/channels"
    for email in (GUS, WAITING, PERSONAL, None):
        assert refused(world, channels, email) == 403, email
    # The owner's own channel answers, and carries the widgets the attacker wanted.
    assert kernel_info(world, victim, ALICE) == "kernel_info_reply"
    states = widget_states(world, victim, ALICE)
    assert ALICE in states
    # Nor does the identity envelope reach the browser, in the page or in the widgets.
    for seen in (page.text, states):
        assert not ENVELOPE.search(seen)
        assert app_identity.HEADER_ENV not in seen and app_identity.HEADER not in seen


@pytest.mark.slow
@pytest.mark.postgres
def test_only_the_owner_can_shut_a_kernel_down(world: World) -> None:
    victim, _ = world.kernel_of(ALICE)
    for email in (WAITING, PERSONAL, GUS):
        reply = world.rest("POST", f"/voila/api/shutdown/{victim}", email)
        assert reply.status_code == 403, (email, reply.status_code)
    assert world.rest("POST", f"/voila/api/shutdown/{victim}", None).status_code in (302, 403)
    assert world.alive(victim, ALICE)
    # The page's own shutdown-on-leave still works for its owner.
    assert world.rest("POST", f"/voila/api/shutdown/{victim}", ALICE).status_code == 204
    assert world.rest("GET", f"/api/kernels/{victim}", ALICE).status_code in (403, 404)


def pooled_kernels(app: RunningApp, handed_over: set[str], want: int) -> set[str]:
    """Ids of pooled kernels already waiting for a visitor on their query socket (the state
    in which a stranger's connect/disconnect used to break the hand-over), from the log."""
    deadline = time.monotonic() + 180
    while True:
        log = app.log.read_text(errors="replace")
        waiting = set(re.findall(r"Kernel ([0-9a-f-]{36}) is waiting for its visitor", log))
        stopped = set(re.findall(r"Kernel shutdown: ([0-9a-f-]{36})", log))
        given = set(re.findall(r"Using pre-heated kernel: ([0-9a-f-]{36})", log))
        pooled = waiting - stopped - given - handed_over
        if len(pooled) >= want:
            return pooled
        assert time.monotonic() < deadline, f"the pool did not refill:\n{log[-3000:]}"
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_query_socket_answers_only_its_kernel_and_the_pool_survives(world: World) -> None:
    pooled = pooled_kernels(world.app, set(), want=2)
    for kernel_id in pooled:
        query = f"/voila/query/{kernel_id}"
        # Anonymous, signed in (even the owner-to-be), or with a proof under the wrong secret.
        assert refused(world, query, None) == 403
        assert refused(world, query, GUS) == 403
        forged = hmac.new(b"guess", f"voila-query:{kernel_id}".encode(), hashlib.sha256)
        assert refused(world, query, None, **{"X-Revtops-Kernel-Proof": forged.hexdigest()}) == 403

    # The reported break: connect and disconnect on a pooled kernel's socket, then a visitor
    # gets that kernel. Each pooled kernel now still gets its visitor's request promptly.
    served: set[str] = set()
    for email, org in ((GUS, "globex-com"), (ALICE, "acme-com")):
        started = time.monotonic()
        kernel_id, page = world.kernel_of(email)
        elapsed = time.monotonic() - started
        assert elapsed < HANG_BOUND_SECONDS, f"{email}'s page took {elapsed:.1f} s"
        assert page.status_code == 200
        header = visitor_header(app_widget_states(world.url, kernel_id, world.bearer(email)))
        assert email in header and f'<span class="rt-org">{org}</span>' in header, header
        assert kernel_info(world, kernel_id, email) == "kernel_info_reply"
        served.add(kernel_id)
    assert served == pooled, "the pages were served by the kernels attacked above"
    assert "Using pre-heated kernel" in world.app.log.read_text()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_kernel_given_to_one_page_is_not_given_to_another(world: World) -> None:
    first, _ = world.kernel_of(GUS)
    second, _ = world.kernel_of(GUS)
    other, _ = world.kernel_of(ALICE)
    assert len({first, second, other}) == 3
    assert refused(world, f"/api/kernels/{first}/channels", ALICE) == 403
    assert kernel_info(world, first, GUS) == "kernel_info_reply"


@pytest.mark.slow
def test_local_mode_the_token_holder_owns_the_kernels_handed_to_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Without Supabase, Jupyter's token admits the machine's owner, who reaches the kernel
    their page got, and still no pooled kernel and nothing without the token."""
    token = uuid.uuid4().hex
    auth = {"Authorization": f"token {token}"}
    with running_app(
        tmp_path_factory.mktemp("kernel-binding-local"), supabase=False, JUPYTER_TOKEN=token
    ) as app:
        world = World(app)
        page = httpx.get(app.url + "/", headers=auth, timeout=120)
        assert page.status_code == 200, page.text[-2000:]
        found = KERNEL_ID.search(page.text)
        assert found
        kernel_id = found.group(1)
        header = visitor_header(app_widget_states(app.url, kernel_id, auth))
        assert "Local analyst" in header and '<span class="rt-org">' in header, header
        assert httpx.get(f"{app.url}/api/kernels/{kernel_id}", headers=auth).status_code == 200
        assert httpx.get(f"{app.url}/api/kernels/{kernel_id}").status_code in (302, 403)

        async def owner_channel() -> str:
            request = HTTPRequest(ws_url(world, f"/api/kernels/{kernel_id}/channels"), headers=auth)
            conn = await websocket_connect(request)
            await conn.write_message(kernel_message("kernel_info_request", {}))
            try:
                while True:
                    raw = await asyncio.wait_for(conn.read_message(), timeout=30)
                    assert raw is not None
                    if decode(raw)["header"]["msg_type"] == "kernel_info_reply":
                        return "kernel_info_reply"
            finally:
                conn.close()

        assert asyncio.run(owner_channel()) == "kernel_info_reply"
        assert refused(world, f"/api/kernels/{kernel_id}/channels", None) == 403
        pooled = next(iter(pooled_kernels(app, {kernel_id}, want=1)))
        assert httpx.get(f"{app.url}/api/kernels/{pooled}", headers=auth).status_code == 403
        assert refused(world, f"/voila/query/{pooled}", None, **auth) == 403
