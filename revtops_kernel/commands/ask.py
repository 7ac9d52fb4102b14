"""``revtops ask "question"``: the copilot in the terminal, answer streamed, tool calls shown.

The answer goes to stdout as it streams; tool calls (their SQL and row counts), notices and
usage go to stderr, so ``revtops ask … > answer.md`` keeps only the answer. Ctrl-C cancels the
question; only whole rounds are stored, so the conversation can be continued. Exit codes: 0
answered, 1 the answer failed, 2 configuration (no API key, bad timezone), 130 cancelled.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from revtops_kernel.agent.events import AgentEvent
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
    from revtops_kernel.agent.loop import Copilot
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store import Database, upgrade

    db = Database.from_settings(settings)
    upgrade(db)
    require_known_org(db, args.org or settings.org)  # a mistyped --org: exit 2, not "no data"
    copilot = Copilot(db, settings, org=args.org)
    events = copilot.ask(args.question, conversation_id=args.conversation, timezone=args.timezone)
    try:
        return print_events(events, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        # The interrupt ends the loop's generator where it stood: the open stream is closed and
        # only whole rounds were stored, so the conversation can be continued.
        print("\nrevtops ask: cancelled", file=sys.stderr)
        return 130


def print_events(events: Iterable[AgentEvent], out: TextIO, err: TextIO) -> int:
    """Write events as they come; the exit code from how the answer ended."""
    from revtops_kernel.agent.events import (
        ArtifactCreated,
        Done,
        Error,
        Notice,
        TextDelta,
        ToolCallStarted,
        ToolResult,
        Usage,
    )

    failed: Error | None = None
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
        if isinstance(event, ToolCallStarted):
            err.write(f"→ {event.name}" + (f": {_one_line(event.sql)}" if event.sql else "") + "\n")
        elif isinstance(event, ToolResult):
            mark = "✓" if event.ok else "✗"
            verified = " (verified)" if event.verified else ""
            err.write(f"  {mark} {event.summary}{verified}\n")
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
                err.write(
                    f"[{tokens:,} tokens, ${cost:.4f}; conversation {event.conversation_id}: "
                    f"continue with --conversation {event.conversation_id}]\n"
                )
            if event.stop_reason == "cancelled":
                return 130
        err.flush()
    if failed is None:
        return 0
    return 2 if failed.kind == "configuration" else 1


def _one_line(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 160 else text[:157] + "…"
