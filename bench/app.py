"""The web app under load, in Debian's Chromium: first render warm vs cold, and concurrent askers.

    .venv/bin/python bench/app.py                 # ~3 min on this 2-core machine
    .venv/bin/python bench/app.py --sessions 10 --visits 4 --json /tmp/app.json

Figures (same run, same machine, PostgreSQL store):

1. time to first render: from navigation to the app's header drawn by its widgets, for
   ``--visits`` signed-in visitors one after another, (a) with preheated kernels (the default
   ``revtops app``) and (b) cold (``--pool-size 0``: a kernel starts per visit).
   Goals: warm p50 <= 1 s; cold / warm >= 5.
2. ``--sessions`` users of five organizations, signed in at once, each asks a question (the
   scripted Messages API answers with a tool call, then with what the tool returned): all
   answered, none with another organization's data. Reports wall time and per-answer p50/max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revtops_kernel.store import Database, upgrade  # noqa: E402
from revtops_kernel.store.scratch import scratch_postgres  # noqa: E402
from revtops_kernel.store.upsert import upsert  # noqa: E402
from revtops_sandbox.anthropic import RecordedRequest, ScriptedMessagesServer, Turn  # noqa: E402
from tests.browser.app_server import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    RunningApp,
    running_app,
)

ORGS = [f"org{i}" for i in range(5)]
MARKER = "Marker deal of "
QUESTION_SQL = "SELECT name FROM deals ORDER BY name"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def first_render(app: RunningApp, browser: Any, visits: int, label: str) -> list[float]:
    seconds = []
    for visit in range(visits):
        context = browser.new_context()
        email = f"visitor{visit}@{ORGS[visit % len(ORGS)]}.com"
        context.add_cookies(
            [{"name": "revtops_session", "value": app.token(email, "V"), "url": app.url + "/"}]
        )
        page = context.new_page()
        page.set_default_timeout(180_000)
        start = time.perf_counter()
        page.goto(app.url + "/")
        page.locator(".rt-header").wait_for()
        seconds.append(time.perf_counter() - start)
        context.close()
        progress(f"{label} visit {visit}: {seconds[-1]:.2f} s")
        time.sleep(2.0)  # let the pool refill, as between real visitors
    return seconds


def concurrent_askers(app: RunningApp, browser: Any, sessions: int) -> dict[str, Any]:
    """Sign ``sessions`` users in (one after another: a page load is measured above), then
    send every question at once and wait for all the answers."""
    pages = []
    for index in range(sessions):
        org = ORGS[index % len(ORGS)]
        context = browser.new_context()
        email = f"asker{index}@{org}.com"
        context.add_cookies(
            [{"name": "revtops_session", "value": app.token(email, "A"), "url": app.url + "/"}]
        )
        page = context.new_page()
        page.set_default_timeout(300_000)
        page.goto(app.url + "/")
        page.locator(".rt-input input").wait_for()
        pages.append((index, f"{org}-com", page))
        progress(f"asker {index} signed in ({org})")
    start = time.perf_counter()
    for _, _, page in pages:
        page.locator(".rt-input input").fill("Which deals do we have?")
        page.locator(".rt-input input").press("Enter")
    results: dict[int, dict[str, Any]] = {}
    for index, org, page in pages:
        try:
            page.get_by_text("markers seen:").wait_for()
            said = page.get_by_text("markers seen:").inner_text()
            results[index] = {"org": org, "answer": said, "seconds": time.perf_counter() - start}
        except Exception as exc:  # a failure is a result here, not a crash
            results[index] = {"org": org, "error": str(exc)[:300]}
    wall = time.perf_counter() - start
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
        "answer_max_s": max(times) if times else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--visits", type=int, default=4, help="first renders per mode")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    figures: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds")}
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
        }
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for label, pool in (("warm", max(2, args.visits)), ("cold", 0)):
                home = Path(folder) / label
                home.mkdir()
                with running_app(home, pool_size=pool, **env) as app:
                    for org in ORGS:
                        app.create_org(org, f"{org}.com")
                    if pool:
                        time.sleep(5.0)  # the pool fills after start
                    figures[label] = first_render(app, browser, args.visits, label)
            browser.close()

        home = Path(folder) / "concurrent"
        home.mkdir()
        api.script(*[answer] * (2 * args.sessions))
        with running_app(home, pool_size=args.sessions, **env) as app:
            for org in ORGS:
                app.create_org(org, f"{org}.com")
            time.sleep(10.0)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                figures["concurrent"] = concurrent_askers(app, browser, args.sessions)
                browser.close()

    warm = statistics.median(figures["warm"])
    cold = statistics.median(figures["cold"])
    concurrent = figures["concurrent"]
    print("\nweb app (revtops app, Voila + PostgreSQL, headless Chromium)")
    print(
        f"  first render warm p50 {warm:.2f} s  (goal <= 1 s) -> {'MET' if warm <= 1 else 'MISSED'}"
    )
    print(
        f"  first render cold p50 {cold:.2f} s; cold/warm {cold / warm:.1f}x "
        f"(goal >= 5x) -> {'MET' if cold / warm >= 5 else 'MISSED'}"
    )
    print(
        f"  {concurrent['sessions']} concurrent askers: {concurrent['answered']} answered, "
        f"{concurrent['mixed_identities']} with another org's data, wall "
        f"{concurrent['wall_s']:.1f} s, answer p50 {concurrent['answer_p50_s'] or 0:.1f} s, "
        f"max {concurrent['answer_max_s'] or 0:.1f} s"
    )
    for error in concurrent["errors"]:
        print(f"  error: {error}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = concurrent["answered"] == concurrent["sessions"] and not concurrent["mixed_identities"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
