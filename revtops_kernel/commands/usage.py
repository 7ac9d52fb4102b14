"""``revtops usage``: what the model cost (the ledger, ``llm_usage``), and the cost caps.

    revtops usage                          # this organization, by day, with its caps
    revtops usage --by user --since 2026-11-01
    revtops usage --all --by org           # every organization
    revtops usage --org acme --set-daily-cap 5 --set-monthly-cap 100   # an admin's override
    revtops usage --org acme --clear-caps  # back to REVTOPS_DAILY/MONTHLY_COST_CAP_USD

Exit codes: 0 shown (or caps set), 2 bad arguments or an unknown organization.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revtops_kernel.agent.caps import Cap
    from revtops_kernel.agent.ledger_report import CapStanding, UsageLine
    from revtops_kernel.settings import Settings

GROUPINGS = ("user", "model", "day", "org")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("usage", help="what the model cost, and the cost caps")
    parser.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    parser.add_argument("--all", action="store_true", help="every organization")
    parser.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="from this UTC day on")
    parser.add_argument("--by", choices=GROUPINGS, default="day", help="group by (default day)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--set-daily-cap", type=_usd, metavar="USD", help="set the org's own")
    parser.add_argument("--set-monthly-cap", type=_usd, metavar="USD", help="set the org's own")
    parser.add_argument("--clear-caps", action="store_true", help="use the settings' caps again")
    parser.set_defaults(handler=cmd_usage)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        message = f"expected a date such as 2026-11-01, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        message = f"expected an amount in USD such as 25, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"a cap is 0 (no cap) or more, got {text!r}")
    return value


def cmd_usage(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.agent.caps import caps_for, set_org_caps
    from revtops_kernel.agent.ledger_report import cap_standing, usage_lines, usage_report
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store import Database, upgrade

    db = Database.from_settings(settings)
    upgrade(db)
    org = None if args.all else (args.org or settings.org)
    changing = args.set_daily_cap is not None or args.set_monthly_cap is not None
    if (changing or args.clear_caps) and org is None:
        print("revtops usage: caps are per organization: give --org, not --all", file=sys.stderr)
        return 2
    if org is not None:
        require_known_org(db, org)
    if args.clear_caps:
        set_org_caps(db, org or "", daily_usd=None, monthly_usd=None)
    elif changing:
        with db.connect() as connection:
            current = caps_for(connection, settings, org or "")
        set_org_caps(
            db,
            org or "",
            daily_usd=_kept(args.set_daily_cap, current.daily),
            monthly_usd=_kept(args.set_monthly_cap, current.monthly),
            by="revtops usage",
        )
    if args.json:
        report = usage_report(db, settings, org=org, since=args.since, by=args.by)
        print(json.dumps(report, indent=2))
        return 0
    print(_table(usage_lines(db, org=org, since=args.since, by=args.by), args.by))
    if org is not None:
        for standing in cap_standing(db, settings, org):
            print(_cap_line(standing))
    return 0


def _kept(given: Decimal | None, current: Cap) -> Decimal | None:
    """A cap not given keeps the organization's own value (None: the setting's)."""
    from revtops_kernel.agent.caps import OWN_CAP

    if given is not None:
        return given
    return current.usd if current.source == OWN_CAP else None


def _table(lines: list[UsageLine], by: str) -> str:
    header = f"{by:<36} {'calls':>7} {'input':>11} {'cache rd':>11} {'cache wr':>11} "
    header += f"{'output':>10} {'cost USD':>11}"
    rows = [header]
    for line in lines:
        rows.append(
            f"{line.key[:36]:<36} {line.calls:>7,} {line.input_tokens:>11,} "
            f"{line.cache_read_tokens:>11,} {line.cache_creation_tokens:>11,} "
            f"{line.output_tokens:>10,} {line.cost_usd:>11,.4f}"
        )
    total = sum((line.cost_usd for line in lines), Decimal(0))
    calls = sum(line.calls for line in lines)
    rows.append(f"{'total':<36} {calls:>7,} {'':>11} {'':>11} {'':>11} {'':>10} {total:>11,.4f}")
    return "\n".join(rows)


def _cap_line(standing: CapStanding) -> str:
    name = "daily" if standing.period == "day" else "monthly"
    if standing.cap_usd <= 0:
        return f"{name} cap: none ({standing.source}); ${standing.spent_usd:,.4f} spent"
    return (
        f"{name} cap: ${standing.spent_usd:,.4f} of ${standing.cap_usd:,.2f} "
        f"({standing.source}); resets {standing.resets_at:%Y-%m-%d %H:%M} UTC"
    )
