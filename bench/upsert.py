"""Benchmark ``revtops_kernel.store.upsert`` against row-at-a-time baselines, on both backends.

    python bench/upsert.py [--rows 1000000] [--changed 100000] [--small 10000] [--sample 50000]
                           [--backend duckdb|postgresql|all] [--postgres-url URL] [--json PATH]

For each backend, in a fresh database (DuckDB: a temporary file; PostgreSQL: a database
``revtops_bench_<hex>`` created through the admin URL and dropped at the end):

- baselines on a sample into an empty ``deals``: ``DataFrame.to_sql`` (pandas' default
  ``method=None``), and on PostgreSQL psycopg 3 ``cursor.executemany`` of
  ``INSERT … ON CONFLICT DO UPDATE`` (pipeline mode); the upsert of the same sample beside them;
- ``--small`` new keys into an empty table vs ``--small`` changed rows into the full table
  (median of ``--repeat`` runs after one warm-up each);
- the initial ``--rows`` upsert into an empty table, ``--changed`` changed rows into it, and the
  same changed batch again (must write nothing);
- on PostgreSQL, ``executemany`` of changed sample rows into the full table.

Every timing includes the transaction (connect, statement(s), commit), as a sync would run it.
With ``--backend all`` each backend runs in its own child process, so peak RSS is per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from _common import peak_rss_mib, progress
from sqlalchemy import Table, text

from revtops_kernel.ids import record_id
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import NATURAL_KEY, metadata
from revtops_kernel.store.scratch import scratch_store
from revtops_kernel.store.upsert import UpsertResult, upsert

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ORG = "bench"
SOURCE = "hubspot"
SEED = 20250601
# The "present" of the synthetic CRM; every changed batch is stamped after it, so it is newer.
NOW_US = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1_000_000)
DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000

GOAL_DUCKDB_VS_TO_SQL = 10.0
GOAL_PG_VS_EXECUTEMANY = 5.0
GOAL_SMALL_RATIO = 2.0

# --- synthetic HubSpot deals ---------------------------------------------------------------

STAGES = (  # (HubSpot internal id, label, probability, closed, won, forecast category)
    ("appointmentscheduled", "Appointment Scheduled", "0.2000", False, False, "Pipeline"),
    ("qualifiedtobuy", "Qualified To Buy", "0.4000", False, False, "Pipeline"),
    ("presentationscheduled", "Presentation Scheduled", "0.6000", False, False, "Best Case"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8000", False, False, "Best Case"),
    ("contractsent", "Contract Sent", "0.9000", False, False, "Commit"),
    ("closedwon", "Closed Won", "1.0000", True, True, "Closed"),
    ("closedlost", "Closed Lost", "0.0000", True, False, "Omitted"),
)
STAGE_WEIGHTS = (0.12, 0.12, 0.10, 0.08, 0.08, 0.30, 0.20)
PIPELINES = ("default", "enterprise", "renewals")
PIPELINE_WEIGHTS = (0.7, 0.2, 0.1)
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD")
CURRENCY_WEIGHTS = (0.80, 0.08, 0.06, 0.03, 0.03)
DEAL_TYPES = (
    ("newbusiness", "New Business"),
    ("existingbusiness", "Renewal"),
    ("expansion", "Expansion"),
)
DEAL_TYPE_WEIGHTS = (0.6, 0.25, 0.15)
LEAD_SOURCES = ("Inbound", "Outbound", "Partner", "Event", "Referral", None)
LEAD_SOURCE_WEIGHTS = (0.35, 0.25, 0.1, 0.1, 0.1, 0.1)
# Split strings: 80 short names would take 80 lines as literals.
COMPANY_HEADS = (  # noqa: SIM905
    "Acme Apex Atlas Beacon Blue Bright Cedar Cloud Copper Crest Delta Ember Everest Falcon "
    "Fathom Forge Granite Harbor Helix Horizon Indigo Iron Juniper Keystone Lumen Maple Meridian "
    "Nimbus North Nova Oak Onyx Orbit Pacific Peak Pine Pioneer Polar Prairie Quantum Quartz "
    "Radiant Redwood Ridge River Sable Sage Sierra Silver Solar Summit Terra Tidal Titan "
    "Union Vertex Vista Willow Zenith"
).split()
COMPANY_TAILS = (  # noqa: SIM905
    "Analytics Bio Capital Cloud Dynamics Energy Foods Group Health Holdings Industries Labs "
    "Logistics Media Networks Partners Robotics Security Software Systems Technologies Ventures"
).split()
N_OWNERS = 250
N_ACCOUNTS = 60_000


@dataclass
class Deals:
    """The primitive state of some deals, as numpy arrays; ``to_arrow`` renders them."""

    source_num: np.ndarray
    head: np.ndarray
    tail: np.ndarray
    amount_cents: np.ndarray
    currency: np.ndarray
    pipeline: np.ndarray
    stage: np.ndarray
    owner: np.ndarray
    account: np.ndarray
    deal_type: np.ndarray
    lead_source: np.ndarray
    created_us: np.ndarray
    updated_us: np.ndarray
    close_day: np.ndarray
    deleted: np.ndarray

    def __len__(self) -> int:
        return len(self.source_num)

    def take(self, index: np.ndarray) -> Deals:
        return Deals(**{k: v[index] for k, v in vars(self).items()})


class Pools:
    """Fixed uuids (pipelines, stages, owners, accounts) and label arrays, taken by index."""

    def __init__(self, rng: np.random.Generator) -> None:
        def uuids(n: int) -> pa.Array:
            raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
            return pa.array([str(uuid.UUID(bytes=row.tobytes(), version=4)) for row in raw])

        self.pipeline_id = uuids(len(PIPELINES))
        self.pipeline_name = pa.array(PIPELINES)
        self.stage_id = uuids(len(PIPELINES) * len(STAGES))  # one per (pipeline, stage)
        self.stage_key = pa.array([s[0] for s in STAGES])
        self.stage_name = pa.array([s[1] for s in STAGES])
        self.probability = pa.array([s[2] for s in STAGES]).cast(pa.decimal128(5, 4))
        self.is_closed = pa.array([s[3] for s in STAGES])
        self.is_won = pa.array([s[4] for s in STAGES])
        self.forecast = pa.array([s[5] for s in STAGES])
        self.owner_id = uuids(N_OWNERS)
        self.account_id = uuids(N_ACCOUNTS)
        self.currency = pa.array(CURRENCIES)
        self.deal_type_key = pa.array([d[0] for d in DEAL_TYPES])
        self.deal_type = pa.array([d[1] for d in DEAL_TYPES])
        self.lead_source = pa.array(LEAD_SOURCES, pa.string())
        self.head = pa.array(COMPANY_HEADS)
        self.tail = pa.array(COMPANY_TAILS)


def generate(n: int, rng: np.random.Generator) -> Deals:
    created = NOW_US - rng.integers(0, 4 * 365 * DAY_US, n)
    # Most deals were touched within weeks of creation; never after "now".
    touched = (rng.exponential(60, n) * DAY_US).astype(np.int64)
    amount_dollars = np.exp(rng.normal(np.log(20_000), 1.0, n))
    cents = np.round(amount_dollars * 100).astype(np.int64)
    round_hundreds = rng.random(n) < 0.6  # sales reps type round figures
    cents = np.where(round_hundreds, np.maximum(cents // 10_000, 1) * 10_000, cents)
    return Deals(
        # HubSpot-like 11-digit ids, unique and ascending (a full load pages in id order)
        source_num=10_000_000_000 + np.arange(n, dtype=np.int64) * 9 + rng.integers(0, 9, n),
        head=rng.integers(0, len(COMPANY_HEADS), n),
        tail=rng.integers(0, len(COMPANY_TAILS), n),
        amount_cents=cents,
        currency=rng.choice(len(CURRENCIES), n, p=CURRENCY_WEIGHTS),
        pipeline=rng.choice(len(PIPELINES), n, p=PIPELINE_WEIGHTS),
        stage=rng.choice(len(STAGES), n, p=STAGE_WEIGHTS),
        owner=rng.integers(0, N_OWNERS, n),
        account=rng.integers(0, N_ACCOUNTS, n),
        deal_type=rng.choice(len(DEAL_TYPES), n, p=DEAL_TYPE_WEIGHTS),
        lead_source=rng.choice(len(LEAD_SOURCES), n, p=LEAD_SOURCE_WEIGHTS),
        created_us=created,
        updated_us=np.minimum(created + touched, NOW_US),
        close_day=(created // DAY_US + rng.integers(30, 270, n)).astype(np.int32),
        deleted=rng.random(n) < 0.005,
    )


def change(deals: Deals, rng: np.random.Generator, stamp_us: int) -> Deals:
    """The same deals as a later sync sees them: moved stage, new amount, newer updated_at."""
    n = len(deals)
    changed = deals.take(np.arange(n))
    factor = rng.uniform(0.8, 1.3, n)
    changed.amount_cents = np.maximum(np.round(deals.amount_cents * factor), 100).astype(np.int64)
    changed.stage = (deals.stage + rng.integers(1, len(STAGES), n)) % len(STAGES)
    changed.updated_us = stamp_us + rng.integers(0, HOUR_US, n)
    closing = changed.stage >= 5  # a deal that closes gets its actual close date
    changed.close_day = np.where(closing, changed.updated_us // DAY_US, deals.close_day).astype(
        np.int32
    )
    return changed


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _iso(micros: np.ndarray) -> pa.Array:
    """HubSpot's ``2024-01-02T03:04:05.678Z``; Arrow's own timestamp formatting is 5x slower."""
    millis = micros // 1000
    day = pa.array((millis // 86_400_000).astype(np.int32), pa.date32()).cast(pa.string())
    tod = millis % 86_400_000
    # 1HHMMSSmmm as one integer, cast to text once and sliced: zero-padding for free
    code = 1_000_000_000 + tod // 3_600_000 * 10_000_000 + tod // 60_000 % 60 * 100_000
    text = pa.array(code + tod // 1000 % 60 * 1000 + tod % 1000).cast(pa.string())

    def part(start: int, stop: int) -> pa.Array:
        return pc.utf8_slice_codeunits(text, start, stop)

    return _join(day, "T", part(1, 3), ":", part(3, 5), ":", part(5, 7), ".", part(7, 10), "Z")


def to_arrow(deals: Deals, pools: Pools) -> pa.Table:
    """Render the deals as the Arrow table a HubSpot normalizer would hand to ``upsert``."""
    n = len(deals)
    source_id = pa.array(deals.source_num).cast(pa.string())
    stage_flat = deals.pipeline * len(STAGES) + deals.stage
    deal_type = pools.deal_type.take(deals.deal_type)
    name = _join(pools.head.take(deals.head), " ", pools.tail.take(deals.tail), " - ", deal_type)
    # decimal128 holds the unscaled integer in 16 little-endian bytes: cents, sign-extended
    words = np.zeros((n, 2), dtype=np.int64)
    words[:, 0] = deals.amount_cents
    words[:, 1] = np.where(deals.amount_cents < 0, -1, 0)
    amount = pa.Array.from_buffers(pa.decimal128(18, 2), n, [None, pa.py_buffer(words)])
    close_date = pa.array(deals.close_day, pa.date32())
    created_at = pa.array(deals.created_us, pa.timestamp("us", tz="UTC"))
    updated_at = pa.array(deals.updated_us, pa.timestamp("us", tz="UTC"))
    deleted_at = pa.array(deals.updated_us, pa.timestamp("us", tz="UTC"), mask=~deals.deleted)
    # A HubSpot v3 deal's properties, ~210 bytes of JSON text
    raw = _join(
        '{"amount":"',
        amount.cast(pa.string()),
        '","closedate":"',
        close_date.cast(pa.string()),
        'T00:00:00.000Z","dealname":"',
        name,
        '","dealstage":"',
        pools.stage_key.take(deals.stage),
        '","hs_lastmodifieddate":"',
        _iso(deals.updated_us),
        '","hubspot_owner_id":"',
        pa.array(deals.owner + 40_000_000).cast(pa.string()),
        '","pipeline":"',
        pools.pipeline_name.take(deals.pipeline),
        '"}',
    )
    return pa.table(
        {
            "organization_id": _repeat(ORG, n),
            "source_system": _repeat(SOURCE, n),
            "source_id": source_id,
            "name": name,
            "amount": amount,
            "currency": pools.currency.take(deals.currency),
            "pipeline_id": pools.pipeline_id.take(deals.pipeline),
            "stage_id": pools.stage_id.take(stage_flat),
            "stage_name": pools.stage_name.take(deals.stage),
            "close_date": close_date,
            "owner_id": pools.owner_id.take(deals.owner),
            "account_id": pools.account_id.take(deals.account),
            "is_closed": pools.is_closed.take(deals.stage),
            "is_won": pools.is_won.take(deals.stage),
            "probability": pools.probability.take(deals.stage),
            "forecast_category": pools.forecast.take(deals.stage),
            "deal_type": deal_type,
            "lead_source": pools.lead_source.take(deals.lead_source),
            "created_at": created_at,
            "updated_at": updated_at,
            "deleted_at": deleted_at,
            "raw": raw,
        }
    )


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value]).take(np.zeros(n, dtype=np.int32))


# --- measuring -------------------------------------------------------------------------------

DEALS: Table = metadata.tables["deals"]


@dataclass
class Figure:
    operation: str
    rows: int
    seconds: float  # the median when ``runs`` holds several timings
    written: int | None = None
    runs: list[float] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


@dataclass
class Line:
    """One row of the report: a figure, optionally beside a baseline and a goal."""

    figure: Figure
    baseline: Figure | None = None
    ratio: float | None = None  # speed-up in rows/s, or time ratio for the small-batch goal
    goal: str = ""
    met: bool | None = None


@dataclass
class BackendReport:
    backend: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    rss_after_data_mib: float = 0.0
    peak_rss_mib: float = 0.0


def timed_upsert(db: Database, batch: pa.Table) -> tuple[float, UpsertResult]:
    started = time.perf_counter()
    with db.begin() as conn:
        result = upsert(conn, DEALS, batch)
    return time.perf_counter() - started, result


def reset_deals(db: Database) -> None:
    """A brand-new empty ``deals`` (same constraints and indexes as ``upgrade`` makes)."""
    with db.begin() as conn:
        DEALS.drop(conn, checkfirst=True)
        DEALS.create(conn)


def count_deals(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM deals")).scalar_one())


def expect(report: BackendReport, what: str, got: int | None, wanted: int) -> None:
    if got != wanted:
        report.anomalies.append(f"{what}: expected {wanted:,} rows, got {got}")
        progress(f"ANOMALY {report.anomalies[-1]}")


def with_ids(batch: pa.Table) -> pa.Table:
    # Baselines insert row by row and need the primary key; upsert derives it in SQL.
    ids = [str(record_id(ORG, SOURCE, "deals", s)) for s in batch.column("source_id").to_pylist()]
    return batch.add_column(0, "id", pa.array(ids))


def measure_to_sql(db: Database, batch: pa.Table, chunksize: int) -> Figure:
    """``DataFrame.to_sql`` (``method=None``: SQLAlchemy's executemany path) into empty deals."""
    frame = with_ids(batch).to_pandas()
    frame["raw"] = [json.loads(v) for v in frame["raw"]]  # what a DataFrame of API rows holds
    dtype = {c.name: c.type for c in DEALS.columns}  # so uuid and JSON columns bind correctly
    reset_deals(db)
    started = time.perf_counter()
    with db.begin() as conn:
        frame.to_sql(
            "deals",
            conn,
            if_exists="append",
            index=False,
            method=None,
            chunksize=chunksize,
            dtype=dtype,  # type: ignore[arg-type]
        )
    seconds = time.perf_counter() - started
    return Figure(f"to_sql(method=None, chunksize={chunksize:,}) -> empty", len(frame), seconds)


def _executemany_sql(columns: Sequence[str]) -> str:
    # The same rules as upsert's ON CONFLICT clause: newer and different rows only.
    updatable = [c for c in columns if c not in (*NATURAL_KEY, "id")]
    stored = ", ".join(f"deals.{c}" for c in updatable)
    incoming = ", ".join(f"excluded.{c}" for c in updatable)
    return (
        f"INSERT INTO deals ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(NATURAL_KEY)}) DO UPDATE SET "
        f"{', '.join(f'{c} = excluded.{c}' for c in updatable)} "
        "WHERE (deals.updated_at IS NULL OR excluded.updated_at >= deals.updated_at) "
        f"AND ROW({stored}) IS DISTINCT FROM ROW({incoming})"
    )


def measure_executemany(db: Database, batch: pa.Table, operation: str) -> Figure:
    """psycopg 3 ``cursor.executemany`` of INSERT … ON CONFLICT DO UPDATE, one transaction."""
    batch = with_ids(batch)
    rows = list(zip(*(column.to_pylist() for column in batch.columns), strict=True))
    sql = _executemany_sql(batch.column_names)
    conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, options="-c timezone=UTC") as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)  # pipeline mode: no round trip per row
            written = cursor.rowcount
        conn.commit()
        seconds = time.perf_counter() - started
    return Figure(operation, len(rows), seconds, written)


