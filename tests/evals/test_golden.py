"""The golden set: well formed, answers derived from the ground truth, every gold query
matching them through the guard on both backends (the quota plan imported as a user would),
and a sync bug caught when one appears, in a deal's current values or in its history."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import pairwise

import pytest
from sqlalchemy import text

from revtops_kernel.agent.guard import guard_sql
from revtops_kernel.intelligence.quotas import list_quotas, parse_quotas
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_sandbox.evals import EVAL_SCALE, EVAL_SEED
from revtops_sandbox.evals.golden import AS_OF, GOLDEN, GOLDEN_BY_ID
from revtops_sandbox.evals.golden_history import HISTORY_GOLDEN
from revtops_sandbox.evals.quota_plan import plan_csv, quota_plan
from revtops_sandbox.evals.runner import check_gold
from revtops_sandbox.evals.sandbox_store import sync_sandbox
from revtops_sandbox.evals.truth import Truth
from revtops_sandbox.generate import generate_company

ORG = "evals-test"
SCALE, SEED = 0.05, 7


def test_the_set_has_sixty_or_more_distinct_questions() -> None:
    assert len(GOLDEN) >= 60
    assert len(GOLDEN_BY_ID) == len(GOLDEN)
    assert len({q.question for q in GOLDEN}) == len(GOLDEN)
    assert {q.category for q in GOLDEN} >= {"pipeline", "forecast", "win_rate", "hygiene"}


def test_twenty_or_more_questions_ask_about_history_risk_and_quota() -> None:
    assert len(HISTORY_GOLDEN) >= 20
    assert set(HISTORY_GOLDEN) <= set(GOLDEN)
    categories = Counter(q.category for q in HISTORY_GOLDEN)
    for category in ("risk", "waterfall", "funnel", "velocity", "quota"):
        assert categories[category] >= 2, category
    # Most read the history or the quotas; a few (past due, velocity) need current values only.
    history_tables = {"deal_stage_history", "deal_field_history", "quotas"}
    reading = [
        q.id
        for q in HISTORY_GOLDEN
        if guard_sql(q.sql, dialect="duckdb", org=ORG, max_rows=1000).tables & history_tables
    ]
    assert len(reading) >= 16, reading


def test_the_quota_plan_is_a_file_the_quota_import_accepts() -> None:
    company = generate_company(EVAL_SCALE, EVAL_SEED)
    plan = quota_plan(company)
    rows = parse_quotas(plan_csv(plan))
    assert [(r.owner_email, r.period_start, r.period_end, r.amount, r.team) for r in rows] == [
        (q.email, q.period_start, q.period_end, q.amount, q.team) for q in plan
    ]
    active = [o for o in company.owners if o.active]
    assert len(plan) == 4 * len(active)  # each active rep, each quarter of the plan's year


@pytest.mark.parametrize("question", GOLDEN, ids=lambda q: q.id)
def test_every_gold_query_passes_the_guard(question: object) -> None:
    sql = question.sql  # type: ignore[attr-defined]
    for dialect in ("duckdb", "postgres"):
        assert guard_sql(sql, dialect=dialect, org=ORG, max_rows=1000).tables


def test_answers_at_the_eval_scale_are_not_degenerate() -> None:
    truth = Truth(generate_company(EVAL_SCALE, EVAL_SEED))
    zero_answers = []
    for question in GOLDEN:
        expected = question.expected(truth)
        assert expected.rows, f"{question.id}: empty answer"
        for row in expected.rows:
            assert len(row) == len(expected.columns), question.id
            assert all(v is not None for v in row), question.id
        if all(isinstance(v, int | float) and v == 0 for row in expected.rows for v in row):
            zero_answers.append(question.id)
    # A zero is a fine answer, but a set of zeros would test little.
    assert len(zero_answers) <= 2, zero_answers


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
    if request.param == "duckdb":
        db = Database(f"duckdb:///{tmp_path_factory.mktemp('golden') / 'store.duckdb'}")
        owned = True
    else:
        db = request.getfixturevalue("postgres_db")
        owned = False
    try:
        yield db, Truth(sync_sandbox(db, org=ORG, scale=SCALE, seed=SEED))
    finally:
        if owned:
            db.dispose()
        else:  # the shared session database goes back empty, as the `db` fixture expects
            with db.begin() as conn:
                conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))


def test_every_gold_query_matches_the_ground_truth(synced: tuple[Database, Truth]) -> None:
    db, truth = synced
    checks = check_gold(db, truth, org=ORG)
    failed = [f"{c.id}: {c.reason}" for c in checks if not c.ok]
    assert not failed
    assert len(checks) == len(GOLDEN)
    # The check imported the plan the quota answers are derived from, as a user would.
    stored = {(q.owner_email, q.period_start, q.period_end, q.amount, q.team)
              for q in list_quotas(db, ORG)}  # fmt: skip
    assert stored == {(q.email, q.period_start, q.period_end, q.amount, q.team)
                      for q in truth.quotas}  # fmt: skip


def test_a_lost_history_row_fails_the_questions_that_read_it(
    synced: tuple[Database, Truth],
) -> None:
    """What a history sync bug would look like: the last push of a deal pushed exactly twice
    goes missing from deal_field_history."""
    db, truth = synced
    victim = next(
        d
        for d in truth.deals
        if d.is_open
        and [b > a for (_, a), (_, b) in pairwise(truth.close_history[d.idx])].count(True) == 2
        and truth.close_history[d.idx][-1][1] > truth.close_history[d.idx][-2][1]
    )
    lose = (
        "UPDATE deal_field_history SET deleted_at = CASE WHEN :lose THEN changed_at END "
        "WHERE organization_id = :org AND field = 'close_date' AND changed_at = :at "
        "AND deal_id IN (SELECT id FROM deals WHERE organization_id = :org AND name = :n)"
    )
    where = {"org": ORG, "n": victim.name, "at": truth.close_history[victim.idx][-1][0]}
    with db.begin() as conn:
        assert conn.execute(text(lose), {**where, "lose": True}).rowcount == 1
    try:
        touched = ["risk_close_date_pushed_twice"]
        untouched = ["risk_amount_dropped_since_stage", "quota_attainment_q3_2026"]
        checks = {
            c.id: c
            for c in check_gold(
                db, truth, org=ORG, questions=[GOLDEN_BY_ID[q] for q in touched + untouched]
            )
        }
        assert [q for q in touched if checks[q].ok] == []
        assert all(checks[q].ok for q in untouched)
    finally:
        with db.begin() as conn:
            conn.execute(text(lose), {**where, "lose": False})


def test_a_wrong_row_in_the_store_fails_the_questions_it_touches(
    synced: tuple[Database, Truth],
) -> None:
    """What a normalizer bug would look like: one open deal stored with the wrong amount."""
    db, truth = synced
    victim = max((d for d in truth.deals if d.is_open and d.amount), key=lambda d: d.amount or 0)
    update = "UPDATE deals SET amount = amount + :delta WHERE organization_id = :org AND name = :n"
    with db.begin() as conn:
        conn.execute(text(update), {"delta": 100, "org": ORG, "n": victim.name})
    try:
        touched = ["open_pipeline_total", "largest_open_deals", "weighted_pipeline"]
        untouched = ["won_amount_2025", "active_reps"]
        checks = {
            c.id: c
            for c in check_gold(
                db, truth, org=ORG, questions=[GOLDEN_BY_ID[q] for q in touched + untouched]
            )
        }
        assert [q for q in touched if checks[q].ok] == []
        assert all(checks[q].ok for q in untouched)
    finally:
        with db.begin() as conn:
            conn.execute(text(update), {"delta": -100, "org": ORG, "n": victim.name})


def test_the_questions_dates_are_the_sandboxs_today() -> None:
    assert Truth(generate_company(SCALE, SEED)).as_of == AS_OF
