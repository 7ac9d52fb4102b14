"""The synthetic company: deterministic, the right size, internally consistent."""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import astuple

import pytest

from revtops_sandbox import names
from revtops_sandbox.company import (
    DAY_MS,
    PIPELINES,
    Company,
    sf_id,
    sf_id18,
    sf_seq,
)
from revtops_sandbox.generate import generate_company


def digest(company: Company) -> str:
    h = hashlib.sha256()
    for pool in (company.owners, company.accounts, company.contacts, company.deals):
        for rec in pool:
            h.update(repr(astuple(rec)).encode())
    for act in company.activities:
        h.update(repr(astuple(act)).encode())
    return h.hexdigest()


def test_same_seed_gives_identical_data_and_another_seed_does_not() -> None:
    a, b, c = generate_company(0.05, 7), generate_company(0.05, 7), generate_company(0.05, 8)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    assert a.clock_ms == b.clock_ms


@pytest.fixture(scope="module")
def full() -> Company:
    return generate_company(1.0, 0)


def test_scale_one_is_a_fifty_rep_team(full: Company) -> None:
    counts = full.counts()
    assert counts["owners"] == 50
    assert counts["companies"] == 5000
    assert 17_000 <= counts["contacts"] <= 23_000
    assert 8_500 <= counts["deals"] <= 11_500
    engagements = sum(counts[k] for k in ("meetings", "calls", "emails", "notes", "tasks"))
    assert 42_000 <= engagements <= 58_000
    assert all(counts[k] > 2000 for k in ("meetings", "calls", "emails", "notes", "tasks"))


def test_scale_multiplies_counts() -> None:
    small, double = generate_company(0.05, 3), generate_company(0.1, 3)
    assert len(small.accounts) == 250 and len(double.accounts) == 500
    assert 1.7 < len(double.deals) / len(small.deals) < 2.3


def test_people_have_emails_at_their_domains(full: Company) -> None:
    assert all(o.email.endswith("@" + names.SELLER_DOMAIN) for o in full.owners)
    assert len({o.email for o in full.owners}) == len(full.owners)
    assert len({a.domain for a in full.accounts}) == len(full.accounts)
    for c in full.contacts[:3000]:
        assert c.email.endswith("@" + full.accounts[c.account].domain), c
    assert len({c.email for c in full.contacts}) == len(full.contacts)


def test_deals_look_like_a_real_pipeline(full: Company) -> None:
    closed = [d for d in full.deals if full.stage(d).is_closed]
    won = [d for d in closed if full.stage(d).is_won]
    assert 0.2 <= len(won) / len(closed) <= 0.3
    assert {d.pipeline for d in full.deals} == {0, 1}
    anchor_day = full.anchor_ms // DAY_MS
    days = [d.close_day - anchor_day for d in full.deals]
    assert min(days) >= -560 and max(days) <= 190
    assert any(x < -365 for x in days) and any(x > 90 for x in days)
    # amounts grow with the account's size
    by_segment: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for d in full.deals:
        emp = full.accounts[d.account].employees
        if d.amount_cents > 0:
            by_segment[0 if emp < 200 else 1 if emp < 2000 else 2].append(d.amount_cents)
    medians = [statistics.median(by_segment[s]) for s in (0, 1, 2)]
    assert medians[0] < medians[1] < medians[2]
    for d in full.deals[:2000]:
        assert d.created_ms <= d.updated_ms <= full.anchor_ms
        assert all(c in _contacts_of(full, d.account) for c in d.contacts)
        assert d.history[-2] == d.stage  # the path ends in the current stage
        assert PIPELINES[d.pipeline].stages[d.stage] is full.stage(d)


def _contacts_of(company: Company, account: int) -> set[int]:
    return set(company.reverse("contacts", "companies").get(account, []))


def test_activities_point_at_consistent_records(full: Company) -> None:
    for a in full.activities[:5000]:
        if a.deal >= 0:
            assert full.deals[a.deal].account == a.account
        if a.contact >= 0:
            assert full.contacts[a.contact].account == a.account
        assert a.created_ms <= a.updated_ms
    assert full.clock_ms > max(a.updated_ms for a in full.activities)


def test_salesforce_ids_carry_prefix_and_real_checksum() -> None:
    # documented 15 -> 18 character pairs
    assert sf_id18("001D000000Iomaz") == "001D000000IomazIAB"
    assert sf_id18("006D000000IRFma") == "006D000000IRFmaIAH"
    ident = sf_id("006", 123_456)
    assert len(ident) == 18 and ident.startswith("006")
    assert sf_seq(ident) == 123_456 and sf_seq(ident[:15]) == 123_456
    assert sf_seq("not-an-id") is None