def median_upserts(
    db: Database,
    batches: Sequence[pa.Table],
    before_each: Callable[[], None] | None,
    operation: str,
    report: BackendReport,
    expected: int,
) -> Figure:
    """Median time of ``batches[1:]``; ``batches[0]`` warms up (connections, catalog, caches)."""
    runs: list[float] = []
    for index, batch in enumerate(batches):
        if before_each is not None:
            before_each()
        seconds, result = timed_upsert(db, batch)
        expect(report, f"{operation} run {index}", result.written, expected)
        if index:
            runs.append(seconds)
    figure = Figure(operation, batches[0].num_rows, statistics.median(runs), expected, runs)
    progress(f"{operation}: runs {', '.join(f'{s:.3f}' for s in runs)} s")
    return figure


def settle(db: Database) -> None:
    """Untimed, after the big load: the state a table is in between syncs."""
    if db.is_duckdb:
        with db.begin() as conn:
            conn.execute(text("CHECKPOINT"))
        return
    # VACUUM cannot run in a transaction; it sets hint bits and the visibility map and
    # gathers statistics, as autovacuum would between two syncs.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) deals"))


def describe_baselines(db: Database) -> list[str]:
    dialect = db.engine.dialect
    if dialect.use_insertmanyvalues_wo_returning:
        to_sql = f"multi-row INSERT … VALUES of {dialect.insertmanyvalues_page_size} rows"
    else:
        to_sql = "the driver's executemany"
    notes = [f"to_sql: pandas {pd.__version__} via SQLAlchemy {dialect.name}: {to_sql}"]
    if db.is_duckdb:
        notes.append("CHECKPOINT after the initial load (untimed)")
        return notes
    pipeline = "on" if psycopg.Pipeline.is_supported() else "UNAVAILABLE"
    notes.append(
        f"executemany: psycopg {psycopg.__version__} cursor.executemany, pipeline mode "
        f"{pipeline} (libpq {psycopg.pq.version()}), one transaction"
    )
    notes.append("VACUUM (ANALYZE) deals after the initial load (untimed; autovacuum may be off)")
    return notes


