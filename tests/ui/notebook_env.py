"""A store and a scripted Messages API that a real Jupyter kernel (or JupyterLab) can use.

The kernel is another process: it reads the same environment variables a user would set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from revtops_kernel.store import Database, upgrade
from revtops_sandbox.anthropic import (
    ScriptedMessagesServer,
    Turn,
    scripted_settings_overrides,
)
from tests.agent.copilot_fixtures import ORG, load_crm

PIPELINE_SQL = (
    "SELECT stage_name, SUM(amount) AS amount FROM deals GROUP BY stage_name ORDER BY amount DESC"
)
PIPELINE_QUESTION = "What is our pipeline by stage?"
PIPELINE_ANSWER = (
    "Open and closed pipeline totals **$78,000** across four stages.\n\n"
    "| stage | amount |\n|---|--:|\n| Closed Lost | 24,000 |\n| Proposal | 18,000 |\n\n"
    "<script>alert('model')</script> Closed Lost is the largest bucket."
)


def pipeline_turns() -> list[Turn]:
    """Query -> chart -> streamed answer, as Claude would send them."""
    return [
        Turn.tool("run_sql_query", {"sql": PIPELINE_SQL}, text="Let me look at the pipeline."),
        Turn.tool(
            "create_artifact",
            {
                "kind": "chart",
                "title": "Pipeline by stage",
                "sql": PIPELINE_SQL,
                "type": "bar",
                "x": "stage_name",
                "y": ["amount"],
                "value_format": "currency",
            },
        ),
        Turn.reply(PIPELINE_ANSWER, event_delay=0.002),
    ]


def prepare_store(directory: Path) -> str:
    """A DuckDB store with acme's deals; closed again so that the kernel can open it."""
    path = directory / "store.duckdb"
    db = Database(f"duckdb:///{path}")
    upgrade(db)
    load_crm(db)
    db.dispose()
    return f"duckdb:///{path}"


def point_kernel_at(
    monkeypatch: pytest.MonkeyPatch, api: ScriptedMessagesServer, database_url: str
) -> None:
    """Environment variables the kernel (a child process) inherits."""
    for name, value in scripted_settings_overrides(api).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REVTOPS_DATABASE_URL", database_url)
    monkeypatch.setenv("REVTOPS_ORG", ORG)
    monkeypatch.setenv("REVTOPS_TIMEZONE", "America/New_York")
