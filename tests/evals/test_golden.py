"""The golden set: well formed, answers derived from the ground truth, every gold query
matching them through the guard on both backends, and a sync bug caught when one appears."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from revtops_kernel.agent.guard import guard_sql
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_sandbox.evals import EVAL_SCALE, EVAL_SEED
from revtops_sandbox.evals.golden import AS_OF, GOLDEN, GOLDEN_BY_ID
from revtops_sandbox.evals.runner import check_gold
from revtops_sandbox.evals.sandbox_store import sync_sandbox
from revtops_sandbox.evals.truth import Truth
from revtops_sandbox.generate import generate_company

ORG = "evals-test"
SCALE, SEED = 0.05, 7


def test_the_set_has_thirty_or_more_distinct_questions() -> None:
    assert len(GOLDEN) >= 30
    assert len(GOLDEN_BY_ID) == len(GOLDEN)
    assert len({q.question for q in GOLDEN}) == len(GOLDEN)
    assert {q.category for q in GOLDEN} >= {"pipeline", "forecast", "win_rate", "hygiene"}


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
