"""Random input against every endpoint of the extension: never a 5xx, always a JSON error.

Property-based (hypothesis) rather than schemathesis: the routes are few and their inputs are
JSON bodies, query strings and headers, which hypothesis generates directly. The server runs on
PostgreSQL (which refuses NUL in text: the case the review found), and the generated input is
hostile on purpose: NUL, C0/C1 controls, lone surrogates (escaped in JSON, as a browser's
``JSON.stringify`` sends them; raw in query strings), megabyte strings, wrong JSON types, huge
and deeply nested values, for every route and method, as the public, a member, an
organization's admin (workflows) and the holder of the admin key. No response may carry CORS
headers either.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from revtops_server.routes import (
    NAME_PATTERN,
    ORG_PATTERN,
    PROVIDER_PATTERN,
    UUID_PATTERN,
    routes,
)

from .conftest import ADMIN_KEY, Server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PATHS = [
    path.replace(ORG_PATTERN, "{org}")
    .replace(PROVIDER_PATTERN, "{provider}")
    .replace(UUID_PATTERN, "{uuid}")
    .replace(NAME_PATTERN, "{workflow}")
    for path, _ in routes()
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]

NASTY_CHARS = st.sampled_from(
    ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\ufeff",
     "\ud800", "\udfff", "\U0001f600", "\t", "\n", "\r", " ", "%", "'", '"', "\\", "<", "/",
     "@", ".", "\u0301", "\uffff"]
)  # fmt: skip
NASTY_TEXT = st.lists(st.one_of(NASTY_CHARS, st.text(max_size=6)), max_size=12).map("".join)
PLAUSIBLE = st.sampled_from(
    ["rep@fuzzco.com", "fuzzco.com", "hubspot", "all", "sync.ipynb", "0 2 * * *", "UTC",
     "waiting", "invited", "Europe/Paris", "fuzzflow", "", " "]
)  # fmt: skip
HUGE_TEXT = st.sampled_from([1_000_000, 9_000, 256]).map(lambda n: "x" * n)
TEXT = st.one_of(NASTY_TEXT, PLAUSIBLE, st.emails(), st.text(max_size=300), HUGE_TEXT)
NUMBER = st.one_of(
    st.integers(),
    st.sampled_from([10**400, -(2**63), 2**64, 0]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=8,
)
FIELD_NAMES = [
    "email", "name", "domain", "company", "note", "access_token", "refresh_token", "provider",
    "notebook", "cron", "timezone", "parameters", "enabled",
]  # fmt: skip
FIELDS = st.fixed_dictionaries({}, optional={name: VALUE for name in FIELD_NAMES})
RAW_BODIES = st.sampled_from(
    [b"[" * 100_000, b"{" * 5_000, b"NaN", b'{"name": Infinity}', b"1" * 5_000, b"\xff\xfe",
     b'{"email": "a@b.co"', b"", b"null", b'"\\ud800"', b'{"name": "\\u0000"}']
)  # fmt: skip
BODY = st.one_of(
    FIELDS.map(lambda d: ("json", d)),
    VALUE.map(lambda d: ("json", d)),
    RAW_BODIES.map(lambda b: ("raw", b)),
    st.binary(max_size=200).map(lambda b: ("raw", b)),
)
# A URL is at most 64 KiB (httpx refuses longer ones; servers answer 414): a long value is 8,000.
QUERY = st.dictionaries(
    st.sampled_from(["domain", "status", "next", "provider", "org", "token"]),
    TEXT.map(lambda text: text[:8_000]),
    max_size=3,
)

Request = tuple[str, str, dict[str, str], str, tuple[str, object]]


@pytest.fixture(scope="module")
def server(pg_server: Server) -> Server:
    return pg_server


@pytest.fixture(scope="module")
def callers(server: Server) -> dict[str, dict[str, str]]:
    """Headers of each kind of caller: public, admin key, member, org admin, and refused ones."""
    made = httpx.post(
        f"{server.url}/revtops/api/organizations",
        headers={"X-Admin-Key": ADMIN_KEY},
        json={"name": "Fuzzco", "domain": "fuzzco.com"},
    )
    assert made.status_code == 201, made.text
    bearer = {
        "org admin": server.token("boss@fuzzco.com"),
        "member": server.token("rep@fuzzco.com"),
        "consumer": server.token("fuzz@gmail.com"),
        "unverified": server.token("eve@fuzzco.com", user_metadata={"email_verified": False}),
        "not an email": server.token("not-an-email", subject="sub-not-an-email"),
        "expired": server.token("rep@fuzzco.com", lifetime=-600),
    }
    found = {name: {"Authorization": f"Bearer {token}"} for name, token in bearer.items()}
    with httpx.Client(base_url=server.url, headers=found["org admin"]) as admin:
        assert admin.get("/revtops/api/me").json()["role"] == "admin"  # the first to join
    with httpx.Client(base_url=server.url, headers=found["member"]) as member:
        assert member.get("/revtops/api/me").json()["role"] == "member"
    found["public"] = {}
    found["admin key"] = {"X-Admin-Key": ADMIN_KEY}
    found["wrong admin key"] = {"X-Admin-Key": "wrong"}
    found["garbage bearer"] = {"Authorization": "Bearer not.a.token"}
    return found


def _requests(callers: dict[str, dict[str, str]]) -> st.SearchStrategy[Request]:
    @st.composite
    def build(draw: st.DrawFn) -> Request:
        template = draw(st.sampled_from(PATHS))
        # A run is real work (a notebook): run-now targets a workflow that never exists.
        workflow = "nightly" if template.endswith("/run") else draw(PLAUSIBLE_WORKFLOW)
        path = (
            template.replace("{org}", draw(st.sampled_from(["fuzzco-com", "acme-com", "x"])))
            .replace("{provider}", draw(st.sampled_from(["hubspot", "slack", "google_calendar"])))
            .replace("{uuid}", str(draw(st.uuids())))
            .replace("{workflow}", workflow)
        )
        method = draw(st.sampled_from(METHODS))
        headers = dict(callers[draw(st.sampled_from(sorted(callers)))])
        if draw(st.booleans()):
            headers["Origin"] = "https://evil.example"
        query = "&".join(
            f"{quote(key)}={quote(value.encode('utf-8', 'surrogatepass'))}"
            for key, value in draw(QUERY).items()
        )
        return method, path, headers, query, draw(BODY)

    return build()


PLAUSIBLE_WORKFLOW = st.sampled_from(["fuzzflow", "nightly", "x.y-z_1"])


def _send(client: httpx.Client, request: Request) -> httpx.Response:
    method, path, headers, query, (kind, body) = request
    url = f"{path}?{query}" if query else path
    if kind == "json":
        # ensure_ascii: a lone surrogate travels as the JSON escape "\ud800", as browsers send it
        content = json.dumps(body, ensure_ascii=True).encode()
        headers = {**headers, "Content-Type": "application/json"}
    else:
        assert isinstance(body, bytes)
        content = body
    return client.request(method, url, headers=headers, content=content)


def _check(reply: httpx.Response, request: Request) -> None:
    method, path, _, query, _ = request
    where = (method, path, query[:200], reply.status_code, reply.text[:500])
    assert reply.status_code < 500, where
    assert not [h for h in reply.headers if h.lower().startswith("access-control-allow")], where
    if reply.status_code >= 400:
        error = reply.json()
        assert "error" in error or "message" in error, where


def test_no_input_makes_the_server_fail(server: Server, callers: dict[str, dict[str, str]]) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
            ],
        )
        @given(_requests(callers))
        def check(request: Request) -> None:
            _check(_send(client, request), request)

        check()


SWEEP_CALLERS = ["org admin", "member", "public", "admin key"]
HOSTILE = ["\x00", "\x1b[2J", "\x9b", "\ud800", 10**400, "x" * 1_000_000]


@pytest.mark.parametrize("turn", range(len(HOSTILE)), ids=["nul", "esc", "c1", "surrogate",
                                                        "huge-int", "megabyte"])  # fmt: skip
def test_every_route_and_method_survives_each_hostile_value(
    server: Server, callers: dict[str, dict[str, str]], turn: int
) -> None:
    """Deterministic sweep: every route and method gets each hostile value in its fields.

    The caller rotates with the route, the method and the value, so over the sweep each route
    and method meets each caller. A megabyte goes into one field at a time.
    """
    value = HOSTILE[turn]
    query = "&".join(
        f"{key}={quote(str(value)[:2000].encode('utf-8', 'surrogatepass'))}"
        for key in ("domain", "status", "next", "provider")
    )
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for i, template in enumerate(PATHS):
            path = (
                template.replace("{org}", "fuzzco-com")
                .replace("{provider}", "hubspot")
                .replace("{uuid}", "00000000-0000-0000-0000-000000000000")
                .replace("{workflow}", "nightly")
            )
            for j, method in enumerate(METHODS):
                fields: dict[str, object]
                if isinstance(value, str) and len(value) > 10_000:
                    fields = {FIELD_NAMES[(i + j) % len(FIELD_NAMES)]: value}
                else:
                    fields = {name: value for name in FIELD_NAMES}
                caller = SWEEP_CALLERS[(i + j + turn) % len(SWEEP_CALLERS)]
                request: Request = (method, path, callers[caller], query, ("json", fields))
                _check(_send(client, request), request)
