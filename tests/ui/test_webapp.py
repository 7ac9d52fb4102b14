"""The web app's page as widgets: header from the verified identity, escaped; setup notices."""

from __future__ import annotations

from revtops_kernel.app_identity import identity_for
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.ui.webapp import WebApp


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
