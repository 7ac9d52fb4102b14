"""The first hour, as a new user meets it from the README: real processes in a fresh home.

`revtops demo --no-app`, the CLI's first questions, the tutorial through papermill in the same
home, then `revtops app` on what the demo left. Each step asserts what the user would see.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import nbformat
import papermill
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
REVTOPS = shutil.which("revtops") or str(Path(os.sys.executable).with_name("revtops"))
PLOTLY_MIME = "application/vnd.plotly.v1+json"
PIPELINE = (
    "SELECT stage_name, count(*) AS deals, sum(amount) AS amount FROM deals "
    "WHERE deleted_at IS NULL AND NOT coalesce(is_closed, false) GROUP BY 1 ORDER BY 1"
)


def revtops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REVTOPS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_the_first_hour_from_the_readme(isolated_environment: Path) -> None:
    home = isolated_environment
    demo = revtops("demo", "--no-app", "--scale", "0.02")
    assert demo.returncode == 0, demo.stderr
    for provider in ("hubspot", "slack", "google_calendar", "salesforce"):
        assert f"{provider}: succeeded" in demo.stdout
    # The second CRM's view of the same company goes to its own org: nothing counted twice.
    assert "(organization default-salesforce)" in demo.stdout
    facts = json.loads(revtops("info", "--json").stdout)
    assert facts["tables"]["activity_participants"] > 0
    assert facts["tables"]["quarantined_records"] == 0
    pipeline = rows(revtops("sql", PIPELINE, "--format", "csv"))
    assert pipeline and all(float(row["amount"]) > 0 for row in pipeline)

    # A typo in the organization is an error naming the known ones, not 0 rows.
    typo = revtops("sql", "SELECT 1", "--org", "defualt")
    assert typo.returncode == 2
    assert "did you mean 'default'" in typo.stderr and "default-salesforce" in typo.stderr

    # Without a key: a verified question is answered, with its SQL; a failed model call
    # (unreachable API) leaves no empty conversation behind.
    asked = revtops("ask", "what's our pipeline by stage?")
    assert asked.returncode == 0, asked.stderr
    assert "verified: pipeline_by_stage" in asked.stderr
    failed = revtops(
        "ask",
        "Write a haiku about our CFO",
        ANTHROPIC_API_KEY="sk-ant-test",
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",
    )
    assert failed.returncode != 0
    conversations = json.loads(revtops("conversations", "list", "--json").stdout)
    assert len(conversations) == 1

    # The tutorial in the demo's home: its sandbox goes to its own organization.
    exports = home / "exports"
    output = home / "tutorial.out.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "tutorial.ipynb"),
        str(output),
        parameters={"sandbox_scale": 0.01, "export_dir": str(exports)},
        kernel_name="python3",
        cwd=str(home),
        progress_bar=False,
    )
    cells = nbformat.read(str(output), as_version=4).cells
    outputs = [o for cell in cells for o in cell.get("outputs", [])]
    printed = "".join(o.get("text", "") for o in outputs)
    assert "organization: tutorial" in printed
    assert "set ANTHROPIC_API_KEY" in printed  # what other questions need
    answer_html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "verified: " in answer_html and "pipeline_by_stage" in answer_html
    assert "<table>" in answer_html and "<summary>SQL</summary>" in answer_html
    assert len([o for o in outputs if PLOTLY_MIME in o.get("data", {})]) == 2
    with (exports / "open_deals.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 10
    page = (exports / "pipeline_by_stage.html").read_text()
    assert "plotly" in page
    assert not re.search(r"<script[^>]*\bsrc=[\"']https?:", page)  # opens offline
    # The demo's pipeline did not move; the tutorial's deals are HubSpot's alone.
    assert rows(revtops("sql", PIPELINE, "--format", "csv")) == pipeline
    sources = rows(
        revtops(
            "sql",
            "SELECT DISTINCT source_system FROM deals",
            "--org",
            "tutorial",
            "--format",
            "csv",
        )
    )
    assert sources == [{"source_system": "hubspot"}]

    # `revtops app` afterwards: served, and it says what to run to sync again.
    from tests.browser.app_server import running_app

    with running_app(
        home, supabase=False, JUPYTER_TOKEN="first-hour", REVTOPS_HOME=str(home / ".revtops")
    ) as app:
        page_reply = httpx.get(f"{app.url}/?token=first-hour", timeout=60)
        assert page_reply.status_code == 200
        assert "revtops demo --scale 0.02 --seed 1 --crm hubspot" in app.log.read_text()
