"""The digest as a PDF, laid out by the artifacts' PDF machinery (``artifacts.pdf``).

The digest is drawn as a report artifact that is never stored: its headline (and narrative) is
the report's markdown, its charts (SVG, vector in the PDF) and tables are the report's parts,
with the rows the digest already fetched. Same templates, same escaping, same page header and
footer as every other PDF the product makes.
"""

from __future__ import annotations

import uuid

from revtops_kernel.artifacts import pdf as artifact_pdf
from revtops_kernel.artifacts.service import RenderedArtifact
from revtops_kernel.artifacts.specs import ReportSpec
from revtops_kernel.reports.digest import Digest, report_parts
from revtops_kernel.reports.period import zone

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
    template = artifact_pdf._template("digest.html.j2")
    return str(
        template.render(
            page=page, artifact=view, period=digest.period.describe(), timezone=digest.timezone
        )
    )


def digest_pdf(digest: Digest, *, author: str = DEFAULT_AUTHOR) -> bytes:
    """The digest as PDF bytes (A4, charts as vector SVG)."""
    return artifact_pdf.html_to_pdf(digest_html(digest, author=author))
