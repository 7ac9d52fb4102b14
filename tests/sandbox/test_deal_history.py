"""The sandbox's amount and close-date history: consistent with the deals, planted with risk
patterns, drawn without touching the company's other values, kept by edits."""

from __future__ import annotations

import dataclasses
from itertools import pairwise
from typing import Any

import pytest

from revtops_sandbox import generate
from revtops_sandbox.company import PIPELINES, Company, Deal
from revtops_sandbox.deal_history import (
    CUT_RANGE,
    amount_versions,
    close_versions,
    drop_since_stage,
    pushes,
    snapshots,
    stage_entered_ms,
    value_at,
)
from revtops_sandbox.generate import generate_company
from revtops_sandbox.mutate import mutate


@pytest.fixture(scope="module")
def company() -> Company:
    return generate_company(scale=0.1, seed=4)


def is_open(deal: Deal) -> bool:
    return not PIPELINES[deal.pipeline].stages[deal.stage].is_closed


def test_histories_end_in_the_current_values_inside_the_deals_life(company: Company) -> None:
    for deal in company.deals:
        for versions, current in (
            (amount_versions(deal), deal.amount_cents),
            (close_versions(deal), deal.close_day),
        ):
            if not versions:
                assert current < 0  # only an amount never entered has no history
                continue
            times = [ms for ms, _ in versions]
            values = [value for _, value in versions]
            assert versions[-1][1] == current and times[0] == deal.created_ms
            assert all(a < b for a, b in pairwise(times)) and times[-1] <= deal.updated_ms
            assert all(a != b for a, b in pairwise(values))  # each row is a change
            assert all(ms % 1000 == 0 for ms in times[1:])  # whole seconds: both CRMs agree
            if not is_open(deal):  # a closed deal changed nothing after it closed
                assert len(times) == 1 or times[-1] < stage_entered_ms(deal)


def test_risk_patterns_are_planted_among_healthy_controls(company: Company) -> None:
    open_deals = [d for d in company.deals if is_open(d)]
    pushed = [d for d in open_deals if pushes(d) >= 2]
    cut = [d for d in open_deals if drop_since_stage(d) >= CUT_RANGE[0]]
    healthy = [d for d in open_deals if pushes(d) <= 1 and drop_since_stage(d) < CUT_RANGE[0]]
    assert 0.08 * len(open_deals) < len(pushed) < 0.2 * len(open_deals)
    assert 0.06 * len(open_deals) < len(cut) < 0.16 * len(open_deals)
    assert len(healthy) > 0.6 * len(open_deals)
    # Controls that make "since the current stage" and "later" matter:
    assert any(pushes(d) == 1 for d in healthy)
    assert any(0 < drop_since_stage(d) < CUT_RANGE[0] for d in healthy)
    assert any(
        value * (1 - CUT_RANGE[0]) > d.amount_cents
        for d in healthy
        for ms, value in amount_versions(d)
        if ms < stage_entered_ms(d)
    )  # cut by 20% or more, but before the current stage
    for deal in cut:  # the cut came after the stage was entered
        versions = amount_versions(deal)
        assert value_at(versions, stage_entered_ms(deal)) != deal.amount_cents


def test_salesforce_snapshots_tell_the_same_story(company: Company) -> None:
    for deal in company.deals[:500]:
        snaps = snapshots(deal)
        assert [s.stage for s in snaps if s.entry >= 0] == list(deal.history[::2])
        closes = [(s.ms, s.day) for s in snaps]
        changes = [c for i, c in enumerate(closes) if i == 0 or c[1] != closes[i - 1][1]]
        assert changes == close_versions(deal)
        amounts = [(s.ms, s.cents) for s in snaps]
        changed = [a for i, a in enumerate(amounts) if i == 0 or a[1] != amounts[i - 1][1]]
        assert [a for a in changed if a[1] >= 0] == amount_versions(deal)


def test_planting_draws_nothing_from_the_company_generator(
    company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every current value is what it was without the history (golden answers rest on them)."""
    monkeypatch.setattr(generate.deal_history, "plant", lambda deals, seed: None)
    plain = generate_company(scale=0.1, seed=4)

    def values(co: Company) -> list[Any]:
        skip = {"amounts", "close_days"}
        return [
            {k: v for k, v in dataclasses.asdict(d).items() if k not in skip} for d in co.deals
        ] + [dataclasses.asdict(a) for a in co.activities[:2000]]

    assert values(plain) == values(company)
    assert all(not d.amounts and not d.close_days for d in plain.deals)


def test_edits_append_to_the_history() -> None:
    co = generate_company(scale=0.05, seed=9)
    before = {d.idx: (amount_versions(d), close_versions(d)) for d in co.deals}
    result = mutate(co, modified_pct=30.0, seed=2, object_types=("deals",))
    edited = [d for d in co.deals if str(co.hs_id("deals", d)) in result.modified["deals"]]
    assert edited
    for deal in edited:
        amounts, closes = before[deal.idx]
        now_amounts, now_closes = amount_versions(deal), close_versions(deal)
        assert now_amounts[: len(amounts)] == amounts and now_closes[: len(closes)] == closes
        assert now_amounts[-1][1] == deal.amount_cents and now_closes[-1][1] == deal.close_day
        assert now_amounts[-1][0] == deal.updated_ms  # the edit's time
