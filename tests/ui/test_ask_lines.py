"""``%ask`` on a line: rewritten before IPython's help syntax reads its "?" (pure functions)."""

from __future__ import annotations

from IPython.core.inputtransformer2 import TransformerManager

from revtops_kernel.ui.asking import ask_lines, await_ask_lines

AWAIT = "await get_ipython().magics_manager.registry['RevtopsMagics'].ask_async("


def transformed(cell: str, transformer: object) -> str:
    manager = TransformerManager()
    manager.cleanup_transforms.append(transformer)
    return manager.transform_cell(cell)


def test_a_question_ending_in_a_question_mark_is_asked_not_pinfo() -> None:
    # IPython alone reads it as help on the last word
    assert "pinfo" in TransformerManager().transform_cell("%ask What is our pipeline?\n")
    assert transformed("%ask What's our pipeline?\n", await_ask_lines) == (
        f'{AWAIT}"What\'s our pipeline?")\n'
    )
    assert transformed("%ask -o reply --new Why?", ask_lines) == (
        "get_ipython().run_line_magic('ask', '-o reply --new Why?')\n"
    )


def test_only_a_line_of_its_own_is_rewritten() -> None:
    cell = "x = 1\n%ask How many deals?\nprint(x)\n"
    assert transformed(cell, await_ask_lines) == f"x = 1\n{AWAIT}'How many deals?')\nprint(x)\n"
    # indented (an await there could be inside a def), a cell magic's body, help on the magic
    indented = "for i in range(2):\n    %ask Why\n"
    assert "run_line_magic('ask', 'Why')" in transformed(indented, await_ask_lines)
    body = "%%ask\n%ask is part of this question\n"
    assert await_ask_lines(body.splitlines(keepends=True)) == body.splitlines(keepends=True)
    assert "pinfo" in transformed("%ask?\n", await_ask_lines)
