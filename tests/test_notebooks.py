"""Stock notebooks: found by name from anywhere, copied for editing, and what workflows take."""

from __future__ import annotations

from pathlib import Path

import pytest

from revtops_kernel.cli import main
from revtops_kernel.errors import WorkflowError
from revtops_kernel.notebooks import (
    copy_stock_notebooks,
    resolve_notebook,
    stock_directory,
    stock_names,
    stock_notebook,
)
from revtops_kernel.scheduling.workflows import add_workflow
from revtops_kernel.store import Database


def test_the_stock_notebooks_are_the_projects() -> None:
    assert {"app", "sync", "pipeline_digest", "tutorial"} <= set(stock_names())
    assert stock_notebook("sync") == stock_directory() / "sync.ipynb"
    assert stock_notebook("sync.ipynb") == stock_notebook("sync")


def test_an_unknown_name_lists_the_stock_notebooks() -> None:
    with pytest.raises(WorkflowError, match=r"no stock notebook named 'sinc'.*pipeline_digest"):
        stock_notebook("sinc")


def test_a_path_that_exists_wins_over_a_stock_name(tmp_path: Path) -> None:
    own = tmp_path / "sync.ipynb"
    own.write_text("{}")
    assert resolve_notebook(own) == own.resolve()
    assert resolve_notebook("sync") == stock_notebook("sync")  # cwd is the isolated home


def test_bad_references_say_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(WorkflowError, match="runs a notebook"):
        resolve_notebook(tmp_path / "notes.txt")
    with pytest.raises(WorkflowError, match="no notebook at"):
        resolve_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(WorkflowError, match="runs a notebook"):
        resolve_notebook(tmp_path / "missing.txt")


def test_copy_keeps_existing_files_unless_told(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    first = copy_stock_notebooks(target)
    assert {p.stem for p in first} == set(stock_names())
    (target / "sync.ipynb").write_text("edited")
    assert copy_stock_notebooks(target) == []
    assert (target / "sync.ipynb").read_text() == "edited"
    copy_stock_notebooks(target, overwrite=True)
    assert (target / "sync.ipynb").read_bytes() == stock_notebook("sync").read_bytes()


def test_the_command_lists_and_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notebooks", "list"]) == 0
    assert "pipeline_digest" in capsys.readouterr().out
    assert main(["notebooks", "copy", str(tmp_path / "nb")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["notebooks", "copy", str(tmp_path / "nb")]) == 0
    assert f"kept {len(stock_names())} existing file(s)" in capsys.readouterr().out


def test_a_workflow_takes_a_stock_notebook_by_name(db: Database) -> None:
    workflow = add_workflow(db, "nightly-sync", "sync", "0 2 * * *", org="acme")
    assert Path(workflow.notebook) == stock_notebook("sync")
