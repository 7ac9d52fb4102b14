"""The chat panel: ipywidgets over the agent's event stream, the same in JupyterLab and Voila.

    from revtops_kernel import ChatPanel
    ChatPanel()                                   # settings from the environment
    ChatPanel(db=db, settings=settings, org="acme", user_id=user.id)   # embedded (Voila app)

A view only: questions go to a ``ChatBackend`` and its events are drawn by ``AnswerRenderer``.
An answer streams in a background thread (widget updates from a thread reach the front end:
ipykernel sends comm messages through its IOPub thread); the kernel's main thread stays free
for the Stop button. Only that thread touches the answer's widgets while it runs.
"""

from __future__ import annotations

import base64
import contextvars
import html
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ipywidgets as widgets
from ipywidgets.widgets.widget_string import HTMLStyle

from revtops_kernel.agent.events import ArtifactCreated
from revtops_kernel.errors import RevtopsError
from revtops_kernel.ui import views
from revtops_kernel.ui.answer import Answer, AnswerRenderer, Slot, figure_bundle
from revtops_kernel.ui.backend import ChatBackend, ConversationItem, ExportFile, ExportKind
from revtops_kernel.ui.stream import DEFAULT_MAX_RATE, StreamConsumer

log = logging.getLogger(__name__)

UNEXPECTED_ERROR = "Something went wrong while answering; the details are in the kernel log."

# The browser's IANA timezone, without a custom widget: a fixed (never user-supplied) snippet
# writes Intl's zone into a hidden Text widget and fires "input", which ipywidgets syncs to the
# kernel. Plain DOM, so it works wherever ipywidgets render: JupyterLab, Notebook 7, Voila.
TIMEZONE_PROBE = (
    '<img src="data:," alt="" style="display:none" onerror="'
    "(function f(el,n){var root=el.closest('.revtops-chat');"
    "var input=root&&root.querySelector('.revtops-tz input');"
    "if(!input){if(n<100){setTimeout(function(){f(el,n+1)},100)}return}"
    "input.value=Intl.DateTimeFormat().resolvedOptions().timeZone;"
    "input.dispatchEvent(new Event('input',{bubbles:true}))})(this,0)\">"
)


class _HtmlSlot:
    def __init__(self, widget: widgets.HTML) -> None:
        self.widget = widget

    def update(self, html: str) -> None:
        self.widget.value = html


class WidgetSurface:
    """An answer's pieces as widgets in a box: one HTML widget per block or card."""

    def __init__(
        self,
        box: widgets.Box,
        on_artifact_pdf: Callable[[uuid.UUID], None] | None = None,
        *,
        shared: tuple[widgets.Layout, HTMLStyle] | None = None,
    ) -> None:
        self.box = box
        self._on_artifact_pdf = on_artifact_pdf
        # Every block shares one Layout and one style model: a widget of its own would open
        # two more comms (~1.5 KB) per markdown block.
        self._layout, self._style = shared or (widgets.Layout(), HTMLStyle())

    def add_artifact_actions(self, artifact: ArtifactCreated) -> None:
        if self._on_artifact_pdf is None:
            return
        callback = self._on_artifact_pdf
        button = widgets.Button(description="PDF", icon="download", tooltip=artifact.title)
        button.add_class("rt-artifact-pdf")
        button.on_click(lambda _: callback(artifact.artifact_id))
        self.box.children = (*self.box.children, button)

    def add_html(self, html: str) -> Slot:
        widget = widgets.HTML(html, layout=self._layout, style=self._style)
        self.box.children = (*self.box.children, widget)
        return _HtmlSlot(widget)

    def add_figure(self, figure: dict[str, Any]) -> None:
        output = widgets.Output()
        output.add_class("rt-chart")
        output.outputs = (
            {"output_type": "display_data", "data": figure_bundle(figure), "metadata": {}},
        )
        self.box.children = (*self.box.children, output)


def _valid_zone(name: str | None) -> str | None:
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


