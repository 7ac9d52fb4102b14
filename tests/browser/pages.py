"""Driving the chat in Chromium: signing a visitor in, a hostile answer and its inertness."""

from __future__ import annotations

import re
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


# The page's first screen (the shell its template draws) and the live page, box for box: the
# chat widget takes the shell's place without moving anything (the question box above all).
SHELL_BOXES = {
    "header": ".rt-shell-header",
    "tabs": ".rt-shell-tabs",
    "chat": ".rt-shell-chat",
    "conversations": ".rt-shell-conversations",
    "new chat": ".rt-shell-conversations button",
    "thread": "#rt-shell-messages",
    "status": "#rt-shell-status",
    "question box": "#rt-shell-input",
    "send": "#rt-shell-send",
}
LIVE_BOXES = {
    "header": ".rt-header",
    "tabs": ".widget-tab > .lm-TabBar",
    "chat": ".widget-tab > .widget-tab-contents",
    "conversations": ".revtops-chat .rt-conversations",
    "new chat": ".revtops-chat .rt-new",
    "thread": ".revtops-chat .rt-scroller",
    "status": ".revtops-chat .rt-status",
    "question box": ".revtops-chat textarea.rt-input",
    "send": ".revtops-chat .rt-send",
}
# The page's front end: the light one's module (the default) or Voila's (REVTOPS_APP_FRONTEND=voila)
FRONT_END_JS = re.compile(r".*/(revtops/static/app|voila/static/voila)\.js(\?.*)?$")


def boxes(page: Any, selectors: dict[str, str]) -> dict[str, tuple[float, ...]]:
    """Each named element's bounding box (x, y, width, height) on the page as it is now."""
    found = {}
    for name, selector in selectors.items():
        box = page.locator(selector).first.bounding_box()
        assert box is not None, f"{name} ({selector}) is not drawn"
        found[name] = (box["x"], box["y"], box["width"], box["height"])
    return found


def assert_nothing_moved(
    shell: dict[str, tuple[float, ...]], live: dict[str, tuple[float, ...]], tolerance: float = 3
) -> None:
    moved = {
        name: (shell[name], live[name])
        for name in shell
        if max(abs(a - b) for a, b in zip(shell[name], live[name], strict=True)) > tolerance
    }
    assert moved == {}, f"moved when the live chat replaced the shell (shell, live): {moved}"


def sign_in_across_takeover(
    browser: Any, app: RunningApp, email: str, name: str
) -> tuple[Any, dict[str, tuple[float, ...]], dict[str, tuple[float, ...]]]:
    """``sign_in``, holding the page's front end back until the shell's boxes are measured; returns
    the page with the live chat drawn, and the shell's and the live page's boxes."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    context.add_cookies(
        [{"name": "revtops_session", "value": app.token(email, name), "url": app.url + "/"}]
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    held: list[Any] = []
    page.route(FRONT_END_JS, lambda route: held.append(route))
    page.goto(app.url + "/", wait_until="commit")
    page.locator("#rt-shell-input").wait_for()
    while not held:  # the page asked for its front end: everything before it is drawn
        page.wait_for_timeout(50)
    shell = boxes(page, SHELL_BOXES)
    held[0].continue_()
    page.locator(LIVE_BOXES["question box"]).wait_for()
    page.locator("#rt-shell").wait_for(state="detached")
    return page, shell, boxes(page, LIVE_BOXES)


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
