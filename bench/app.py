"""The web app under load, in Debian's Chromium: first render against a one-button Voila page,
warm vs cold, and concurrent askers.

    .venv/bin/python bench/app.py                 # ~5 min on this 2-core machine
    .venv/bin/python bench/app.py --sessions 10 --visits 4 --json /tmp/app.json
    .venv/bin/python bench/app.py --sessions 0 --baseline dfe0023   # and the app as it was

Figures (same run, same machine, PostgreSQL store; medians of ``--visits`` visits):

1. time to first render: from navigation to the question box drawn (the chat widget's
   textarea), for signed-in visitors one after another, (a) with preheated kernels (the default
   ``revtops app``), (b) cold (``--pool-size 0``: a kernel starts per visit), and the floor: (c)
   a preheated Voila page showing one ipywidgets button, with Voila's defaults (every lab
   extension) and with the app's page settings (`voila_app.page_settings`: only the lab
   extensions the app loads, and the head's preload hints for the front end's scripts, through
   the same template partial). Goals: warm <= 1.2x the floor;
   cold / warm >= 3. Beside the live widget's box, each visit also times the first usable
   question box: the app page's own (the shell its template draws: it takes typing at once and
   keeps a question sent before the widget is there, which the widget sends when it takes over),
   compared with plain Voila's first screen (its template's spinner) on the floor's page. Visits
   start timing at navigation and stop at the selector (``goto`` waits for nothing else).
   ``--baseline REF`` adds (d): the app at git REF, preheated, until its
   question box showed (run from a ``git archive`` of REF put first on the path).
   The app runs with its default front end (since 2026-12-07 the light one: one bundled module,
   `revtops_server/frontend`); ``--front-end voila`` times Voila's front end instead (the
   app's fallback, ``REVTOPS_APP_FRONTEND``). The floor stays Voila's one-button page.
   ``--profile`` adds one profiled visit per page: when the HTML, the scripts (count, bytes),
   stylesheets and fonts arrived, Chromium's JavaScript CPU time per file, the first
   websocket frame and the question box: where a first render's time goes.
   ``--record-preload`` instead visits the app (with Voila's front end, the one that preloads)
   once with its preload hints stripped from the page and writes the scripts its front end
   fetched to the list the template preloads (``revtops_server/page_preload.py``): run it
   after upgrading Voila, ipywidgets or anywidget.
2. ``--sessions`` users of five organizations, signed in at once, each asks a question (the
   scripted Messages API answers with a tool call, then with what the tool returned): all
   answered, none with another organization's data. Reports wall time, per-answer p50/p95/max
   (goal: p95 <= 2 s) and the resident memory of each user's kernel (RSS, from /proc).
   ``--ramp 5,10,20`` repeats it at each count on a fresh app and prints the largest count
   whose answers all came within the goal: the users this machine holds.
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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from _common import progress

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revtops_server.page_preload import write_preloads  # noqa: E402
from revtops_server.pool_refill import REFILL_HOLD_SECONDS  # noqa: E402
from revtops_server.voila_app import (  # noqa: E402
    EXTENSION_ALLOWLIST,
    FRONTEND_ENV,
    FRONTENDS,
    TEMPLATES,
    front_end,
    page_settings,
)

from revtops_kernel.store import Database, upgrade  # noqa: E402
from revtops_kernel.store.scratch import scratch_postgres  # noqa: E402
from revtops_kernel.store.upsert import upsert  # noqa: E402
from revtops_sandbox.anthropic import RecordedRequest, ScriptedMessagesServer, Turn  # noqa: E402
from tests.browser.app_server import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    RunningApp,
    free_port,
    running_app,
)

ORGS = [f"org{i}" for i in range(5)]
MARKER = "Marker deal of "
QUESTION_SQL = "SELECT name FROM deals ORDER BY name"
QUESTION_BOX = ".revtops-chat textarea.rt-input"  # the chat widget's box: live
# The page template's question box (the shell): drawn with the page, it takes typing at once and
# keeps a question sent before the widget is there; the widget takes it over. "Usable" is the
# first of the two to show.
SHELL_BOX = "#rt-shell textarea.rt-shell-input"
USABLE_BOX = f"{SHELL_BOX}, {QUESTION_BOX}"
VOILA_SPINNER = "#loading"  # plain Voila's first screen, drawn by its template: the floor's
# the floor's first screen: its spinner, or its widget when the spinner was gone before it was
# seen (a preheated page can drop it at once; waiting for it alone then never ended)
FLOOR_FIRST = f"{VOILA_SPINNER}, .widget-button"
OLD_QUESTION_BOX = ".revtops-chat .rt-input input"  # the composite ipywidgets chat
BUTTON_NOTEBOOK = {
    "cells": [{"cell_type": "code", "execution_count": None, "id": "b", "metadata": {},
               "outputs": [], "source": "import ipywidgets\nipywidgets.Button(description='Go')"}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                "name": "python3"}},
    "nbformat": 4, "nbformat_minor": 5,
}  # fmt: skip


def seed(url: str) -> None:
    """One deal per organization whose name says whose it is."""
    db = Database(url)
    upgrade(db)
    now = datetime.now(UTC)
    rows = [
        {
            "organization_id": f"{org}-com",
            "source_system": "hubspot",
            "source_id": f"marker-{org}",
            "name": f"{MARKER}{org}-com",
            "amount": Decimal(1000),
            "updated_at": now,
            "created_at": now,
        }
        for org in ORGS
    ]
    with db.begin() as conn:
        upsert(conn, "deals", rows)
    db.dispose()


def answer(request: RecordedRequest) -> Turn:
    """Ask for the deals first; then say which marker the tool returned (data, not a guess)."""
    results = request.tool_results
    if not results:
        return Turn.tool("run_sql_query", {"sql": QUESTION_SQL})
    text = json.dumps(results)
    found = sorted({org for org in ORGS if f"{MARKER}{org}-com" in text})
    return Turn.reply("markers seen: " + ", ".join(f"{org}-com" for org in found))


LAST_VISIT = [float("-inf")]  # time.monotonic() when the latest visit() navigated


def settle(server_pid: int, timeout: float = 300.0) -> float:
    """Wait until the server's kernels are idle (each under 5% of a CPU for a second): a
    preheated pool has finished preheating (on a loaded machine a kernel's imports and preload
    take 20-30 s, and a visitor arriving earlier waits for them). The app refills its pool only
    `REFILL_HOLD_SECONDS` after a visit (`revtops_server.pool_refill`), so that long after the
    latest visit is waited out first: the refill's kernel has started, and is waited for.
    Returns the seconds waited."""
    import psutil

    started = time.monotonic()
    time.sleep(max(0.0, LAST_VISIT[0] + REFILL_HOLD_SECONDS + 1.0 - started))
    while time.monotonic() - started < timeout:
        kernels = [
            child
            for child in psutil.Process(server_pid).children(recursive=True)
            if "ipykernel" in " ".join(child.cmdline())
        ]
        for kernel in kernels:
            kernel.cpu_percent(None)
        time.sleep(1.0)
        try:
            if all(kernel.cpu_percent(None) < 5.0 for kernel in kernels):
                break
        except psutil.NoSuchProcess:
            continue
    return time.monotonic() - started


def visit(
    browser: Any,
    url: str,
    selector: str,
    *,
    token: Any = None,
    email: str = "",
    before: Callable[[Any], None] | None = None,
    timeout_ms: int = 180_000,
    first: str | None = None,
    firsts: list[float] | None = None,
) -> tuple[Any, float]:
    """A new visitor (a fresh browser context, signed in as ``email`` when ``token`` mints
    sessions) opens ``url`` until ``selector`` shows. ``before(page)`` runs before the
    navigation. Returns the page (close its context when done) and the seconds it took. With
    ``first`` (an earlier screen, e.g. the page's own question box), the seconds until it showed
    are appended to ``firsts``."""
    context = browser.new_context()
    if token is not None:
        context.add_cookies(
            [{"name": "revtops_session", "value": token(email, "V"), "url": url + "/"}]
        )
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    if before is not None:
        before(page)
    start = time.perf_counter()
    LAST_VISIT[0] = time.monotonic()
    page.goto(url + "/", wait_until="commit")
    if first is not None and firsts is not None:
        page.locator(first).first.wait_for()
        firsts.append(time.perf_counter() - start)
    page.locator(selector).wait_for()
    return page, time.perf_counter() - start


def first_render(
    url: str,
    browser: Any,
    visits: int,
    label: str,
    selector: str,
    token: Any = None,
    server_pid: int | None = None,
    first: str | None = None,
    firsts: list[float] | None = None,
) -> list[float]:
    """Seconds from navigation to ``selector`` visible, for ``visits`` fresh visitors; with
    ``server_pid``, each visit waits until the server's kernels are idle (the pool is ready).
    With ``first``, the seconds until that earlier screen showed go to ``firsts``."""
    seconds = []
    for number in range(visits):
        if server_pid is not None:
            waited = settle(server_pid)
            progress(f"{label}: kernels idle after {waited:.1f} s")
        email = f"visitor{number}@{ORGS[number % len(ORGS)]}.com"
        page, took = visit(
            browser, url, selector, token=token, email=email, first=first, firsts=firsts
        )
        seconds.append(took)
        page.context.close()
        early = f" (first screen {firsts[-1]:.2f} s)" if first and firsts else ""
        progress(f"{label} visit {number}: {took:.2f} s{early}")
        time.sleep(2.0)  # let the pool refill, as between real visitors
    return seconds


def where_time_goes(
    url: str, browser: Any, label: str, selector: str, token: Any = None
) -> dict[str, Any]:
    """One more visit, profiled: when the HTML, each script, stylesheet and font arrived, the
    JavaScript CPU time per file (Chromium's sampling profiler), the first websocket frame, and
    when ``selector`` showed. The profiler slows the page: its total is not a timed visit."""
    frames: list[float] = []
    cdps: list[Any] = []

    def profile_it(page: Any) -> None:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 500})
        cdp.send("Profiler.start")
        cdps.append(cdp)
        page.on(
            "websocket", lambda ws: ws.on("framereceived", lambda _: frames.append(time.time()))
        )

    started = time.time()
    page, _ = visit(
        browser, url, selector, token=token, email=f"profiled@{ORGS[0]}.com", before=profile_it
    )
    context, (cdp,) = page.context, cdps
    shown_ms = page.evaluate("performance.now()")
    profile = cdp.send("Profiler.stop")["profile"]
    timing = page.evaluate(
        """() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource').map((r) => ({
          name: r.name, type: r.initiatorType, start: r.startTime, end: r.responseEnd,
          bytes: r.encodedBodySize, decoded: r.decodedBodySize }));
        return { html_first_byte: nav.responseStart, html_done: nav.responseEnd,
                 dom_content_loaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                 resources: res, origin: performance.timeOrigin };
      }"""
    )
    context.close()
    # CPU per script file: self time of the profile's samples, by the frame's URL.
    nodes = {node["id"]: node for node in profile["nodes"]}
    per_url: dict[str, float] = {}
    deltas = profile.get("timeDeltas", [])
    for sample, delta in zip(profile.get("samples", []), [*deltas[1:], 0], strict=False):
        frame = nodes[sample]["callFrame"]
        name = frame.get("url") or f"({frame.get('functionName') or 'native'})"
        per_url[name] = per_url.get(name, 0.0) + delta / 1000
    origin_s = timing["origin"] / 1000
    groups: dict[str, dict[str, float]] = {}
    for entry in timing["resources"]:
        name = entry["name"].split("?")[0].rsplit("/", 1)[-1] or entry["name"]
        kind = "font" if name.endswith((".woff", ".woff2", ".ttf")) else entry["type"]
        group = groups.setdefault(kind, {"count": 0, "bytes": 0, "last_end_ms": 0.0})
        group["count"] += 1
        group["bytes"] += entry["decoded"]
        group["last_end_ms"] = max(group["last_end_ms"], round(entry["end"]))
    biggest = sorted(timing["resources"], key=lambda r: -r["decoded"])[:8]
    return {
        "label": label,
        "shown_ms": round(shown_ms),
        "wall_s": round(time.time() - started, 2),
        "html_first_byte_ms": round(timing["html_first_byte"]),
        "html_done_ms": round(timing["html_done"]),
        "dom_content_loaded_ms": round(timing["dom_content_loaded"]),
        "load_ms": round(timing["load"]),
        "first_ws_frame_ms": round((frames[0] - origin_s) * 1000) if frames else None,
        "ws_frames_until_shown": sum(1 for f in frames if f - origin_s <= shown_ms / 1000),
        "resources": groups,
        "largest": [
            (
                r["name"].split("?")[0].rsplit("/", 1)[-1],
                r["decoded"],
                round(r["start"]),
                round(r["end"]),
            )
            for r in biggest
        ],
        "cpu_ms_by_file": dict(
            sorted(
                ((k.rsplit("/", 1)[-1] or k, round(v)) for k, v in per_url.items()),
                key=lambda kv: -kv[1],
            )[:12]
        ),
        "cpu_ms_total": round(sum(per_url.values())),
    }


FLOOR_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block notebook_css -%}{{ super() }}{% include 'preload.html.j2' %}{%- endblock notebook_css -%}
"""  # Voila's lab template with the app's preload partial, for the floor with the app's settings


