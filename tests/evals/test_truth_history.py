"""The history and quota facts the golden answers are derived from agree with what the sandbox
planted (``deal_history``) and with the plan, without any store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from revtops_sandbox import names
from revtops_sandbox.deal_history import drop_since_stage, pushes
from revtops_sandbox.evals.golden import GOLDEN_BY_ID
from revtops_sandbox.evals.quota_plan import TEAM_QUOTA
from revtops_sandbox.evals.truth import Truth, value_at
from revtops_sandbox.generate import generate_company

SCALE, SEED = 0.05, 7


@pytest.fixture(scope="module")
def truth() -> Truth:
    return Truth(generate_company(SCALE, SEED))


def test_a_value_at_an_instant_is_the_one_set_before_it() -> None:
    t0, t1 = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)
    versions = [(t0, "a"), (t1, "b")]
    assert value_at(versions, datetime(2026, 8, 1, tzinfo=UTC)) is None
    assert value_at(versions, t1) == "a"  # 2026-10-01 00:00 sees what was true up to then
    assert value_at(versions, datetime(2026, 10, 2, tzinfo=UTC)) == "b"


def test_the_pushed_and_cut_answers_are_the_planted_deals(truth: Truth) -> None:
    co = truth.company
    planted_pushed = sorted(
        (d.name, pushes(co.deals[d.idx]))
        for d in truth.deals
        if d.is_open and pushes(co.deals[d.idx]) >= 2
    )
    assert planted_pushed  # the sandbox plants them at every scale
    answer = GOLDEN_BY_ID["risk_close_date_pushed_twice"].expected(truth)
    assert sorted(answer.rows) == planted_pushed
    planted_cut = sorted(
        d.name
        for d in truth.deals
        if d.is_open and d.amount is not None and drop_since_stage(co.deals[d.idx]) >= 0.2
    )
    cut = GOLDEN_BY_ID["risk_amount_dropped_since_stage"].expected(truth)
    assert sorted(row[0] for row in cut.rows) == planted_cut


def test_a_deals_state_now_is_its_current_values(truth: Truth) -> None:
    tomorrow = datetime(2026, 11, 2, tzinfo=UTC)
    for deal in truth.deals:
        state = truth.state_at(deal, tomorrow)
        assert state is not None
        assert (state.is_open, state.is_won, state.amount, state.close_date) == (
            deal.is_open,
            deal.is_won,
            deal.amount,
            deal.close_date,
        ), deal.name
        assert truth.state_at(deal, deal.created_at) is None  # not yet created


def test_quotas_add_up_over_the_quarters_inside_a_window(truth: Truth) -> None:
    owner = next(o for o in truth.company.owners if o.active)
    quarterly = Decimal(TEAM_QUOTA[names.OWNER_TEAMS[owner.team]])
    assert truth.quota(owner.name, date(2026, 7, 1), date(2026, 9, 30)) == quarterly
    assert truth.quota(owner.name, date(2026, 1, 1), date(2026, 9, 30)) == 3 * quarterly
    assert truth.quota(owner.name, date(2026, 8, 1), date(2026, 9, 30)) is None  # no whole one
    assert truth.quota(owner.name, date(2025, 1, 1), date(2025, 12, 31)) is None
