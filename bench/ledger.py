"""What the cost ledger adds to a Messages API call: admitting it against the caps (a
transaction with the organization's lock, a reserved row) and settling it (an update).

Each round streams one short scripted answer through ``calls.call_with_retries`` over loopback,
without a meter (the baseline), with the ledger and no caps (one write when the call ends), and
with a cap (a reservation before, an update after), interleaved, on DuckDB and PostgreSQL.
Prints the median and p95 per call of each and the differences. A real call takes seconds, so
the figure to judge is the difference in milliseconds.

    python bench/ledger.py [--calls 200] [--backend duckdb|postgresql|both]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import anthropic

from revtops_kernel.agent.calls import RetryPolicy, call_with_retries
from revtops_kernel.agent.ledger import Ledger, Meter
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_store
from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REQUEST = {
    "model": "claude-opus-4-6",
    "max_tokens": 256,
    "system": [{"type": "text", "text": "You are terse."}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi."}]}],
}


def one_call(client: anthropic.Anthropic, meter_of: Callable[[], Meter | None]) -> float:
    started = time.perf_counter()
    policy = RetryPolicy(retries=0)
    for _ in call_with_retries(client, REQUEST, threading.Event(), policy, meter=meter_of()):
        pass
    return (time.perf_counter() - started) * 1000


def measure(db: Database, calls: int) -> tuple[list[float], list[float], list[float]]:
    """Per call (ms): no ledger, the ledger without caps, the ledger with a cap."""
    upgrade(db)
    free = Ledger(db, load_settings(REVTOPS_ORG="bench"))
    capped = Ledger(db, load_settings(REVTOPS_ORG="bench", REVTOPS_DAILY_COST_CAP_USD="1000000"))
    with ScriptedMessagesServer() as server:
        client = anthropic.Anthropic(api_key=server.api_key, base_url=server.base_url,
                                     max_retries=0)  # fmt: skip
        server.script(*[Turn.reply("hi") for _ in range(3 * calls + 10)])
        for _ in range(5):  # warm up
            one_call(client, lambda: None)
        bare: list[float] = []
        uncapped: list[float] = []
        metered: list[float] = []
        for _ in range(calls):
            bare.append(one_call(client, lambda: None))
            uncapped.append(one_call(client, lambda: free.meter("bench", None, None)))
            metered.append(one_call(client, lambda: capped.meter("bench", None, None)))
    return bare, uncapped, metered


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--backend", choices=("duckdb", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ("duckdb", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        with scratch_store(backend, ADMIN_URL, prefix="revtops_bench_ledger") as db:
            bare, uncapped, metered = measure(db, args.calls)
        b, u, m = (statistics.median(x) for x in (bare, uncapped, metered))
        print(
            f"{backend:>10}: {args.calls} calls each; baseline (no ledger) median {b:.1f} ms "
            f"(p95 {p95(bare):.1f}); ledger, no caps {u:.1f} ms (p95 {p95(uncapped):.1f}), "
            f"adds {u - b:+.1f} ms; ledger with a cap {m:.1f} ms (p95 {p95(metered):.1f}), "
            f"adds {m - b:+.1f} ms a call (medians)"
        )


if __name__ == "__main__":
    main()
