"""Warm runs (``scheduling.warm``): spare runner processes with a kernel started ahead.

A warm run must give the notebook what a cold one gives (same output notebook, its own
organization's environment, its notebook's folder as working directory), never reuse a kernel,
and leave no process behind when the spares are stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from scheduling_helpers import write_notebook

from revtops_kernel.errors import SettingsError
from revtops_kernel.scheduling import add_workflow, run_now, warm
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database

READY_TIMEOUT = 120.0  # a spare imports the package and starts a kernel: slow on a busy machine
DEPLOYMENT_SECRET = "nango-secret-of-the-deployment"

REPORT_CELL = (
    "import json, os\n"
    "print(json.dumps({'org': os.environ.get('REVTOPS_ORG'), 'pid': os.getpid(),\n"
    "    'cwd': os.getcwd(), 'nango': os.environ.get('REVTOPS_NANGO_SECRET_KEY'),\n"
    "    'x': x}))"
)


@pytest.fixture
def spares() -> Iterator[warm.SpareRunners]:
    pool = warm.enable(1)
    yield pool
    warm.disable()


def _report(output: Path) -> dict[str, Any]:
    nb = nbformat.read(str(output), as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    return dict(json.loads(text.strip().splitlines()[-1]))


def _shape(output: Path) -> list[Any]:
    """What must not differ between a cold and a warm run of one notebook."""
    nb = nbformat.read(str(output), as_version=4)
    papermill = nb.metadata["papermill"]
    cells = [
        (
            c.cell_type,
            c.source,
            c.metadata.get("tags"),
            sorted(c.metadata.get("papermill", {})),
            c.get("execution_count"),
            [(o.output_type, o.get("name"), o.get("text")) for o in c.get("outputs", [])],
        )
        for c in nb.cells
    ]
    return [
        sorted(nb.metadata),
        nb.metadata["kernelspec"],
        nb.metadata["language_info"]["name"],
        sorted(papermill),
        papermill["parameters"],
        papermill["exception"],
        cells,
    ]


def _run(db: Database, settings: Settings, name: str, org: str, x: int) -> Path:
    run = run_now(db, settings, name, org=org, parameters={"x": x})
    assert run.status == "succeeded", run.error
    assert run.output_path is not None
    return Path(run.output_path)


def test_a_warm_run_writes_the_notebook_a_cold_run_writes(
    duckdb_store: Database,
    env_for: Callable[..., Settings],
    tmp_path: Path,
    spares: warm.SpareRunners,
) -> None:
    settings = env_for(duckdb_store)
    notebook = write_notebook(tmp_path / "nb" / "double.ipynb", "x = 0", "print(x * 2)", "x")
    add_workflow(duckdb_store, "double", notebook, "0 0 1 1 *", org="acme")

    warm.disable()  # cold first: this process keeps no spare
    cold = _run(duckdb_store, settings, "double", "acme", 21)
    pool = warm.enable(1)
    pool.refill(_supervisor_env(settings, duckdb_store))
    assert pool.wait_ready(READY_TIMEOUT), "the spare runner never got ready"
    spare_pid = pool.pids()[0]
    warm_output = _run(duckdb_store, settings, "double", "acme", 21)

    assert _shape(warm_output) == _shape(cold)
    assert not psutil.pid_exists(spare_pid) or psutil.Process(spare_pid).status() == "zombie"
    assert spare_pid not in pool.pids()  # its replacement is another process


def test_each_run_gets_its_own_kernel_and_its_own_organization(
    duckdb_store: Database,
    env_for: Callable[..., Settings],
    tmp_path: Path,
    spares: warm.SpareRunners,
) -> None:
    settings = env_for(duckdb_store, REVTOPS_NANGO_SECRET_KEY=DEPLOYMENT_SECRET)
    for org in ("acme", "beta"):
        notebook = write_notebook(tmp_path / org / "report.ipynb", "x = 0", REPORT_CELL)
        add_workflow(duckdb_store, "report", notebook, "0 0 1 1 *", org=org)
    spares.refill(_supervisor_env(settings, duckdb_store))

    reports = []
    for i, org in enumerate(("acme", "beta")):
        assert spares.wait_ready(READY_TIMEOUT), "the spare runner never got ready"
        reports.append(_report(_run(duckdb_store, settings, "report", org, i)))

    assert [r["org"] for r in reports] == ["acme", "beta"]
    assert [r["x"] for r in reports] == [0, 1]
    assert len({r["pid"] for r in reports}) == 2  # a kernel serves one run
    assert all(not psutil.pid_exists(r["pid"]) for r in reports)  # and ends with it
    assert [Path(r["cwd"]) for r in reports] == [(tmp_path / o).resolve() for o in ("acme", "beta")]
    assert all(r["nango"] is None for r in reports)  # no deployment secret in the kernel


def test_stopping_the_spares_leaves_no_process_behind(
    duckdb_store: Database, env_for: Callable[..., Settings], spares: warm.SpareRunners
) -> None:
    settings = env_for(duckdb_store)
    spares.refill(_supervisor_env(settings, duckdb_store))
    assert spares.wait_ready(READY_TIMEOUT), "the spare runner never got ready"
    [pid] = spares.pids()
    spare = psutil.Process(pid)
    family = [spare, *spare.children(recursive=True)]
    assert any("ipykernel" in " ".join(p.cmdline()) for p in family[1:]), "no kernel started"

    warm.disable()

    _gone, alive = psutil.wait_procs(family, timeout=15)
    assert alive == [], [p.pid for p in alive]
    assert spares.pids() == []


def test_a_spare_that_is_not_needed_any_more_exits(
    duckdb_store: Database, env_for: Callable[..., Settings]
) -> None:
    """Spares of another environment (settings changed) are stopped, never handed a run."""
    settings = env_for(duckdb_store)
    pool = warm.SpareRunners(1)
    try:
        env = _supervisor_env(settings, duckdb_store)
        pool.refill({**env, "REVTOPS_RUN_TIMEOUT": "123"})
        assert pool.wait_ready(READY_TIMEOUT)
        [old] = pool.pids()
        assert pool._take(env) is None  # another environment: not handed out, stopped
        assert not psutil.pid_exists(old) or psutil.Process(old).status() == "zombie"
    finally:
        pool.shutdown()


def _supervisor_env(settings: Settings, db: Database) -> dict[str, str]:
    from revtops_kernel.scheduling.supervise import child_environment

    return child_environment(settings, db)


def test_the_number_of_spares_is_read_from_the_environment() -> None:
    assert warm.configured_spares({}) == warm.DEFAULT_SPARES
    assert warm.configured_spares({warm.SPARES_VARIABLE: "0"}) == 0
    assert warm.configured_spares({warm.SPARES_VARIABLE: " 2 "}) == 2
    with pytest.raises(SettingsError, match=r"REVTOPS_SPARE_RUNNERS.*'many'"):
        warm.configured_spares({warm.SPARES_VARIABLE: "many"})
    with pytest.raises(ValueError, match="at least 1"):
        warm.enable(0)