def run_backend(backend: str, args: argparse.Namespace) -> BackendReport:
    report = BackendReport(backend)
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    pools = Pools(rng)
    base = generate(args.rows, rng)
    full = to_arrow(base, pools)
    generated = Figure("generate deals as Arrow (numpy; not a write)", args.rows, 0.0)
    generated.seconds = time.perf_counter() - started
    report.rss_after_data_mib = peak_rss_mib()
    progress(
        f"{backend}: generated {args.rows:,} deals in {generated.seconds:.2f} s "
        f"({full.nbytes / 2**20:,.0f} MiB in Arrow, "
        f"raw ~{pc.mean(pc.utf8_length(full.column('raw'))).as_py():.0f} bytes/row)"
    )
    report.lines.append(Line(generated))
    sample = full.slice(0, min(args.sample, args.rows))

    def changed_batch(size: int, stamp_day: int) -> pa.Table:
        keys = np.sort(rng.choice(args.rows, size=size, replace=False))
        batch = change(base.take(keys), rng, NOW_US + stamp_day * DAY_US)
        return to_arrow(batch, pools).sort_by("updated_at")  # incremental syncs page by time

    with scratch_store(backend, args.postgres_url, prefix="revtops_bench") as db:
        if not db.is_duckdb:
            progress(f"created PostgreSQL database {db.url.database}")
        upgrade(db)

        # Baselines on an empty table, and the upsert of the same sample for a like-for-like view
        progress(f"{backend}: to_sql baseline, {sample.num_rows:,} rows")
        to_sql = measure_to_sql(db, sample, args.chunksize)
        expect(report, "to_sql", count_deals(db), sample.num_rows)
        progress(f"{backend}: to_sql {to_sql.seconds:.2f} s ({to_sql.rows_per_s:,.0f} rows/s)")
        insert_many: Figure | None = None
        if backend == "postgresql":
            reset_deals(db)
            progress(f"{backend}: executemany baseline (insert), {sample.num_rows:,} rows")
            insert_many = measure_executemany(db, sample, "executemany INSERT…ON CONFLICT -> empty")
            expect(report, "executemany insert", insert_many.written, sample.num_rows)
            progress(f"{backend}: executemany {insert_many.rows_per_s:,.0f} rows/s")
        reset_deals(db)
        seconds, result = timed_upsert(db, sample)
        expect(report, "upsert sample", result.written, sample.num_rows)
        same_size = Figure("upsert new keys -> empty (sample size)", sample.num_rows, seconds)
        same_size.written = result.written

        # (c, first half) small batches of new keys into a brand-new empty table
        progress(f"{backend}: {args.small:,} new keys into an empty table x{args.repeat}")
        small = full.slice(0, args.small)
        small_empty = median_upserts(
            db,
            [small] * (args.repeat + 1),
            lambda: reset_deals(db),
            "upsert new keys -> empty table (median)",
            report,
            small.num_rows,
        )

        # (a) the initial full load
        reset_deals(db)
        progress(f"{backend}: initial upsert of {args.rows:,} rows")
        seconds, result = timed_upsert(db, full)
        expect(report, "initial upsert", result.written, args.rows)
        initial = Figure("upsert new keys -> empty table", args.rows, seconds, result.written)
        progress(f"{backend}: initial {seconds:.2f} s ({initial.rows_per_s:,.0f} rows/s)")
        settle(db)

        # (b) a large incremental sync, then (d) the same batch again
        batch = changed_batch(args.changed, 1)
        progress(f"{backend}: {args.changed:,} changed rows into {args.rows:,}")
        seconds, result = timed_upsert(db, batch)
        expect(report, "changed upsert", result.written, args.changed)
        changed = Figure(
            f"upsert changed -> {args.rows:,}-row table", args.changed, seconds, result.written
        )
        progress(f"{backend}: changed {seconds:.2f} s ({changed.rows_per_s:,.0f} rows/s)")
        seconds, result = timed_upsert(db, batch)
        expect(report, "re-run of the changed batch", result.written, 0)
        rerun = Figure("re-run same changed batch (no-op)", args.changed, seconds, result.written)
        progress(f"{backend}: re-run {seconds:.2f} s, wrote {result.written}")

        # (c, second half) small batches of changed rows into the full table
        progress(f"{backend}: {args.small:,} changed rows into {args.rows:,} x{args.repeat}")
        small_full = median_upserts(
            db,
            [changed_batch(args.small, 2 + k) for k in range(args.repeat + 1)],
            None,
            f"upsert changed -> {args.rows:,}-row table (median)",
            report,
            args.small,
        )

        update_many: Figure | None = None
        if backend == "postgresql":
            progress(f"{backend}: executemany baseline (update), {sample.num_rows:,} rows")
            update_many = measure_executemany(
                db,
                changed_batch(sample.num_rows, 30),
                f"executemany INSERT…ON CONFLICT changed -> {args.rows:,}-row",
            )
            expect(report, "executemany update", update_many.written, sample.num_rows)
            progress(f"{backend}: executemany {update_many.rows_per_s:,.0f} rows/s")
        expect(report, "final row count", count_deals(db), args.rows)
        db_notes = describe_baselines(db)

    measured = Measured(
        to_sql,
        insert_many,
        same_size,
        small_empty,
        initial,
        changed,
        rerun,
        small_full,
        update_many,
    )
    assemble(report, measured, db_notes)
    report.peak_rss_mib = peak_rss_mib()
    return report


