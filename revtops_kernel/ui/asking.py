"""One question answered in the foreground: for ``%%ask`` (a display surface) and ``ask()``.

The agent loop runs in a producer thread while this thread draws, so coalesced text reaches
the cell on time. Interrupting the kernel (the notebook's stop button) cancels the loop.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from IPython.display import HTML, DisplayHandle, display

from revtops_kernel.agent.events import ArtifactCreated
from revtops_kernel.artifacts.bundle import figure_bundle
from revtops_kernel.errors import RevtopsError
from revtops_kernel.ui import views
from revtops_kernel.ui.answer import (
    Answer,
    AnswerRenderer,
    NullSurface,
    Slot,
    Surface,
)
from revtops_kernel.ui.backend import ChatBackend
from revtops_kernel.ui.stream import StreamConsumer


class _HandleSlot:
    def __init__(self, handle: DisplayHandle) -> None:
        self.handle = handle

    def update(self, html: str) -> None:
        self.handle.update(HTML(html))


class DisplaySurface:
    """An answer's pieces as outputs of the running cell; streaming blocks via display ids."""

    def __init__(self) -> None:
        display(HTML(views.STYLE))

    def add_html(self, html: str) -> Slot:
        handle = display(HTML(html), display_id=True)
        assert handle is not None  # display_id=True always returns a handle
        return _HandleSlot(handle)

    def add_figure(self, figure: dict[str, Any]) -> None:
        display(figure_bundle(figure), raw=True)

    def add_artifact_actions(self, artifact: ArtifactCreated) -> None:
        return None  # a cell has no buttons: revtops_kernel.artifacts.artifact_to_pdf(...)


def answer_question(
    backend: ChatBackend,
    question: str,
    *,
    surface: Surface | None = None,
    conversation_id: uuid.UUID | None = None,
    timezone: str | None = None,
) -> Answer:
    """Ask, draw on ``surface`` as events arrive (nothing drawn when None), return the answer."""
    renderer = AnswerRenderer(question, surface or NullSurface())
    cancel = threading.Event()
    try:
        events = backend.ask(
            question, conversation_id=conversation_id, timezone=timezone, cancel=cancel
        )
        StreamConsumer(events, renderer.coalescer).run(renderer.handle)
    except KeyboardInterrupt:
        cancel.set()
        renderer.show_error("Stopped.", "cancelled")
        renderer.answer.stop_reason = "cancelled"
    except RevtopsError as exc:
        renderer.show_error(str(exc), "configuration")
    renderer.answer.text_updates = renderer.coalescer.updates
    return renderer.answer
