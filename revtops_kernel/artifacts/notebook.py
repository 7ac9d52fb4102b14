"""A conversation as a runnable notebook that papermill can re-run on a schedule.

Cells, in order: a title; a ``parameters`` cell (``org``, ``period_start``, ``period_end``) that
papermill overrides; then for each question its text, each successful query as a code cell
(``revtops_kernel.sql(..., org=org)``, so it passes the same guard as the assistant), the answer
text, and each artifact redrawn from its stored spec with ``figure_from_spec``. Nothing the
model wrote runs as code: queries go through the guard, and specs are data.

Text from the conversation goes into markdown cells already rendered and sanitized
(``markdown.py``), so a question or an answer cannot inject HTML into the notebook.
"""

from __future__ import annotations

import json
import pprint
import uuid
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from revtops_kernel.artifacts.markdown import markdown_html, text_html
from revtops_kernel.artifacts.periods import Period, find_period
from revtops_kernel.artifacts.service import stored_spec
from revtops_kernel.artifacts.specs import (
    ChartSpec,
    MarkdownBlock,
    TableSpec,
    spec_parts,
)
from revtops_kernel.artifacts.transcript import AnswerText, ArtifactRef, QueryCall, conversation_doc
from revtops_kernel.errors import ArtifactNotFoundError
from revtops_kernel.store.database import Database
from revtops_kernel.timeutil import iso_z, utcnow

KERNEL_SPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def conversation_to_notebook(
    db: Database, conversation_id: uuid.UUID | str, *, org: str
) -> NotebookNode:
    """The conversation as an nbformat v4 notebook (not yet executed)."""
    doc = conversation_doc(db, conversation_id, org=org)
    dialect = db.backend.sqlglot_dialect
    artifacts = _artifact_specs(db, doc.turns, org=org)
    period = find_period(_all_sql(doc.turns, artifacts), dialect)
    builder = _Cells(period, dialect)
    builder.markdown(
        f"# {text_html(doc.title)}\n\n"
        f"Exported from Revtops on {iso_z(utcnow())}. Every query re-runs through the SQL guard "
        "as `org`; every chart is redrawn from its stored spec. Re-run it with papermill, e.g. "
        "`papermill this.ipynb out.ipynb -p org acme -p period_start 2026-04-01 "
        "-p period_end 2026-07-01`."
    )
    builder.parameters(org)
    builder.code(
        "import datetime as dt\n\n"
        "import revtops_kernel\n"
        "from IPython.display import display\n"
        "from revtops_kernel.artifacts import figure_from_spec, table_from_spec\n\n"
        "period = {\n"
        "    name: dt.date.fromisoformat(str(value))\n"
        '    for name, value in {"period_start": period_start, "period_end": period_end}.items()\n'
        "    if value is not None\n"
        "}"
    )
    for turn in doc.turns:
        if turn.question is not None:
            builder.markdown(f"## Question\n\n<blockquote>{text_html(turn.question)}</blockquote>")
        for entry in turn.entries:
            if isinstance(entry, AnswerText):
                builder.markdown(markdown_html(entry.markdown))
            elif isinstance(entry, QueryCall):
                builder.query(entry)
            elif isinstance(entry, ArtifactRef):
                builder.artifact(entry, artifacts.get(entry.artifact_id))
    notebook = nbformat.v4.new_notebook(cells=builder.cells)
    notebook.metadata["kernelspec"] = KERNEL_SPEC
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["revtops"] = {
        "conversation_id": str(doc.conversation_id),
        "org": org,
        "exported_at": iso_z(utcnow()),
    }
    return notebook


def save_notebook(notebook: NotebookNode, path: str | Path) -> Path:
    """Validate and write ``notebook`` as .ipynb; returns the path written."""
    target = Path(path)
    nbformat.validate(notebook)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(target))
    return target


# --- cells --------------------------------------------------------------------------------------


