"""`revtops workflows …` through the real CLI entry point, on the default DuckDB store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scheduling_helpers import write_notebook

from revtops_kernel.cli import main
from revtops_kernel.commands.workflows import parse_params


@pytest.mark.slow  # each command upgrades the DuckDB store on open
def test_workflows_add_list_disable_history_remove(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = write_notebook(tmp_path / "report.ipynb", "region = 'all'\ntop = 10")
    assert (
        main(
            [
                "workflows",
                "add",
                "report",
                str(notebook),
                "--cron",
                "0 7 * * 1-5",
                "--timezone",
                "Europe/Paris",
                "-p",
                "region=emea",
                "-p",
                "top=5",
                "--owner",
                "ann",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "added report" in out and "next run: " in out and out.strip().endswith("Z")

    assert main(["workflows", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["parameters"] == {"region": "emea", "top": 5}
    assert listed["timezone"] == "Europe/Paris" and listed["next_run"].endswith(":00Z")

    assert main(["workflows", "disable", "report"]) == 0
    assert "report paused" in capsys.readouterr().out
    assert main(["workflows", "list"]) == 0
    assert "paused" in capsys.readouterr().out
    assert main(["workflows", "history", "report"]) == 0
    assert "has not run yet" in capsys.readouterr().out
    assert main(["workflows", "remove", "report"]) == 0
    assert "removed report" in capsys.readouterr().out
    assert main(["workflows", "list"]) == 0
    assert "no workflows" in capsys.readouterr().out


def test_workflows_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = write_notebook(tmp_path / "nb.ipynb", "x = 1")
    assert main(["workflows", "add", "x", str(notebook), "--cron", "not a cron"]) == 1
    assert "invalid cron expression 'not a cron'" in capsys.readouterr().err
    assert (
        main(
            [
                "workflows",
                "add",
                "x",
                str(notebook),
                "--cron",
                "0 1 * * *",
                "--timezone",
                "Moon/Base",
            ]
        )
        == 1
    )
    assert "unknown time zone 'Moon/Base'" in capsys.readouterr().err
    assert main(["workflows", "add", "x", str(notebook), "--cron", "0 1 * * *", "-p", "oops"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["workflows", "run", "missing"]) == 1
    assert "no workflow named 'missing'" in capsys.readouterr().err
    assert main(["workflows", "run", "missing", "--enqueue"]) == 1


def test_worker_needs_a_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker"]) == 2
    assert "REVTOPS_BROKER_URL" in capsys.readouterr().err


def test_parameters_are_read_as_json_when_they_parse() -> None:
    assert parse_params(["a=1", "b=true", 'c="x y"', "d=plain text", "e=[1, 2]", "f="]) == {
        "a": 1,
        "b": True,
        "c": "x y",
        "d": "plain text",
        "e": [1, 2],
        "f": "",
    }
