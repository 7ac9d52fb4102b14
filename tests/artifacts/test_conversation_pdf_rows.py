"""The conversation PDF shows what each query returned: its first rows under the SQL, with
"N of M rows" when there were more; the tool results are the real tools' (run on the store)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from artifact_samples import load_sales, many_deals, store_conversation, tool_result, tool_use
from sqlalchemy import text

from revtops_kernel.agent.tools import ToolContext, run_tool
from revtops_kernel.artifacts.pdf import CONVERSATION_ROWS, conversation_to_pdf
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.upsert import upsert

ALL_DEALS = "SELECT name, stage_name, amount FROM deals ORDER BY name"
BY_STAGE = "SELECT stage_name, count(*) AS deals FROM deals GROUP BY stage_name ORDER BY 1"
ACME_NAMES = "SELECT name FROM deals WHERE organization_id = 'acme' ORDER BY name"
ACME_STAGES = (
    "SELECT stage_name, count(*) FROM deals WHERE organization_id = 'acme' GROUP BY 1 ORDER BY 1"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"duckdb:///{tmp_path / 'store.duckdb'}", lock_timeout=10)
    upgrade(database)
    load_sales(database)
    with database.begin() as conn:
        upsert(conn, "deals", many_deals(60))
    yield database
    database.dispose()


def ran(db: Database, tool_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    settings = load_settings(REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False))
    outcome = run_tool(ToolContext(db, settings, "acme"), tool_id, name, tool_input)
    assert not outcome.is_error, outcome.content
    return tool_result(tool_id, outcome.content)


def test_each_query_shows_its_first_rows_and_their_count(store: Database, tmp_path: Path) -> None:
    calls = [
        ("toolu_1", "run_sql_query", {"sql": ALL_DEALS}),
        ("toolu_2", "run_sql_query", {"sql": BY_STAGE}),
    ]
    messages: list[tuple[str, list[dict[str, object]]]] = [
        ("user", [{"type": "text", "text": "List the deals, then count them by stage."}])
    ]
    for tool_id, name, tool_input in calls:
        messages += [
            ("assistant", [tool_use(tool_id, name, tool_input)]),
            ("user", [ran(store, tool_id, name, tool_input)]),
        ]
    messages.append(("assistant", [{"type": "text", "text": "Done."}]))
    conversation_id = store_conversation(store, "acme", messages, "Rows in the export")
    pdf = conversation_to_pdf(store, conversation_id, org="acme", author="Ana", timezone="UTC")
    path = tmp_path / "conversation.pdf"
    path.write_bytes(pdf)
    body = " ".join(
        subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
        ).stdout.split()
    )

    with store.connect() as conn:  # what the queries return in acme, read directly
        names = list(conn.execute(text(ACME_NAMES)).scalars())
        stages = conn.execute(text(ACME_STAGES)).all()
    assert len(names) > CONVERSATION_ROWS
    for name in names[:CONVERSATION_ROWS]:
        assert name in body
    assert names[CONVERSATION_ROWS] not in body  # cut after the first rows
    assert f"{CONVERSATION_ROWS} of {len(names)} rows" in body
    for stage, count in stages:  # a short result shows whole, with its count
        assert f"{stage} {count}" in body
    assert f"{len(stages)} rows" in body