class _Cells:
    def __init__(self, period: Period, dialect: str) -> None:
        self.cells: list[NotebookNode] = []
        self.period = period
        self.dialect = dialect
        self.frames = 0

    def markdown(self, source: str) -> None:
        self.cells.append(nbformat.v4.new_markdown_cell(source))

    def code(self, source: str, tags: list[str] | None = None) -> None:
        cell = nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        self.cells.append(cell)

    def parameters(self, org: str) -> None:
        lines = [f"org = {org!r}"]
        for name in ("period_start", "period_end"):
            value = self.period.defaults.get(name)
            lines.append(f"{name} = {value!r}")
        note = (
            "# The dates the queries were written for; papermill -p overrides them."
            if self.period.defaults
            else "# The queries keep the dates they were written with."
        )
        self.code(note + "\n" + "\n".join(lines), tags=["parameters"])

    def query(self, call: QueryCall) -> None:
        if not call.ok:
            return  # a refused query taught the model something; it has no result to re-run
        name = self._frame_name()
        if call.verified_name is not None:
            self.markdown(f"*Verified query* `{call.verified_name}`")
            self.code(_verified_source(name, call))
        elif call.sql:
            self.code(f"{self._sql_call(name, call.sql)}\ndisplay({name})")

    def artifact(self, ref: ArtifactRef, spec: Any) -> None:
        if spec is None:
            self.markdown(f"*The artifact “{text_html(ref.title)}” was deleted.*")
            return
        self.markdown(f"### {text_html(spec.title)}")
        if getattr(spec, "markdown", ""):
            self.markdown(markdown_html(spec.markdown))
        for part in spec_parts(spec):
            if isinstance(part, MarkdownBlock):
                self.markdown(markdown_html(part.text))
                continue
            name = self._frame_name()
            stored = json.loads(part.model_dump_json(exclude_none=True))
            draw = "figure_from_spec" if isinstance(part, ChartSpec) else "table_from_spec"
            verified = part.verified_query
            if verified is not None:
                call = QueryCall(
                    "run_verified_query", None, True, "", verified.name, dict(verified.params)
                )
                self.code(
                    _verified_source(name, call).replace(f"display({name})", "")
                    + f"spec = {pprint.pformat(stored, width=88, sort_dicts=False)}\n"
                    f"{draw}(spec, {name})"
                )
                continue
            sql, uses = self.period.rewrite(stored.pop("sql"), self.dialect)
            self.code(
                f"sql = {_python_string(sql)}\n"
                f"{name} = revtops_kernel.sql(sql, org=org{_params_expression(uses)})\n"
                f"spec = {pprint.pformat(stored, width=88, sort_dicts=False)}\n"
                f'{draw}({{**spec, "sql": sql}}, {name})'
            )

    def _sql_call(self, name: str, sql: str) -> str:
        rewritten, uses = self.period.rewrite(sql, self.dialect)
        params = _params_expression(uses)
        return f"{name} = revtops_kernel.sql({_python_string(rewritten)}, org=org{params})"

    def _frame_name(self) -> str:
        self.frames += 1
        return f"df{self.frames}"


def _params_expression(uses: list[str]) -> str:
    if not uses:
        return ""
    names = ", ".join(f'"{name}"' for name in uses) + ("," if len(uses) == 1 else "")
    return f", params={{name: period[name] for name in ({names})}}"


def _verified_source(name: str, call: QueryCall) -> str:
    # A verified query's own start/end dates follow the notebook's period when one is set.
    return (
        "from revtops_kernel.agent.verified import VERIFIED_QUERIES, resolve_params\n\n"
        f"given = {pprint.pformat(call.params, width=88)}\n"
        'given.update({key: period[name] for key, name in (("start_date", "period_start"), '
        '("end_date", "period_end")) if name in period and key in given})\n'
        f"params = resolve_params({call.verified_name!r}, given)\n"
        f"{name} = revtops_kernel.sql(VERIFIED_QUERIES[{call.verified_name!r}].sql, org=org, "
        "params=params)\n"
        f"display({name})"
    )


def _python_string(sql: str) -> str:
    """A readable Python literal for ``sql``: a raw triple-quoted string when it can be one."""
    if '"""' not in sql and not sql.endswith("\\"):
        return 'r"""\n' + sql.strip("\n") + '\n"""'
    return repr(sql)


def _artifact_specs(db: Database, turns: list[Any], *, org: str) -> dict[uuid.UUID, Any]:
    specs: dict[uuid.UUID, Any] = {}
    for turn in turns:
        for entry in turn.entries:
            if isinstance(entry, ArtifactRef):
                try:
                    specs[entry.artifact_id] = stored_spec(db, entry.artifact_id, org=org)
                except ArtifactNotFoundError:
                    continue
    return specs


def _all_sql(turns: list[Any], artifacts: dict[uuid.UUID, Any]) -> list[str]:
    sqls = [
        entry.sql
        for turn in turns
        for entry in turn.entries
        if isinstance(entry, QueryCall) and entry.ok and entry.sql
    ]
    for spec in artifacts.values():
        sqls += [p.sql for p in spec_parts(spec) if isinstance(p, ChartSpec | TableSpec) and p.sql]
    return sqls
