"""The normalizers' contract: pure functions from a provider's raw record to common-schema rows.

A normalizer does no I/O. Each provider module exposes one function per stream,
``(record, ctx) -> Rows``, where ``Rows`` maps a table name to the rows that record becomes (an
engagement becomes one activity plus its participants, a pipeline becomes a pipeline plus its
stages). A record that cannot be normalized raises ``RecordRejected`` with a reason a person can
act on; ``normalize_page`` turns that (and any ValueError, KeyError, TypeError, AttributeError or
decimal.InvalidOperation the function hits) into a quarantined record instead of a crash, so one
bad record never stops a sync and is never dropped silently. The value parsers that name the
failing field are in ``values``; rows both providers build alike are in ``rows``.
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


@dataclass
class NormalizedPage:
    rows: Rows = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)

    def add(self, rows: Rows) -> None:
        for table, table_rows in rows.items():
            self.rows.setdefault(table, []).extend(table_rows)

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


RecordNormalizer: TypeAlias = Callable[[Mapping[str, Any], NormalizeContext], Rows]

_RECORD_FAILURES = (
    RecordRejected,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,  # a nested value of the wrong shape (.get on a string)
    decimal.InvalidOperation,
)


def normalize_page(
    stream: str,
    records: Iterable[Mapping[str, Any]],
    normalizer: RecordNormalizer,
    ctx: NormalizeContext,
    *,
    id_field: str = "id",
) -> NormalizedPage:
    """Normalize every record of a page; quarantine the ones that fail, with the reason."""
    page = NormalizedPage()
    for record in records:
        try:
            page.add(normalizer(record, ctx))
        except _RECORD_FAILURES as exc:
            reason = exc.reason if isinstance(exc, RecordRejected) else _describe(exc)
            source_id = record.get(id_field) if isinstance(record, Mapping) else None
            page.quarantined.append(
                Quarantined(stream, None if source_id is None else str(source_id), reason, record)
            )
    return page


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return f"{type(exc).__name__}: {exc}"
