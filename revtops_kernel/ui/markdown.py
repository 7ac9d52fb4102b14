"""Markdown to inert HTML, for model output and synced text shown in widgets.

ipywidgets ``HTML`` sets ``innerHTML`` as is, so whatever reaches it must already be safe.
Two layers: markdown-it renders with raw HTML off (``<script>`` in the text stays text) and
refuses ``javascript:``-style links; then nh3 (the ammonia allowlist sanitizer) keeps only a
short list of tags and attributes, only http(s)/mailto links, and no images at all: an external
image would leak data through its URL the moment it loads, so images become their alt text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s",
        "del", "code", "pre", "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr",
        "th", "td", "a", "span",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "target"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
STYLE_PROPERTIES = frozenset({"text-align"})  # markdown table column alignment


def _image_as_text(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image renders as "[image: alt]": never an <img> that would fetch a URL."""
    alt = "".join(child.content for child in tokens[idx].children or [])
    return f"[image: {html.escape(alt or 'untitled')}]"


@cache
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_as_text)
    return parser


def sanitize_html(fragment: str) -> str:
    """Keep only allowlisted tags, attributes and URL schemes; links open in a new tab."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(STYLE_PROPERTIES),
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def render_markdown(text: str) -> str:
    """Markdown (model output, synced text) to sanitized HTML safe for ``innerHTML``."""
    return sanitize_html(_parser().render(text))


def escape_text(text: str) -> str:
    """Plain text (a user's question, an error message) as HTML text, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")
