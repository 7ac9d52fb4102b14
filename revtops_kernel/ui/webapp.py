"""The web app's page (``notebooks/app.ipynb`` under Voila): header, chat, integrations, artifacts.

Everything on it works as the organization of the identity the server signed for this kernel
(`revtops_kernel.app_identity`); nothing the browser sends can change it.
"""

from __future__ import annotations

import html
import logging
import os
import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from revtops_kernel.app_identity import HEADER_ENV, AppIdentity, kernel_identity
from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store.database import Database
from revtops_kernel.ui.chat_panel import ChatPanel
from revtops_kernel.ui.gallery import ArtifactsGallery
from revtops_kernel.ui.integrations_panel import IntegrationsPanel
from revtops_kernel.ui.usage_view import usage_view

if TYPE_CHECKING:  # imported when the tab first opens: the first screen is the chat alone
    from revtops_kernel.ui.risk_view import RiskDeal, RiskView

HEADER_STYLE = """<style>
.rt-header { display: flex; justify-content: space-between; align-items: center;
  font-family: var(--jp-ui-font-family, system-ui, sans-serif); padding: 6px 4px 10px;
  border-bottom: 1px solid var(--jp-border-color1, #d0d7de); margin-bottom: 8px;
  color: var(--jp-ui-font-color1, #1f2328); }
.rt-header .rt-brand { font-size: 18px; font-weight: 700; }
.rt-header .rt-who { color: var(--jp-ui-font-color2, #57606a); font-size: 13px; }
.rt-header .rt-org { font-weight: 600; color: var(--jp-ui-font-color1, #1f2328); }
.rt-header a { color: var(--jp-content-link-color, #0969da); }
</style>"""

log = logging.getLogger(__name__)
# How long a front end's first request for the widgets' state waits for the visitor's app to be
# bound (`WebApp.for_kernel`): under the 4 s after which ipywidgets' front end stops waiting.
STATE_WAIT_SECONDS = 3.0
VISITOR_WAIT_SECONDS = 60.0  # what a tab opened while the app is being bound waits for it

TABS = ("Chat", "At risk", "Integrations", "Artifacts", "Usage")
NO_KEY_NOTICE = (
    "Without a Claude API key the chat answers the questions its verified queries cover (try a "
    "suggestion); for any other question set `ANTHROPIC_API_KEY` where the app runs and restart "
    "it. Integrations, sync and saved artifacts work without it."
)


def header_html(identity: AppIdentity | None, *, sign_out_url: str) -> str:
    """The page's header: the brand, and who is signed in at which organization (the brand
    alone until the visitor is known)."""
    if identity is None:
        brand = '<span class="rt-brand">Revtops Workbench</span>'
        return f'{HEADER_STYLE}<div class="rt-header">{brand}</div>'
    who = html.escape(identity.name or identity.email or "Signed in")
    email = f" · {html.escape(identity.email)}" if identity.email else ""
    return (
        f'{HEADER_STYLE}<div class="rt-header"><span class="rt-brand">Revtops Workbench</span>'
        f'<span class="rt-who">{who}{email} · <span class="rt-org">'
        f"{html.escape(identity.organization_id)}</span> · "
        f'<a href="{html.escape(sign_out_url)}">Sign out</a></span></div>'
    )


def preload() -> None:
    """Import what building the app for a visitor needs, and the chat's suggestions, before
    the visitor is known. A preheated kernel runs this while it sits in the pool, so the
    visitor's page no longer waits for the copilot's stack (the answering layer, anthropic,
    pandas: 5-15 s of imports here) to load after they arrive."""
    import revtops_kernel.answering  # noqa: F401  (what CopilotBackend.create imports)
    from revtops_kernel.ui.chat_panel import default_suggestions

    default_suggestions()  # the router and the verified queries, loaded and cached


