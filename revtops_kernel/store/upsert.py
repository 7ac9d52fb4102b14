"""Bulk upsert into a synced table, keyed on ``(organization_id, source_system, source_id)``.

One set of rules on both backends, enforced in SQL so that no row is read back into Python:

- rows with the same key inside one batch collapse to the one with the latest ``updated_at``
  (ties: the later row in the batch), so the result does not depend on how pages were split;
- an incoming row older than the stored one never overwrites it;
- an incoming row identical to the stored one is not written, so re-running a batch changes
  nothing (and counts nothing);
- a missing ``id`` is derived from the key with the formula of ``revtops_kernel.ids``.

The batch travels columnar: PostgreSQL gets it through ``COPY`` (CSV written by Arrow) into a
temporary staging table, then one ``INSERT … SELECT … ON CONFLICT DO UPDATE``; DuckDB scans the
Arrow table in place and writes a changed row as a delete and an insert (``_upsert_duckdb``).
Neither path inserts row by row.
"""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, TypeAlias

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.types import TypeEngine

from revtops_kernel.errors import UpsertError
from revtops_kernel.jsoncodec import dumps_sorted
from revtops_kernel.normalize.base import TableTuples
from revtops_kernel.store.database import driver_connection, fit_duckdb_memory_limit
from revtops_kernel.store.locks import share_resolution
from revtops_kernel.store.schema import (
    NATURAL_KEY,
    PENDING_COLUMN,
    RESOLUTION_INPUTS,
    RESOLUTION_READS,
    synced_tables,
)

log = logging.getLogger(__name__)

# TableTuples: rows as tuples in a declared column order (normalize.base.ColumnarNormalizer).
Rows: TypeAlias = pa.Table | pd.DataFrame | TableTuples | Iterable[Mapping[str, Any]]

ROW_ORDER = "__revtops_row"  # position in the batch: the tie-breaker between equal keys
COPY_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class UpsertResult:
    table: str
    received: int  # rows handed in
    unique: int  # rows left after collapsing equal keys
    written: int  # rows inserted or changed

    @property
    def unchanged(self) -> int:
        return self.unique - self.written


def upsert(conn: Connection, table: str | Table, rows: Rows) -> UpsertResult:
    """Write ``rows`` into ``table`` inside the caller's transaction.

    Run it in ``db.begin()`` together with whatever must commit atomically with the rows (a
    sync's cursor, for one).
    """
    target = _synced_table(table)
    batch = prepare_batch(target, rows)
    if batch.num_rows == 0 or batch.num_columns == 0:
        return UpsertResult(target.name, 0, 0, 0)
    columns = [name for name in batch.column_names if name != ROW_ORDER]
    unique = len(pc.unique(_key_fingerprint(batch)))
    # Collapsing equal keys costs a sort; a batch without duplicates (the usual page) skips it.
    collapse = unique < batch.num_rows
    pending = _pending_condition(target, columns)
    if pending == _ALWAYS and _before_first_resolution(conn, batch):
        pending = "FALSE"
    if conn.dialect.name == "postgresql":
        written = _upsert_postgresql(conn, target, batch, columns, collapse, pending)
    else:
        written = _upsert_duckdb(conn, target, batch, columns, collapse, pending)
    log.debug(
        "upsert %s: %d rows, %d unique, %d written", target.name, batch.num_rows, unique, written
    )
    return UpsertResult(target.name, batch.num_rows, unique, written)


# --- preparing the batch ---------------------------------------------------------------------


def _synced_table(table: str | Table) -> Table:
    tables = synced_tables()
    name = table if isinstance(table, str) else table.name
    if name not in tables:
        raise UpsertError(name, f"not a synced table; choose one of {', '.join(sorted(tables))}")
    return tables[name]


