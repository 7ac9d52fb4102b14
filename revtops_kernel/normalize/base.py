"""The normalizers' contract: pure functions from a provider's raw record to common-schema rows.

A normalizer does no I/O. Each provider module exposes one function per stream,
``(record, ctx) -> Rows``, where ``Rows`` maps a table name to the rows that record becomes (an
engagement becomes one activity plus its participants, a pipeline becomes a pipeline plus its
stages). A record that cannot be normalized raises ``RecordRejected`` with a reason a person can
act on; ``normalize_page`` turns that (and any ValueError, KeyError, TypeError, AttributeError or
decimal.InvalidOperation the function hits) into a quarantined record instead of a crash, so one
bad record never stops a sync and is never dropped silently. The value parsers that name the
failing field are in ``values``; rows both providers build alike are in ``rows``.

A ``ColumnarNormalizer`` is a record normalizer whose rows are tuples in a declared column
order. ``normalize_page(..., raw=...)`` keeps such a page as tuples (``NormalizedPage.tuples``):
the sync's write path transposes them into Arrow columns in C (``store.upsert``) instead of
building a dict per row and walking every dict again per column. Called on one record it gives
dict rows like any normalizer (tests, stage maps, other callers).
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

from revtops_kernel.ids import record_id

Row: TypeAlias = dict[str, Any]
Rows: TypeAlias = dict[str, list[Row]]


class RecordRejected(ValueError):
    """A record that cannot become rows; ``reason`` says what is wrong with it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class StageInfo:
    """What a deal needs to know about its stage (from pipelines / OpportunityStage)."""

    stage_id: uuid.UUID
    pipeline_id: uuid.UUID | None
    label: str
    display_order: int | None
    probability: Decimal | None
    is_closed: bool
    is_won: bool
    forecast_category: str | None = None


@dataclass(frozen=True)
class NormalizeContext:
    organization_id: str
    source_system: str
    # Provider stage key -> stage: HubSpot's stage id (per pipeline: "pipeline:stage" and the
    # bare stage id), Salesforce's stage label (Opportunity.StageName holds the label).
    stages: Mapping[str, StageInfo] = field(default_factory=dict)
    # The organization's own email domains: people there are internal (owners), not contacts.
    internal_domains: frozenset[str] = frozenset()

    def id_for(self, table: str, source_id: str | int | None) -> uuid.UUID | None:
        """The row id of a linked record (``None`` when there is no link)."""
        if source_id is None or source_id == "":
            return None
        return record_id(self.organization_id, self.source_system, table, str(source_id))

    def base_row(self, table: str, source_id: str) -> Row:
        return {
            "id": record_id(self.organization_id, self.source_system, table, source_id),
            "organization_id": self.organization_id,
            "source_system": self.source_system,
            "source_id": source_id,
        }


@dataclass(frozen=True)
class Quarantined:
    stream: str
    source_id: str | None
    reason: str
    raw: Any


@dataclass(frozen=True)
class TableTuples:
    """One table's rows as tuples in ``names`` order (what a ``ColumnarNormalizer`` makes)."""

    names: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[Row]:
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in self.rows]


@dataclass
class NormalizedPage:
    rows: Rows = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    # Tables a ColumnarNormalizer gave as tuples (normalize_page with ``raw``); not in ``rows``.
    tuples: dict[str, TableTuples] = field(default_factory=dict)

    def add(self, rows: Rows) -> None:
        for table, table_rows in rows.items():
            self.rows.setdefault(table, []).extend(table_rows)

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values()) + sum(
            len(table.rows) for table in self.tuples.values()
        )


RecordNormalizer: TypeAlias = Callable[[Mapping[str, Any], NormalizeContext], Rows]

_RECORD_FAILURES = (
    RecordRejected,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,  # a nested value of the wrong shape (.get on a string)
    decimal.InvalidOperation,
)


