from __future__ import annotations

from pathlib import Path

import pytest
from anthropic._data import DEPRECATED_MODELS

from revtops_kernel.agent.pricing import price_of
from revtops_kernel.errors import SettingsError
from revtops_kernel.settings import DEFAULT_MODEL, load_settings


def test_defaults_run_on_the_embedded_store(isolated_environment: Path) -> None:
    settings = load_settings()
    assert settings.database_url == f"duckdb:///{isolated_environment / '.revtops/revtops.duckdb'}"
    assert settings.org == "default"
    assert settings.model == DEFAULT_MODEL
    assert settings.hubspot_base_url == "https://api.hubapi.com"
    assert settings.hubspot_token is None
    assert settings.broker_url is None


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, isolated_environment: Path) -> None:
    monkeypatch.setenv("REVTOPS_HOME", "~/data")
    assert load_settings().home == isolated_environment / "data"


def test_postgres_urls_get_the_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVTOPS_DATABASE_URL", "postgres://app:s3cret@db.internal:5432/revtops")
    assert (
        load_settings().database_url == "postgresql+psycopg://app:s3cret@db.internal:5432/revtops"
    )


def test_a_dotenv_file_in_the_working_directory_is_read(isolated_environment: Path) -> None:
    (isolated_environment / ".env").write_text("REVTOPS_ORG=acme\nREVTOPS_MODEL=claude-x\n")
    settings = load_settings()
    assert (settings.org, settings.model) == ("acme", "claude-x")


def test_the_environment_wins_over_dotenv(
    monkeypatch: pytest.MonkeyPatch, isolated_environment: Path
) -> None:
    (isolated_environment / ".env").write_text("REVTOPS_ORG=acme\n")
    monkeypatch.setenv("REVTOPS_ORG", "globex")
    assert load_settings().org == "globex"


def test_unrelated_variables_named_like_fields_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # HOME, ORG and MODEL are common names; only the REVTOPS_ variables count.
    monkeypatch.setenv("ORG", "Not An Org")
    monkeypatch.setenv("MODEL", "")
    settings = load_settings()
    assert (settings.org, settings.model) == ("default", DEFAULT_MODEL)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("REVTOPS_DATABASE_URL", "mysql://root@localhost/x", "postgresql://"),
        ("REVTOPS_DATABASE_URL", "duckdb:///", "file path"),
        ("REVTOPS_ORG", "Acme Inc", "organization id"),
        ("REVTOPS_QUERY_TIMEOUT", "soon", "number"),
        ("REVTOPS_QUERY_TIMEOUT", "-1", "greater than 0"),
        ("REVTOPS_QUERY_MAX_ROWS", "many", "integer"),
        ("REVTOPS_DB_LOCK_TIMEOUT", "0", "greater than 0"),
        ("REVTOPS_HUBSPOT_BASE_URL", "api.hubapi.com", "http(s) URL"),
        ("REVTOPS_SALESFORCE_INSTANCE_URL", "ftp://example.com", "http(s) URL"),
        ("NANGO_BASE_URL", "nango", "http(s) URL"),
        ("ANTHROPIC_BASE_URL", "localhost:9000", "http(s) URL"),
        ("REVTOPS_BROKER_URL", "amqp://guest@localhost//", "redis://"),
        ("SUPABASE_URL", "not a url", "http(s) URL"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert says in str(caught.value)


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVTOPS_HUBSPOT_TOKEN", "pat-na1-supersecret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-supersecret")
    settings = load_settings()
    assert "supersecret" not in repr(settings)
    assert "supersecret" not in str(settings.model_dump())
    assert settings.hubspot_token is not None
    assert settings.hubspot_token.get_secret_value() == "pat-na1-supersecret"


def test_a_password_in_a_bad_database_url_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVTOPS_DATABASE_URL", "mysql://root:hunter2@localhost/x")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_the_default_model_is_not_one_the_sdk_marks_deprecated() -> None:
    assert DEFAULT_MODEL not in DEPRECATED_MODELS, DEPRECATED_MODELS.get(DEFAULT_MODEL)
    assert price_of(DEFAULT_MODEL) is not None  # the cost of its answers is known