@dataclass
class Measured:
    to_sql: Figure
    insert_many: Figure | None  # PostgreSQL only
    same_size: Figure
    small_empty: Figure
    initial: Figure
    changed: Figure
    rerun: Figure
    small_full: Figure
    update_many: Figure | None = None  # PostgreSQL only


def assemble(report: BackendReport, m: Measured, notes: list[str]) -> None:
    """Each upsert beside its baseline, with the goals."""
    postgres = report.backend == "postgresql"
    goal = GOAL_PG_VS_EXECUTEMANY if postgres else GOAL_DUCKDB_VS_TO_SQL
    headline = m.insert_many if m.insert_many is not None else m.to_sql
    for figure, versus, is_goal in (
        (m.initial, headline, True),
        (m.same_size, headline, False),
        (m.changed, m.update_many or m.to_sql, postgres),
    ):
        ratio = figure.rows_per_s / versus.rows_per_s
        met = ratio >= goal if is_goal else None
        text_goal = f"speed-up >= {goal:g}x" if is_goal else "(info)"
        report.lines.append(Line(figure, versus, ratio, text_goal, met))
    if postgres:  # to_sql beside the COPY path too, for information
        ratio = m.initial.rows_per_s / m.to_sql.rows_per_s
        report.lines.append(Line(m.initial, m.to_sql, ratio, "(info)"))
    report.lines.append(Line(m.rerun))
    report.lines.append(Line(m.small_empty))
    small_ratio = m.small_full.seconds / m.small_empty.seconds
    goal_text = f"time ratio <= {GOAL_SMALL_RATIO:g}x"
    met = small_ratio <= GOAL_SMALL_RATIO
    report.lines.append(Line(m.small_full, m.small_empty, small_ratio, goal_text, met))
    for baseline in (m.to_sql, m.insert_many, m.update_many):
        if baseline is not None:
            report.lines.append(Line(baseline))
    report.notes.append(
        "timings include connect, statements and commit; baselines get their DataFrame/tuples "
        "and precomputed ids for free (untimed)"
    )
    report.notes.extend(notes)


