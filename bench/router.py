"""Benchmark the verified-answer router over the paraphrase set the tests own.

    python bench/router.py [--repeat 20] [--owners 6] [--json PATH]

Routes every question of ``tests/agent/router_paraphrases.py`` ``--repeat`` times (after one
warm-up pass that builds the index) and prints, beside the goals:
- latency per question: p50, p95, max (goal p95 <= 20 ms);
- accuracy: routable questions routed to the right query with the right parameters (goal
  >= 90%), questions answered from a wrong query (goal <= 2% of all), must-not-route
  questions left unrouted.
``--owners N`` pads the organization's owner list to N names (the first six are the set's), to
see how name matching scales with a bigger team.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "agent"))

from router_paraphrases import CASES, NOW, OWNERS, PIPELINES, STAGES, TIMEZONE, TODAY

from revtops_kernel.agent.routing import OwnerName, RouteContext, route
from revtops_kernel.agent.verified import resolve_params

GOAL_P95_MS = 20.0
GOAL_RIGHT = 0.90
GOAL_WRONG = 0.02


def owners(count: int) -> tuple[OwnerName, ...]:
    extra = [OwnerName(f"Rep{i} Surname{i}", f"rep{i}@northwind.example") for i in range(count)]
    return (*OWNERS, *extra[: max(0, count - len(OWNERS))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--owners", type=int, default=len(OWNERS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    context = RouteContext(NOW, TIMEZONE, owners(args.owners), PIPELINES, STAGES)

    right = wrong = unrouted = kept_out = 0
    for question, name, params in CASES:  # warm-up and accuracy
        got = route(question, context)
        if name is None:
            kept_out += got.name is None
            wrong += got.name is not None
        elif got.name is None:
            unrouted += 1
        elif got.name == name and resolve_params(name, got.params, today=TODAY) == resolve_params(
            name, params, today=TODAY
        ):
            right += 1
        else:
            wrong += 1
    timings: list[float] = []
    for _ in range(args.repeat):
        for question, _, _ in CASES:
            start = time.perf_counter()
            route(question, context)
            timings.append((time.perf_counter() - start) * 1000)

    routable = sum(1 for c in CASES if c[1] is not None)
    p50, p95 = statistics.median(timings), statistics.quantiles(timings, n=20)[18]
    results = {
        "questions": len(CASES),
        "routable": routable,
        "owners": len(context.owners),
        "p50_ms": round(p50, 3),
        "p95_ms": round(p95, 3),
        "max_ms": round(max(timings), 3),
        "right_share": round(right / routable, 4),
        "wrong_share": round(wrong / len(CASES), 4),
        "unrouted_routable": unrouted,
        "kept_out": kept_out,
        "must_not_route": len(CASES) - routable,
    }
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print(f"router over {len(CASES)} questions x {args.repeat}, {len(context.owners)} owners")
    print(f"  latency  p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  max {max(timings):6.2f} ms   "
          f"goal p95 <= {GOAL_P95_MS:.0f} ms: {ok(p95 <= GOAL_P95_MS)}")  # fmt: skip
    print(f"  right    {right}/{routable} routable ({right / routable:.1%})   "
          f"goal >= {GOAL_RIGHT:.0%}: {ok(right / routable >= GOAL_RIGHT)}")  # fmt: skip
    print(f"  wrong    {wrong}/{len(CASES)} ({wrong / len(CASES):.1%})   "
          f"goal <= {GOAL_WRONG:.0%}: {ok(wrong / len(CASES) <= GOAL_WRONG)}")  # fmt: skip
    print(f"  unrouted {unrouted} routable; kept out {kept_out}/{len(CASES) - routable} "
          "must-not-route")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
