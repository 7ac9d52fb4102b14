"""connector → normalizer → store, one page at a time, each page's cursor committed with its rows.

``run_sync`` reads like its recipe: record the run, build the connector, then for every stream
read pages from the cursor it stopped at, normalize them (bad records go to quarantine), and
write rows, quarantine and the new cursor in one transaction. A crash at any point leaves the
store at a page boundary; the next run resumes from the last committed cursor and re-reads at
most one page, which the upsert turns into a no-op.

Providers: HubSpot, Salesforce, Slack and Google Calendar, each a ``ProviderSpec`` in
``revtops_kernel.registry``. Credentials are
the org's Nango connection when ``integrations`` records one, else the token from settings.
After every run, identity resolution (``revtops_kernel.resolve``) links the org's Slack and
Calendar rows to contacts, accounts, owners and deals: incrementally, over the rows written
since the last resolution. The planner statistics of the tables a run writes are refreshed
after every batch that brings a table's written rows past a share of it, so resolution and the
queries after it never plan from none (``store.statistics``).
"""

from __future__ import annotations

import functools
import gc
import logging
import operator
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import JSON, Connection, select
from tqdm import tqdm

from revtops_kernel.connectors.base import Connector, Page
from revtops_kernel.connectors.credentials import NangoConnection, token_source
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.errors import RevtopsError, SyncBusyError
from revtops_kernel.normalize.base import (
    NormalizeContext,
    NormalizedPage,
    TableTuples,
    normalize_page,
)
from revtops_kernel.providers import (
    ACTIVITY_PROVIDERS,
    ALL_PROVIDERS,
    provider_info,
    settings_token,
)
from revtops_kernel.registry import ProviderSpec, provider_spec
from revtops_kernel.resolve import DUCKDB_BATCHES, BatchLookups, BatchResolution, resolve_batch
from revtops_kernel.run_status import SyncRunStatus
from revtops_kernel.settings import Settings
from revtops_kernel.store import bookkeeping
from revtops_kernel.store.bookkeeping import QuarantineEntry, RunCounts
from revtops_kernel.store.database import Database
from revtops_kernel.store.deal_states import refresh_after_sync
from revtops_kernel.store.locks import exclusive_sync, resolution_shared
from revtops_kernel.store.meeting_accounts import (
    mark_pending as mark_meeting_accounts_pending,
)
from revtops_kernel.store.meeting_accounts import (
    refresh_after_sync as refresh_meeting_accounts_after_sync,
)
from revtops_kernel.store.retry import RetryPolicy, in_transaction
from revtops_kernel.store.risk_facts import mark_pending as mark_risk_facts_pending
from revtops_kernel.store.risk_facts import refresh_after_sync as refresh_risk_facts_after_sync
from revtops_kernel.store.schema import metadata
from revtops_kernel.store.statistics import BATCH_SHARE, REFRESH_SHARE, StatisticsRefresh
from revtops_kernel.store.upsert import _dump_json as upsert_json_text
from revtops_kernel.store.upsert import upsert
from revtops_kernel.timeutil import utcnow

if TYPE_CHECKING:
    from revtops_kernel.resolve import ResolveReport

log = logging.getLogger(__name__)

# Commit a stream's rows (and move its cursor) after this many records or seconds. Each
# commit on DuckDB opens the file (replaying its write-ahead log) and commits: ~0.2 s, a
# seventh of a sync's CPU at 10,000 records a batch (bench/README.md); 25,000 halves that for
# ~100 MiB more held in memory, and the time bound keeps a slow provider's batches small.
COMMIT_EVERY_RECORDS = 25_000
COMMIT_EVERY_SECONDS = 5.0
# The young generation's collection threshold while streams are read (CPython's default: 700
# allocations). A page decodes into tens of thousands of dicts and lists and a batch holds
# 25,000 records' rows, so at 700 the cyclic collector ran thousands of times a batch, each
# pass over the young objects and often over the batch too: 70% of decoding a page went to it
# (orjson.loads of scale 1's pages: 0.68 s, 0.21 s without collections), a quarter of the
# sync's CPU. 10,000 kept most of the gain (scale 1: 6.6 -> 5.2 s of CPU) for ~25 MiB more
# peak RSS; 100,000 saved no more and held 150 MiB.
SYNC_GC_THRESHOLD = 10_000
# The middle generation's (young collections between two of its own; CPython's default: 10).
# What a sync allocates mostly lives until its batch commits, so each middle collection walked
# the ~100,000 objects ten young collections had just promoted, and set off the full ones:
# scale 1, replayed offline, 0.6-0.9 s of collections at 10, 0.3 s at 100 (no full one), peak
# RSS the same.
SYNC_GC_MIDDLE_THRESHOLD = 100


