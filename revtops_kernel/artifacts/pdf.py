"""Artifacts and conversations as PDF: Jinja2 HTML and CSS, laid out by WeasyPrint.

Each chart is re-drawn from its stored spec as SVG (``svg.py``), so it stays vector in the PDF
and no browser is needed. Tables repeat their header on every page. Every page carries the
organization, the author and the generation time in the reader's time zone, and its number.

Everything that comes from data or a model is escaped by Jinja2's autoescape, except markdown,
which is rendered and sanitized first (``markdown.py``); WeasyPrint may fetch nothing but the
``data:`` URIs of the charts, so no external URL is ever requested while rendering.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import select

from revtops_kernel.artifacts.data import humanize
from revtops_kernel.artifacts.markdown import markdown_html, text_html
from revtops_kernel.artifacts.service import (
    ArtifactNotFoundError,
    RenderedArtifact,
    RenderedPart,
    render_artifact,
)
from revtops_kernel.artifacts.specs import ChartSpec, DashboardSpec, MarkdownBlock, TableSpec
from revtops_kernel.artifacts.style import format_value
from revtops_kernel.artifacts.svg import chart_svg
from revtops_kernel.artifacts.transcript import (
    AnswerText,
    ArtifactRef,
    QueryCall,
    conversation_doc,
)
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import Organization
from revtops_kernel.timeutil import utcnow

log = logging.getLogger(__name__)

PAGE_WIDTH_INCHES = 7.0  # A4 less the margins
CONVERSATION_ROWS = 20  # rows of each query's result shown in a conversation PDF


@dataclass(frozen=True)
class PageInfo:
    """What every page's header and footer show."""

    org_name: str
    author: str
    generated: str  # "2026-11-26 09:30 CET (Europe/Paris)"
    document_title: str


@dataclass(frozen=True)
class Block:
    """One piece of an artifact as the template draws it."""

    kind: str  # chart, table, markdown, error
    title: str = ""
    description: str = ""
    svg_uri: str = ""
    html: Markup = field(default_factory=Markup)
    columns: list[str] = field(default_factory=list)
    numeric: list[bool] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""
    sql: str = ""


@dataclass(frozen=True)
class ArtifactView:
    title: str
    kind: str
    intro: Markup
    description: str
    rows: list[list[Block]]  # a dashboard's charts share rows; everything else has its own
    grid_columns: int = 1


def artifact_to_pdf(
    db: Database, artifact_id: uuid.UUID | str, *, org: str, author: str, timezone: str
) -> bytes:
    """Re-render a stored artifact on today's data and lay it out as a PDF."""
    return html_to_pdf(artifact_html(db, artifact_id, org=org, author=author, timezone=timezone))


def conversation_to_pdf(
    db: Database, conversation_id: uuid.UUID | str, *, org: str, author: str, timezone: str
) -> bytes:
    """A conversation as a PDF: each question, the answer, the SQL it ran and the first rows
    each query returned (as stored with the conversation), its artifacts."""
    html = conversation_html(db, conversation_id, org=org, author=author, timezone=timezone)
    return html_to_pdf(html)


def artifact_html(
    db: Database, artifact_id: uuid.UUID | str, *, org: str, author: str, timezone: str
) -> str:
    """The HTML that ``artifact_to_pdf`` lays out."""
    rendered = render_artifact(db, artifact_id, org=org)
    page = _page_info(db, org=org, author=author, timezone=timezone, title=rendered.title)
    return str(_template("artifact.html.j2").render(page=page, artifact=_artifact_view(rendered)))


def conversation_html(
    db: Database, conversation_id: uuid.UUID | str, *, org: str, author: str, timezone: str
) -> str:
    """The HTML that ``conversation_to_pdf`` lays out."""
    doc = conversation_doc(db, conversation_id, org=org)
    page = _page_info(db, org=org, author=author, timezone=timezone, title=doc.title)
    turns = []
    for turn in doc.turns:
        entries: list[dict[str, Any]] = []
        for entry in turn.entries:
            if isinstance(entry, AnswerText):
                entries.append({"kind": "answer", "html": Markup(markdown_html(entry.markdown))})
            elif isinstance(entry, QueryCall):
                entries.append({"kind": "query", "call": entry, "result": _result_block(entry)})
            elif isinstance(entry, ArtifactRef):
                entries.append(_artifact_entry(db, entry, org=org))
        question = Markup(text_html(turn.question)) if turn.question is not None else None
        turns.append({"question": question, "entries": entries})
    return str(_template("conversation.html.j2").render(page=page, title=doc.title, turns=turns))


# --- steps -------------------------------------------------------------------------------------