# --- reporting -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(reports: Sequence[BackendReport]) -> str:
    head = ["backend", "operation", "rows", "seconds", "rows/s", "written"]
    head += ["|", "baseline", "rows", "rows/s", "ratio", "goal"]
    right = {"rows", "seconds", "rows/s", "written", "ratio"}
    table: list[list[str] | None] = [head, None]  # None: a rule
    extra: dict[int, list[str]] = {}  # lines under each backend's block, by table position
    for report in reports:
        for line in report.lines:
            f = line.figure
            generation = f.operation.startswith("generate")
            row = [report.backend, f.operation, f"{f.rows:,}", f"{f.seconds:.3f}"]
            row += ["-" if generation else _num(f.rows_per_s), _num(f.written)]
            if line.baseline is not None and line.ratio is not None:
                b = line.baseline
                verdict = "" if line.met is None else (" MET" if line.met else " MISSED")
                row += ["|", b.operation, f"{b.rows:,}", _num(b.rows_per_s)]
                row += [f"{line.ratio:.1f}x", f"{line.goal}{verdict}"]
            table.append(row)
        notes = [
            f"runs of {f.operation!r} [{f.rows:,}]: {', '.join(f'{s:.3f}' for s in f.runs)} s"
            for f in (ln.figure for ln in report.lines)
            if f.runs
        ]
        server = "; server memory not included" if report.backend == "postgresql" else ""
        notes.append(
            f"peak RSS {report.peak_rss_mib:,.0f} MiB (after generating the data: "
            f"{report.rss_after_data_mib:,.0f} MiB{server})"
        )
        notes += [f"note: {n}" for n in report.notes]
        notes += [f"ANOMALY: {a}" for a in report.anomalies]
        extra[len(table)] = notes
        table.append(None)
    widths = [max(len(r[i]) for r in table if r and len(r) > i) for i in range(len(head))]
    out: list[str] = []
    for position, row in enumerate(table):
        if row is None:
            out.extend(f"{'':<{widths[0]}} {note}" for note in extra.get(position, []))
            out.append("-" * (sum(widths) + len(widths) - 1))
            continue
        cells = [
            cell.rjust(widths[i]) if head[i] in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append(" ".join(cells).rstrip())
    out.append("goals:")
    for report in reports:
        for ln in report.lines:
            if ln.met is not None and ln.ratio is not None:
                verdict = "MET" if ln.met else "MISSED"
                out.append(
                    f"  {report.backend:<10} {ln.figure.operation} [{ln.figure.rows:,}]: "
                    f"{ln.goal} -> {ln.ratio:.1f}x {verdict}"
                )
    return "\n".join(out)


def to_json(report: BackendReport) -> dict[str, Any]:
    data = asdict(report)
    for line, raw in zip(report.lines, data["lines"], strict=True):
        raw["figure"]["rows_per_s"] = line.figure.rows_per_s
        if line.baseline is not None:
            raw["baseline"]["rows_per_s"] = line.baseline.rows_per_s
    return data


def from_json(data: dict[str, Any]) -> BackendReport:
    def figure(raw: dict[str, Any] | None) -> Figure | None:
        if raw is None:
            return None
        raw = {k: v for k, v in raw.items() if k != "rows_per_s"}
        return Figure(**raw)

    lines = []
    for raw in data["lines"]:
        main = figure(raw["figure"])
        assert main is not None
        lines.append(Line(main, figure(raw["baseline"]), raw["ratio"], raw["goal"], raw["met"]))
    return BackendReport(**{**data, "lines": lines})


# --- entry point -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="initial load size")
    parser.add_argument("--changed", type=int, default=100_000, help="incremental batch size")
    parser.add_argument("--small", type=int, default=10_000, help="small batch size")
    parser.add_argument("--sample", type=int, default=50_000, help="rows for the baselines")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per small batch")
    parser.add_argument("--chunksize", type=int, default=10_000, help="to_sql chunksize")
    parser.add_argument("--backend", choices=("duckdb", "postgresql", "all"), default="all")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("REVTOPS_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL),
        help="admin URL: the benchmark creates and drops its own database there",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 < args.small <= args.rows or not 0 < args.changed <= args.rows:
        parser.error("--small and --changed must be between 1 and --rows")
    if args.repeat < 1 or args.sample < 1:
        parser.error("--repeat and --sample must be at least 1")
    return args


def run_in_child(backend: str, args: argparse.Namespace) -> BackendReport:
    """Run one backend in a fresh interpreter: its own peak RSS, no state carried over."""
    with tempfile.TemporaryDirectory(prefix="revtops_bench_") as folder:
        out = Path(folder) / f"{backend}.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child"]
        command += ["--backend", backend, "--json", str(out)]
        for flag in ("rows", "changed", "small", "sample", "repeat", "chunksize", "postgres_url"):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        subprocess.run(command, check=True)
        return from_json(json.loads(out.read_text())["backends"][0])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    if args.backend == "all":
        reports = [run_in_child(backend, args) for backend in ("duckdb", "postgresql")]
    else:
        reports = [run_backend(args.backend, args)]
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("json", "child")}
        payload = {"config": config, "backends": [to_json(r) for r in reports]}
        args.json.write_text(json.dumps(payload, indent=2))
    if not args.child:
        print(render(reports))
        print(f"total wall time {time.perf_counter() - wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
