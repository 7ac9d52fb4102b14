"""``revtops ask "question"``: the copilot in the terminal, answer streamed, tool calls shown.

Answered through ``revtops_kernel.answering`` like the chat: a question a verified query
answers prints that query's table on stdout and ``verified: <name> (params)``, its note and
SQL on stderr, with or without ANTHROPIC_API_KEY; with a key the model's narrative around those
numbers follows the table on stdout. Other questions go to the model (its tool calls, their
SQL and row counts on stderr), or without a key get the three closest verified questions and
how to enable free-form questions on stderr (exit 1).

The answer goes to stdout as it streams; tool calls, notices and usage go to stderr, so
``revtops ask … > answer.md`` keeps only the answer. Ctrl-C cancels the question; only whole
rounds are stored, so the conversation can be continued. Exit codes: 0 answered, 1 the answer
failed (or nothing answers it without a key, or a cost cap), 2 configuration (bad timezone,
unknown org), 130 cancelled.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from revtops_kernel.agent.events import AgentEvent, Suggestions, VerifiedAnswer
    from revtops_kernel.answering import VerifiedRun
    from revtops_kernel.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ask", help="ask the copilot a question about your data")
    parser.add_argument("question", help="the question (quote it)")
    parser.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    parser.add_argument(
        "--conversation", type=uuid.UUID, metavar="ID", help="continue this conversation"
    )
    parser.add_argument("--timezone", help="your IANA timezone (default: REVTOPS_TIMEZONE)")
    parser.set_defaults(handler=cmd_ask)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.answering import Answerer
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store import Database, upgrade

    db = Database.from_settings(settings)
    upgrade(db)
    require_known_org(db, args.org or settings.org)  # a mistyped --org: exit 2, not "no data"
    answerer = Answerer(db, settings, org=args.org)
    try:
        plan = answerer.plan(args.question, timezone=args.timezone)
        events = answerer.answer(plan, conversation_id=args.conversation)
        return print_events(events, sys.stdout, sys.stderr, verified=plan.verified)
    except KeyboardInterrupt:
        # The interrupt ends the loop's generator where it stood: the open stream is closed and
        # only whole rounds were stored, so the conversation can be continued.
        print("\nrevtops ask: cancelled", file=sys.stderr)
        return 130


def print_events(
    events: Iterable[AgentEvent], out: TextIO, err: TextIO, *, verified: VerifiedRun | None = None
) -> int:
    """Write events as they come; the exit code from how the answer ended. ``verified`` is
    the verified query's whole result (the event carries a preview of its rows)."""
    from revtops_kernel.agent.events import (
        ArtifactCreated,
        Done,
        Error,
        ErrorKind,
        Notice,
        Suggestions,
        TextDelta,
        ToolCallStarted,
        ToolResult,
        Usage,
        VerifiedAnswer,
    )

    failed: Error | None = None
    unanswered = False
    cost = Decimal(0)
    tokens = 0
    mid_line = False
    for event in events:
        if isinstance(event, TextDelta):
            out.write(event.text)
            out.flush()
            mid_line = not event.text.endswith("\n")
            continue
        if mid_line:
            out.write("\n")
            out.flush()
            mid_line = False
        if isinstance(event, VerifiedAnswer):
            _print_verified(event, verified, out, err)
        elif isinstance(event, Suggestions):
            unanswered = True
            _print_suggestions(event, err)
        elif isinstance(event, ToolCallStarted):
            err.write(f"→ {event.name}" + (f": {_one_line(event.sql)}" if event.sql else "") + "\n")
        elif isinstance(event, ToolResult):
            mark = "✓" if event.ok else "✗"
            verified_mark = " (verified)" if event.verified else ""
            err.write(f"  {mark} {event.summary}{verified_mark}\n")
        elif isinstance(event, ArtifactCreated):
            err.write(f"  ▣ {event.kind} “{event.title}” saved as artifact {event.artifact_id}\n")
        elif isinstance(event, Notice):
            err.write(f"! {event.message}\n")
        elif isinstance(event, Usage):
            tokens += (
                event.input_tokens
                + event.output_tokens
                + event.cache_read_tokens
                + event.cache_creation_tokens
            )
            cost += event.cost_usd or 0
        elif isinstance(event, Error):
            failed = event
            err.write(f"revtops ask: {event.message}\n")
        elif isinstance(event, Done):
            if event.conversation_id is not None:
                spent = f"{tokens:,} tokens, ${cost:.4f}; " if tokens else ""
                err.write(
                    f"[{spent}conversation {event.conversation_id}: "
                    f"continue with --conversation {event.conversation_id}]\n"
                )
            if event.stop_reason == "cancelled":
                return 130
        err.flush()
    if failed is None:
        return 1 if unanswered else 0
    return 2 if failed.kind == ErrorKind.CONFIGURATION else 1


def _print_verified(
    event: VerifiedAnswer, run: VerifiedRun | None, out: TextIO, err: TextIO
) -> None:
    """The table on stdout (the whole result when the run is at hand); what ran on stderr."""
    import pandas as pd

    from revtops_kernel.commands.sql import render

    if run is not None and run.name == event.name:
        frame = run.frame
    else:
        frame = pd.DataFrame(event.table.rows, columns=event.table.columns)
    out.write(render(frame, "table"))
    out.flush()
    shown = ", ".join(f"{k}={v}" for k, v in event.params.items() if v is not None)
    err.write(f"verified: {event.name} ({shown})\n")
    if event.note:
        err.write(f"note: {event.note}\n")
    if run is not None and run.result.truncated:
        err.write(f"(showing the first {run.max_rows:,} rows; more exist)\n")
    err.write(f"{event.sql}\n")
    err.flush()


def _print_suggestions(event: Suggestions, err: TextIO) -> None:
    err.write(
        "revtops ask: no verified query answers this exactly"
        + (f" ({event.reason})" if event.reason else "")
        + ". The closest verified questions:\n"
    )
    for suggestion in event.questions:
        err.write(f"  - {suggestion.question}  [{suggestion.name}]\n")
    err.write(event.message + "\n")


def _one_line(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 160 else text[:157] + "…"
