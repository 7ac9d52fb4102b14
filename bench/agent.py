"""Benchmark the copilot's own costs: the SQL guard, the loop per round, the prompt cache.

    python bench/agent.py [--rounds 20] [--guard-repeat 200] [--event-delay 0.002] [--json PATH]

- Guard overhead: ``guard_sql`` (parse, check, org-scoping rewrite, SQL generation) on
  realistic queries (the worked queries of the system prompt and the verified queries), both
  dialects; p50 and p95 per query. Baseline in the same run: sqlglot's ``parse_one`` alone.
  Goal: p50 <= 5 ms.
- Loop overhead per round: a question answered in ``--rounds`` rounds of a cheap tool
  (describe_table) against the scripted Messages API (a real HTTP server on loopback, real
  SSE, in its own process), on a DuckDB store. Per round, the wall time minus the server's own
  scheduled delay (``--event-delay`` per SSE event); what is left is the loop: the SDK's HTTP
  and SSE parsing, building the request, dispatching the tool. Also the CPU time of the loop's
  thread per round, which a loaded machine does not inflate. Baseline in the same run: a bare
  SDK streaming call of the same turn. Goal: <= 20 ms beyond the server's delay.
- Prompt cache: tokens of the stable prefix (tools + the stable system block, estimated at 3.5
  characters a token, as the scripted server counts), against the 4,096-token minimum of Opus
  4.5; and over a two-question conversation with realistic tool results, the share of input
  tokens that are cache reads from the second call on. Goal: >= 90%. With ``--count-tokens``
  and ANTHROPIC_API_KEY set, the prefix is also counted exactly by the count_tokens endpoint.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import sqlglot

from revtops_kernel.agent.events import Done, ToolResult, Usage
from revtops_kernel.agent.guard import guard_sql
from revtops_kernel.agent.loop import Copilot
from revtops_kernel.agent.prompt import WORKED_QUERIES, stable_system_text
from revtops_kernel.agent.tools import tool_definitions
from revtops_kernel.agent.verified import VERIFIED_QUERIES
from revtops_kernel.settings import DEFAULT_MODEL, load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.upsert import upsert
from revtops_sandbox.anthropic import (
    CacheOutcome,
    ScriptedMessagesServer,
    Turn,
    estimate_tokens,
    min_cacheable_tokens,
    scripted_settings_overrides,
)

GOAL_GUARD_P50_MS = 5.0
GOAL_LOOP_ROUND_MS = 20.0
GOAL_CACHE_READ_SHARE = 0.90
ORG = "bench"
TOP_DEALS_SQL = "SELECT name, amount, close_date FROM deals ORDER BY amount DESC LIMIT 40"
ROUND_SQL = (
    "SELECT stage_name, count(*) AS deals, sum(amount) AS amount FROM deals "
    "WHERE deleted_at IS NULL AND NOT is_closed GROUP BY stage_name ORDER BY amount DESC"
)

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK's model notice


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the guard ---------------------------------------------------------------------------------


def realistic_queries() -> list[str]:
    return [sql for _, sql in WORKED_QUERIES] + [q.sql for q in VERIFIED_QUERIES.values()]


def bench_guard(repeat: int) -> dict[str, Any]:
    queries = realistic_queries()
    report: dict[str, Any] = {"queries": len(queries), "repeat": repeat}
    for dialect, parse_dialect in (("duckdb", "duckdb"), ("postgres", "postgres")):
        guard_ms, parse_ms = [], []
        for sql in queries:
            guard_sql(sql, dialect=dialect, org=ORG, max_rows=10_000)  # warm caches
            started = time.perf_counter()
            for _ in range(repeat):
                guard_sql(sql, dialect=dialect, org=ORG, max_rows=10_000)
            guard_ms.append((time.perf_counter() - started) * 1000 / repeat)
            started = time.perf_counter()
            for _ in range(repeat):
                sqlglot.parse_one(sql, read=parse_dialect)
            parse_ms.append((time.perf_counter() - started) * 1000 / repeat)
        report[dialect] = {
            "guard_p50_ms": statistics.median(guard_ms),
            "guard_p95_ms": percentile(guard_ms, 0.95),
            "guard_max_ms": max(guard_ms),
            "parse_only_p50_ms": statistics.median(parse_ms),
        }
    return report


# --- the loop ----------------------------------------------------------------------------------


def make_store(directory: Path) -> Database:
    db = Database(f"duckdb:///{directory / 'bench.duckdb'}")
    upgrade(db)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    stages = ("Discovery", "Demo", "Proposal", "Negotiation", "Closed Won", "Closed Lost")
    rows = [
        {
            "organization_id": ORG,
            "source_system": "hubspot",
            "source_id": str(i),
            "name": f"Deal {i}",
            "amount": Decimal(1000 + 37 * i),
            "stage_name": stages[i % 6],
            "is_closed": i % 6 >= 4,
            "is_won": i % 6 == 4,
            "close_date": date(2026, 1 + i % 12, 1 + i % 28),
            "updated_at": now,
            "created_at": now,
        }
        for i in range(2_000)
    ]
    with db.begin() as conn:
        upsert(conn, "deals", rows)
    return db


def turn_events(turn: Turn) -> int:
    """SSE events the scripted server sends for ``turn`` (each one waits the event delay)."""
    body = {"model": DEFAULT_MODEL, "messages": []}
    return len(ScriptedMessagesServer()._events(turn, body, "msg_probe", CacheOutcome(0, 0, 0)))


def _serve(steps: list[Turn], conn: Connection) -> None:
    """Child process: the scripted API with ``steps``, until the parent says stop."""
    with ScriptedMessagesServer() as api:
        api.script(*steps)
        conn.send((api.base_url, api.api_key))
        conn.recv()


@contextmanager
def server_process(steps: list[Turn]) -> Iterator[tuple[str, str]]:
    """The scripted API in its own process: its CPU does not compete with the loop's thread
    for this process's GIL, so what the loop measures beyond the scheduled delay is its own."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(steps, child), daemon=True)
    process.start()
    try:
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(timeout=10)