def configured_providers(
    settings: Settings, db: Database | None = None, org: str | None = None
) -> tuple[str, ...]:
    """The providers ``sync --provider all`` runs: a token in settings, or a Nango connection."""
    connected: set[str] = set()
    if db is not None and settings.nango_secret_key is not None:
        integrations = metadata.tables["integrations"]
        with db.connect() as conn:
            connected = set(
                conn.execute(
                    select(integrations.c.provider).where(
                        integrations.c.organization_id == (org or settings.org),
                        integrations.c.nango_connection_id.is_not(None),
                    )
                ).scalars()
            )
    return tuple(
        p for p in ALL_PROVIDERS if p in connected or settings_token(settings, p) is not None
    )


def nango_connection_for(conn: Connection, org: str, provider: str) -> NangoConnection | None:
    """The org's Nango connection for ``provider``, if one was recorded (integrations)."""
    integrations = metadata.tables["integrations"]
    row = conn.execute(
        select(integrations.c.nango_connection_id, integrations.c.nango_provider_config_key).where(
            integrations.c.organization_id == org,
            integrations.c.provider == provider,
        )
    ).first()
    if row is None or not row.nango_connection_id:
        return None
    return NangoConnection(
        row.nango_connection_id, row.nango_provider_config_key or provider_info(provider).nango_key
    )


def build_connector(
    settings: Settings,
    provider: str,
    http: httpx.Client,
    *,
    nango_connection: NangoConnection | None = None,
) -> Connector:
    """``provider``'s connector, with the org's Nango connection or the token from settings."""
    tokens = token_source(settings, provider, http=http, nango_connection=nango_connection)
    return provider_spec(provider).connect(settings, tokens, http)


class SyncStopped(KeyboardInterrupt):
    """Raised in a sync told to stop (``run_sync``'s ``stop`` set: Ctrl-C in a process running
    syncs side by side, whose threads a signal never reaches) at its next page or step. Like a
    Ctrl-C in a lone sync it leaves the run 'running', its committed pages kept, for the caller
    to record as interrupted (``bookkeeping.interrupt_own_runs``); the next sync resumes."""


