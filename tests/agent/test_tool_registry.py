"""The agent's tools come from one registry: what the model is offered is what can run."""

from __future__ import annotations

import json
import uuid

from revtops_kernel.agent.tools import TOOLS, ToolContext, run_tool, tool_definitions
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database


def test_every_offered_tool_runs_and_every_runnable_tool_is_offered() -> None:
    offered = tool_definitions()
    assert [d["name"] for d in offered] == list(TOOLS)
    for definition in offered:
        assert definition["description"] and definition["input_schema"]["type"] == "object"
    # the definitions are copies: a caller adding cache_control changes no later request
    offered[-1]["cache_control"] = {"type": "ephemeral"}
    assert "cache_control" not in tool_definitions()[-1]


def test_an_unknown_tool_is_an_error_result_naming_the_tools(tmp_path: object) -> None:
    db = Database(f"duckdb:///{tmp_path}/t.duckdb")
    context = ToolContext(db, load_settings(REVTOPS_ORG="acme"), "acme", uuid.uuid4())
    outcome = run_tool(context, "t1", "drop_tables", {})
    assert outcome.is_error and not outcome.result.ok
    message = json.loads(outcome.content)["error"]
    assert "unknown tool 'drop_tables'" in message
    assert all(name in message for name in TOOLS)
