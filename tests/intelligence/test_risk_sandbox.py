"""``deal_risks`` on the sandbox company synced into PostgreSQL (scale 0.05), against the truth
computed from the sandbox's own records: every rule flags exactly the deals the truth says, and
the evidence quoted for them (counts, days, moves, cuts) is the truth's."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.ids import record_id
from revtops_kernel.settings import RISK_DEFAULTS
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_sandbox.company import CALL, EMAIL, LIVE, MEETING, PIPELINES, Company
from revtops_sandbox.deal_history import drop_since_stage, pushes
from revtops_sandbox.evals.sandbox_store import sync_sandbox

ORG = "risk-sandbox"
SCALE, SEED = 0.05, 7
TODAY = date(2026, 11, 1)  # the sandbox's anchor
D = RISK_DEFAULTS

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def synced(postgres_db: Database) -> Iterator[tuple[Database, Company, list[dict[str, Any]]]]:
    try:
        company = sync_sandbox(postgres_db, org=ORG, scale=SCALE, seed=SEED)
        result = run_verified(postgres_db, "deal_risks", {}, org=ORG, today=TODAY, max_rows=50_000)
        assert not result.truncated
        frame = result.frame.astype(object).where(result.frame.notna(), None)
        yield postgres_db, company, list(frame.to_dict("records"))
    finally:  # leave the shared session database empty, as the `db` fixture expects it
        with postgres_db.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))


def day(ms: int) -> date:
    return date(1970, 1, 1) + timedelta(milliseconds=ms)


def start(days: int) -> int:
    """Epoch ms of the first moment of a window of ``days`` days ending with TODAY."""
    first = TODAY - timedelta(days=days - 1)
    return int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000)


END_MS = start(0)  # the end of TODAY


class Truth:
    """What each rule should find, from the sandbox's records (live ones, as synced)."""

    def __init__(self, co: Company) -> None:
        self.co = co
        self.open = [
            d
            for d in co.deals
            if d.state == LIVE and not PIPELINES[d.pipeline].stages[d.stage].is_closed
        ]
        self.acts: dict[int, list[Any]] = defaultdict(list)
        self.meetings_by_account: dict[int, list[int]] = defaultdict(list)
        for a in co.activities:
            if a.state != LIVE:
                continue
            if a.deal >= 0:
                self.acts[a.deal].append(a)
            if a.kind == MEETING:
                self.meetings_by_account[a.account].append(a.ts_ms)

    def deal_id(self, idx: int) -> str:
        return str(
            record_id(ORG, "hubspot", "deals", str(self.co.hs_id("deals", self.co.deals[idx])))
        )

    def ghosted(self) -> dict[int, tuple[int, int]]:
        """Deal -> (emails out, calls out) in the window, for deals with no reply in it."""
        out = {}
        first = start(D.risk_ghosted_days)
        for d in self.open:
            emails = calls = 0
            replied = False
            for a in self.acts[d.idx]:
                if a.kind not in (EMAIL, CALL) or a.ts_ms >= END_MS:
                    continue
                inbound = a.status == 1  # sandbox: 0 outbound (EMAIL, OUTBOUND), 1 inbound
                if a.ts_ms >= first and inbound:
                    replied = True
                elif a.ts_ms >= first:
                    emails += a.kind == EMAIL
                    calls += a.kind == CALL
            if emails + calls and not replied:
                out[d.idx] = (emails, calls)
        return out

    def single_threaded(self) -> dict[int, int]:
        first = start(D.risk_single_threaded_days)
        out = {}
        for d in self.open:
            contacts = {
                a.contact
                for a in self.acts[d.idx]
                if first <= a.ts_ms < END_MS
                and a.contact >= 0
                and self.co.contacts[a.contact].state == LIVE
            }
            if len(contacts) <= D.risk_single_threaded_max_contacts:
                out[d.idx] = len(contacts)
        return out

    def no_recent_meeting(self) -> set[int]:
        first = start(D.risk_no_meeting_days)
        out = set()
        for d in self.open:
            if d.created_ms >= first:
                continue
            times = [a.ts_ms for a in self.acts[d.idx] if a.kind == MEETING]
            times += self.meetings_by_account[d.account]
            if not any(t >= first for t in times):
                out.add(d.idx)
        return out

    def stalled(self) -> dict[int, int]:
        """Deal -> days in its stage, for those above the won deals' percentile there."""
        per_stage: dict[tuple[int, int], list[int]] = defaultdict(list)
        for d in self.co.deals:
            stage = PIPELINES[d.pipeline].stages[d.stage]
            if d.state != LIVE or not stage.is_won:
                continue
            days: dict[int, int] = defaultdict(int)
            h = d.history
            for k in range(0, len(h) - 2, 2):
                days[h[k]] += (day(h[k + 3]) - day(h[k + 1])).days
            for stage_idx, n in days.items():
                per_stage[(d.pipeline, stage_idx)].append(n)
        out = {}
        for d in self.open:
            won = sorted(per_stage.get((d.pipeline, d.stage), []))
            if len(won) < D.risk_stalled_min_won_deals:
                continue
            rank = (len(won) - 1) * D.risk_stalled_percentile / 100
            low = math.floor(rank)
            high = won[low + 1] if low + 1 < len(won) else won[low]
            norm = won[low] + (rank - low) * (high - won[low])
            in_stage = (TODAY - day(d.history[-1])).days
            if in_stage > norm:
                out[d.idx] = in_stage
        return out


