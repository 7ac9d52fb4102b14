"""HTML for the cards of an answer: tool calls, result tables, notices, errors, badges.

Every value from a tool, the model or the store is escaped here; only these fixed templates
produce markup. ``<details>`` shows the SQL on demand without any JavaScript, so the cards
look and behave the same in a widget (JupyterLab, Voila) and in a cell's output (``%%ask``).
"""

from __future__ import annotations

import html
import json
from typing import Any

from revtops_kernel.agent.events import (
    Suggestions,
    TablePreview,
    ToolCallStarted,
    ToolResult,
    VerifiedAnswer,
)

MAX_TABLE_ROWS = 20

STYLE = """
<style>
.revtops-chat, .revtops-answer { font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: 13px; line-height: 1.45; color: var(--jp-ui-font-color1, #1f2328); }
.revtops-chat .rt-conversations { border-right: 1px solid #d0d7de; padding-right: 6px; }
.revtops-chat .rt-messages { padding: 4px 8px; flex-shrink: 0; }
.rt-user { background: #eef4ff; border-radius: 8px; padding: 6px 10px; margin: 8px 0 4px auto;
  max-width: 80%; white-space: pre-wrap; }
.rt-text p { margin: 4px 0; }
.rt-text table, .rt-table table { border-collapse: collapse; margin: 4px 0; }
.rt-text th, .rt-text td, .rt-table th, .rt-table td { border: 1px solid #d0d7de;
  padding: 2px 8px; text-align: left; }
.rt-table th { background: #f6f8fa; }
.rt-table .rt-num { text-align: right; font-variant-numeric: tabular-nums; }
.rt-table .rt-caption { color: #57606a; font-size: 12px; }
.rt-tool { border: 1px solid #d0d7de; border-radius: 6px; padding: 4px 8px; margin: 6px 0;
  background: #f6f8fa; }
.rt-tool summary { cursor: pointer; }
.rt-ran summary { font-size: 11px; color: #57606a; }
.rt-tool pre { white-space: pre-wrap; margin: 4px 0; font-size: 12px; }
.rt-tool.rt-running summary::after { content: " …"; }
.rt-tool.rt-failed { border-color: #cf222e; background: #fff5f5; }
.rt-badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 11px;
  font-weight: 600; margin-left: 6px; }
.rt-verified { background: #dafbe1; color: #116329; border: 1px solid #4ac26b; }
.rt-error { border: 1px solid #cf222e; background: #fff5f5; color: #82071e; border-radius: 6px;
  padding: 6px 10px; margin: 6px 0; }
.rt-notice { color: #57606a; font-style: italic; margin: 4px 0; }
.rt-status { color: #57606a; font-size: 12px; }
</style>
"""


def user_message(text: str) -> str:
    return f'<div class="rt-user">{html.escape(text)}</div>'


def tool_call_card(call: ToolCallStarted) -> str:
    """The "Querying…" state of a tool call, with its SQL (or input) one click away."""
    label = "Querying" if call.sql is not None else f"Running {call.name}"
    body = call.sql if call.sql is not None else json.dumps(call.input, indent=2, default=str)
    return (
        f'<details class="rt-tool rt-running" data-tool-id="{html.escape(call.id)}">'
        f"<summary>{html.escape(label)}</summary><pre>{html.escape(body)}</pre></details>"
    )


def tool_result_card(call: ToolCallStarted | None, result: ToolResult) -> str:
    """The finished call: its one-line summary, verified badge, SQL that ran, rows preview."""
    asked = call.sql if call is not None else None
    sql = asked or result.sql
    status = "rt-done" if result.ok else "rt-failed"
    mark = "✓" if result.ok else "✗"
    badge = verified_badge() if result.verified else ""
    body = f"<pre>{html.escape(sql)}</pre>" if sql else ""
    if asked and result.sql and result.sql != asked:  # the guard's org-scoped rewrite
        body += (
            '<details class="rt-ran"><summary>as run (scoped to the organization)</summary>'
            f"<pre>{html.escape(result.sql)}</pre></details>"
        )
    table = table_html(result.table) if result.table is not None else ""
    return (
        f'<details class="rt-tool {status}" data-tool-id="{html.escape(result.id)}">'
        f"<summary>{mark} {html.escape(result.name)}: {html.escape(result.summary)}{badge}"
        f"</summary>{body}</details>{table}"
    )


