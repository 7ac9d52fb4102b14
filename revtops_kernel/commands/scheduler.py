"""``revtops scheduler``: run due workflows until SIGTERM or Ctrl-C.

Locally (default) each run executes in its own child process, at most
``REVTOPS_SCHEDULER_WORKERS`` at once; with ``REVTOPS_BROKER_URL`` runs are enqueued for
``revtops worker``. On SIGTERM/SIGINT it stops claiming, lets runs in progress finish for
``--grace`` seconds, then stops them and marks them ``interrupted``: no run is left
``running``. A second signal skips the grace period.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from revtops_kernel.settings import Settings

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    parser = commands.add_parser("scheduler", help="run due workflows (until SIGTERM/Ctrl-C)")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds runs in progress may finish after a stop signal (default 30)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local runs at once (default: REVTOPS_SCHEDULER_WORKERS)",
    )
    parser.add_argument(
        "--once", action="store_true", help="one pass: start what is due, wait for it, exit"
    )
    parser.set_defaults(handler=cmd_scheduler)


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from revtops_kernel.scheduling.scheduler import Dispatcher, LocalDispatcher, Scheduler
    from revtops_kernel.store import Database, upgrade

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("revtops_kernel.scheduling").setLevel(logging.INFO)
    db = Database.from_settings(settings)
    upgrade(db)
    dispatcher: Dispatcher
    queued_stale_after: float | None = None
    if settings.broker_url:
        from revtops_kernel.scheduling.celery_app import VISIBILITY_MARGIN_SECONDS, CeleryDispatcher

        dispatcher = CeleryDispatcher(settings)
        # A queued message may wait for a free worker; re-send only what nobody took for as
        # long as Redis would take to redeliver it anyway.
        queued_stale_after = settings.run_timeout + VISIBILITY_MARGIN_SECONDS
        where = f"Celery queue {settings.celery_queue!r}"
    else:
        workers = args.workers or settings.scheduler_workers
        # One pass has no next run to keep a spare runner warm for.
        dispatcher = LocalDispatcher(db, settings, workers, spares=0 if args.once else None)
        where = f"{workers} local worker process(es)"
    scheduler = Scheduler(db, settings, dispatcher, queued_stale_after=queued_stale_after)
    print(f"revtops scheduler {scheduler.name}: {db.display_url}, runs on {where}", flush=True)
    if args.once:
        started = scheduler.tick()
        print(f"started {len(started)} run(s)", flush=True)
        dispatcher.shutdown(None)  # each run is bounded by its own time limit
        return 0
    stop = threading.Event()
    grace = {"seconds": args.grace}

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            grace["seconds"] = 0.0  # a second signal: stop runs in progress now
            log.warning("second stop signal: stopping runs in progress now")
        else:
            log.info("signal %s: stopping after runs in progress (grace %g s)", signum, args.grace)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    from revtops_kernel.scheduling.deployment import ServiceHeart

    heart = ServiceHeart(settings, "scheduler", detail=f"runs on {where}")  # revtops status
    heart.start()
    try:
        scheduler.serve(stop, grace=lambda: grace["seconds"])
    finally:
        heart.stop()
    return 0