class WebApp(widgets.VBox):
    """The header and the chat first; At risk, Integrations, Artifacts and Usage are built
    when opened (the first screen carries one chat widget instead of every tab's widgets).

    Built for an identity, or built without one and bound later (`bind`): a preheated kernel
    builds the page before its visitor is known, holding no organization's data until then."""

    def __init__(
        self,
        identity: AppIdentity | None,
        *,
        db: Database | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__()
        self.add_class("revtops-app")
        self.identity: AppIdentity | None = None
        self._bound = threading.Event()  # set by bind, whether it worked or not
        self.settings = settings or load_settings()
        self.db = db or Database.from_settings(self.settings)
        self.chat = ChatPanel(deferred=True)  # its organization comes with the identity
        self.gallery: ArtifactsGallery | None = None
        self.integrations: IntegrationsPanel | None = None
        self.at_risk: RiskView | None = None
        self._pages = {title: widgets.VBox() for title in TABS[1:]}
        self.tabs = widgets.Tab(children=[self.chat, *self._pages.values()])
        for index, title in enumerate(TABS):
            self.tabs.set_title(index, title)
        self.tabs.observe(self._on_tab, names="selected_index")
        self.header = widgets.HTML(header_html(None, sign_out_url=self._sign_out_url()))
        self.chat.notice = self._notice()
        self.children = [self.header, self.tabs]
        if identity is not None:
            self.bind(identity)

    @staticmethod
    def _sign_out_url() -> str:
        return os.environ.get("VOILA_BASE_URL", "/") + "logout"

    def bind(self, identity: AppIdentity) -> None:
        """Work as ``identity`` from now on: the header says who, the chat lists their
        conversations and answers for their organization. Once per app: a kernel serves one
        visitor."""
        if self.identity is not None or self._bound.is_set():
            raise RuntimeError("this app is bound to its visitor already")
        try:
            self.identity = identity
            self.header.value = header_html(identity, sign_out_url=self._sign_out_url())
            self.chat.attach(
                db=self.db,
                settings=self.settings,
                org=identity.organization_id,
                user_id=identity.user_uuid,
            )
        finally:
            self._bound.set()

    def fail(self, message: str) -> None:
        """No visitor can be bound (their identity did not verify): say so in the chat."""
        self._bound.set()
        self.chat.fail(message)

    def _visitor(self) -> AppIdentity:
        """The bound identity, waiting for it if the page is being bound right now."""
        self._bound.wait(VISITOR_WAIT_SECONDS)
        if self.identity is None:
            raise RuntimeError("no signed-in identity reached this kernel")
        return self.identity

    def open_integrations(self) -> IntegrationsPanel:
        if self.integrations is None:
            identity = self._visitor()
            self.integrations = IntegrationsPanel(
                self.db, self.settings, org=identity.organization_id,
                user_email=identity.email or None,
            )  # fmt: skip
            self._pages["Integrations"].children = [self.integrations]
        else:
            self.integrations.refresh()
        return self.integrations

    def open_at_risk(self) -> RiskView:
        """The deals at risk, measured on the user's today (the chat knows their timezone)."""
        from revtops_kernel.ui.risk_view import RiskView

        if self.at_risk is None:
            identity = self._visitor()
            org = identity.organization_id
            self.at_risk = RiskView(
                self.db, org=org, author=identity.name or identity.email or org,
                timezone=self.chat.timezone,
                brief_url=self._brief_url if "VOILA_BASE_URL" in os.environ else None,
            )  # fmt: skip
            self._pages["At risk"].children = [self.at_risk]
        else:  # the user's day (their timezone) or the data may have moved since it was read
            self.at_risk.timezone = self.chat.timezone
            self.at_risk.refresh_if_stale()
        return self.at_risk

    @staticmethod
    def _brief_url(deal: RiskDeal, timezone: str) -> str:
        # Served by Voila: the server's endpoint answers for the signed-in visitor's
        # organization (their cookie), so the link is one click and no PDF crosses the kernel.
        base = os.environ["VOILA_BASE_URL"]
        query = urllib.parse.urlencode({"timezone": timezone})
        return f"{base}revtops/api/deals/{deal.deal_id}/brief.pdf?{query}"

    def open_artifacts(self) -> ArtifactsGallery:
        if self.gallery is None:
            identity = self._visitor()
            org = identity.organization_id
            self.gallery = ArtifactsGallery(
                self.db, org=org, author=identity.name or identity.email or org
            )
            self._pages["Artifacts"].children = [self.gallery]
        self.gallery.timezone = self.chat.timezone
        self.gallery.refresh()
        return self.gallery

    def _notice(self) -> str:
        """Say up front what is not configured, instead of at the first question. Shown by the
        empty chat (under its first line), not above the tabs: the page's first screen draws
        the chat where the live one will be, and a notice there pushed it down ~60 px."""
        if self.settings.anthropic_api_key is not None:
            return ""
        return NO_KEY_NOTICE

    def __repr__(self) -> str:
        # The page's plain-text fallback (and what tests read without a browser).
        if self.identity is None:
            return "<Revtops Workbench>"
        who = self.identity.email or self.identity.name
        return f"<Revtops Workbench: {who} at {self.identity.organization_id}>"

    @classmethod
    def for_kernel(cls) -> WebApp:
        """The app for the visitor this kernel serves (verified by the server).

        A preheated kernel builds the page before its visitor exists, so the page is served
        at once when they arrive: the header, the tabs and an empty chat, none of it any
        organization's. A thread waits for the visitor's signed identity (`kernel_identity`:
        Voila's request-info socket, which the server fills when it hands this kernel to the
        visitor) and binds the app to it while the browser loads Voila's front end. Until
        then the widgets' state (`hold_widget_state`), the chat's messages and the tabs wait.
        A kernel started for its visitor (cold) has the identity already and binds at once."""
        preload()  # the slow imports go first, before any visitor
        preheated = os.environ.get("VOILA_PREHEAT") == "True" and not os.environ.get(HEADER_ENV)
        if not preheated:
            return cls(kernel_identity())
        app = cls(None)
        hold_widget_state(app._bound.wait)
        threading.Thread(target=app._bind_visitor, name="revtops-visitor", daemon=True).start()
        return app

    def _bind_visitor(self) -> None:
        try:
            identity = kernel_identity()
        except Exception as exc:  # IdentityError, or the socket: the page says it
            log.warning("no visitor's identity for this kernel: %s", exc)
            self.fail(str(exc))
            return
        try:
            self.bind(identity)
        except Exception:
            log.exception("the web app could not be built for its visitor")
            self.fail("The workspace could not be opened; the details are in the kernel log.")

    def open_usage(self) -> widgets.HTML:
        """What the model cost the organization, by day, with its caps (read at each opening)."""
        org = self._visitor().organization_id
        view = usage_view(self.db, self.settings, org, by="day")
        self._pages["Usage"].children = [view]
        return view

    def _on_tab(self, change: dict[str, object]) -> None:
        if self.identity is None:
            self._visitor()  # a tab opened while the page is being bound: wait for it
        if change.get("new") == TABS.index("Usage"):
            self.open_usage()
        elif change.get("new") == TABS.index("Artifacts"):
            self.open_artifacts()
        elif change.get("new") == TABS.index("Integrations"):
            self.open_integrations()
        elif change.get("new") == TABS.index("At risk"):
            self.open_at_risk()


def hold_widget_state(ready: Callable[[float], Any], timeout: float = STATE_WAIT_SECONDS) -> None:
    """Make a front end's first request for the widgets' state wait (up to ``timeout``) until
    ``ready``: the state it gets then is the bound app's. Updates sent before a front end has
    its models are dropped by it, so without the wait a page that connected while the app was
    being bound could keep the header without its visitor. ipywidgets' front end opens its
    control comm, then asks for every widget's state on it; the wait is in the comm's opening,
    on the kernel's main thread, so the request is answered after it."""
    from ipywidgets import Widget
    from ipywidgets.comm import get_comm_manager

    manager = get_comm_manager()
    if manager is None:  # not in a kernel
        return
    opened = Widget.handle_control_comm_opened

    def wait_then_open(comm: Any, message: Any) -> None:
        ready(timeout)
        opened(comm, message)

    manager.register_target("jupyter.widget.control", wait_then_open)
