"""The coalescer: at most 25 updates a second, on time, and the final text exact."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from revtops_kernel.ui.stream import (
    DEFAULT_MAX_RATE,
    StreamConsumer,
    TextCoalescer,
    split_blocks,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_updates_are_rate_limited_and_final_text_exact() -> None:
    clock = FakeClock()
    sent: list[tuple[float, str]] = []
    coalescer = TextCoalescer(lambda text: sent.append((clock.now, text)), clock=clock)
    tokens = [f"tok{i} " for i in range(2000)]
    for index, token in enumerate(tokens):  # 2,000 tokens over 4 s: 500 tokens a second
        clock.now = index * 0.002
        coalescer.add(token)
        if coalescer.due_in() == 0.0:
            coalescer.flush()
    coalescer.flush()
    assert sent[-1][1] == "".join(tokens)
    times = [moment for moment, _ in sent[:-1]]  # the end of the answer flushes at once
    assert all(b - a >= 1 / DEFAULT_MAX_RATE - 1e-9 for a, b in itertools.pairwise(times))
    assert len(sent) <= 4.0 * DEFAULT_MAX_RATE + 1 <= 4.0 * 25 + 1
    assert coalescer.updates == len(sent)


def test_due_in_tells_when_pending_text_must_go() -> None:
    clock = FakeClock()
    sent: list[str] = []
    coalescer = TextCoalescer(sent.append, clock=clock)
    assert coalescer.due_in() is None
    coalescer.add("a")  # the first piece goes at once
    assert sent == ["a"]
    clock.now = 0.01
    coalescer.add("b")
    assert sent == ["a"] and coalescer.due_in() == pytest.approx(1 / DEFAULT_MAX_RATE - 0.01)
    coalescer.flush()
    coalescer.flush()  # nothing new: no update
    assert sent == ["a", "ab"]


def _slow_stream(pieces: list[str], gap: float) -> Iterator[str]:
    for piece in pieces:
        time.sleep(gap)
        yield piece


def test_consumer_flushes_pending_text_while_the_stream_is_quiet() -> None:
    """A token followed by silence reaches the screen within one interval, not at the end."""
    shown: list[tuple[float, str]] = []
    coalescer = TextCoalescer(lambda text: shown.append((time.monotonic(), text)))

    def events() -> Iterator[str]:
        yield "first "
        yield "second "  # inside the interval: pending
        time.sleep(0.3)  # the model thinks
        yield "third"

    start = time.monotonic()
    StreamConsumer(events(), coalescer).run(coalescer.add)
    texts = [text for _, text in shown]
    assert texts[-1] == "first second third"
    assert "first second " in texts
    second_at = next(moment for moment, text in shown if text == "first second ")
    assert second_at - start < 0.2  # flushed during the 0.3 s silence


def test_consumer_reraises_the_producers_error_after_earlier_events() -> None:
    seen: list[str] = []
    coalescer = TextCoalescer(lambda text: None)

    def events() -> Iterator[str]:
        yield "a"
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError, match="stream broke"):
        StreamConsumer(events(), coalescer).run(seen.append)
    assert seen == ["a"]


def test_real_time_rate_stays_under_25_per_second() -> None:
    updates: list[float] = []
    coalescer = TextCoalescer(lambda text: updates.append(time.monotonic()))
    pieces = ["x"] * 400
    start = time.monotonic()
    StreamConsumer(_slow_stream(pieces, 0.001), coalescer).run(coalescer.add)
    elapsed = time.monotonic() - start
    assert coalescer.text == "x" * 400
    assert len(updates) <= elapsed * 25 + 2


def test_split_blocks_keeps_code_fences_whole() -> None:
    finished, tail = split_blocks("intro\n\n```sql\nSELECT 1\n\nFROM t\n```\n\nmore")
    assert finished == ["intro", "```sql\nSELECT 1\n\nFROM t\n```"]
    assert tail == "more"
    assert split_blocks("open") == ([], "open")
