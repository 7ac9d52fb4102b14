"""create_artifact -> stored spec -> render_artifact, on DuckDB and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from artifact_samples import stage_totals
from sqlalchemy import text

from revtops_kernel.artifacts import (
    ArtifactNotFoundError,
    create_artifact,
    delete_artifact,
    list_artifacts,
    render_artifact,
)
from revtops_kernel.errors import ArtifactSpecError, QueryRefusedError
from revtops_kernel.store import Database

PIPELINE_SQL = (
    "SELECT stage_name, sum(amount) AS total, count(*) AS deals FROM deals "
    "GROUP BY stage_name ORDER BY total DESC"
)
PIPELINE = {
    "kind": "chart",
    "title": "Pipeline by stage",
    "sql": PIPELINE_SQL,
    "type": "bar",
    "x": "stage_name",
    "y": ["total"],
    "value_format": "currency",
}
DEALS = {
    "kind": "table",
    "title": "Biggest deals",
    "sql": "SELECT name, amount, close_date FROM deals ORDER BY amount DESC",
    "columns": ["name", "amount"],
    "labels": {"name": "Deal"},
}


def stored_rows(db: Database) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text("SELECT * FROM artifacts ORDER BY created_at")).mappings())


def test_a_chart_is_drawn_from_its_org_scoped_query_and_stored(sales: Database) -> None:
    conversation = uuid.uuid4()
    event = create_artifact(
        sales, org="acme", spec=PIPELINE, conversation_id=conversation, tool_use_id="toolu_1"
    )
    (figure,) = event.figures
    (trace,) = figure["data"]
    expected = sorted(stage_totals().items(), key=lambda item: -item[1])
    assert list(zip(trace["x"], trace["y"], strict=True)) == expected  # globex's rows absent
    assert (event.kind, event.title, event.table) == ("chart", "Pipeline by stage", None)
    (row,) = stored_rows(sales)
    assert row["id"] == event.artifact_id
    assert (row["organization_id"], row["conversation_id"]) == ("acme", conversation)
    assert (row["kind"], row["sql"], row["tool_use_id"]) == ("chart", PIPELINE_SQL, "toolu_1")
    assert row["spec"]["x"] == "stage_name" and row["spec"]["value_format"] == "currency"


def test_render_redraws_the_same_figure_from_the_stored_spec(sales: Database) -> None:
    event = create_artifact(sales, org="acme", spec=PIPELINE)
    rendered = render_artifact(sales, event.artifact_id, org="acme")
    assert rendered.figures == event.figures
    assert rendered.errors == []
    assert rendered.event() == event


def test_render_shows_todays_data(sales: Database) -> None:
    event = create_artifact(sales, org="acme", spec=PIPELINE)
    with sales.begin() as conn:
        conn.execute(text("UPDATE deals SET amount = amount * 2 WHERE organization_id = 'acme'"))
    rendered = render_artifact(sales, str(event.artifact_id), org="acme")
    doubled = {stage: total * 2 for stage, total in stage_totals().items()}
    trace = rendered.figures[0]["data"][0]
    assert dict(zip(trace["x"], trace["y"], strict=True)) == doubled


def test_a_table_previews_its_chosen_columns_under_their_labels(sales: Database) -> None:
    event = create_artifact(sales, org="acme", spec=DEALS)
    assert event.table is not None
    assert event.table.columns == ["Deal", "amount"]
    assert event.table.total_rows == 24
    assert len(event.table.rows) == 24
    assert event.table.rows[0] == ["Acme deal 23", 24000.0]  # decimals as numbers
    wide = create_artifact(sales, org="acme", spec={**DEALS, "columns": None, "labels": {}})
    assert wide.table is not None
    assert wide.table.rows[0] == ["Acme deal 23", 24000.0, "2026-03-24"]  # a date stays a date


def test_a_dashboard_runs_every_item(sales: Database) -> None:
    spec = {
        "kind": "dashboard",
        "title": "Board",
        "items": [PIPELINE, DEALS, {**PIPELINE, "type": "pie", "title": "Share"}],
    }
    event = create_artifact(sales, org="acme", spec=spec)
    assert [f["data"][0]["type"] for f in event.figures] == ["bar", "pie"]
    assert event.table is not None and event.table.total_rows == 24
    (row,) = stored_rows(sales)
    assert row["sql"].count("-- ") == 3 and "-- Share\n" in row["sql"]
    rendered = render_artifact(sales, event.artifact_id, org="acme")
    assert [part.kind for part in rendered.parts] == ["chart", "table", "chart"]


def test_a_report_keeps_its_markdown(sales: Database) -> None:
    spec = {
        "kind": "report",
        "title": "Q1",
        "markdown": "## Summary\nPipeline is up.",
        "blocks": [PIPELINE, {"kind": "markdown", "text": "Biggest deals:"}, DEALS],
    }
    event = create_artifact(sales, org="acme", spec=spec)
    assert event.markdown == "## Summary\nPipeline is up.\n\nBiggest deals:"
    assert len(event.figures) == 1


def test_a_wrong_column_is_explained_and_nothing_is_stored(sales: Database) -> None:
    spec = {"kind": "dashboard", "title": "Board", "items": [DEALS, {**PIPELINE, "y": ["amount"]}]}
    with pytest.raises(ArtifactSpecError) as caught:
        create_artifact(sales, org="acme", spec=spec)
    assert caught.value.field == "items[1].y"
    assert "column 'amount' is not in the query's result" in str(caught.value)
    assert "stage_name, total, deals" in str(caught.value)
    assert stored_rows(sales) == []


def test_a_failing_query_names_its_part(sales: Database) -> None:
    spec = {
        "kind": "dashboard",
        "title": "B",
        "items": [{**PIPELINE, "sql": "SELECT nope FROM deals"}],
    }
    with pytest.raises(ArtifactSpecError) as caught:
        create_artifact(sales, org="acme", spec=spec)
    assert caught.value.field == "items[0].sql"
    assert "nope" in str(caught.value)
    assert stored_rows(sales) == []


def test_a_part_that_fails_later_renders_as_an_error_not_a_crash(sales: Database) -> None:
    event = create_artifact(
        sales, org="acme", spec={"kind": "dashboard", "title": "B", "items": [PIPELINE, DEALS]}
    )
    with sales.begin() as conn:  # the stored spec now names a column the query lacks
        conn.execute(
            text("UPDATE artifacts SET spec = :spec WHERE id = :id"),
            {
                "id": event.artifact_id,
                "spec": '{"kind": "dashboard", "title": "B", "items": ['
                + _json({**PIPELINE, "y": ["gone"]})
                + "]}",
            },
        )
    rendered = render_artifact(sales, event.artifact_id, org="acme")
    assert rendered.parts[0].error is not None and "gone" in rendered.parts[0].error
    assert rendered.errors == [rendered.parts[0].error]


def test_artifacts_are_listed_deleted_and_private_to_their_org(sales: Database) -> None:
    conversation = uuid.uuid4()
    first = create_artifact(sales, org="acme", spec=PIPELINE, conversation_id=conversation)
    second = create_artifact(sales, org="acme", spec=DEALS)
    create_artifact(sales, org="globex", spec=DEALS)
    listed = list_artifacts(sales, org="acme")
    assert [item.artifact_id for item in listed] == [first.artifact_id, second.artifact_id]
    assert [
        i.artifact_id for i in list_artifacts(sales, org="acme", conversation_id=conversation)
    ] == [first.artifact_id]
    with pytest.raises(ArtifactNotFoundError):
        render_artifact(sales, first.artifact_id, org="globex")
    assert delete_artifact(sales, first.artifact_id, org="globex") is False
    assert delete_artifact(sales, first.artifact_id, org="acme") is True
    assert [item.artifact_id for item in list_artifacts(sales, org="acme")] == [second.artifact_id]


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value)


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM deals",
        "SELECT stage_name, 1 AS total FROM deals; DROP TABLE deals",
        "SELECT table_name AS stage_name, 1 AS total FROM information_schema.tables",
    ],
)
def test_chart_queries_pass_the_sql_guard(sales: Database, sql: str) -> None:
    with pytest.raises(ArtifactSpecError) as caught:
        create_artifact(sales, org="acme", spec={**PIPELINE, "sql": sql})
    assert caught.value.field == "sql"
    assert isinstance(caught.value.__cause__, QueryRefusedError)
    assert stored_rows(sales) == []
    with sales.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM deals")).scalar_one() == 29


def test_a_new_chart_of_no_rows_asks_to_check_the_filters(sales: Database) -> None:
    empty = {**PIPELINE, "sql": PIPELINE_SQL.replace("FROM deals", "FROM deals WHERE amount < 0")}
    with pytest.raises(ArtifactSpecError, match="returned no rows") as caught:
        create_artifact(sales, org="acme", spec=empty)
    assert caught.value.field == "sql"
    table = create_artifact(sales, org="acme", spec={**DEALS, "sql": DEALS["sql"] + " LIMIT 0"})
    assert table.table is not None and table.table.total_rows == 0  # an empty table is an answer


VERIFIED_CHART = {
    "kind": "chart",
    "title": "Pipeline (verified)",
    "type": "bar",
    "x": "stage",
    "y": ["amount"],
    "verified_query": {"name": "pipeline_by_stage", "params": {}},
}


def test_a_chart_on_a_verified_query_is_labelled_verified(sales: Database) -> None:
    event = create_artifact(sales, org="acme", spec=VERIFIED_CHART)
    assert event.verified is True
    trace = event.figures[0]["data"][0]
    assert dict(zip(trace["x"], trace["y"], strict=True)) == stage_totals()
    (row,) = stored_rows(sales)
    assert row["spec"]["verified_query"] == {"name": "pipeline_by_stage", "params": {}}
    assert "-- Pipeline (verified) (verified query pipeline_by_stage())" in row["sql"]
    assert render_artifact(sales, event.artifact_id, org="acme").verified is True
    mixed = create_artifact(
        sales,
        org="acme",
        spec={"kind": "dashboard", "title": "Mixed", "items": [VERIFIED_CHART, DEALS]},
    )
    assert mixed.verified is False  # one of its numbers comes from model-written SQL


def test_an_unknown_verified_query_names_the_field(sales: Database) -> None:
    spec = {
        "kind": "dashboard",
        "title": "D",
        "items": [{**VERIFIED_CHART, "verified_query": {"name": "pipeline_by_mood"}}],
    }
    with pytest.raises(ArtifactSpecError) as caught:
        create_artifact(sales, org="acme", spec=spec)
    assert caught.value.field == "items[0].verified_query"
    assert "pipeline_by_stage" in str(caught.value)  # the names it would accept
