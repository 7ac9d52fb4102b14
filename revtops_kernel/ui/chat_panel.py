"""The chat: one anywidget component, the same in JupyterLab, Voila and the web app.

    from revtops_kernel import ChatPanel
    ChatPanel()                                   # settings from the environment
    ChatPanel(db=db, settings=settings, org="acme", user_id=user.id)   # embedded (web app)

The kernel keeps the state and runs the agent; the browser (``static/chat.js``) renders
markdown, sanitizes it with the same allowlist as ``safe_html`` and draws tables and charts.
Only small messages cross the wire (``protocol``): text deltas, tool calls, artifacts, errors;
a view that connects (page reload, a second view) gets the whole state in one message.

An answer streams in a background thread (comm messages from a thread reach the front end:
ipykernel sends them through its IOPub thread); the kernel's main thread stays free for Stop.
"""

from __future__ import annotations

import contextvars
import importlib.util
import logging
import threading
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anywidget
import traitlets

from revtops_kernel.agent.events import AgentEvent, Done, Error
from revtops_kernel.errors import RevtopsError
from revtops_kernel.safe_html import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, STYLE_PROPERTIES, URL_SCHEMES
from revtops_kernel.timeutil import utcnow
from revtops_kernel.ui.answer import Answer, AnswerRecorder
from revtops_kernel.ui.backend import ChatBackend, ExportFile, ExportKind
from revtops_kernel.ui.protocol import (
    DELTA_RATE,
    ChatState,
    EventTranslator,
    Message,
    conversation_json,
    turn_message,
)
from revtops_kernel.ui.stream import StreamConsumer

log = logging.getLogger(__name__)

UNEXPECTED_ERROR = "Something went wrong while answering; the details are in the kernel log."
STATIC = Path(__file__).parent / "static"
MAX_SUGGESTIONS = 6
# How long a view's message waits for a deferred chat's backend (`ChatWidget.attach`).
READY_TIMEOUT = 60.0

