"""Papermill overhead: an empty notebook, and sync.ipynb against calling the sync directly.

    python bench/papermill.py [--runs 5] [--scale 1] [--seed 0] [--skip-sync]

1. Empty notebook (one parameters cell, one ``pass`` cell), ``--runs`` times each, median:
   - baseline: ``papermill.execute_notebook`` in this process: kernel start, execution, save;
   - a cold workflow run (``run_now``): the runner child process (interpreter, imports, claim,
     heartbeat), papermill and its kernel, the run's records in the store;
   - a warm workflow run: the same with a spare runner (``scheduling.warm``: imports done and
     kernel started ahead, as the scheduler keeps one), waited for between runs as a scheduler's
     spare has the time between two runs to get ready.
   Goal: <= 3 s per warm run.
2. At ``--scale``, with the providers' sandbox served from this process: ``run_sync`` for both
   CRMs called directly, into a fresh DuckDB file, then ``notebooks/sync.ipynb`` run as a warm
   workflow run (runner + papermill + kernel doing the same sync) into another fresh file.
   Figure: (notebook - direct) / direct. Goal: <= 10% at scale 1.

Each figure is measured in this run, beside its baseline; the machine's load is printed too.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This file is named papermill.py: take its folder off the path so that the real package loads.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import nbformat  # noqa: E402
import papermill  # noqa: E402
from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def empty_notebook(path: Path) -> Path:
    nb = new_notebook(
        cells=[new_code_cell("x = 0", metadata={"tags": ["parameters"]}), new_code_cell("pass")]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


def configure(home: Path, **extra: str) -> None:
    os.environ.update(
        REVTOPS_HOME=str(home),
        REVTOPS_DATABASE_URL=f"duckdb:///{home / 'revtops.duckdb'}",
        REVTOPS_RUNS_DIR=str(home / "runs"),
        **extra,
    )


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for descendants (the runner, the kernel)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


# Seconds a spare runner may take to get ready on a busy machine.
READY_TIMEOUT = 300.0


def warm_spare(settings: object, db: object) -> None:
    """Keep a spare runner, as the scheduler does, and wait until it is ready."""
    from revtops_kernel.scheduling import warm
    from revtops_kernel.scheduling.supervise import child_environment

    pool = warm.enable(1)
    pool.refill(child_environment(settings, db))  # type: ignore[arg-type]
    if not pool.wait_ready(READY_TIMEOUT):
        raise SystemExit("the spare runner did not get ready")


Figures = dict[str, tuple[float, float]]  # name -> (median seconds, median CPU seconds)


def bench_empty(work: Path, runs: int) -> Figures:
    from revtops_kernel.scheduling import add_workflow, run_now, warm
    from revtops_kernel.settings import load_settings
    from revtops_kernel.store import Database, upgrade

    notebook = empty_notebook(work / "empty.ipynb")
    papermill_s, papermill_cpu = [], []
    for i in range(runs):
        started, cpu = time.perf_counter(), cpu_seconds()
        papermill.execute_notebook(
            str(notebook),
            str(work / f"empty.out{i}.ipynb"),
            parameters={"x": i},
            kernel_name="python3",
            progress_bar=False,
        )
        papermill_s.append(time.perf_counter() - started)
        papermill_cpu.append(cpu_seconds() - cpu)

    configure(work / "empty-home")
    settings = load_settings()
    db = Database.from_settings(settings)
    upgrade(db)
    add_workflow(db, "empty", notebook, "0 0 1 1 *", org="default")
    figures: Figures = {
        "papermill": (statistics.median(papermill_s), statistics.median(papermill_cpu))
    }
    for mode in ("cold", "warm"):
        workflow_s, workflow_cpu = [], []
        for i in range(runs):
            if mode == "warm":
                warm_spare(settings, db)  # not timed: done between two runs
            started, cpu = time.perf_counter(), cpu_seconds()
            run = run_now(db, settings, "empty", org="default", parameters={"x": i})
            workflow_s.append(time.perf_counter() - started)
            workflow_cpu.append(cpu_seconds() - cpu)
            assert run.status == "succeeded", run.error
        figures[mode] = (statistics.median(workflow_s), statistics.median(workflow_cpu))
    warm.disable()
    db.dispose()
    return figures


def bench_sync(work: Path, scale: float, seed: int) -> tuple[float, float, int]:
    from revtops_kernel.providers import CRM_PROVIDERS
    from revtops_kernel.scheduling import add_workflow, run_now, warm
    from revtops_kernel.settings import load_settings
    from revtops_kernel.store import Database, upgrade
    from revtops_kernel.sync import run_sync
    from revtops_sandbox import SandboxServer

    with SandboxServer(scale=scale, seed=seed) as sandbox:
        providers = dict(
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
            REVTOPS_SALESFORCE_INSTANCE_URL=sandbox.salesforce_instance_url,
            REVTOPS_SALESFORCE_TOKEN=sandbox.token,
        )
        configure(work / "direct-home", **providers)
        settings = load_settings()
        db = Database.from_settings(settings)
        upgrade(db)
        started = time.perf_counter()
        results = [run_sync(db, settings, p, org="default") for p in CRM_PROVIDERS]
        direct = time.perf_counter() - started
        records = sum(r.counts.fetched for r in results)
        assert all(r.ok for r in results), [r.error for r in results]
        db.dispose()

        configure(work / "notebook-home", **providers)
        settings = load_settings()
        db = Database.from_settings(settings)
        upgrade(db)
        add_workflow(db, "sync", REPO / "notebooks" / "sync.ipynb", "0 2 * * *", org="default")
        warm_spare(settings, db)
        started = time.perf_counter()
        run = run_now(db, settings, "sync", org="default")
        notebook = time.perf_counter() - started
        assert run.status == "succeeded", run.error
        warm.disable()
        db.dispose()
    return direct, notebook, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sync", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="revtops-bench-papermill-") as tmp:
        work = Path(tmp)
        figures = bench_empty(work, args.runs)
        (base, base_cpu), (cold, cold_cpu) = figures["papermill"], figures["cold"]
        warm_s, warm_cpu = figures["warm"]
        print(
            f"empty notebook, median of {args.runs}: baseline papermill in-process {base:.2f} s "
            f"({base_cpu:.2f} CPU-s); workflow run cold (runner process + papermill + store) "
            f"{cold:.2f} s ({cold_cpu:.2f} CPU-s); warm (spare runner, kernel started ahead) "
            f"{warm_s:.2f} s ({warm_cpu:.2f} CPU-s, the work done ahead included) "
            f"(goal: warm <= 3 s: {'met' if warm_s <= 3 else 'missed'})"
        )
        if not args.skip_sync:
            direct, notebook, records = bench_sync(work, args.scale, args.seed)
            overhead = (notebook - direct) / direct
            print(
                f"sync at scale {args.scale:g} ({records:,} records, both CRMs): direct "
                f"{direct:.1f} s, sync.ipynb as a warm workflow run {notebook:.1f} s, overhead "
                f"{overhead:+.1%} (goal <= 10%: {'met' if overhead <= 0.10 else 'missed'})"
            )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
