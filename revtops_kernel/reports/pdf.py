"""The digest as a PDF, laid out by the artifacts' PDF machinery (``artifacts.pdf``).

The digest is drawn as a report artifact that is never stored: its headline (and narrative) is
the report's markdown, its charts (SVG, vector in the PDF) and tables are the report's parts,
with the rows the digest already fetched. Same templates, same escaping, same page header and
footer as every other PDF the product makes.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace

from revtops_kernel.artifacts import pdf as artifact_pdf
from revtops_kernel.artifacts.service import RenderedArtifact, RenderedPart
from revtops_kernel.artifacts.specs import ChartSpec, ReportSpec
from revtops_kernel.reports.digest import Digest, report_parts
from revtops_kernel.reports.period import zone
from revtops_kernel.reports.waterfall import is_waterfall, waterfall_svg

DEFAULT_AUTHOR = "Revtops pipeline digest"


def digest_html(digest: Digest, *, author: str = DEFAULT_AUTHOR) -> str:
    """The HTML that ``digest_pdf`` lays out."""
    parts = report_parts(digest)
    spec = ReportSpec(title=digest.title, blocks=[part.spec for part in parts])
    rendered = RenderedArtifact(
        artifact_id=uuid.uuid5(uuid.NAMESPACE_URL, f"digest:{digest.org}:{digest.period}"),
        kind="report",
        title=digest.title,
        spec=spec,
        parts=parts,
    )
    local = digest.generated_at.astimezone(zone(digest.timezone))
    zone_name = local.tzname() or digest.timezone
    generated = f"{local:%Y-%m-%d %H:%M} {zone_name}"
    if zone_name != digest.timezone:
        generated += f" ({digest.timezone})"
    page = artifact_pdf.PageInfo(digest.org_name, author, generated, digest.title)
    # The artifact PDF's own view and template: a digest looks like every other report.
    view = artifact_pdf._artifact_view(rendered)
    view = replace(
        view, rows=[[_waterfall_block(block, parts) for block in row] for row in view.rows]
    )
    template = artifact_pdf._template("digest.html.j2")
    return str(
        template.render(
            page=page, artifact=view, period=digest.period.describe(), timezone=digest.timezone
        )
    )


def _waterfall_block(block: artifact_pdf.Block, parts: list[RenderedPart]) -> artifact_pdf.Block:
    """The movement chart drawn as a waterfall (the artifacts' own drawing would be plain bars):
    same place, title, caption and query as the artifacts laid out."""
    if block.kind != "chart":
        return block
    for part in parts:
        spec = part.spec
        if (
            is_waterfall(spec)
            and isinstance(spec, ChartSpec)
            and part.frame is not None
            and spec.title == block.title
        ):
            width = artifact_pdf.PAGE_WIDTH_INCHES
            svg = waterfall_svg(part.frame, width_inches=width, height_inches=3.2)
            uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")
            return replace(block, svg_uri=uri)
    return block


def digest_pdf(digest: Digest, *, author: str = DEFAULT_AUTHOR) -> bytes:
    """The digest as PDF bytes (A4, charts as vector SVG)."""
    return artifact_pdf.html_to_pdf(digest_html(digest, author=author))
