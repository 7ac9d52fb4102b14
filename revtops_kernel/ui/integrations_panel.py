"""The integrations panel of the web app: providers, their status, Sync now, Connect, Disconnect.

A view over `revtops_kernel.status`, `revtops_kernel.sync` and `revtops_kernel.integrations`,
always for one organization (the signed-in user's, given by the server). A sync runs in a
background thread so the rest of the app stays responsive; the row shows "Syncing…" meanwhile.
"""

from __future__ import annotations

import contextvars
import html
import logging
import threading
from collections.abc import Callable
from datetime import datetime

import ipywidgets as widgets

from revtops_kernel.errors import RevtopsError
from revtops_kernel.settings import Settings
from revtops_kernel.status import ProviderStatus, provider_statuses
from revtops_kernel.store.database import Database
from revtops_kernel.timeutil import iso_z

log = logging.getLogger(__name__)

STYLE = """<style>
.rt-integrations { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 13px; }
.rt-integration { border: 1px solid var(--jp-border-color1, #d0d7de); border-radius: 8px;
  padding: 8px 12px; margin: 6px 0;
  align-items: center; }
.rt-integration .rt-name { font-weight: 600; min-width: 140px; }
.rt-state { border-radius: 10px; padding: 0 8px; font-size: 11px; font-weight: 600; }
.rt-state-connected { background: #dafbe1; color: #116329; }
.rt-state-available { background: #eaeef2; color: #57606a; }
.rt-state-error, .rt-state-failed { background: #ffebe9; color: #82071e; }
.rt-state-syncing { background: #fff8c5; color: #7d4e00; }
.rt-last { color: var(--jp-ui-font-color2, #57606a); font-size: 12px; }
</style>"""


def _when(moment: datetime | None) -> str:
    return iso_z(moment)[:16].replace("T", " ") + " UTC" if moment else "never"


def describe(status: ProviderStatus, *, syncing: bool) -> tuple[str, str]:
    """The state badge and the one-line summary of a provider's row, as HTML."""
    state = "syncing" if syncing else status.status if status.connected else "available"
    label = {"syncing": "Syncing…", "available": "Not connected"}.get(state, state.capitalize())
    badge = f'<span class="rt-state rt-state-{html.escape(state)}">{html.escape(label)}</span>'
    run = status.last_run
    if run is None:
        summary = "never synced" if status.connected else ""
    else:
        summary = (
            f"last sync {html.escape(run.status)} · {_when(run.finished_at or run.started_at)} · "
            f"{run.fetched:,} fetched, {run.upserted:,} written, {run.quarantined:,} quarantined"
        )
        if run.error:
            summary += f" · {html.escape(run.error[:200])}"
    return badge, f'<span class="rt-last">{summary}</span>'


class IntegrationsPanel(widgets.VBox):
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        org: str,
        user_email: str | None = None,
        on_synced: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.add_class("rt-integrations")
        self.db, self.settings, self.org = db, settings, org
        self.user_email = user_email
        self.on_synced = on_synced
        self.message = widgets.HTML()
        self.rows = widgets.VBox()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.children = [widgets.HTML(STYLE), self.rows, self.message, self.refresh_button]
        self._syncing: dict[str, threading.Thread] = {}
        self.sync_buttons: dict[str, widgets.Button] = {}
        self.refresh()

    # --- view -----------------------------------------------------------------------------
    def refresh(self) -> None:
        try:
            statuses = provider_statuses(self.db, self.settings, self.org)
        except RevtopsError as exc:
            self.message.value = f'<div class="rt-error">{html.escape(str(exc))}</div>'
            return
        self.rows.children = [self._row(status) for status in statuses]

    def _row(self, status: ProviderStatus) -> widgets.HBox:
        syncing = status.provider in self._syncing or status.syncing
        badge, summary = describe(status, syncing=syncing)
        name = widgets.HTML(f'<span class="rt-name">{html.escape(status.name)}</span>')
        controls: list[widgets.Widget] = []
        if status.connected:
            sync = widgets.Button(description="Sync now", icon="sync", disabled=syncing)
            sync.on_click(lambda _, p=status.provider: self.sync(p))
            self.sync_buttons[status.provider] = sync
            controls.append(sync)
            if status.via == "nango":
                disconnect = widgets.Button(description="Disconnect", button_style="danger")
                disconnect.on_click(lambda _, p=status.provider: self.disconnect(p))
                controls.append(disconnect)
        elif self.settings.nango_secret_key is not None:
            connect = widgets.Button(description="Connect", button_style="primary")
            connect.on_click(lambda _, p=status.provider: self.connect(p))
            controls.append(connect)
        row = widgets.HBox([name, widgets.HTML(badge), *controls, widgets.HTML(summary)])
        row.add_class("rt-integration")
        row.add_class(f"rt-provider-{status.provider}")
        return row

    # --- actions ----------------------------------------------------------------------------
    def sync(self, provider: str) -> threading.Thread | None:
        """Sync one provider in the background; the row says "Syncing…" until it ends."""
        if provider in self._syncing:
            return None
        context = contextvars.copy_context()
        worker = threading.Thread(
            target=context.run, args=(self._run_sync, provider), name=f"revtops-sync-{provider}"
        )
        self._syncing[provider] = worker
        self.refresh()
        worker.start()
        return worker

    def _run_sync(self, provider: str) -> None:
        from revtops_kernel.sync import run_sync

        try:
            result = run_sync(self.db, self.settings, provider, org=self.org)
            if not result.ok:
                self.message.value = (
                    f'<div class="rt-error">{html.escape(provider)} sync {result.status}: '
                    f"{html.escape(result.error or '')}</div>"
                )
            else:
                self.message.value = ""
        except Exception:
            log.exception("sync of %s failed", provider)
            self.message.value = '<div class="rt-error">The sync failed; see the kernel log.</div>'
        finally:
            self._syncing.pop(provider, None)
            self.refresh()
            if self.on_synced is not None:
                self.on_synced(provider)

    def wait(self, timeout: float | None = None) -> None:
        for worker in list(self._syncing.values()):
            worker.join(timeout)

    def connect(self, provider: str) -> None:
        from revtops_kernel.integrations import EndUser, create_connect_session

        try:
            user = EndUser(id=self.user_email or self.org, email=self.user_email)
            session = create_connect_session(self.settings, self.org, provider, user)
        except RevtopsError as exc:
            self.message.value = f'<div class="rt-error">{html.escape(str(exc))}</div>'
            return
        link = session.connect_link or ""
        if not link.startswith(("https://", "http://")):
            self.message.value = '<div class="rt-error">Nango returned no connect link.</div>'
            return
        self.message.value = (
            f'<a href="{html.escape(link)}" target="_blank" rel="noopener noreferrer">'
            f"Continue connecting {html.escape(provider)} in Nango</a>"
        )

    def disconnect(self, provider: str) -> None:
        from revtops_kernel.integrations import delete_integration

        try:
            delete_integration(self.db, self.settings, self.org, provider)
        except RevtopsError as exc:
            self.message.value = f'<div class="rt-error">{html.escape(str(exc))}</div>'
        self.refresh()
