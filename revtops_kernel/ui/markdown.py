"""Markdown for widgets: `revtops_kernel.safe_html` with links opening in a new tab.

ipywidgets ``HTML`` sets ``innerHTML`` as is, so whatever reaches it must already be safe.
"""

from __future__ import annotations

from revtops_kernel.safe_html import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    URL_SCHEMES,
    escape_text,
)
from revtops_kernel.safe_html import render_markdown as _render
from revtops_kernel.safe_html import sanitize_html as _sanitize

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "URL_SCHEMES",
    "escape_text",
    "render_markdown",
    "sanitize_html",
]


def sanitize_html(fragment: str) -> str:
    return _sanitize(fragment, links_in_new_tab=True)


def render_markdown(text: str) -> str:
    return _render(text, links_in_new_tab=True)
