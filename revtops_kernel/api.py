"""The notebook API: ``sql()`` runs a query through the same guard as the assistant; ``ask()``
answers a question through the same path as the chat (verified queries first).

    from revtops_kernel import ask, sql
    sql("SELECT stage, sum(amount) FROM deals WHERE deleted_at IS NULL GROUP BY stage")
    ask("pipeline by stage")   # a verified answer, with or without ANTHROPIC_API_KEY

Settings come from the environment (``load_settings()``), read once per process; the store is
opened once per settings.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from revtops_kernel.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from revtops_kernel.answering.record import AnswerRecord
    from revtops_kernel.store.database import Database


@functools.cache
def _settings() -> Settings:
    return load_settings()


@functools.cache
def database(settings: Settings) -> Database:
    """The store for ``settings``, opened once and shared by every call in this process."""
    from revtops_kernel.store.database import Database

    return Database.from_settings(settings)


# Organizations found in the store by this process: checked once, not on every query.
_known_orgs: set[tuple[str, str]] = set()


def _require_known(db: Database, org: str) -> None:
    """Refuse an organization the store does not know (``UnknownOrganizationError``)."""
    from revtops_kernel.known_orgs import require_known_org

    key = (db.display_url, org)
    if key not in _known_orgs:
        require_known_org(db, org)
        _known_orgs.add(key)


def _money_as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Decimal (``object``) columns as float64, the dtype analysts compute and plot with."""
    from decimal import Decimal

    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            values = column.dropna()
            if len(values) and all(isinstance(v, Decimal) for v in values):
                frame[name] = column.astype("float64")
    return frame


def sql(
    query: str,
    *,
    org: str | None = None,
    params: Mapping[str, Any] | None = None,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Run one read-only SELECT as ``org`` (default: REVTOPS_ORG) and return its rows.

    ``:name`` placeholders bind ``params``. Raises ``QueryRefusedError`` with the reason when
    the guard refuses the query, ``QueryTimeoutError`` past REVTOPS_QUERY_TIMEOUT. At most
    ``max_rows`` (default REVTOPS_QUERY_MAX_ROWS) rows come back.

    An organization the store does not know raises ``UnknownOrganizationError`` naming the
    known ones (a store that knows none yet accepts any). Money and other ``numeric`` columns
    come back as float64 (PostgreSQL returns them as exact ``Decimal`` objects, which pandas
    keeps as ``object`` columns); ``revtops sql --format json`` keeps the exact values.
    """
    from revtops_kernel.agent.guard import run_guarded

    settings = _settings()
    db = database(settings)
    _require_known(db, org or settings.org)
    result = run_guarded(
        db,
        query,
        org=org or settings.org,
        params=params,
        max_rows=max_rows or settings.query_max_rows,
        timeout=settings.query_timeout,
    )
    return _money_as_float(result.frame)


def ask(
    question: str,
    *,
    org: str | None = None,
    conversation_id: uuid.UUID | str | None = None,
    timezone: str | None = None,
) -> AnswerRecord:
    """Answer ``question`` and return the whole record (text, verified answers, queries,
    artifacts, thread id, cost).

    A question a verified query answers gets that query's table, chart and SQL (marked verified)
    with or without ANTHROPIC_API_KEY; with a key the model writes the text around those
    numbers. Other questions go to the model, or without a key come back with the closest
    verified questions (``record.suggestions``). Nothing streams: the record displays as HTML
    when it is a cell's value; use ``%%ask`` to watch it stream. Pass
    ``conversation_id=record.conversation_id`` to follow up.
    """
    from revtops_kernel.answering import Answerer
    from revtops_kernel.answering.record import collect

    settings = _settings()
    db = database(settings)
    _require_known(db, org or settings.org)
    thread = uuid.UUID(str(conversation_id)) if conversation_id is not None else None
    answerer = Answerer(db, settings, org=org)
    events = answerer.ask(question, conversation_id=thread, timezone=timezone)
    return collect(question, events)
