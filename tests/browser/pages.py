"""Driving the chat in Chromium: signing a visitor in, a hostile answer and its inertness."""

from __future__ import annotations

from typing import Any

from tests.ui.test_markdown import XSS_CORPUS

from .app_server import RunningApp

TIMEOUT_MS = 120_000


def sign_in(browser: Any, app: RunningApp, email: str, name: str, **options: Any) -> Any:
    """A browser session holding a test-minted Supabase session, as /login would leave it."""
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, accept_downloads=True, **options
    )
    context.add_cookies(
        [{"name": "revtops_session", "value": app.token(email, name), "url": app.url + "/"}]
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app.url + "/")
    page.locator(".rt-header").wait_for()
    return page


# Beyond the sanitizer's corpus: CSS exfiltration, image beacons, mXSS, SVG and data: tricks.
MORE_PAYLOADS = [
    '<div style="background:url(https://evil.example/css-leak)">styled</div>',
    '![beacon](https://evil.example/beacon.gif "title")',
    "[![img](https://evil.example/in-link.png)](https://ok.example)",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "<svg><a xlink:href=javascript:alert(1)><text y=20>svg link</text></a></svg>",
    "![ok](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+PC9zdmc+)",
    "<img srcset=https://evil.example/srcset.png>",
    "[mail](mailto:ana@example.com) and [safe](https://ok.example/page)",
    "<table background=https://evil.example/bg.png><tr><td>x</td></tr></table>",
    "<a href=https://ok.example ping=https://evil.example/ping>ping</a>",
]
HOSTILE_ANSWER = "\n\n".join([*XSS_CORPUS, *MORE_PAYLOADS, "End of the hostile answer."])


def assert_inert(page: Any) -> None:
    """Nothing in the thread can run or load: checked on the live DOM."""
    found = page.evaluate(
        """() => {
        const root = document.querySelector('.revtops-chat .rt-messages');
        const banned = ['script', 'iframe', 'object', 'embed', 'style', 'link', 'meta', 'base',
                        'form', 'input', 'svg', 'math', 'noscript'];
        const loading = ['src', 'srcset', 'background', 'ping', 'xlink:href', 'action',
                         'formaction', 'poster', 'data'];
        const bad = [];
        for (const el of root.querySelectorAll('*')) {
          if (el.closest('.rt-chart')) continue;  // Plotly's own drawing of a chart spec
          const tag = el.tagName.toLowerCase();
          if (banned.includes(tag)) bad.push('element ' + tag);
          for (const attr of el.attributes) {
            const name = attr.name.toLowerCase();
            if (name.startsWith('on')) bad.push(tag + '@' + name);
            if (loading.includes(name) && !(tag === 'img' && name === 'src')) {
              bad.push(tag + '@' + name);
            }
            if (name === 'style' && !/^text-align: ?[a-z]+;?$/.test(attr.value)) {
              bad.push(tag + '@style ' + attr.value);
            }
          }
          if (tag === 'a' && el.hasAttribute('href')) {
            const scheme = new URL(el.getAttribute('href'), location.href).protocol;
            if (!['http:', 'https:', 'mailto:'].includes(scheme)) bad.push('href ' + scheme);
            if (el.target !== '_blank' || !/noopener/.test(el.rel)) bad.push('link opener');
          }
          const src = el.getAttribute('src') || '';
          if (tag === 'img' && !/^data:image[/](png|jpe?g|gif|webp);/.test(src)) {
            bad.push('img ' + src);
          }
        }
        return bad;
      }"""
    )
    assert found == []
