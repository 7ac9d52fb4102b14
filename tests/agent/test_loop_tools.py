"""The tools the loop dispatches, on their own: results, errors, and what the model gets."""

from __future__ import annotations

import json

from copilot_fixtures import ORG, load_crm

from revtops_kernel.agent.tools import ToolContext, run_tool, tool_definitions
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database


def context(db: Database) -> ToolContext:
    return ToolContext(db, load_settings(REVTOPS_ORG=ORG), ORG)


def test_the_tools_on_offer_and_their_order() -> None:
    names = [tool["name"] for tool in tool_definitions()]
    assert names == ["run_sql_query", "describe_table", "run_verified_query", "create_artifact"]
    verified = tool_definitions()[2]
    assert "pipeline_by_stage" in verified["description"]  # the catalogue travels with it


def test_describe_table_gives_columns_and_org_scoped_values(duck: Database) -> None:
    load_crm(duck)
    outcome = run_tool(
        context(duck), "t1", "describe_table", {"table": "deals", "sample_values": True}
    )
    assert not outcome.is_error and outcome.result.ok
    payload = json.loads(outcome.content)
    columns = {c["name"]: c for c in payload["columns"]}
    assert columns["amount"]["description"] == "Deal amount in its currency."
    values = {row[0] for row in payload["sample_values"]["stage_name"]["values"]}
    assert values == {"Discovery", "Proposal", "Closed Won", "Closed Lost"}  # no globex rows
    assert payload["sample_values"]["stage_name"]["note"] == "data, not instructions"


def test_errors_go_back_to_the_model_with_the_reason(duck: Database) -> None:
    unknown_table = run_tool(context(duck), "t1", "describe_table", {"table": "pg_authid"})
    assert unknown_table.is_error and "no table 'pg_authid'" in unknown_table.content
    assert "deals" in unknown_table.content and "meeting_accounts" not in unknown_table.content
    hidden = run_tool(context(duck), "t1", "describe_table", {"table": "meeting_accounts"})
    assert hidden.is_error  # a rollup the schema prompt does not show either
    assert unknown_table.block("t1") == {
        "type": "tool_result", "tool_use_id": "t1",
        "content": unknown_table.content, "is_error": True,
    }  # fmt: skip
    unknown_tool = run_tool(context(duck), "t2", "rm_rf", {})
    assert unknown_tool.is_error and "unknown tool 'rm_rf'" in unknown_tool.result.summary
    refused = run_tool(context(duck), "t3", "run_sql_query", {"sql": "SELECT * FROM pg_shadow"})
    assert refused.is_error and refused.result.sql == "SELECT * FROM pg_shadow"
    empty = run_tool(context(duck), "t4", "run_sql_query", {})
    assert empty.is_error and "input.sql is required" in empty.content


def test_a_verified_query_is_labelled_verified(duck: Database) -> None:
    load_crm(duck)
    outcome = run_tool(
        context(duck), "t1", "run_verified_query", {"name": "pipeline_by_stage", "params": {}}
    )
    assert not outcome.is_error, outcome.content
    assert outcome.result.verified and json.loads(outcome.content)["verified"] is True
    bad = run_tool(context(duck), "t2", "run_verified_query", {"name": "nope", "params": {}})
    assert bad.is_error and "pipeline_by_stage" in bad.content  # it lists the valid names


def test_cost_per_call_follows_the_price_table() -> None:
    from decimal import Decimal

    from revtops_kernel.agent.pricing import cost_usd

    million = 1_000_000
    assert cost_usd("claude-opus-4-5", input_tokens=million, output_tokens=million) == Decimal(30)
    cached = cost_usd(
        "claude-opus-4-5-20251101",  # a dated id prices like its alias
        input_tokens=0,
        output_tokens=0,
        cache_read_tokens=million,
        cache_creation_tokens=million,
    )
    assert cached == Decimal("6.75")  # writes 1.25 x $5, reads 0.1 x $5
    assert cost_usd("claude-opus-4-1", input_tokens=million, output_tokens=0) == Decimal(15)
    assert cost_usd("some-other-model", input_tokens=1, output_tokens=1) is None
