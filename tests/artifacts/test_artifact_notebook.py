"""A conversation exported as a notebook: runnable cells, a papermill parameters cell, inert
markdown; re-executed by papermill on a real kernel, it reproduces the same numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from artifact_samples import QUESTION_2, load_sales, sample_conversation
from test_artifact_markdown import assert_inert

from revtops_kernel.artifacts import (
    conversation_to_notebook,
    render_artifact,
    save_notebook,
)
from revtops_kernel.artifacts.periods import find_period
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.query import read_sql


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"duckdb:///{tmp_path / 'store.duckdb'}", lock_timeout=30)
    upgrade(database)
    load_sales(database)
    yield database
    database.dispose()


def code_cells(notebook: Any) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_the_notebook_has_parameters_queries_charts_and_inert_text(store: Database) -> None:
    conversation_id, _ = sample_conversation(store)
    notebook = conversation_to_notebook(store, conversation_id, org="acme")
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.metadata["revtops"]["conversation_id"] == str(conversation_id)

    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert "org = 'acme'" in parameters.source
    assert "period_start = '2026-01-01'" in parameters.source  # the dates the SQL used
    assert "period_end = '2026-04-01'" in parameters.source

    code = "\n".join(code_cells(notebook))
    assert "SELECT nope" not in code  # the refused query is not re-run
    assert code.count("revtops_kernel.sql(") == 4  # a query, a verified one, chart, table
    assert "resolve_params('forecast_by_category', given)" in code
    assert "close_date >= CAST(:period_start AS DATE)" in code
    assert "figure_from_spec(" in code and "table_from_spec(" in code
    free_sql = [c for c in code_cells(notebook) if "sql(" in c and "VERIFIED" not in c]
    assert len(free_sql) == 3 and not any("'2026-01-01'" in cell for cell in free_sql)

    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    assert any(QUESTION_2 in source for source in markdown)
    for source in markdown:
        assert_inert(source.replace("<blockquote>", "").replace("</blockquote>", ""))
    assert any("&lt;script&gt;alert(&#x27;question&#x27;)" in source for source in markdown)


def test_periods_take_one_or_two_dates_and_leave_the_rest_alone() -> None:
    two = find_period(
        ["SELECT 1 FROM deals WHERE close_date BETWEEN '2026-01-01' AND DATE '2026-03-31'"],
        "duckdb",
    )
    assert two.defaults == {"period_start": "2026-01-01", "period_end": "2026-03-31"}
    sql, uses = two.rewrite(
        "SELECT count(*) FROM deals WHERE close_date >= DATE '2026-03-31' GROUP BY 1", "duckdb"
    )
    assert uses == ["period_end"] and "CAST(:period_end AS DATE)" in sql and "GROUP BY\n  1" in sql
    assert find_period(["SELECT '2026-01-01', '2026-02-01', '2026-03-01'"], "duckdb").defaults == {}
    text_cast = find_period(["SELECT CAST('2026-01-01' AS TEXT) AS label"], "postgres")
    assert text_cast.defaults == {}
    assert find_period(["SELECT 1"], "duckdb").rewrite("SELECT 1", "duckdb") == ("SELECT 1", [])


def figure_outputs(path: Path) -> list[dict[str, Any]]:
    executed = nbformat.read(str(path), as_version=4)
    figures = []
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/json" in data:  # PLOTLY_RENDERER=json
                value = data["application/json"]
                figures.append(json.loads(value) if isinstance(value, str) else value)
    return figures


@pytest.mark.slow
def test_papermill_re_runs_the_notebook_and_reproduces_the_numbers(
    store: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    conversation_id, (chart_id, _) = sample_conversation(store)
    source = save_notebook(
        conversation_to_notebook(store, conversation_id, org="acme"), tmp_path / "q1.ipynb"
    )
    store.dispose()  # the kernel opens the DuckDB file itself
    monkeypatch.setenv("REVTOPS_DATABASE_URL", str(store.url))
    monkeypatch.setenv("PLOTLY_RENDERER", "json")

    same = tmp_path / "same.ipynb"
    papermill.execute_notebook(
        str(source), str(same), kernel_name="python3", progress_bar=False, cwd=str(tmp_path)
    )
    (figure,) = figure_outputs(same)
    expected = render_artifact(store, chart_id, org="acme").figures[0]
    assert figure["data"][0]["x"] == expected["data"][0]["x"]
    assert figure["data"][0]["y"] == expected["data"][0]["y"]

    february = tmp_path / "february.ipynb"
    papermill.execute_notebook(
        str(source),
        str(february),
        parameters={"period_start": "2026-02-01", "period_end": "2026-03-01"},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    (figure,) = figure_outputs(february)
    direct = read_sql(
        store,
        "SELECT stage_name, sum(amount) AS total FROM deals WHERE close_date >= DATE '2026-02-01'"
        " AND close_date < DATE '2026-03-01' GROUP BY 1 ORDER BY total DESC",
        org="acme",
    ).frame
    assert figure["data"][0]["x"] == list(direct["stage_name"])
    assert figure["data"][0]["y"] == [float(value) for value in direct["total"]]
    assert figure["data"][0]["y"] != expected["data"][0]["y"]


def test_an_artifact_on_a_verified_query_re_runs_it_by_name(
    store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from artifact_samples import store_conversation, tool_result, tool_use

    from revtops_kernel import api
    from revtops_kernel.artifacts import create_artifact

    spec = {
        "kind": "chart",
        "title": "Pipeline (verified)",
        "type": "bar",
        "x": "stage",
        "y": ["amount"],
        "verified_query": {"name": "pipeline_by_stage"},
    }
    event = create_artifact(store, org="acme", spec=spec)
    payload = json.dumps({"artifact_id": str(event.artifact_id), "kind": "chart"})
    conversation_id = store_conversation(
        store,
        "acme",
        [
            ("user", [{"type": "text", "text": "Pipeline?"}]),
            ("assistant", [tool_use("t1", "create_artifact", spec)]),
            ("user", [tool_result("t1", payload)]),
        ],
        "Verified",
    )
    notebook = conversation_to_notebook(store, conversation_id, org="acme")
    cells = code_cells(notebook)
    assert "resolve_params('pipeline_by_stage', given)" in cells[-1]
    assert "figure_from_spec(spec, df1)" in cells[-1]

    # Run the cells in this process against the same store, as the kernel would.
    store.dispose()
    monkeypatch.setenv("REVTOPS_DATABASE_URL", str(store.url))
    api._settings.cache_clear()
    namespace: dict[str, Any] = {}
    for source in cells:
        exec(compile(source, "<cell>", "exec"), namespace)
    api._settings.cache_clear()
    figure = namespace["figure_from_spec"]({**spec}, namespace["df1"]).to_plotly_json()
    assert list(figure["data"][0]["y"]) == event.figures[0]["data"][0]["y"]