# The browser sanitizes with the server's allowlist: one policy, sent once as widget state.
POLICY = {
    "tags": sorted(ALLOWED_TAGS),
    "attributes": {tag: sorted(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    "schemes": sorted(URL_SCHEMES),
    "style_properties": sorted(STYLE_PROPERTIES),
}


@cache
def plotly_js() -> bytes:
    """plotly.js as the plotly Python package ships it (no CDN; read once per kernel)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise RevtopsError("plotly is not installed: charts need the plotly package")
    return (Path(spec.origin).parent / "package_data" / "plotly.min.js").read_bytes()


def default_suggestions() -> list[str]:
    """Questions the verified router answers, for the empty chat."""
    from revtops_kernel.agent.routing import suggested_questions

    return suggested_questions()[:MAX_SUGGESTIONS]


def _valid_zone(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


class ChatWidget(anywidget.AnyWidget):
    """Conversations on the left, the thread and the question box on the right."""

    _esm = STATIC / "chat.js"
    _css = STATIC / "chat.css"
    policy = traitlets.Dict(POLICY).tag(sync=True)
    # "panel" (conversations, question box) or "answer" (%%ask: one answer in a cell's output)
    mode = traitlets.Unicode("panel").tag(sync=True)
    # a finished %%ask answer ({"turns": [...]}), so a notebook saved with its widget state
    # redraws it without a kernel; the panel's thread travels as messages only
    saved = traitlets.Dict().tag(sync=True)
    # a setup notice (markdown) the empty chat shows under its first line: the web app's "no
    # Claude key" lives inside the chat, so the page's first screen knows where the box is
    notice = traitlets.Unicode("").tag(sync=True)

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
        max_rate: float = DELTA_RATE,
        suggestions: list[str] | None = None,
        mode: str = "panel",
        deferred: bool = False,
    ) -> None:
        super().__init__(mode=mode)
        self._max_rate = max_rate
        self._default_timezone = _valid_zone(timezone) or "UTC"
        self._browser_timezone: str | None = None
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        self._lock = threading.RLock()  # a state change and its message go out together
        self.conversation_id: uuid.UUID | None = None
        self.answers: list[Answer] = []
        # also given every event of an answer, in its thread (%%ask keeps a static copy)
        self.listeners: list[Callable[[AgentEvent], None]] = []
        self.state = ChatState(suggestions=suggestions or [])
        self._suggestions_due = suggestions is None  # loaded when a view first asks (hello)
        self.status: str | None = None
        self.backend: ChatBackend | None = backend
        # Set once the chat knows whom it answers for; until then the view's messages wait.
        self._ready = threading.Event()
        self.on_msg(self._on_message)
        if not deferred:
            self.attach(backend, db=db, settings=settings, org=org, user_id=user_id,
                        author=author, timezone=timezone)  # fmt: skip

    def attach(
        self,
        backend: ChatBackend | None = None,
        *,
        db: Any = None,
        settings: Any = None,
        org: str | None = None,
        user_id: Any = None,
        author: str | None = None,
        timezone: str | None = None,
    ) -> None:
        """Give a chat built with ``deferred=True`` its backend (the web app builds the chat
        before its visitor is known, and attaches the visitor's organization when their
        signed identity arrives). Then the conversations are listed, and the view's messages,
        which waited, are handled."""
        try:
            self.backend = backend
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
                    self._show_status(str(exc), error=True)
            self.refresh_conversations()
        finally:
            self._ready.set()

    def fail(self, message: str) -> None:
        """A deferred chat that will get no backend: say why, and stop holding the view."""
        try:
            self._show_status(message, error=True)
        finally:
            self._ready.set()

    # --- display ---------------------------------------------------------------------------
    def view_bundle(self) -> dict[str, Any]:
        """The widget's view as a display bundle (its text/plain empty: the static copy that
        follows says what it is)."""
        shown = self._repr_mimebundle_()
        data = dict(shown[0] if isinstance(shown, tuple) else shown or {})
        data["text/plain"] = ""
        return data

    def _ipython_display_(self) -> None:
        """The widget, then a line that shows only where the widget cannot draw (a notebook
        reopened without its widgets' state): "re-run this cell", not "model not found"."""
        from IPython.display import display

        from revtops_kernel.ui import views

        display(self.view_bundle(), raw=True)
        text = "The Revtops chat: run this cell to show it."
        display(
            {"text/html": views.static_fallback(views.PANEL_FALLBACK), "text/plain": text},
            raw=True,
        )

    # --- the wire -------------------------------------------------------------------------
    def _emit(self, message: Message, buffers: list[bytes] | None = None) -> None:
        """Apply ``message`` to the kept state and send it to every view, atomically."""
        with self._lock:
            self.state.apply(message)
            self.send(message, buffers)

    def _send_state(self) -> None:
        """The whole state, in one message; no delta can slip between the copy and the send.

        On the first view, the state goes out before the suggestions are loaded (their first
        load imports the router and the verified queries: seconds in a fresh kernel), so the
        question box shows at once; the state follows again with the suggestions."""
        with self._lock:
            self.send(self._snapshot())
        if self._suggestions_due:  # outside the lock: the first import takes a moment
            self._suggestions_due = False
            self.state.suggestions = default_suggestions()
            with self._lock:
                self.send(self._snapshot())

    def _snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.state.snapshot(), "status": self.status}

    def _show_status(self, message: str, *, error: bool = False) -> None:
        self.status = message if error else None
        self.send({"t": "status", "msg": message, "error": error})

    def _on_message(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if not self._ready.wait(READY_TIMEOUT):  # deferred, and its backend is not there yet
            self._show_status("Still connecting to your workspace; try again.", error=True)
            return
        actions: dict[str, Callable[[dict[str, Any]], object]] = {
            "hello": self._hello,
            "ask": lambda m: self.ask(str(m.get("q", ""))),
            "stop": lambda m: self.stop(),
            "new": lambda m: self.new_conversation(),
            "open": lambda m: self._with_id(m, self.open_conversation),
            "rename": lambda m: self._rename(m),
            "delete": lambda m: self._with_id(m, lambda _: self.delete()),
            "export": lambda m: self.export("ipynb" if m.get("kind") == "ipynb" else "pdf"),
            "artifact_pdf": lambda m: self._with_id(m, self.export_artifact),
            "plotly": lambda m: self._send_plotly(),
        }
        action = actions.get(str(content.get("t")))
        if action is None:
            log.warning("the chat view sent an unknown message %r", content.get("t"))
            return
        try:
            action(content)
        except RevtopsError as exc:
            self._show_status(str(exc), error=True)
        except Exception:
            log.exception("the chat panel could not handle %r", content.get("t"))
            self._show_status(UNEXPECTED_ERROR, error=True)

    def _hello(self, message: dict[str, Any]) -> None:
        """A view connected: note the browser's timezone, send it everything."""
        self._browser_timezone = _valid_zone(message.get("tz")) or self._browser_timezone
        self._send_state()

    @staticmethod
    def _with_id(message: dict[str, Any], act: Callable[[uuid.UUID], object]) -> None:
        try:
            value = uuid.UUID(str(message.get("id")))
        except ValueError as exc:
            raise RevtopsError(f"not a conversation or artifact id: {message.get('id')!r}") from exc
        act(value)

    def _rename(self, message: dict[str, Any]) -> None:
        def rename(conversation: uuid.UUID) -> None:
            if conversation == self.conversation_id:
                self.rename(str(message.get("title", "")))

        self._with_id(message, rename)

    def _send_plotly(self) -> None:
        self.send({"t": "plotly"}, [plotly_js()])

    # --- state ----------------------------------------------------------------------------
    @property
    def timezone(self) -> str:
        """The browser's timezone once a view reported it, else the configured one."""
        return self._browser_timezone or self._default_timezone

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    # --- asking ---------------------------------------------------------------------------
    def ask(self, question: str) -> threading.Thread | None:
        """Start answering ``question`` in the background; ``wait()`` joins it."""
        question = question.strip()
        if not question or self.running or self.backend is None:
            return None
        self._cancel = threading.Event()
        self._emit(turn_message(question, utcnow()))
        context = contextvars.copy_context()  # comm messages keep the asking cell as parent
        self._worker = threading.Thread(
            target=context.run, args=(self._answer, question), name="revtops-answer"
        )
        self._worker.start()
        return self._worker

    def _answer(self, question: str) -> None:
        assert self.backend is not None
        recorder = AnswerRecorder(question)
        translator = EventTranslator(self._emit, max_rate=self._max_rate)

        def handle(event: AgentEvent) -> None:
            recorder.handle(event)
            translator.handle(event)
            for listener in self.listeners:
                listener(event)

        def fail(message: str) -> None:
            recorder.error(message)
            translator.error(message)
            for listener in self.listeners:
                listener(Error(message))

        try:
            events = self.backend.ask(
                question,
                conversation_id=self.conversation_id,
                timezone=self.timezone,
                cancel=self._cancel,
            )
            StreamConsumer(events, translator.coalescer).run(handle)
        except RevtopsError as exc:
            fail(str(exc))
        except Exception:
            log.exception("the chat panel could not finish an answer")
            fail(UNEXPECTED_ERROR)
        finally:
            answer = recorder.answer
            answer.text_updates = translator.coalescer.updates
            if answer.conversation_id is not None:
                self.conversation_id = answer.conversation_id
            self.answers.append(answer)
            translator.done(answer.stop_reason, self.conversation_id)
            self.refresh_conversations()

    def wait(self, timeout: float | None = None) -> Answer | None:
        """Block until the current answer is over; return it (scripts and tests)."""
        if self._worker is not None:
            self._worker.join(timeout)
        return self.answers[-1] if self.answers else None

    def stop(self) -> None:
        """Ask the agent loop to stop; it ends the answer with a "cancelled" Done."""
        self._cancel.set()

    # --- conversations --------------------------------------------------------------------
    def refresh_conversations(self) -> None:
        if self.backend is None:
            return
        try:
            items = self.backend.list_conversations()
        except RevtopsError as exc:
            self._show_status(str(exc), error=True)
            return
        current = str(self.conversation_id) if self.conversation_id else None
        listed = [conversation_json(item) for item in items]
        if current not in {c["id"] for c in listed}:
            current = None
        self._emit({"t": "list", "conversations": listed, "current": current})

    def new_conversation(self) -> None:
        if self.running:
            return
        self.conversation_id = None
        with self._lock:
            self.state.turns = []
            self.state.current = None
        self.status = None
        self._send_state()

    def open_conversation(self, conversation_id: uuid.UUID) -> None:
        """Show a stored conversation; the next question continues it."""
        if self.backend is None or self.running:
            return
        turns = self.backend.load_transcript(conversation_id)
        replay = ChatState()
        for turn in turns:
            replay.apply(turn_message(turn.question, utcnow()) | {"at": None})
            translator = EventTranslator(replay.apply, max_rate=1e12)
            for event in turn.events:
                translator.handle(event)
            stop = next((e.stop_reason for e in turn.events if isinstance(e, Done)), None)
            translator.done(stop, conversation_id)
        with self._lock:
            self.state.turns = replay.turns
            self.state.running = False
        self.conversation_id = conversation_id
        self.status = None
        self.refresh_conversations()
        self._send_state()

    def rename(self, title: str) -> None:
        title = title.strip()
        if self.backend is None or self.conversation_id is None or not title:
            return
        self.backend.rename_conversation(self.conversation_id, title)
        self.refresh_conversations()

    def delete(self) -> None:
        if self.backend is None or self.conversation_id is None or self.running:
            return
        self.backend.delete_conversation(self.conversation_id)
        self.conversation_id = None
        self.refresh_conversations()
        self.new_conversation()

    # --- export ---------------------------------------------------------------------------
    def export(self, kind: ExportKind) -> ExportFile | None:
        """Send the conversation as a PDF or a notebook: the browser saves it (one click)."""
        if self.backend is None or self.conversation_id is None:
            self._show_status("Ask a question or open a conversation before exporting.", error=True)
            return None
        backend, conversation = self.backend, self.conversation_id
        return self._offer(kind, lambda: backend.export(conversation, kind, timezone=self.timezone))

    def export_artifact(self, artifact_id: uuid.UUID) -> ExportFile | None:
        """Send one artifact as a PDF (the button under each chart, table or report)."""
        if self.backend is None:
            return None
        backend = self.backend
        return self._offer(
            "pdf", lambda: backend.export_artifact(artifact_id, timezone=self.timezone)
        )

    def _offer(self, kind: str, make: Callable[[], ExportFile]) -> ExportFile | None:
        self._show_status(f"Preparing the {kind}…")
        try:
            exported = make()
        except RevtopsError as exc:
            self._show_status(str(exc), error=True)
            return None
        except Exception:
            log.exception("export to %s failed", kind)
            self._show_status(
                f"The {kind} export failed; the details are in the kernel log.", error=True
            )
            return None
        self.send({"t": "file", "name": exported.filename, "mime": exported.mime}, [exported.data])
        return exported


ChatPanel = ChatWidget  # the name notebooks and the README use