def bench_loop(db: Database, rounds: int, event_delay: float) -> dict[str, Any]:
    """Rounds of a cheap tool (describe_table, no database), so a round is the loop's own work:
    the SDK call, building the request, reading the stream, running the tool dispatch."""
    import anthropic

    tool_turn = Turn.tool("describe_table", {"table": "deals"}, event_delay=event_delay)
    answer_turn = Turn.reply("Deals have these columns.", event_delay=event_delay)
    warm_up = Turn.reply("warm-up: imports, first connection")
    steps = [tool_turn] * (rounds + 1) + [warm_up] + [tool_turn] * rounds + [answer_turn]
    with server_process(steps) as (base_url, api_key):
        settings = load_settings(
            ANTHROPIC_API_KEY=api_key,
            ANTHROPIC_BASE_URL=base_url,
            REVTOPS_ORG=ORG,
            REVTOPS_MAX_TOOL_ROUNDS=str(rounds + 1),
            REVTOPS_MAX_QUESTION_TOKENS="100000000",
        )
        # Baseline: the bare SDK streaming the same turn, consumed event by event.
        client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)
        bare_wall, bare_cpu = [], []
        request = {"model": settings.model, "max_tokens": 1024,
                   "messages": [{"role": "user", "content": "q"}],
                   "tools": tool_definitions()}  # fmt: skip
        for _ in range(rounds + 1):
            wall, cpu = time.perf_counter(), time.thread_time()
            for _event in client.messages.create(**request, stream=True):
                pass
            bare_wall.append(time.perf_counter() - wall)
            bare_cpu.append(time.thread_time() - cpu)

        copilot = Copilot(db, settings)
        list(copilot.ask("warm-up"))
        walls: list[float] = []
        cpus: list[float] = []
        tool_ms: list[float] = []
        started = time.perf_counter()
        done: Done | None = None
        for event in copilot.ask("Describe deals, round after round"):
            if isinstance(event, Usage):
                walls.append(time.perf_counter())
                cpus.append(time.thread_time())
            elif isinstance(event, ToolResult):
                tool_ms.append(event.elapsed_ms or 0.0)
            elif isinstance(event, Done):
                done = event
        total = time.perf_counter() - started
    assert done is not None and done.rounds == rounds, done
    server_delay = turn_events(tool_turn) * event_delay
    # Round i: from the end of call i-1's stream to the end of call i's: running call i-1's
    # tool, building request i, streaming it. The first call (opening the conversation) and
    # the final store write are outside the rounds.
    per_round = [(b - a - server_delay) * 1000 for a, b in itertools.pairwise(walls)]
    cpu_round = [(b - a) * 1000 for a, b in itertools.pairwise(cpus)]
    bare_ms = [(b - server_delay) * 1000 for b in bare_wall[1:]]
    return {
        "rounds": rounds,
        "event_delay_ms": event_delay * 1000,
        "server_delay_per_call_ms": server_delay * 1000,
        "question_seconds": total,
        "loop_overhead_p50_ms": statistics.median(per_round),
        "loop_overhead_p95_ms": percentile(per_round, 0.95),
        "loop_cpu_p50_ms": statistics.median(cpu_round),
        "tool_p50_ms": statistics.median(tool_ms),
        "bare_sdk_call_p50_ms": statistics.median(bare_ms),
        "bare_sdk_cpu_p50_ms": statistics.median(bare_cpu[1:]) * 1000,
    }


