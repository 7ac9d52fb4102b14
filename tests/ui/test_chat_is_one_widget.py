"""Issue 15's "Done when": the composite ipywidgets chat and the injected timezone script are gone.
The chat is one anywidget (one widget model, one comm) and no code writes HTML with an event
handler attribute (the old panel read the browser's zone with ``<img src=x onerror=...>``)."""

from __future__ import annotations

import re
from pathlib import Path

import anywidget
import ipywidgets as widgets
from ipywidgets.widgets import widget as widget_module

from revtops_kernel.ui.chat_panel import ChatPanel
from tests.ui.fakes import FakeBackend

UI = Path(__file__).resolve().parents[2] / "revtops_kernel" / "ui"
# An inline event handler in a string of HTML: <img ... onerror=, <div onload="...
HANDLER = re.compile(r"<[a-z][^<>]*\son[a-z]+\s*=", re.IGNORECASE)


def test_the_chat_is_one_widget_model() -> None:
    instances = widget_module._instances  # every live widget model in this kernel
    before = set(instances)
    panel = ChatPanel(FakeBackend(scripts=[]), suggestions=[])
    created = {type(instances[i]).__name__ for i in set(instances) - before}
    assert isinstance(panel, anywidget.AnyWidget)
    assert not isinstance(panel, widgets.Box)
    # the widget and the Layout every DOM widget has; no VBox, Textarea, Button, HTML children
    assert created == {type(panel).__name__, "Layout"}
    panel.close()


def test_no_ui_code_injects_an_event_handler_or_a_script() -> None:
    sources = [*UI.glob("*.py"), *(UI / "frontend" / "src").glob("*.js")]
    assert len(sources) > 10
    for source in sources:
        text = source.read_text()
        assert not HANDLER.search(text), (source.name, HANDLER.search(text))
        assert "<script" not in text.replace("<script>alert", ""), source.name
    # the browser's zone comes as a message from the widget, read with Intl
    chat_js = (UI / "frontend" / "src" / "chat.js").read_text()
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in chat_js