def _result_block(call: QueryCall) -> Block | None:
    """The first rows a query returned, as stored with the conversation, with their count."""
    if not call.ok or not call.columns:
        return None
    shown = call.rows[:CONVERSATION_ROWS]
    total = call.row_count if call.row_count is not None else len(call.rows)
    numeric = [
        all(_is_number(row[i]) for row in shown if row[i] is not None) and bool(shown)
        for i in range(len(call.columns))
    ]
    note = f"{total:,} row{'s' if total != 1 else ''}"
    if len(shown) < total:
        note = f"{len(shown):,} of {total:,} rows"
    rows = [[_cell(value, "number", "USD") for value in row] for row in shown]
    return Block("table", columns=list(call.columns), numeric=numeric, rows=rows, note=note)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _artifact_entry(db: Database, ref: ArtifactRef, *, org: str) -> dict[str, Any]:
    try:
        rendered = render_artifact(db, ref.artifact_id, org=org)
    except ArtifactNotFoundError:
        return {"kind": "missing", "title": ref.title}
    return {"kind": "artifact", "artifact": _artifact_view(rendered)}


def _page_info(db: Database, *, org: str, author: str, timezone: str, title: str) -> PageInfo:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {timezone!r}: use an IANA name such as Europe/Paris"
        ) from exc
    local = utcnow().astimezone(zone)
    with db.connect() as connection:
        name = connection.execute(
            select(Organization.name).where(Organization.id == org)
        ).scalar_one_or_none()
    zone_name = local.tzname() or timezone
    generated = f"{local:%Y-%m-%d %H:%M} {zone_name}"
    if zone_name != timezone:
        generated += f" ({timezone})"
    return PageInfo(name or org, author, generated, title)


def _artifact_view(rendered: RenderedArtifact) -> ArtifactView:
    spec = rendered.spec
    columns = spec.grid_columns if isinstance(spec, DashboardSpec) else 1
    blocks = [_block(part, columns) for part in rendered.parts]
    rows: list[list[Block]] = []
    for block in blocks:
        # Charts of a dashboard share rows; tables stay full width so they can span pages.
        joins_row = columns > 1 and block.kind == "chart"
        if joins_row and rows and rows[-1][0].kind == "chart" and len(rows[-1]) < columns:
            rows[-1].append(block)
        else:
            rows.append([block])
    intro = getattr(spec, "markdown", "") or ""
    return ArtifactView(
        title=rendered.title,
        kind=rendered.kind,
        intro=Markup(markdown_html(intro)) if intro else Markup(""),
        # A chart's or table's own caption shows under it; a dashboard's under its title.
        description=(spec.description or "") if isinstance(spec, DashboardSpec) else "",
        rows=rows,
        grid_columns=columns,
    )


def _block(part: RenderedPart, columns: int) -> Block:
    spec = part.spec
    if isinstance(spec, MarkdownBlock):
        return Block("markdown", html=Markup(markdown_html(spec.text)))
    description = spec.description or ""
    if part.error is not None or part.frame is None:
        note = f"This {spec.kind} could not be re-run: {part.error}"
        return Block("error", title=spec.title, note=note, sql=spec.source_label())
    if isinstance(spec, ChartSpec):
        width = PAGE_WIDTH_INCHES / columns
        svg = chart_svg(spec, part.frame, width_inches=width, height_inches=min(3.4, width * 0.7))
        uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")
        return Block("chart", spec.title, description, svg_uri=uri, sql=spec.source_label())
    return _table_block(spec, part)


def _table_block(spec: TableSpec, part: RenderedPart) -> Block:
    assert part.frame is not None
    frame = part.frame[list(spec.columns)] if spec.columns else part.frame
    names = [str(column) for column in frame.columns]
    formats = [spec.formats.get(name, "number") for name in names]
    rows = [
        [_cell(value, fmt, spec.currency) for value, fmt in zip(row, formats, strict=True)]
        for row in frame.itertuples(index=False)
    ]
    note = f"{len(rows):,} rows" + (
        " (the query had more; only these are shown)" if part.truncated else ""
    )
    return Block(
        "table",
        spec.title,
        spec.description or "",
        columns=[spec.labels.get(name, humanize(name)) for name in names],
        numeric=[pd.api.types.is_numeric_dtype(frame[name]) for name in names],
        rows=rows,
        note=note,
        sql=spec.source_label(),
    )


def _cell(value: Any, value_format: str, currency: str) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp | dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if moment.time() == dt.time() and not value.tzinfo:
            return f"{moment:%Y-%m-%d}"
        return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalar
        if isinstance(value, bool):
            return "true" if value else "false"
    return format_value(value, value_format, currency)


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("revtops_kernel.artifacts", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment


def _template(name: str) -> Any:
    return _environment().get_template(name)


def html_to_pdf(html: str) -> bytes:
    """Lay out report HTML with WeasyPrint; only ``data:`` URIs may be fetched."""
    import weasyprint

    document = weasyprint.HTML(string=html, url_fetcher=_url_fetcher())
    pdf: bytes = document.write_pdf()
    return pdf


def _url_fetcher() -> Any:
    """Fetch ``data:`` URIs only: a stray external URL must never be requested."""
    import weasyprint

    fetcher_class = getattr(weasyprint, "URLFetcher", None)
    if fetcher_class is not None:
        return fetcher_class(allowed_protocols={"data"}, allow_redirects=False)

    def fetch_data_only(url: str, *args: Any, **kwargs: Any) -> Any:  # WeasyPrint < 67
        if not url.startswith("data:"):
            raise ValueError(f"refused to fetch {url!r} while rendering a PDF")
        return weasyprint.default_url_fetcher(url, *args, **kwargs)

    return fetch_data_only