# --- the prompt cache ----------------------------------------------------------------------------


def bench_cache(db: Database) -> dict[str, Any]:
    tools_tokens = estimate_tokens(json.dumps(tool_definitions()))
    system_tokens = estimate_tokens(stable_system_text("duckdb"))
    prefix = tools_tokens + system_tokens
    with ScriptedMessagesServer() as api:
        settings = load_settings(**scripted_settings_overrides(api), REVTOPS_ORG=ORG)
        copilot = Copilot(db, settings)
        per_question = [
            Turn.tool("describe_table", {"table": "deals", "sample_values": True}),
            Turn.tool("run_sql_query", {"sql": ROUND_SQL}),
            Turn.tool("run_sql_query", {"sql": TOP_DEALS_SQL}),
            Turn.reply("Negotiation holds the most open pipeline; the top deals are listed."),
        ]
        api.script(*per_question)
        events = list(copilot.ask("Where is our open pipeline, and which deals lead it?"))
        conversation = events[-1].conversation_id  # type: ignore[union-attr]
        api.script(*per_question)
        events += list(copilot.ask("And again, for the follow-up?", conversation_id=conversation))
    usages = [e for e in events if isinstance(e, Usage)]
    later = usages[1:]
    read = sum(u.cache_read_tokens for u in later)
    total_input = sum(u.cache_read_tokens + u.cache_creation_tokens + u.input_tokens for u in later)
    cost = sum((u.cost_usd or Decimal(0)) for u in usages)
    uncached = sum(
        (u.cache_read_tokens + u.cache_creation_tokens + u.input_tokens) * 5 + u.output_tokens * 25
        for u in usages
    ) / Decimal(1_000_000)
    report = {
        "tools_tokens": tools_tokens,
        "stable_system_tokens": system_tokens,
        "stable_prefix_tokens": prefix,
        "minimum_cacheable": min_cacheable_tokens(DEFAULT_MODEL),
        "calls": len(usages),
        "cache_read_share_from_call_2": read / total_input if total_input else 0.0,
        "first_call": {
            "written": usages[0].cache_creation_tokens,
            "read": usages[0].cache_read_tokens,
        },
        "conversation_cost_usd": float(cost),
        "same_without_cache_usd": float(uncached),
    }
    return report


def count_prefix_exactly() -> int | None:
    """The stable prefix counted by the count_tokens endpoint (needs a real key)."""
    if not os.environ.get("ANTHROPIC_API_KEY"):
        return None
    import anthropic

    settings = load_settings()
    client = anthropic.Anthropic()
    counted = client.messages.count_tokens(
        model=settings.model,
        system=[{"type": "text", "text": stable_system_text("duckdb")}],
        tools=tool_definitions(),  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "x"}],
    )
    return int(counted.input_tokens)


