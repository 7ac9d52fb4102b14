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
    """
    from revtops_kernel.agent.guard import run_guarded

    settings = _settings()
    result = run_guarded(
        database(settings),
        query,
        org=org or settings.org,
        params=params,
        max_rows=max_rows or settings.query_max_rows,
        timeout=settings.query_timeout,
    )
    return result.frame


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
    backend = CopilotBackend(database(settings), settings, org=org)
    thread = uuid.UUID(str(conversation_id)) if conversation_id is not None else None
    return answer_question(
        backend, question, conversation_id=thread, timezone=timezone or settings.timezone
    )