def by_rule(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        out[row["rule"]][str(row["deal_id"])] = row
    return out


def test_every_rule_finds_what_the_sandbox_planted_and_quotes_its_evidence(
    synced: tuple[Database, Company, list[dict[str, Any]]],
) -> None:
    _, co, rows = synced
    truth = Truth(co)
    found = by_rule(rows)
    ids = truth.deal_id

    past_due = {ids(d.idx): (TODAY - day(d.close_day * 86_400_000)).days
                for d in truth.open if day(d.close_day * 86_400_000) < TODAY}  # fmt: skip
    assert {k: r["measured"] for k, r in found["past_due"].items()} == past_due

    pushed = {ids(d.idx): pushes(d) for d in truth.open if pushes(d) >= D.risk_pushed_min_moves}
    assert {k: r["measured"] for k, r in found["close_date_pushed"].items()} == pushed
    assert len(pushed) >= 3  # the sandbox plants them

    least = D.risk_amount_drop_percent / 100
    cut = {ids(d.idx): math.floor(100 * drop_since_stage(d) + 1e-9)
           for d in truth.open if drop_since_stage(d) >= least}  # fmt: skip
    assert {k: r["measured"] for k, r in found["amount_dropped"].items()} == cut
    assert len(cut) >= 3

    ghosted = truth.ghosted()
    assert set(found["ghosted"]) == {ids(i) for i in ghosted}
    for idx, (emails, calls) in list(ghosted.items())[:5]:
        reason = found["ghosted"][ids(idx)]["reason"]
        if emails:
            assert reason.startswith(f"{emails} email")
        if calls:
            assert f"{calls} call" in reason
        assert "no reply" in reason

    single = truth.single_threaded()
    assert {k: r["measured"] for k, r in found["single_threaded"].items()} == {
        ids(i): n for i, n in single.items()
    }

    assert set(found["no_recent_meeting"]) == {ids(i) for i in truth.no_recent_meeting()}

    stalled = truth.stalled()
    assert {k: r["measured"] for k, r in found["stalled"].items()} == {
        ids(i): n for i, n in stalled.items()
    }
    assert stalled  # the sandbox's open deals include some beyond their stage's norm


def test_the_score_of_each_deal_is_its_flags_weights(
    synced: tuple[Database, Company, list[dict[str, Any]]],
) -> None:
    from revtops_kernel.agent.verified_risk import RISK_WEIGHTS

    _, _, rows = synced
    rules: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        rules[str(row["deal_id"])].add(row["rule"])
    for row in rows:
        assert row["risk_score"] == sum(RISK_WEIGHTS[r] for r in rules[str(row["deal_id"])])
