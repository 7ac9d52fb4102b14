"""Several syncs (a provider for an organization each) side by side in one process.

A re-sync mostly waits on the providers' rate limits: Google Calendar asks for every calendar's
changes with its sync token (502 calls at scale 10, at Google's per-user quota), a minute of
every re-sync whatever changed, while HubSpot, Slack and Salesforce read and write theirs. One
after the other, the waits add up; side by side, Calendar's minute hides the others' work.

Threads, not processes: DuckDB has one writing process per file, and in this one its units of
work take turns on one held connection (``store.database``: the file's lock and
``Database.writer_held``, held here for the whole run so every thread uses it); the GIL is let
go while a sync waits on a provider, its rate budget or the database driver. What makes
concurrent syncs safe is the sync's own: one sync per provider and organization at a time
(``store.locks.exclusive_sync``), resolution's locks (a sync's batches hold it shared; a
resolution holds it exclusively), the rollups' refreshes taking turns.

**The policy** (``run_syncs``' defaults; bench/results/parallel-2026-12-07f.txt, measured at load
5-12 on 2 cores): incremental syncs run side by side, first loads (no cursor yet, or a full
refresh) one at a time in one more thread beside them.

- Re-syncs after 1% changes, four providers: scale 10 PostgreSQL 161.5 and 163.6 s side by side
  against 428.1 s one at a time (server CPU 32-37 s against 62 s: the organization's rollups are
  refreshed once for the syncs that end together, not after each), peak RSS 407-450 MiB; scale 10
  DuckDB, HubSpot, Slack and Calendar, 89.9 and 106.2 s against 122.2 and 212.1 s (peak RSS
  713-714 MiB against 678-686, client CPU 50-52 s against 40-48); scale 1
  PostgreSQL 14.5-19.8 s against 32.6 s, DuckDB 23.9-50.2 s against 54.0 s (DuckDB's units of
  work take turns on its one writer: only the fetching and normalizing overlap).
- First loads side by side at scale 1: PostgreSQL 774 s against 336 s one at a time, its server
  CPU 389 s against 63 s (each sync's batches resolve and refresh statistics against tables the
  others are filling); DuckDB 122 s against 204-210 s at the same peak RSS (813 MiB), but a
  scale-10 DuckDB first load alone already peaks at 1.0-1.2 GiB (goal < 1 GiB), and side by side
  the loads' batches add up. One at a time is the safe choice on both backends.

**Stopping.** A signal reaches the main thread only, and a thread cannot be interrupted: on
Ctrl-C the main thread sets a stop flag that every sync looks at between pages and between its
steps (``run_sync``'s ``stop``: it raises ``SyncStopped`` there, leaving its run 'running'), waits
for them (a second Ctrl-C stops waiting), then raises ``KeyboardInterrupt`` for the caller to
record the runs as interrupted, as after a Ctrl-C in a lone sync. A sync inside a long step (one
statement, a provider's Retry-After) stops when the step returns: a second Ctrl-C leaves it
(daemon threads end with the process; the next sync reaps its run, its cursors safe).

**Progress.** Side by side, each sync draws the bar of the stream it reads on a line of its own
(tqdm's ``position``: the job's place among those running side by side), cleared when the stream
ends; a sync's summary is printed above the bars (``tqdm.write``) as it ends. One bar per stream
left on screen, as one sync at a time draws them, would interleave into unreadable lines.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from typing import Protocol

from revtops_kernel.run_status import SyncRunStatus
from revtops_kernel.settings import Settings
from revtops_kernel.store import bookkeeping
from revtops_kernel.store.bookkeeping import RunCounts
from revtops_kernel.store.database import Database
from revtops_kernel.sync import SyncResult, run_sync

log = logging.getLogger(__name__)

# After Ctrl-C, how often the main thread looks whether the stopped syncs have ended (short:
# each join is a wait a second Ctrl-C interrupts).
JOIN_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class SyncJob:
    """One sync to run: ``provider`` for ``org`` (None: the settings' organization), with its own
    ``settings`` when given (``revtops demo`` syncs its second organization with other tokens)."""

    provider: str
    org: str | None = None
    settings: Settings | None = None
    full_refresh: bool = False
    streams: tuple[str, ...] | None = None


class SyncRunner(Protocol):
    """``run_sync``'s signature, as ``run_syncs`` calls it (a benchmark wraps it to time it)."""

    def __call__(
        self,
        db: Database,
        settings: Settings,
        provider: str,
        *,
        org: str | None = ...,
        full_refresh: bool = ...,
        streams: tuple[str, ...] | None = ...,
        progress: bool = ...,
        progress_line: int | None = ...,
        stop: threading.Event | None = ...,
    ) -> SyncResult: ...


def run_syncs(
    db: Database,
    settings: Settings,
    jobs: Sequence[SyncJob],
    *,
    side_by_side: bool = True,
    first_loads_side_by_side: bool = False,
    progress: bool = False,
    on_result: Callable[[SyncResult], None] | None = None,
    runner: SyncRunner = run_sync,
    stop: threading.Event | None = None,
) -> list[SyncResult]:
    """Run ``jobs`` and return their results in the order given; ``on_result`` gets each as it
    ends (from the sync's thread, one at a time).

    ``side_by_side=False`` runs them one after the other in this thread, as a lone sync runs.
    Otherwise incremental syncs each run in a thread of their own and first loads one after
    the other in one more (the module's policy), or each in its own too with
    ``first_loads_side_by_side``. A provider that fails, or a sync that raises, does not stop
    the others: the failure is its result (a sync that raised records no run). Ctrl-C stops
    them all at their next page or step and raises ``KeyboardInterrupt`` once they have; so
    does ``stop`` once set (a caller's Ctrl-C handler sets it: ``cli``), one at a time too.
    """
    stop = stop if stop is not None else threading.Event()
    if not side_by_side or len(jobs) <= 1:
        return _one_at_a_time(db, settings, jobs, progress, on_result, runner, stop)
    lanes = _lanes(db, settings, jobs, first_loads_side_by_side=first_loads_side_by_side)
    results: list[SyncResult | None] = [None] * len(jobs)
    reporting = threading.Lock()

    def report(result: SyncResult) -> None:
        if on_result is None:
            return
        with reporting:
            on_result(result)

    def run_lane(line: int, lane: list[int]) -> None:
        for index in lane:
            if stop.is_set():
                return
            job = jobs[index]
            try:
                line_drawn = line if progress else None
                result = _run_job(
                    runner, db, settings, job, progress, progress_line=line_drawn, stop=stop
                )
            except KeyboardInterrupt:  # SyncStopped: stopped, not failed
                return
            except Exception as exc:  # the others go on; this one is a failure
                log.exception("sync %s for %s raised", job.provider, job.org or settings.org)
                result = _raised(job, settings, exc)
            results[index] = result
            report(result)

    # The engine before the threads (it is made on first use), and one held DuckDB connection
    # for all of them (run_sync's own hold nests in this one).
    db.engine  # noqa: B018
    with db.writer_held() if db.is_duckdb else nullcontext():
        threads = [
            threading.Thread(target=run_lane, args=(line, lane), name=f"sync-{line}", daemon=True)
            for line, lane in enumerate(lanes)
        ]
        for thread in threads:
            thread.start()
        try:
            _join(threads)
        except KeyboardInterrupt:
            if stop.is_set():  # the second Ctrl-C: the caller's handler set stop on the first
                raise
            stop.set()
            _stop_waiting_on_second_interrupt(threads)
            raise
    if stop.is_set():
        raise KeyboardInterrupt
    return [r if r is not None else _never_ran(jobs[i], settings) for i, r in enumerate(results)]


def _run_job(
    runner: SyncRunner,
    db: Database,
    settings: Settings,
    job: SyncJob,
    progress: bool,
    *,
    progress_line: int | None = None,
    stop: threading.Event | None = None,
) -> SyncResult:
    """``job`` through ``runner``, with its own settings when it has them."""
    return runner(
        db,
        job.settings or settings,
        job.provider,
        org=job.org,
        full_refresh=job.full_refresh,
        streams=job.streams,
        progress=progress,
        progress_line=progress_line,
        stop=stop,
    )


def _one_at_a_time(
    db: Database,
    settings: Settings,
    jobs: Sequence[SyncJob],
    progress: bool,
    on_result: Callable[[SyncResult], None] | None,
    runner: SyncRunner,
    stop: threading.Event,
) -> list[SyncResult]:
    results = []
    for job in jobs:
        if stop.is_set():
            raise KeyboardInterrupt
        result = _run_job(runner, db, settings, job, progress, stop=stop)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


def _lanes(
    db: Database, settings: Settings, jobs: Sequence[SyncJob], *, first_loads_side_by_side: bool
) -> list[list[int]]:
    """The jobs' indexes by thread: each incremental sync alone; the first loads together, in
    the order given (first: the line its bars use is the top one)."""
    if first_loads_side_by_side:
        return [[index] for index in range(len(jobs))]
    with db.connect() as conn:
        first = [
            job.full_refresh
            or not bookkeeping.has_cursors(
                conn, job.org or (job.settings or settings).org, job.provider
            )
            for job in jobs
        ]
    loads = [index for index, is_first in enumerate(first) if is_first]
    return ([loads] if loads else []) + [[i] for i, is_first in enumerate(first) if not is_first]


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        while thread.is_alive():
            thread.join(JOIN_POLL_SECONDS)


def _stop_waiting_on_second_interrupt(threads: list[threading.Thread]) -> None:
    """Wait for the stopped syncs to end (at their next page or step); a second Ctrl-C leaves
    them (daemon threads: they end with the process)."""
    running = [t for t in threads if t.is_alive()]
    if not running:
        return
    log.warning("stopping %d sync(s) at their next page (Ctrl-C again to leave now)", len(running))
    with suppress(KeyboardInterrupt):
        _join(running)


def _raised(job: SyncJob, settings: Settings, exc: Exception) -> SyncResult:
    org = job.org or (job.settings or settings).org
    return SyncResult(
        uuid.uuid4(), org, job.provider, SyncRunStatus.FAILED, RunCounts(), 0.0,
        error=f"{type(exc).__name__}: {exc}",
    )  # fmt: skip


def _never_ran(job: SyncJob, settings: Settings) -> SyncResult:
    """A job whose thread ended without a result (a BaseException other than Ctrl-C's)."""
    org = job.org or (job.settings or settings).org
    return SyncResult(
        uuid.uuid4(), org, job.provider, SyncRunStatus.FAILED, RunCounts(), 0.0,
        error="the sync ended without a result",
    )  # fmt: skip
