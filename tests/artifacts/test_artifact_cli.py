"""``revtops export pdf|notebook`` on the configured store."""

from __future__ import annotations

import uuid
from pathlib import Path

import nbformat
import pytest
from artifact_samples import PIPELINE_CHART, load_sales, sample_conversation
from helpers import duckdb_copy

from revtops_kernel.artifacts import create_artifact
from revtops_kernel.cli import main
from revtops_kernel.store import Database, upgrade


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_template: Path) -> Database:
    url = duckdb_copy(duckdb_template, tmp_path / "store.duckdb")
    monkeypatch.setenv("REVTOPS_DATABASE_URL", url)
    monkeypatch.setenv("REVTOPS_ORG", "acme")
    database = Database(url)
    upgrade(database)
    load_sales(database)
    return database


def test_export_notebook_writes_a_valid_ipynb(
    configured: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation_id, _ = sample_conversation(configured)
    configured.dispose()
    target = tmp_path / "out" / "q1.ipynb"
    assert (
        main(["export", "notebook", "--conversation", str(conversation_id), "-o", str(target)]) == 0
    )
    notebook = nbformat.read(str(target), as_version=4)
    nbformat.validate(notebook)
    assert "wrote" in capsys.readouterr().out


def test_export_pdf_of_one_artifact(configured: Database, tmp_path: Path) -> None:
    event = create_artifact(configured, org="acme", spec=PIPELINE_CHART)
    configured.dispose()
    target = tmp_path / "chart.pdf"
    code = main(
        [
            "export",
            "pdf",
            "--artifact",
            str(event.artifact_id),
            "-o",
            str(target),
            "--author",
            "Ana",
            "--timezone",
            "Asia/Tokyo",
        ]
    )
    assert code == 0
    assert target.read_bytes().startswith(b"%PDF")


def test_an_unknown_conversation_is_a_one_line_error(
    configured: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = uuid.uuid4()
    target = tmp_path / "x.pdf"
    assert main(["export", "pdf", "--conversation", str(missing), "-o", str(target)]) == 1
    assert f"no conversation {missing} in organization 'acme'" in capsys.readouterr().err
    assert not target.exists()
