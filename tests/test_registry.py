"""One source of truth per provider: the facts in providers.py and the sync's specs agree."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from revtops_kernel.connectors.credentials import TOKEN_VARIABLES, StaticToken
from revtops_kernel.errors import SettingsError
from revtops_kernel.integrations import provider_config_key, provider_for_key
from revtops_kernel.providers import (
    ACTIVITY_PROVIDERS,
    ALL_PROVIDERS,
    CRM_PROVIDERS,
    PROVIDERS,
    Provider,
    provider_info,
    settings_token,
)
from revtops_kernel.registry import provider_spec
from revtops_kernel.settings import Settings, load_settings


def _settings(**env: str) -> Settings:
    return load_settings(**env)


def test_every_provider_has_a_spec_whose_normalizers_cover_its_connectors_streams() -> None:
    settings = _settings(REVTOPS_SALESFORCE_INSTANCE_URL="https://acme.my.salesforce.com")
    assert set(PROVIDERS) == set(Provider)
    with httpx.Client() as http:
        for name in ALL_PROVIDERS:
            spec = provider_spec(name)
            assert spec.info.provider == name
            connector = spec.connect(settings, StaticToken(name, SecretStr("t")), http)
            streams = connector.streams()
            assert set(streams) <= set(spec.normalizers), name
            if spec.stage_stream is not None:
                assert spec.stage_stream in streams and spec.stage_map is not None


def test_kinds_names_and_token_variables() -> None:
    assert CRM_PROVIDERS == ("hubspot", "salesforce")
    assert ACTIVITY_PROVIDERS == ("slack", "google_calendar")
    assert provider_info("google_calendar").display_name == "Google Calendar"
    assert TOKEN_VARIABLES["google_calendar"] == "REVTOPS_GOOGLE_CALENDAR_TOKEN"
    assert provider_config_key("google_calendar") == "google-calendar"
    assert provider_for_key("google-calendar") == "google_calendar"
    assert provider_for_key("google_calendar") == "google_calendar"
    assert provider_for_key("pipedrive") is None


def test_each_token_variable_is_read_into_its_providers_setting() -> None:
    for name in ALL_PROVIDERS:
        variable = provider_info(name).token_variable
        token = settings_token(_settings(**{variable: f"secret-{name}"}), name)
        assert token is not None and token.get_secret_value() == f"secret-{name}"
        others = [p for p in ALL_PROVIDERS if p != name]
        assert all(settings_token(_settings(**{variable: "x"}), p) is None for p in others)


def test_an_unknown_provider_is_named_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown provider 'pipedrive'; expected one of hubspot"):
        provider_spec("pipedrive")
    with pytest.raises(ValueError, match="unknown provider"):
        settings_token(_settings(), "pipedrive")


def test_salesforce_without_an_instance_says_which_setting() -> None:
    spec = provider_spec("salesforce")
    with httpx.Client() as http, pytest.raises(SettingsError, match="INSTANCE_URL"):
        spec.connect(_settings(), StaticToken("salesforce", SecretStr("t")), http)
