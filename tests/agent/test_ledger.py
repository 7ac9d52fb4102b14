"""The cost ledger against the scripted Messages API through the real SDK: a row per call with
the usage the server reported, the caps refusing the next call (and not verified answers), and
the caps' check holding when two askers race for the last of a cap."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from copilot_fixtures import NOW, ORG, collect, load_crm, make_copilot, of_type, settings_for
from sqlalchemy import insert, select

from revtops_kernel.agent.caps import set_org_caps
from revtops_kernel.agent.events import Done, Error, ErrorKind, Notice, Usage, VerifiedAnswer
from revtops_kernel.agent.ledger import CallUsage, Ledger
from revtops_kernel.agent.ledger_report import cap_standing, usage_lines
from revtops_kernel.agent.pricing import cost_usd
from revtops_kernel.answering import Answerer
from revtops_kernel.errors import CostCapError
from revtops_kernel.store import Database
from revtops_kernel.store.schema import LlmUsage
from revtops_sandbox.anthropic import Fault, ScriptedMessagesServer, Turn

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def ledger_rows(db: Database) -> list[Any]:
    with db.connect() as connection:
        return list(
            connection.execute(select(LlmUsage).order_by(LlmUsage.started_at, LlmUsage.id)).all()
        )


def test_every_call_is_a_row_with_the_usage_the_server_reported(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    load_crm(db)
    user = uuid.uuid4()
    copilot = make_copilot(db, scripted)
    copilot.user_id = user
    scripted.script(
        Turn.tool("run_sql_query", {"sql": "SELECT count(*) AS n FROM deals"}),
        Fault.rate_limited(retry_after=0),
        Turn.reply("There are 12 deals."),
    )
    events = collect(copilot.ask("How many deals?"))
    done = of_type(events, Done)[0]
    assert done.stop_reason == "end_turn"

    rows = ledger_rows(db)  # one clock for the whole test: matched by content, not order
    billed = scripted.billed
    assert len(billed) == 2 and len(rows) == 3  # two answered calls and the 429 between them
    assert sorted(r.status for r in rows) == ["done", "done", "failed"]
    failed = next(r for r in rows if r.status == "failed")
    assert (failed.input_tokens, failed.output_tokens, failed.cost_usd) == (0, 0, 0)
    model = copilot.settings.model
    recorded = sorted(
        (r.input_tokens, r.cache_read_tokens, r.cache_creation_tokens, r.output_tokens, r.cost_usd)
        for r in rows
        if r.status == "done"
    )
    reported = sorted(
        (
            b["input_tokens"],
            b["cache_read_input_tokens"],
            b["cache_creation_input_tokens"],
            b["output_tokens"],
            cost_usd(
                model,
                input_tokens=b["input_tokens"],
                output_tokens=b["output_tokens"],
                cache_read_tokens=b["cache_read_input_tokens"],
                cache_creation_tokens=b["cache_creation_input_tokens"],
            ),
        )
        for b in billed
    )
    streamed = sorted(
        (u.input_tokens, u.cache_read_tokens, u.cache_creation_tokens, u.output_tokens, u.cost_usd)
        for u in of_type(events, Usage)
    )
    assert recorded == reported == streamed
    assert all(r.reserved_usd == 0 for r in rows)
    for row in rows:
        assert row.organization_id == ORG and row.user_id == user
        assert row.conversation_id == done.conversation_id
        assert row.model == copilot.settings.model and row.price_date is not None
        assert row.latency_ms is not None and row.latency_ms >= 0
        assert row.finished_at is not None
    lines = usage_lines(db, org=ORG, by="model")
    assert [(line.key, line.calls) for line in lines] == [(copilot.settings.model, 3)]
    assert lines[0].cost_usd == sum(r.cost_usd for r in rows)


def test_a_cap_stops_the_next_call_and_names_itself_while_verified_answers_still_work(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    load_crm(db)
    copilot = make_copilot(db, scripted, REVTOPS_DAILY_COST_CAP_USD="0.0001")
    scripted.script(Turn.reply("An answer that uses up the day's budget."))
    first = collect(copilot.ask("Tell me about our deals in a sentence."))
    assert of_type(first, Done)[0].stop_reason == "end_turn"
    assert len(scripted.requests) == 1

    refused = collect(copilot.ask("And another thing?"))
    errors = of_type(refused, Error)
    assert [e.kind for e in errors] == [ErrorKind.COST_CAP]
    tomorrow = (NOW + timedelta(days=1)).date()  # the copilot's clock
    assert "daily cost cap of $0.00" in errors[0].message
    assert f"resets at {tomorrow} 00:00 UTC" in errors[0].message
    assert "REVTOPS_DAILY_COST_CAP_USD" in errors[0].message
    assert "verified questions still answer" in errors[0].message
    assert len(scripted.requests) == 1  # nothing was sent
    assert len(ledger_rows(db)) == 1  # a refused call reserves nothing

    answerer = Answerer(db, copilot.settings, clock=lambda: NOW)
    verified = collect(answerer.ask("what's our pipeline by stage?"))
    answer = of_type(verified, VerifiedAnswer)[0]
    assert answer.name == "pipeline_by_stage" and not answer.narrated
    notices = [n.message for n in of_type(verified, Notice)]
    assert any("daily cost cap" in n for n in notices)
    assert not of_type(verified, Error)
    assert len(scripted.requests) == 1  # still nothing sent


def test_an_admins_cap_for_the_organization_overrides_the_settings(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    settings = settings_for(scripted, REVTOPS_DAILY_COST_CAP_USD="1000")
    ledger = Ledger(db, settings)
    assert ledger.over_cap(ORG) is None
    set_org_caps(db, ORG, daily_usd=None, monthly_usd=Decimal(0), by="test")
    assert ledger.over_cap(ORG) is None  # 0 = no cap; the daily cap still comes from settings
    _spend(db, Decimal("0.50"))
    set_org_caps(db, ORG, daily_usd=None, monthly_usd=Decimal("0.25"), by="test")
    refusal = ledger.over_cap(ORG)
    assert refusal is not None and refusal.period == "month"
    assert refusal.setting == "the organization's own cap"
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert refusal.resets_at == (month_start + timedelta(days=32)).replace(day=1)
    standing = {s.period: s for s in cap_standing(db, settings, ORG)}
    assert standing["day"].cap_usd == 1000 and standing["month"].cap_usd == Decimal("0.25")
    assert standing["month"].spent_usd == Decimal("0.50")
    set_org_caps(db, ORG, daily_usd=None, monthly_usd=None)
    assert ledger.over_cap(ORG) is None


def _spend(db: Database, usd: Decimal, *, status: str = "done", org: str = ORG) -> None:
    with db.begin() as connection:
        connection.execute(
            insert(LlmUsage).values(
                id=uuid.uuid4(),
                organization_id=org,
                model="claude-opus-4-6",
                status=status,
                cost_usd=usd if status != "reserved" else Decimal(0),
                reserved_usd=usd if status == "reserved" else Decimal(0),
                started_at=datetime.now(UTC),
            )
        )


REQUEST = {
    "model": "claude-opus-4-6",
    "max_tokens": 1000,  # at $25/Mtok: $0.025 held while the call runs
    "system": [{"type": "text", "text": "x" * 300}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
}


def _race(ledger: Ledger, askers: int) -> tuple[int, list[CostCapError]]:
    """``askers`` threads admit one call each at the same moment; (admitted, refusals)."""
    barrier = threading.Barrier(askers)
    admitted: list[object] = []
    refused: list[CostCapError] = []
    lock = threading.Lock()

    def ask() -> None:
        meter = ledger.meter(ORG, None, None)
        barrier.wait()
        try:
            ticket = meter.admit(REQUEST)
        except CostCapError as exc:
            with lock:
                refused.append(exc)
            return
        with lock:
            admitted.append(ticket)

    threads = [threading.Thread(target=ask) for _ in range(askers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return len(admitted), refused


@pytest.mark.parametrize("askers", [2, 6])
def test_askers_racing_for_a_nearly_spent_cap_pass_it_by_at_most_one_call(
    db: Database, scripted: ScriptedMessagesServer, askers: int
) -> None:
    settings = settings_for(scripted, REVTOPS_DAILY_COST_CAP_USD="1.00")
    ledger = Ledger(db, settings)
    for _ in range(5):  # the race repeated: a lost update would show within a few rounds
        with db.begin() as connection:
            connection.execute(LlmUsage.__table__.delete())
        _spend(db, Decimal("0.99"))  # one cent left; a call holds ~2.5 cents while it runs
        admitted, refused = _race(ledger, askers)
        assert admitted == 1, f"{admitted} of {askers} calls passed a cap with one call left"
        assert len(refused) == askers - 1
        assert all(r.period == "day" and r.cap_usd == Decimal("1.00") for r in refused)
        held = [r for r in ledger_rows(db) if r.status == "reserved"]
        assert len(held) == 1 and held[0].reserved_usd > Decimal("0.01")


def test_calls_in_flight_count_until_they_settle_and_stale_ones_stop_counting(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    settings = settings_for(scripted, REVTOPS_DAILY_COST_CAP_USD="0.05")
    clock = [datetime(2026, 11, 20, 12, 0, tzinfo=UTC)]
    ledger = Ledger(db, settings, clock=lambda: clock[0])
    meter = ledger.meter(ORG, None, None)
    first = meter.admit(REQUEST)  # holds ~$0.026
    meter.admit(REQUEST)  # ~$0.052 held: the cap is reached while both run
    with pytest.raises(CostCapError) as refused:
        meter.admit(REQUEST)
    assert refused.value.spent_usd > Decimal("0.05")
    meter.settle(first, CallUsage(input_tokens=10, output_tokens=10), "done")
    assert ledger.over_cap(ORG) is None  # the first settled for far less than it held
    meter.admit(REQUEST)
    assert ledger.over_cap(ORG) is not None
    clock[0] += timedelta(hours=1)  # those two askers' kernels died mid-call
    assert ledger.over_cap(ORG) is None
    settled = [r for r in ledger_rows(db) if r.status == "done"]
    assert len(settled) == 1 and settled[0].cost_usd == cost_usd(
        "claude-opus-4-6", input_tokens=10, output_tokens=10
    )


def test_without_caps_a_call_is_written_once_when_it_ends(
    db: Database, scripted: ScriptedMessagesServer
) -> None:
    ledger = Ledger(db, settings_for(scripted))
    meter = ledger.meter(ORG, None, None)
    ticket = meter.admit(REQUEST)
    assert not ticket.reserved and ledger_rows(db) == []  # nothing to hold against
    meter.settle(ticket, CallUsage(input_tokens=7, output_tokens=3), "done")
    (row,) = ledger_rows(db)
    assert (row.status, row.input_tokens, row.output_tokens) == ("done", 7, 3)
    assert row.cost_usd == cost_usd("claude-opus-4-6", input_tokens=7, output_tokens=3)
    set_org_caps(db, ORG, daily_usd=Decimal(5), monthly_usd=None)
    assert not meter.admit(REQUEST).reserved  # the organization's caps are remembered a while
    fresh = Ledger(db, settings_for(scripted)).meter(ORG, None, None)
    assert fresh.admit(REQUEST).reserved