def _stop_point(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise SyncStopped


@dataclass
class StreamCounts:
    fetched: int = 0
    upserted: int = 0
    deleted: int = 0
    quarantined: int = 0


@dataclass
class SyncResult:
    run_id: uuid.UUID
    organization_id: str
    provider: str
    status: SyncRunStatus
    counts: RunCounts
    seconds: float
    streams: dict[str, StreamCounts] = field(default_factory=dict)
    error: str | None = None
    resolution: ResolveReport | None = None
    resolution_seconds: float = 0.0
    statistics_seconds: float = 0.0
    analyzed: dict[str, int] = field(default_factory=dict)  # table -> refreshes this run
    vacuumed: list[str] = field(default_factory=list)  # tables vacuumed at the end
    # Rows its batches wrote resolved (resolve.resolve_batch), left out of the resolution after.
    batch_resolved: Counter[str] = field(default_factory=Counter)
    batch_left: Counter[str] = field(default_factory=Counter)  # ... and left to it
    batch_stale: int = 0  # stored participants its batches made stale (rule 1)
    batch_resolution_seconds: float = 0.0  # resolve_batch's time in the batches

    @property
    def ok(self) -> bool:
        return self.status is SyncRunStatus.SUCCEEDED


def run_sync(
    db: Database,
    settings: Settings,
    provider: str,
    *,
    org: str | None = None,
    full_refresh: bool = False,
    connector: Connector | None = None,
    streams: tuple[str, ...] | None = None,
    progress: bool = False,
    progress_line: int | None = None,
    stop: threading.Event | None = None,
) -> SyncResult:
    """Sync one provider into ``db`` for ``org``; never raises for a provider failure.

    ``streams`` limits the run to some of the provider's streams (in the provider's order;
    the stage stream is always read when deals are, since deals need it). One sync of a
    provider per organization runs at a time across processes (``store.locks``): a second one
    waits for the first, then reads what changed since; past ``REVTOPS_SYNC_LOCK_WAIT`` it
    gives up, FAILED with the holder named, and records no run (the holder's is in progress).

    Side by side with others (``revtops_kernel.sync_all``): ``progress_line`` draws the bar of
    the stream being read on that line (tqdm's ``position``), cleared when the stream ends, and
    ``stop``, once set, ends the sync at its next page or step with ``SyncStopped``.
    """
    org = org or settings.org
    started = time.monotonic()
    try:
        # One DuckDB connection for the run's units of work (store.database.writer_held).
        with (
            exclusive_sync(db, org, provider, wait_seconds=settings.sync_lock_wait),
            db.writer_held(),
        ):
            return _run_sync(
                db,
                settings,
                provider,
                org,
                full_refresh=full_refresh,
                connector=connector,
                streams=streams,
                progress=progress,
                progress_line=progress_line,
                stop=stop,
            )
    except SyncBusyError as exc:
        log.error("sync %s for %s did not run: %s", provider, org, exc)
        seconds = time.monotonic() - started
        run_id = uuid.uuid4()  # never recorded: this run did not start
        return SyncResult(
            run_id, org, provider, SyncRunStatus.FAILED, RunCounts(), seconds, error=str(exc)
        )


def _run_sync(
    db: Database,
    settings: Settings,
    provider: str,
    org: str,
    *,
    full_refresh: bool,
    connector: Connector | None,
    streams: tuple[str, ...] | None,
    progress: bool,
    progress_line: int | None,
    stop: threading.Event | None,
) -> SyncResult:
    spec = provider_spec(provider)
    started = time.monotonic()
    with db.begin() as conn:
        bookkeeping.ensure_organization(conn, org)
        if full_refresh:
            bookkeeping.clear_cursors(conn, org, provider)
        run_id = bookkeeping.start_run(conn, org, provider, full_refresh=full_refresh)
        # Before anything is written: a run that dies before its refreshes leaves them marked.
        risk_facts_pending = mark_risk_facts_pending(conn, org)
        meetings_pending = mark_meeting_accounts_pending(conn, org)
        release_quarantine = bookkeeping.has_quarantined(conn, org, provider)
        # Read once here, not per stream: this run alone moves them (exclusive_sync), and on
        # DuckDB every unit of work opens the file (0.15-0.3 s at scale 1 under load).
        cursors = bookkeeping.load_cursors(conn, org, provider)
        first_load = not bookkeeping.has_cursors(conn, org, provider)
        # Nango only with its key (as configured_providers): a workflow run's kernel has none
        # and gets the tokens its runner fetched (scheduling.run_environment) instead.
        use_nango = connector is None and settings.nango_secret_key is not None
        nango = nango_connection_for(conn, org, provider) if use_nango else None
    result = SyncResult(run_id, org, provider, SyncRunStatus.RUNNING, RunCounts(), 0.0)
    http = make_http_client() if connector is None else None
    # A provider's (or an organization's) first rows in a table others filled may be too few
    # to reach the refresh share, yet statistics that have never seen their source_system or
    # organization_id estimate them as one row: a first load refreshes every table it wrote.
    statistics = StatisticsRefresh(db, share=0.0 if first_load else REFRESH_SHARE)
    retry = RetryPolicy(settings.store_retry_attempts, settings.store_retry_delay)
    try:
        connector = connector or build_connector(
            settings, provider, _require(http), nango_connection=nango
        )
        engine = _StreamWriter(db, result, spec, release_quarantine, statistics, retry, cursors)
        engine.stop, engine.progress_line = stop, progress_line
        with _fewer_collections(), _batch_lookups(db, engine):
            for stream in _selected(connector.streams(), streams, spec):
                engine.sync_stream(connector, stream, progress=progress)
        _finish_streams(db, result, spec, connector, statistics, retry)
        result.status = SyncRunStatus.SUCCEEDED
    except RevtopsError as exc:
        result.status, result.error = SyncRunStatus.FAILED, str(exc)
        log.error("sync %s for %s failed: %s", provider, org, exc)
    except Exception as exc:  # the run must end recorded, whatever broke
        result.status, result.error = SyncRunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        log.exception("sync %s for %s crashed", provider, org)
    finally:
        if http is not None:
            http.close()
    # Told to stop, between steps: what is left (resolution, the rollups) is marked and done by
    # the next sync, as after a Ctrl-C in any of them.
    _stop_point(stop)
    _refresh_statistics(statistics)  # before resolution: its joins are where a bad plan hurts
    _resolve(db, result, statistics, retry)
    _stop_point(stop)
    refresh_after_sync(  # store.deal_states
        db,
        result,
        statistics,
        full=full_refresh,
        elapsed=timedelta(seconds=time.monotonic() - started),
        policy=retry,
    )
    _stop_point(stop)
    refresh_risk_facts_after_sync(  # store.risk_facts
        db, org, statistics.note, run=result, pending_before=risk_facts_pending, policy=retry
    )
    _stop_point(stop)
    refresh_meeting_accounts_after_sync(
        db, org, statistics.note, run=result, pending_before=meetings_pending, policy=retry
    )
    _refresh_statistics(statistics)
    _vacuum(statistics)
    result.statistics_seconds = statistics.seconds
    result.analyzed = dict(statistics.analyzed)
    result.vacuumed = list(statistics.vacuumed)
    if connector is not None:
        result.counts.api_calls = connector.stats.api_calls
        result.counts.rate_limited = connector.stats.rate_limited
    result.seconds = time.monotonic() - started
    with db.begin() as conn:
        bookkeeping.finish_run(conn, run_id, result.status, result.counts, result.error)
        bookkeeping.record_sync(
            conn,
            org,
            provider,
            succeeded_at=utcnow() if result.ok else None,
            error=result.error,
        )
    return result


class _CollectionPause:
    """Raises the collector's young and middle thresholds while any sync in the process reads
    streams, and puts the process's own back when the last one ends (syncs may run in threads
    side by side; a threshold of 0, the collector off, is left alone).

    It also freezes the objects that existed before (``gc.freeze``: the imports' ~10^5-10^6
    objects), so the full collections a sync still triggers walk the sync's objects only
    (scale 1: 0.2 -> 0.09 s of CPU); they are unfrozen at the end. A process that froze objects
    itself (a server before forking) keeps its own freeze: nothing is frozen or unfrozen then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple[int, int, int] | None = None
        self._froze = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = gc.get_threshold()
                young, *older = self._saved
                if 0 < young < SYNC_GC_THRESHOLD:
                    middle, oldest = older
                    gc.set_threshold(
                        SYNC_GC_THRESHOLD, max(middle, SYNC_GC_MIDDLE_THRESHOLD), oldest
                    )
                self._froze = gc.get_freeze_count() == 0
                if self._froze:
                    gc.freeze()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._saved is not None:
                    gc.set_threshold(*self._saved)
                    self._saved = None
                    if self._froze:
                        gc.unfreeze()
                        self._froze = False


_fewer_collections = _CollectionPause()


@contextmanager
def _batch_lookups(db: Database, engine: _StreamWriter) -> Iterator[None]:
    """While the streams are read, batches that resolve their rows keep what they read of the
    store for the next ones, under the resolution lock held shared (resolve.BatchLookups)."""
    if not engine.resolves_batches or db.is_duckdb:
        # DuckDB: nothing holds other processes' resolutions off between the sync's units of
        # work (the file is let go between them), so each batch reads afresh, in its own
        # transaction, which no other writer interleaves.
        yield
        return
    org = engine.result.organization_id
    with resolution_shared(db, org) as pid:
        engine.lookups = BatchLookups(org, pid)
        try:
            yield
        finally:
            engine.lookups = None


def _finish_streams(
    db: Database,
    result: SyncResult,
    spec: ProviderSpec,
    connector: Connector,
    statistics: StatisticsRefresh,
    retry: RetryPolicy,
) -> None:
    """The provider's clean-up once every stream is read (only after a complete read)."""
    after_streams = spec.after_streams
    if after_streams is None:
        return
    changed = in_transaction(  # a whole organization's pass on a first load: retried as a batch
        db,
        lambda conn: after_streams(conn, result.organization_id, connector),
        what=f"{result.provider} clean-up after its streams",
        policy=retry,
    )
    if spec.after_streams_counts == "written":
        result.counts.upserted += changed
    else:
        result.counts.deleted += changed
    # Counted like a batch's rows: uncounted, Salesforce's first field history (260k rows at
    # scale 10) went unanalyzed, and the deal-states refresh after it planned a nested loop
    # for a table it took to hold one row of the organization (17 min and counting).
    if spec.after_streams_table is not None:
        statistics.note(spec.after_streams_table, changed)


def _refresh_statistics(statistics: StatisticsRefresh, share: float | None = None) -> None:
    try:
        statistics.refresh_due(share)
    except Exception:  # stale statistics slow queries down; they never fail a sync
        log.exception("refreshing planner statistics failed")


def _vacuum(statistics: StatisticsRefresh) -> None:
    try:
        statistics.vacuum_due()
    except Exception:  # as above: a table left for autovacuum never fails a sync
        log.exception("vacuuming the tables the sync wrote failed")


def _resolve(
    db: Database, result: SyncResult, statistics: StatisticsRefresh, retry: RetryPolicy
) -> None:
    """Identity resolution over the rows written since the last one, after every run, failed
    ones too: the pages a failed run committed are data like any other."""
    from revtops_kernel.resolve import resolve_identities

    started = time.monotonic()
    org = result.organization_id
    try:
        # Its tables' statistics are refreshed with the sync's, below: resolution rewrites
        # most of what a first load of Slack or Calendar wrote, and analyzing those tables
        # inside it too took a fifth of its time at scale 0.3 on PostgreSQL. All of it is in
        # its transaction, so a transient fault or DuckDB running out of memory (a full
        # resolution at scale 10 under the 256MiB default) retries it (store.retry).
        report = in_transaction(
            db,
            lambda conn: resolve_identities(conn, org, analyze=False),
            what=f"identity resolution of {org}",
            policy=retry,
        )
        result.resolution = report
        statistics.note("activity_participants", report.participants_updated)
        statistics.note("activity_participants", report.participants_stale)
        statistics.note("activities", report.activities_updated + report.meetings_updated)
        for table, cleared in report.marks_cleared:  # the partial index of marks
            statistics.note(table, cleared)
    except Exception as exc:  # recorded on the run, never raised
        log.exception("identity resolution for %s failed", result.organization_id)
        if result.ok:
            result.status, result.error = SyncRunStatus.FAILED, f"identity resolution: {exc}"
    finally:
        result.resolution_seconds = time.monotonic() - started


def _selected(
    available: tuple[str, ...], wanted: tuple[str, ...] | None, spec: ProviderSpec
) -> tuple[str, ...]:
    if wanted is None:
        return available
    unknown = set(wanted) - set(available)
    if unknown:
        raise ValueError(f"unknown stream(s) {sorted(unknown)}; streams: {', '.join(available)}")
    chosen = set(wanted) | ({spec.stage_stream} if spec.stage_stream else set())
    return tuple(stream for stream in available if stream in chosen)


def _require(http: httpx.Client | None) -> httpx.Client:
    assert http is not None
    return http


class _StreamWriter:
    """Reads one stream's pages and commits each with its cursor."""

    def __init__(
        self,
        db: Database,
        result: SyncResult,
        spec: ProviderSpec,
        release_quarantine: bool,
        statistics: StatisticsRefresh,
        retry: RetryPolicy,
        cursors: dict[str, str],
    ) -> None:
        self.db = db
        self.cursors = cursors  # each stream's cursor when the run started
        self.retry = retry
        self.statistics = statistics
        self.result = result
        self.spec = spec
        self.release_quarantine = release_quarantine
        self.ctx = NormalizeContext(result.organization_id, result.provider)
        # Slack and Calendar rows are written resolved on PostgreSQL (resolve.resolve_batch),
        # where the resolution after the sync rewrote each of them. On DuckDB only after the
        # first load (cursors kept): its lookups per batch cost more than its set-based
        # resolution for a first load (Calendar, scale 1: 7.2 s of batch lookups against a
        # 2.0 s resolution, same load), while an incremental sync's few small batches cost a
        # few lookups against the ~17 statements of a resolution (resolve.DUCKDB_BATCH_MAX).
        self.resolves_batches = result.provider in ACTIVITY_PROVIDERS and (
            not db.is_duckdb or bool(cursors)
        )
        self.lookups: BatchLookups | None = None  # kept across batches (_batch_lookups)
        self.resolved_batches = 0
        self.stop: threading.Event | None = None  # run_sync's
        self.progress_line: int | None = None  # run_sync's

    def sync_stream(self, connector: Connector, stream: str, *, progress: bool) -> None:
        provider = self.result.provider
        checkpoint = self.cursors.get(stream)
        counts = self.result.streams.setdefault(stream, StreamCounts())
        normalizer = self.spec.normalizers[stream]
        stage_rows: list[dict[str, Any]] = []
        pending = _Pending(stream)
        bar = tqdm(
            desc=f"{provider} {stream}",
            unit=" rec",
            disable=not progress,
            leave=self.progress_line is None,
            position=self.progress_line,
        )
        # The stage stream's rows are read again as rows (the stage map): kept as is. Batches
        # resolve_batch reads take dict rows too; others keep a columnar normalizer's tuples,
        # their ``raw`` serialized as the record is normalized (_json_as_text's reason).
        keep_json = stream == self.spec.stage_stream
        raw = None if keep_json or self.resolves_batches else upsert_json_text
        try:
            for page in connector.read(stream, checkpoint):
                _stop_point(self.stop)  # the pages read since the last commit are read again
                normalized = normalize_page(
                    stream,
                    page.records,
                    normalizer,
                    self.ctx,
                    id_field=self.spec.id_field,
                    raw=raw,
                )
                if stream == self.spec.stage_stream:
                    # The stage map is built from normalized rows, so a malformed stage is
                    # quarantined once, here, and simply missing from the map.
                    stage_rows.extend(normalized.rows.get("deal_stages", []))
                pending.add(page, normalized, self.spec.id_field, keep_json=keep_json)
                if pending.full():
                    self._commit(pending, counts)
                    pending = _Pending(stream)
                bar.update(len(page.records))
            self._commit(pending, counts)
        finally:
            bar.close()
        if stream == self.spec.stage_stream and self.spec.stage_map is not None:
            self.ctx = replace(self.ctx, stages=self.spec.stage_map(stage_rows))
        log.info(
            "%s %s: %d fetched, %d written, %d deleted, %d quarantined",
            provider,
            stream,
            counts.fetched,
            counts.upserted,
            counts.deleted,
            counts.quarantined,
        )

    def _commit(self, pending: _Pending, counts: StreamCounts) -> None:
        """Rows, quarantine and the cursor of the pages read so far, in one transaction."""
        if pending.records == 0 and pending.checkpoint is None:
            return
        org, provider, run_id = (
            self.result.organization_id,
            self.result.provider,
            self.result.run_id,
        )

        def write(conn: Connection) -> dict[str, int]:
            if self.resolves_batches:
                started = time.monotonic()
                pending.resolution = resolve_batch(
                    conn, org, pending.rows, pending.normalized, self.lookups
                )
                self.result.batch_resolution_seconds += time.monotonic() - started
            written_by_table: dict[str, int] = {}
            for table, rows in pending.rows.items():
                if rows:
                    written_by_table[table] = upsert(conn, table, rows).written
            for table, tuples in pending.tuples.items():
                written = upsert(conn, table, tuples).written
                written_by_table[table] = written_by_table.get(table, 0) + written
            if self.release_quarantine:
                bookkeeping.release(conn, org, provider, pending.stream, pending.source_ids)
            bookkeeping.quarantine(conn, org, provider, run_id, pending.quarantined)
            if pending.checkpoint is not None:
                bookkeeping.save_cursor(conn, org, provider, pending.stream, pending.checkpoint)
            return written_by_table

        # The rows and their cursor commit together, so a batch a transient store fault rolled
        # back is simply written again on a fresh connection (store.retry).
        written_by_table = in_transaction(
            self.db, write, what=f"{provider} {pending.stream} batch", policy=self.retry
        )
        written = sum(written_by_table.values())
        # Counted in C (map over dict.get): a generator over every row was 3% of a sync's CPU.
        deleted = sum(
            len(rows) - list(map(_DELETED_AT, rows)).count(None) for rows in pending.rows.values()
        ) + sum(_deleted(tuples) for tuples in pending.tuples.values())
        # Committed: a sync killed from here on still leaves these rows' statistics behind.
        for table, count in written_by_table.items():
            self.statistics.note(table, count)
        _refresh_statistics(self.statistics, BATCH_SHARE)
        if self.resolves_batches and self.db.is_duckdb:
            self.resolved_batches += 1
            self.resolves_batches = self.resolved_batches < DUCKDB_BATCHES
        done = pending.resolution
        self.result.batch_resolved["activity_participants"] += done.participants
        self.result.batch_resolved["activities"] += done.activities
        self.result.batch_left["activity_participants"] += done.left_participants
        self.result.batch_left["activities"] += done.left_activities
        self.result.batch_stale += done.stale
        for bucket in (counts, self.result.counts):
            bucket.fetched += pending.records
            bucket.upserted += written
            bucket.deleted += deleted
            bucket.quarantined += len(pending.quarantined)


_DELETED_AT = operator.methodcaller("get", "deleted_at")


def _deleted(tuples: TableTuples) -> int:
    """Rows with a ``deleted_at``, counted in C."""
    if "deleted_at" not in tuples.names:
        return 0
    at = operator.itemgetter(tuples.names.index("deleted_at"))
    return len(tuples.rows) - list(map(at, tuples.rows)).count(None)


class _Pending:
    """Pages read but not yet committed: written together once there are enough of them.

    One transaction per page would open the DuckDB file (and pay a commit) a hundred times for
    10,000 records; the cursor still only moves with the rows it covers.
    """

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.tuples: dict[str, TableTuples] = {}  # a columnar normalizer's tables
        self.quarantined: list[QuarantineEntry] = []
        self.source_ids: list[str] = []
        self.records = 0
        self.checkpoint: str | None = None
        self.started = time.monotonic()
        self.resolution = BatchResolution()  # what resolve_batch settled at the commit
        self.normalized: dict[int, Any] = {}  # for resolve_batch

    def add(
        self, page: Page, normalized: NormalizedPage, id_field: str, *, keep_json: bool = False
    ) -> None:
        for table, rows in normalized.rows.items():
            if not keep_json:
                _json_as_text(table, rows)
            self.rows.setdefault(table, []).extend(rows)
        for table, tuples in normalized.tuples.items():
            held = self.tuples.setdefault(table, TableTuples(tuples.names, []))
            if held.names != tuples.names:  # one normalizer per stream: never
                raise ValueError(f"{table}: pages with different columns in one batch")
            held.rows.extend(tuples.rows)
        self.quarantined.extend(
            QuarantineEntry(q.stream, q.source_id, q.reason, q.raw) for q in normalized.quarantined
        )
        self.source_ids.extend(
            str(r[id_field]) for r in page.records if r.get(id_field) is not None
        )
        self.records += len(page.records)
        if page.checkpoint is not None:
            self.checkpoint = page.checkpoint

    def full(self) -> bool:
        return (
            self.records >= COMMIT_EVERY_RECORDS
            or time.monotonic() - self.started >= COMMIT_EVERY_SECONDS
        )


@functools.cache
def _json_columns(table: str) -> tuple[str, ...]:
    target = metadata.tables.get(table)
    if target is None:
        return ()
    return tuple(c.name for c in target.columns if isinstance(c.type, JSON))


def _json_as_text(table: str, rows: list[dict[str, Any]]) -> None:
    """The rows' JSON values (the provider's ``raw`` payload) as the JSON text the upsert would
    write, as soon as a page is normalized: a decoded record is ~5-10 times its text in Python
    objects (a Calendar event ~10 KiB), and a batch held 25,000 of them until its commit. The
    upsert takes text as already serialized; this is its own serializer, same text."""
    columns = _json_columns(table)
    for row in rows:
        for column in columns:
            value = row.get(column)
            if value is not None and not isinstance(value, str):
                row[column] = upsert_json_text(value)
