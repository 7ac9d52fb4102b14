"""Benchmark the chat panel's streaming: comm traffic and token-to-screen latency.

    python bench/chat_stream.py [--tokens 2000] [--event-delay 0.02] [--json PATH]
                                [--baseline REF | --no-baseline] [--browser]

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

``--browser`` streams the same answer into the panel in Voila, read by headless Chromium
through a TCP proxy that counts what the server sends: the real bytes on the wire (Jupyter's
message headers included; without and with the websocket's permessage-deflate), the websocket
payloads, and from each word's ``TextDelta`` in the kernel to the animation frame that paints it
(wall clocks of one machine; goal p95 <= 100 ms) with the paints per second (goal <= 25).
``--lab`` does the same in JupyterLab (the ``ChatPanel()`` cell run in a notebook), with
Jupyter Server's default (``websocket_compression_options`` None: no compression) and with what
the package's server extension sets when the server's config leaves it unset (``{}``:
permessage-deflate). Both modes also report the server process's CPU time during the answer
(what compressing costs) and the bytes of the websocket connections apart from the rest (Lab
polls its REST API while the answer streams).

The baseline, measured in the same run: this benchmark at git ``--baseline`` (default: the
composite ipywidgets panel before the chat became one anywidget component), run from a
``git archive`` of that commit in a subprocess. It counted a text update as a widget ``value``
(the re-sent HTML); this one counts the widget's text-delta messages.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import socket
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


def run(tokens: int, event_delay: float, rate: float | None = None) -> dict[str, Any]:
    comm.create_comm = RecordingComm  # every widget's comm records instead of sending
    from revtops_kernel.ui.chat_panel import ChatPanel

    text = answer_text(tokens)
    with tempfile.TemporaryDirectory() as tmp, ScriptedMessagesServer() as api:
        db = Database(f"duckdb:///{Path(tmp) / 'store.duckdb'}")
        upgrade(db)
        settings = load_settings(**scripted_settings_overrides(api), REVTOPS_ORG="bench")
        rate_option = {} if rate is None else {"max_rate": rate}
        panel = ChatPanel(db=db, settings=settings, suggestions=[], **rate_option)
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


# --- in the browser: Voila, headless Chromium, a counting proxy in front of the server ------------

KERNEL_CELL = """
import json, re, time
from revtops_kernel import ChatPanel
from revtops_kernel.agent.events import TextDelta

panel = ChatPanel(suggestions=[], **RATE)
inner = panel.backend
WORD = re.compile(r"w(\\d{4})(?!\\d)")


class Timed:
    '''The real backend; writes when each word's TextDelta left the loop (wall clock).'''

    def __getattr__(self, name):
        return getattr(inner, name)

    def ask(self, question, **options):
        seen, arrivals = "", {}
        try:
            for event in inner.ask(question, **options):
                if isinstance(event, TextDelta):
                    now = time.time()
                    start = max(0, len(seen) - 8)
                    seen += event.text
                    for match in WORD.finditer(seen, start):
                        if match.end() < len(seen):
                            arrivals.setdefault(int(match.group(1)), now)
                yield event
        finally:
            final = time.time()
            for match in WORD.finditer(seen):
                arrivals.setdefault(int(match.group(1)), final)
            with open(OUT, "w") as sink:
                json.dump(arrivals, sink)


panel.backend = Timed()
panel
"""

# Runs in the page: after every DOM change, at the next animation frame (the frame that paints
# it), note the time and the highest word the thread shows.
PAINT_PROBE = """
(() => {
  window.__paints = [];
  let pending = false, shown = 0;
  const look = () => {
    pending = false;
    const texts = document.querySelectorAll('.revtops-chat .rt-text');
    const last = texts[texts.length - 1];
    if (!last) return;
    const tail = last.textContent.slice(-64);
    const words = tail.match(/w\\d{4}(?!\\d)/g);
    const top = words ? Number(words[words.length - 1].slice(1)) : 0;
    if (top > shown) {
      shown = top;
      window.__paints.push([performance.timeOrigin + performance.now(), top]);
    }
  };
  new MutationObserver(() => {
    if (!pending) { pending = true; requestAnimationFrame(look); }
  }).observe(document, { childList: true, subtree: true, characterData: true });
})();
"""


class CountingProxy:
    """A TCP proxy in front of the server: every byte it passes to the browser, with its time
    (the bytes on the wire, compressed or not)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down: list[tuple[float, int, int]] = []  # time, bytes, connection
        self.websockets: set[int] = set()  # connections the server upgraded (101)
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            number = client.fileno()
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, number), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, count: int | None) -> None:
        first = True
        try:
            while data := source.recv(65536):
                if count is not None:
                    with self.lock:
                        if first and data.startswith(b"HTTP/1.1 101"):
                            self.websockets.add(count)
                        self.down.append((time.time(), len(data), count))
                    first = False
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def bytes_between(self, start: float, end: float, websockets_only: bool = False) -> int:
        with self.lock:
            return sum(
                size
                for moment, size, number in self.down
                if start <= moment <= end and (not websockets_only or number in self.websockets)
            )

    def close(self) -> None:
        self.listener.close()


