"""The app's first render, old against new in pairs: both apps up at once, visits alternated.

    .venv/bin/python bench/app_pairs.py 963afe1 8              # this tree against a commit
    .venv/bin/python bench/app_pairs.py x 6 --new-code A --old-code B   # two extracted trees
    .venv/bin/python bench/app_pairs.py 963afe1 6 --profile    # one profiled visit each first

bench/app.py times its pages one block after another, so on a machine whose load swings the
old and the new app meet different loads. Here both apps run side by side (preheated pools of
3, the same seeded store and scripted Messages API), and each round visits both, in alternated
order (new, old; old, new; ...), each visit after both pools are idle. Per visit: the seconds
to the page's own question box (the shell) and to the live chat widget's; at the end, the
medians, how many pairs the new app won, and the load average's range. ``--cold`` starts a
kernel per visit instead (no pools). ``--new-code`` / ``--old-code``: a tree holding
``revtops_kernel``, ``extensions`` and ``notebooks`` (a ``git archive``), instead of this tree
/ the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app as bench  # bench/app.py


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", help="the old app's git ref (ignored with --old-code)")
    parser.add_argument("rounds", type=int, help="visit pairs")
    parser.add_argument("--new-code", type=Path)
    parser.add_argument("--old-code", type=Path)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {"new": [], "old": [], "new_usable": [], "old_usable": [], "load": []}
    with (
        tempfile.TemporaryDirectory(prefix="revtops_app_pairs_") as folder,
        bench.scratch_postgres(args.postgres_url, prefix="revtops_pairs") as url,
        bench.ScriptedMessagesServer() as api,
    ):
        bench.seed(url)
        env = {
            "REVTOPS_DATABASE_URL": url,
            "ANTHROPIC_API_KEY": api.api_key,
            "ANTHROPIC_BASE_URL": api.base_url,
        }
        old_code = args.old_code or bench.extract(args.ref, Path(folder) / "old-code")
        (Path(folder) / "new").mkdir()
        (Path(folder) / "old").mkdir()
        size = 0 if args.cold else 3
        homes = Path(folder) / "new", Path(folder) / "old"
        with (
            bench.running_app(homes[0], pool_size=size, code=args.new_code, **env) as new,
            bench.running_app(homes[1], pool_size=size, code=old_code, **env) as old,
            sync_playwright() as playwright,
        ):
            for org in bench.ORGS:
                new.create_org(org, f"{org}.com")
                old.create_org(org, f"{org}.com")
            browser = playwright.chromium.launch(
                executable_path=bench.CHROMIUM, args=bench.CHROMIUM_ARGS
            )
            time.sleep(5.0)

            def settle() -> None:
                if not args.cold:
                    bench.settle(new.process.pid)
                    bench.settle(old.process.pid)

            if args.profile:
                for label, app in (("new", new), ("old", old)):
                    settle()
                    profile = bench.where_time_goes(
                        app.url, browser, label, bench.QUESTION_BOX, token=app.token
                    )
                    out.setdefault("profiles", []).append(profile)
                    print(json.dumps(profile, indent=1), flush=True)
            for number in range(args.rounds):
                order = [("new", new), ("old", old)]
                for label, app in order if number % 2 == 0 else order[::-1]:
                    settle()
                    firsts: list[float] = []
                    email = f"v{number}@{bench.ORGS[number % len(bench.ORGS)]}.com"
                    page, took = bench.visit(
                        browser, app.url, bench.QUESTION_BOX, token=app.token, email=email,
                        first=bench.USABLE_BOX, firsts=firsts, timeout_ms=90_000,
                    )  # fmt: skip
                    page.context.close()
                    load = os.getloadavg()[0]
                    out[label].append(took)
                    out[f"{label}_usable"].append(firsts[0])
                    out["load"].append(load)
                    print(
                        f"round {number} {label}: live {took:.2f} s, usable {firsts[0]:.2f} s "
                        f"(load {load:.1f})",
                        flush=True,
                    )
                    time.sleep(2.0)
            browser.close()
    for key in ("new", "old", "new_usable", "old_usable"):
        values = ", ".join(f"{x:.2f}" for x in out[key])
        print(f"{key}: median {statistics.median(out[key]):.2f} s  [{values}]")
    pairs = list(zip(out["new"], out["old"], strict=True))
    won = sum(n < o for n, o in pairs)
    print(
        f"new faster in {won} of {len(pairs)} pairs; "
        f"load {min(out['load']):.1f}-{max(out['load']):.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
