"""``revtops ask "question"``: the copilot in the terminal, answer streamed, tool calls shown.

The answer goes to stdout as it streams; tool calls (their SQL and row counts), notices and
usage go to stderr, so ``revtops ask … > answer.md`` keeps only the answer. Ctrl-C cancels the
question; only whole rounds are stored, so the conversation can be continued. Exit codes: 0
answered, 1 the answer failed, 2 configuration (bad timezone, unknown org), 130 cancelled.

Without ANTHROPIC_API_KEY the question is routed to a verified query (``agent/routing``): if one
answers it, its table goes to stdout and ``verified: <name> (params)`` and its SQL to stderr
(exit 0); if none does, the three closest verified questions and how to enable free-form
questions go to stderr (exit 1).
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
    from revtops_kernel.agent.routing import Route
    from revtops_kernel.settings import Settings
    from revtops_kernel.store import Database


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
    if settings.anthropic_api_key is None:
        return answer_from_verified(db, args, settings, sys.stdout, sys.stderr)
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


# --- without a key: verified answers only ---------------------------------------------------


def answer_from_verified(
    db: Database, args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO
) -> int:
    """Answer from the verified query the question routes to, or say which questions can be."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from revtops_kernel.agent.routing import route
    from revtops_kernel.agent.routing.store_names import load_route_context
    from revtops_kernel.agent.verified import VERIFIED_QUERIES, run_verified
    from revtops_kernel.commands.sql import render
    from revtops_kernel.errors import QueryError, VerifiedQueryError

    zone = args.timezone or settings.timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        err.write(
            f"revtops ask: unknown timezone {zone!r}: use an IANA name such as Europe/Paris\n"
        )
        return 2
    org = args.org or settings.org
    context = load_route_context(db, org=org, now=datetime.now(UTC), timezone=zone)
    routed = route(args.question, context)
    if routed.name is None:
        _print_unrouted(routed, err)
        return 1
    try:
        result = run_verified(
            db, routed.name, routed.params, org=org, max_rows=settings.query_max_rows,
            timeout=settings.query_timeout, today=context.today,
        )  # fmt: skip
    except (VerifiedQueryError, QueryError) as exc:
        err.write(f"revtops ask: the verified query {routed.name} failed: {exc}\n")
        return 1
    frame = result.frame if routed.limit is None else result.frame.head(routed.limit)
    out.write(render(frame, "table"))
    out.flush()
    shown = ", ".join(f"{k}={_param_text(v)}" for k, v in result.params.items() if v is not None)
    err.write(f"verified: {routed.name} ({shown})\n")
    note = VERIFIED_QUERIES[routed.name].note
    if note:
        err.write(f"note: {note}\n")
    if result.truncated:
        err.write(f"(showing the first {settings.query_max_rows:,} rows; more exist)\n")
    err.write(f"{result.sql}\n")
    return 0


def _print_unrouted(routed: Route, err: TextIO) -> None:
    err.write(
        "revtops ask: no verified query answers this exactly"
        + (f" ({routed.reason})" if routed.reason else "")
        + ". The closest verified questions:\n"
    )
    for suggestion in routed.alternatives:
        err.write(f"  - {suggestion.question}  [{suggestion.name}]\n")
    err.write(
        "Set ANTHROPIC_API_KEY (https://console.anthropic.com/settings/keys) to ask free-form "
        "questions.\n"
    )


def _param_text(value: object) -> str:
    from datetime import date

    return value.isoformat() if isinstance(value, date) else str(value)
