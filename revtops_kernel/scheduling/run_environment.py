"""The environment of a workflow run's notebook kernel: its organization's credentials only.

A workflow's notebook is code its organization controls, so the kernel papermill starts gets:

- ``REVTOPS_DATABASE_URL``: on PostgreSQL, the organization's writer role
  (``store.org_access.org_writer_url``), which row-level security keeps to that
  organization's rows; on DuckDB the file itself (one embedded file cannot be scoped: DuckDB
  is the single-organization default, multi-organization deployments use PostgreSQL);
- ``REVTOPS_ORG``: the workflow's organization;
- provider tokens (``REVTOPS_<PROVIDER>_TOKEN``): the access tokens of the organization's own
  Nango connections, fetched here by the trusted runner before the kernel starts; and, only
  when the deployment is single-organization (no ``SUPABASE_URL``), the static tokens and
  ``ANTHROPIC_API_KEY`` from settings, which then belong to that one organization (with
  Supabase they are the deployment's: a digest's summary is then skipped);
- nothing else secret: every ``SecretStr`` setting (Nango, Supabase, admin and Anthropic keys),
  every setting that is a URL with a password, the store, read-only and broker URLs, libpq's
  ``PG*`` variables, any variable whose name says it is a secret (``*SECRET*``,
  ``*PASSWORD*``, ``*_KEY``, ``*TOKEN``...) and any variable whose value contains a secret.

A token fetched from Nango is fixed for the run: the kernel has no Nango key to refresh it, so
a run longer than the token's lifetime (about an hour for HubSpot, Salesforce and Google) sees
401s once it expires and that sync fails (its committed pages and cursors stay).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args
from urllib.parse import urlsplit

from pydantic import SecretStr

from revtops_kernel.connectors.credentials import PROVIDERS, TOKEN_VARIABLES, token_source
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.errors import RevtopsError
from revtops_kernel.providers import settings_token
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database
from revtops_kernel.store.org_access import org_writer_url

log = logging.getLogger(__name__)

STORE_VARIABLE = "REVTOPS_DATABASE_URL"
ORG_VARIABLE = "REVTOPS_ORG"
SALESFORCE_INSTANCE_VARIABLE = "REVTOPS_SALESFORCE_INSTANCE_URL"
ANTHROPIC_VARIABLE = "ANTHROPIC_API_KEY"
# Deployment-wide secrets that are not settings fields, and infrastructure URLs that are
# removed even without a password in them (the broker takes any task; a Redis URL may not
# carry its password in the URL but still reach the queue).
EXTRA_SECRET_VARIABLES = frozenset(
    {
        "REVTOPS_KERNEL_IDENTITY_SECRET",
        "REVTOPS_READONLY_DATABASE_URL",
        "REVTOPS_BROKER_URL",
        "REVTOPS_TEST_POSTGRES_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "SSH_AUTH_SOCK",
    }
)
# A variable named like a secret is not passed, whatever it is.
# (``TOKEN$``, not ``TOKENS``: REVTOPS_MAX_OUTPUT_TOKENS is a count.)
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|API_?KEY|ACCESS_KEY|_KEY$|TOKEN$|_DSN$", re.I
)
LIBPQ_PREFIX = "PG"  # PGPASSWORD, PGUSER, PGSERVICE, PGPASSFILE...: another way to log in
MIN_SECRET_LENGTH = 8  # shorter values are not searched for in other variables


@dataclass(frozen=True)
class RunEnvironment:
    """What the run's kernel gets, and (for the runner's log) what it was refused."""

    variables: dict[str, str]
    scoped_store: bool  # the store URL is the organization's writer (PostgreSQL)
    removed: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()  # providers with a token in ``variables``
    unavailable: dict[str, str] = field(default_factory=dict)  # provider -> why no token


def run_environment(
    db: Database,
    settings: Settings,
    org: str,
    *,
    base: Mapping[str, str] | None = None,
) -> RunEnvironment:
    """The kernel's environment for a run of ``org``: ``base`` (this process's environment)
    without the deployment's secrets, with the organization's store URL and tokens added."""
    variables, removed = neutral_environment(settings, base=base)
    tokens, unavailable, instance_url = _provider_tokens(db, settings, org)
    variables.update(tokens)
    if instance_url and not settings.salesforce_instance_url:
        variables[SALESFORCE_INSTANCE_VARIABLE] = instance_url
    if db.is_duckdb:
        variables[STORE_VARIABLE] = db.url.render_as_string(hide_password=False)
    else:
        writer = org_writer_url(db, org, readonly_url=settings.readonly_database_url)
        variables[STORE_VARIABLE] = writer.render_as_string(hide_password=False)
    variables[ORG_VARIABLE] = org
    providers = tuple(p for p in PROVIDERS if TOKEN_VARIABLES[p] in tokens)
    return RunEnvironment(
        variables, not db.is_duckdb, tuple(sorted(removed)), providers, unavailable
    )


def neutral_environment(
    settings: Settings, *, base: Mapping[str, str] | None = None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """``base`` (this process's environment) without the deployment's secrets, and the names
    left out: the part of a run's environment that belongs to no organization, which a kernel
    started ahead of its run (``scheduling.warm``) is given."""
    source = dict(os.environ if base is None else base)
    secret_names = deployment_secret_variables(settings)
    secret_values = _secret_values(settings, source, secret_names)
    variables: dict[str, str] = {}
    removed: list[str] = []
    for name, value in source.items():
        if _is_secret(name, secret_names) or _contains_any(value, secret_values):
            removed.append(name)
        else:
            variables[name] = value
    return variables, tuple(removed)


def deployment_secret_variables(settings: Settings) -> frozenset[str]:
    """The variables of every secret setting: ``SecretStr`` fields, URLs with a password."""
    names = set(EXTRA_SECRET_VARIABLES) | {STORE_VARIABLE}
    for name, info in type(settings).model_fields.items():
        alias = info.validation_alias
        if not isinstance(alias, str):
            continue
        value = getattr(settings, name)
        secret_type = _is_secret_type(info.annotation) or isinstance(value, SecretStr)
        if secret_type or (isinstance(value, str) and _url_password(value)):
            names.add(alias)
    return frozenset(names)


def _is_secret(name: str, secret_names: frozenset[str]) -> bool:
    return (
        name in secret_names
        or name.upper().startswith(LIBPQ_PREFIX)
        or bool(SECRET_NAME.search(name))
    )


def _is_secret_type(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret_type(arg) for arg in get_args(annotation))


def _url_password(value: str) -> str | None:
    try:
        return urlsplit(value).password if "://" in value else None
    except ValueError:
        return None


def _secret_values(
    settings: Settings, source: Mapping[str, str], secret_names: frozenset[str]
) -> frozenset[str]:
    """Secret values to look for in the variables kept (a copy under another name)."""
    values: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.add(value.get_secret_value())
        elif isinstance(value, str) and (password := _url_password(value)):
            values.add(password)
    for name, value in source.items():
        if SECRET_NAME.search(name):
            values.add(value)
        if _is_secret(name, secret_names) and (password := _url_password(value)):
            values.add(password)  # a URL's host is no secret, its password is
    return frozenset(v for v in values if len(v) >= MIN_SECRET_LENGTH)


def _contains_any(value: str, secrets: frozenset[str]) -> bool:
    return any(secret in value for secret in secrets)


def _provider_tokens(
    db: Database, settings: Settings, org: str
) -> tuple[dict[str, str], dict[str, str], str | None]:
    """The organization's tokens by variable, the providers whose Nango token could not be
    fetched (and why), and the Salesforce instance URL Nango reports, if any."""
    tokens: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    instance_url: str | None = None
    if settings.supabase_url is None:
        # Single-organization deployment: the tokens in settings are that organization's.
        for provider in PROVIDERS:
            secret = settings_token(settings, provider)
            if secret is not None and secret.get_secret_value():
                tokens[TOKEN_VARIABLES[provider]] = secret.get_secret_value()
        if settings.anthropic_api_key is not None:  # and so is the assistant's key
            tokens[ANTHROPIC_VARIABLE] = settings.anthropic_api_key.get_secret_value()
    if settings.nango_secret_key is None:
        return tokens, unavailable, instance_url
    from revtops_kernel.sync import nango_connection_for

    with db.connect() as conn:
        connections = {p: nango_connection_for(conn, org, p) for p in PROVIDERS}
    with make_http_client() as http:
        for provider, connection in connections.items():
            if connection is None:
                continue
            source = token_source(settings, provider, http=http, nango_connection=connection)
            try:
                tokens[TOKEN_VARIABLES[provider]] = source.token()
                if provider == "salesforce":
                    instance_url = getattr(source, "instance_url", lambda: None)()
            except RevtopsError as exc:
                unavailable[provider] = str(exc)
                tokens.pop(TOKEN_VARIABLES[provider], None)  # Nango is this org's source for it
                log.warning("run for %s: no %s token from Nango (%s)", org, provider, exc)
    return tokens, unavailable, instance_url


PR_SET_DUMPABLE = 4  # linux/prctl.h


def make_undumpable() -> bool:
    """Keep processes of the same OS user out of this one's memory and environment.

    A process holding the deployment's secrets (scheduler, worker, runner) is made
    non-dumpable: its ``/proc/<pid>/environ``, ``mem`` and ``maps`` become root's and
    ``ptrace`` by the same user is refused, so a notebook's kernel (its child, dumpable again
    after ``exec``) cannot read them. Root still can. Returns whether it took effect (Linux).
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # no libc to call: nothing to do
        return False
