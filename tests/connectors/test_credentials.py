from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from revtops_kernel.connectors.credentials import NangoConnection, StaticToken, token_source
from revtops_kernel.errors import CredentialsError
from revtops_kernel.settings import load_settings


def test_a_missing_token_says_which_variable_to_set() -> None:
    with pytest.raises(CredentialsError, match="REVTOPS_HUBSPOT_TOKEN"):
        StaticToken("hubspot", None).token()
    assert StaticToken("slack", SecretStr("xoxb-1")).token() == "xoxb-1"
    assert StaticToken("slack", SecretStr("xoxb-1")).refresh() is False


def test_settings_tokens_are_used_without_nango(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVTOPS_SALESFORCE_TOKEN", "00Dxx!token")
    source = token_source(load_settings(), "salesforce", http=httpx.Client())
    assert source.token() == "00Dxx!token"


def nango(tokens: list[str], seen: list[httpx.Request]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path != "/connections/conn-1":
            return httpx.Response(
                404,
                json={"error": {"code": "unknown_connection", "message": "No connection found"}},
            )
        token = tokens[min(len(seen) - 1, len(tokens) - 1)]
        return httpx.Response(
            200,
            json={
                "connection_id": "conn-1",
                "provider_config_key": "hubspot",
                "credentials": {"type": "OAUTH2", "access_token": token, "expires_at": "x"},
            },
        )

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_nango_gives_the_token_and_refreshes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANGO_SECRET_KEY", "nango-secret")
    monkeypatch.setenv("NANGO_BASE_URL", "http://nango.test")
    seen: list[httpx.Request] = []
    source = token_source(
        load_settings(),
        "hubspot",
        http=nango(["tok-1", "tok-2"], seen),
        nango_connection=NangoConnection("conn-1", "hubspot"),
    )
    assert source.token() == "tok-1"
    assert source.token() == "tok-1"  # cached for the sync
    assert len(seen) == 1
    assert seen[0].headers["Authorization"] == "Bearer nango-secret"
    assert seen[0].url.params["provider_config_key"] == "hubspot"
    assert source.refresh() is True
    assert source.token() == "tok-2"
    assert seen[1].url.params["force_refresh"] == "true"
    assert source.refresh() is False  # once per sync: a second 401 is real


def test_an_unknown_nango_connection_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANGO_SECRET_KEY", "nango-secret")
    source = token_source(
        load_settings(),
        "hubspot",
        http=nango(["x"], []),
        nango_connection=NangoConnection("missing", "hubspot"),
    )
    with pytest.raises(CredentialsError, match="unknown_connection: No connection found"):
        source.token()


def test_a_nango_connection_without_a_secret_key_is_refused() -> None:
    with pytest.raises(CredentialsError, match="NANGO_SECRET_KEY"):
        token_source(
            load_settings(),
            "hubspot",
            http=httpx.Client(),
            nango_connection=NangoConnection("c", "hubspot"),
        )
