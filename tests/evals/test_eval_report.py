"""What `revtops eval` prints for the model's answers, and how answers are graded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from revtops_kernel.agent.events import (
    AgentEvent,
    Done,
    TablePreview,
    TextDelta,
    ToolCallStarted,
    ToolResult,
    Usage,
)
from revtops_sandbox.commands.eval import _print_answer, _print_totals
from revtops_sandbox.evals.golden import GOLDEN_BY_ID
from revtops_sandbox.evals.match import Expected
from revtops_sandbox.evals.runner import grade

QUESTION = GOLDEN_BY_ID["open_pipeline_total"]
EXPECTED = Expected(("open_deals", "open_amount"), ((42, Decimal("1234567.00")),))


def events(*, table_rows: list[list[object]] | None, text: str) -> Iterator[AgentEvent]:
    if table_rows is not None:
        yield ToolCallStarted("t1", "run_sql_query", {"sql": QUESTION.sql})
        preview = TablePreview(["n", "total"], table_rows, total_rows=len(table_rows))
        yield ToolResult("t1", "run_sql_query", True, "1 row", table=preview)
    yield Usage("claude-opus-4-5", 1000, 200, cache_read_tokens=9000, cost_usd=Decimal("0.0123"))
    yield TextDelta(text)
    yield Done(uuid.uuid4(), "end_turn", rounds=2)


def test_the_last_result_is_graded_as_a_table_then_the_prose() -> None:
    by_table = grade(QUESTION, EXPECTED, lambda q: events(table_rows=[[42, 1234567]], text="ok"))
    assert (by_table.ok, by_table.matched_by, by_table.tool_calls) == (True, "table", 1)
    assert (by_table.input_tokens, by_table.cache_read_tokens, by_table.output_tokens) == (
        1000,
        9000,
        200,
    )
    assert by_table.cost_usd == pytest.approx(0.0123)
    rows_wrong = events(table_rows=[[41, 1234567]], text="42 open deals worth $1.23M.")
    by_text = grade(QUESTION, EXPECTED, lambda q: rows_wrong)
    assert (by_text.ok, by_text.matched_by) == (True, "text")
    wrong = grade(QUESTION, EXPECTED, lambda q: events(table_rows=None, text="About 40."))
    assert not wrong.ok
    assert wrong.reason.startswith("no successful query; answer text: open_deals=42")


def test_only_query_results_count_as_the_answer() -> None:
    def stream(question: str) -> Iterator[AgentEvent]:
        preview = TablePreview(["n", "total"], [[42, 1234567]], total_rows=1)
        yield ToolResult("t1", "run_sql_query", True, "1 row", table=preview)
        samples = TablePreview(["column", "values"], [["amount", "1, 2"]], total_rows=1)
        yield ToolResult("t2", "describe_table", True, "deals", table=samples)
        yield TextDelta("Done.")

    answer = grade(QUESTION, EXPECTED, stream)
    assert (answer.ok, answer.matched_by) == (True, "table")


def test_the_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    good = grade(QUESTION, EXPECTED, lambda q: events(table_rows=[[42, 1234567]], text="ok"))
    bad = grade(QUESTION, EXPECTED, lambda q: events(table_rows=None, text="No idea."))
    for answer in (good, bad):
        _print_answer(answer)
    _print_totals([good, bad])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["PASS", "open_pipeline_total", "table"]
    assert "in 1,000 (cached 9,000) / out 200 tokens  $0.0123" in out[0]
    assert out[1].split()[:3] == ["FAIL", "open_pipeline_total", "-"]
    assert "no successful query" in out[2]
    assert out[3].startswith("accuracy 1/2 (50.0%), tokens in 2,000 (cached 18,000) / out 400")
    assert "$0.0246" in out[3]
