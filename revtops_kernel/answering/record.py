"""One answer as a record: what ``ask()`` returns in a notebook, built from the events.

It says which parts came from verified queries (``verified``: each query's name, parameters,
SQL and rows) and which from the model (``text``, ``queries`` it ran). As a cell's value it
displays as sanitized HTML (``safe_html``: model and synced text are data).
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from revtops_kernel.agent.events import (
    AgentEvent,
    ArtifactCreated,
    Done,
    Error,
    Notice,
    Suggestions,
    TablePreview,
    TextDelta,
    ToolResult,
    Usage,
    VerifiedAnswer,
)
from revtops_kernel.artifacts.bundle import figure_bundle
from revtops_kernel.safe_html import render_markdown

MAX_HTML_ROWS = 20


@dataclass
class AnswerRecord:
    """The text, the verified answers, the queries and artifacts, the thread, the cost."""

    question: str
    text: str = ""  # the model's (empty when a verified query answered alone)
    verified: list[VerifiedAnswer] = field(default_factory=list)
    queries: list[ToolResult] = field(default_factory=list)  # the model's tool calls
    artifacts: list[ArtifactCreated] = field(default_factory=list)
    suggestions: Suggestions | None = None
    conversation_id: uuid.UUID | None = None
    stop_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    notices: list[str] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)

    @property
    def verified_queries(self) -> list[str]:
        """Names of the verified queries the numbers came from."""
        return [v.name for v in self.verified]

    @property
    def cost_usd(self) -> Decimal:
        return sum((u.cost_usd or Decimal(0) for u in self.usage), Decimal(0))

    @property
    def figures(self) -> list[dict[str, Any]]:
        charts = [v.chart for v in self.verified if v.chart is not None]
        return charts + [f for artifact in self.artifacts for f in artifact.figures]

    def _repr_html_(self) -> str:
        parts = ['<div class="revtops-answer">']
        for answer in self.verified:
            parts.append(
                f"<p><strong>✓ verified: {html.escape(answer.title)}</strong> "
                f"<code>{html.escape(answer.name)}</code></p>{_table(answer.table)}"
            )
            if answer.note:
                parts.append(f"<p><em>{html.escape(answer.note)}</em></p>")
            parts.append(_sql(answer.sql))
        if self.text:
            label = "<p><strong>Claude:</strong></p>" if self.verified else ""
            parts.append(label + render_markdown(self.text))
        for query in self.queries:
            mark = "✓" if query.ok else "✗"
            parts.append(f"<p>{mark} {html.escape(query.summary)}</p>")
            if query.table is not None:
                parts.append(_table(query.table))
            if query.sql:
                parts.append(_sql(query.sql))
        if self.suggestions is not None:
            asked = self.suggestions.questions
            items = "".join(f"<li>{html.escape(s.question)}</li>" for s in asked)
            parts.append(f"<p>{html.escape(self.suggestions.message)}</p><ul>{items}</ul>")
        if self.error:
            parts.append(f'<p style="color:#b00020">{html.escape(self.error)}</p>')
        parts.append("</div>")
        return "".join(parts)

    def _ipython_display_(self) -> None:
        """As a cell's value: the HTML (text, tables, SQL), then each chart as a Plotly bundle
        (drawn by JupyterLab's and Voila's plotly renderer; nothing fetched from a CDN)."""
        from IPython.display import display

        plain = f"<answer to {self.question!r}: {self.text[:200] or self.verified_queries}>"
        display({"text/html": self._repr_html_(), "text/plain": plain}, raw=True)
        for figure in self.figures:
            display(figure_bundle(figure), raw=True)


def collect(question: str, events: Iterable[AgentEvent]) -> AnswerRecord:
    """Consume an answer's events into its record."""
    record = AnswerRecord(question)
    for event in events:
        if isinstance(event, TextDelta):
            record.text += event.text
        elif isinstance(event, VerifiedAnswer):
            record.verified.append(event)
        elif isinstance(event, ToolResult):
            record.queries.append(event)
        elif isinstance(event, ArtifactCreated):
            record.artifacts.append(event)
        elif isinstance(event, Suggestions):
            record.suggestions = event
        elif isinstance(event, Usage):
            record.usage.append(event)
        elif isinstance(event, Notice):
            record.notices.append(event.message)
        elif isinstance(event, Error) and record.error is None:
            record.error, record.error_kind = event.message, str(event.kind)
        elif isinstance(event, Done):
            record.conversation_id = event.conversation_id
            record.stop_reason = str(event.stop_reason)
    return record


def _table(table: TablePreview) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in table.rows[:MAX_HTML_ROWS]
    )
    more = (
        f"<p>{MAX_HTML_ROWS} of {table.total_rows:,} rows shown</p>"
        if table.total_rows > MAX_HTML_ROWS
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _sql(sql: str) -> str:
    """The SQL that ran, folded (open it to read or copy)."""
    return f"<details><summary>SQL</summary><pre><code>{html.escape(sql)}</code></pre></details>"
