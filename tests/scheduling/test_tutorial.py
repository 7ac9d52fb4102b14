"""notebooks/tutorial.ipynb runs top to bottom under papermill without an API key, as a new
user meets it: the sandbox's data in its own organization, a verified answer with its table,
SQL and chart, and exports that open offline."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nbformat
import papermill
import pytest
from scheduling_helpers import REPO
from sqlalchemy import text

from revtops_kernel.store import Database

pytestmark = pytest.mark.slow

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def test_tutorial_runs_top_to_bottom_without_an_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store.duckdb"
    monkeypatch.setenv("REVTOPS_DATABASE_URL", f"duckdb:///{store}")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
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
    outputs = [o for cell in executed.cells for o in cell.get("outputs", [])]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "organization: tutorial" in printed
    assert "set ANTHROPIC_API_KEY" in printed  # the ask step says what other questions need

    # The verified answer shows its table and its SQL, and its chart draws as a Plotly bundle.
    answer_html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "verified: " in answer_html and "pipeline_by_stage" in answer_html
    assert "<table>" in answer_html and "<summary>SQL</summary>" in answer_html
    charts = [o for o in outputs if PLOTLY_MIME in o.get("data", {})]
    assert len(charts) == 2  # the verified answer's chart and the chart step's

    with (exports / "pipeline_by_stage.csv").open() as handle:
        stages = list(csv.DictReader(handle))
    assert stages and all(float(row["amount"]) > 0 for row in stages)
    with (exports / "open_deals.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 10
    page = (exports / "pipeline_by_stage.html").read_text()
    assert "plotly" in page
    assert not re.search(r"<script[^>]*\bsrc=[\"']https?:", page)  # nothing loads from a CDN

    # The sandbox synced one CRM into its own organization: nothing under "default".
    db = Database(f"duckdb:///{store}")
    with db.begin() as conn:
        by_org = conn.execute(
            text("SELECT organization_id, source_system, count(*) FROM deals GROUP BY 1, 2")
        ).all()
    assert [(org, source) for org, source, _ in by_org] == [("tutorial", "hubspot")]
