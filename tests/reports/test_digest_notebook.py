"""notebooks/pipeline_digest.ipynb as a scheduled workflow against the sandbox: it builds the
digest, writes the PDF, posts to the sandbox's Slack, skips the summary without a key, and its
kept output notebook holds no secret."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from digest_helpers import ORG, PERIOD_END, PERIOD_START, SCALE, SEED, sync_into

from revtops_kernel.scheduling import add_workflow, run_now
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_sandbox import SandboxServer

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "pipeline_digest.ipynb"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=SCALE, seed=SEED) as server:
        yield server


def test_the_digest_notebook_runs_as_a_workflow_and_posts_to_slack(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"duckdb:///{tmp_path / 'store.duckdb'}", lock_timeout=30)
    upgrade(db)
    sync_into(db, sandbox)
    env = {
        "REVTOPS_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "REVTOPS_RUNS_DIR": str(tmp_path / "runs"),
        "REVTOPS_DB_LOCK_TIMEOUT": "30",
        "REVTOPS_SLACK_BASE_URL": sandbox.slack_base_url,
        "REVTOPS_SLACK_TOKEN": sandbox.token,
        "REVTOPS_TIMEZONE": "Europe/Paris",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    settings = load_settings()
    add_workflow(
        db,
        "weekly-digest",
        NOTEBOOK,
        "0 8 * * 1",
        org=ORG,
        timezone="Europe/Paris",
        parameters={"slack_channel": "#deal-desk", "pdf_dir": str(tmp_path / "pdf")},
    )
    run = run_now(
        db,
        settings,
        "weekly-digest",
        org=ORG,
        parameters={
            "org": ORG,
            "period_start": PERIOD_START.isoformat(),
            "period_end": PERIOD_END.isoformat(),
        },
    )
    assert run.status == "succeeded", run.error
    assert run.output_path is not None

    [pdf] = (tmp_path / "pdf").glob("pipeline-digest-northwind-2026-10-19-2026-11-15.pdf")
    message, upload = sandbox.slack_posts()
    deal_desk = next(c.id for c in sandbox.state.company.slack.channels if c.name == "deal-desk")
    assert (message.method, message.channel_id) == ("chat.postMessage", deal_desk)
    assert message.text.startswith("*Pipeline digest · 19 Oct 2026 – 15 Nov 2026* — northwind")
    assert (upload.method, upload.channel_id, upload.thread_ts) == (
        "files.completeUploadExternal",
        deal_desk,
        message.ts,
    )
    assert upload.files[0]["data"] == pdf.read_bytes()
    assert pdf.read_bytes().startswith(b"%PDF")

    executed = nbformat.read(run.output_path, as_version=4)
    injected = next(
        c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])
    )
    assert 'period_start = "2026-10-19"' in injected.source
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "no ANTHROPIC_API_KEY configured: the digest has no summary" in printed
    assert f"posted to #deal-desk ({deal_desk})" in printed
    charts = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(charts) == 3  # pipeline by stage, the movement's waterfall, stage moves
    kinds = [o["data"]["application/vnd.plotly.v1+json"]["data"][0]["type"] for o in charts]
    assert kinds == ["bar", "waterfall", "bar"]
    assert " at risk ($" in printed and "pipeline " in printed and " net (created $" in printed
    assert "Reconciles: opening + movements = closing, to the cent." in printed
    risk_line, movement_line = message.text.splitlines()[-2:]
    assert re.fullmatch(r"\d+ deals? at risk \(\$[\d.]+[kMB]?\)", risk_line)
    assert re.fullmatch(
        r"Pipeline [+-]\$[\d.]+[kMB]? net \(created .*, pulled in .*\)", movement_line
    )
    assert sandbox.token not in Path(run.output_path).read_text()
    db.dispose()
