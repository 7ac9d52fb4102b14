"""Benchmark the chat panel's streaming: comm traffic and token-to-screen latency.

    python bench/chat_stream.py [--tokens 2000] [--event-delay 0.02] [--json PATH]
                                [--baseline REF | --no-baseline]

A ~2,000-token answer (``--tokens`` at 4 characters a token, paragraphs of ~60 words) streams
from the scripted Messages API (a real HTTP server on loopback, real SSE, 24 characters per
``text_delta`` as its default chunking) through the real agent loop into a ``ChatPanel``. Every
comm message the widgets send to the front end is captured (``comm.create_comm`` is replaced by
a recorder) and measured as the Jupyter wire message the kernel would send: the JSON of
header, parent header, metadata and content (``jupyter_client.Session.serialize``, HMAC off).

Printed:
- comm messages and bytes during the answer, and bytes / final text bytes (goal <= 2x);
- text updates per second: the peak in any 1-second window and the mean (goal <= 25/s);
- token-to-screen latency: for every word of the answer, the time from the loop yielding the
  ``TextDelta`` that completes it to the first comm message that carries it (p50, p95, max;
  goal p95 <= 100 ms). The words are unique (``w0001``...) so each message says which it shows.

The baseline, measured in the same run: this benchmark at git ``--baseline`` (default: the
composite ipywidgets panel before the chat became one anywidget component), run from a
``git archive`` of that commit in a subprocess. It counted a text update as a widget ``value``
(the re-sent HTML); this one counts the widget's text-delta messages.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import comm
from comm.base_comm import BaseComm
from jupyter_client.session import Session

from revtops_kernel.agent.events import AgentEvent, TextDelta
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_sandbox.anthropic import (
    ScriptedMessagesServer,
    Turn,
    scripted_settings_overrides,
)

WORD = re.compile(r"w(\d{4})(?!\d)")
ROOT = Path(__file__).resolve().parents[1]
# The tree when the chat was still a composite of ipywidgets (each update re-sent the HTML).
BASELINE_REF = "dfe0023"
SESSION = Session(key=b"", username="bench")


class RecordingComm(BaseComm):
    """Keeps every message a widget would send to the front end, with its time and size."""

    sent: ClassVar[list[tuple[float, int, int, dict[str, Any]]]] = []  # time, wire, content size
    lock = threading.Lock()

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        content = {"comm_id": self.comm_id, "data": data or {}, **keys}
        message = SESSION.msg(msg_type, content, metadata=metadata or {})
        frames = SESSION.serialize(message)
        size = sum(len(frame) for frame in frames[1:]) + sum(len(b) for b in buffers or [])
        content_size = len(json.dumps(content, separators=(",", ":")).encode())
        with self.lock:
            RecordingComm.sent.append((time.monotonic(), size, content_size, content))


def answer_text(tokens: int) -> str:
    words, paragraphs, length, index = [], [], 0, 0
    while length < tokens * 4:
        index += 1
        words.append(f"w{index:04d}")
        length += 6
        if len(words) == 60:
            paragraphs.append(" ".join(words))
            words = []
    paragraphs.append(" ".join(words))
    return "\n\n".join(p for p in paragraphs if p)


class TimedBackend:
    """The real backend, with the time each word's TextDelta left the loop."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.arrivals: dict[int, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ask(self, question: str, **options: Any) -> Iterator[AgentEvent]:
        seen = ""
        for event in self.inner.ask(question, **options):
            if isinstance(event, TextDelta):
                now = time.monotonic()
                seen += event.text
                for match in WORD.finditer(seen):  # a word is complete once a space follows
                    number = int(match.group(1))
                    if number not in self.arrivals and match.end() < len(seen):
                        self.arrivals[number] = now
            yield event
        final = time.monotonic()
        for match in WORD.finditer(seen):
            self.arrivals.setdefault(int(match.group(1)), final)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(tokens: int, event_delay: float) -> dict[str, Any]:
    comm.create_comm = RecordingComm  # every widget's comm records instead of sending
    from revtops_kernel.ui.chat_panel import ChatPanel

    text = answer_text(tokens)
    with tempfile.TemporaryDirectory() as tmp, ScriptedMessagesServer() as api:
        db = Database(f"duckdb:///{Path(tmp) / 'store.duckdb'}")
        upgrade(db)
        settings = load_settings(**scripted_settings_overrides(api), REVTOPS_ORG="bench")
        panel = ChatPanel(db=db, settings=settings, suggestions=[])
        timed = TimedBackend(panel.backend)
        panel.backend = timed
        api.script(Turn.reply(text, event_delay=event_delay))
        RecordingComm.sent.clear()
        started = time.monotonic()
        panel.ask("Write a long answer.")
        answer = panel.wait(300)
        elapsed = time.monotonic() - started
        db.dispose()
    assert answer is not None and answer.error is None, answer
    assert answer.text == text, "the streamed text must arrive exactly"

    sent = list(RecordingComm.sent)
    shown_at: dict[int, float] = {}
    text_updates: list[float] = []
    streamed = ""  # the deltas so far: a word may arrive in two pieces
    for moment, _, _, content in sent:
        value = content["data"].get("content")  # the chat widget's custom messages
        if isinstance(value, str) and value:
            text_updates.append(moment)
            start = max(0, len(streamed) - 8)
            streamed += value
            for match in WORD.finditer(streamed, start):
                shown_at.setdefault(int(match.group(1)), moment)
    latencies = [
        (shown_at[number] - arrived) * 1000
        for number, arrived in timed.arrivals.items()
        if number in shown_at
    ]
    missing = sorted(set(timed.arrivals) - set(shown_at))
    window_peak = max(
        sum(1 for t in text_updates if start <= t < start + 1.0) for start in text_updates
    )
    stream_seconds = (text_updates[-1] - text_updates[0]) if len(text_updates) > 1 else 0.0
    total_bytes = sum(size for _, size, _, _ in sent)
    content_bytes = sum(size for _, _, size, _ in sent)
    text_bytes = len(text.encode())
    return {
        "tokens": tokens,
        "text_bytes": text_bytes,
        "words": len(timed.arrivals),
        "event_delay_s": event_delay,
        "answer_seconds": round(elapsed, 3),
        "comm_messages": len(sent),
        "comm_bytes": total_bytes,
        "bytes_over_text": round(total_bytes / text_bytes, 2),
        "comm_content_bytes": content_bytes,
        "content_bytes_over_text": round(content_bytes / text_bytes, 2),
        "text_updates": len(text_updates),
        "updates_per_second_peak_1s": window_peak,
        "updates_per_second_mean": round(len(text_updates) / stream_seconds, 1)
        if stream_seconds
        else None,
        "latency_ms_p50": round(statistics.median(latencies), 1),
        "latency_ms_p95": round(percentile(latencies, 0.95), 1),
        "latency_ms_max": round(max(latencies), 1),
        "words_never_shown": missing,
    }


