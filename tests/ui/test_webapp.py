"""The web app's page as widgets: header from the verified identity, escaped; setup notices."""

from __future__ import annotations

import threading

import pytest

from revtops_kernel.app_identity import HEADER_ENV, AppIdentity, identity_for
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.ui.copilot_backend import CopilotBackend
from revtops_kernel.ui.webapp import WebApp
from tests.ui.wire import Wire


def build(**env: str) -> WebApp:
    settings = load_settings(**env)
    db = Database.from_settings(settings)
    upgrade(db)
    identity = identity_for(
        organization_id="acme-com",
        user_id=None,
        email="ana@acme.com",
        name="<b>Ana</b>",
        role="admin",
    )
    return WebApp(identity, db=db, settings=settings)


def test_header_shows_the_verified_identity_escaped() -> None:
    app = build()
    header = app.children[0].value
    assert "acme-com" in header and "ana@acme.com" in header
    assert "&lt;b&gt;Ana&lt;/b&gt;" in header and "<b>Ana</b>" not in header
    assert repr(app) == "<Revtops Workbench: ana@acme.com at acme-com>"
    titles = [app.tabs.get_title(i) for i in range(5)]
    assert titles == ["Chat", "At risk", "Integrations", "Artifacts", "Usage"]


def test_a_missing_api_key_is_said_up_front_and_only_then() -> None:
    without = build()
    # in the chat's empty state, not above the tabs (that pushed the question box down)
    assert "ANTHROPIC_API_KEY" in without.chat.notice
    assert without.children == (without.children[0], without.tabs)
    with_key = build(ANTHROPIC_API_KEY="sk-ant-test")
    assert with_key.chat.notice == ""
    assert len(with_key.children) == 2  # header and tabs


def test_the_usage_tab_is_built_when_opened_and_shows_the_ledger() -> None:
    app = build(REVTOPS_DAILY_COST_CAP_USD="5")
    usage_page = app.tabs.children[4]
    assert usage_page.children == ()  # nothing read until the tab opens
    app.tabs.selected_index = 4
    (view,) = usage_page.children
    assert "Total: $0.0000 in 0 calls" in view.value
    assert "Daily cap: $0.0000 of $5.00" in view.value


def visitor(org: str = "acme-com", email: str = "ana@acme.com") -> AppIdentity:
    return identity_for(organization_id=org, user_id=None, email=email, name="Ana", role="admin")


def test_a_page_built_before_its_visitor_holds_no_organization_until_bound() -> None:
    """A preheated kernel builds the page with no identity: the header is the brand alone, the
    chat has no backend and lists nothing. Binding gives both the visitor's organization, once:
    a kernel never serves a second visitor."""
    settings = load_settings()
    db = Database.from_settings(settings)
    upgrade(db)
    app = WebApp(None, db=db, settings=settings)
    assert "Revtops Workbench" in app.header.value and 'class="rt-who"' not in app.header.value
    assert app.identity is None and app.chat.backend is None
    assert app.chat.state.conversations == [] and repr(app) == "<Revtops Workbench>"
    assert app.children == (app.header, app.tabs)

    wire = Wire(app.chat)
    app.bind(visitor())
    assert "acme-com" in app.header.value and "ana@acme.com" in app.header.value
    backend = app.chat.backend
    assert isinstance(backend, CopilotBackend) and backend.org == "acme-com"
    assert wire.of("list")  # its conversations, listed at binding
    with pytest.raises(RuntimeError, match="bound to its visitor already"):
        app.bind(visitor("globex-com", "gus@globex.com"))
    assert app.identity is not None and app.identity.organization_id == "acme-com"


def test_the_chat_waits_for_the_visitor_before_answering_its_view() -> None:
    """A view's hello that arrives while the page is being bound is answered after the binding,
    with the bound chat's state (a view that got the empty state first would keep it)."""
    settings = load_settings()
    app = WebApp(None, db=Database.from_settings(settings), settings=settings)
    upgrade(app.db)
    wire = Wire(app.chat)
    hello = threading.Thread(target=lambda: wire.browser(t="hello", tz="Europe/Paris"))
    hello.start()
    hello.join(0.3)
    assert hello.is_alive() and not wire.of("state")  # held
    app.bind(visitor())
    hello.join(10)
    assert not hello.is_alive()
    assert wire.of("state") and app.chat.timezone == "Europe/Paris"


def test_a_preheated_kernel_serves_its_page_first_and_binds_the_visitor_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """for_kernel in a preheated kernel returns the page at once (Voila serves it when the
    visitor arrives) and binds the identity the server signed when it comes; one that does not
    verify leaves the page bound to nobody, saying why."""
    from revtops_kernel.errors import IdentityError
    from revtops_kernel.ui import webapp

    monkeypatch.setenv("VOILA_PREHEAT", "True")
    monkeypatch.delenv(HEADER_ENV, raising=False)
    monkeypatch.setattr(webapp, "preload", lambda: None)
    arrived = threading.Event()

    def identity_when_visited() -> AppIdentity:
        assert arrived.wait(10)
        return visitor()

    monkeypatch.setattr(webapp, "kernel_identity", identity_when_visited)
    upgrade(Database.from_settings(load_settings()))
    app = WebApp.for_kernel()
    assert app.identity is None and app.chat.backend is None  # served before the visitor
    arrived.set()
    assert app._bound.wait(10)
    assert app.identity is not None and app.identity.organization_id == "acme-com"
    assert app.chat.backend is not None

    def forged() -> AppIdentity:
        raise IdentityError("the identity envelope's signature does not verify")

    monkeypatch.setattr(webapp, "kernel_identity", forged)
    refused = WebApp.for_kernel()
    assert refused._bound.wait(10)
    assert refused.identity is None and refused.chat.backend is None
    assert refused.chat.status == "the identity envelope's signature does not verify"
    with pytest.raises(RuntimeError, match="no signed-in identity"):
        refused.open_usage()


def test_a_kernel_started_for_its_visitor_binds_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from revtops_kernel.ui import webapp

    monkeypatch.setenv("VOILA_PREHEAT", "False")
    monkeypatch.setattr(webapp, "preload", lambda: None)
    monkeypatch.setattr(webapp, "kernel_identity", visitor)
    upgrade(Database.from_settings(load_settings()))
    app = WebApp.for_kernel()
    assert app.identity is not None and app.identity.organization_id == "acme-com"
