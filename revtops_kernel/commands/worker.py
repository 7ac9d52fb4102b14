"""``revtops worker``: a Celery worker executing the runs the scheduler enqueues.

Needs ``REVTOPS_BROKER_URL=redis://…``. Each run still executes in its own child process
(papermill and the kernel never run inside the Celery pool process), with the same time limit,
heartbeat and final status as local runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = commands.add_parser("worker", help="a Celery worker for scheduled runs")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="runs at once (default: REVTOPS_SCHEDULER_WORKERS)",
    )
    parser.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    parser.add_argument("--hostname", help="Celery node name (default: revtops@<host>:<pid>)")
    parser.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import socket

    from revtops_kernel.scheduling.celery_app import make_app
    from revtops_kernel.store import Database, upgrade

    if not settings.broker_url:
        print(
            "revtops worker: set REVTOPS_BROKER_URL=redis://host:6379/0 (the scheduler must "
            "use the same broker)",
            file=sys.stderr,
        )
        return 2
    upgrade(Database.from_settings(settings))
    app = make_app(settings)
    concurrency = args.concurrency or settings.scheduler_workers
    hostname = args.hostname or f"revtops-{os.getpid()}@{socket.gethostname()}"
    _beat_while_ready(settings, f"Celery queue {settings.celery_queue}, concurrency {concurrency}")
    app.worker_main(
        [
            "worker",
            f"--loglevel={args.loglevel}",
            f"--concurrency={concurrency}",
            f"--queues={settings.celery_queue}",
            f"--hostname={hostname}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def _beat_while_ready(settings: Settings, detail: str) -> None:
    """Record a heartbeat (``revtops status``) from the moment the worker consumes until it
    shuts down; the thread lives in the main process, never in the forked pool."""
    from celery.signals import worker_ready, worker_shutdown

    from revtops_kernel.scheduling.deployment import ServiceHeart

    heart = ServiceHeart(settings, "worker", detail=detail)

    def _ready(**_: object) -> None:
        heart.start()

    def _shutdown(**_: object) -> None:
        if heart.is_alive():
            heart.stop()

    # weak=False: the receivers are closures that nothing else keeps alive.
    worker_ready.connect(_ready, weak=False)
    worker_shutdown.connect(_shutdown, weak=False)