class ChatPanel(widgets.VBox):
    """Conversations on the left, the thread and the question box on the right."""

    def __init__(
        self,
        backend: ChatBackend | None = None,
        *,
        db: Any = None,
        settings: Any = None,
        org: str | None = None,
        user_id: Any = None,
        timezone: str | None = None,
        author: str | None = None,
        max_rate: float = DEFAULT_MAX_RATE,
    ) -> None:
        super().__init__()
        self.add_class("revtops-chat")
        self._max_rate = max_rate
        self._default_timezone = _valid_zone(timezone) or "UTC"
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        self._listing = False
        self.conversation_id: uuid.UUID | None = None
        self.answers: list[Answer] = []
        self._build()
        self.backend: ChatBackend | None = backend
        if self.backend is None:
            try:
                from revtops_kernel.ui.copilot_backend import CopilotBackend

                copilot = CopilotBackend.create(
                    db=db, settings=settings, org=org, user_id=user_id, author=author
                )
                self.backend = copilot
                if timezone is None:
                    self._default_timezone = copilot.default_timezone
            except RevtopsError as exc:
                self._show_status_error(str(exc))
        self.refresh_conversations()

    # --- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        self._shared = (widgets.Layout(), HTMLStyle())  # for every message block
        self.timezone_input = widgets.Text(layout=widgets.Layout(display="none"))
        self.timezone_input.add_class("revtops-tz")
        full = widgets.Layout(width="auto")
        half = widgets.Layout(width="50%")
        self.new_button = widgets.Button(description="New chat", icon="plus", layout=full)
        self.conversation_list = widgets.Select(options=[], rows=14, layout=full)
        self.title_input = widgets.Text(placeholder="Conversation title", layout=full)
        self.rename_button = widgets.Button(description="Rename", layout=half)
        self.delete_button = widgets.Button(
            description="Delete", button_style="danger", layout=half
        )
        sidebar = widgets.VBox(
            [
                self.new_button,
                self.conversation_list,
                self.title_input,
                widgets.HBox([self.rename_button, self.delete_button]),
            ],
            layout=widgets.Layout(width="240px", min_width="200px", margin="0 8px 0 0"),
        )
        sidebar.add_class("rt-conversations")
        self.messages = widgets.VBox()
        self.messages.add_class("rt-messages")
        # A column-reverse scroller stays pinned to its bottom while the answer grows, with
        # no JavaScript: the newest text stays in view (JupyterLab and Voila alike).
        scroller = widgets.Box(
            [self.messages],
            layout=widgets.Layout(
                display="flex", flex_flow="column-reverse", overflow="auto", max_height="70vh"
            ),
        )
        scroller.add_class("rt-scroller")
        self.status = widgets.HTML()
        self.input = widgets.Text(
            placeholder="Ask about your pipeline… (Enter to send)",
            layout=widgets.Layout(flex="1 1 auto", width="auto"),
        )
        self.input.add_class("rt-input")
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.pdf_button = widgets.Button(description="Conversation PDF", icon="download")
        self.notebook_button = widgets.Button(description="Export notebook", icon="download")
        self.download = widgets.HTML()
        main = widgets.VBox(
            [
                scroller,
                self.status,
                widgets.HBox([self.input, self.send_button, self.stop_button]),
                widgets.HBox([self.pdf_button, self.notebook_button, self.download]),
            ],
            layout=widgets.Layout(flex="1 1 auto", width="auto"),
        )
        self.children = [
            widgets.HTML(views.STYLE + TIMEZONE_PROBE),
            self.timezone_input,
            widgets.HBox([sidebar, main]),
        ]
        self.input.on_msg(self._on_input_message)  # Enter sends a "submit" custom message
        self.send_button.on_click(lambda _: self.submit())
        self.stop_button.on_click(lambda _: self.stop())
        self.new_button.on_click(lambda _: self.new_conversation())
        self.rename_button.on_click(lambda _: self.rename(self.title_input.value))
        self.delete_button.on_click(lambda _: self.delete())
        self.pdf_button.on_click(lambda _: self.export("pdf"))
        self.notebook_button.on_click(lambda _: self.export("ipynb"))
        self.conversation_list.observe(self._on_pick, names="value")

    def _html(self, html: str) -> widgets.HTML:
        layout, style = self._shared
        return widgets.HTML(html, layout=layout, style=style)

    # --- state ----------------------------------------------------------------------------
    @property
    def timezone(self) -> str:
        """The browser's timezone once it reported it, else the configured one."""
        return _valid_zone(self.timezone_input.value.strip()) or self._default_timezone

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def _set_running(self, running: bool) -> None:
        self.stop_button.disabled = not running
        for control in (self.send_button, self.new_button, self.delete_button):
            control.disabled = running
        self.conversation_list.disabled = running
        self.status.value = '<span class="rt-status">Answering…</span>' if running else ""

    def _show_status_error(self, message: str) -> None:
        self.status.value = views.error_card(message)

    # --- asking ---------------------------------------------------------------------------
    def _on_input_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") == "submit":
            self.submit()

    def submit(self) -> None:
        """Send what is in the question box (Enter or the Send button)."""
        question = self.input.value.strip()
        if question and not self.running:
            self.input.value = ""
            self.ask(question)

    def ask(self, question: str) -> threading.Thread | None:
        """Start answering ``question`` in the background; ``wait()`` joins it."""
        if self.running:
            return None
        if self.backend is None:
            return None
        self.messages.children = (
            *self.messages.children,
            self._html(views.user_message(question)),
        )
        box = widgets.VBox()
        box.add_class("rt-answer")
        self.messages.children = (*self.messages.children, box)
        self._cancel = threading.Event()
        self._set_running(True)
        context = contextvars.copy_context()  # comm messages keep the asking cell as parent
        self._worker = threading.Thread(
            target=context.run, args=(self._answer, question, box), name="revtops-answer"
        )
        self._worker.start()
        return self._worker

    def _answer(self, question: str, box: widgets.VBox) -> None:
        assert self.backend is not None
        surface = WidgetSurface(box, self.export_artifact, shared=self._shared)
        renderer = AnswerRenderer(question, surface, max_rate=self._max_rate)
        try:
            events = self.backend.ask(
                question,
                conversation_id=self.conversation_id,
                timezone=self.timezone,
                cancel=self._cancel,
            )
            StreamConsumer(events, renderer.coalescer).run(renderer.handle)
        except RevtopsError as exc:
            renderer.show_error(str(exc))
        except Exception:
            log.exception("the chat panel could not finish an answer")
            renderer.show_error(UNEXPECTED_ERROR)
        finally:
            answer = renderer.answer
            answer.text_updates = renderer.coalescer.updates
            self.answers.append(answer)
            if answer.conversation_id is not None:
                self.conversation_id = answer.conversation_id
            self._set_running(False)
            self.refresh_conversations()

    def wait(self, timeout: float | None = None) -> Answer | None:
        """Block until the current answer is over; return it (scripts and tests)."""
        if self._worker is not None:
            self._worker.join(timeout)
        return self.answers[-1] if self.answers else None

    def stop(self) -> None:
        """Ask the agent loop to stop; it ends the answer with a "cancelled" Done."""
        self._cancel.set()
        self.status.value = '<span class="rt-status">Stopping…</span>'

    # --- conversations --------------------------------------------------------------------
    def refresh_conversations(self) -> None:
        if self.backend is None:
            return
        try:
            items = self.backend.list_conversations()
        except RevtopsError as exc:
            self._show_status_error(str(exc))
            return
        self._listing = True
        try:
            self.conversation_list.options = [(_label(item), str(item.id)) for item in items]
            current = str(self.conversation_id) if self.conversation_id else None
            known = {str(item.id) for item in items}
            self.conversation_list.value = current if current in known else None
        finally:
            self._listing = False

    def _on_pick(self, change: dict[str, Any]) -> None:
        if self._listing or self.running or not change["new"]:
            return
        self.open_conversation(uuid.UUID(change["new"]))

    def new_conversation(self) -> None:
        if self.running:
            return
        self.conversation_id = None
        self.messages.children = ()
        self.download.value = ""
        self.title_input.value = ""
        self.refresh_conversations()

    def open_conversation(self, conversation_id: uuid.UUID) -> None:
        """Show a stored conversation; the next question continues it."""
        if self.backend is None or self.running:
            return
        try:
            turns = self.backend.load_transcript(conversation_id)
        except RevtopsError as exc:
            self._show_status_error(str(exc))
            return
        children: list[widgets.Widget] = []
        for turn in turns:
            box = widgets.VBox()
            box.add_class("rt-answer")
            surface = WidgetSurface(box, self.export_artifact, shared=self._shared)
            renderer = AnswerRenderer(turn.question, surface, max_rate=1e9)
            for event in turn.events:
                renderer.handle(event)
            renderer.coalescer.flush()
            children += [self._html(views.user_message(turn.question)), box]
        self.messages.children = tuple(children)
        self.conversation_id = conversation_id
        self.download.value = ""
        self.status.value = ""
        self.refresh_conversations()

    def rename(self, title: str) -> None:
        title = title.strip()
        if self.backend is None or self.conversation_id is None or not title:
            return
        try:
            self.backend.rename_conversation(self.conversation_id, title)
        except RevtopsError as exc:
            self._show_status_error(str(exc))
            return
        self.refresh_conversations()

    def delete(self) -> None:
        if self.backend is None or self.conversation_id is None or self.running:
            return
        try:
            self.backend.delete_conversation(self.conversation_id)
        except RevtopsError as exc:
            self._show_status_error(str(exc))
            return
        self.new_conversation()

    # --- export ---------------------------------------------------------------------------
    def export(self, kind: ExportKind) -> None:
        """Offer the conversation as a PDF or a notebook, as a download link."""
        if self.backend is None or self.conversation_id is None:
            self._show_status_error("Ask a question or open a conversation before exporting.")
            return
        backend, conversation = self.backend, self.conversation_id
        self._offer(kind, lambda: backend.export(conversation, kind, timezone=self.timezone))

    def export_artifact(self, artifact_id: uuid.UUID) -> None:
        """Offer one artifact as a PDF (the button under each chart, table or report)."""
        if self.backend is not None:
            backend = self.backend
            self._offer("pdf", lambda: backend.export_artifact(artifact_id, timezone=self.timezone))

    def _offer(self, kind: str, make: Callable[[], ExportFile]) -> None:
        self.status.value = f'<span class="rt-status">Preparing the {kind}…</span>'
        try:
            exported = make()
        except RevtopsError as exc:
            self._show_status_error(str(exc))
            return
        except Exception:
            log.exception("export to %s failed", kind)
            self._show_status_error(f"The {kind} export failed; the details are in the kernel log.")
            return
        self.status.value = ""
        # A data-URL link downloads in JupyterLab and Voila alike, with no file on the server.
        payload = base64.b64encode(exported.data).decode("ascii")
        name = html.escape(exported.filename)
        self.download.value = (
            f'<a download="{name}" href="data:{exported.mime};base64,{payload}">'
            f"Download {name}</a> ({len(exported.data) / 1024:,.0f} KB)"
        )


def _label(item: ConversationItem) -> str:
    when = item.updated_at.strftime("%b %d") if item.updated_at else ""
    return f"{when}  {item.title or 'Untitled'}".strip()
