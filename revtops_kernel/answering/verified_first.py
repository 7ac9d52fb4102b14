"""A routed question's verified answer: the query run once, as an event and as a tool call.

The same result feeds the ``VerifiedAnswer`` event (table, chart, SQL, badge) and the
completed ``run_verified_query`` tool call handed to the model (``Copilot.ask(prelude=...)``),
so the model writes its narrative around exactly these numbers and has no reason to query them
again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd

from revtops_kernel.agent.events import VerifiedAnswer
from revtops_kernel.agent.routing import Route
from revtops_kernel.agent.tools import data_envelope, json_value, preview
from revtops_kernel.agent.verified import VERIFIED_QUERIES, VerifiedResult, run_verified
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database

log = logging.getLogger(__name__)

TOOL_NAME = "run_verified_query"
MAX_CHART_ROWS = 40  # more categories than this read better as the table alone
_MONEY_WORDS = ("amount", "pipeline", "revenue", "value", "won", "arr", "acv", "bookings")


@dataclass(frozen=True)
class VerifiedRun:
    """A verified query's result for one routed question."""

    route: Route
    result: VerifiedResult
    frame: pd.DataFrame  # the rows shown: the first ``route.limit`` for "top 5"
    max_rows: int
    chart: dict[str, Any] | None = None  # drawn from more than the rows (a deal's timeline)

    @property
    def name(self) -> str:
        return self.result.name

    @property
    def title(self) -> str:
        return VERIFIED_QUERIES[self.name].title

    @property
    def note(self) -> str | None:
        return VERIFIED_QUERIES[self.name].note

    @property
    def params(self) -> dict[str, Any]:
        """The parameters it ran with, JSON-safe (dates as ISO text)."""
        return {k: json_value(v) for k, v in self.result.params.items()}

    def event(self, *, narrated: bool) -> VerifiedAnswer:
        truncated = bool(self.result.truncated)
        return VerifiedAnswer(
            name=self.name,
            title=self.title,
            params=self.params,
            sql=self.result.sql,
            table=preview(self.frame, truncated=truncated),
            chart=self.chart if self.chart is not None else verified_chart(self),
            note=self.note,
            confidence=self.route.confidence,
            narrated=narrated,
        )

    def prelude(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The completed tool call the model continues from (stored after the question)."""
        tool_id = f"toolu_verified_{uuid.uuid4().hex[:20]}"
        params = {k: json_value(v) for k, v in self.route.params.items()}
        call = {"type": "tool_use", "id": tool_id, "name": TOOL_NAME,
                "input": {"name": self.name, "params": params}}  # fmt: skip
        extra: dict[str, Any] = {"verified": True, "verified_query": self.name}
        if self.note:
            extra["approximation"] = self.note
        content = data_envelope(
            self.frame, truncated=bool(self.result.truncated), max_rows=self.max_rows, extra=extra
        )
        result = {"type": "tool_result", "tool_use_id": tool_id, "content": content}
        return [("assistant", [call]), ("user", [result])]


def run_route(
    db: Database, settings: Settings, route: Route, *, org: str, today: date
) -> VerifiedRun:
    """Run the routed query (raises ``VerifiedQueryError`` / ``QueryError``)."""
    assert route.name is not None
    result = run_verified(
        db,
        route.name,
        route.params,
        org=org,
        max_rows=settings.query_max_rows,
        timeout=settings.query_timeout,
        today=today,
    )
    frame = result.frame if route.limit is None else result.frame.head(route.limit)
    chart = _timeline_chart(db, org, frame) if route.name == "deal_timeline" else None
    return VerifiedRun(route, result, frame, settings.query_max_rows, chart)


def _timeline_chart(db: Database, org: str, frame: pd.DataFrame) -> dict[str, Any] | None:
    """A deal timeline's own chart (stage steps, amount, event lanes): its rows are events,
    which no bar chart of label and value can draw. Never fails the answer."""
    if frame.empty or "deal_id" not in frame.columns:
        return None
    try:
        from revtops_kernel.artifacts.figures import figure_json
        from revtops_kernel.artifacts.timeline_chart import timeline_figure
        from revtops_kernel.intelligence.timeline import deal_timeline

        timeline = deal_timeline(db, org, str(frame["deal_id"].iloc[0]))
        return figure_json(timeline_figure(timeline))
    except Exception:  # a chart is a bonus: the table and SQL still answer
        log.debug("no timeline chart", exc_info=True)
        return None


def verified_chart(run: VerifiedRun) -> dict[str, Any] | None:
    """A bar chart of the first label column by the first numeric one, when the rows make one
    (a few categories, one value each); None otherwise. Never fails the answer."""
    frame = run.frame
    if not 1 <= len(frame) <= MAX_CHART_ROWS:
        return None
    numeric = [str(c) for c in frame.columns if _is_number(frame[c])]
    labels = [
        str(c)
        for c in frame.columns
        if str(c) not in numeric
        and (frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]))
        and frame[c].notna().all()
        and not frame[c].duplicated().any()
    ]  # a column that names each row once
    if not numeric or not labels:
        return None
    y = next((c for c in numeric if any(w in c.lower() for w in _MONEY_WORDS)), numeric[0])
    spec = {
        "kind": "chart",
        "title": run.title,
        "type": "bar",
        "x": labels[0],
        "y": [y],
        "value_format": "currency" if any(w in y.lower() for w in _MONEY_WORDS) else "number",
        "verified_query": {"name": run.name, "params": run.params},
    }
    try:
        from revtops_kernel.artifacts.figures import figure_from_spec, figure_json

        return figure_json(figure_from_spec(spec, frame))
    except Exception:  # a chart is a bonus: the table and SQL still answer
        log.debug("no chart for verified query %s", run.name, exc_info=True)
        return None


def _is_number(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column):
        return False
    if pd.api.types.is_numeric_dtype(column):
        return True
    values = column.dropna()
    return len(values) > 0 and all(isinstance(v, Decimal) for v in values)
