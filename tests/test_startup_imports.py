"""One-shot commands load only what they use (issue 16): ``revtops sql`` on DuckDB prints the
store's rows without pandas (nor pyarrow and numpy, which a DataFrame is built through), and
never loads the PostgreSQL driver.

Each check runs the command in a fresh interpreter and reads ``sys.modules`` at its end, so an
import added anywhere on the path (a module-level ``import pandas`` in the store, the guard, the
CLI) fails here rather than slowing every call by most of a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from revtops_kernel.commands.sql import render, render_rows
from revtops_kernel.store import Database, upgrade

# Run `revtops sql QUERY --format F` for each format as the console script does, then report
# what they printed and imported.
PROBE = """
import contextlib, io, json, sys
from revtops_kernel.cli import main
report = {}
for fmt in ("table", "csv", "json"):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["sql", sys.argv[1], "--format", fmt])
    report[fmt] = [code, out.getvalue()]
print(json.dumps({"printed": report, "modules": sorted(sys.modules)}))
"""
NOT_ON_THE_PATH = ("pandas", "pyarrow", "numpy", "psycopg")


@pytest.fixture(scope="module")
def duckdb_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("startup")
    url = f"duckdb:///{home / 'store.duckdb'}"
    db = Database(url)
    upgrade(db)
    db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVTOPS_")}
    env.update(REVTOPS_HOME=str(home), REVTOPS_DATABASE_URL=url, REVTOPS_ORG="acme")
    return env


def _probe(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_revtops_sql_on_duckdb_loads_no_dataframe_library_nor_psycopg(
    duckdb_env: dict[str, str],
) -> None:
    query = "SELECT 1 AS n, 2.50::DECIMAL(10, 2) AS amount, NULL AS missing"
    report = _probe(duckdb_env, query)
    assert report["printed"] == {
        "table": [0, "n  amount  missing\n1    2.50\n(1 row)\n"],
        "csv": [0, "n,amount,missing\n1,2.50,\n"],
        "json": [0, '[{"n": 1, "amount": 2.5, "missing": null}]\n'],
    }
    modules = report["modules"]
    assert isinstance(modules, list)
    assert [m for m in NOT_ON_THE_PATH if m in modules] == []


def test_a_frame_renders_as_the_same_rows_render() -> None:
    """``revtops ask`` prints a DataFrame, ``revtops sql`` rows: one format for both."""
    import datetime as dt
    from decimal import Decimal

    import pandas as pd

    when = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
    columns = ["name", "amount", "closed", "score", "count_star()"]
    rows = [
        ("acme Deal 0", Decimal("1000.00"), when, 0.5, 3),
        ("b", None, None, None, 12),
    ]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for fmt in ("table", "csv", "json"):
        assert render(frame, fmt) == render_rows(columns, rows, fmt)
    table = render_rows(columns, rows, "table").splitlines()
    assert table[0].split() == ["name", "amount", "closed", "score", "count(*)"]
    assert table[2].rstrip().endswith("12") and "None" not in table[2] and "NaN" not in table[2]
    assert render_rows(columns, rows, "csv").splitlines()[1] == (
        "acme Deal 0,1000.00,2026-01-05T09:30:00.000000Z,0.5,3"
    )
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        render_rows(columns, rows, "xml")
