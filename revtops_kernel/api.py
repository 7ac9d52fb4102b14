"""The notebook API: ``sql()`` runs a query through the same guard as the assistant.

    from revtops_kernel import sql
    sql("SELECT stage, sum(amount) FROM deals WHERE deleted_at IS NULL GROUP BY stage")

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

    from revtops_kernel.store.database import Database
    from revtops_kernel.ui.answer import Answer


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
) -> Answer:
    """Ask the copilot and return the whole ``Answer`` (text, queries, artifacts, thread id).

    Nothing streams: the answer displays as rendered HTML when it is a cell's value; use
    ``%%ask`` to watch it stream. Pass ``conversation_id=answer.conversation_id`` to follow up.
    """
    from revtops_kernel.ui.asking import answer_question
    from revtops_kernel.ui.copilot_backend import CopilotBackend

    settings = _settings()
    db = database(settings)
    _require_known(db, org or settings.org)
    backend = CopilotBackend(db, settings, org=org)
    thread = uuid.UUID(str(conversation_id)) if conversation_id is not None else None
    return answer_question(
        backend, question, conversation_id=thread, timezone=timezone or settings.timezone
    )
