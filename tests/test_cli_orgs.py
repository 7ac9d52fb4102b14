"""A mistyped organization is an error naming the known ones, on both backends, from the CLI
and the Python API; ``revtops info`` counts the configured organization's rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from revtops_kernel import api
from revtops_kernel.cli import main
from revtops_kernel.errors import UnknownOrganizationError
from revtops_kernel.known_orgs import is_known, known_organizations, require_known_org
from revtops_kernel.store import Database
from revtops_kernel.store.upsert import upsert

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _deals(org: str, count: int) -> list[dict[str, object]]:
    return [
        {"organization_id": org, "source_system": "hubspot", "source_id": str(i),
         "name": f"{org} deal {i}", "amount": 100 * (i + 1), "updated_at": T0}
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture
def store(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """``default`` synced without an organizations row (a single-user store), ``globex`` with
    one; the CLI and the API pointed at it."""
    from sqlalchemy import text

    with db.begin() as conn:
        upsert(conn, "deals", _deals("default", 3) + _deals("globex", 5))
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, created_at, updated_at) "
                "VALUES ('globex', 'Globex', :t, :t)"
            ),
            {"t": T0},
        )
    monkeypatch.setenv("REVTOPS_DATABASE_URL", db.url.render_as_string(hide_password=False))
    _forget_api_state()
    yield db
    _forget_api_state()


def _forget_api_state() -> None:
    api._settings.cache_clear()
    api.database.cache_clear()
    api._known_orgs.clear()


def test_known_organizations_come_from_organizations_and_synced_rows(store: Database) -> None:
    assert known_organizations(store) == ["default", "globex"]
    assert is_known(store, "default") and is_known(store, "globex")
    assert not is_known(store, "defualt")
    with pytest.raises(UnknownOrganizationError) as caught:
        require_known_org(store, "defualt")
    assert caught.value.suggestion == "default"
    assert "did you mean 'default'?" in str(caught.value)
    assert "Known organizations: default, globex" in str(caught.value)


def test_an_empty_store_accepts_any_organization(db: Database) -> None:
    assert known_organizations(db) == []
    require_known_org(db, "anything")  # nothing was synced yet: nothing to mistake it for


def test_sql_with_a_mistyped_org_exits_2_naming_the_known_ones(
    store: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "SELECT count(*) FROM deals", "--org", "defualt"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown organization 'defualt' (did you mean 'default'?)" in captured.err
    assert "default, globex" in captured.err
    assert main(["sql", "SELECT count(*) FROM deals", "--format", "json"]) == 0
    # DuckDB names the column count_star(), PostgreSQL count: shown as the user wrote it.
    assert json.loads(capsys.readouterr().out) in ([{"count(*)": 3}], [{"count": 3}])


def test_the_python_api_refuses_an_unknown_org(store: Database) -> None:
    with pytest.raises(UnknownOrganizationError, match="globex"):
        api.sql("SELECT 1 AS one", org="globx")
    with pytest.raises(UnknownOrganizationError, match="Known organizations"):
        api.ask("How many deals?", org="initech")
    assert api.sql("SELECT count(*) AS n FROM deals", org="globex")["n"].tolist() == [5]


def test_sql_money_comes_back_as_float64(store: Database) -> None:
    frame = api.sql("SELECT name, amount FROM deals ORDER BY amount")
    assert str(frame["amount"].dtype) == "float64"
    assert frame["amount"].tolist() == [100.0, 200.0, 300.0]
    assert frame["amount"].sum() == 600.0


def test_info_counts_the_configured_organization_and_all_with_all(
    store: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["organization"] == "default" and facts["counted"] == "default"
    assert facts["tables"]["deals"] == 3
    assert facts["organizations"] == ["default", "globex"]
    assert main(["info", "--json", "--all"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert everything["counted"] == "all" and everything["tables"]["deals"] == 8
    assert main(["info", "--org", "globex"]) == 0
    out = capsys.readouterr().out
    assert "rows of organization globex" in out and "other organizations: default" in out
    assert main(["info", "--org", "globexx"]) == 2
    assert "did you mean 'globex'?" in capsys.readouterr().err


def test_sync_refuses_a_near_miss_but_starts_a_new_organization(
    store: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    # No provider is configured, so an accepted sync has nothing to do and exits 0.
    assert main(["sync", "--org", "globexx"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'globex'?" in err and "--create" in err
    assert main(["sync", "--org", "globexx", "--create"]) == 0
    assert "'globexx' is a new organization" in capsys.readouterr().err
    assert main(["sync", "--org", "newco"]) == 0
    assert "'newco' is a new organization" in capsys.readouterr().err
    assert main(["sync", "--org", "globex"]) == 0
    assert "new organization" not in capsys.readouterr().err


def test_export_and_listing_refuse_an_unknown_org(
    store: Database, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    import uuid

    out = f"{tmp_path}/x.ipynb"
    missing = str(uuid.uuid4())
    assert main(["export", "notebook", "--conversation", missing, "-o", out, "--org", "glob"]) == 2
    assert "did you mean 'globex'?" in capsys.readouterr().err
    assert main(["conversations", "list", "--org", "defaul"]) == 2
    assert "did you mean 'default'?" in capsys.readouterr().err
    assert main(["conversations", "list", "--org", "globex"]) == 0
    assert capsys.readouterr().out == "no conversations in organization globex\n"
