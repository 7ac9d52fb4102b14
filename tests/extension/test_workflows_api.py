"""The workflow endpoints refuse what the security review sent, over HTTP on a real server.

Issue 12: a parameter *name* made of a newline and Python code was accepted (201, then 202 for
the run) and papermill wrote it into the notebook as code. Here the same requests get 400 naming
the parameter, the code never runs (its marker file never appears), and the other holes the
review listed (six-field crons, ``../../x`` names, unlimited workflows and runs) are closed.

One server on a scratch PostgreSQL database with small caps; runs in flight are written to the
store directly so that the caps are reached deterministically, without racing real runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from revtops_server.routes import NAME_PATTERN
from sqlalchemy import func, insert, select

from revtops_kernel.scheduling import get_workflow
from revtops_kernel.scheduling.workflows import check_name, runs_table
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_postgres

from .conftest import ADMIN_KEY, Server, launch, stop

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ORG = "acme-com"
MAX_WORKFLOWS = 4
MAX_MANUAL_RUNS_PER_HOUR = 2


@dataclass
class Api:
    server: Server
    db: Database
    admin: str  # the first to join acme.com: its admin
    marker: Path

    def post(self, path: str, body: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.post(self.server.url + path, headers=headers, json=body, timeout=30)

    def patch(self, path: str, body: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.patch(self.server.url + path, headers=headers, json=body, timeout=30)

    def delete(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.delete(self.server.url + path, headers=headers, timeout=30)

    def runs_of(self, name: str) -> int:
        workflow = get_workflow(self.db, name, org=ORG)
        with self.db.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(runs_table)
                .where(runs_table.c.workflow_id == workflow.id)
            ).scalar_one()
        return int(count)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Api]:
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    home = tmp_path_factory.mktemp("workflows-api")
    with scratch_postgres(admin_url, prefix="revtops_test_workflows") as url:
        db = Database(url)
        upgrade(db)
        server = launch(
            home,
            REVTOPS_DATABASE_URL=url,
            REVTOPS_WORKFLOW_MAX_PER_ORG=str(MAX_WORKFLOWS),
            REVTOPS_WORKFLOW_MAX_ACTIVE_RUNS_PER_ORG="1",
            REVTOPS_WORKFLOW_MAX_MANUAL_RUNS_PER_HOUR=str(MAX_MANUAL_RUNS_PER_HOUR),
        )
        try:
            made = httpx.post(
                f"{server.url}/revtops/api/organizations",
                headers={"X-Admin-Key": ADMIN_KEY},
                json={"name": "acme.com", "domain": "acme.com"},
            )
            assert made.status_code == 201, made.text
            yield Api(server, db, server.token("ana@acme.com"), home / "pwned.txt")
        finally:
            stop(server)
            db.dispose()


def _attack(marker: Path) -> str:
    """The parameter name of the report: a newline, code, and a name for papermill's ``=``."""
    return f"\nimport pathlib; pathlib.Path({str(marker)!r}).write_text('pwned')\nx"


def _workflow(name: str, **fields: object) -> dict[str, object]:
    return {"name": name, "notebook": "sync.ipynb", "cron": "0 2 * * *", **fields}


def _message(reply: httpx.Response) -> str:
    return str(reply.json()["error"]["message"])


def _store_run(db: Database, name: str, *, status: str, trigger: str, ago: timedelta) -> None:
    """A run as the scheduler or an earlier request left it (no notebook executes)."""
    workflow = get_workflow(db, name, org=ORG)
    with db.begin() as conn:
        conn.execute(
            insert(runs_table).values(
                id=uuid.uuid4(),
                workflow_id=workflow.id,
                organization_id=ORG,
                scheduled_for=datetime.now(UTC) - ago,
                status=status,
                trigger=trigger,
                parameters={"org": ORG},
                attempt=1,
                heartbeat_at=datetime.now(UTC),
            )
        )


