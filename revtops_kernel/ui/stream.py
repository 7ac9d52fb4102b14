"""Coalesced streaming: tokens arrive hundreds per second, the screen updates <= 25 times.

``TextCoalescer`` accumulates a text block and calls its sink with the whole block at most
``max_rate`` times per second, and never later than one interval after new text arrived.
``consume`` iterates an event stream in a producer thread, so the consumer can flush pending
text on time even while the stream is blocked waiting for the next event.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

E = TypeVar("E")
# 20 flushes a second, not 25: when a markdown block closes, one flush also opens the next
# block's widget, and the front end must still see at most 25 text updates in any second.
DEFAULT_MAX_RATE = 20.0


class TextCoalescer:
    """Accumulates text; ``sink(text_so_far)`` runs when an update is due, and on ``flush``."""

    def __init__(
        self,
        sink: Callable[[str], None],
        *,
        max_rate: float = DEFAULT_MAX_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._interval = 1.0 / max_rate
        self._clock = clock
        self._text = ""
        self._sent = ""
        self._last_sent_at = float("-inf")
        self.updates = 0

    @property
    def text(self) -> str:
        return self._text

    def retarget(self, sink: Callable[[str], None], text: str = "") -> None:
        """Send from now on to another sink (a new block), starting from ``text``."""
        self._sink = sink
        self._text = text
        self._sent = text

    def add(self, text: str) -> None:
        self._text += text
        if self.due_in() == 0.0:
            self.flush()

    def due_in(self) -> float | None:
        """Seconds until pending text must be sent; None when nothing is pending."""
        if self._text == self._sent:
            return None
        return max(0.0, self._last_sent_at + self._interval - self._clock())

    def flush(self) -> None:
        """Send pending text now (the end of a block, a tool call, the end of the answer)."""
        if self._text == self._sent:
            return
        self._sent = self._text
        self._last_sent_at = self._clock()
        self.updates += 1
        self._sink(self._text)


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_END = object()


class StreamConsumer(Generic[E]):
    """Runs ``events`` in a producer thread and hands each event to ``on_event`` here.

    While waiting, pending coalesced text is flushed on time. An exception raised by the
    producer is re-raised here, after the events before it were handled.
    """

    def __init__(self, events: Iterable[E], coalescer: TextCoalescer) -> None:
        self._events = events
        self._coalescer = coalescer
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()

    def _produce(self) -> None:
        try:
            for event in self._events:
                self._queue.put(event)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._queue.put(_Failure(exc))
        finally:
            self._queue.put(_END)

    def run(self, on_event: Callable[[E], None]) -> None:
        threading.Thread(target=self._produce, name="revtops-stream", daemon=True).start()
        while True:
            try:
                item = self._queue.get(timeout=self._coalescer.due_in())
            except queue.Empty:
                self._coalescer.flush()
                continue
            if item is _END:
                break
            if isinstance(item, _Failure):
                self._coalescer.flush()
                raise item.error
            on_event(item)  # type: ignore[arg-type]
        self._coalescer.flush()


def split_blocks(text: str) -> tuple[list[str], str]:
    """Split markdown into finished blocks and the open tail block.

    A block ends at a blank line outside a fenced code block. Finished blocks are rendered
    once and never re-sent; only the tail is re-rendered while tokens stream in.
    """
    finished: list[str] = []
    current: list[str] = []
    in_fence = False
    lines = text.split("\n")
    for index, line in enumerate(lines):
        is_last = index == len(lines) - 1
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if not line.strip() and not in_fence and not is_last and any(s.strip() for s in current):
            finished.append("\n".join(current))
            current = []
            continue
        current.append(line)
    return finished, "\n".join(current)
