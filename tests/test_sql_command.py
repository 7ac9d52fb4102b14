"""``revtops sql`` and ``sql()``: the user's way through the same guard as the assistant."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from revtops_kernel import api
from revtops_kernel.cli import main
from revtops_kernel.errors import QueryRefusedError
from revtops_kernel.store import Database, upgrade

sys.path.insert(0, str(Path(__file__).parent / "agent"))
from adversarial_sql import MARKER, load_two_orgs


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One DuckDB store with two organizations for the module (queries only read it)."""
    url = f"duckdb:///{tmp_path_factory.mktemp('sqlcmd') / 'store.duckdb'}"
    db = Database(url)
    upgrade(db)
    load_two_orgs(db)
    db.dispose()
    return url


@pytest.fixture
def store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("REVTOPS_DATABASE_URL", store_url)
    monkeypatch.setenv("REVTOPS_ORG", "acme")
    api._settings.cache_clear()
    db = Database(store_url)
    yield db
    db.dispose()
    api._settings.cache_clear()
    api.database.cache_clear()


def test_rows_print_as_a_table(store: Database, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sql", "SELECT name, amount FROM deals ORDER BY amount DESC LIMIT 2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "acme Deal 11" in out and "acme Deal 10" in out and "(2 rows)" in out
    assert MARKER not in out


def test_csv_and_json(store: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "sql",
                "SELECT name, amount, close_date, updated_at FROM deals ORDER BY amount LIMIT 2",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name,amount,close_date,updated_at"
    assert lines[1].startswith("acme Deal 0,1000.00,2026-01-01,2026-01-05T09:30:00")
    assert (
        main(
            [
                "sql",
                "SELECT name, amount, close_date, updated_at FROM deals ORDER BY amount LIMIT 1",
                "--format",
                "json",
            ]
        )
        == 0
    )
    records = json.loads(capsys.readouterr().out)
    assert records == [
        {
            "name": "acme Deal 0",
            "amount": 1000,
            "close_date": "2026-01-01",
            "updated_at": "2026-01-05T09:30:00Z",
        }
    ]


def test_another_org_is_chosen_with_org(
    store: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["sql", "SELECT count(*) AS n FROM deals", "--org", "globex", "--format", "json"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"n": 12}]
    # An organization the store does not know is bad input, not zero rows.
    assert main(["sql", "SELECT count(*) AS n FROM deals", "--org", "initech"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown organization 'initech'" in captured.err and "acme, globex" in captured.err


def test_the_table_reads_like_a_table(store: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT count(*) FROM deals"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].strip() == "count(*)"  # not DuckDB's count_star()
    assert out.endswith("(1 row)\n")
    query = "SELECT name, CAST(NULL AS TIMESTAMP) AS seen, CAST(NULL AS DOUBLE) AS score FROM deals"
    assert main(["sql", f"{query} ORDER BY name LIMIT 2"]) == 0
    out = capsys.readouterr().out
    assert "NaT" not in out and "NaN" not in out and "None" not in out
    assert out.splitlines()[1].rstrip() == "acme Deal 0"  # NULL cells are empty
    assert out.endswith("(2 rows)\n")


def test_a_refused_query_exits_1_with_the_reason(
    store: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "DELETE FROM deals"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "refused" in captured.err and "SELECT" in captured.err
    assert main(["sql", "SELECT * FROM revtops.main.deals"]) == 1
    assert "schema or catalog" in capsys.readouterr().err


def test_an_unknown_column_is_named_in_the_querys_own_terms(
    store: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "SELECT o.name FROM owners o"]) == 1
    err = capsys.readouterr().err
    assert 'column "name" does not exist in o (the owners table)' in err
    assert "Did you mean o.last_name or o.full_name?" in err
    assert "Values list" not in err  # nothing of the guard's rewrite


def test_max_rows_cuts_and_says_so(store: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT name FROM deals", "--max-rows", "3", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4  # header and 3 rows
    assert "first 3 rows" in captured.err
    assert main(["sql", "SELECT 1", "--max-rows", "0"]) == 2


def test_the_python_api_returns_a_frame(store: Database) -> None:
    frame = api.sql(
        "SELECT name FROM deals WHERE amount >= :low ORDER BY amount", params={"low": 11000}
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame["name"].tolist() == ["acme Deal 10", "acme Deal 11"]
    assert api.sql("SELECT count(*) AS n FROM deals", org="globex")["n"].tolist() == [12]
    assert len(api.sql("SELECT * FROM activities", max_rows=4)) == 4
    with pytest.raises(QueryRefusedError, match="set_config"):
        api.sql("SELECT set_config('a', 'b', true)")
