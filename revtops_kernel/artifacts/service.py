"""Create, re-render, list and delete artifacts.

``create_artifact`` is what the ``create_artifact`` tool calls: validate the spec, run each
part's SQL through the guard, check the columns it names, draw the figures, store the spec,
and return the ``ArtifactCreated`` event. ``render_artifact`` repeats the middle steps from the
stored spec, with no model involved: that is how a PDF, a notebook or a reopened panel shows
an artifact on today's data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert, select

from revtops_kernel.agent.events import ArtifactCreated, TablePreview
from revtops_kernel.artifacts.data import json_rows, part_sql, run_part_query, table_view
from revtops_kernel.artifacts.figures import figure_from_spec, figure_json
from revtops_kernel.artifacts.specs import (
    ArtifactSpec,
    ChartSpec,
    MarkdownBlock,
    ReportSpec,
    TableSpec,
    parse_spec,
    part_paths,
    spec_parts,
)
from revtops_kernel.errors import (
    ArtifactNotFoundError,
    ArtifactSpecError,
    QueryError,
    VerifiedQueryError,
)
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import Artifact
from revtops_kernel.timeutil import utcnow

PREVIEW_ROWS = 50  # rows of a table that travel in the event; the stored SQL has them all


@dataclass(frozen=True)
class RenderedPart:
    """A chart, table or markdown block with its data, ready for any front end."""

    spec: ChartSpec | TableSpec | MarkdownBlock
    frame: pd.DataFrame | None = None  # the query's rows (charts, tables)
    truncated: bool = False
    figure: dict[str, Any] | None = None  # Plotly JSON (charts)
    error: str | None = None  # why the part could not be re-rendered (stored specs only)

    @property
    def verified(self) -> bool:
        """Fed by a verified query (markdown blocks carry no numbers and count as verified)."""
        spec = self.spec
        return isinstance(spec, MarkdownBlock) or spec.verified_query is not None

    @property
    def kind(self) -> str:
        return self.spec.kind

    def table_preview(self, limit: int | None = PREVIEW_ROWS) -> TablePreview | None:
        if not isinstance(self.spec, TableSpec) or self.frame is None:
            return None
        shown = table_view(self.spec, self.frame)
        return TablePreview(
            columns=[str(column) for column in shown.columns],
            rows=json_rows(shown, limit),
            total_rows=len(shown),
            truncated=self.truncated or (limit is not None and len(shown) > limit),
        )


@dataclass(frozen=True)
class RenderedArtifact:
    artifact_id: uuid.UUID
    kind: str
    title: str
    spec: ArtifactSpec
    parts: list[RenderedPart]
    conversation_id: uuid.UUID | None = None
    created_at: datetime | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """Every number in it comes from verified queries."""
        fed = [part for part in self.parts if not isinstance(part.spec, MarkdownBlock)]
        return bool(fed) and all(part.verified for part in fed)

    @property
    def figures(self) -> list[dict[str, Any]]:
        return [part.figure for part in self.parts if part.figure is not None]

    @property
    def markdown(self) -> str | None:
        texts = [self.spec.markdown] if isinstance(self.spec, ReportSpec) else []
        texts += [part.spec.text for part in self.parts if isinstance(part.spec, MarkdownBlock)]
        joined = "\n\n".join(text for text in texts if text)
        return joined or None

    def event(self) -> ArtifactCreated:
        tables = [p.table_preview() for p in self.parts if isinstance(p.spec, TableSpec)]
        return ArtifactCreated(
            artifact_id=self.artifact_id,
            kind=self.kind,
            title=self.title,
            figures=self.figures,
            table=next((table for table in tables if table is not None), None),
            markdown=self.markdown,
            verified=self.verified,
        )


@dataclass(frozen=True)
class ArtifactSummary:
    artifact_id: uuid.UUID
    kind: str
    title: str
    conversation_id: uuid.UUID | None
    created_at: datetime
    sql: str | None


def create_artifact(
    db: Database,
    *,
    org: str,
    spec: dict[str, Any],
    conversation_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    tool_use_id: str | None = None,
) -> ArtifactCreated:
    """Validate ``spec``, run its queries as ``org``, store it, and return the event.

    Raises ``ArtifactSpecError`` (a message for the model: field, what is allowed, the columns
    a query returned) when the spec or one of its queries cannot be used; nothing is stored then.
    """
    parsed = parse_spec(spec)
    parts = _render_parts(db, parsed, org=org, strict=True)
    artifact_id = uuid.uuid4()
    with db.begin() as connection:
        connection.execute(
            insert(Artifact).values(
                id=artifact_id,
                organization_id=org,
                conversation_id=conversation_id,
                tool_use_id=tool_use_id,
                kind=parsed.kind,
                title=parsed.title,
                spec=parsed.model_dump(mode="json", exclude_none=True),
                sql=_sql_of(parsed),
                created_by=user_id,
                created_at=utcnow(),
            )
        )
    rendered = RenderedArtifact(artifact_id, parsed.kind, parsed.title, parsed, parts)
    return rendered.event()


def render_artifact(db: Database, artifact_id: uuid.UUID | str, *, org: str) -> RenderedArtifact:
    """Re-run a stored artifact's queries and redraw it; a failing part carries its error."""
    row = _load(db, artifact_id, org=org)
    parsed = parse_spec(row.spec)
    parts = _render_parts(db, parsed, org=org, strict=False)
    return RenderedArtifact(
        artifact_id=row.id,
        kind=row.kind,
        title=row.title,
        spec=parsed,
        parts=parts,
        conversation_id=row.conversation_id,
        created_at=row.created_at,
        errors=[part.error for part in parts if part.error],
    )


