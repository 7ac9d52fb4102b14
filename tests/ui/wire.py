"""What a chat widget sends to its views, recorded; what a view would send, simulated."""

from __future__ import annotations

import threading
from typing import Any

from revtops_kernel.ui.chat_panel import ChatWidget
from revtops_kernel.ui.protocol import ChatState, Message


class Wire:
    """Replaces ``widget.send``: every message (and its buffers) lands in ``sent``."""

    def __init__(self, widget: ChatWidget) -> None:
        self.widget = widget
        self.sent: list[tuple[Message, list[bytes]]] = []
        self._lock = threading.Lock()
        widget.send = self._record  # type: ignore[method-assign]

    def _record(self, content: Message, buffers: list[bytes] | None = None) -> None:
        with self._lock:
            self.sent.append((content, list(buffers or [])))

    def browser(self, **content: Any) -> None:
        """A message from a view, as the comm would deliver it."""
        self.widget._handle_custom_msg(content, [])

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return [content for content, _ in self.sent]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if isinstance(m, dict) and m.get("t") == kind]

    def deltas(self) -> list[str]:
        return [m for m in self.messages if isinstance(m, str)]

    def last_state(self) -> dict[str, Any]:
        return self.of("state")[-1]

    def replay(self) -> ChatState:
        """The state a view that saw every message from the start would hold."""
        state = ChatState()
        for message in self.messages:
            if not isinstance(message, dict) or message.get("t") in {"status", "file", "plotly"}:
                if isinstance(message, str):
                    state.apply(message)
                continue
            state.apply(message)
        return state

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()
