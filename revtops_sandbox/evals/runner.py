"""Run the golden set: gold SQL against the ground truth, and the copilot against both.

``check_gold`` runs each question's gold SQL through the SQL guard (``run_guarded``, the path
the model's SQL takes) and matches its rows against the answer derived from the sandbox
company, exactly (``GOLD_REL_TOL``): it keeps the set honest as the schema, the sync or the
guard change, and needs no API key. It first imports the sandbox's quota plan into the store
(``quota_plan.load_quota_plan``, the product's quota import, as a user would; again, it
updates the same rows): no CRM holds quotas, and the quota questions are derived from that plan.

``ask_model`` puts each question to the copilot in a fresh conversation, with the clock set to
the sandbox's "today", and grades the answer: the rows of the last successful query (a
``run_sql_query`` or ``run_verified_query`` result) are matched as a table; if they do not
match, the final answer's prose is searched for the expected values (``match.match_text``).
Tokens and cost come from the loop's ``Usage`` events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from revtops_kernel.errors import RevtopsError
from revtops_kernel.store.database import Database
from revtops_sandbox.evals.golden import AS_OF, GOLDEN, GoldQuestion
from revtops_sandbox.evals.match import (
    GOLD_REL_TOL,
    Expected,
    Match,
    match_table,
    match_text,
)
from revtops_sandbox.evals.quota_plan import load_quota_plan
from revtops_sandbox.evals.truth import Truth, day_start

if TYPE_CHECKING:
    import pandas as pd

    from revtops_kernel.agent.events import AgentEvent

ANSWER_EXCERPT_CHARS = 600
# Tools whose rows answer a question (describe_table's samples or an artifact's preview do not).
QUERY_TOOLS = frozenset({"run_sql_query", "run_verified_query"})


@dataclass(frozen=True)
class GoldCheck:
    id: str
    ok: bool
    reason: str
    rows: int
    elapsed_ms: float


@dataclass(frozen=True)
class ModelAnswer:
    id: str
    ok: bool
    matched_by: str | None  # "table", "text" or None
    reason: str
    answer: str  # the final answer, cut to ANSWER_EXCERPT_CHARS
    tool_calls: int
    used_verified: bool
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float | None
    seconds: float
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def require_anchor(truth: Truth) -> None:
    """The questions name their dates; they are written for a company anchored at AS_OF."""
    if truth.as_of != AS_OF:
        raise RevtopsError(
            f"the golden set is written for a sandbox anchored at {AS_OF}, this one is "
            f"anchored at {truth.as_of}"
        )


def frame_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows of plain Python values (NULLs as None)."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [str(c) for c in frame.columns], plain.values.tolist()


def check_gold(
    db: Database, truth: Truth, *, org: str, questions: Iterable[GoldQuestion] = GOLDEN
) -> list[GoldCheck]:
    from revtops_kernel.agent.guard import run_guarded

    require_anchor(truth)
    load_quota_plan(db, org, truth.company)
    checks = []
    for question in questions:
        expected = question.expected(truth)
        started = time.monotonic()
        try:
            result = run_guarded(db, question.sql, org=org)
        except RevtopsError as exc:
            elapsed = (time.monotonic() - started) * 1000
            checks.append(GoldCheck(question.id, False, f"query failed: {exc}", 0, elapsed))
            continue
        elapsed = (time.monotonic() - started) * 1000
        columns, rows = frame_rows(result.frame)
        match = match_table(expected, columns, rows, rel_tol=GOLD_REL_TOL, abs_tol=1e-6)
        checks.append(GoldCheck(question.id, match.ok, match.reason, len(rows), elapsed))
    return checks


def eval_clock(truth: Truth) -> datetime:
    """Noon UTC of the sandbox's "today": what the copilot is told the time is."""
    return day_start(truth.as_of) + timedelta(hours=12)


def ask_model(
    ask: Callable[[str], Iterable[AgentEvent]],
    truth: Truth,
    questions: Sequence[GoldQuestion] = GOLDEN,
) -> Iterator[ModelAnswer]:
    """Grade ``ask(question)`` (a copilot's event stream) on each question, one by one."""
    require_anchor(truth)
    for question in questions:
        yield grade(question, question.expected(truth), ask)


def grade(
    question: GoldQuestion, expected: Expected, ask: Callable[[str], Iterable[AgentEvent]]
) -> ModelAnswer:
    from revtops_kernel.agent.events import Error, TextDelta, ToolCallStarted, ToolResult, Usage

    started = time.monotonic()
    text: list[str] = []
    last_table: tuple[list[str], list[list[Any]], bool] | None = None
    tokens = {"input": 0, "output": 0, "cache_read": 0, "cache_creation": 0}
    cost: Decimal | None = None
    calls, verified, error = 0, False, None
    for event in ask(question.question):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ToolCallStarted):
            calls += 1
        elif isinstance(event, ToolResult):
            if event.ok and event.table is not None and event.name in QUERY_TOOLS:
                table = event.table
                complete = not table.truncated and len(table.rows) >= table.total_rows
                last_table = (list(table.columns), [list(r) for r in table.rows], complete)
                verified = verified or event.verified
        elif isinstance(event, Usage):
            tokens["input"] += event.input_tokens
            tokens["output"] += event.output_tokens
            tokens["cache_read"] += event.cache_read_tokens
            tokens["cache_creation"] += event.cache_creation_tokens
            if event.cost_usd is not None:
                cost = (cost or Decimal(0)) + event.cost_usd
        elif isinstance(event, Error):
            error = event.message
    answer = "".join(text)
    match, matched_by = _judge(expected, last_table, answer)
    return ModelAnswer(
        id=question.id,
        ok=match.ok,
        matched_by=matched_by,
        reason=match.reason,
        answer=answer[:ANSWER_EXCERPT_CHARS],
        tool_calls=calls,
        used_verified=verified,
        input_tokens=tokens["input"],
        output_tokens=tokens["output"],
        cache_read_tokens=tokens["cache_read"],
        cache_creation_tokens=tokens["cache_creation"],
        cost_usd=float(cost) if cost is not None else None,
        seconds=time.monotonic() - started,
        error=error,
    )


def _judge(
    expected: Expected, table: tuple[list[str], list[list[Any]], bool] | None, answer: str
) -> tuple[Match, str | None]:
    reasons = []
    if table is not None:
        columns, rows, complete = table
        by_table = match_table(expected, columns, rows)
        if by_table.ok:
            return by_table, "table"
        note = "" if complete else " (only a preview of the rows was seen)"
        reasons.append(f"last result: {by_table.reason}{note}")
    else:
        reasons.append("no successful query")
    by_text = match_text(expected, answer)
    if by_text.ok:
        return by_text, "text"
    reasons.append(f"answer text: {by_text.reason}")
    return Match(False, "; ".join(reasons)), None
