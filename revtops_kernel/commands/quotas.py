"""``revtops quotas import FILE.csv`` and ``revtops quotas list``: reps' quotas per period.

The file's format is in ``revtops_kernel.intelligence.quotas``. A bad file exits 2 with every
problem listed (line and column) and stores nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings
    from revtops_kernel.store.database import Database


def register(commands: argparse._SubParsersAction) -> None:
    quotas = commands.add_parser("quotas", help="import and list reps' quotas")
    quota_commands = quotas.add_subparsers(
        title="quotas commands", metavar="QUOTAS_COMMAND", required=True
    )
    loaded = quota_commands.add_parser(
        "import",
        help="import quotas from a CSV file (all or nothing)",
        description="Columns: owner_email, amount, quarter (2026-Q4) or period_start and "
        "period_end (YYYY-MM-DD), team (optional). Importing a quota again (same owner and "
        "period start) updates it.",
    )
    loaded.add_argument("file", type=Path, help="the CSV file")
    loaded.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    loaded.add_argument(
        "--replace",
        action="store_true",
        help="delete stored quotas that overlap the file's periods for the same reps",
    )
    loaded.set_defaults(handler=cmd_quotas_import)

    listed = quota_commands.add_parser("list", help="quotas by period and rep")
    listed.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    listed.add_argument("--quarter", help="only quotas overlapping this quarter, e.g. 2026-Q4")
    listed.add_argument("--json", action="store_true", help="print JSON records")
    listed.set_defaults(handler=cmd_quotas_list)


def _open(args: argparse.Namespace, settings: Settings) -> tuple[Database, str]:
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store.database import Database

    db = Database.from_settings(settings)
    org = args.org or settings.org
    require_known_org(db, org)
    return db, org


def cmd_quotas_import(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.errors import QuotaImportError
    from revtops_kernel.intelligence.quotas import import_quotas

    db, org = _open(args, settings)
    try:
        result = import_quotas(db, org, args.file, source=str(args.file), replace=args.replace)
    except QuotaImportError as exc:
        print(f"revtops: {exc}", file=sys.stderr)
        return 2
    replaced = f", {result.replaced} replaced" if result.replaced else ""
    print(
        f"{result.imported} quotas imported into {org} ({result.inserted} new, "
        f"{result.updated} updated{replaced})"
    )
    return 0


def cmd_quotas_list(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.intelligence.quotas import list_quotas, quarter_bounds

    start = end = None
    if args.quarter:
        try:
            start, end = quarter_bounds(args.quarter)
        except ValueError as exc:
            print(f"revtops: --quarter: {exc}", file=sys.stderr)
            return 2
    db, org = _open(args, settings)
    quotas = list_quotas(db, org, start=start, end=end)
    if args.json:
        records = [
            {
                "owner_email": q.owner_email,
                "owner": q.owner,
                "team": q.team,
                "period_start": q.period_start.isoformat(),
                "period_end": q.period_end.isoformat(),
                "amount": str(q.amount),
            }
            for q in quotas
        ]
        print(json.dumps(records, ensure_ascii=False))
        return 0
    if not quotas:
        print(f"no quotas in organization {org}" + (f" for {args.quarter}" if args.quarter else ""))
        return 0
    for q in quotas:
        who = f"{q.owner} <{q.owner_email}>" if q.owner else q.owner_email
        team = q.team or "-"
        print(f"{q.period_start}..{q.period_end}  {team:<14} {q.amount:>16,.2f}  {who}")
    print(f"({len(quotas)} quotas in organization {org})")
    return 0
