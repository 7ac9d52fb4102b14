"""Verified queries: contract, parameter validation, the guard, and results on both backends
over a synced sandbox, cross-checked against the sandbox's ground truth."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from revtops_kernel.agent.guard import guard_sql, run_guarded
from revtops_kernel.agent.verified import (
    VERIFIED_QUERIES,
    VERIFIED_TOOL_SCHEMA,
    catalogue,
    render_sql,
    resolve_params,
    run_verified,
)
from revtops_kernel.errors import VerifiedQueryError
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_sandbox.evals.sandbox_store import sync_sandbox
from revtops_sandbox.evals.truth import DealFact, Truth, day_start

ORG = "verified-test"
SCALE, SEED = 0.05, 7
TODAY = date(2026, 11, 1)  # the sandbox's anchor: its "today"


# --- contract --------


def test_the_tool_schema_and_catalogue_name_every_query_and_parameter() -> None:
    assert VERIFIED_TOOL_SCHEMA["properties"]["name"]["enum"] == list(VERIFIED_QUERIES)
    assert VERIFIED_TOOL_SCHEMA["required"] == ["name"]
    listing = catalogue()
    for name, query in VERIFIED_QUERIES.items():
        entry = listing.split(f"- {name}: ", 1)[1].split("\n- ", 1)[0]
        params = entry.split("    params: ", 1)[1].split("\n", 1)[0]
        named = re.findall(r"(?:^|, )([a-z_]+)(?= \(|,|$)", params)
        assert named == [p.name for p in query.params]
    assert "stalled_deals" in listing and "stage history" in listing
    assert len(VERIFIED_QUERIES) >= 9


@pytest.mark.parametrize("name", list(VERIFIED_QUERIES))
def test_each_query_binds_exactly_its_parameters_and_passes_the_guard(name: str) -> None:
    query = VERIFIED_QUERIES[name]
    bound = set(re.findall(r"(?<!:):([a-z_]+)", query.sql))
    assert bound == {p.name for p in query.params}
    for dialect in ("duckdb", "postgres"):
        guarded = guard_sql(query.sql, dialect=dialect, org=ORG, max_rows=100)
        assert guarded.tables  # reads business tables, scoped by the guard's rewrite


# --- parameters --------


def test_defaults_are_resolved_from_today() -> None:
    params = resolve_params("forecast_by_category", None, today=date(2026, 11, 20))
    assert params == {
        "start_date": date(2026, 10, 1),
        "end_date": date(2026, 12, 31),
        "pipeline": None,
        "owner": None,
    }
    assert resolve_params("win_rate", {}, today=date(2024, 2, 29))["start_date"] == date(
        2023, 2, 28
    )
    stalled = resolve_params("stalled_deals", {"days": "45", "as_of": "2026-03-31"})
    assert (stalled["days"], stalled["as_of"]) == (45, date(2026, 3, 31))
    assert resolve_params("win_rate", {"period": " Month "})["period"] == "month"
    assert resolve_params("pipeline_by_stage", {"owner": "  "})["owner"] is None


@pytest.mark.parametrize(
    ("name", "params", "param", "words"),
    [
        ("stalled_deals", {"days": 0}, "days", "out of range"),
        ("stalled_deals", {"days": "ten"}, "days", "not a whole number"),
        ("stalled_deals", {"days": True}, "days", "not a whole number"),
        ("stalled_deals", {"days": 2.5}, "days", "not a whole number"),
        ("stalled_deals", {"as_of": "last tuesday"}, "as_of", "YYYY-MM-DD"),
        ("stalled_deals", {"as_of": "2026-02-30"}, "as_of", "day is out of range"),
        ("win_rate", {"period": "week"}, "period", "month, quarter, year"),
        ("win_rate", {"start_date": "2026-05-01", "end_date": "2026-04-01"}, "start_date", "after"),
        ("pipeline_by_stage", {"owner": "x" * 201}, "owner", "longer than 200"),
        ("pipeline_by_stage", {"owner": 42}, "owner", "expected text"),
        ("pipeline_by_stage", {"stage": "Discovery"}, "stage", "accepted: owner, pipeline"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(
    name: str, params: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(VerifiedQueryError) as caught:
        resolve_params(name, params, today=TODAY)
    assert caught.value.query == name
    assert caught.value.param == param
    assert words in str(caught.value)
    assert f"parameter {param!r}" in str(caught.value)


def test_params_must_be_an_object() -> None:
    with pytest.raises(VerifiedQueryError, match="params must be an object"):
        resolve_params("win_rate", ["quarter"], today=TODAY)  # type: ignore[arg-type]


def test_the_rendered_sql_writes_parameters_as_literals() -> None:
    params = resolve_params("stalled_deals", {"owner": "O'Brien", "days": 7}, today=TODAY)
    sql = render_sql("stalled_deals", params)
    assert "CAST(7 AS INTEGER)" in sql
    assert "CAST(DATE '2026-11-01' AS DATE)" in sql
    assert "lower(CAST('O''Brien' AS TEXT))" in sql
    assert "lower(CAST(NULL AS TEXT)) AS pipeline" in sql
    assert not re.search(r"(?<!:):[a-z_]", sql)


def test_an_unknown_query_is_refused_listing_the_known_ones(tmp_path: Path) -> None:
    db = Database(f"duckdb:///{tmp_path / 'unused.duckdb'}")
    with pytest.raises(VerifiedQueryError, match="no such verified query; choose one of") as caught:
        run_verified(db, "revenue_by_moon_phase", {}, org=ORG)
    assert "pipeline_by_stage" in str(caught.value)
    assert caught.value.param is None


# --- on a synced sandbox, both backends --------


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("duckdb", marks=pytest.mark.slow),
        pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.slow]),
    ],
)
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, Truth]]:
    """The sandbox synced once per backend for this module."""
    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("verified") / "store.duckdb"
        db = Database(f"duckdb:///{path}", lock_timeout=10)
        owned = True
    else:
        db = request.getfixturevalue("postgres_db")
        owned = False
    try:
        company = sync_sandbox(db, org=ORG, scale=SCALE, seed=SEED)
        yield db, Truth(company)
    finally:
        if owned:
            db.dispose()
        else:  # leave the shared session database as the `db` fixture expects it: empty
            with db.begin() as conn:
                names = ", ".join(t.name for t in metadata.sorted_tables)
                conn.execute(text(f"TRUNCATE {names}"))


def run(db: Database, name: str, **params: Any) -> list[dict[str, Any]]:
    result = run_verified(db, name, params, org=ORG, today=TODAY)
    assert not result.truncated
    frame = result.frame.astype(object).where(result.frame.notna(), None)
    return list(frame.to_dict("records"))


def money(values: Any) -> Decimal:
    return sum((v for v in values if v is not None), Decimal(0))


def open_deals(truth: Truth) -> list[DealFact]:
    return [d for d in truth.deals if d.is_open]


def test_every_query_runs_with_its_defaults(synced: tuple[Database, Truth]) -> None:
    db, _ = synced
    for name in VERIFIED_QUERIES:
        result = run_verified(db, name, None, org=ORG, today=TODAY)
        assert list(result.frame.columns), name
        assert result.row_count > 0, f"{name} found nothing in the sandbox with its defaults"


def test_pipeline_by_stage_matches_the_open_deals(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    rows = run(db, "pipeline_by_stage")
    expected: dict[tuple[str, str], list[DealFact]] = defaultdict(list)
    for d in open_deals(truth):
        expected[(d.pipeline, d.stage)].append(d)
    assert {(r["pipeline"], r["stage"]): r["deals"] for r in rows} == {
        k: len(v) for k, v in expected.items()
    }
    for r in rows:
        deals = expected[(r["pipeline"], r["stage"])]
        assert Decimal(r["amount"]) == money(d.amount for d in deals)
        weighted = money(d.amount * d.probability for d in deals if d.amount is not None)
        assert float(r["weighted_amount"]) == pytest.approx(float(weighted))
    # Stage order within each pipeline.
    for pipeline in ("New Business", "Renewals"):
        orders = [r["stage_order"] for r in rows if r["pipeline"] == pipeline]
        assert orders == sorted(orders)


def test_owner_and_pipeline_filters_ignore_case(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    owner = truth.owners[0]
    by_email = run(db, "pipeline_by_stage", owner=owner.email.upper())
    by_name = run(db, "pipeline_by_stage", owner=owner.name.lower())
    mine = [d for d in open_deals(truth) if d.owner == owner.name]
    assert sum(r["deals"] for r in by_email) == len(mine) > 0
    assert by_name == by_email
    renewals = run(db, "pipeline_by_stage", pipeline="renewals")
    assert {r["pipeline"] for r in renewals} == {"Renewals"}
    assert run(db, "pipeline_by_stage", owner="nobody@nowhere.example") == []


def test_forecast_by_category_counts_every_deal_closing_in_the_window(
    synced: tuple[Database, Truth],
) -> None:
    db, truth = synced
    rows = run(db, "forecast_by_category", start_date="2026-10-01", end_date="2026-12-31")
    window = [d for d in truth.deals if date(2026, 10, 1) <= d.close_date <= date(2026, 12, 31)]
    assert {r["forecast_category"]: r["deals"] for r in rows} == Counter(
        d.forecast_category for d in window
    )
    order = [r["forecast_category"] for r in rows]
    ranks = ["Closed", "Commit", "Best Case", "Pipeline", "Omitted"]
    assert order == sorted(order, key=ranks.index)


def test_win_rate_by_quarter_and_by_owner(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    closed = [d for d in truth.deals if d.is_closed and date(2025, 11, 1) <= d.close_date <= TODAY]
    rows = run(db, "win_rate", start_date="2025-11-01", end_date=TODAY.isoformat())
    per_quarter: dict[date, list[DealFact]] = defaultdict(list)
    for d in closed:
        per_quarter[date(d.close_date.year, 3 * ((d.close_date.month - 1) // 3) + 1, 1)].append(d)
    assert [r["period_start"] for r in rows] == sorted(per_quarter)
    for r in rows:
        deals = per_quarter[r["period_start"]]
        won = sum(d.is_won for d in deals)
        assert (r["won"], r["lost"]) == (won, len(deals) - won)
        assert float(r["win_rate"]) == pytest.approx(won / len(deals), abs=5e-5)
    by_owner = run(db, "win_rate_by_owner", start_date="2025-11-01", end_date=TODAY.isoformat())
    wins = Counter(d.owner for d in closed if d.is_won)
    assert {r["owner"]: r["won"] for r in by_owner} == {
        o: wins.get(o, 0) for o in {d.owner for d in closed}
    }


def test_average_sales_cycle_per_pipeline(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    rows = run(db, "average_sales_cycle", start_date="2020-01-01", end_date=TODAY.isoformat())
    days: dict[str, list[int]] = defaultdict(list)
    for d in truth.deals:
        if d.is_won:
            days[d.pipeline].append((d.close_date - d.created_at.date()).days)
    assert {r["grouping"]: r["won_deals"] for r in rows} == {p: len(v) for p, v in days.items()}
    for r in rows:
        mean = sum(days[r["grouping"]]) / len(days[r["grouping"]])
        assert float(r["avg_days"]) == pytest.approx(mean, abs=0.05)


def test_stalled_deals_count_days_in_the_current_stage(synced: tuple[Database, Truth]) -> None:
    db, truth = synced

    def entered(deal: DealFact) -> date:  # the sandbox keeps each deal's stage path
        entered_ms = truth.company.deals[deal.idx].history[-1]  # (stage, ms, ...) pairs
        return date(1970, 1, 1) + timedelta(milliseconds=entered_ms)

    rows = run(db, "stalled_deals", days=30, as_of=TODAY.isoformat())
    expected = Counter(
        (d.name, (TODAY - entered(d)).days)
        for d in open_deals(truth)
        if (TODAY - entered(d)).days >= 30
    )
    assert Counter((r["deal"], r["days_in_stage"]) for r in rows) == expected
    assert all(r["days_in_stage"] == (TODAY - r["stage_entered"]).days for r in rows)
    days = [r["days_in_stage"] for r in rows]
    assert days == sorted(days, reverse=True)


def test_deals_without_activity(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    rows = run(db, "deals_without_activity", days=14, as_of=TODAY.isoformat())
    window_start = day_start(TODAY - timedelta(days=13))
    window_end = day_start(TODAY + timedelta(days=1))
    expected = set()
    for d in open_deals(truth):
        acts = truth.activities_by_deal.get(d.idx, [])
        if not any(window_start <= a.occurred_at < window_end for a in acts):
            expected.add(d.name)
    assert {r["deal"] for r in rows} == expected
    never = [r for r in rows if r["last_activity_at"] is None]
    assert all(r["days_since_activity"] is None for r in never)


def test_single_threaded_deals(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    rows = run(db, "single_threaded_deals")
    engaged = [
        (
            d.name,
            len({a.contact for a in truth.activities_by_deal.get(d.idx, []) if a.contact >= 0}),
        )
        for d in open_deals(truth)
    ]
    assert Counter((r["deal"], r["contacts_engaged"]) for r in rows) == Counter(
        (name, n) for name, n in engaged if n <= 1
    )
    two = run(db, "single_threaded_deals", max_contacts=2)
    assert len(two) == sum(1 for _, n in engaged if n <= 2) > len(rows)


def test_meetings_by_account(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    rows = run(db, "meetings_by_account", start_date="2026-08-03", end_date="2026-10-31")
    start, end = day_start(date(2026, 8, 3)), day_start(date(2026, 11, 1))
    counts = Counter(
        a.account
        for a in truth.activities
        if a.activity_type == "meeting" and start <= a.occurred_at < end
    )
    assert {r["account"]: r["meetings"] for r in rows} == dict(counts)
    assert [r["meetings"] for r in rows] == sorted((r["meetings"] for r in rows), reverse=True)
    busy = run(db, "meetings_by_account", start_date="2026-08-03", end_date="2026-10-31",
               min_meetings=3)  # fmt: skip
    assert {r["account"] for r in busy} == {a for a, n in counts.items() if n >= 3}


def test_rep_leaderboard(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    rows = run(db, "rep_leaderboard", start_date="2026-01-01", end_date="2026-10-31")
    won = [
        d
        for d in truth.deals
        if d.is_won and date(2026, 1, 1) <= d.close_date <= date(2026, 10, 31)
    ]
    for r in rows:
        mine = [d for d in won if d.owner == r["owner"]]
        assert (r["won_deals"], Decimal(r["won_amount"])) == (
            len(mine),
            money(d.amount for d in mine),
        )
        assert r["open_deals"] == sum(1 for d in open_deals(truth) if d.owner == r["owner"])
    amounts = [Decimal(r["won_amount"]) for r in rows]
    assert amounts == sorted(amounts, reverse=True)


def test_pipeline_created_closing_and_slipped(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    created = run(db, "pipeline_created", start_date="2026-07-01", end_date="2026-09-30")
    months = Counter(
        (date(d.created_at.year, d.created_at.month, 1), d.pipeline)
        for d in truth.deals
        if date(2026, 7, 1) <= d.created_at.date() <= date(2026, 9, 30)
    )
    assert {(r["period_start"], r["pipeline"]): r["deals"] for r in created} == dict(months)
    closing = run(db, "deals_closing", start_date="2026-11-01", end_date="2026-12-31")
    assert {r["deal"] for r in closing} == {
        d.name for d in open_deals(truth) if date(2026, 11, 1) <= d.close_date <= date(2026, 12, 31)
    }
    slipped = run(db, "slipped_deals", as_of=TODAY.isoformat())
    late = [d for d in open_deals(truth) if d.close_date < TODAY]
    assert len(slipped) == len(late)
    assert all(r["days_overdue"] == (TODAY - r["close_date"]).days for r in slipped)


def test_a_result_carries_its_sql_which_reruns_through_the_guard(
    synced: tuple[Database, Truth],
) -> None:
    db, _ = synced
    result = run_verified(db, "win_rate", {"period": "month"}, org=ORG, today=TODAY)
    assert result.name == "win_rate"
    assert result.params["start_date"] == date(2025, 11, 1)
    again = run_guarded(db, result.sql, org=ORG)
    assert again.frame.equals(result.frame)


def test_max_rows_caps_a_long_list(synced: tuple[Database, Truth]) -> None:
    db, _ = synced
    result = run_verified(db, "slipped_deals", {}, org=ORG, max_rows=3, today=TODAY)
    assert result.row_count == 3
    assert result.truncated


def test_another_org_sees_nothing(synced: tuple[Database, Truth]) -> None:
    db, _ = synced
    result = run_verified(db, "pipeline_by_stage", {}, org="someone-else", today=TODAY)
    assert result.row_count == 0
