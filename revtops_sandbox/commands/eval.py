"""``revtops eval``: the golden set against the ground truth, and against the model.

The store: by default a fresh DuckDB file in a temporary directory, deleted afterwards, into
which the sandbox company (fixed scale and seed) is synced over loopback through the real
HubSpot connector. The configured store is never touched: its data would not be the company the
answers are derived from. ``--database-url`` syncs into another store instead (organization
``eval``, upserted, so re-runs are idempotent), e.g. to evaluate on PostgreSQL.

Always: each question's gold SQL runs through the SQL guard and is matched against the answer
derived from the company (exit 1 if any fails). With ``ANTHROPIC_API_KEY`` set (and without
``--gold-only``): each question is put to the copilot in its own conversation, with the clock
at the sandbox's "today", and graded (see ``evals.runner``); accuracy, tokens and cost per
question and in total are reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings
    from revtops_kernel.store.database import Database
    from revtops_sandbox.evals.golden import GoldQuestion
    from revtops_sandbox.evals.runner import GoldCheck, ModelAnswer

FORMATS = ("text", "json")


def register(commands: argparse._SubParsersAction) -> None:
    from revtops_sandbox.evals import EVAL_ORG, EVAL_SCALE, EVAL_SEED

    parser = commands.add_parser(
        "eval",
        help="run the golden set: gold SQL against the sandbox's ground truth, and the model "
        "when ANTHROPIC_API_KEY is set",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument(
        "--gold-only", action="store_true", help="check the gold SQL only; do not ask the model"
    )
    parser.add_argument(
        "--question",
        action="append",
        dest="questions",
        metavar="ID",
        help="only this question (repeatable); see --list",
    )
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--list", action="store_true", help="list the questions and exit")
    parser.add_argument(
        "--scale", type=float, default=EVAL_SCALE, help=f"sandbox size (default {EVAL_SCALE})"
    )
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help=f"sandbox seed ({EVAL_SEED})")
    parser.add_argument(
        "--database-url",
        help=f"sync into this store instead of a temporary DuckDB file (organization {EVAL_ORG!r})",
    )
    parser.add_argument(
        "--min-accuracy",
        type=float,
        help="exit 1 if the model's accuracy (0-1) is below this",
    )
    parser.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_sandbox.evals.golden import GOLDEN, GOLDEN_BY_ID

    questions = list(GOLDEN)
    if args.questions:
        unknown = [q for q in args.questions if q not in GOLDEN_BY_ID]
        if unknown:
            print(f"revtops eval: unknown question(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        questions = [GOLDEN_BY_ID[q] for q in args.questions]
    if args.limit is not None:
        if args.limit < 1:
            print("revtops eval: --limit must be at least 1", file=sys.stderr)
            return 2
        questions = questions[: args.limit]
    if args.list:
        for question in questions:
            print(f"{question.id:<32} [{question.category}] {question.question}")
            if question.note:
                print(f"{'':<32} note: {question.note}")
        return 0
    if args.scale <= 0:
        print("revtops eval: --scale must be positive", file=sys.stderr)
        return 2
    url = None
    if args.database_url:
        from revtops_kernel.settings import normalize_database_url

        try:
            url = normalize_database_url(args.database_url)
        except ValueError as exc:
            print(f"revtops eval: --database-url: {exc}", file=sys.stderr)
            return 2
    with _store(url, settings.db_lock_timeout) as (db, where):
        return _evaluate(args, settings, db, where, questions)


@contextmanager
def _store(url: str | None, lock_timeout: float) -> Iterator[tuple[Database, str]]:
    from revtops_kernel.store.database import Database

    if url:
        # Its own store: REVTOPS_READONLY_DATABASE_URL belongs to the configured one.
        db = Database(url, lock_timeout=lock_timeout)
        try:
            yield db, db.display_url
        finally:
            db.dispose()
        return
    with tempfile.TemporaryDirectory(prefix="revtops-eval-") as folder:
        db = Database(f"duckdb:///{Path(folder) / 'eval.duckdb'}", lock_timeout=lock_timeout)
        try:
            yield db, "a temporary DuckDB file"
        finally:
            db.dispose()


def _evaluate(
    args: argparse.Namespace,
    settings: Settings,
    db: Database,
    where: str,
    questions: Sequence[GoldQuestion],
) -> int:
    from revtops_sandbox.evals.runner import check_gold
    from revtops_sandbox.evals.sandbox_store import EVAL_ORG, sync_sandbox
    from revtops_sandbox.evals.truth import Truth

    text = args.format == "text"
    if text:
        print(f"syncing the sandbox (scale {args.scale:g}, seed {args.seed}) into {where}…")
    truth = Truth(sync_sandbox(db, org=EVAL_ORG, scale=args.scale, seed=args.seed))
    gold = check_gold(db, truth, org=EVAL_ORG, questions=questions)
    gold_failed = sum(not c.ok for c in gold)
    if text:
        _print_gold(gold)
    ask_model = not args.gold_only and settings.anthropic_api_key is not None
    answers: list[ModelAnswer] = []
    if ask_model:
        if text:
            print(f"\nmodel {settings.model}: {len(questions)} questions")
        for answer in _model_answers(db, settings, truth, questions):
            answers.append(answer)
            if text:
                _print_answer(answer)
    elif text:
        why = "--gold-only" if args.gold_only else "no ANTHROPIC_API_KEY"
        print(f"\nthe model was not asked ({why}); set ANTHROPIC_API_KEY to evaluate it")
    accuracy = sum(a.ok for a in answers) / len(answers) if answers else None
    if text and answers:
        _print_totals(answers)
    if not text:
        report = _report(args, settings, where, gold, answers if ask_model else None)
        print(json.dumps(report, indent=2))
    if gold_failed:
        return 1
    if args.min_accuracy is not None and ask_model and (accuracy or 0.0) < args.min_accuracy:
        return 1
    return 0


def _model_answers(
    db: Database, settings: Settings, truth: Any, questions: Sequence[GoldQuestion]
) -> Iterator[ModelAnswer]:
    from revtops_kernel.agent.loop import Copilot
    from revtops_sandbox.evals.runner import ask_model, eval_clock
    from revtops_sandbox.evals.sandbox_store import EVAL_ORG

    now = eval_clock(truth)
    copilot = Copilot(db, settings, org=EVAL_ORG, clock=lambda: now)
    yield from ask_model(lambda q: copilot.ask(q, timezone="UTC"), truth, questions)


def _print_gold(checks: Sequence[GoldCheck]) -> None:
    print("gold SQL through the guard, against the sandbox's ground truth:")
    width = max(len(c.id) for c in checks)
    for c in checks:
        mark = "PASS" if c.ok else "FAIL"
        line = f"  {mark} {c.id:<{width}}  {c.rows:>4} rows {c.elapsed_ms:>7.0f} ms"
        print(line if c.ok else f"{line}  {c.reason}")
    passed = sum(c.ok for c in checks)
    print(f"{passed}/{len(checks)} gold queries match the ground truth")


def _print_answer(a: ModelAnswer) -> None:
    mark = "PASS" if a.ok else "FAIL"
    cost = f"${a.cost_usd:.4f}" if a.cost_usd is not None else "cost n/a"
    how = a.matched_by or "-"
    print(
        f"  {mark} {a.id:<32} {how:<5} {a.tool_calls} tools  in {a.input_tokens:,} "
        f"(cached {a.cache_read_tokens:,}) / out {a.output_tokens:,} tokens  {cost}  "
        f"{a.seconds:.1f} s",
        flush=True,
    )
    if not a.ok:
        print(f"       {a.reason}" + (f" — error: {a.error}" if a.error else ""), flush=True)


def _totals(answers: Sequence[ModelAnswer]) -> dict[str, Any]:
    costs = [a.cost_usd for a in answers if a.cost_usd is not None]
    return {
        "questions": len(answers),
        "correct": sum(a.ok for a in answers),
        "accuracy": sum(a.ok for a in answers) / len(answers) if answers else None,
        "input_tokens": sum(a.input_tokens for a in answers),
        "output_tokens": sum(a.output_tokens for a in answers),
        "cache_read_tokens": sum(a.cache_read_tokens for a in answers),
        "cache_creation_tokens": sum(a.cache_creation_tokens for a in answers),
        "cost_usd": sum(costs) if costs else None,
        "seconds": sum(a.seconds for a in answers),
    }


def _print_totals(answers: Sequence[ModelAnswer]) -> None:
    t = _totals(answers)
    cost = f"${t['cost_usd']:.4f}" if t["cost_usd"] is not None else "cost n/a"
    print(
        f"accuracy {t['correct']}/{t['questions']} ({100 * t['accuracy']:.1f}%), "
        f"tokens in {t['input_tokens']:,} (cached {t['cache_read_tokens']:,}) / out "
        f"{t['output_tokens']:,}, {cost}, {t['seconds']:.0f} s"
    )


def _report(
    args: argparse.Namespace,
    settings: Settings,
    where: str,
    gold: Sequence[GoldCheck],
    answers: Sequence[ModelAnswer] | None,
) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "sandbox": {"scale": args.scale, "seed": args.seed},
        "store": where,
        "gold": {
            "passed": sum(c.ok for c in gold),
            "total": len(gold),
            "checks": [asdict(c) for c in gold],
        },
        "model": None
        if answers is None
        else {
            "model": settings.model,
            **_totals(answers),
            "answers": [a.as_json() for a in answers],
        },
    }
