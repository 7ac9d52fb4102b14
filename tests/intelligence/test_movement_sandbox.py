"""The movement queries on the sandbox company (scale 0.05) synced into DuckDB and PostgreSQL,
each compared with the same figure computed here, in Python, from the sandbox's own records
(stage path, amount and close-date versions): the waterfall to the cent for several windows,
the funnel, velocity, and forecast against imported quotas."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from helpers import synced_sandbox_store
from sqlalchemy import text

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.intelligence.quotas import import_quotas
from revtops_kernel.store import Database
from revtops_sandbox.company import LIVE, PIPELINES, Company
from revtops_sandbox.deal_history import amount_versions, close_versions
from revtops_sandbox.evals.truth import EPOCH, Truth

ORG = "movement-sandbox"
SCALE, SEED = 0.05, 7
CENT = Decimal("0.01")
pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, Company]]:
    yield from synced_sandbox_store(request, tmp_path_factory, org=ORG, scale=SCALE, seed=SEED)


def run(db: Database, name: str, today: date, **params: Any) -> list[dict[str, Any]]:
    result = run_verified(db, name, params, org=ORG, today=today)
    return list(result.frame.to_dict("records"))


def ms(day: date) -> int:
    return (day - EPOCH).days * 86_400_000


# --- a reference waterfall, from the sandbox's records --------


@dataclass(frozen=True)
class State:
    open: bool
    won: bool
    amount: Decimal
    close: date


def states(deal: Any) -> list[tuple[int, State]]:
    """The deal's state after each moment something about it changed, oldest first."""
    stages = PIPELINES[deal.pipeline].stages
    path = [(deal.history[k + 1], deal.history[k]) for k in range(0, len(deal.history), 2)]
    amounts = amount_versions(deal)
    closes = close_versions(deal)
    moments = sorted({deal.created_ms, *(m for m, _ in path), *(m for m, _ in amounts),
                      *(m for m, _ in closes)})  # fmt: skip

    def at(versions: list[tuple[int, int]], moment: int) -> int | None:
        before = [v for m, v in versions if m <= moment]
        return before[-1] if before else (versions[0][1] if versions else None)

    out = []
    for moment in moments:
        stage = stages[at(path, moment)]  # type: ignore[index]
        cents = at(amounts, moment)
        amount = Decimal(cents) / 100 if cents is not None else Decimal(0)
        close = EPOCH + timedelta(days=at(closes, moment))  # type: ignore[arg-type]
        out.append((moment, State(not stage.is_closed, stage.is_won, amount, close)))
    return out


def reference_waterfall(
    co: Company, start: date, end: date, close_window: tuple[date, date] | None, group_by: str
) -> dict[str, dict[str, Decimal]]:
    t0, t1 = ms(start), ms(end + timedelta(days=1))

    def inside(state: State | None) -> bool:
        if state is None or not state.open:
            return False
        return close_window is None or close_window[0] <= state.close <= close_window[1]

    rows: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for deal in co.deals:
        if deal.state != LIVE or deal.created_ms >= t1:
            continue
        owner = co.owners[deal.owner]
        key = {"pipeline": PIPELINES[deal.pipeline].label, "owner": owner.name}.get(group_by, "All")
        row = rows[key]
        previous: State | None = None
        for moment, state in states(deal):
            if moment < t0:
                previous = state
                continue
            if moment >= t1:
                break
            was, now = inside(previous), inside(state)
            if was:
                change = state.amount - previous.amount  # type: ignore[union-attr]
                row["increased" if change > 0 else "decreased"] += abs(change)
                if not now:
                    exit_as = "won" if state.won else "lost" if not state.open else "pushed_out"
                    row[exit_as] += state.amount
            elif now:
                enters = ("created" if previous is None
                          else "reopened" if not previous.open else "pulled_in")  # fmt: skip
                row[enters] += state.amount
            previous = state
        for side, instant in (("opening", t0), ("closing", t1)):
            before = [s for m, s in states(deal) if m < instant]
            if before and inside(before[-1]):
                row[side] += before[-1].amount
    return {k: dict(v) for k, v in rows.items()}