# --- report --------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def render(guard: dict[str, Any], loop: dict[str, Any], cache: dict[str, Any]) -> str:
    lines = ["| figure | value | baseline (same run) | goal |", "| --- | ---: | --- | --- |"]
    for dialect in ("duckdb", "postgres"):
        g = guard[dialect]
        lines.append(
            f"| guard_sql p50 ({dialect}, {guard['queries']} realistic queries) | "
            f"{g['guard_p50_ms']:.2f} ms (p95 {g['guard_p95_ms']:.2f}, "
            f"max {g['guard_max_ms']:.2f}) | sqlglot parse_one alone: "
            f"{g['parse_only_p50_ms']:.2f} ms | <= {GOAL_GUARD_P50_MS:g} ms: "
            f"{verdict(g['guard_p50_ms'] <= GOAL_GUARD_P50_MS)} |"
        )
    lines.append(
        f"| loop overhead per round beyond the server's delay ({loop['rounds']} rounds) | "
        f"{loop['loop_overhead_p50_ms']:.1f} ms wall (p95 {loop['loop_overhead_p95_ms']:.1f}); "
        f"{loop['loop_cpu_p50_ms']:.1f} ms CPU of the loop's thread | bare SDK streaming call: "
        f"{loop['bare_sdk_call_p50_ms']:.1f} ms wall, {loop['bare_sdk_cpu_p50_ms']:.1f} ms CPU; "
        f"server delay {loop['server_delay_per_call_ms']:.0f} ms/call; describe_table tool "
        f"{loop['tool_p50_ms']:.2f} ms | <= {GOAL_LOOP_ROUND_MS:g} ms: "
        f"{verdict(loop['loop_overhead_p50_ms'] <= GOAL_LOOP_ROUND_MS)} |"
    )
    lines.append(
        f"| stable prefix (tools + system), estimated | {cache['stable_prefix_tokens']:,} tokens "
        f"(tools {cache['tools_tokens']:,}, system {cache['stable_system_tokens']:,}) | "
        f"minimum cacheable (Opus 4.5): {cache['minimum_cacheable']:,} | above it: "
        f"{verdict(cache['stable_prefix_tokens'] >= cache['minimum_cacheable'])} |"
    )
    if cache.get("exact_prefix_tokens"):
        lines.append(
            f"| stable prefix, count_tokens | {cache['exact_prefix_tokens']:,} tokens | | |"
        )
    lines.append(
        f"| cache reads / input tokens, calls 2..{cache['calls']} (2 questions) | "
        f"{cache['cache_read_share_from_call_2']:.1%} | conversation cost "
        f"${cache['conversation_cost_usd']:.4f} vs ${cache['same_without_cache_usd']:.4f} uncached "
        f"| >= {GOAL_CACHE_READ_SHARE:.0%}: "
        f"{verdict(cache['cache_read_share_from_call_2'] >= GOAL_CACHE_READ_SHARE)} |"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="tool rounds in the loop figure")
    parser.add_argument("--guard-repeat", type=int, default=100, help="guard runs per query")
    parser.add_argument(
        "--event-delay", type=float, default=0.002, help="scripted server delay per SSE event (s)"
    )
    parser.add_argument("--count-tokens", action="store_true", help="count the prefix exactly")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    log("guard overhead")
    guard = bench_guard(args.guard_repeat)
    with tempfile.TemporaryDirectory(prefix="revtops-bench-agent-") as tmp:
        db = make_store(Path(tmp))
        log("loop overhead per round")
        loop = bench_loop(db, args.rounds, args.event_delay)
        log("prompt cache")
        cache = bench_cache(db)
        db.dispose()
    if args.count_tokens:
        cache["exact_prefix_tokens"] = count_prefix_exactly()
    print(render(guard, loop, cache))
    print(f"total wall time {time.perf_counter() - wall:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"guard": guard, "loop": loop, "cache": cache}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
