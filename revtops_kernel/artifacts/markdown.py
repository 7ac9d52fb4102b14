"""Markdown for PDF reports: `revtops_kernel.safe_html` (WeasyPrint's URL fetcher in ``pdf.py``
also refuses everything but ``data:`` URIs, should anything slip through)."""

from __future__ import annotations

from revtops_kernel.safe_html import ALLOWED_TAGS, URL_SCHEMES, sanitize_html
from revtops_kernel.safe_html import escape_text as text_html
from revtops_kernel.safe_html import render_markdown as markdown_html

__all__ = ["ALLOWED_TAGS", "URL_SCHEMES", "markdown_html", "sanitize_html", "text_html"]
