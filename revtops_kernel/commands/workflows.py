"""``revtops workflows add|list|set|run|remove|history|enable|disable``: manage scheduled
notebooks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revtops_kernel.scheduling import RunInfo
    from revtops_kernel.settings import Settings
    from revtops_kernel.store import Database


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = commands.add_parser("workflows", help="scheduled notebooks (papermill)")
    parser.add_argument("--org", help="organization id (default: REVTOPS_ORG)")
    sub = parser.add_subparsers(title="workflows commands", metavar="WORKFLOWS_COMMAND")

    add = sub.add_parser("add", help="store a workflow: a notebook on a cron schedule")
    add.add_argument(
        "name", help="unique name within the organization: lowercase letters, digits, '-', '_'"
    )
    add.add_argument(
        "notebook",
        help="a stock notebook's name (sync, pipeline_digest; `revtops notebooks list`) "
        "or the path of an .ipynb (stored absolute)",
    )
    add.add_argument(
        "--cron",
        required=True,
        help='five-field cron expression, e.g. "0 7 * * 1-5" (or @hourly, @daily, @weekly…)',
    )
    add.add_argument("--timezone", default="UTC", help="IANA zone the cron is read in")
    add.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter the notebook declares (VALUE read as JSON when it parses: 3, true, "
        '"x"; lists and objects are refused)',
    )
    add.add_argument("--owner", help="who owns it")
    add.add_argument("--timeout", type=float, help="run time limit in seconds")
    add.add_argument("--disabled", action="store_true", help="store it paused")
    add.set_defaults(handler=cmd_add)

    listing = sub.add_parser("list", help="workflows, their schedules and next due time")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)

    run = sub.add_parser("run", help="run a workflow now (here, or on the workers)")
    run.add_argument("name")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter for this run",
    )
    run.add_argument(
        "--enqueue",
        action="store_true",
        help="hand it to the Celery workers (needs REVTOPS_BROKER_URL)",
    )
    run.set_defaults(handler=cmd_run)

    remove = sub.add_parser("remove", help="delete a workflow and its run history")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_remove)

    history = sub.add_parser("history", help="a workflow's latest runs, newest first")
    history.add_argument("name")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(handler=cmd_history)

    change = sub.add_parser(
        "set",
        help="change a stored workflow: parameters (checked as on add), schedule, state",
    )
    change.add_argument("name")
    change.add_argument(
        "assignments",
        nargs="*",
        metavar="KEY=VALUE",
        help="a parameter the notebook declares (VALUE read as JSON when it parses, as on add); "
        "the other stored parameters stay",
    )
    change.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the same as a KEY=VALUE argument (also after the options)",
    )
    change.add_argument(
        "--unset",
        action="append",
        default=[],
        metavar="KEY",
        help="drop a stored parameter: the notebook's default applies again",
    )
    change.add_argument("--cron", help="a new five-field cron expression (or @daily…)")
    change.add_argument("--timezone", help="a new IANA zone the cron is read in")
    change.add_argument("--owner", help="a new owner")
    change.add_argument("--timeout", type=float, help="a new run time limit in seconds")
    state = change.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    change.set_defaults(handler=cmd_set, enabled=None)

    for verb, enabled in (("enable", True), ("disable", False)):
        toggle = sub.add_parser(verb, help=f"{verb} a workflow's schedule")
        toggle.add_argument("name")
        toggle.set_defaults(handler=cmd_toggle, enabled=enabled)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["n=3", "who=ann"]`` → ``{"n": 3, "who": "ann"}``; ``ValueError`` without ``=``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def _store(settings: Settings) -> Database:
    from revtops_kernel.store import Database, upgrade

    db = Database.from_settings(settings)
    upgrade(db)
    return db


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.scheduling import Schedule, WorkflowLimits, add_workflow

    try:
        params = parse_params(args.param)
    except ValueError as exc:
        print(f"revtops workflows add: {exc}", file=sys.stderr)
        return 2
    workflow = add_workflow(
        _store(settings),
        args.name,
        args.notebook,
        args.cron,
        org=args.org or settings.org,
        timezone=args.timezone,
        parameters=params,
        enabled=not args.disabled,
        owner=args.owner,
        timeout_seconds=args.timeout,
        limits=WorkflowLimits.from_settings(settings),
    )
    due = Schedule(workflow.cron, workflow.timezone).next_after(workflow.created_at)
    print(f"added {workflow.name}: {workflow.notebook}, {workflow.cron} ({workflow.timezone})")
    print(f"next run: {_iso(due)}" if workflow.enabled else "paused (enable to schedule)")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.scheduling import Schedule, list_workflows
    from revtops_kernel.timeutil import utcnow

    now = utcnow()
    rows = []
    for wf in list_workflows(_store(settings), org=args.org or settings.org):
        rows.append(
            {
                "name": wf.name,
                "notebook": wf.notebook,
                "cron": wf.cron,
                "timezone": wf.timezone,
                "enabled": wf.enabled,
                "owner": wf.owner,
                "parameters": wf.parameters,
                "next_run": _iso(Schedule(wf.cron, wf.timezone).next_after(now))
                if wf.enabled
                else None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no workflows; add one with `revtops workflows add NAME NOTEBOOK --cron …`")
        return 0
    for row in rows:
        state = f"next {row['next_run']}" if row["enabled"] else "paused"
        print(f"{row['name']}  {row['cron']} ({row['timezone']})  {state}  {row['notebook']}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.scheduling import run_now

    try:
        params = parse_params(args.param)
    except ValueError as exc:
        print(f"revtops workflows run: {exc}", file=sys.stderr)
        return 2
    run = run_now(
        _store(settings),
        settings,
        args.name,
        org=args.org or settings.org,
        parameters=params,
        enqueue=args.enqueue,
    )
    if args.enqueue:
        print(f"queued run {run.id} for the workers")
        return 0
    print(_describe(run))
    return 0 if run.status == "succeeded" else 1


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.scheduling import remove_workflow

    removed = remove_workflow(_store(settings), args.name, org=args.org or settings.org)
    print(f"removed {args.name} and {removed} run(s) of history")
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.scheduling import run_history

    found = run_history(_store(settings), args.name, org=args.org or settings.org, limit=args.limit)
    if args.json:
        print(json.dumps([_as_json(run) for run in found], indent=2))
        return 0
    if not found:
        print(f"{args.name} has not run yet")
    for run in found:
        print(_describe(run))
    return 0


def cmd_set(args: argparse.Namespace, settings: Settings) -> int:
    """Merge the given parameters into the stored ones and save them through
    ``update_workflow``, which checks names and values against the notebook as ``add`` does."""
    from revtops_kernel.scheduling import WorkflowLimits, get_workflow, update_workflow

    try:
        given = parse_params([*args.assignments, *args.param])
    except ValueError as exc:
        print(f"revtops workflows set: {exc}", file=sys.stderr)
        return 2
    both = sorted(set(given) & set(args.unset))
    if both:
        print(f"revtops workflows set: {', '.join(both)} both set and unset", file=sys.stderr)
        return 2
    db = _store(settings)
    org = args.org or settings.org
    current = get_workflow(db, args.name, org=org)
    missing = sorted(set(args.unset) - set(current.parameters or {}))
    if missing:
        stored = ", ".join(sorted(current.parameters or {})) or "none"
        print(
            f"revtops workflows set: {args.name} has no stored {', '.join(missing)} "
            f"(stored: {stored})",
            file=sys.stderr,
        )
        return 2
    changes: dict[str, Any] = {}
    if given or args.unset:
        merged = {**(current.parameters or {}), **given}
        changes["parameters"] = {k: v for k, v in merged.items() if k not in args.unset}
    for field, value in (
        ("cron", args.cron),
        ("timezone", args.timezone),
        ("owner", args.owner),
        ("timeout_seconds", args.timeout),
        ("enabled", args.enabled),
    ):
        if value is not None:
            changes[field] = value
    if not changes:
        print(
            "revtops workflows set: nothing to change (give KEY=VALUE, --unset KEY, --cron, "
            "--timezone, --owner, --timeout, --enable or --disable)",
            file=sys.stderr,
        )
        return 2
    wf = update_workflow(
        db, args.name, org=org, limits=WorkflowLimits.from_settings(settings), **changes
    )
    shown = json.dumps(wf.parameters or {}, ensure_ascii=False)
    state = "enabled" if wf.enabled else "paused"
    print(f"updated {wf.name}: {wf.cron} ({wf.timezone}), {state}; parameters {shown}")
    return 0


def cmd_toggle(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.scheduling import update_workflow

    wf = update_workflow(
        _store(settings), args.name, org=args.org or settings.org, enabled=args.enabled
    )
    print(f"{wf.name} {'enabled' if wf.enabled else 'paused'}")
    return 0


def _describe(run: RunInfo) -> str:
    took = f" in {run.duration_seconds:.1f}s" if run.duration_seconds is not None else ""
    line = f"{_iso(run.scheduled_for)}  {run.status}{took}  ({run.trigger}, run {run.id})"
    if run.output_path:
        line += f"\n  output: {run.output_path}"
    if run.error:
        line += "\n  error: " + run.error.replace("\n", "\n    ")
    return line


def _as_json(run: RunInfo) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(run)
    for key, value in data.items():
        if hasattr(value, "isoformat"):
            data[key] = _iso(value)
        elif key in ("id", "workflow_id"):
            data[key] = str(value)
    return data


def _iso(value: Any) -> str:
    from revtops_kernel.timeutil import iso_z

    return iso_z(value)
