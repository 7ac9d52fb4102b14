"""``revtops eval`` as a real process: without a key (gold SQL only) and against the scripted
Messages API (the copilot answers, the answers are graded, tokens and cost reported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from revtops_sandbox.anthropic import ScriptedMessagesServer, Turn
from revtops_sandbox.evals.golden import GOLDEN_BY_ID
from revtops_sandbox.evals.truth import Truth
from revtops_sandbox.generate import generate_company

SCALE, SEED = "0.05", "7"
QUESTIONS = (
    "open_pipeline_total",
    "open_by_stage_new_business",
    "deals_missing_amount",
    "active_reps",
)

pytestmark = pytest.mark.slow


def revtops(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revtops_kernel.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        check=False,
    )


def selection() -> list[str]:
    return ["--scale", SCALE, "--seed", SEED, *(f"--question={q}" for q in QUESTIONS)]


def test_without_a_key_it_checks_the_gold_sql_and_says_the_model_was_not_asked() -> None:
    # A quota question too: the command imports the sandbox's quota plan before checking.
    asked = (*QUESTIONS, "quota_attainment_q3_2026")
    done = revtops("eval", *selection(), "--question=quota_attainment_q3_2026")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for question in asked:
        assert any(line.split()[:2] == ["PASS", question] for line in lines), done.stdout
    assert f"{len(asked)}/{len(asked)} gold queries match the ground truth" in lines
    assert "the model was not asked (no ANTHROPIC_API_KEY)" in done.stdout


def test_unknown_questions_are_refused() -> None:
    done = revtops("eval", "--question", "meaning_of_life")
    assert done.returncode == 2
    assert "unknown question(s): meaning_of_life" in done.stderr


def test_the_copilot_is_graded_against_the_scripted_api() -> None:
    truth = Truth(generate_company(float(SCALE), int(SEED)))
    missing = GOLDEN_BY_ID["deals_missing_amount"].expected(truth).rows[0][0]
    reps = GOLDEN_BY_ID["active_reps"].expected(truth).rows[0][0]
    with ScriptedMessagesServer() as api:
        api.script(
            # open_pipeline_total: a query, then an answer built on its rows -> graded by table
            Turn.tool("run_sql_query", {"sql": GOLDEN_BY_ID["open_pipeline_total"].sql}),
            Turn.reply("Here is the open pipeline."),
            # open_by_stage_new_business: a verified query -> graded by table, marked verified
            Turn.tool(
                "run_verified_query",
                {"name": "pipeline_by_stage", "params": {"pipeline": "New Business"}},
            ),
            Turn.reply("Open New Business pipeline by stage (verified)."),
            # deals_missing_amount: answered in prose, right -> graded by text
            Turn.reply(f"{missing} deals have no amount entered."),
            # active_reps: answered in prose, wrong
            Turn.reply(f"You have {reps + 7} active reps."),
        )
        env = {"ANTHROPIC_API_KEY": api.api_key, "ANTHROPIC_BASE_URL": api.base_url}
        done = revtops("eval", *selection(), "--format", "json", "--min-accuracy", "0.9", env=env)
        requests = api.requests
    assert done.returncode == 1, done.stderr  # 3 of 4 is below --min-accuracy
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["gold"]["passed"] == len(QUESTIONS)
    model = report["model"]
    answers = {a["id"]: a for a in model["answers"]}
    assert [a["id"] for a in model["answers"]] == list(QUESTIONS)
    assert (answers["open_pipeline_total"]["ok"], answers["open_pipeline_total"]["matched_by"]) == (
        True,
        "table",
    )
    assert answers["open_pipeline_total"]["tool_calls"] == 1
    assert not answers["open_pipeline_total"]["used_verified"]
    by_stage = answers["open_by_stage_new_business"]
    assert (by_stage["ok"], by_stage["matched_by"], by_stage["used_verified"]) == (
        True,
        "table",
        True,
    )
    assert (
        answers["deals_missing_amount"]["ok"],
        answers["deals_missing_amount"]["matched_by"],
    ) == (
        True,
        "text",
    )
    wrong = answers["active_reps"]
    assert not wrong["ok"]
    assert "no successful query" in wrong["reason"]
    assert f"active_reps={reps} is not in the answer" in wrong["reason"]
    assert model["correct"] == 3
    assert model["accuracy"] == pytest.approx(3 / 4)
    for answer in model["answers"]:
        prompt = (
            answer["input_tokens"] + answer["cache_read_tokens"] + answer["cache_creation_tokens"]
        )
        assert prompt > 0 and answer["output_tokens"] > 0
        assert answer["cost_usd"] is not None and answer["cost_usd"] > 0
    assert Decimal(str(model["cost_usd"])) > 0
    # Each question was its own conversation: the first request of each carries one message.
    firsts = [r for r in requests if len(r.messages) == 1]
    assert [r.messages[0]["content"] for r in firsts] == [
        GOLDEN_BY_ID[q].question for q in QUESTIONS
    ] or [r.messages[0]["content"][0]["text"] for r in firsts] == [
        GOLDEN_BY_ID[q].question for q in QUESTIONS
    ]