def test_the_reported_parameter_name_is_refused_on_create_and_on_run(api: Api) -> None:
    attack = _attack(api.marker)
    created = api.post(
        "/revtops/api/workflows", _workflow("sync", parameters={"provider": "all", attack: 1})
    )
    assert created.status_code == 400, created.text
    assert _message(created) == (
        f"parameter {attack!r} is not declared by sync.ipynb (declared: org, provider, "
        "full_refresh)"
    )
    listed = httpx.get(
        api.server.url + "/revtops/api/workflows",
        headers={"Authorization": f"Bearer {api.admin}"},
    ).json()
    assert listed["workflows"] == []

    made = api.post("/revtops/api/workflows", _workflow("sync", parameters={"provider": "all"}))
    assert made.status_code == 201, made.text
    run = api.post("/revtops/api/workflows/sync/run", {"parameters": {attack: 1}})
    assert run.status_code == 400, run.text
    assert _message(run).startswith(f"parameter {attack!r} is not declared by sync.ipynb")
    forged = api.post("/revtops/api/workflows/sync/run", {"parameters": {"revtops_run_id": "x"}})
    assert forged.status_code == 400 and "set by the runner" in _message(forged)
    assert api.runs_of("sync") == 0  # nothing was queued, so nothing can execute later
    assert not api.marker.exists()
    assert api.delete("/revtops/api/workflows/sync").status_code == 200


def test_a_workflow_is_changed_through_the_same_checks(api: Api) -> None:
    made = api.post("/revtops/api/workflows", _workflow("edited", parameters={"provider": "all"}))
    assert made.status_code == 201, made.text
    path = "/revtops/api/workflows/edited"
    changed = api.patch(path, {"parameters": {"full_refresh": True}, "cron": "30 3 * * 1"})
    assert changed.status_code == 200, changed.text
    stored = get_workflow(api.db, "edited", org=ORG)
    assert stored.parameters == {"provider": "all", "full_refresh": True, "org": ORG}
    assert stored.cron == "30 3 * * 1"
    # null brings back the notebook's default; the organization cannot be pointed elsewhere
    reset = api.patch(path, {"parameters": {"full_refresh": None, "org": "globex-com"}})
    assert reset.status_code == 200, reset.text
    assert get_workflow(api.db, "edited", org=ORG).parameters == {"provider": "all", "org": ORG}
    attack = _attack(api.marker)
    refused = [
        api.patch(path, {"parameters": {attack: 1}}),
        api.patch(path, {"parameters": {"full_refresh": "yes"}}),
        api.patch(path, {"cron": "* * * * * *"}),
        api.patch(path, {"notebook": "../../etc/passwd"}),
        api.patch(path, {"enabled": "no"}),
        api.patch(path, {}),
    ]
    assert [reply.status_code for reply in refused] == [400] * 6
    assert _message(refused[0]).startswith(f"parameter {attack!r} is not declared by sync.ipynb")
    assert "must be true or false" in _message(refused[1])
    assert "cannot change notebook" in _message(refused[3])
    assert get_workflow(api.db, "edited", org=ORG).parameters == {"provider": "all", "org": ORG}
    assert not api.marker.exists()
    assert api.patch("/revtops/api/workflows/absent", {"enabled": False}).status_code == 404
    assert api.delete(path).status_code == 200


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"full_refresh": "yes"}, "parameter 'full_refresh' must be true or false"),
        ({"provider": ["hubspot"]}, "lists and objects are refused"),
        ({"provider": "hub\x00spot"}, "control character '\\x00'"),
        ({"provider": "x" * 1001}, "at most 1,000 are allowed"),
    ],
)
def test_values_of_the_wrong_kind_are_refused_naming_the_parameter(
    api: Api, parameters: dict[str, object], message: str
) -> None:
    created = api.post("/revtops/api/workflows", _workflow("typed", parameters=parameters))
    assert created.status_code == 400, created.text
    assert message in _message(created)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * * *", "exactly 5 fields"),
        ("@reboot", "unsupported cron macro"),
        ("*/1 * * * *", "runs 1 minute apart"),
    ],
)
def test_schedules_a_user_may_not_set_are_refused(api: Api, cron: str, message: str) -> None:
    created = api.post("/revtops/api/workflows", _workflow("fast", cron=cron))
    assert created.status_code == 400, created.text
    assert message in _message(created)


@pytest.mark.parametrize("name", ["../../x", "Nightly", "a.b", "x" * 64, "a b"])
def test_names_no_route_can_address_are_refused(api: Api, name: str) -> None:
    created = api.post("/revtops/api/workflows", _workflow(name))
    assert created.status_code == 400, created.text
    assert "invalid workflow name" in _message(created)