def server_command(where: str, port: int, folder: Path, compress: bool) -> list[str]:
    """Voila serving the notebook, or JupyterLab on its folder, compressing the kernel
    websocket or not. Lab reads the setting from a config file in its own config directory
    (on the command line ``{}`` would arrive as a string), which overrides the installed
    jupyter_server_config.d."""
    if where == "voila":
        settings = '{"websocket_compression_options": {}}' if compress else "{}"
        return [
            sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", f"--Voila.tornado_settings={settings}",
            str(folder / "stream.ipynb"),
        ]  # fmt: skip
    config = folder / "jupyter_config"
    config.mkdir(exist_ok=True)
    option: dict[str, Any] | None = {} if compress else None
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"websocket_compression_options": option}})
    )
    return [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={LAB_TOKEN}",
        f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip


LAB_TOKEN = "revtops-bench"


def browser_run(
    tokens: int, event_delay: float, compress: bool, rate: float | None = None, where: str = "voila"
) -> dict[str, Any]:
    """The same answer in Voila (or JupyterLab, ``where="lab"``), read by headless Chromium:
    from each word's TextDelta in the kernel to the animation frame that paints it, the bytes
    the browser received and the server's CPU time while the answer streamed."""
    import nbformat
    import psutil
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.browser.app_server import CHROMIUM, CHROMIUM_ARGS, free_port

    text = answer_text(tokens)
    with tempfile.TemporaryDirectory(prefix="revtops_chat_stream_") as tmp, \
            ScriptedMessagesServer() as api:  # fmt: skip
        folder = Path(tmp)
        db = Database(f"duckdb:///{folder / 'store.duckdb'}")
        upgrade(db)
        db.dispose()
        arrivals_path = folder / "arrivals.json"
        notebook = nbformat.v4.new_notebook()
        rate_option = {} if rate is None else {"max_rate": rate}
        head = f"OUT = {str(arrivals_path)!r}\nRATE = {rate_option!r}\n"
        notebook.cells = [nbformat.v4.new_code_cell(head + KERNEL_CELL)]
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                           "language": "python"}  # fmt: skip
        nbformat.write(notebook, folder / "stream.ipynb")
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REVTOPS_")},
            **scripted_settings_overrides(api),
            "REVTOPS_DATABASE_URL": f"duckdb:///{folder / 'store.duckdb'}",
            "REVTOPS_ORG": "bench",
            "REVTOPS_HOME": str(folder / "home"),
            "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        }
        if where == "lab":  # Lab's own directories: no user settings, no news, no workspace
            for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                         "JUPYTERLAB_WORKSPACES_DIR"):  # fmt: skip
                env[name] = str(folder / name.lower())
            env["JUPYTER_CONFIG_DIR"] = str(folder / "jupyter_config")
        command = server_command(where, port, folder, compress)
        log = (folder / "voila.log").open("wb")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        proxy = CountingProxy(port)
        try:
            ready = "/voila/static/voila.js" if where == "voila" else "/api/status"
            wait_for_http(f"http://127.0.0.1:{port}{ready}", process)
            server = psutil.Process(process.pid)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                page.set_default_timeout(300_000)
                frames: list[int] = []

                def on_socket(ws: Any) -> None:
                    ws.on("framereceived", lambda payload: frames.append(len(payload)))

                page.on("websocket", on_socket)
                page.add_init_script(PAINT_PROBE)
                if where == "voila":
                    page.goto(f"http://127.0.0.1:{proxy.port}/")
                else:  # open the notebook, wait for its kernel, run the panel's cell
                    page.goto(
                        f"http://127.0.0.1:{proxy.port}/lab/tree/stream.ipynb?token={LAB_TOKEN}"
                    )
                    page.get_by_text("| Idle").first.wait_for()
                    page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
                    page.keyboard.press("Control+Enter")
                box = page.locator(".revtops-chat textarea.rt-input")
                box.wait_for()
                page.wait_for_timeout(3000)  # the page settles: nothing flows while idle
                api.script(Turn.reply(text, event_delay=event_delay))
                box.fill("Write a long answer.")
                frames_before = len(frames)
                cpu_before = sum(server.cpu_times()[:2])
                started = time.time()
                box.press("Enter")
                last = max(int(m.group(1)) for m in WORD.finditer(text))
                page.wait_for_function(
                    f"() => window.__paints.length && window.__paints.at(-1)[1] >= {last}"
                )
                page.wait_for_timeout(1500)  # the done message and the last frames
                ended = time.time()
                server_cpu = sum(server.cpu_times()[:2]) - cpu_before
                paints: list[list[float]] = page.evaluate("window.__paints")
                ws_bytes = sum(frames[frames_before:])
                ws_frames = len(frames) - frames_before
                browser.close()
            wire = proxy.bytes_between(started, ended)
            wire_ws = proxy.bytes_between(started, ended, websockets_only=True)
        finally:
            proxy.close()
            process.terminate()
            process.wait(30)
            log.close()
        arrivals = {int(k): v for k, v in json.loads(arrivals_path.read_text()).items()}

    painted: dict[int, float] = {}
    top = 0
    for moment, shown in paints:  # every word up to the highest shown is on the screen
        for number in range(top + 1, int(shown) + 1):
            painted[number] = moment / 1000
        top = max(top, int(shown))
    latencies = [(painted[n] - t) * 1000 for n, t in arrivals.items() if n in painted]
    moments = [moment / 1000 for moment, _ in paints]
    peak = max(sum(1 for t in moments if start <= t < start + 1.0) for start in moments)
    text_bytes = len(text.encode())
    return {
        "where": where,
        "websocket_compression": compress,
        "text_bytes": text_bytes,
        "server_cpu_s": round(server_cpu, 3),
        "words_painted": len(painted),
        "tcp_bytes_to_browser": wire,
        "tcp_bytes_over_text": round(wire / text_bytes, 2),
        # the websocket connections alone (Lab also polls its REST API while the answer streams)
        "tcp_websocket_bytes": wire_ws,
        "tcp_websocket_over_text": round(wire_ws / text_bytes, 2),
        "ws_frames": ws_frames,
        "ws_payload_bytes": ws_bytes,
        "ws_payload_over_text": round(ws_bytes / text_bytes, 2),
        "paints_with_new_text": len(paints),
        "paints_per_second_peak_1s": peak,
        "delta_to_paint_ms_p50": round(statistics.median(latencies), 1),
        "delta_to_paint_ms_p95": round(percentile(latencies, 0.95), 1),
        "delta_to_paint_ms_max": round(max(latencies), 1),
    }


def wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("voila did not start")
        time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--event-delay", type=float, default=0.02, help="seconds per SSE event")
    parser.add_argument("--rate", type=float, help="text flushes a second (default: the panel's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--baseline", default=BASELINE_REF, help="git ref to compare with")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="also stream into Voila in headless Chromium: delta-to-paint and the bytes the "
        "browser received, without and with websocket compression",
    )
    parser.add_argument(
        "--lab",
        action="store_true",
        help="the same in JupyterLab: Jupyter Server's default (no compression) and the "
        "package's server extension's (permessage-deflate)",
    )
    parser.add_argument("--only-browser", action="store_true", help="skip the in-process run")
    options = parser.parse_args()
    before = (
        None
        if options.no_baseline or options.only_browser
        else baseline(options.baseline, options.tokens, options.event_delay)
    )
    result: dict[str, Any] = {}
    if not options.only_browser:
        result = run(options.tokens, options.event_delay, options.rate)
        print(f"{'':28} {'now':>12} {'baseline ' + options.baseline if before else ''}")
        for name, value in result.items():
            old = before.get(name, "") if before else ""
            print(f"{name:28} {value!s:>12} {old!s}")
        goals = {
            # comm content without Jupyter's headers: the wire itself needs --browser
            "comm content <= 2x text": result["content_bytes_over_text"] <= 2,
            "<= 25 updates/s": result["updates_per_second_peak_1s"] <= 25,
            "p95 to the comm <= 100 ms": result["latency_ms_p95"] <= 100,
        }
        for goal, met in goals.items():
            print(f"goal {goal:26} {'met' if met else 'MISSED'}")
    browser = []
    places = [where for where, on in (("voila", options.browser), ("lab", options.lab)) if on]
    for where in places:
        pair = [
            browser_run(options.tokens, options.event_delay, compress, options.rate, where)
            for compress in (False, True)
        ]
        browser.extend(pair)
        title = "in Chromium (Voila)" if where == "voila" else "in Chromium (JupyterLab)"
        print(f"\n{title:28} {'plain':>12} {'compressed':>12}")
        for name in pair[0]:
            print(f"{name:28} {pair[0][name]!s:>12} {pair[1][name]!s:>12}")
        plain, packed = pair
        checks = {
            "wire <= 2x text, plain": plain["tcp_bytes_over_text"] <= 2,
            "wire <= 2x text, deflate": packed["tcp_bytes_over_text"] <= 2,
            "p95 delta-to-paint <= 100": max(
                plain["delta_to_paint_ms_p95"], packed["delta_to_paint_ms_p95"]
            )
            <= 100,
            "<= 25 paints/s": plain["paints_per_second_peak_1s"] <= 25,
        }
        for goal, met in checks.items():
            print(f"goal {goal:26} {'met' if met else 'MISSED'}")
    if options.json:
        options.json.write_text(
            json.dumps({**result, "baseline": before, "browser": browser}, indent=2)
        )


if __name__ == "__main__":
    main()
