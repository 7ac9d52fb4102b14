"""The deal-risk rules (``deal_risks``) on a hand-built store, on both backends: each rule flags
its deals and none of the near-misses, reasons quote the evidence, the score adds the weights,
and thresholds come from the question, else the organization, else the defaults."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from risk_dataset import AS_OF, EXPECTED, ORG, OTHER_ORG, build
from sqlalchemy import text

from revtops_kernel.agent.verified import VERIFIED_QUERIES, run_verified
from revtops_kernel.agent.verified_risk import RISK_RULES, RISK_WEIGHTS
from revtops_kernel.errors import RiskSettingsError
from revtops_kernel.intelligence.risk import (
    clear_organization_thresholds,
    effective_thresholds,
    organization_overrides,
    set_organization_thresholds,
)
from revtops_kernel.settings import RISK_DEFAULTS, RiskThresholds
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import metadata


def risks(db: Database, org: str = ORG, **params: Any) -> list[dict[str, Any]]:
    result = run_verified(db, "deal_risks", {"as_of": AS_OF, **params}, org=org, today=AS_OF)
    assert not result.truncated
    frame = result.frame.astype(object).where(result.frame.notna(), None)
    return list(frame.to_dict("records"))


def flagged(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        out[row["rule"]].add(row["deal"])
    return out


def reason(rows: list[dict[str, Any]], deal: str, rule: str) -> dict[str, Any]:
    (row,) = [r for r in rows if r["deal"] == deal and r["rule"] == rule]
    return row


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, dict[str, uuid.UUID]]]:
    """The dataset, built once per backend for this module (tests leave it as they found it)."""
    if request.param == "duckdb":
        db = Database(f"duckdb:///{tmp_path_factory.mktemp('risk') / 'store.duckdb'}")
        upgrade(db)
        yield db, build(db)
        db.dispose()
        return
    db = request.getfixturevalue("postgres_db")
    try:
        yield db, build(db)
    finally:  # the shared session database goes back empty, as the `db` fixture expects it
        with db.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))


def test_each_rule_flags_its_deals_and_none_of_the_near_misses(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    db, _ = store
    rows = risks(db)
    assert dict(flagged(rows)) == EXPECTED
    assert {r["rule"] for r in rows} == set(RISK_RULES)


def test_reasons_quote_the_evidence(store: tuple[Database, dict[str, uuid.UUID]]) -> None:
    db, ids = store
    rows = risks(db)
    ghosted = reason(rows, "ghosted", "ghosted")
    assert ghosted["reason"] == "2 emails, 1 call out since 2026-10-22, no reply since 2026-10-12"
    assert (ghosted["measured"], ghosted["threshold"]) == (3, 14)
    assert str(ghosted["deal_id"]) == str(ids["ghosted"])
    assert reason(rows, "ghosted_slack", "ghosted")["reason"] == (
        "1 message out since 2026-10-30, no reply since 2026-10-02"
    )
    assert reason(rows, "ghosted_past_due", "ghosted")["reason"].endswith("no reply ever")
    assert reason(rows, "no_meeting", "no_recent_meeting")["reason"] == (
        "no meeting since 2026-09-22 (40 days), none scheduled"
    )
    stalled = reason(rows, "stalled", "stalled")
    assert stalled["reason"] == (
        "41 days in Negotiation since 2026-09-21, above the 40 days of the 75th percentile of "
        "5 won deals there"
    )
    assert (stalled["measured"], stalled["threshold"]) == (41, 40)
    assert reason(rows, "single", "single_threaded")["reason"] == (
        "only 1 customer contact (buyer of single) engaged in the last 30 days"
    )
    assert reason(rows, "pushed", "close_date_pushed")["reason"] == (
        "close date moved later 2 times, from 2026-10-01 to 2026-12-15 (last move 2026-10-12)"
    )
    dropped = reason(rows, "dropped", "amount_dropped")
    assert dropped["reason"] == (
        "amount cut 21% since entering Discovery on 2026-10-25: 100000.00 to 79000.00"
    )
    assert reason(rows, "past_due", "past_due")["reason"] == (
        "close date 2026-10-31 passed 1 day ago, still open"
    )


def test_a_past_as_of_reads_only_what_came_before_it(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    """The windows end at as_of, and the close-date moves counted are those up to it (a deal
    whose date moved after as_of is counted from its moves, every other from its deal row)."""
    db, _ = store
    before_second_push = AS_OF - timedelta(days=30)
    rows = risks(db, as_of=before_second_push, pushed_min_moves=1, rule="close_date_pushed")
    assert reason(rows, "pushed", "close_date_pushed")["reason"] == (
        "close date moved later 1 time, from 2026-10-01 to 2026-12-15 (last move 2026-09-02)"
    )
    assert {r["deal"] for r in rows} == {"pushed", "pushed_near"}
    # The last reply before the window: the window's rows carry it.
    rows = risks(db, as_of=AS_OF - timedelta(days=4), rule="ghosted")
    assert reason(rows, "ghosted", "ghosted")["reason"] == (
        "1 email, 1 call out since 2026-10-22, no reply since 2026-10-12"
    )
    assert "ghosted_near" not in {r["deal"] for r in rows}
    rows = risks(db, ghosted_days=7, rule="ghosted")
    assert reason(rows, "ghosted", "ghosted")["reason"] == (
        "1 email, 1 call out since 2026-10-27, no reply since 2026-10-12"
    )
    # Each contact once, however many days it was engaged in the window.
    params = {"single_threaded_days": 45, "max_contacts": 2, "rule": "single_threaded"}
    rows = risks(db, **params)
    assert reason(rows, "single", "single_threaded")["reason"] == (
        "only 2 customer contacts engaged in the last 45 days"
    )
    rows = risks(db, as_of=AS_OF - timedelta(days=25), **params)
    assert reason(rows, "single", "single_threaded")["reason"] == (
        "only 1 customer contact (champion of single) engaged in the last 45 days"
    )


def test_a_scheduled_meeting_engages_its_contacts_once_as_of_reaches_it(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    """The single-threaded deal's other contact is at a meeting 3 days after AS_OF, after the
    store's last touch (deal_risk_facts' deal row summarizes the contacts up to that day):
    before the meeting it does not count, from its day it does, read from the contact rows."""
    db, ids = store
    params = {"rule": "single_threaded", "max_contacts": 2, "single_threaded_days": 30}
    for days, contacts in ((2, "only 1 customer contact (buyer of single)"),
                           (3, "only 2 customer contacts"), (26, "only 1 customer contact "
                           "(champion of single)")):  # fmt: skip
        as_of = AS_OF + timedelta(days=days)
        rows = risks(db, as_of=as_of, **params)
        assert reason(rows, "single", "single_threaded")["reason"] == (
            f"{contacts} engaged in the last 30 days"
        ), days
        # One deal's flags say the same.
        own = risks(db, as_of=as_of, deal_id=str(ids["single"]), **params)
        assert own == [r for r in rows if r["deal"] == "single"]
    rows = risks(db, as_of=AS_OF + timedelta(days=3), single_threaded_days=30, max_contacts=1)
    assert "single" not in {r["deal"] for r in rows if r["rule"] == "single_threaded"}


@pytest.mark.parametrize(
    "params",
    [{}, {"no_meeting_days": 5, "ghosted_days": 40, "single_threaded_days": 90}],
    ids=["defaults", "other windows"],
)
def test_one_deals_flags_are_the_lists_rows_for_it(
    store: tuple[Database, dict[str, uuid.UUID]], params: dict[str, Any]
) -> None:
    """One deal's flags (the deal timeline, brief and At risk view) read its activities, its
    account's meetings and the meetings its account's people attended by key, not the
    window of every activity: the rows must be the list's, flagged deals and near-misses
    alike."""
    db, ids = store
    listed = risks(db, **params)
    assert listed
    for deal_id in ids.values():
        own = [r for r in listed if str(r["deal_id"]) == str(deal_id)]
        assert risks(db, deal_id=str(deal_id), **params) == own, deal_id


def test_the_score_adds_the_weights_of_a_deals_flags(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    db, _ = store
    rows = risks(db)
    per_deal: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        per_deal[row["deal"]].add(row["rule"])
    for row in rows:
        assert row["risk_score"] == sum(RISK_WEIGHTS[r] for r in per_deal[row["deal"]])
        assert row["weight"] == RISK_WEIGHTS[row["rule"]]
    assert sum(RISK_WEIGHTS.values()) == 100
    both = [r for r in rows if r["deal"] == "ghosted_past_due"]
    assert [r["rule"] for r in both] == ["ghosted", "past_due"]  # heavier flag first
    assert {r["risk_score"] for r in both} == {30}
    assert rows[0]["deal"] == "ghosted_past_due"  # riskiest first
    scores = [r["risk_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    top = risks(db, min_score=25)
    assert {r["deal"] for r in top} == {"ghosted_past_due"}
    only = risks(db, rule="past_due")
    assert {r["deal"] for r in only} == EXPECTED["past_due"]
    assert {r["risk_score"] for r in only if r["deal"] == "ghosted_past_due"} == {30}


def test_thresholds_from_the_question_the_organization_then_the_defaults(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    db, _ = store
    try:
        check_thresholds(db)
    finally:
        clear_organization_thresholds(db, ORG)


def check_thresholds(db: Database) -> None:
    assert effective_thresholds(db, ORG) == RISK_DEFAULTS
    # The organization's own: a looser percentile catches the near-miss, a longer ghosting
    # window sees the ghosted deal's reply of 20 days ago.
    now = set_organization_thresholds(
        db, ORG, {"risk_stalled_percentile": 50, "risk_ghosted_days": 21}, updated_by="admin"
    )
    assert (now.risk_stalled_percentile, now.risk_ghosted_days) == (50, 21)
    rows = risks(db)
    assert flagged(rows)["stalled"] == {"stalled", "stalled_near"}
    assert reason(rows, "stalled", "stalled")["threshold"] == 30
    assert "ghosted" not in flagged(rows)["ghosted"]
    assert reason(rows, "ghosted_slack", "ghosted")["threshold"] == 21
    # The question's parameter wins over the organization's.
    assert flagged(risks(db, stalled_percentile=75))["stalled"] == {"stalled"}
    assert flagged(risks(db, stalled_min_won_deals=6)).get("stalled") is None
    # Another organization keeps the defaults.
    assert effective_thresholds(db, OTHER_ORG) == RISK_DEFAULTS
    assert [(r["deal"], r["rule"]) for r in risks(db, org=OTHER_ORG)] == [("elsewhere", "past_due")]
    # Setting one keeps the others; None clears one; clearing all restores the defaults.
    set_organization_thresholds(db, ORG, {"risk_ghosted_days": None})
    assert organization_overrides(db, ORG) == {"risk_stalled_percentile": 50}
    clear_organization_thresholds(db, ORG)
    assert dict(flagged(risks(db))) == EXPECTED


@pytest.mark.parametrize(
    ("values", "name", "words"),
    [
        ({"risk_ghosted_days": 0}, "risk_ghosted_days", "greater than or equal to 1"),
        ({"risk_stalled_percentile": 100}, "risk_stalled_percentile", "less than or equal"),
        ({"risk_ghosted_days": "soon"}, "risk_ghosted_days", "valid integer"),
        ({"ghosted_days": 3}, "ghosted_days", "unknown; known thresholds: risk_ghosted_days"),
    ],
)
def test_a_bad_threshold_is_refused_naming_it_and_nothing_is_written(
    store: tuple[Database, dict[str, uuid.UUID]], values: dict[str, Any], name: str, words: str
) -> None:
    db, _ = store
    set_organization_thresholds(db, "risk-admin", {"risk_no_meeting_days": 45})
    try:
        with pytest.raises(RiskSettingsError) as caught:
            set_organization_thresholds(db, "risk-admin", values)
        assert caught.value.name == name
        assert words in str(caught.value)
        assert organization_overrides(db, "risk-admin") == {"risk_no_meeting_days": 45}
    finally:
        clear_organization_thresholds(db, "risk-admin")


def test_the_query_declares_every_threshold_and_the_defaults_live_in_settings() -> None:
    query = VERIFIED_QUERIES["deal_risks"]
    names = {p.name for p in query.params}
    columns = {name.removeprefix("risk_") for name in RiskThresholds.model_fields}
    # Every threshold is a parameter (single_threaded_max_contacts is asked as max_contacts).
    assert columns - {"single_threaded_max_contacts"} | {"max_contacts"} <= names
    for name in RiskThresholds.model_fields:
        assert f", {getattr(RISK_DEFAULTS, name)}) AS INTEGER)" in query.sql


def test_the_router_sends_risk_questions_to_deal_risks() -> None:
    from datetime import UTC, datetime

    from revtops_kernel.agent.routing import OwnerName, RouteContext, route

    context = RouteContext(
        datetime(2026, 11, 1, 15, tzinfo=UTC), "UTC", (OwnerName("Ann Rep", "ann@x.example"),),
        ("New Business",), ("Discovery",),
    )  # fmt: skip
    asked = route("which deals are at risk?", context)
    assert (asked.name, asked.params) == ("deal_risks", {})
    # The suggestion shown to users routes too (a "why" question goes to the model, which
    # answers it with the same query through run_verified_query).
    first = VERIFIED_QUERIES["deal_risks"].phrasings[0]
    assert route(first, context).name == "deal_risks"
    mine = route("at-risk deals for Ann Rep", context)
    assert (mine.name, mine.params) == ("deal_risks", {"owner": "Ann Rep"})
