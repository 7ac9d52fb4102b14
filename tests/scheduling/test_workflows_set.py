"""`revtops workflows set`: stored parameters, schedule and state changed through the CLI, with
the same checks as `workflows add` (names the notebook declares, scalar values of their kind)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scheduling_helpers import write_notebook

from revtops_kernel.cli import main
from revtops_kernel.settings import Settings
from revtops_kernel.store import Database

pytestmark = pytest.mark.slow  # each command upgrades the DuckDB store on open; one run


def _listed(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["workflows", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert isinstance(listed, dict)
    return listed


def test_set_changes_stored_parameters_and_a_run_uses_them(
    duckdb_store: Database,
    env_for: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env_for(duckdb_store, REVTOPS_ORG="acme")
    marker = tmp_path / "pwned"
    notebook = write_notebook(
        tmp_path / "report.ipynb",
        "region = 'all'\ntop = 10\nchannel = None",
        "print(f'region={region!r} top={top!r} channel={channel!r}')",
    )
    add = ["workflows", "add", "report", str(notebook), "--cron", "0 7 * * 1"]
    assert main([*add, "-p", "region=emea", "-p", "channel=#sales"]) == 0
    capsys.readouterr()

    assert main(["workflows", "set", "report", "top=5", "region=apac", "--unset", "channel"]) == 0
    assert 'updated report: 0 7 * * 1 (UTC), enabled; parameters {"region": "apac", "top": 5}' in (
        capsys.readouterr().out
    )
    assert _listed(capsys)["parameters"] == {"region": "apac", "top": 5}

    # Schedule and state in the same command; a bad cron is refused and changes nothing.
    assert main(["workflows", "set", "report", "--cron", "30 6 * * 1-5", "--timezone",
                 "Europe/Paris", "--disable"]) == 0  # fmt: skip
    capsys.readouterr()
    listed = _listed(capsys)
    assert (listed["cron"], listed["timezone"], listed["enabled"]) == (
        "30 6 * * 1-5",
        "Europe/Paris",
        False,
    )
    assert main(["workflows", "set", "report", "--cron", "every day", "-p", "top=7"]) == 1
    assert "invalid cron expression 'every day'" in capsys.readouterr().err
    assert _listed(capsys)["parameters"] == {"region": "apac", "top": 5}
    assert main(["workflows", "set", "report", "--enable"]) == 0
    assert "enabled" in capsys.readouterr().out

    # Undeclared names, wrong kinds, and code smuggled in a name or a value are refused by the
    # checks `add` uses; nothing is stored.
    refusals = {
        "regoin=emea": "parameter 'regoin' is not declared by report.ipynb "
        "(declared: region, top, channel)",
        "top=many": "parameter 'top' must be an integer (declared as top = 10), got text 'many'",
        f"region\nimport pathlib; pathlib.Path({str(marker)!r}).touch()\nx=1": "parameter "
        '"region\\nimport pathlib; pathlib.Path(',
        "top=5\nimport os": "parameter 'top' must be an integer (declared as top = 10), got "
        "text '5\\nimport os'",
        "revtops_run_id=1": "parameter 'revtops_run_id' is set by the runner",
    }
    for assignment, message in refusals.items():
        assert main(["workflows", "set", "report", assignment]) == 1, assignment
        assert message in capsys.readouterr().err, assignment
    assert main(["workflows", "set", "report", "--unset", "channel"]) == 2
    assert "report has no stored channel (stored: region, top)" in capsys.readouterr().err
    assert main(["workflows", "set", "report", "top=3", "--unset", "top"]) == 2
    assert "top both set and unset" in capsys.readouterr().err
    assert main(["workflows", "set", "report"]) == 2
    assert "nothing to change" in capsys.readouterr().err
    assert main(["workflows", "set", "missing", "top=1"]) == 1
    assert "no workflow named 'missing'" in capsys.readouterr().err
    assert _listed(capsys)["parameters"] == {"region": "apac", "top": 5}

    # A text value may hold a newline and code: papermill writes it as a string literal, so it
    # stays data. The run prints the new values and the code never runs.
    payload = f"x'''\nimport pathlib; pathlib.Path({str(marker)!r}).touch()\n#"
    assert main(["workflows", "set", "report", f"channel={payload}"]) == 0
    capsys.readouterr()
    assert main(["workflows", "run", "report"]) == 0
    assert "succeeded" in capsys.readouterr().out
    runs = sorted((tmp_path / "runs" / "report").glob("*.ipynb"))
    assert len(runs) == 1
    executed = json.loads(runs[0].read_text())
    printed = "".join(
        "".join(output.get("text", ""))
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
    )
    assert f"region='apac' top=5 channel={payload!r}" in printed
    assert not marker.exists()
