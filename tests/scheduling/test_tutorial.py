"""notebooks/tutorial.ipynb runs top to bottom under papermill without an API key."""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import papermill
import pytest
from scheduling_helpers import REPO

pytestmark = pytest.mark.slow


def test_tutorial_runs_top_to_bottom_without_an_api_key(tmp_path: Path) -> None:
    output = tmp_path / "tutorial.out.ipynb"
    exports = tmp_path / "exports"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "tutorial.ipynb"),
        str(output),
        parameters={"sandbox_scale": 0.01, "export_dir": str(exports)},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    executed = nbformat.read(str(output), as_version=4)
    printed = "".join(o.get("text", "") for cell in executed.cells for o in cell.get("outputs", []))
    assert "set ANTHROPIC_API_KEY" in printed  # the ask step says what to set
    with (exports / "pipeline_by_stage.csv").open() as handle:
        stages = list(csv.DictReader(handle))
    assert stages and all(float(row["amount"]) > 0 for row in stages)
    with (exports / "open_deals.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 10
    assert "plotly" in (exports / "pipeline_by_stage.html").read_text()
    charts = [
        o
        for cell in executed.cells
        for o in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    assert len(charts) == 1