def test_the_route_pattern_is_exactly_the_accepted_names() -> None:
    for name in ("nightly-sync", "a", "x_1", "x" * 63, "../../x", "A", "a.b", "x" * 64, "-a"):
        routable = re.fullmatch(NAME_PATTERN, name) is not None
        try:
            check_name(name)
            accepted = True
        except Exception:
            accepted = False
        assert routable == accepted, name


def test_a_taken_name_is_a_conflict_by_type(api: Api) -> None:
    assert api.post("/revtops/api/workflows", _workflow("twice")).status_code == 201
    again = api.post("/revtops/api/workflows", _workflow("twice"))
    assert again.status_code == 409 and "already exists" in _message(again)
    assert api.delete("/revtops/api/workflows/twice").status_code == 200


def test_an_organization_has_at_most_so_many_workflows(api: Api) -> None:
    names = [f"flow-{i}" for i in range(MAX_WORKFLOWS)]
    for name in names:
        made = api.post("/revtops/api/workflows", _workflow(name))
        assert made.status_code == 201, made.text
    full = api.post("/revtops/api/workflows", _workflow("one-too-many"))
    assert full.status_code == 429, full.text
    assert "Retry-After" not in full.headers  # only removing a workflow makes room
    assert f"the most an organization may have ({MAX_WORKFLOWS}" in _message(full)
    assert "REVTOPS_WORKFLOW_MAX_PER_ORG" in _message(full)
    assert api.delete(f"/revtops/api/workflows/{names[0]}").status_code == 200
    assert api.post("/revtops/api/workflows", _workflow("one-too-many")).status_code == 201
    for name in [*names[1:], "one-too-many"]:
        assert api.delete(f"/revtops/api/workflows/{name}").status_code == 200


def test_runs_are_capped_per_organization_and_per_workflow_hour(api: Api) -> None:
    for name in ("first", "second"):
        assert api.post("/revtops/api/workflows", _workflow(name)).status_code == 201
    # The organization already has one run in flight (its cap here).
    _store_run(api.db, "first", status="running", trigger="schedule", ago=timedelta(0))
    busy = api.post("/revtops/api/workflows/second/run", {})
    assert busy.status_code == 429, busy.text
    assert "has 1 run queued or running, the most" in _message(busy)
    assert "Retry-After" not in busy.headers
    same = api.post("/revtops/api/workflows/first/run", {})
    assert same.status_code == 409 and "already has a run queued or running" in _message(same)
    assert api.runs_of("second") == 0

    # Once it finished: "second" was started by hand twice in the last hour (its cap here).
    with api.db.begin() as conn:
        conn.execute(runs_table.update().values(status="succeeded"))
    for minutes in (50, 10):
        _store_run(
            api.db, "second", status="succeeded", trigger="manual", ago=timedelta(minutes=minutes)
        )
    hourly = api.post("/revtops/api/workflows/second/run", {})
    assert hourly.status_code == 429, hourly.text
    assert "started by hand 2 times in the last hour" in _message(hourly)
    # The older run leaves the hour in 10 minutes.
    assert 590 <= int(hourly.headers["Retry-After"]) <= 600
    assert api.runs_of("second") == 2


def test_with_sign_in_on_duckdb_workflows_are_refused_as_unscoped(server: Server) -> None:
    """Several organizations on one embedded DuckDB file: a run could not be held to its
    organization (no roles, no row-level security), so the API refuses to create or run one."""
    made = httpx.post(
        f"{server.url}/revtops/api/organizations",
        headers={"X-Admin-Key": ADMIN_KEY},
        json={"name": "initech.com", "domain": "initech.com"},
    )
    assert made.status_code == 201, made.text
    admin = {"Authorization": f"Bearer {server.token('peter@initech.com')}"}
    listed = httpx.get(f"{server.url}/revtops/api/workflows", headers=admin, timeout=30)
    assert listed.status_code == 200 and listed.json()["workflows"] == []
    for path in ("/revtops/api/workflows", "/revtops/api/workflows/nightly/run"):
        reply = httpx.post(server.url + path, headers=admin, json=_workflow("nightly"), timeout=30)
        assert reply.status_code == 400, reply.text
        assert "need PostgreSQL" in _message(reply) and "REVTOPS_DATABASE_URL" in _message(reply)
