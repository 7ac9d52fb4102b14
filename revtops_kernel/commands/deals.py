"""``revtops deals timeline DEAL`` and ``revtops deals brief DEAL -o brief.pdf``: one deal's
story in time order, and its one-page brief for a deal review.

DEAL is a deal's id or a fragment of its (or its account's) name that names one deal; a
fragment that names several lists them and exits 2, one that names none exits 2 too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revtops_kernel.intelligence.timeline import DealHeader
    from revtops_kernel.settings import Settings
    from revtops_kernel.store.database import Database

SHOWN_CANDIDATES = 20


def register(commands: argparse._SubParsersAction) -> None:
    deals = commands.add_parser("deals", help="one deal's timeline and brief")
    deal_commands = deals.add_subparsers(
        title="deals commands", metavar="DEALS_COMMAND", required=True
    )
    timeline = deal_commands.add_parser(
        "timeline", help="a deal's stage, amount and close-date changes and activities in order"
    )
    timeline.add_argument("deal", help="the deal's id or part of its (or its account's) name")
    timeline.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    timeline.add_argument("--json", action="store_true", help="print JSON")
    timeline.set_defaults(handler=cmd_deals_timeline)

    brief = deal_commands.add_parser("brief", help="a deal's one-page brief as a PDF")
    brief.add_argument("deal", help="the deal's id or part of its (or its account's) name")
    brief.add_argument("-o", "--output", type=Path, required=True, help="the PDF file to write")
    brief.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    brief.add_argument("--timezone", default="UTC", help="the reader's IANA time zone")
    brief.add_argument("--author", help="who the page says prepared it")
    brief.set_defaults(handler=cmd_deals_brief)


def _open(args: argparse.Namespace, settings: Settings) -> tuple[Database, str]:
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store.database import Database

    db = Database.from_settings(settings)
    org = args.org or settings.org
    require_known_org(db, org)
    return db, org


def _one_deal(db: Database, org: str, text: str) -> DealHeader | None:
    """The deal ``text`` names, or None after saying on stderr why there is not exactly one."""
    from revtops_kernel.intelligence.timeline import find_deals

    found = find_deals(db, org, text)
    exact = [d for d in found if d.id == text.strip().lower() or (d.name or "") == text.strip()]
    if len(exact) == 1:
        return exact[0]
    if len(found) == 1:
        return found[0]
    if not found:
        print(f"revtops: no deal in {org} matches {text!r}", file=sys.stderr)
        return None
    print(f"revtops: {text!r} matches several deals; give one's id:", file=sys.stderr)
    for deal in found[:SHOWN_CANDIDATES]:
        state = "open" if deal.is_open else ("won" if deal.is_won else "lost")
        print(f"  {deal.id}  {deal.name}  ({deal.account}, {state})", file=sys.stderr)
    if len(found) > SHOWN_CANDIDATES:
        print(f"  … and {len(found) - SHOWN_CANDIDATES} more", file=sys.stderr)
    return None


def cmd_deals_timeline(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.intelligence.timeline import deal_timeline, money

    db, org = _open(args, settings)
    deal = _one_deal(db, org, args.deal)
    if deal is None:
        return 2
    timeline = deal_timeline(db, org, deal.id)
    if args.json:
        print(
            json.dumps(
                {
                    "deal": timeline.deal.__dict__,
                    "events": [e.__dict__ for e in timeline.events],
                    "participants": [p.__dict__ for p in timeline.participants],
                },
                default=str,
                indent=2,
            )
        )
        return 0
    head = timeline.deal
    print(f"{head.name}  ({head.id})")
    print(
        f"{head.account or 'no account'} · {head.owner or 'unassigned'} · {head.stage} · "
        f"{money(head.amount, head.currency)} · closes {head.close_date or 'undated'}"
    )
    print()
    width = max((len(e.kind) for e in timeline.events), default=4)
    for event in timeline.events:
        line = f"{event.at:%Y-%m-%d %H:%M}  {event.kind:<{width}}  {event.title}"
        print(line + (f"  — {event.detail}" if event.detail else ""))
    print(f"\n{len(timeline.events)} events, {len(timeline.participants)} people engaged")
    return 0


def cmd_deals_brief(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.reports.deal_brief import DEFAULT_AUTHOR, deal_brief_pdf

    db, org = _open(args, settings)
    deal = _one_deal(db, org, args.deal)
    if deal is None:
        return 2
    pdf = deal_brief_pdf(
        db, org, deal.id, timezone=args.timezone, author=args.author or DEFAULT_AUTHOR
    )
    args.output.write_bytes(pdf)
    print(f"{deal.name}: brief written to {args.output} ({len(pdf):,} bytes)")
    return 0
