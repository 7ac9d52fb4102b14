"""The artifacts gallery of the web app: the organization's charts, tables, reports, dashboards.

Opening one re-runs its stored spec (no model involved) and draws it; "PDF" renders it through
WeasyPrint and offers the file as a download link.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import ipywidgets as widgets

from revtops_kernel.errors import RevtopsError
from revtops_kernel.store.database import Database
from revtops_kernel.ui import views
from revtops_kernel.ui.chart_widget import PlotlyChart
from revtops_kernel.ui.markdown import render_markdown

if TYPE_CHECKING:
    from revtops_kernel.artifacts.service import ArtifactSummary

log = logging.getLogger(__name__)


def artifact_labels(items: Sequence[ArtifactSummary], timezone: str) -> list[str]:
    """One line per artifact: title, kind and local time to the minute; artifacts that would
    still read alike (the same chart asked for twice in a minute) get their short id, so no
    two rows of the list look the same."""
    zone = ZoneInfo(timezone)
    labels = []
    for item in items:
        local = item.created_at.replace(tzinfo=item.created_at.tzinfo or UTC).astimezone(zone)
        labels.append(f"{item.title} · {item.kind} · {local:%Y-%m-%d %H:%M}")
    repeated = {label for label, count in Counter(labels).items() if count > 1}
    return [
        f"{label} · #{str(item.artifact_id)[:8]}" if label in repeated else label
        for label, item in zip(labels, items, strict=True)
    ]


class ArtifactsGallery(widgets.VBox):
    def __init__(self, db: Database, *, org: str, author: str, timezone: str = "UTC") -> None:
        super().__init__()
        self.add_class("rt-gallery")
        self.db, self.org, self.author, self.timezone = db, org, author, timezone
        self.picker = widgets.Select(options=[], rows=10, layout=widgets.Layout(width="100%"))
        self.open_button = widgets.Button(description="Open", icon="folder-open")
        self.pdf_button = widgets.Button(description="PDF", icon="download")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.download = widgets.HTML()
        self.view = widgets.VBox()
        self.view.add_class("rt-artifact-view")
        self.open_button.on_click(lambda _: self.open_selected())
        self.pdf_button.on_click(lambda _: self.pdf_selected())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.children = [
            widgets.HTML(views.STYLE),
            self.picker,
            widgets.HBox([self.open_button, self.pdf_button, self.refresh_button, self.download]),
            self.view,
        ]
        self.refresh()

    def refresh(self) -> None:
        from revtops_kernel.artifacts import list_artifacts

        items = list(reversed(list_artifacts(self.db, org=self.org)))  # newest first
        labels = artifact_labels(items, self.timezone)
        self.picker.options = list(zip(labels, [item.artifact_id for item in items], strict=True))
        empty = not items
        self.open_button.disabled = self.pdf_button.disabled = empty
        if empty:
            self.view.children = [
                widgets.HTML('<p class="rt-status">No artifacts yet: ask for a chart.</p>')
            ]

    @property
    def selected(self) -> uuid.UUID | None:
        value = self.picker.value
        return value if isinstance(value, uuid.UUID) else None

    def open_selected(self) -> None:
        from revtops_kernel.artifacts import render_artifact

        if self.selected is None:
            return
        try:
            rendered = render_artifact(self.db, self.selected, org=self.org)
        except RevtopsError as exc:
            self.view.children = [widgets.HTML(views.error_card(str(exc)))]
            return
        pieces: list[widgets.Widget] = [
            widgets.HTML(views.artifact_title(rendered.title, verified=rendered.verified))
        ]
        if rendered.markdown:
            text = render_markdown(rendered.markdown)
            pieces.append(widgets.HTML(f'<div class="rt-text">{text}</div>'))
        for part in rendered.parts:
            if part.error:
                pieces.append(widgets.HTML(views.error_card(part.error)))
            elif part.figure is not None:
                pieces.append(PlotlyChart(part.figure))
            elif (table := part.table_preview()) is not None:
                pieces.append(widgets.HTML(views.table_html(table)))
        self.view.children = pieces

    def pdf_selected(self) -> None:
        from revtops_kernel.artifacts import artifact_to_pdf

        if self.selected is None:
            return
        try:
            pdf = artifact_to_pdf(
                self.db, self.selected, org=self.org, author=self.author, timezone=self.timezone
            )
        except RevtopsError as exc:
            self.download.value = views.error_card(str(exc))
            return
        title = str(self.picker.label or "artifact").split(" · ", 1)[0]
        name = (re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "artifact") + ".pdf"
        payload = base64.b64encode(pdf).decode()
        self.download.value = (
            '<a class="rt-download" style="color:#0969da;text-decoration:underline" '
            f'download="{html.escape(name)}" '
            f'href="data:application/pdf;base64,{payload}">Download {html.escape(name)}</a>'
        )