MOVEMENTS = ("opening", "created", "reopened", "moved_in", "pulled_in", "increased", "decreased",
             "pushed_out", "moved_out", "won", "lost", "closing")  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end", "close_window", "group_by"),
    [
        (date(2026, 7, 1), date(2026, 9, 30), None, "pipeline"),
        (date(2026, 7, 1), date(2026, 9, 30), (date(2026, 7, 1), date(2026, 9, 30)), "pipeline"),
        (date(2026, 10, 1), date(2026, 11, 1), (date(2026, 10, 1), date(2026, 12, 31)), "owner"),
        (date(2025, 1, 1), date(2025, 12, 31), None, "owner"),
        (date(2026, 1, 1), date(2026, 6, 30), (date(2026, 1, 1), date(2026, 6, 30)), "none"),
    ],
)
def test_the_waterfall_matches_a_ledger_of_the_sandbox_history(
    synced: tuple[Database, Company],
    start: date,
    end: date,
    close_window: tuple[date, date] | None,
    group_by: str,
) -> None:
    db, co = synced
    window = {"close_from": close_window[0], "close_to": close_window[1]} if close_window else {}
    got = run(db, "pipeline_waterfall", Truth(co).as_of, start_date=start, end_date=end,
              group_by=group_by, **window)  # fmt: skip
    expected = reference_waterfall(co, start, end, close_window, group_by)
    assert {r["grouping"] for r in got} == {k for k, v in expected.items() if any(v.values())}
    for row in got:
        assert Decimal(str(row["unexplained"])) == 0, row
        want = expected[row["grouping"]]
        assert {m: Decimal(str(row[m])) for m in MOVEMENTS} == {
            m: want.get(m, Decimal(0)).quantize(CENT) for m in MOVEMENTS
        }, row["grouping"]
    if close_window:  # a tracked window sees deals pushed out of it and pulled into it
        moved = sum(Decimal(str(r["pushed_out"])) + Decimal(str(r["pulled_in"])) for r in got)
        assert moved > 0


def test_the_closing_pipeline_today_is_the_open_deals_today(
    synced: tuple[Database, Company],
) -> None:
    db, co = synced
    truth = Truth(co)
    rows = run(db, "pipeline_waterfall", truth.as_of, start_date=date(2026, 1, 1),
               end_date=truth.as_of, group_by="none")  # fmt: skip
    open_amount = sum((d.amount or Decimal(0)) for d in truth.deals if d.is_open)
    assert Decimal(str(rows[0]["closing"])) == open_amount


# --- funnel and velocity --------


def test_velocity_per_rep_matches_the_deals(synced: tuple[Database, Company]) -> None:
    db, co = synced
    truth = Truth(co)
    start, end = date(2025, 11, 1), truth.as_of
    got = {r["segment"]: r for r in run(db, "sales_velocity", end, start_date=start, end_date=end)}
    by_owner: dict[str, list[Any]] = defaultdict(list)
    for deal in truth.deals:
        by_owner[deal.owner].append(deal)
    assert set(got) == set(by_owner)
    for owner, deals in by_owner.items():
        closed = [d for d in deals if d.is_closed and start <= d.close_date <= end]
        won = [d for d in closed if d.is_won]
        open_deals = sum(1 for d in deals if d.is_open)
        win_rate = len(won) / len(closed)
        avg_won = statistics.mean(float(d.amount) for d in won if d.amount is not None)
        cycle = statistics.mean((d.close_date - d.created_at.date()).days for d in won)
        row = got[owner]
        assert (row["open_deals"], row["won_deals"], row["closed_deals"]) == (
            open_deals, len(won), len(closed),
        )  # fmt: skip
        assert float(row["win_rate"]) == pytest.approx(win_rate, abs=5e-5)
        assert float(row["avg_won_amount"]) == pytest.approx(avg_won, abs=0.005)
        assert float(row["avg_cycle_days"]) == pytest.approx(cycle, abs=0.05)
        velocity = open_deals * win_rate * avg_won / cycle
        assert float(row["velocity_per_day"]) == pytest.approx(velocity, abs=0.01)


