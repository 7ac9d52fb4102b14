"""``revtops status``: the deployment at a glance.

Each scheduler and worker with its last heartbeat (stale ones marked), the Celery queue's
depth, and per organization the last sync of each integration, runs in progress and runs that
failed in the last 24 hours. ``--json`` prints the same as data; the exit code is 1 when a
service is stale or the queue cannot be read, so a cron job or a probe can alert on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revtops_kernel.scheduling.deployment import DeploymentStatus, RunLine
    from revtops_kernel.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = commands.add_parser(
        "status", help="services' heartbeats, queue depth, last syncs and failed runs"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--org", action="append", dest="orgs", help="only this organization (repeatable)"
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=24.0,
        help="failed runs started in the last HOURS (default 24)",
    )
    parser.add_argument(
        "--alive",
        choices=("scheduler", "worker"),
        help="only check that a KIND process on this host beats (a container health check): "
        "exit 0 if so, 1 if not",
    )
    parser.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.errors import UnknownOrganizationError
    from revtops_kernel.known_orgs import known_organizations
    from revtops_kernel.scheduling.deployment import deployment_status
    from revtops_kernel.store import Database, upgrade

    if args.alive:
        return _alive(settings, args.alive)
    if args.hours <= 0:
        print("revtops status: --hours must be more than 0", file=sys.stderr)
        return 2
    db = Database.from_settings(settings)
    upgrade(db)  # a store older than this version lacks service_heartbeats
    if args.orgs:
        known = known_organizations(db)
        for org in args.orgs:
            if org not in known:
                raise UnknownOrganizationError(org, known)
    status = deployment_status(db, settings, orgs=args.orgs, since=timedelta(hours=args.hours))
    healthy = not any(s.state == "stale" for s in status.services) and not (
        status.queue is not None and status.queue.error
    )
    if args.json:
        print(json.dumps(_jsonable(dataclasses.asdict(status)), indent=2))
    else:
        _print(status, args.hours)
    return 0 if healthy else 1


def _alive(settings: Settings, kind: str) -> int:
    import socket

    from revtops_kernel.scheduling.deployment import service_instances
    from revtops_kernel.store import Database

    host = socket.gethostname()
    mine = [
        s
        for s in service_instances(Database.from_settings(settings), settings)
        if s.kind == kind and s.instance.rsplit(":", 1)[0] == host
    ]
    up = [s for s in mine if s.state == "up"]
    for s in up or mine[-1:]:
        print(f"{kind} {s.instance}: {s.state}, last seen {_ago(s.seconds_since_seen)}")
    if not mine:
        print(f"no {kind} on {host} has recorded a heartbeat", file=sys.stderr)
    return 0 if up else 1


def _print(status: DeploymentStatus, hours: float) -> None:
    print(f"revtops {status.version} on {status.host}; database {status.database}")
    print("services:")
    if not status.services:
        print("  none recorded (no `revtops scheduler` or `revtops worker` has started)")
    for s in status.services:
        mark = {"up": "up", "stale": "STALE", "stopped": "stopped"}[s.state]
        detail = f", {s.detail}" if s.detail else ""
        print(
            f"  {s.kind:<9} {s.instance:<32} {mark:<7} last seen {_ago(s.seconds_since_seen)}"
            f" (since {_when(s.started_at)}, v{s.version}{detail})"
        )
    queue = status.queue
    if queue is None:
        print("queue: none (no REVTOPS_BROKER_URL: schedulers run workflows themselves)")
    elif queue.error:
        print(f"queue {queue.queue}: UNREADABLE: {queue.error}")
    else:
        print(f"queue {queue.queue}: {queue.waiting} waiting, {queue.unacked} taken by workers")
    for org in status.organizations:
        print(f"organization {org.organization_id}:")
        for p in org.integrations:
            last = p.last_run
            run = f", last run {last.status.value} {_when(last.started_at)}" if last else ""
            print(f"  {p.name:<16} {p.status:<10} last sync {_when(p.last_sync_at)}{run}")
        if not org.integrations:
            print("  no integration connected")
        for line in org.running:
            print(f"  running: {_run(line)}")
        for line in org.failed:
            print(f"  failed (last {hours:g} h): {_run(line)}")


def _run(line: RunLine) -> str:
    where = f" on {line.worker}" if line.worker else ""
    error = f": {line.error.splitlines()[0][:120]}" if line.error else ""
    return f"{line.kind} {line.name} {line.status} {_when(line.started_at)}{where}{error}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment is not None else "never"


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, str):  # StrEnum
        return value.value
    return value
