"""Random input against every endpoint of the extension: never a 500, always a JSON error.

Property-based (hypothesis) rather than schemathesis: the routes are few and their inputs are
JSON bodies, query strings and headers, which hypothesis generates directly.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from revtops_server.handlers import routes
from revtops_server.handlers_data import PROVIDER_PATTERN, UUID_PATTERN
from revtops_server.handlers_workflows import NAME_PATTERN

from .conftest import ADMIN_KEY, Server

pytestmark = pytest.mark.slow

SEGMENT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="/?#"),
    min_size=1,
    max_size=20,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "email": st.one_of(st.emails(), st.text(max_size=300), st.integers()),
        "name": st.one_of(st.text(max_size=300), st.none(), st.lists(st.text())),
        "domain": st.one_of(st.text(max_size=80), st.integers()),
        "company": st.text(max_size=300),
        "note": st.text(max_size=2500),
        "access_token": st.text(max_size=300),
    },
)
BODY = st.one_of(
    FIELDS.map(lambda d: ("json", d)),
    JSON.map(lambda d: ("json", d)),
    st.binary(max_size=200).map(lambda b: ("raw", b)),
)
PATHS = [
    path.replace("([a-z0-9][a-z0-9_-]{0,62})", "{org}")
    .replace(PROVIDER_PATTERN, "{provider}")
    .replace(UUID_PATTERN, "{uuid}")
    .replace(NAME_PATTERN, "nightly")
    for path, _ in routes()
]


Request = tuple[str, str, dict[str, str], dict[str, str], tuple[str, object]]
PRINTABLE = st.characters(min_codepoint=33, max_codepoint=126)


def _requests(server: Server) -> st.SearchStrategy[Request]:
    tokens = st.one_of(
        st.none(),
        st.text(alphabet=PRINTABLE, min_size=1, max_size=60),
        st.just(server.token("fuzz@acme.com")),
        st.just(server.token("fuzz@gmail.com")),
    )

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        path = (
            draw(st.sampled_from(PATHS))
            .replace("{org}", draw(st.sampled_from(["acme-com", "x"])))
            .replace("{provider}", draw(st.sampled_from(["hubspot", "slack", "google_calendar"])))
            .replace("{uuid}", str(draw(st.uuids())))
        )
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
        headers: dict[str, str] = {}
        token = draw(tokens)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if draw(st.booleans()):
            headers["X-Admin-Key"] = draw(st.sampled_from([ADMIN_KEY, "wrong", ""]))
        names = st.sampled_from(["domain", "status", "next"])
        query = draw(st.dictionaries(names, SEGMENT, max_size=2))
        return method, path, headers, query, draw(BODY)

    return build()


def test_no_input_makes_the_server_fail(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(_requests(server))
        def check(request: Request) -> None:
            method, path, headers, query, (kind, body) = request
            if kind == "json":
                reply = client.request(method, path, params=query, headers=headers, json=body)
            else:
                reply = client.request(method, path, params=query, headers=headers, content=body)
            assert reply.status_code < 500, (method, path, query, reply.status_code, reply.text)
            if reply.status_code >= 400 and reply.status_code != 405:
                error = reply.json()
                assert "error" in error or "message" in error, reply.text

        check()
