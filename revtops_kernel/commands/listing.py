"""``revtops conversations list`` and ``revtops artifacts list``: the ids ``revtops export`` takes.

Newest first, one line each (id, when in UTC, counts, title), or ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings
    from revtops_kernel.store.database import Database

ARTIFACT_KINDS = ("chart", "table", "report", "dashboard")


def register(commands: argparse._SubParsersAction) -> None:
    conversations = commands.add_parser("conversations", help="list the copilot's conversations")
    conversation_commands = conversations.add_subparsers(
        title="conversations commands", metavar="CONVERSATIONS_COMMAND", required=True
    )
    listed = conversation_commands.add_parser("list", help="newest first, with their ids")
    _common(listed)
    listed.set_defaults(handler=cmd_conversations_list)

    artifacts = commands.add_parser("artifacts", help="list saved charts, tables and reports")
    artifact_commands = artifacts.add_subparsers(
        title="artifacts commands", metavar="ARTIFACTS_COMMAND", required=True
    )
    listed = artifact_commands.add_parser("list", help="newest first, with their ids")
    _common(listed)
    listed.add_argument("--kind", choices=ARTIFACT_KINDS, help="only artifacts of this kind")
    listed.set_defaults(handler=cmd_artifacts_list)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    parser.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON records")


def _open(args: argparse.Namespace, settings: Settings) -> tuple[Database, str] | None:
    from revtops_kernel.known_orgs import require_known_org
    from revtops_kernel.store.database import Database

    if args.limit < 1:
        print("revtops: --limit must be at least 1", file=sys.stderr)
        return None
    db = Database.from_settings(settings)
    org = args.org or settings.org
    require_known_org(db, org)
    return db, org


def cmd_conversations_list(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.agent.conversations import list_conversations

    opened = _open(args, settings)
    if opened is None:
        return 2
    db, org = opened
    summaries = list_conversations(db, org=org)
    rows = [
        {
            "id": str(c.id),
            "updated_at": _when(c.updated_at),
            "messages": c.message_count,
            "title": c.title,
        }
        for c in summaries[: args.limit]
    ]
    _print(args, rows, len(summaries), "conversations", org, ("messages", "{:>4} messages"))
    return 0


def cmd_artifacts_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import func, select

    from revtops_kernel.store.schema import metadata

    opened = _open(args, settings)
    if opened is None:
        return 2
    db, org = opened
    table = metadata.tables["artifacts"]
    where = [table.c.organization_id == org]
    if args.kind:
        where.append(table.c.kind == args.kind)
    query = (
        select(table.c.id, table.c.kind, table.c.title, table.c.created_at, table.c.conversation_id)
        .where(*where)
        .order_by(table.c.created_at.desc(), table.c.id)
        .limit(args.limit)
    )
    with db.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        found = conn.execute(query).all()
    rows = [
        {
            "id": str(row.id),
            "created_at": _when(row.created_at),
            "kind": row.kind,
            "title": row.title,
            "conversation_id": str(row.conversation_id) if row.conversation_id else None,
        }
        for row in found
    ]
    _print(args, rows, int(total), "artifacts", org, ("kind", "{:<9}"))
    return 0


def _when(value: datetime) -> str:
    """UTC to the minute: enough to tell rows apart by eye, the id tells them apart for sure."""
    from revtops_kernel.timeutil import to_utc

    return to_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _print(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    total: int,
    what: str,
    org: str,
    middle: tuple[str, str],
) -> None:
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        print(f"no {what} in organization {org}")
        return
    key, template = middle
    for row in rows:
        print(f"{row['id']}  {row[list(row)[1]]}  {template.format(row[key])}  {row['title']}")
    more = f"; the newest {len(rows)} shown (--limit)" if total > len(rows) else ""
    print(f"({total:,} {what} in organization {org}{more})")
