"""Markdown to inert HTML for PDF reports (model output and synced text are data).

Two layers, as in the chat panel: markdown-it renders with raw HTML off (``<script>`` in the
text stays visible text) and refuses ``javascript:``-style links; nh3 (the ammonia allowlist
sanitizer) then keeps a short list of tags and attributes and only http(s)/mailto links.
Images never become ``<img>``: an external image would be fetched while the PDF renders and
leak data through its URL, so an image is printed as its alt text. WeasyPrint's URL fetcher
refuses every URL besides (``pdf.py``), should anything slip through.
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
        "th", "td", "a",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"style"}, "td": {"style"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


def _image_as_text(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    alt = "".join(child.content for child in tokens[idx].children or [])
    return f"[image: {html.escape(alt or 'untitled')}]"


@cache
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_as_text)
    return parser


def sanitize_html(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def markdown_html(text: str) -> str:
    """Markdown to sanitized HTML, safe to place in a report template unescaped."""
    return sanitize_html(_parser().render(text))


def text_html(text: str) -> str:
    """Plain text (a user's question) as HTML text, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")
