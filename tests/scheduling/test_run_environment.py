"""What a workflow run's kernel is given: the organization's credentials, no deployment secret.

Unit-level, on DuckDB (no role to create): which variables go, which stay, and which provider
credentials are the organization's in single- and multi-organization deployments. The
PostgreSQL side (the writer role, a hostile notebook) is tests/scheduling/test_run_isolation.py.
"""

from __future__ import annotations

import socket
import types
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import insert

from revtops_kernel.errors import CredentialsError
from revtops_kernel.scheduling.run_environment import (
    deployment_secret_variables,
    run_environment,
)
from revtops_kernel.scheduling.runner import _kernel_environment
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import utcnow

DEPLOYMENT = {
    "NANGO_SECRET_KEY": "nango-secret-0123456789",
    "SUPABASE_JWT_SECRET": "jwt-secret-0123456789",
    "REVTOPS_ADMIN_KEY": "admin-key-0123456789",
    "REVTOPS_BROKER_URL": "redis://127.0.0.1:6379/13",
    "REVTOPS_HUBSPOT_TOKEN": "hubspot-token-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-0123456789",
}
BASE = {
    **DEPLOYMENT,
    "PATH": "/usr/bin",
    "HOME": "/home/runner",
    "REVTOPS_KERNEL_IDENTITY_SECRET": "identity-0123456789",
    "PGPASSWORD": "libpq-0123456789",
    "GITHUB_TOKEN": "ghp-0123456789",
    "REVTOPS_MAX_OUTPUT_TOKENS": "4096",  # a count, not a token
    "SOME_URL": "https://user:nango-secret-0123456789@elsewhere.example",  # a copy, by value
}


def test_single_org_runs_get_the_settings_tokens_and_no_deployment_secret(
    duckdb_store: Database, env_for: Callable[..., Settings]
) -> None:
    settings = env_for(duckdb_store, **DEPLOYMENT)
    env = run_environment(duckdb_store, settings, "acme", base=BASE)
    assert env.variables["REVTOPS_HUBSPOT_TOKEN"] == DEPLOYMENT["REVTOPS_HUBSPOT_TOKEN"]
    assert env.variables["ANTHROPIC_API_KEY"] == DEPLOYMENT["ANTHROPIC_API_KEY"]
    assert env.providers == ("hubspot",)
    for name in (
        "NANGO_SECRET_KEY",
        "SUPABASE_JWT_SECRET",
        "REVTOPS_ADMIN_KEY",
        "REVTOPS_BROKER_URL",
        "REVTOPS_KERNEL_IDENTITY_SECRET",
        "PGPASSWORD",
        "GITHUB_TOKEN",
        "SOME_URL",
    ):
        assert name not in env.variables, name
        assert name in env.removed
    assert env.variables["PATH"] == "/usr/bin" and env.variables["REVTOPS_MAX_OUTPUT_TOKENS"]
    assert env.variables["REVTOPS_ORG"] == "acme"
    # DuckDB: one embedded file, not scoped (the single-organization default).
    assert not env.scoped_store
    assert env.variables["REVTOPS_DATABASE_URL"] == duckdb_store.url.render_as_string(
        hide_password=False
    )


def test_multi_org_runs_get_no_static_token_nor_the_assistant_key(
    duckdb_store: Database, env_for: Callable[..., Settings]
) -> None:
    settings = env_for(duckdb_store, SUPABASE_URL="https://p.supabase.example", **DEPLOYMENT)
    env = run_environment(duckdb_store, settings, "acme", base=BASE)
    assert "REVTOPS_HUBSPOT_TOKEN" not in env.variables
    assert "ANTHROPIC_API_KEY" not in env.variables
    assert env.providers == ()
    for secret in [*DEPLOYMENT.values(), "identity-0123456789", "libpq-0123456789"]:
        assert all(secret not in value for value in env.variables.values()), secret


def test_every_secret_setting_is_a_secret_variable(
    duckdb_store: Database, env_for: Callable[..., Settings]
) -> None:
    settings = env_for(
        duckdb_store, REVTOPS_READONLY_DATABASE_URL="postgresql://ro:master@db.example/revtops"
    )
    names = deployment_secret_variables(settings)
    secret_fields = [
        info.validation_alias
        for info in Settings.model_fields.values()
        if "SecretStr" in str(info.annotation)
    ]
    assert secret_fields and set(secret_fields) <= names
    assert {"REVTOPS_DATABASE_URL", "REVTOPS_READONLY_DATABASE_URL", "REVTOPS_BROKER_URL"} <= names
    assert "REVTOPS_HOME" not in names and "REVTOPS_MODEL" not in names


def test_a_run_whose_nango_token_cannot_be_fetched_does_not_start(
    duckdb_store: Database, env_for: Callable[..., Settings]
) -> None:
    """A connected provider without a token would be skipped by the notebook without a word:
    the runner fails the run instead, naming the provider and why."""
    with socket.socket() as probe:  # a port nothing listens on: Nango unreachable
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = env_for(
        duckdb_store,
        NANGO_SECRET_KEY="nango-secret-0123456789",
        NANGO_BASE_URL=f"http://127.0.0.1:{closed}",
        SUPABASE_URL="https://p.supabase.example",
    )
    with duckdb_store.begin() as conn:
        conn.execute(
            insert(metadata.tables["integrations"]).values(
                id=uuid.uuid4(),
                organization_id="acme",
                provider="hubspot",
                nango_connection_id="conn-acme-hubspot",
                status="connected",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    env = run_environment(duckdb_store, settings, "acme", base=BASE)
    assert set(env.unavailable) == {"hubspot"} and env.providers == ()
    run = types.SimpleNamespace(id=uuid.uuid4(), organization_id="acme")
    with pytest.raises(CredentialsError, match=r"did not start: no token from Nango .* hubspot"):
        _kernel_environment(duckdb_store, settings, run)  # type: ignore[arg-type]
