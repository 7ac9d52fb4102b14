"""IPython magics: ``%%ask`` streams an answer into the cell; ``%sql`` / ``%%sql`` query.

    %load_ext revtops_kernel
    %%ask --org acme
    What is our pipeline by stage this quarter?

    df = %sql SELECT stage, sum(amount) FROM deals GROUP BY stage
    %%sql -o won --org acme
    SELECT name, amount FROM deals WHERE is_won

``%%ask`` continues the notebook's last conversation (per organization); ``--new`` starts one.
It shows the chat component answering in the cell (``ui/asking``); in a kernel the cell awaits
the answer, so the component's Stop button works while it streams. ``%ask question`` on a line
of its own does the same (a cleanup transformer rewrites it before IPython's help syntax could
take a question ending in "?" for ``pinfo``).
"""

from __future__ import annotations

import argparse
import shlex
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from revtops_kernel.errors import RevtopsError

if TYPE_CHECKING:
    from revtops_kernel.ui.answer import Answer
    from revtops_kernel.ui.asking import CellAnswer


@dataclass(frozen=True)
class _Job:
    org: str
    cell: CellAnswer


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel's process
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage()}")


def _ask_parser() -> _Parser:
    parser = _Parser(prog="%%ask", add_help=False)
    parser.add_argument("--org", help="organization to ask about (default REVTOPS_ORG)")
    parser.add_argument("--new", action="store_true", help="start a new conversation")
    parser.add_argument("--conversation", help="continue this conversation id")
    parser.add_argument("-o", "--output", help="assign the Answer to this variable")
    parser.add_argument("question", nargs="*")
    return parser


def _sql_parser() -> _Parser:
    parser = _Parser(prog="%sql", add_help=False)
    parser.add_argument("--org", help="organization to query (default REVTOPS_ORG)")
    parser.add_argument("-o", "--output", help="assign the DataFrame to this variable")
    parser.add_argument("--max-rows", type=int, help="row cap (default REVTOPS_QUERY_MAX_ROWS)")
    return parser


@magics_class
class RevtopsMagics(Magics):
    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self.conversations: dict[str, uuid.UUID] = {}  # org -> the notebook's last thread

    @no_var_expand
    @line_cell_magic
    def ask(self, line: str, cell: str | None = None) -> None:
        """Ask the copilot; the answer streams into this cell's output (the chat component)."""
        options, job = self._start_answer(line, cell)
        self._keep(options, job.org, job.cell.wait())

    async def ask_async(self, line: str, cell: str | None = None) -> None:
        """``%%ask`` in a kernel (the cell is rewritten to await this): the same, but the
        kernel handles the widget's messages (its Stop button) while the answer streams."""
        options, job = self._start_answer(line, cell)
        self._keep(options, job.org, await job.cell.wait_async())

    def _start_answer(self, line: str, cell: str | None) -> tuple[argparse.Namespace, _Job]:
        from revtops_kernel.ui.asking import CellAnswer
        from revtops_kernel.ui.copilot_backend import CopilotBackend

        if cell is None:  # %ask: options first, then the question as written (quotes and all)
            words, question = _leading_options(
                line, takes_value=("--org", "--conversation", "-o", "--output")
            )
            options = _ask_parser().parse_args(words)
        else:
            options = _ask_parser().parse_args(shlex.split(line))
            question = cell
        question = question.strip()
        if not question:
            raise UsageError("%%ask: write the question in the cell (or after %ask)")
        try:
            backend = CopilotBackend.create(org=options.org)
        except RevtopsError as exc:
            raise UsageError(f"{type(exc).__name__}: {exc}") from exc
        org = backend.org
        if options.conversation:
            conversation: uuid.UUID | None = uuid.UUID(options.conversation)
        else:
            conversation = None if options.new else self.conversations.get(org)
        answering = CellAnswer(
            backend, question, conversation_id=conversation, timezone=backend.default_timezone
        )
        return options, _Job(org, answering)

    def _keep(self, options: argparse.Namespace, org: str, answer: Answer) -> None:
        if answer.conversation_id is not None:
            self.conversations[org] = answer.conversation_id
        if options.output and self.shell is not None:
            self.shell.user_ns[options.output] = answer

    @no_var_expand
    @line_cell_magic
    def sql(self, line: str, cell: str | None = None) -> Any:
        """Run a guarded read-only query; the DataFrame is the result (or ``-o var``)."""
        from revtops_kernel.api import sql

        if cell is None:
            options = self._line_sql_options(line)
            query = options.query
        else:
            options = _sql_parser().parse_args(shlex.split(line))
            query = cell.strip()
        if not query:
            raise UsageError("%sql: write a SELECT after %sql (or in a %%sql cell)")
        try:
            frame = sql(query, org=options.org, max_rows=options.max_rows)
        except RevtopsError as exc:  # a refusal or a bad setting: the message, no traceback
            raise UsageError(f"{type(exc).__name__}: {exc}") from exc
        if options.output and self.shell is not None:
            self.shell.user_ns[options.output] = frame
            return None
        return frame

    @staticmethod
    def _line_sql_options(line: str) -> argparse.Namespace:
        """Options come first on the line; the rest, quotes and all, is the query."""
        options, rest = _leading_options(
            line, takes_value=("-o", "--output", "--org", "--max-rows")
        )
        parsed = _sql_parser().parse_args(options)
        parsed.query = rest
        return parsed


def _leading_options(line: str, *, takes_value: tuple[str, ...]) -> tuple[list[str], str]:
    """A magic's line: the options it starts with, and the rest as written (a query or a
    question: "What's our pipeline?" holds a quote that shlex would refuse)."""
    rest = line.strip()
    options: list[str] = []
    while rest.startswith("-"):
        word, _, rest = rest.partition(" ")
        options.append(word)
        if word in takes_value:
            value, _, rest = rest.lstrip().partition(" ")
            options.append(value)
        rest = rest.lstrip()
    return options, rest


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext revtops_kernel``."""
    from revtops_kernel.ui.asking import ask_lines, await_ask_cells, await_ask_lines

    ipython.register_magics(RevtopsMagics)
    lines = ipython.input_transformers_cleanup
    if getattr(ipython, "kernel", None) is not None and ipython.autoawait:
        if await_ask_cells not in ipython.input_transformers_post:
            ipython.input_transformers_post.append(await_ask_cells)
        if await_ask_lines not in lines:
            lines.append(await_ask_lines)
    elif ask_lines not in lines:
        lines.append(ask_lines)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext revtops_kernel``: the magics go away."""
    from revtops_kernel.ui.asking import ask_lines, await_ask_cells, await_ask_lines

    if await_ask_cells in ipython.input_transformers_post:
        ipython.input_transformers_post.remove(await_ask_cells)
    for transformer in (await_ask_lines, ask_lines):
        if transformer in ipython.input_transformers_cleanup:
            ipython.input_transformers_cleanup.remove(transformer)
    registered = ipython.magics_manager.registry.pop("RevtopsMagics", None)
    if registered is None:
        return
    for kind in ("line", "cell"):
        table = ipython.magics_manager.magics[kind]
        for name in ("ask", "sql"):
            table.pop(name, None)