def test_the_funnel_matches_the_stage_paths(synced: tuple[Database, Company]) -> None:
    db, co = synced
    truth = Truth(co)
    start, end = date(2025, 11, 1), truth.as_of
    got = {(r["pipeline"], r["stage"]): r for r in run(
        db, "stage_funnel", end, start_date=start, end_date=end)}  # fmt: skip
    reached: dict[tuple[str, str], int] = defaultdict(int)
    advanced: dict[tuple[str, str], int] = defaultdict(int)
    days: dict[tuple[str, str], list[int]] = defaultdict(list)
    for deal in co.deals:
        created = datetime.fromtimestamp(deal.created_ms / 1000, UTC).date()
        if deal.state != LIVE or not start <= created <= end:
            continue
        pipe = PIPELINES[deal.pipeline]
        opens = [i for i, s in enumerate(pipe.stages) if not s.is_closed]
        path = [deal.history[k] for k in range(0, len(deal.history), 2)]
        times = [deal.history[k + 1] for k in range(0, len(deal.history), 2)]
        won = pipe.stages[deal.stage].is_won
        furthest = max(i for i in path if i in opens)
        for position, stage in enumerate(opens):
            key = (pipe.label, pipe.stages[stage].label)
            if won or furthest >= stage:
                reached[key] += 1
            nxt = opens[position + 1] if position + 1 < len(opens) else None
            if won or (nxt is not None and furthest >= nxt):
                advanced[key] += 1
        if won:
            reached[(pipe.label, pipe.stages[pipe.won_index].label)] += 1
        for (stage, entered), left in zip(zip(path, times, strict=True), times[1:], strict=False):
            day = lambda m: datetime.fromtimestamp(m / 1000, UTC).date()  # noqa: E731
            days[(pipe.label, pipe.stages[stage].label)].append((day(left) - day(entered)).days)
    assert {k for k, v in reached.items() if v} == set(got)
    for key, row in got.items():
        assert row["reached"] == reached[key], key
        if row["advanced"] == row["advanced"]:  # not NaN: an open stage
            assert row["advanced"] == advanced[key], key
            assert float(row["median_days_in_stage"]) == statistics.median(days[key]), key


# --- forecast against quota --------


def test_forecast_against_imported_quotas(synced: tuple[Database, Company]) -> None:
    db, co = synced
    truth = Truth(co)
    owners = [o for o in co.owners]
    quotas = {owners[0].email: ("2026-Q4", Decimal(500000), "East"),
              owners[1].email: ("2026-Q4", Decimal(400000), "East")}  # fmt: skip
    lines = ["owner_email,period_start,period_end,amount,team"]
    lines += [f"{e},2026-10-01,2026-12-31,{a},{t}" for e, (_, a, t) in quotas.items()]
    lines.append(f"{owners[2].email},2026-01-01,2026-12-31,1200000,West")  # a year, pro rata
    import_quotas(db, ORG, "\n".join(lines) + "\n")
    try:
        got = {r["owner"]: r for r in run(db, "forecast_vs_quota", truth.as_of)}
        yearly = (Decimal(1200000) * 92 / 365).quantize(CENT, ROUND_HALF_UP)
        quota = {owners[0].name: Decimal(500000), owners[1].name: Decimal(400000),
                 owners[2].name: yearly}  # fmt: skip
        for owner in owners:
            mine = [d for d in truth.deals if d.owner == owner.name
                    and date(2026, 10, 1) <= d.close_date <= date(2026, 12, 31)]  # fmt: skip
            amount = lambda d: d.amount or Decimal(0)  # noqa: E731
            won = sum(amount(d) for d in mine if d.is_won)
            opened = [d for d in mine if d.is_open]
            by_category = defaultdict(Decimal)
            for d in opened:
                by_category[d.forecast_category] += amount(d)
            weighted = won + sum(amount(d) * d.probability for d in opened
                                 if d.forecast_category != "Omitted")  # fmt: skip
            row = got[owner.name]
            assert Decimal(str(row["quota"])) == quota[owner.name]
            assert Decimal(str(row["closed_won"])) == won
            assert Decimal(str(row["commit"])) == by_category["Commit"]
            assert Decimal(str(row["best_case"])) == by_category["Best Case"]
            assert Decimal(str(row["pipeline"])) == by_category["Pipeline"]
            assert Decimal(str(row["weighted"])) == weighted.quantize(CENT, ROUND_HALF_UP)
            open_pipeline = (
                by_category["Commit"] + by_category["Best Case"] + by_category["Pipeline"]
            )
            remaining = max(quota[owner.name] - won, Decimal(0))
            assert Decimal(str(row["remaining_quota"])) == remaining
            assert float(row["coverage"]) == pytest.approx(
                float(open_pipeline / remaining), abs=0.005
            )
            assert float(row["attainment"]) == pytest.approx(
                float(won / quota[owner.name]), abs=5e-5
            )
        teams = {r["team"]: r for r in run(db, "forecast_vs_quota", truth.as_of, group_by="team")}
        assert set(teams) == {"East", "West"}
        assert teams["East"]["reps"] == 2
        assert Decimal(str(teams["East"]["quota"])) == Decimal(900000)
    finally:
        with db.begin() as conn:
            conn.execute(text("DELETE FROM quotas WHERE organization_id = :o"), {"o": ORG})
