"""``%%ask``: the chat component answering one question in a cell's output.

The cell shows ``ChatWidget`` in "answer" mode, the same anywidget view as the panel (streamed
text, SQL cards, tables, charts, Stop). A second display carries the answer as static HTML
(``text/html``, updated when the answer ends; ``AnswerRenderer`` over an ``HtmlSurface``): it
hides itself while the widget draws, and shows where the widget cannot (nbconvert, papermill,
GitHub, and JupyterLab reopening a notebook saved without its widgets' state).

In a kernel the ``%%ask`` cell awaits its answer (``await_ask_cells`` rewrites it): ipykernel
handles a widget's messages while an async cell waits, not while a cell blocks, so the view's
Stop button and its hello (the state of an answer that started before the view) get through.
Elsewhere the cell blocks. Interrupting the kernel stops the answer either way.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from IPython.display import DisplayHandle, display

from revtops_kernel.agent.events import ArtifactCreated
from revtops_kernel.ui import views
from revtops_kernel.ui.answer import Answer, AnswerRenderer, Slot
from revtops_kernel.ui.backend import ChatBackend
from revtops_kernel.ui.chat_panel import ChatWidget

STOPPED = "Stopped: the answer above is incomplete."
MAX_FIGURE_ROWS = 50
POLL_SECONDS = 0.05


class _Piece:
    def __init__(self, pieces: list[str]) -> None:
        self._pieces = pieces
        self._index = len(pieces)
        pieces.append("")

    def update(self, html: str) -> None:
        self._pieces[self._index] = html


class HtmlSurface:
    """An answer's cards as one HTML document (the static copy of a ``%%ask`` answer)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def add_html(self, html: str) -> Slot:
        piece = _Piece(self.pieces)
        piece.update(html)
        return piece

    def add_figure(self, figure: dict[str, Any]) -> None:
        self.add_html(figure_html(figure))

    def add_artifact_actions(self, artifact: ArtifactCreated) -> None:
        return None  # a static page has no buttons

    def html(self) -> str:
        return f'{views.STYLE}<div class="revtops-answer">{"".join(self.pieces)}</div>'


def figure_html(figure: dict[str, Any]) -> str:
    """A chart without plotly.js: its title and its points as a table (what a reader needs)."""
    layout = figure.get("layout") or {}
    title = layout.get("title")
    text = (title.get("text") if isinstance(title, dict) else title) or "Chart"
    parts = [f'<div class="rt-chart-static"><h4>{views.escape(str(text))}</h4>']
    for trace in figure.get("data") or []:
        xs, ys = trace.get("x"), trace.get("y")
        if not isinstance(xs, list) or not isinstance(ys, list):
            continue
        name = views.escape(str(trace.get("name") or "value"))
        rows = "".join(
            f"<tr><td>{views.escape(str(x))}</td><td>{views.escape(str(y))}</td></tr>"
            for x, y in list(zip(xs, ys, strict=False))[:MAX_FIGURE_ROWS]
        )
        parts.append(f"<table><tr><th></th><th>{name}</th></tr>{rows}</table>")
    parts.append("</div>")
    return "".join(parts)


class CellAnswer:
    """One question answered in the running cell by the chat component, with a static copy."""

    def __init__(
        self,
        backend: ChatBackend,
        question: str,
        *,
        conversation_id: uuid.UUID | None,
        timezone: str | None,
    ) -> None:
        self.question = question
        self.widget = ChatWidget(backend, mode="answer", suggestions=[], timezone=timezone)
        self.widget.conversation_id = conversation_id
        self.surface = HtmlSurface()
        # the static copy needs the text once, at the end: 1 update a second is plenty
        self.renderer = AnswerRenderer(question, self.surface, max_rate=1.0)
        self.widget.listeners.append(self.renderer.handle)
        display(self.widget.view_bundle(), raw=True)
        self.handle: DisplayHandle | None = display(
            self._bundle(self._pending_html()), raw=True, display_id=True
        )
        self.widget.ask(question)

    def _pending_html(self) -> str:
        question = views.escape(self.question)
        return (
            f'<div class="revtops-answer"><p><em>Answering: {question}</em></p>'
            '<p class="rt-rerun">(run this cell again if the answer does not show)</p></div>'
        )

    def _bundle(self, html: str) -> dict[str, Any]:
        """The static copy, the display after the widget's (see ``views.static_fallback``)."""
        return {
            "text/html": views.static_fallback(html),
            "text/plain": f"Revtops answer: {self.question}",
        }

    async def wait_async(self) -> Answer:
        """Wait while the kernel goes on handling the view's messages (Stop)."""
        try:
            while self.widget.running:
                await asyncio.sleep(POLL_SECONDS)
        except (asyncio.CancelledError, KeyboardInterrupt):  # ipykernel cancels on an interrupt
            self.widget.stop()
            self.widget.wait()
        return self.finish()

    def wait(self) -> Answer:
        try:
            self.widget.wait()
        except KeyboardInterrupt:
            self.widget.stop()
            self.widget.wait()
        return self.finish()

    def finish(self) -> Answer:
        """The answer is over: keep it in the widget's state and the display's static copy."""
        answer = self.widget.answers[-1] if self.widget.answers else Answer(self.question)
        self.renderer.coalescer.flush()
        if answer.stop_reason == "cancelled":
            self.surface.add_html(f'<div class="rt-stopped">{STOPPED}</div>')
        self.widget.saved = {"turns": self.widget.state.snapshot()["turns"]}
        if self.handle is not None:
            self.handle.update(self._bundle(self.surface.html()), raw=True)
        return answer


_ASK_CELL = re.compile(r"get_ipython\(\)\.run_cell_magic\('ask', ")
_ASK_ASYNC = "await get_ipython().magics_manager.registry['RevtopsMagics'].ask_async("


def await_ask_cells(lines: list[str]) -> list[str]:
    """An IPython post-transformer: a ``%%ask`` cell awaits ``ask_async`` instead of blocking."""
    if lines and _ASK_CELL.match(lines[0]):
        return [_ASK_CELL.sub(lambda _: _ASK_ASYNC, lines[0], count=1), *lines[1:]]
    return lines


# ``%ask question`` on a line of its own (not indented: an ``await`` is valid there in a cell)
_ASK_LINE = re.compile(r"%ask[ \t]+(?P<question>.*?)\s*")
_ASK_BLOCKING = "get_ipython().run_line_magic('ask', "


def _rewrite_ask_lines(lines: list[str], call: str) -> list[str]:
    if not lines or lines[0].startswith("%%"):  # a cell magic's body is its text, untouched
        return lines
    out = []
    for line in lines:
        found = _ASK_LINE.fullmatch(line.rstrip("\n"))
        if found is None:
            out.append(line)
        else:
            end = "\n" if line.endswith("\n") else ""
            out.append(f"{call}{found['question']!r}){end}")
    return out


def await_ask_lines(lines: list[str]) -> list[str]:
    """An IPython cleanup transformer (a kernel's): a ``%ask`` line awaits ``ask_async``, like a
    ``%%ask`` cell, so the component's Stop works while it streams. It runs before IPython's
    help syntax, which would read a question ending in "?" as ``pinfo`` of its last word."""
    return _rewrite_ask_lines(lines, _ASK_ASYNC)


def ask_lines(lines: list[str]) -> list[str]:
    """The same outside a kernel (a terminal): the ``%ask`` line blocks, its "?" kept."""
    return _rewrite_ask_lines(lines, _ASK_BLOCKING)