def app_settings_template(folder: Path) -> tuple[dict[str, str], list[str]]:
    """The environment and Voila arguments that give a plain Voila page the app's page settings:
    its extension allowlist, its preload list, and a template that is Voila's lab template with
    the app's preload partial (the app's own template adds the shell, which the floor has not)."""
    template = folder / "jupyter" / "voila" / "templates" / "revtops-floor"
    template.mkdir(parents=True)
    (template / "conf.json").write_text(json.dumps({"base_template": "lab"}))
    (template / "index.html.j2").write_text(FLOOR_TEMPLATE)
    (template / "preload.html.j2").write_text((TEMPLATES / "preload.html.j2").read_text())
    args = [f"--VoilaConfiguration.{name}={value!r}" for name, value in page_settings().items()]
    paths = [str(folder / "jupyter"), *filter(None, [os.environ.get("JUPYTER_PATH")])]
    env = {"JUPYTER_PATH": os.pathsep.join(paths)}
    return env, [*args, "--template=revtops-floor"]


@contextmanager
def button_page(folder: Path, pool: int, app_settings: bool = False) -> Iterator[tuple[str, int]]:
    """Plain Voila, preheated, serving a notebook that shows one button: the floor. With
    ``app_settings``, its page has the app's page settings (`app_settings_template`)."""
    notebook = folder / "button.ipynb"
    notebook.write_text(json.dumps(BUTTON_NOTEBOOK))
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    settings: list[str] = []
    if app_settings:
        extra_env, settings = app_settings_template(folder)
        env.update(extra_env)
    command = [
        sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
        "--VoilaConfiguration.preheat_kernel=True",
        f"--VoilaConfiguration.default_pool_size={pool}", *settings, str(notebook),
    ]  # fmt: skip
    with (folder / "voila.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/voila/static/voila.js", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("voila did not start: " + (folder / "voila.log").read_text())
            time.sleep(0.3)
        time.sleep(5.0)  # the pool fills after start
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(20)


def record_preload(app: RunningApp, browser: Any) -> list[str]:
    """One warm visit with the page's preload hints stripped (so the list records what the front
    end asks for, not what was announced): the scripts it fetched, in order, written to the list
    the template preloads. Returns their paths."""
    context = browser.new_context()
    email = f"recorder@{ORGS[0]}.com"
    context.add_cookies(
        [{"name": "revtops_session", "value": app.token(email, "R"), "url": app.url + "/"}]
    )
    page = context.new_page()
    page.set_default_timeout(180_000)

    def without_preloads(route: Any) -> None:
        response = route.fetch()
        body = re.sub(r'<link rel="preload" as="script"[^>]*>', "", response.text())
        route.fulfill(response=response, body=body)

    page.route(app.url + "/", without_preloads)
    page.goto(app.url + "/", wait_until="commit")
    page.locator(QUESTION_BOX).wait_for()
    page.wait_for_timeout(2000)  # the views' late chunks
    fetched: list[str] = page.evaluate(
        """() => performance.getEntriesByType('resource')
              .filter((r) => r.initiatorType === 'script')
              .sort((a, b) => a.startTime - b.startTime)
              .map((r) => { const u = new URL(r.name); return u.pathname + u.search; })"""
    )
    context.close()
    base = "/"  # revtops app serves at the server's root
    entries = write_preloads([path.removeprefix(base) for path in fetched])
    return [entry["path"] for entry in entries]


def extract(ref: str, folder: Path) -> Path:
    """The product's code at git ``ref``, for the baseline app."""
    archive = subprocess.run(
        ["git", "archive", ref, "revtops_kernel", "extensions", "notebooks"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def kernel_rss_mib(app: RunningApp) -> list[float]:
    """Resident memory of each kernel the app process started (users' and the pool's)."""
    import psutil

    kernels = [
        child
        for child in psutil.Process(app.process.pid).children(recursive=True)
        if "ipykernel" in " ".join(child.cmdline())
    ]
    return sorted(k.memory_info().rss / 2**20 for k in kernels)


def concurrent_askers(app: RunningApp, browser: Any, sessions: int) -> dict[str, Any]:
    """Sign ``sessions`` users in (one after another: a page load is measured above), then
    send every question at once and wait for all the answers."""
    pages = []
    for index in range(sessions):
        org = ORGS[index % len(ORGS)]
        email = f"asker{index}@{org}.com"
        page, _ = visit(
            browser, app.url, QUESTION_BOX, token=app.token, email=email, timeout_ms=300_000
        )
        pages.append((index, f"{org}-com", page))
        progress(f"asker {index} signed in ({org})")
    start = time.perf_counter()
    for _, _, page in pages:
        page.locator(QUESTION_BOX).fill("Which deals do we have?")
        page.locator(QUESTION_BOX).press("Enter")
    results: dict[int, dict[str, Any]] = {}
    for index, org, page in pages:
        try:
            page.get_by_text("markers seen:").wait_for()
            said = page.get_by_text("markers seen:").inner_text()
            results[index] = {"org": org, "answer": said, "seconds": time.perf_counter() - start}
        except Exception as exc:  # a failure is a result here, not a crash
            results[index] = {"org": org, "error": str(exc)[:300]}
    wall = time.perf_counter() - start
    rss = kernel_rss_mib(app)
    for _, _, page in pages:
        page.context.close()
    answered = [r for r in results.values() if "answer" in r]
    mixed = [r for r in answered if r["answer"].strip() != f"markers seen: {r['org']}"]
    times = [r["seconds"] for r in answered]
    return {
        "sessions": sessions,
        "answered": len(answered),
        "mixed_identities": len(mixed),
        "errors": [r.get("error") for r in results.values() if "error" in r],
        "wall_s": wall,
        "answer_p50_s": statistics.median(times) if times else None,
        "answer_p95_s": statistics.quantiles(times, n=20)[-1] if len(times) > 1 else None,
        "answer_max_s": max(times) if times else None,
        "kernel_rss_mib": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10, help="concurrent askers (0: skip)")
    parser.add_argument("--visits", type=int, default=4, help="first renders per mode")
    parser.add_argument("--baseline", help="also measure the app at this git ref (warm)")
    parser.add_argument(
        "--front-end", choices=FRONTENDS, help="the app page's front end (default: the app's)"
    )
    parser.add_argument(
        "--other-front-end",
        action="store_true",
        help="also time the app with its other front end, warm and cold, in the same run",
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--ramp", help="concurrent askers at each of these counts (e.g. 5,10,20), fresh app each"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one more visit per page, profiled: where the first render's time goes",
    )
    parser.add_argument(
        "--record-preload",
        action="store_true",
        help="record the scripts a first render fetches into the template's preload list",
    )
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
    pool = max(2, args.visits)
    profiles: list[dict[str, Any]] = []
    figures["profiles"] = profiles
    with (
        tempfile.TemporaryDirectory(prefix="revtops_bench_app_") as folder,
        scratch_postgres(args.postgres_url, prefix="revtops_bench") as url,
        ScriptedMessagesServer() as api,
    ):
        seed(url)
        env = {
            "REVTOPS_DATABASE_URL": url,
            "ANTHROPIC_API_KEY": api.api_key,
            "ANTHROPIC_BASE_URL": api.base_url,
            **({FRONTEND_ENV: args.front_end} if args.front_end else {}),
        }
        if args.record_preload:
            home = Path(folder) / "record"
            home.mkdir()
            # what Voila's front end fetches (the app's fallback, REVTOPS_APP_FRONTEND=voila):
            # the light front end's page loads one module and preloads nothing
            voila = {**env, "REVTOPS_APP_FRONTEND": "voila"}
            with running_app(home, pool_size=2, **voila) as app, sync_playwright() as playwright:
                app.create_org(ORGS[0], f"{ORGS[0]}.com")
                settle(app.process.pid)
                # A page fulfilled by Playwright has no address space of its own, and Chromium's
                # local network access checks then block its websocket to 127.0.0.1.
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"],
                )
                paths = record_preload(app, browser)
                browser.close()
            print(f"{len(paths)} scripts recorded:", *paths, sep="\n  ")
            return 0
        runs: list[tuple[str, int, Path | None, str, dict[str, str]]] = [
            ("warm", pool, None, QUESTION_BOX, {}),
            ("cold", 0, None, QUESTION_BOX, {}),
        ]
        if args.other_front_end:
            # the same code with the page's other front end, warm and cold (same run)
            chosen = args.front_end or front_end()
            other = {FRONTEND_ENV: next(name for name in FRONTENDS if name != chosen)}
            runs += [("other_warm", pool, None, QUESTION_BOX, other)]
            runs += [("other_cold", 0, None, QUESTION_BOX, other)]
            figures["other_front_end"] = other[FRONTEND_ENV]
        if args.baseline:
            code = extract(args.baseline, Path(folder) / "baseline-code")
            anywidget_chat = (code / "revtops_kernel" / "ui" / "static" / "chat.js").exists()
            runs.append(
                ("baseline", pool, code, QUESTION_BOX if anywidget_chat else OLD_QUESTION_BOX, {})
            )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # The floor as before (Voila's defaults: every lab extension), and with the app's
            # page settings (its extensions, its preloads): the app is compared with both.
            for floor, app_settings in (("button", False), ("button_app_settings", True)):
                home = Path(folder) / floor
                home.mkdir()
                with button_page(home, pool, app_settings) as (page_url, pid):
                    firsts: list[float] = []
                    figures[floor] = first_render(
                        page_url, browser, args.visits, floor, ".widget-button", server_pid=pid,
                        first=FLOOR_FIRST, firsts=firsts,
                    )  # fmt: skip
                    figures[f"{floor}_first_screen"] = firsts
                    if args.profile:
                        settle(pid)
                        profiles.append(where_time_goes(page_url, browser, floor, ".widget-button"))
            for label, size, code, selector, run_env in runs:
                home = Path(folder) / label
                home.mkdir()
                with running_app(home, pool_size=size, code=code, **{**env, **run_env}) as app:
                    for org in ORGS:
                        app.create_org(org, f"{org}.com")
                    if size:
                        time.sleep(5.0)  # the pool fills after start
                    pid = app.process.pid if size else None  # cold: nothing to wait for
                    firsts = []
                    figures[label] = first_render(
                        app.url, browser, args.visits, label, selector, app.token, pid,
                        first=USABLE_BOX, firsts=firsts,
                    )  # fmt: skip
                    figures[f"{label}_usable"] = firsts
                    if args.profile:
                        if pid is not None:
                            settle(pid)
                        profiles.append(
                            where_time_goes(app.url, browser, label, selector, token=app.token)
                        )
            browser.close()

        levels = [int(n) for n in args.ramp.split(",")] if args.ramp else [args.sessions]
        for sessions in [n for n in levels if n > 0]:
            home = Path(folder) / f"concurrent-{sessions}"
            home.mkdir()
            api.script(*[answer] * (2 * sessions))
            with running_app(home, pool_size=sessions, **env) as app:
                for org in ORGS:
                    app.create_org(org, f"{org}.com")
                time.sleep(10.0)
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=CHROMIUM, args=CHROMIUM_ARGS
                    )
                    figures.setdefault("ramp", []).append(concurrent_askers(app, browser, sessions))
                    browser.close()
        if figures.get("ramp"):
            figures["concurrent"] = figures["ramp"][-1]

    button = statistics.median(figures["button"])
    same = statistics.median(figures["button_app_settings"])
    warm = statistics.median(figures["warm"])
    cold = statistics.median(figures["cold"])
    warm_usable = statistics.median(figures["warm_usable"])
    cold_usable = statistics.median(figures["cold_usable"])
    spinner = statistics.median(figures["button_first_screen"])
    print(
        f"\nweb app (revtops app, Voila + PostgreSQL, headless Chromium; the page's front end: "
        f"{args.front_end or 'the default'}), medians"
    )
    print(f"  one-button Voila page, preheated (the floor, Voila's defaults): {button:.2f} s")
    print(
        f"  the same page with the app's settings (extensions {EXTENSION_ALLOWLIST}, preloads): "
        f"{same:.2f} s"
    )
    print(
        f"  app to the question box, preheated: {warm:.2f} s = {warm / button:.2f}x the floor "
        f"(goal <= 1.2x) -> {'MET' if warm <= 1.2 * button else 'MISSED'}; "
        f"{warm / same:.2f}x the floor with the app's settings"
    )
    print(
        f"  app cold {cold:.2f} s; cold/warm {cold / warm:.1f}x "
        f"(goal >= 3x) -> {'MET' if cold / warm >= 3 else 'MISSED'}"
    )
    print(
        f"  the page's own question box (usable: typing, a kept question sent on takeover): "
        f"preheated {warm_usable:.2f} s, cold {cold_usable:.2f} s (cold/warm "
        f"{cold_usable / warm_usable:.1f}x); plain Voila's first screen (its spinner, also drawn "
        f"by the template) {spinner:.2f} s: {warm_usable / spinner:.2f}x"
    )
    print(
        f"  from the usable box to the live widget: preheated +{warm - warm_usable:.2f} s, "
        f"cold +{cold - cold_usable:.2f} s"
    )
    if "other_warm" in figures:
        other_warm = statistics.median(figures["other_warm"])
        other_cold = statistics.median(figures["other_cold"])
        print(
            f"  the same code with the {figures['other_front_end']} front end: preheated "
            f"{other_warm:.2f} s ({other_warm / button:.2f}x the floor), cold {other_cold:.2f} s; "
            f"cold/warm {other_cold / other_warm:.1f}x"
        )
    if "baseline" in figures:
        before = statistics.median(figures["baseline"])
        print(
            f"  baseline {args.baseline} to its question box, preheated: {before:.2f} s = "
            f"{before / button:.2f}x the floor"
        )
    for profile in profiles:
        print(f"\n  where the time goes, {profile['label']} (one profiled visit):")
        for key, value in profile.items():
            if key != "label":
                print(f"    {key}: {value}")
    ok = True
    held = 0
    for concurrent in figures.get("ramp", []):
        rss = concurrent["kernel_rss_mib"]
        p95 = concurrent["answer_p95_s"]
        print(
            f"  {concurrent['sessions']} concurrent askers: {concurrent['answered']} answered, "
            f"{concurrent['mixed_identities']} with another org's data, wall "
            f"{concurrent['wall_s']:.1f} s, answer p50 {concurrent['answer_p50_s'] or 0:.1f} s, "
            f"p95 {p95 or 0:.1f} s (goal <= 2 s), max {concurrent['answer_max_s'] or 0:.1f} s; "
            f"{len(rss)} kernels, RSS per kernel median "
            f"{statistics.median(rss) if rss else 0:.0f} MiB, max {max(rss, default=0):.0f} MiB"
        )
        for error in concurrent["errors"]:
            print(f"  error: {error}")
        whole = concurrent["answered"] == concurrent["sessions"]
        ok = ok and whole and not concurrent["mixed_identities"]
        if whole and (p95 if p95 is not None else concurrent["answer_max_s"] or 0) <= 2.0:
            held = max(held, concurrent["sessions"])
    if figures.get("ramp"):
        print(f"  users this machine holds with answers within 2 s (p95): {held}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
