"""Markdown to inert HTML: model output and synced text are data wherever they are rendered.

Two layers. markdown-it renders with raw HTML off (``<script>`` in the text stays visible text)
and refuses ``javascript:``-style links; nh3 (the ammonia allowlist sanitizer) then keeps a short
list of tags and attributes and only http(s)/mailto links. Images never become ``<img>``: an
external image would be fetched the moment it renders (in a widget, or while a PDF is laid out)
and leak data through its URL, so an image is shown as its alt text.

Used by the chat panel (ipywidgets ``HTML`` sets ``innerHTML`` as is) and by PDF reports.
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


def sanitize_html(fragment: str, *, links_in_new_tab: bool = False) -> str:
    """Keep only allowlisted tags, attributes and URL schemes."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(STYLE_PROPERTIES),
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}} if links_in_new_tab else None,
        strip_comments=True,
    )


def render_markdown(text: str, *, links_in_new_tab: bool = False) -> str:
    """Markdown (model output, synced text) to sanitized HTML, safe to insert unescaped."""
    return sanitize_html(_parser().render(text), links_in_new_tab=links_in_new_tab)


def escape_text(text: str) -> str:
    """Plain text (a user's question, an error message) as HTML text, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")
