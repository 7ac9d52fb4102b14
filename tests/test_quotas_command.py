"""``revtops quotas import`` and ``revtops quotas list`` on both backends: a good file, a bad
one (exit 2, every problem listed, nothing stored), --replace, --quarter, --json."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from revtops_kernel.cli import main
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata

T0 = datetime(2026, 1, 5, tzinfo=UTC)
ORG = "acme"


@pytest.fixture
def store(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    owners = [("ana@acme.test", "Ana Lopez"), ("ben@acme.test", "Ben Okafor")]
    with db.begin() as conn:
        conn.execute(
            insert(metadata.tables["owners"]),
            [
                {
                    "id": uuid.uuid4(),
                    "organization_id": ORG,
                    "source_system": "salesforce",
                    "source_id": email,
                    "email": email,
                    "full_name": name,
                    "updated_at": T0,
                }
                for email, name in owners
            ],
        )
    monkeypatch.setenv("REVTOPS_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REVTOPS_ORG", ORG)
    yield db


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_import_then_list(
    store: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "ana@acme.test,2026-Q4,250000,West\nben@acme.test,2026-Q4,180000,East\n"
    good = write(tmp_path, "q4.csv", "owner_email,quarter,amount,team\n" + rows)
    assert main(["quotas", "import", good]) == 0
    assert capsys.readouterr().out == "2 quotas imported into acme (2 new, 0 updated)\n"
    assert main(["quotas", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("2026-10-01..2026-12-31  East")
    assert listed[0].endswith("180,000.00  Ben Okafor <ben@acme.test>")
    assert listed[-1] == "(2 quotas in organization acme)"
    assert main(["quotas", "list", "--quarter", "2026-Q4", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["owner_email"], r["amount"], r["team"]) for r in records] == [
        ("ben@acme.test", "180000.00", "East"),
        ("ana@acme.test", "250000.00", "West"),
    ]
    assert main(["quotas", "list", "--quarter", "2027-Q1"]) == 0
    assert capsys.readouterr().out == "no quotas in organization acme for 2027-Q1\n"


def test_a_bad_file_exits_2_listing_its_problems_and_stores_nothing(
    store: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.csv", "owner_email,quarter,amount\n"
                "ana@acme.test,2026-Q4,12o000\nzed@acme.test,2026-Q4,1000\n")  # fmt: skip
    assert main(["quotas", "import", bad]) == 2
    err = capsys.readouterr().err
    assert f"revtops: {bad}: nothing imported" in err
    assert "line 2, column amount: '12o000' is not a number" in err
    fixed = write(tmp_path, "fixed.csv", "owner_email,quarter,amount\n"
                  "ana@acme.test,2026-Q4,120000\nzed@acme.test,2026-Q4,1000\n")  # fmt: skip
    assert main(["quotas", "import", fixed]) == 2
    assert "no owner in organization 'acme' has the email zed@acme.test (line(s) 3)" in (
        capsys.readouterr().err
    )
    assert main(["quotas", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["quotas", "import", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read the file" in capsys.readouterr().err
    assert main(["quotas", "list", "--quarter", "Q5"]) == 2
    assert "--quarter: 'Q5' is not a quarter" in capsys.readouterr().err


def test_replace_swaps_a_quarter_for_months(
    store: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quarter = write(tmp_path, "q.csv", "owner_email,quarter,amount\nana@acme.test,2026-Q4,300000\n")
    months = write(tmp_path, "m.csv", "owner_email,period_start,period_end,amount\n"
                   "ana@acme.test,2026-10-01,2026-10-31,100000\n"
                   "ana@acme.test,2026-11-01,2026-11-30,100000\n")  # fmt: skip
    assert main(["quotas", "import", quarter]) == 0
    assert main(["quotas", "import", months]) == 2
    assert "import with --replace to replace it" in capsys.readouterr().err
    assert main(["quotas", "import", months, "--replace"]) == 0
    assert "2 quotas imported into acme (2 new, 0 updated, 1 replaced)" in capsys.readouterr().out


def test_an_unknown_org_is_refused(store: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quotas", "list", "--org", "acne"]) == 2
    assert "did you mean 'acme'?" in capsys.readouterr().err