def stored_spec(db: Database, artifact_id: uuid.UUID | str, *, org: str) -> ArtifactSpec:
    """The validated spec of a stored artifact, without running its queries."""
    return parse_spec(_load(db, artifact_id, org=org).spec)


def list_artifacts(
    db: Database, *, org: str, conversation_id: uuid.UUID | None = None
) -> list[ArtifactSummary]:
    """The organization's artifacts (or one conversation's), oldest first."""
    table = Artifact.__table__
    query = select(table).where(table.c.organization_id == org)
    if conversation_id is not None:
        query = query.where(table.c.conversation_id == conversation_id)
    with db.connect() as connection:
        rows = connection.execute(query.order_by(table.c.created_at, table.c.id)).all()
    return [
        ArtifactSummary(row.id, row.kind, row.title, row.conversation_id, row.created_at, row.sql)
        for row in rows
    ]


def delete_artifact(db: Database, artifact_id: uuid.UUID | str, *, org: str) -> bool:
    """Delete one artifact of ``org``; False if there was none."""
    with db.begin() as connection:
        result = connection.execute(
            delete(Artifact).where(
                Artifact.id == _uuid(artifact_id), Artifact.organization_id == org
            )
        )
    return bool(result.rowcount)


# --- steps -------------------------------------------------------------------------------------


def _render_parts(
    db: Database, spec: ArtifactSpec, *, org: str, strict: bool
) -> list[RenderedPart]:
    rendered = []
    for part, path in zip(spec_parts(spec), part_paths(spec), strict=True):
        if isinstance(part, MarkdownBlock):
            rendered.append(RenderedPart(part))
            continue
        try:
            done = _render_part(db, part, org=org, path=path)
            if strict and isinstance(part, ChartSpec) and done.frame is not None:
                _require_rows(done.frame, path)
            rendered.append(done)
        except (ArtifactSpecError, QueryError, VerifiedQueryError) as exc:
            if strict:
                if isinstance(exc, ArtifactSpecError):
                    raise
                source = "verified_query" if part.verified_query is not None else "sql"
                where = f"{path}.{source}" if path else source
                raise ArtifactSpecError(str(exc), field=where) from exc
            rendered.append(RenderedPart(part, error=str(exc)))
    return rendered


def _render_part(db: Database, part: ChartSpec | TableSpec, *, org: str, path: str) -> RenderedPart:
    data = run_part_query(db, part, org=org, path=path)
    if isinstance(part, TableSpec):
        return RenderedPart(part, frame=data.frame, truncated=data.truncated)
    figure = figure_json(figure_from_spec(part, data.frame))
    return RenderedPart(part, frame=data.frame, figure=figure)


def _require_rows(frame: pd.DataFrame, path: str) -> None:
    # A new chart of nothing is almost always a filter that matched nothing: say so now, while
    # the model can still fix it. A stored chart that is empty today is simply drawn empty.
    if frame.empty:
        raise ArtifactSpecError(
            "the query returned no rows, so there is nothing to chart; check its filters "
            "(date range, stage or owner names, deleted_at) with run_sql_query first",
            field=f"{path}.sql" if path else "sql",
        )


def _sql_of(spec: ArtifactSpec) -> str | None:
    parts = [part for part in spec_parts(spec) if not isinstance(part, MarkdownBlock)]
    if not parts:
        return None
    if len(parts) == 1 and parts[0] is spec and parts[0].sql is not None:
        return parts[0].sql
    return "\n\n".join(
        f"-- {_heading(part)}\n{part_sql(part).rstrip().rstrip(';')};" for part in parts
    )


def _heading(part: ChartSpec | TableSpec) -> str:
    ref = part.verified_query
    return part.title + (f" ({ref.label()})" if ref is not None else "")


def _load(db: Database, artifact_id: uuid.UUID | str, *, org: str) -> Any:
    table = Artifact.__table__
    with db.connect() as connection:
        row = connection.execute(
            select(table).where(table.c.id == _uuid(artifact_id), table.c.organization_id == org)
        ).first()
    if row is None:
        raise ArtifactNotFoundError(artifact_id, org)
    return row


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise ArtifactNotFoundError(value, "any organization") from exc
