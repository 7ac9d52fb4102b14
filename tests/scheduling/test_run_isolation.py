"""PostgreSQL: a workflow run holds its organization's credentials and nothing more.

A hostile notebook (``notebooks/hostile_run.ipynb``), run as a workflow of one organization
through the real runner, tries to read, change and add another organization's rows, to change
its database identity, to run DDL and to read the deployment's secrets, all with what its
environment gives it. Every cross-organization attempt must fail or see nothing; the same
notebook can read and write its own organization's rows. Then ``notebooks/sync.ipynb`` runs a
real sync (a Nango connection of the sandbox) under the organization's writer role.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from scheduling_helpers import REPO
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from revtops_kernel.errors import QueryRefusedError
from revtops_kernel.scheduling import add_workflow, run_now
from revtops_kernel.scheduling.run_environment import (
    deployment_secret_variables,
    run_environment,
)
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database, bookkeeping
from revtops_kernel.store.org_access import org_writer_url
from revtops_kernel.store.org_roles import drop_org_role, role_name, writer_role_name
from revtops_kernel.store.query import read_sql
from revtops_kernel.store.schema import SyncRun, metadata
from revtops_kernel.store.upsert import upsert
from revtops_sandbox import SandboxServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HOSTILE = Path(__file__).parent / "notebooks" / "hostile_run.ipynb"
SYNC_NOTEBOOK = REPO / "notebooks" / "sync.ipynb"
DIGEST_NOTEBOOK = REPO / "notebooks" / "pipeline_digest.ipynb"
T0 = datetime(2026, 1, 5, tzinfo=UTC)
MARKER = "VICTIM-ONLY"
# The deployment's secrets, set in the scheduler's environment; none may reach the kernel.
SECRETS = {
    "NANGO_SECRET_KEY": "nango-secret-do-not-leak-0123456789",
    "NANGO_WEBHOOK_SECRET": "nango-webhook-do-not-leak-0123456789",
    "SUPABASE_JWT_SECRET": "jwt-secret-do-not-leak-0123456789",
    "SUPABASE_ANON_KEY": "anon-key-do-not-leak-0123456789",
    "REVTOPS_ADMIN_KEY": "admin-key-do-not-leak-0123456789",
    "REVTOPS_KERNEL_IDENTITY_SECRET": "identity-do-not-leak-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-api03-do-not-leak-0123456789",
    "REVTOPS_HUBSPOT_TOKEN": "static-hubspot-token-do-not-leak-0123",  # multi-org: not theirs
    "PGPASSWORD": "libpq-password-do-not-leak-0123456789",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-do-not-leak-0123456789",
}
MASTER_SECRET = "master-secret-do-not-leak-0123456789"
BROKER_URL = "redis://:broker-password-do-not-leak@127.0.0.1:6379/13"
# A variable named harmlessly that carries a copy of a secret is removed for its value.
COPY_OF_A_SECRET = ("REVTOPS_TEST_COPY", f"prefix-{SECRETS['NANGO_SECRET_KEY']}-suffix")
INNOCENT = ("REVTOPS_TEST_INNOCENT", "kept-as-is")


@pytest.fixture
def two_orgs(pg_store: Database) -> Iterator[tuple[str, str]]:
    """Two organizations with a deal, an account, a cursor, a user and an integration each;
    their roles are dropped afterwards (roles are cluster-wide: the ids are unique)."""
    suffix = uuid.uuid4().hex[:8]
    own, victim = f"iso-own-{suffix}", f"iso-victim-{suffix}"
    with pg_store.begin() as conn:
        for org in (own, victim):
            label = MARKER if org == victim else "own"
            bookkeeping.ensure_organization(conn, org, name=label)
            common = {"organization_id": org, "source_system": "hubspot", "updated_at": T0}
            upsert(conn, "deals", [{**common, "source_id": "own", "name": label}])
            upsert(conn, "accounts", [{**common, "source_id": "a1", "name": label}])
            bookkeeping.save_cursor(conn, org, "hubspot", "deals", f"cursor-{label}")
            bookkeeping.record_sync(conn, org, "hubspot", succeeded_at=T0, error=None)
            conn.execute(
                metadata.tables["users"]
                .insert()
                .values(
                    id=uuid.uuid4(), organization_id=org, email=f"{label}@x.example", created_at=T0
                )
            )
    yield own, victim
    with pg_store.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            column = "id" if table.name == "organizations" else "organization_id"
            if column in table.c:
                conn.execute(table.delete().where(table.c[column].in_([own, victim])))
        for org in (own, victim):
            drop_org_role(conn, org)


def scheduler_environment(db: Database) -> dict[str, str]:
    """Multi-organization settings (Supabase) with every kind of secret in them."""
    readonly = make_url(db.url).set(password=MASTER_SECRET)
    return {
        **SECRETS,
        "SUPABASE_URL": "https://project.supabase.example",
        "REVTOPS_READONLY_DATABASE_URL": readonly.render_as_string(hide_password=False),
        "REVTOPS_BROKER_URL": BROKER_URL,
        COPY_OF_A_SECRET[0]: COPY_OF_A_SECRET[1],
        INNOCENT[0]: INNOCENT[1],
    }


def rows_of(db: Database, org: str) -> dict[str, list[tuple[Any, ...]]]:
    with db.connect() as conn:
        return {
            "deals": conn.execute(
                text("SELECT source_id, name FROM deals WHERE organization_id = :o ORDER BY 1"),
                {"o": org},
            ).all(),
            "accounts": conn.execute(
                text("SELECT source_id, name FROM accounts WHERE organization_id = :o ORDER BY 1"),
                {"o": org},
            ).all(),
            "cursors": conn.execute(
                text("SELECT stream, cursor FROM sync_cursors WHERE organization_id = :o"),
                {"o": org},
            ).all(),
            "integrations": conn.execute(
                text(
                    "SELECT provider, nango_connection_id FROM integrations "
                    "WHERE organization_id = :o"
                ),
                {"o": org},
            ).all(),
        }


def test_a_hostile_run_reaches_nothing_beyond_its_organization(
    pg_store: Database,
    env_for: Callable[..., Settings],
    two_orgs: tuple[str, str],
    tmp_path: Path,
) -> None:
    own, victim = two_orgs
    settings = env_for(pg_store, **scheduler_environment(pg_store))
    add_workflow(pg_store, "probe", HOSTILE, "0 9 * * *", org=own)
    add_workflow(pg_store, "victims-report", HOSTILE, "0 9 * * *", org=victim)
    victim_before = rows_of(pg_store, victim)
    outcomes_path = tmp_path / "outcomes.json"
    # Every secret variable but the store URL, which is the writer's (checked below).
    secret_names = sorted(
        (deployment_secret_variables(settings) | set(SECRETS)) - {"REVTOPS_DATABASE_URL"}
    )

    run = run_now(
        pg_store,
        settings,
        "probe",
        org=own,
        parameters={
            "outcomes_path": str(outcomes_path),
            "victim": victim,
            "secret_names": ",".join(secret_names),
        },
    )
    assert run.status == "succeeded", run.error
    outcomes: dict[str, dict[str, Any]] = json.loads(outcomes_path.read_text())

    # It is its organization's writer, whatever it tries.
    assert outcomes["whoami"]["rows"] == [[writer_role_name(own), writer_role_name(own)]]

    def saw_nothing(name: str) -> None:
        outcome = outcomes[name]
        assert not outcome["ok"] or outcome["rows"] == [] or outcome["rows"] == [["0"]], (
            name,
            outcome,
        )

    def refused(name: str, because: str = "permission denied") -> None:
        outcome = outcomes[name]
        assert not outcome["ok"], (name, outcome)
        assert because in outcome["error"], (name, outcome)

    def only_own(name: str) -> None:
        outcome = outcomes[name]
        assert outcome["ok"] and outcome["rows"] == [[own]], (name, outcome)

    # Reads: the other organization's rows are invisible; what is not a workflow's is refused.
    saw_nothing("read victim deals")
    saw_nothing("read victim cursors")
    for name in (
        "read every deal org",
        "read every workflow org",
        "read every run org",
        "read every integration org",
        "read every organization",
        "read writer mappings",
    ):
        only_own(name)
    saw_nothing("read reader mappings")  # a writer is no reader of any organization
    for name in (
        "read users",
        "read waitlist",
        "read conversations",
        "read messages",
        "read webhook events",
    ):
        refused(name)

    # Writes on the other organization's rows change nothing or are refused.
    for name in ("update victim deals", "delete victim deals", "delete victim cursors"):
        assert outcomes[name]["ok"] and outcomes[name]["rowcount"] == 0, outcomes[name]
    for name in (
        "insert a deal claiming the victim",
        "move own deals to the victim",
        "insert a cursor claiming the victim",
        "insert a victim organization",
    ):
        refused(name, "row-level security")
    for name in ("repoint own nango connection", "insert a user", "delete schema versions"):
        refused(name)
    refused("store upsert victim", "row-level security")

    # No other identity, no DDL, no server files, no other sessions' queries.
    for name in ("set role", "set session authorization", "set_config role"):
        refused(name)
    saw_nothing("other sessions")
    assert outcomes["set_config then read the victim"]["rows"][0][1] == "0"
    refused("create a table")
    refused("alter a table", "must be owner")
    refused("drop a policy", "must be owner")
    refused("create a role", "must be superuser")
    refused("read a server file")
    refused("row_security off", "row-level security")

    # Its own organization's rows: read, written, upserted through the store.
    assert outcomes["read own deals"]["rows"] == [["1"]]
    for name in ("insert an own deal", "update own deals", "delete the own deal"):
        assert outcomes[name]["ok"] and outcomes[name]["rowcount"] == 1, outcomes[name]
    assert outcomes["save an own cursor"]["ok"], outcomes["save an own cursor"]
    assert outcomes["store upsert own"]["ok"], outcomes["store upsert own"]
    own_rows = rows_of(pg_store, own)
    assert ("own", "renamed by the run") in own_rows["deals"]
    assert ("via-upsert", "upserted by the run") in own_rows["accounts"]
    assert rows_of(pg_store, victim) == victim_before

    # The environment: no secret by name or by value, the innocent variable kept.
    environment = outcomes["environment"]
    assert environment["present"] == []
    variables: dict[str, str] = environment["variables"]
    everything = json.dumps(variables)
    for secret in [*SECRETS.values(), MASTER_SECRET, "broker-password-do-not-leak"]:
        assert secret not in everything
    assert COPY_OF_A_SECRET[0] not in variables
    assert variables[INNOCENT[0]] == INNOCENT[1]
    assert variables["REVTOPS_ORG"] == own
    assert variables["REVTOPS_MAX_OUTPUT_TOKENS"]  # a setting named like a token, kept
    store_url = make_url(variables["REVTOPS_DATABASE_URL"])
    assert store_url.username == writer_role_name(own)
    assert store_url.database == pg_store.url.database
    # The runner's own environment (its parent's) is not readable, unless the kernel is root.
    import os

    if os.geteuid() != 0:
        refused("parent environ", "Permission denied")
    # And the kernel itself is non-dumpable: another run's kernel cannot read its environment.
    assert outcomes["own dumpable"]["rows"] == [["0"]]
    # The kept notebook holds no secret either.
    assert run.output_path is not None
    kept = Path(run.output_path).read_text()
    for secret in [*SECRETS.values(), MASTER_SECRET]:
        assert secret not in kept


def test_the_runner_makes_itself_non_dumpable() -> None:
    """PR_SET_DUMPABLE 0 is what keeps a same-user kernel out of the runner's /proc files."""
    probe = (
        "import ctypes, ctypes.util\n"
        "from revtops_kernel.scheduling.run_environment import make_undumpable\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
        "before = libc.prctl(3, 0, 0, 0, 0)\n"  # PR_GET_DUMPABLE
        "print(before, make_undumpable(), libc.prctl(3, 0, 0, 0, 0))\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.split()
    assert printed == ["1", "True", "0"]


def test_a_nango_sync_runs_under_the_writer_role_and_writes_its_org_only(
    pg_store: Database,
    env_for: Callable[..., Settings],
    two_orgs: tuple[str, str],
    tmp_path: Path,
) -> None:
    """notebooks/sync.ipynb as a workflow of an organization whose HubSpot is a Nango
    connection: the runner fetches the token, the kernel (no Nango key, the writer role) syncs.
    The same workflow pointed at another organization (``org`` parameter) fails and writes
    nothing there. The pipeline digest then runs on the synced rows under the same writer."""
    own, victim = two_orgs
    with SandboxServer(scale=0.01, seed=3) as sandbox:
        connection_id = sandbox_connection(sandbox, own)
        with pg_store.begin() as conn:
            conn.execute(
                metadata.tables["integrations"]
                .update()
                .where(
                    metadata.tables["integrations"].c.organization_id == own,
                    metadata.tables["integrations"].c.provider == "hubspot",
                )
                .values(nango_connection_id=connection_id, nango_provider_config_key="hubspot")
            )
        settings = env_for(
            pg_store,
            **{
                **scheduler_environment(pg_store),
                "NANGO_SECRET_KEY": sandbox.nango_secret_key,
                "NANGO_BASE_URL": sandbox.nango_base_url,
                "REVTOPS_HUBSPOT_BASE_URL": sandbox.hubspot_base_url,
            },
        )
        environment = run_environment(pg_store, settings, own)
        assert environment.providers == ("hubspot",)
        assert "NANGO_SECRET_KEY" in environment.removed
        add_workflow(pg_store, "sync", SYNC_NOTEBOOK, "0 2 * * *", org=own)
        victim_before = rows_of(pg_store, victim)

        run = run_now(pg_store, settings, "sync", org=own, parameters={"full_refresh": True})
        assert run.status == "succeeded", run.error
        hijack = run_now(
            pg_store, settings, "sync", org=own, parameters={"org": victim, "provider": "hubspot"}
        )
        # The digest reads the synced rows through the same writer (and has no assistant key:
        # with Supabase it is the deployment's).
        add_workflow(pg_store, "digest", DIGEST_NOTEBOOK, "0 8 * * 1", org=own)
        digest = run_now(
            pg_store,
            settings,
            "digest",
            org=own,
            parameters={
                "period_start": "2026-10-19",
                "period_end": "2026-11-15",
                "pdf_dir": str(tmp_path / "pdf"),
            },
        )

    with pg_store.connect() as conn:
        synced = conn.execute(
            select(SyncRun.organization_id, SyncRun.provider, SyncRun.status, SyncRun.upserted)
        ).all()
        deals = conn.execute(
            text("SELECT count(*) FROM deals WHERE organization_id = :o"), {"o": own}
        ).scalar_one()
        # The sync's own bookkeeping written as the writer too (a refresh that lacked the
        # grant would only have logged it): the deal states and the mark their refresh left.
        derived = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM deal_states WHERE organization_id = :o), "
                "(SELECT count(*) FROM derived_marks WHERE organization_id = :o)"
            ),
            {"o": own},
        ).one()
    assert derived[0] > 0 and derived[1] == 1, derived
    assert [(o, p, s) for o, p, s, _ in synced if o in (own, victim)] == [
        (own, "hubspot", "succeeded")
    ]
    assert deals > 1 and next(u for o, *_x, u in synced if o == own) > 0
    assert hijack.status == "failed"
    assert "row-level security" in (hijack.error or "")
    assert rows_of(pg_store, victim) == victim_before
    assert run.output_path is not None
    executed = nbformat.read(run.output_path, as_version=4)
    kept = json.dumps(executed)
    for secret in [sandbox.nango_secret_key, *SECRETS.values(), MASTER_SECRET]:
        assert secret not in kept
    assert role_name(own) != writer_role_name(own)
    assert digest.status == "succeeded", digest.error
    assert digest.output_path is not None
    executed = nbformat.read(digest.output_path, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "no ANTHROPIC_API_KEY configured" in printed
    [pdf] = (tmp_path / "pdf").glob("*.pdf")
    assert f"PDF: {pdf}" in printed and pdf.read_bytes().startswith(b"%PDF")
    kept = Path(digest.output_path).read_text()
    for secret in [sandbox.nango_secret_key, *SECRETS.values(), MASTER_SECRET]:
        assert secret not in kept


def sandbox_connection(sandbox: SandboxServer, org: str) -> str:
    """A HubSpot connection of ``org`` in the sandbox's Nango (a connect session, then the
    auth webhook Nango sends once the user authorized)."""
    with httpx.Client(
        base_url=sandbox.nango_base_url,
        headers={"Authorization": f"Bearer {sandbox.nango_secret_key}"},
        timeout=30,
    ) as client:
        session = client.post(
            "/connect/sessions",
            json={
                "end_user": {"id": f"u-{org}", "email": f"admin@{org}.example"},
                "organization": {"id": org},
                "allowed_integrations": ["hubspot"],
            },
        )
        assert session.status_code == 201, session.text
    body, _headers = sandbox.nango_webhook("hubspot", session_token=session.json()["data"]["token"])
    connection_id: str = json.loads(body)["connectionId"]
    return connection_id


def test_read_only_queries_of_a_run_go_through_its_writer_and_stay_read_only(
    pg_store: Database, two_orgs: tuple[str, str]
) -> None:
    """A run's kernel cannot log in as the reader (no master secret): the assistant's query
    path (reports, verified queries) reads through the writer, read-only, its org only."""
    own, victim = two_orgs
    writer = Database(org_writer_url(pg_store, own))
    try:
        names = "SELECT name FROM deals WHERE organization_id = :o"
        mine = read_sql(writer, names, {"o": own}, org=own)
        assert mine.frame["name"].tolist() == ["own"]
        assert read_sql(writer, names, {"o": victim}, org=victim).frame.empty
        with pytest.raises(QueryRefusedError, match="tried to write"):
            read_sql(writer, f"{names} FOR UPDATE", {"o": own}, org=own)
    finally:
        writer.dispose()
    assert rows_of(pg_store, own)["deals"] == [("own", "own")]
