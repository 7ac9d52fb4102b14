"""The data endpoints over HTTP: integrations, Nango connect and webhook, sync, chat history.

One server on PostgreSQL, connected to the providers' sandbox; two organizations side by side.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from revtops_kernel.agent.conversations import NewMessage, append_messages, create_conversation
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_postgres
from revtops_sandbox import SandboxServer

from .conftest import ADMIN_KEY, Server, launch, stop

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class World:
    server: Server
    sandbox: SandboxServer
    db: Database
    acme: str  # tokens
    globex: str

    def get(self, token: str, path: str) -> httpx.Response:
        return httpx.get(self.server.url + path, headers=_auth(token), timeout=30)

    def post(self, token: str, path: str, body: object = None) -> httpx.Response:
        return httpx.post(self.server.url + path, headers=_auth(token), json=body, timeout=30)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[World]:
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with (
        SandboxServer(scale=0.02, seed=5) as sandbox,
        scratch_postgres(admin_url, prefix="revtops_test_api") as url,
    ):
        db = Database(url)
        upgrade(db)
        server = launch(
            tmp_path_factory.mktemp("data-api"),
            REVTOPS_DATABASE_URL=url,
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
            NANGO_BASE_URL=sandbox.nango_base_url,
            NANGO_SECRET_KEY=sandbox.nango_secret_key,
            NANGO_WEBHOOK_SECRET=sandbox.nango_webhook_secret,
            REVTOPS_SLACK_BASE_URL=sandbox.slack_base_url,
        )
        try:
            for domain in ("acme.com", "globex.com"):
                made = httpx.post(
                    f"{server.url}/revtops/api/organizations",
                    headers={"X-Admin-Key": ADMIN_KEY},
                    json={"name": domain, "domain": domain},
                )
                assert made.status_code == 201, made.text
            yield World(
                server, sandbox, db, server.token("ana@acme.com"), server.token("gus@globex.com")
            )
        finally:
            stop(server)
            db.dispose()


def test_data_routes_need_a_session(world: World) -> None:
    for path in (
        "/revtops/api/integrations",
        "/revtops/api/sync/status",
        "/revtops/api/chat/conversations",
        f"/revtops/api/chat/conversations/{uuid.uuid4()}",
    ):
        assert httpx.get(world.server.url + path).status_code == 401, path
    assert httpx.post(world.server.url + "/revtops/api/sync", json={}).status_code == 401


def test_sync_now_runs_in_the_background_and_reports_its_counts(world: World) -> None:
    integrations = world.get(world.acme, "/revtops/api/integrations").json()["integrations"]
    hubspot = next(i for i in integrations if i["provider"] == "hubspot")
    assert hubspot["status"] == "connected" and hubspot["via"] == "token"
    assert hubspot["last_run"] is None

    started = world.post(world.acme, "/revtops/api/sync", {"provider": "hubspot"})
    assert started.status_code == 202 and started.json()["started"] == ["hubspot"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = world.get(world.acme, "/revtops/api/sync/status").json()["providers"]
        run = next(p for p in status if p["provider"] == "hubspot")
        if not run["syncing"] and run["last_run"] and run["last_run"]["status"] != "running":
            break
        time.sleep(0.5)
    assert run["last_run"]["status"] == "succeeded", run
    assert run["last_run"]["upserted"] > 0
    with world.db.connect() as conn:
        deals = conn.exec_driver_sql(
            "SELECT count(*) FROM deals WHERE organization_id = 'acme-com'"
        ).scalar_one()
    assert deals > 0
    # The other organization sees none of it.
    other = world.get(world.globex, "/revtops/api/sync/status").json()["providers"]
    assert all(p["last_run"] is None for p in other)
    bad = world.post(world.acme, "/revtops/api/sync", {"provider": "myspace"})
    assert bad.status_code == 400 and "unknown provider" in bad.json()["error"]["message"]


def test_nango_connect_webhook_and_disconnect(world: World) -> None:
    session = world.post(world.globex, "/revtops/api/connect/slack/session")
    assert session.status_code == 201, session.text
    token = session.json()["token"]
    body, headers = world.sandbox.nango_webhook("slack", session_token=token)
    webhook = f"{world.server.url}/revtops/api/webhooks/nango"
    delivered = httpx.post(webhook, content=body, headers=headers)
    assert delivered.status_code == 200 and delivered.json()["status"] == "recorded", delivered.text
    replay = httpx.post(webhook, content=body, headers=headers)
    assert replay.json()["status"] == "replayed"
    tampered = httpx.post(webhook, content=body + b" ", headers=headers)
    assert tampered.status_code == 401

    mine = world.get(world.globex, "/revtops/api/integrations").json()["integrations"]
    slack = next(i for i in mine if i["provider"] == "slack")
    assert slack["via"] == "nango" and slack["status"] == "connected"
    theirs = world.get(world.acme, "/revtops/api/integrations").json()["integrations"]
    assert next(i for i in theirs if i["provider"] == "slack")["status"] == "available"

    gone = httpx.delete(
        f"{world.server.url}/revtops/api/integrations/slack", headers=_auth(world.globex)
    )
    assert gone.status_code == 200
    again = httpx.delete(
        f"{world.server.url}/revtops/api/integrations/slack", headers=_auth(world.globex)
    )
    assert again.status_code == 404


def test_chat_history_is_per_user(world: World) -> None:
    ana = world.get(world.acme, "/revtops/api/me").json()
    gus = world.get(world.globex, "/revtops/api/me").json()
    ids = {}
    for who, org, user in (("ana", "acme-com", ana), ("gus", "globex-com", gus)):
        cid = create_conversation(
            world.db, org=org, user_id=uuid.UUID(user["user_id"]), title=f"{who}'s", model="m"
        )
        blocks = [{"type": "text", "text": f"pipeline of {who}?"}]
        append_messages(world.db, cid, [NewMessage("user", blocks)], org=org)
        ids[who] = cid
    listed = world.get(world.acme, "/revtops/api/chat/conversations").json()["conversations"]
    assert [c["title"] for c in listed] == ["ana's"]
    transcript = world.get(world.acme, f"/revtops/api/chat/conversations/{ids['ana']}").json()
    assert transcript["items"][0]["text"] == "pipeline of ana?"
    assert world.get(world.acme, f"/revtops/api/chat/conversations/{ids['gus']}").status_code == 404
    assert world.get(world.acme, "/revtops/api/chat/conversations/not-a-uuid").status_code == 404


def test_workflows_from_the_api(world: World) -> None:
    listed = world.get(world.acme, "/revtops/api/workflows").json()
    assert "sync.ipynb" in listed["notebooks"] and "app.ipynb" not in listed["notebooks"]
    body = {
        "name": "nightly-sync",
        "notebook": "sync.ipynb",
        "cron": "0 2 * * *",
        "timezone": "Europe/Paris",
        "parameters": {"org": "globex-com", "provider": "hubspot"},
    }
    made = world.post(world.acme, "/revtops/api/workflows", body)
    assert made.status_code == 201, made.text
    workflow = made.json()
    assert workflow["parameters"]["org"] == "acme-com"  # never another organization's
    assert workflow["notebook"] == "sync.ipynb"  # no server path
    again = world.post(world.acme, "/revtops/api/workflows", body)
    assert again.status_code == 409
    outside = world.post(
        world.acme, "/revtops/api/workflows", {**body, "name": "x", "notebook": "../../x.ipynb"}
    )
    assert outside.status_code == 400
    member = world.server.token("bo@acme.com")  # the second to join: a member, not an admin
    assert world.post(member, "/revtops/api/workflows", {**body, "name": "y"}).status_code == 403
    assert world.get(world.globex, "/revtops/api/workflows/nightly-sync").status_code == 404

    # With sign-in (many organizations), a run's kernel gets its organization's own Nango
    # tokens, never the deployment's static ones (scheduling.run_environment): connect HubSpot.
    session = world.post(world.acme, "/revtops/api/connect/hubspot/session")
    assert session.status_code == 201, session.text
    body, headers = world.sandbox.nango_webhook("hubspot", session_token=session.json()["token"])
    webhook = httpx.post(
        f"{world.server.url}/revtops/api/webhooks/nango", content=body, headers=headers
    )
    assert webhook.status_code == 200, webhook.text
    started = world.post(world.acme, "/revtops/api/workflows/nightly-sync/run", {})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = world.get(world.acme, "/revtops/api/workflows/nightly-sync").json()["runs"]
        if runs and runs[0]["status"] not in ("queued", "running"):
            break
        time.sleep(1.0)
    assert runs[0]["status"] == "succeeded", runs[0]
    assert runs[0]["parameters"]["org"] == "acme-com"
    gone = httpx.delete(
        f"{world.server.url}/revtops/api/workflows/nightly-sync", headers=_auth(world.acme)
    )
    assert gone.status_code == 200
