"""The `revtops` console script, run as a user runs it: a real process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from revtops_kernel.store import Database
from revtops_kernel.store.migrate import target_version
from revtops_kernel.store.schema import metadata

REVTOPS = shutil.which("revtops") or str(Path(os.sys.executable).with_name("revtops"))


def revtops(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REVTOPS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_db_upgrade_twice_then_info_on_the_embedded_default(isolated_environment: Path) -> None:
    first = revtops("db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"created {len(metadata.tables)} tables" in first.stdout
    database = isolated_environment / ".revtops" / "revtops.duckdb"
    assert database.exists()

    second = revtops("db", "upgrade")
    assert second.returncode == 0, second.stderr
    assert "schema already up to date" in second.stdout

    info = revtops("info", "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["backend"] == "duckdb"
    assert facts["database"] == f"duckdb:///{database}"
    assert facts["schema_version"] == target_version()
    assert facts["tables"]["deals"] == 0
    assert len(facts["tables"]) == len(metadata.tables)


def test_info_before_upgrade_says_what_to_run() -> None:
    info = revtops("info")
    assert info.returncode == 0
    assert "run `revtops db upgrade`" in info.stdout


@pytest.mark.postgres
def test_db_upgrade_on_postgresql(postgres_url: str) -> None:
    env = {"REVTOPS_DATABASE_URL": postgres_url}
    assert revtops("db", "upgrade", **env).returncode == 0
    again = revtops("db", "upgrade", **env)
    assert again.returncode == 0, again.stderr
    assert "schema already up to date" in again.stdout
    facts = json.loads(revtops("info", "--json", **env).stdout)
    assert facts["backend"] == "postgresql"
    assert facts["schema_version"] == target_version()


def test_a_bad_setting_stops_the_command_naming_the_variable() -> None:
    result = revtops("info", REVTOPS_DATABASE_URL="mysql://root:pw@localhost/crm")
    assert result.returncode == 2
    assert "REVTOPS_DATABASE_URL" in result.stderr
    assert "pw@" not in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_a_one_line_error() -> None:
    result = revtops("info", REVTOPS_DATABASE_URL="postgresql://nobody@127.0.0.1:1/nothing")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "127.0.0.1" in result.stderr


def test_sync_from_the_command_line_against_the_sandbox() -> None:
    from revtops_sandbox import SandboxServer

    with SandboxServer(scale=0.02, seed=2) as sandbox:
        env = {
            "REVTOPS_HUBSPOT_BASE_URL": sandbox.hubspot_base_url,
            "REVTOPS_HUBSPOT_TOKEN": sandbox.token,
            "REVTOPS_SALESFORCE_INSTANCE_URL": sandbox.salesforce_instance_url,
            "REVTOPS_SALESFORCE_TOKEN": sandbox.token,
        }
        first = revtops("sync", **env)
        assert first.returncode == 0, first.stderr
        assert "hubspot: succeeded" in first.stdout
        assert "salesforce: succeeded" in first.stdout
        again = revtops("sync", "--provider", "hubspot", **env)
        assert again.returncode == 0, again.stderr
        assert ", 0 written," in again.stdout
        facts = json.loads(revtops("info", "--json").stdout)
        assert facts["tables"]["deals"] == 2 * sandbox.company.counts()["deals"]
        assert sandbox.token not in first.stdout + first.stderr


def test_a_failed_sync_exits_non_zero_with_the_reason() -> None:
    from revtops_sandbox import SandboxServer

    with SandboxServer(scale=0.01, seed=2) as sandbox:
        result = revtops(
            "sync",
            "--provider",
            "hubspot",
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN="not-the-token",
        )
    assert result.returncode == 1
    assert "hubspot: failed" in result.stdout
    assert "401" in result.stdout
    assert "not-the-token" not in result.stdout + result.stderr


@pytest.mark.slow
def test_ctrl_c_during_sync_marks_the_run_interrupted_and_exits_130(db: Database) -> None:
    """A real ``revtops sync`` process gets SIGINT mid-run, on both backends."""
    import signal

    from helpers import default_sigint
    from test_sync_resilience import environment, scalar, wait_for_progress

    from revtops_sandbox import SandboxServer

    with SandboxServer(scale=0.05, seed=9) as sandbox:
        # Slow the provider down so the run is long enough to be stopped in the middle of it.
        sandbox.faults.hubspot.rate_limits = True
        sandbox.faults.hubspot.ten_second_limit = 50
        victim = subprocess.Popen(
            [REVTOPS, "sync", "--provider", "hubspot"],
            env={**os.environ, **environment(sandbox, db)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_sigint,
        )
        try:
            wait_for_progress(db, victim)  # type: ignore[arg-type]
            victim.send_signal(signal.SIGINT)
            _, err = victim.communicate(timeout=60)
        finally:
            if victim.poll() is None:
                victim.kill()
    assert victim.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("revtops sync: interrupted")
    statuses = "SELECT status, error FROM sync_runs WHERE provider = 'hubspot'"
    with db.connect() as conn:
        runs = [tuple(row) for row in conn.exec_driver_sql(statuses)]
    assert runs == [("interrupted", "interrupted by the user (Ctrl-C)")]
    assert scalar(db, "SELECT count(*) FROM sync_cursors") >= 3  # committed pages are kept


def test_a_relative_duckdb_url_is_resolved_and_shown_absolute(tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    url = "duckdb:///data/store.duckdb"  # as a user types it, relative to where they are
    result = subprocess.run(
        [REVTOPS, "db", "upgrade"],
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, "REVTOPS_DATABASE_URL": url},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (work / "data" / "store.duckdb").exists()
    assert f"database: duckdb:///{work / 'data' / 'store.duckdb'}" in result.stdout


@pytest.mark.slow
def test_a_locked_duckdb_file_says_who_holds_it_while_waiting(tmp_path: Path) -> None:
    import sys

    path = tmp_path / "store.duckdb"
    env = {
        **os.environ,
        "REVTOPS_DATABASE_URL": f"duckdb:///{path}",
        "REVTOPS_DB_LOCK_TIMEOUT": "60",
    }
    assert revtops("db", "upgrade", **env).returncode == 0
    # Another process holds the file until told to let go (a line on its stdin).
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.readline(); c.close()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    asking = None
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        asking = subprocess.Popen(
            [REVTOPS, "sql", "SELECT 1 AS one"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert asking.stderr is not None
        waiting = asking.stderr.readline().rstrip("\n")  # said while it waits, not at the end
        assert holder.stdin is not None
        holder.stdin.write("done\n")
        holder.stdin.flush()
        out, rest = asking.communicate(timeout=90)
    finally:
        holder.kill()
        holder.wait()
        if asking is not None and asking.poll() is None:
            asking.kill()
    assert asking.returncode == 0, waiting + rest
    assert out.splitlines()[-1] == "(1 row)"
    assert "waiting" not in rest  # said once, not on every retry
    assert waiting.startswith(f"revtops: waiting for the DuckDB file {path}: ")
    assert f"another process (PID {holder.pid}) holds it; giving up in " in waiting
    assert re.search(r"giving up in (5\d) s \(REVTOPS_DB_LOCK_TIMEOUT\)$", waiting), waiting
