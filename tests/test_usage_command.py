"""``revtops usage``: the ledger summed by user, model and day, every organization with --all,
an admin's caps set and cleared, bad arguments refused (exit 2)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import duckdb_copy
from sqlalchemy import insert

from revtops_kernel.cli import main
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import LlmUsage, Organization, User

ALICE = uuid.uuid4()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_template: Path) -> Database:
    url = duckdb_copy(duckdb_template, tmp_path / "usage.duckdb")
    monkeypatch.setenv("REVTOPS_DATABASE_URL", url)
    monkeypatch.setenv("REVTOPS_ORG", "acme")
    db = Database(url, lock_timeout=10)
    upgrade(db)
    now = datetime.now(UTC)
    nov2, nov3 = datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 3, 9, tzinfo=UTC)
    opus, haiku = "claude-opus-4-6", "claude-haiku-4-5"
    calls = [  # org, user, model, when, input, output, cost, status
        ("acme", ALICE, opus, nov2, 1000, 100, "0.0075", "done"),
        ("acme", ALICE, opus, nov3, 2000, 200, "0.015", "done"),
        ("acme", None, haiku, nov3, 500, 50, "0.00075", "done"),
        ("acme", ALICE, opus, now, 0, 0, "0", "reserved"),  # in flight: not shown
        ("globex", None, opus, nov3, 100, 10, "0.00075", "done"),
    ]
    with db.begin() as connection:
        for org, name in (("acme", "Acme"), ("globex", "Globex")):
            connection.execute(
                insert(Organization).values(id=org, name=name, created_at=now, updated_at=now)
            )
        connection.execute(
            insert(User).values(
                id=ALICE, organization_id="acme", email="alice@acme.test", created_at=now
            )
        )
        for org, user, model, when, tokens_in, tokens_out, cost, status in calls:
            connection.execute(
                insert(LlmUsage).values(
                    id=uuid.uuid4(), organization_id=org, user_id=user, model=model,
                    status=status, input_tokens=tokens_in, output_tokens=tokens_out,
                    cost_usd=Decimal(cost), started_at=when,
                )
            )  # fmt: skip
    db.dispose()
    return db


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["usage", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_usage_by_user_model_and_day(store: Database, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--by", "user", "--json")
    assert code == 0
    report = json.loads(out)
    by_user = {line["key"]: (line["calls"], line["cost_usd"]) for line in report["lines"]}
    assert by_user == {"alice@acme.test": (2, "0.022500"), "(no user)": (1, "0.000750")}
    assert report["total_cost_usd"] == "0.023250" and report["total_calls"] == 3

    code, out, _ = run(capsys, "--by", "day", "--json")
    days = [(line["key"], line["calls"]) for line in json.loads(out)["lines"]]
    assert days == [("2026-11-03", 2), ("2026-11-02", 1)]  # newest first

    code, out, _ = run(capsys, "--by", "model", "--since", "2026-11-03")
    lines = out.splitlines()
    assert lines[0].split()[0] == "model"
    assert lines[1].split()[:2] == ["claude-opus-4-6", "1"]
    assert lines[2].split()[:2] == ["claude-haiku-4-5", "1"]
    assert lines[3].split()[-1] == "0.0158"  # total
    assert "daily cap: none (REVTOPS_DAILY_COST_CAP_USD)" in out


def test_every_organization_with_all(store: Database, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--all", "--by", "org", "--json")
    assert code == 0
    report = json.loads(out)
    assert [(line["key"], line["calls"]) for line in report["lines"]] == [
        ("acme", 3),
        ("globex", 1),
    ]
    assert report["organization"] is None and report["caps"] == []


def test_an_admin_sets_and_clears_the_organizations_caps(
    store: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVTOPS_MONTHLY_COST_CAP_USD", "50")
    code, out, _ = run(capsys, "--org", "acme", "--set-daily-cap", "0.01", "--json")
    assert code == 0
    caps = {c["period"]: c for c in json.loads(out)["caps"]}
    assert (caps["day"]["cap_usd"], caps["day"]["source"]) == ("0.01", "the organization's own cap")
    assert (caps["month"]["cap_usd"], caps["month"]["source"]) == (
        "50",
        "REVTOPS_MONTHLY_COST_CAP_USD",
    )
    # a later change of one cap keeps the other organization cap
    run(capsys, "--org", "acme", "--set-monthly-cap", "20")
    code, out, _ = run(capsys, "--org", "acme", "--json")
    caps = {c["period"]: c for c in json.loads(out)["caps"]}
    assert (caps["day"]["cap_usd"], caps["month"]["cap_usd"]) == ("0.01", "20.00")
    code, out, _ = run(capsys, "--org", "acme", "--clear-caps")
    assert code == 0 and "monthly cap: $0.0000 of $50.00 (REVTOPS_MONTHLY_COST_CAP_USD)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set-daily-cap", "-1"], "a cap is 0 (no cap) or more"),
        (["--set-daily-cap", "lots"], "expected an amount in USD"),
        (["--since", "yesterday"], "expected a date such as 2026-11-01"),
        (["--by", "team"], "invalid choice: 'team'"),
        (["--all", "--set-daily-cap", "5"], "caps are per organization"),
        (["--org", "acmee"], "did you mean 'acme'?"),
    ],
)
def test_bad_arguments_exit_2_saying_what_is_wrong(
    store: Database, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    try:
        code, _, err = run(capsys, *args)
    except SystemExit as exit_:  # argparse's own refusals
        code, err = int(exit_.code or 0), capsys.readouterr().err
    assert code == 2
    assert message in err


def test_the_apps_usage_view_shows_the_report_escaped(store: Database) -> None:
    from revtops_kernel.settings import load_settings
    from revtops_kernel.ui.usage_view import usage_html, usage_view

    settings = load_settings(REVTOPS_DAILY_COST_CAP_USD="2")
    view = usage_view(Database(settings.database_url), settings, "acme", by="user")
    assert "alice@acme.test" in view.value and "$0.0225" in view.value
    assert "Daily cap: $0.0000 of $2.00" in view.value  # nothing spent today
    report = {"by": "user", "lines": [{"key": "<img src=x onerror=alert(1)>", "calls": 1,
              "input_tokens": 1, "cache_read_tokens": 0, "cache_creation_tokens": 0,
              "output_tokens": 1, "cost_usd": "0.1"}], "caps": []}  # fmt: skip
    html = usage_html(report)
    assert "<img" not in html and "&lt;img src=x" in html