def prepare_batch(target: Table, rows: Rows) -> pa.Table:
    """Rows as an Arrow table typed like ``target``'s columns, plus their batch order."""
    frame = _as_arrow(target, rows)
    if frame.num_columns == 0:
        return frame
    unknown = [name for name in frame.column_names if name not in target.columns]
    if unknown:
        raise UpsertError(target.name, f"unknown column(s) {', '.join(sorted(unknown))}")
    missing = [key for key in NATURAL_KEY if key not in frame.column_names]
    if missing:
        raise UpsertError(target.name, f"every row needs {', '.join(missing)}")
    arrays, names = [], []
    for column in target.columns:  # table order keeps the SQL and the CSV aligned
        if column.name not in frame.column_names:
            continue
        values = frame.column(column.name)
        try:
            arrays.append(_cast(values, _arrow_type(column.type)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise UpsertError(target.name, f"column {column.name}: {exc}") from exc
        names.append(column.name)
    batch = pa.table(dict(zip(names, arrays, strict=True)))
    for key in NATURAL_KEY:
        if batch.column(key).null_count:
            raise UpsertError(
                target.name, f"{key} is empty in {batch.column(key).null_count} row(s)"
            )
    return batch.append_column(ROW_ORDER, pa.array(np.arange(batch.num_rows, dtype=np.int64)))


def _as_arrow(target: Table, rows: Rows) -> pa.Table:
    json_columns = {c.name for c in target.columns if isinstance(c.type, JSON)}
    uuid_columns = {c.name for c in target.columns if isinstance(c.type, Uuid)}
    if isinstance(rows, pa.Table):
        return _uuid_to_text(_json_to_text(rows, json_columns), uuid_columns)
    if isinstance(rows, pd.DataFrame):
        frame = rows.copy(deep=False)
        for name in json_columns & set(frame.columns):
            frame[name] = [_dump_json(v) for v in frame[name]]
        for name in uuid_columns & set(frame.columns):
            if frame[name].dtype == object:
                frame[name] = [None if v is None else str(v) for v in frame[name]]
        return pa.Table.from_pandas(frame, preserve_index=False)
    if isinstance(rows, TableTuples):
        # Transposed in C: no dict per row to build or to read back per column.
        transposed = map(list, zip(*rows.rows, strict=True))
        lists = dict(zip(rows.names, transposed, strict=True)) if rows.rows else {}
    else:
        lists = _columns_of(list(rows))
    # Column lists, not pa.Table.from_pylist: JSON and ids become text on the way.
    columns: dict[str, pa.Array | list[Any]] = {}
    times: list[tuple[list[Any], pa.Array | list[Any]]] = []  # timestamp columns converted
    for name, values in lists.items():
        if name in json_columns and not _TEXT_OR_NONE.issuperset(map(type, values)):
            # (A sync's columnar rows carry raw as text already: no pass over them then.)
            values = [_dump_json(v) for v in values]
        elif name in uuid_columns:
            values = _uuid_texts(values)
        column = target.columns.get(name)
        if column is None:
            columns[name] = values
            continue
        arrow_type = _arrow_type(column.type)
        if arrow_type != _UTC_MICROS:
            columns[name] = _typed(values, arrow_type)
            continue
        # A history row's times are often one value thrice (entered_at = created_at =
        # updated_at): equal lists (compared in C, mostly by identity) are converted once.
        same = next((array for earlier, array in times if earlier == values), None)
        columns[name] = same if same is not None else _typed(values, arrow_type)
        times.append((values, columns[name]))
    try:
        return pa.table(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UpsertError(target.name, f"mixed value types in a column: {exc}") from exc


def _typed(values: list[Any], arrow_type: pa.DataType) -> pa.Array | list[Any]:
    """``values`` as an array of the column's Arrow type when they convert as they are (the
    normalizers' rows: no type inference, and prepare_batch's cast is then a no-op), else the
    list itself, which Arrow infers and prepare_batch casts as before, with the same errors."""
    if arrow_type == _UTC_MICROS:
        try:
            return _utc_micros(values)
        except (TypeError, pa.ArrowInvalid, OverflowError):
            pass  # None, a naive or a non-datetime value: Arrow's own conversion below
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return values


_UTC_MICROS = pa.timestamp("us", tz="UTC")
_TEXT_OR_NONE = frozenset((str, type(None)))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_micros(values: list[Any]) -> pa.Array:
    """Aware datetimes as UTC microseconds, the same values as ``pa.array(values,
    type=timestamp[us, UTC])``, a third of its time: Arrow asks each value's tzinfo for its
    offset through Python, while ``value - epoch`` (in C) gives a timedelta Arrow reads
    directly. Raises TypeError for None, naive datetimes and anything else."""
    since = pa.array(list(map(operator.sub, values, repeat(_EPOCH))), pa.duration("us"))
    return since.cast(pa.int64()).cast(_UTC_MICROS)


def _uuid_texts(values: list[Any]) -> list[str | None]:
    """Ids as text: record_id's ids carry their hex digest (ids.RecordId; both backends read 32
    hex digits as the UUID), read in C when every value is one; otherwise one by one."""
    try:
        return list(map(_ID_TEXT, values))
    except AttributeError:  # a None, a plain uuid.UUID, or text
        return [None if v is None else str(v) for v in values]


_ID_TEXT = operator.attrgetter("_hex")


def _columns_of(records: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Each key's values, in record order (None where a record lacks the key)."""
    if not records:
        return {}
    first = records[0].keys()
    if all(record.keys() == first for record in records):
        # One normalizer's rows share their keys: transpose with itemgetter and zip, in C,
        # instead of a dict.get per cell.
        names = list(first)
        if len(names) == 1:
            return {names[0]: [record[names[0]] for record in records]}
        transposed = zip(*map(operator.itemgetter(*names), records), strict=True)
        return {name: list(values) for name, values in zip(names, transposed, strict=True)}
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    return {name: [record.get(name) for record in records] for name in keys}


def _json_to_text(frame: pa.Table, json_columns: set[str]) -> pa.Table:
    for name in json_columns & set(frame.column_names):
        column = frame.column(name)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            texts = pa.array([_dump_json(v) for v in column.to_pylist()], pa.string())
            frame = frame.set_column(frame.column_names.index(name), name, texts)
    return frame


def _uuid_to_text(frame: pa.Table, uuid_columns: set[str]) -> pa.Table:
    # Arrow holds UUIDs as 16 raw bytes (the uuid extension type); the SQL side wants text.
    for name in uuid_columns & set(frame.column_names):
        column = frame.column(name)
        if isinstance(column.type, pa.ExtensionType) or pa.types.is_fixed_size_binary(column.type):
            values = column.to_pylist()
            texts = pa.array(
                [
                    None
                    if v is None
                    else str(v if isinstance(v, uuid.UUID) else uuid.UUID(bytes=v))
                    for v in values
                ],
                pa.string(),
            )
            frame = frame.set_column(frame.column_names.index(name), name, texts)
    return frame


def _dump_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value  # already JSON text
    # Sorted keys: the same payload always gives the same text, so unchanged rows compare equal
    # (orjson, spelled exactly as json.dumps was: jsoncodec).
    text = dumps_sorted(value)
    # PostgreSQL's jsonb refuses the NUL character; it carries no meaning in CRM text.
    return text.replace("\\u0000", "")


def _cast(values: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    if pa.types.is_decimal(target) and not pa.types.is_decimal(values.type):
        # Integers need room before they narrow; floats are rounded to the column's scale
        # first (0.1 + 0.2 is 0.30, not a loss of data). Values that don't fit still fail.
        if pa.types.is_floating(values.type):
            values = pc.round(values, target.scale)
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            values = values.cast(pa.decimal128(38, target.scale))
    return values.cast(target)


def _arrow_type(sql_type: TypeEngine[Any]) -> pa.DataType:
    if isinstance(sql_type, Uuid | JSON | Text | String):
        return pa.string()
    if isinstance(sql_type, DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(sql_type, Date):
        return pa.date32()
    if isinstance(sql_type, Numeric):
        return pa.decimal128(sql_type.precision or 38, sql_type.scale or 0)
    if isinstance(sql_type, Integer):
        return pa.int64()
    if isinstance(sql_type, Boolean):
        return pa.bool_()
    raise TypeError(f"no Arrow type for {sql_type!r}")


# --- the SQL shared by both backends -----------------------------------------------------------


def _pending_condition(target: Table, columns: list[str]) -> str | None:
    """How a written row of a table identity resolution reads is marked for it (schema's
    ``RESOLUTION_INPUTS``), or None."""
    if PENDING_COLUMN in columns:
        return None  # the caller sets it (a test, a backfill)
    return RESOLUTION_INPUTS.get(target.name)


_ALWAYS = "TRUE"  # RESOLUTION_INPUTS' condition of the CRM tables: every written row
_RESOLVED = "SELECT 1 FROM identity_resolutions WHERE organization_id = :org"


def _before_first_resolution(conn: Connection, batch: pa.Table) -> bool:
    """Whether the batch's one organization was never resolved (PostgreSQL): its first
    resolution is then a full pass (``resolve.resolve_identities``), which reads every row
    whatever its mark, so the CRM rows written before it need none. Marked, they cost that
    pass an UPDATE of each (a new version of a wide row, an entry in each index): 359k rows
    after HubSpot's first load at scale 10, most of its resolution. Checked again under the
    resolution lock held shared until this transaction ends: a resolution that started
    first has committed by then (the rows are marked), and none starts before the commit.
    DuckDB keeps the marks: clearing them in place costs little there."""
    if conn.dialect.name != "postgresql":
        return False
    orgs = pc.unique(batch.column("organization_id"))
    if len(orgs) != 1:
        return False
    params = {"org": orgs[0].as_py()}
    if conn.execute(text(_RESOLVED), params).first() is not None:
        return False
    share_resolution(conn, params["org"])
    return conn.execute(text(_RESOLVED), params).first() is None


def _id_expression(target: Table, source: str) -> str:
    # Same formula as revtops_kernel.ids.record_id.
    return (
        f"CAST(md5({source}.organization_id || ':' || {source}.source_system || "
        f"':{target.name}:' || {source}.source_id) AS UUID)"
    )


def _conflict_clause(target: Table, columns: list[str], pending: str | None = None) -> str:
    updatable = [c for c in columns if c not in (*NATURAL_KEY, "id")]
    if not updatable:
        return f"ON CONFLICT ({', '.join(NATURAL_KEY)}) DO NOTHING"
    assignments = ", ".join(f"{c} = excluded.{c}" for c in updatable)
    if pending is not None:  # only rows that actually change get here (the WHERE below)
        assignments += f", {PENDING_COLUMN} = {_pending_update(target, updatable, pending)}"
    stored = ", ".join(f"{target.name}.{c}" for c in updatable)
    incoming = ", ".join(f"excluded.{c}" for c in updatable)
    conditions = [f"ROW({stored}) IS DISTINCT FROM ROW({incoming})"]
    if "updated_at" in updatable:
        stored_at = f"{target.name}.updated_at"
        conditions.insert(0, f"({stored_at} IS NULL OR excluded.updated_at >= {stored_at})")
    return (
        f"ON CONFLICT ({', '.join(NATURAL_KEY)}) DO UPDATE SET {assignments} "
        f"WHERE {' AND '.join(conditions)}"
    )


def _pending_update(target: Table, updatable: list[str], pending: str) -> str:
    """The mark of a stored row the batch changes (PostgreSQL's ON CONFLICT DO UPDATE)."""
    kept = _kept_mark(target, updatable, pending, target.name, "excluded")
    return pending.format(row="excluded") if kept is None else kept


def _kept_mark(
    target: Table, updatable: list[str], pending: str, stored: str, incoming: str
) -> str | None:
    """The mark of stored row ``stored`` that row ``incoming`` rewrites, for a CRM table: as
    it was, unless a column resolution reads changed (``schema.RESOLUTION_READS``; a row
    still marked stays marked), so a re-read that rewrote a contact's title or a deal's
    amount gives its resolution nothing to do. None for other tables (marked by their
    condition, as on an insert) and while the organization was never resolved."""
    reads = RESOLUTION_READS.get(target.name)
    if reads is None or pending != _ALWAYS:
        return None
    read = [c for c in reads if c in updatable]
    kept = f"COALESCE({stored}.{PENDING_COLUMN}, FALSE)"
    if not read:
        return kept
    before = ", ".join(f"{stored}.{c}" for c in read)
    after = ", ".join(f"{incoming}.{c}" for c in read)
    return f"({kept} OR ROW({before}) IS DISTINCT FROM ROW({after}))"


def _latest_first(columns: list[str]) -> str:
    recency = "updated_at DESC NULLS LAST, " if "updated_at" in columns else ""
    return f"{recency}{ROW_ORDER} DESC"


def _insert_columns(columns: list[str], pending: str | None) -> list[str]:
    names = columns if "id" in columns else [*columns, "id"]
    return names if pending is None else [*names, PENDING_COLUMN]


# --- PostgreSQL: COPY into staging, then one INSERT … ON CONFLICT -------------------------------


def _upsert_postgresql(
    conn: Connection,
    target: Table,
    batch: pa.Table,
    columns: list[str],
    collapse: bool,
    pending: str | None,
) -> int:
    stage = f"_revtops_stage_{target.name}"
    staged = [*columns, ROW_ORDER]
    raw = driver_connection(conn)
    with raw.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{stage}")
        cursor.execute(
            f"CREATE TEMP TABLE {stage} AS "
            f"SELECT {', '.join(columns)} FROM {target.name} WITH NO DATA"
        )
        cursor.execute(f"ALTER TABLE {stage} ADD COLUMN {ROW_ORDER} bigint")
        options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
        with cursor.copy(f"COPY {stage} ({', '.join(staged)}) FROM STDIN (FORMAT csv)") as copy:
            for chunk in _naive_utc(batch.select(staged)).to_batches(max_chunksize=COPY_CHUNK_ROWS):
                sink = pa.BufferOutputStream()
                pa_csv.write_csv(chunk, sink, write_options=options)
                # Arrow's buffer itself: no copy into bytes, nor of each slice psycopg sends.
                copy.write(memoryview(sink.getvalue()))
        select = ", ".join(columns)
        if "id" not in columns:
            select += f", {_id_expression(target, 'latest')}"
        if pending is not None:
            select += f", {pending.format(row='latest')}"
        source = (
            f"(SELECT DISTINCT ON ({', '.join(NATURAL_KEY)}) * FROM {stage} "
            f"ORDER BY {', '.join(NATURAL_KEY)}, {_latest_first(columns)})"
            if collapse
            else stage
        )
        cursor.execute(
            f"INSERT INTO {target.name} ({', '.join(_insert_columns(columns, pending))}) "
            f"SELECT {select} FROM {source} AS latest "
            f"{_conflict_clause(target, columns, pending)}"
        )
        written = cursor.rowcount
        cursor.execute(f"DROP TABLE {stage}")
    return written


# --- DuckDB: scan the Arrow table in place; a changed row is deleted and inserted again ------
#
# Not ``INSERT … ON CONFLICT DO UPDATE``: DuckDB updates a row in place, column by column, and
# an update of a compressed column (``raw`` above all) is costly twice more after the
# statement: replaying it from the write-ahead log makes every later open of the file slower
# (0.4 s instead of 0.2 s after 300 scattered activities), and the checkpoint rewrites the
# column segments of every row group it touched (1.6 s for those 300 rows; 2-2.5 s after each
# of a scale-0.5 HubSpot re-sync's activity streams). A delete only marks the old row and the
# insert appends the new one: the same 300 rows cost 0.08 s to checkpoint and nothing to open.
_CHANGED = "_revtops_changed"
_KEPT_MARK = "__revtops_kept_mark"
_OLD_ROW = "__revtops_old_row"


def _upsert_duckdb(
    conn: Connection,
    target: Table,
    batch: pa.Table,
    columns: list[str],
    collapse: bool,
    pending: str | None,
) -> int:
    view = f"_revtops_batch_{target.name}"
    raw = driver_connection(conn)
    casts = ", ".join(
        f"CAST({view}.{c} AS {target.columns[c].type.compile(dialect=conn.dialect)}) AS {c}"
        for c in columns
    )
    select = casts if "id" in columns else f"{casts}, {_id_expression(target, view)} AS id"
    if pending is not None:
        select += f", {pending.format(row=view)} AS {PENDING_COLUMN}"
    latest_only = (
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(NATURAL_KEY)} "
        f"ORDER BY {_latest_first(columns)}) = 1"
        if collapse
        else ""
    )
    written_columns = _insert_columns(columns, pending)
    # The batch's rows as the table's types, each with its position (the join key below).
    incoming = f"(SELECT {select}, {view}.{ROW_ORDER} FROM {view} {latest_only}) AS i"
    # The indexes earlier writes of this connection pinned get room on top of the base limit
    # (store.database): this upsert's own join and index loads keep the base.
    fit_duckdb_memory_limit(conn)
    raw.register(view, batch)
    try:
        if _nothing_stored(raw, target, batch):
            # Every row is new (a first load): inserted as they are, without the join that
            # finds the changed ones (a temp table and a join back: ~0.2 s of scale 1's load).
            inserted = raw.execute(
                f"INSERT INTO {target.name} ({', '.join(written_columns)}) "
                f"SELECT {select} FROM {view} {latest_only}"
            ).fetchone()
            written = int(inserted[0]) if inserted else 0
        else:
            written = _write_changed(raw, target, view, select, incoming, columns, pending)
    except BaseException:
        # A failed statement aborts DuckDB's transaction, and unregistering then fails with
        # "transaction is aborted", which would replace the real error (an out-of-memory
        # one, say): the first error is the one raised. The failed unit's rollback, or its
        # connection's close, drops the view anyway.
        with suppress(duckdb.Error):
            raw.unregister(view)
        raise
    raw.unregister(view)
    return written


def _write_changed(
    raw: Any,
    target: Table,
    view: str,
    select: str,
    incoming: str,
    columns: list[str],
    pending: str | None,
) -> int:
    """The batch's new rows inserted and the stored rows it changes rewritten (deleted and
    inserted again); the number of rows written."""
    written_columns = _insert_columns(columns, pending)
    # The stored row's columns the batch does not set: kept when the row is written again.
    kept = [c.name for c in target.columns if c.name not in written_columns]
    key = " AND ".join(f"t.{k} = i.{k}" for k in NATURAL_KEY)
    # A rewritten CRM row's mark, from the stored row (as PostgreSQL's _pending_update).
    updatable = [c for c in columns if c not in (*NATURAL_KEY, "id")]
    mark = None if pending is None else _kept_mark(target, updatable, pending, "t", "i")
    kept_mark = "" if mark is None else f", {mark} AS {_KEPT_MARK}"
    raw.execute(f"DROP TABLE IF EXISTS temp.{_CHANGED}")
    # Which rows are new and which stored ones the batch changes (upsert's rules, as
    # _conflict_clause): only positions and what a rewritten row keeps of the stored one
    # are set aside, not the batch's own columns (copying those, raw included, into the
    # temp table was half the statements' time on a first load).
    raw.execute(
        f"CREATE TEMP TABLE {_CHANGED} AS "
        f"SELECT i.{ROW_ORDER}, t.rowid AS {_OLD_ROW}, t.id AS __revtops_old_id"
        + "".join(f", t.{c} AS __revtops_kept_{c}" for c in kept)
        + kept_mark
        + f" FROM {incoming} LEFT JOIN {target.name} AS t ON {key} "
        f"WHERE t.rowid IS NULL OR ({_changed_condition(columns)})"
    )
    written, rewritten = raw.execute(
        f"SELECT count(*), count({_OLD_ROW}) FROM {_CHANGED}"
    ).fetchone()

    def chosen(which: str) -> str:
        # The batch's rows the temp table names, converted after the join: only they go
        # through the casts and the id formula again.
        return (
            f"(SELECT {select}, c.* FROM {view} JOIN {_CHANGED} AS c "
            f"ON c.{ROW_ORDER} = {view}.{ROW_ORDER} WHERE c.{_OLD_ROW} {which}) AS i"
        )

    if rewritten:
        stored = f"SELECT {_OLD_ROW} FROM {_CHANGED} WHERE {_OLD_ROW} IS NOT NULL"
        raw.execute(f"DELETE FROM {target.name} WHERE rowid IN ({stored})")
        # A stored row keeps its id (derived from the same key) and the columns not given.
        renamed = {"id": "__revtops_old_id", **({PENDING_COLUMN: _KEPT_MARK} if mark else {})}
        values = [renamed.get(c, c) for c in written_columns] + [
            f"__revtops_kept_{c}" for c in kept
        ]
        raw.execute(
            f"INSERT INTO {target.name} ({', '.join(written_columns + kept)}) "
            f"SELECT {', '.join(values)} FROM {chosen('IS NOT NULL')}"
        )
    if written > rewritten:
        raw.execute(
            f"INSERT INTO {target.name} ({', '.join(written_columns)}) "
            f"SELECT {', '.join(written_columns)} FROM {chosen('IS NULL')}"
        )
    raw.execute(f"DROP TABLE {_CHANGED}")
    return int(written)


def _nothing_stored(raw: Any, target: Table, batch: pa.Table) -> bool:
    """Whether ``target`` holds no row of the batch's one organization and source system, so
    that no row of the batch can match a stored one."""
    keys = []
    for name in ("organization_id", "source_system"):
        values = pc.unique(batch.column(name))
        if len(values) != 1:
            return False
        keys.append(values[0].as_py())
    stored = raw.execute(
        f"SELECT 1 FROM {target.name} WHERE organization_id = ? AND source_system = ? LIMIT 1",
        keys,
    ).fetchone()
    return stored is None


def _changed_condition(columns: list[str]) -> str:
    """Whether incoming row ``i`` overwrites stored row ``t`` (the rules of _conflict_clause)."""
    updatable = [c for c in columns if c not in (*NATURAL_KEY, "id")]
    if not updatable:
        return "FALSE"
    stored = ", ".join(f"t.{c}" for c in updatable)
    incoming = ", ".join(f"i.{c}" for c in updatable)
    conditions = [f"ROW({stored}) IS DISTINCT FROM ROW({incoming})"]
    if "updated_at" in updatable:
        conditions.insert(0, "(t.updated_at IS NULL OR i.updated_at >= t.updated_at)")
    return " AND ".join(conditions)


def _naive_utc(batch: pa.Table) -> pa.Table:
    """Timestamps as UTC wall time: Arrow writes zoned timestamps to CSV ~10x slower, and the
    staging session's time zone is UTC, so PostgreSQL reads them back as the same instants."""
    for index, column_type in enumerate(batch.schema.types):
        if pa.types.is_timestamp(column_type) and column_type.tz is not None:
            naive = batch.column(index).cast(pa.timestamp(column_type.unit))
            batch = batch.set_column(index, batch.schema.names[index], naive)
    return batch


def _key_fingerprint(batch: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(*(batch.column(k) for k in NATURAL_KEY), "\x1f")