def verified_badge() -> str:
    return (
        '<span class="rt-badge rt-verified" title="Answered by a verified query">✔ verified</span>'
    )


def _cell(value: Any) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'true' if value else 'false'}</td>"
    if isinstance(value, int | float):
        return f'<td class="rt-num">{html.escape(f"{value:,}")}</td>'
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"<td>{html.escape(text)}</td>"


def table_html(table: TablePreview, *, max_rows: int = MAX_TABLE_ROWS) -> str:
    """A small escaped HTML table of the first rows, with a caption saying what is left out."""
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in table.columns)
    rows = "".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows[:max_rows]
    )
    shown = min(len(table.rows), max_rows)
    caption = f"{table.total_rows:,} rows" + (
        f", first {shown} shown" if shown < table.total_rows else ""
    )
    return (
        f'<div class="rt-table"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
        f'</table><div class="rt-caption">{html.escape(caption)}</div></div>'
    )


def error_card(message: str) -> str:
    return f'<div class="rt-error">{html.escape(message)}</div>'


def notice_line(message: str) -> str:
    return f'<div class="rt-notice">{html.escape(message)}</div>'


def artifact_title(title: str, *, verified: bool) -> str:
    badge = verified_badge() if verified else ""
    return f"<h4>{html.escape(title)}{badge}</h4>"


def escape(text: str) -> str:
    return html.escape(text)


def verified_answer_card(answer: VerifiedAnswer) -> str:
    """A verified query's result: its title and badge, the SQL one click away, the rows."""
    note = f'<div class="rt-notice">{html.escape(answer.note)}</div>' if answer.note else ""
    return (
        f"{artifact_title(answer.title, verified=True)}{note}"
        f'<details class="rt-tool rt-done"><summary>SQL</summary>'
        f"<pre>{html.escape(answer.sql)}</pre></details>{table_html(answer.table)}"
    )


def suggestions_card(suggestions: Suggestions) -> str:
    """What to ask instead: the closest verified questions, as text a user can copy."""
    items = "".join(f"<li>{html.escape(s.question)}</li>" for s in suggestions.questions)
    return f'<div class="rt-notice">{html.escape(suggestions.message)}</div><ul>{items}</ul>'


# A chat's output is two displays: the widget, then a static copy (``static_fallback``). In
# JupyterLab and Voila the copy hides itself while the widget beside it draws; when the widget
# cannot draw (a notebook saved without its widgets' state, reopened: ipywidgets would say
# "Error displaying widget: model not found"), the copy shows and that error is hidden. Pages
# without a widget front end (nbconvert, GitHub) show the copy. The rules ride with the copy:
# nothing else is loaded when the widget's model is gone.
FALLBACK_STYLE = """<style>
.jp-OutputArea-child:has(.revtops-chat) + .jp-OutputArea-child:has(.rt-static) { display: none; }
.jp-OutputArea-child:not(:has(.revtops-chat)):has(+ .jp-OutputArea-child .rt-static):has(
  > .jp-OutputArea-output.jupyter-widgets) { display: none; }
.rt-static .rt-rerun { color: var(--jp-ui-font-color2, #57606a); font-style: italic; }
</style>"""

PANEL_FALLBACK = (
    '<p class="rt-rerun">The Revtops chat shows here when this cell runs (the notebook was '
    "saved without its widgets' state); its conversations are kept.</p>"
)


def static_fallback(body: str) -> str:
    """``body`` (escaped HTML made here) as the static copy that follows a chat widget."""
    return f'{FALLBACK_STYLE}<div class="rt-static">{body}</div>'
