"""``revtops app``: the web app (Voila + sign-in + REST API) on this machine."""

from __future__ import annotations

import argparse

from revtops_kernel.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:
    app = commands.add_parser("app", help="serve the web app (notebooks/app.ipynb with Voila)")
    app.add_argument("--port", type=int, default=8866, help="port (default: %(default)s)")
    app.add_argument("--ip", default="127.0.0.1", help="interface (default: loopback)")
    app.add_argument("--pool-size", type=int, default=2, help="preheated kernels kept ready")
    app.add_argument("--no-browser", action="store_true", help="do not open a browser")
    app.set_defaults(handler=cmd_app)


def cmd_app(args: argparse.Namespace, settings: Settings) -> int:
    import sys

    from revtops_server.voila_app import RevtopsVoila

    from revtops_kernel.demo_record import demo_without_sandbox_hint
    from revtops_kernel.store.database import Database

    hint = demo_without_sandbox_hint(settings, Database.from_settings(settings).display_url)
    if hint is not None:
        print(f"revtops app: note: {hint}", file=sys.stderr)

    argv = [
        f"--port={args.port}",
        f"--Voila.ip={args.ip}",
        f"--VoilaConfiguration.default_pool_size={args.pool_size}",
    ]
    if args.no_browser:
        argv.append("--no-browser")
    RevtopsVoila.launch_instance(argv=argv)
    return 0
