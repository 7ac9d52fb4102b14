"""``revtops sandbox serve`` and ``revtops demo``: the providers' emulation, and a demo
organization synced from it."""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from revtops_kernel.cli import cmd_info, ctrl_c_stops, summarize_sync, sync_interrupted
from revtops_kernel.demo_record import DemoRecord, write_demo_record
from revtops_kernel.providers import CRM_PROVIDERS
from revtops_kernel.settings import Settings, load_settings
from revtops_sandbox.options import add_anchor_argument, add_cli_arguments

if TYPE_CHECKING:
    from revtops_kernel.sync import SyncResult


def register(commands: argparse._SubParsersAction) -> None:
    sandbox = commands.add_parser("sandbox", help="the local emulation of the providers' APIs")
    sandbox_commands = sandbox.add_subparsers(title="sandbox commands", metavar="SANDBOX_COMMAND")
    serve = sandbox_commands.add_parser("serve", help="serve the sandbox on 127.0.0.1")
    add_cli_arguments(serve)
    serve.set_defaults(handler=cmd_sandbox_serve)

    demo = commands.add_parser(
        "demo", help="start the sandbox, connect the default org to it and sync everything"
    )
    demo.add_argument("--scale", type=float, default=0.2, help="sandbox size (1 = a 50-rep team)")
    demo.add_argument("--seed", type=int, default=1, help="sandbox seed")
    demo.add_argument("--no-app", action="store_true", help="sync only; do not open the app")
    demo.add_argument(
        "--crm", choices=CRM_PROVIDERS, default="hubspot", help="which CRM the company uses"
    )
    demo.add_argument("--port", type=int, default=8866, help="the web app's port")
    demo.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="sync the providers one after the other (default: as `revtops sync` does)",
    )
    add_anchor_argument(demo)
    demo.set_defaults(handler=cmd_demo)


def cmd_sandbox_serve(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_sandbox import run_from_args

    run_from_args(args)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import sys

    from tqdm import tqdm

    from revtops_kernel.store import Database, upgrade
    from revtops_kernel.sync_all import SyncJob, run_syncs
    from revtops_sandbox import SandboxServer

    print(
        f"starting the sandbox (scale {args.scale}, seed {args.seed}, today {args.anchor.date()})…"
    )
    with SandboxServer(scale=args.scale, seed=args.seed, anchor=args.anchor) as sandbox:
        # One CRM: the sandbox's HubSpot and Salesforce are two views of the same company, so
        # syncing both into one organization would count every deal twice.
        connected = {
            args.crm: (
                ("REVTOPS_HUBSPOT_BASE_URL", sandbox.hubspot_base_url)
                if args.crm == "hubspot"
                else ("REVTOPS_SALESFORCE_INSTANCE_URL", sandbox.salesforce_instance_url)
            ),
            "slack": ("REVTOPS_SLACK_BASE_URL", sandbox.slack_base_url),
            "google_calendar": (
                "REVTOPS_GOOGLE_CALENDAR_BASE_URL",
                sandbox.google_calendar_base_url,
            ),
        }
        # Slack's real tier budget (50 calls a minute) would make the local demo wait minutes;
        # the sandbox enforces no limit unless asked to.
        environment: dict[str, str] = {"REVTOPS_SLACK_REQUESTS_PER_MINUTE": "6000"}
        for provider, (url_variable, url) in connected.items():
            environment[url_variable] = url
            environment[f"REVTOPS_{provider.upper()}_TOKEN"] = sandbox.token
        demo_settings = load_settings(**environment)
        db = Database.from_settings(demo_settings)
        upgrade(db)
        # The other CRM's view of the same company goes to an organization of its own, so all
        # four providers are loaded and nothing is counted twice.
        other_crm = next(crm for crm in CRM_PROVIDERS if crm != args.crm)
        other_org = f"{demo_settings.org}-{other_crm}"[:63]
        other_settings = load_settings(
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
            REVTOPS_SALESFORCE_INSTANCE_URL=sandbox.salesforce_instance_url,
            REVTOPS_SALESFORCE_TOKEN=sandbox.token,
        )
        jobs = [SyncJob(provider) for provider in connected]
        jobs.append(SyncJob(other_crm, other_org, other_settings))

        def summary(result: SyncResult) -> None:
            other = f"  (organization {other_org})" if result.organization_id == other_org else ""
            tqdm.write(summarize_sync(result) + other, file=sys.stdout)

        # As `revtops sync` runs them (revtops_kernel.sync_all): into a new store, the first
        # loads one at a time; into one synced before, side by side.
        stop = threading.Event()
        try:
            with ctrl_c_stops(stop):
                run_syncs(
                    db,
                    demo_settings,
                    jobs,
                    side_by_side=not args.one_at_a_time,
                    progress=True,
                    on_result=summary,
                    stop=stop,
                )
        except KeyboardInterrupt:
            return sync_interrupted(db)
        write_demo_record(
            demo_settings,
            DemoRecord(
                database=db.display_url,
                organization=demo_settings.org,
                other_organization=other_org,
                crm=args.crm,
                scale=args.scale,
                seed=args.seed,
                anchor=str(args.anchor.date()),
                synced_at=datetime.now(UTC).isoformat(timespec="seconds"),
            ),
        )
        db.dispose()
        cmd_info(argparse.Namespace(json=False), demo_settings)
        if args.no_app:
            return 0
        # The app (and its kernels, which inherit this environment) reach the same sandbox,
        # so "Sync now" works while it runs.
        os.environ.update(environment)
        from revtops_server.voila_app import RevtopsVoila

        print("starting the web app; open the URL printed below (Ctrl-C stops everything)")
        if demo_settings.anthropic_api_key is None:
            print("note: set ANTHROPIC_API_KEY to chat with the copilot; the rest works without it")
        RevtopsVoila.launch_instance(argv=[f"--port={args.port}", "--Voila.ip=127.0.0.1"])
    return 0
