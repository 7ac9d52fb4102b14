"""Posting to the sandbox's Slack: messages and files land; Slack's refusals are clear errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.slack_post import SlackPoster, SlackPostError
from revtops_kernel.errors import ProviderAuthError
from revtops_sandbox import SandboxServer


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=0.01, seed=3) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with make_http_client() as client:
        yield client


def poster(sandbox: SandboxServer, http: httpx.Client, token: str | None = None) -> SlackPoster:
    secret = SecretStr(token or sandbox.token)
    return SlackPoster.connect(sandbox.slack_base_url, StaticToken("slack", secret), http)


def channel_ids(sandbox: SandboxServer) -> dict[str, str]:
    company = sandbox.state.company
    return {ch.name: ch.id for ch in company.slack.channels}


def test_a_message_and_a_file_land_in_the_channel_named(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    slack = poster(sandbox, http)
    sales = channel_ids(sandbox)["sales"]
    message = slack.post_message("#sales", "Pipeline: *12 deals* &lt;escaped&gt;")
    upload = slack.upload_file(
        "sales", b"%PDF-1.7 digest", "digest.pdf", title="Digest", initial_comment="The PDF"
    )
    posted, shared = sandbox.slack_posts()[-2:]
    assert (posted.method, posted.channel_id, posted.ts, posted.text) == (
        "chat.postMessage",
        sales,
        message.ts,
        "Pipeline: *12 deals* &lt;escaped&gt;",
    )
    assert message.channel_id == upload.channel_id == sales
    assert (shared.method, shared.channel_id, shared.text, shared.thread_ts) == (
        "files.completeUploadExternal",
        sales,
        "The PDF",
        None,
    )
    [file] = shared.files
    assert (file["id"], file["title"], file["name"], file["data"]) == (
        upload.file_id,
        "Digest",
        "digest.pdf",
        b"%PDF-1.7 digest",
    )


def test_a_channel_id_is_used_as_given(sandbox: SandboxServer, http: httpx.Client) -> None:
    slack = poster(sandbox, http)
    general = channel_ids(sandbox)["general"]
    assert slack.channel_id(general) == general
    assert slack.post_message(general, "hi").channel_id == general


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("C0NOSUCH000", "chat.postMessage -> HTTP 200: Slack error channel_not_found: the channel "
         "does not exist or the app cannot see it"),
        ("#no-such-channel", "no channel named #no-such-channel that the app can see"),
        ("#random", "Slack error not_in_channel: invite the app to the channel"),
    ],
)  # fmt: skip
def test_slack_refusals_are_clear_errors(
    sandbox: SandboxServer, http: httpx.Client, channel: str, message: str
) -> None:
    before = len(sandbox.slack_posts())
    with pytest.raises(SlackPostError, match=message):
        poster(sandbox, http).post_message(channel, "hello")
    assert len(sandbox.slack_posts()) == before


def test_a_refused_upload_names_the_step(sandbox: SandboxServer, http: httpx.Client) -> None:
    with pytest.raises(SlackPostError, match=r"files\.completeUploadExternal .*channel_not_found"):
        poster(sandbox, http).upload_file("C0NOSUCH000", b"x", "x.pdf")


def test_a_bad_token_is_an_auth_error_without_the_token(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    general = channel_ids(sandbox)["general"]
    with pytest.raises(ProviderAuthError, match="Slack error invalid_auth") as caught:
        poster(sandbox, http, token="xoxb-wrong-token").post_message(general, "hello")
    assert "xoxb-wrong-token" not in str(caught.value)