def baseline(ref: str, tokens: int, event_delay: float) -> dict[str, Any]:
    """This benchmark as it was at ``ref``, on that commit's code, in a fresh process."""
    archive = subprocess.run(
        ["git", "archive", ref, "revtops_kernel", "bench/chat_stream.py"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="revtops_baseline_") as tree:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        out = Path(tree) / "baseline.json"
        env = {**os.environ, "PYTHONPATH": tree}  # that commit's revtops_kernel comes first
        subprocess.run(
            [sys.executable, str(Path(tree) / "bench" / "chat_stream.py"),
             f"--tokens={tokens}", f"--event-delay={event_delay}", f"--json={out}"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--event-delay", type=float, default=0.02, help="seconds per SSE event")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--baseline", default=BASELINE_REF, help="git ref to compare with")
    parser.add_argument("--no-baseline", action="store_true")
    options = parser.parse_args()
    before = (
        None
        if options.no_baseline
        else baseline(options.baseline, options.tokens, options.event_delay)
    )
    result = run(options.tokens, options.event_delay)
    print(f"{'':28} {'now':>12} {'baseline ' + options.baseline if before else ''}")
    for name, value in result.items():
        old = before.get(name, "") if before else ""
        print(f"{name:28} {value!s:>12} {old!s}")
    goals = {
        "bytes <= 2x text": result["content_bytes_over_text"] <= 2,
        "<= 25 updates/s": result["updates_per_second_peak_1s"] <= 25,
        "p95 latency <= 100 ms": result["latency_ms_p95"] <= 100,
    }
    for goal, met in goals.items():
        print(f"goal {goal:26} {'met' if met else 'MISSED'}")
    if options.json:
        options.json.write_text(json.dumps({**result, "baseline": before}, indent=2))


if __name__ == "__main__":
    main()