# What a columnar normalizer stores in a ``raw`` column: the record itself for dict rows, or
# (normalize_page's ``raw``) its JSON text, made while the record is at hand.
RawValue: TypeAlias = Callable[[Any], Any]
# (record, ctx, raw) -> one list of row tuples per table, in ColumnarNormalizer.tables' order.
TupleParts: TypeAlias = Callable[
    [Mapping[str, Any], NormalizeContext, RawValue], tuple[list[tuple[Any, ...]], ...]
]


def _itself(value: Any) -> Any:
    return value


class ColumnarNormalizer:
    """A record normalizer whose rows are tuples in each table's declared column order.

    ``tables`` maps each table it fills to its columns; ``parts(record, ctx, raw)`` gives the
    record's rows of every table as tuples in that order, and raises, like any normalizer, for
    a record it cannot read (every value is computed before a tuple is made, so a failing
    record leaves nothing behind). A table whose columns leave ``id`` out gets it from the
    store, which derives it from the natural key with ``record_id``'s formula in SQL
    (``store.upsert``: an id nothing else points at need not cost an MD5 in Python); its dict
    rows get it here.
    """

    def __init__(self, tables: Mapping[str, tuple[str, ...]], parts: TupleParts) -> None:
        self.tables = tuple(tables.items())
        self.parts = parts
        self.__name__ = getattr(parts, "__name__", "columnar")

    def __call__(self, record: Mapping[str, Any], ctx: NormalizeContext) -> Rows:
        produced = self.parts(record, ctx, _itself)
        out: Rows = {}
        for (table, names), rows in zip(self.tables, produced, strict=True):
            out[table] = dicts = TableTuples(names, rows).dicts()
            if "id" not in names:
                for row in dicts:
                    row["id"] = ctx.id_for(table, row["source_id"])
        return out

    def page(
        self,
        stream: str,
        records: Iterable[Mapping[str, Any]],
        ctx: NormalizeContext,
        raw: RawValue,
        id_field: str,
    ) -> NormalizedPage:
        page = NormalizedPage()
        sinks: list[list[tuple[Any, ...]]] = [[] for _ in self.tables]
        parts = self.parts
        for record in records:
            try:
                produced = parts(record, ctx, raw)
            except _RECORD_FAILURES as exc:
                page.quarantined.append(_quarantined(stream, record, exc, id_field))
                continue
            for sink, rows in zip(sinks, produced):  # noqa: B905 (parts' contract; hot loop)
                sink.extend(rows)
        page.tuples = {
            table: TableTuples(names, rows)
            for (table, names), rows in zip(self.tables, sinks, strict=True)
            if rows
        }
        return page


def normalize_page(
    stream: str,
    records: Iterable[Mapping[str, Any]],
    normalizer: RecordNormalizer,
    ctx: NormalizeContext,
    *,
    id_field: str = "id",
    raw: RawValue | None = None,
) -> NormalizedPage:
    """Normalize every record of a page; quarantine the ones that fail, with the reason.

    With ``raw`` (the sync's JSON serializer), a ``ColumnarNormalizer``'s tables stay tuples
    (``NormalizedPage.tuples``) with ``raw`` applied to the record for its ``raw`` column;
    other normalizers, and every call without it, give dict rows (``NormalizedPage.rows``)."""
    if raw is not None and isinstance(normalizer, ColumnarNormalizer):
        return normalizer.page(stream, records, ctx, raw, id_field)
    page = NormalizedPage()
    for record in records:
        try:
            page.add(normalizer(record, ctx))
        except _RECORD_FAILURES as exc:
            page.quarantined.append(_quarantined(stream, record, exc, id_field))
    return page


def _quarantined(stream: str, record: Any, exc: Exception, id_field: str) -> Quarantined:
    reason = exc.reason if isinstance(exc, RecordRejected) else _describe(exc)
    source_id = record.get(id_field) if isinstance(record, Mapping) else None
    return Quarantined(stream, None if source_id is None else str(source_id), reason, record)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return f"{type(exc).__name__}: {exc}"
