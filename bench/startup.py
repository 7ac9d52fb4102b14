"""Start-up of one-shot commands: `revtops sql "SELECT 1"` against `python -c "import duckdb"`.

    .venv/bin/python bench/startup.py                 # 5 runs each, interleaved (~1 min)
    .venv/bin/python bench/startup.py --runs 9 --ask  # also `revtops ask` with a scripted model

Each figure is the median wall time of fresh processes, run in turns (baseline, command,
baseline, …) so a busy machine slows both alike, after one warm-up run of each. Bytecode is
cached (in a private PYTHONPYCACHEPREFIX) as in a normal install: with PYTHONDONTWRITEBYTECODE
set, as in some containers, every start compiles ~4,000 modules from source and `revtops ask`
spends more time in `compile()` than anywhere else. The goal (issue 16): `revtops sql "SELECT 1"`
costs at most 1 s more than importing DuckDB. Beside wall time, each process's CPU time (user +
system, from the kernel's accounting of the waited-for child) is printed: on a shared machine
under load the wall time stretches with the queue for the CPU, the CPU time much less. The load
average is printed at start and end. Then `python -X importtime` of the `revtops sql` path shows
which imports the time goes to, and which of pandas, pyarrow, numpy and psycopg it loads.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_OVERHEAD_S = 1.0
PYTHON = sys.executable
REVTOPS = str(Path(PYTHON).with_name("revtops"))
# Imports worth naming when they show up on a one-shot path (cumulative microseconds).
WATCHED = (
    "pandas", "pyarrow", "numpy", "sqlalchemy", "sqlalchemy.orm", "sqlglot", "psycopg",
    "pydantic_settings", "pydantic", "duckdb", "anthropic", "revtops_kernel.store.schema",
    "revtops_kernel.store.query", "revtops_kernel.agent.guard", "revtops_kernel.settings",
)  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command`` (a fresh process)."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    return elapsed, _children_cpu() - cpu


def wall(command: list[str], env: dict[str, str]) -> float:
    return timed(command, env)[0]


def import_times(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Seconds spent importing each watched module (cumulative, first import only)."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", *command], env=env, capture_output=True, text=True
    )
    seconds: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if name in WATCHED and cumulative.isdigit() and name not in seconds:
            seconds[name] = int(cumulative) / 1e6
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (median)")
    parser.add_argument("--ask", action="store_true", help="also time `revtops ask` (scripted)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="revtops-startup-") as home:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REVTOPS_", "ANTHROPIC_"))
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            HOME=home,
            REVTOPS_HOME=str(Path(home) / ".revtops"),
            PYTHONPYCACHEPREFIX=str(Path(home) / "pycache"),
        )
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("note: PYTHONDONTWRITEBYTECODE is set here; measured with bytecode cached\n")
        wall([REVTOPS, "db", "upgrade"], env)
        baseline_cmd = [PYTHON, "-c", "import duckdb"]
        sql_cmd = [REVTOPS, "sql", "SELECT 1"]
        wall(baseline_cmd, env)  # warm-up: compile and cache bytecode
        wall(sql_cmd, env)
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        baseline, sql = [], []
        for _ in range(args.runs):
            baseline.append(timed(baseline_cmd, env))
            sql.append(timed(sql_cmd, env))
        base_s, sql_s = (statistics.median(t[0] for t in runs) for runs in (baseline, sql))
        base_cpu, sql_cpu = (statistics.median(t[1] for t in runs) for runs in (baseline, sql))
        overhead, overhead_cpu = sql_s - base_s, sql_cpu - base_cpu
        print(f"                             wall     CPU   (median of {args.runs})")
        print(f'python -c "import duckdb"   {base_s:6.2f} s {base_cpu:6.2f} s  (baseline)')
        print(f'revtops sql "SELECT 1"      {sql_s:6.2f} s {sql_cpu:6.2f} s')
        verdict = "met" if overhead <= GOAL_OVERHEAD_S else "NOT met"
        print(f"overhead                    {overhead:6.2f} s {overhead_cpu:6.2f} s  goal <= "
              f"{GOAL_OVERHEAD_S:.1f} s (wall): {verdict}")  # fmt: skip
        if args.ask:
            print(f"revtops ask (scripted)      {time_ask(env, args.runs):6.2f} s")
        print("\nimports on the `revtops sql` path (cumulative, one run):")
        script = ["-m", "revtops_kernel.cli", "sql", "SELECT 1"]
        for name, seconds in sorted(import_times(script, env).items(), key=lambda kv: -kv[1]):
            print(f"  {name:<32} {seconds:6.2f} s")
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


def time_ask(env: dict[str, str], runs: int) -> float:
    """Median wall time of `revtops ask` answered at once by the scripted Messages API."""
    from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn

    times = []
    with ScriptedMessagesServer() as server:
        ask_env = {**env, "ANTHROPIC_API_KEY": server.api_key}
        ask_env["ANTHROPIC_BASE_URL"] = server.base_url
        for _ in range(runs + 1):  # the first run warms the bytecode cache
            server.script(Turn.reply("One."))
            times.append(wall([REVTOPS, "ask", "How many?"], ask_env))
    return statistics.median(times[1:])


if __name__ == "__main__":
    raise SystemExit(main())
