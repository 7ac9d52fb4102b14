"""One deal's timeline and brief on the sandbox company synced into DuckDB and PostgreSQL
(scale 0.02): a planted deal's close-date pushes and amount cut appear as events, in time
order, against the sandbox's own history; another organization's deal is not found; the risk
flags are ``deal_risks``' rows for the deal; the brief is one page naming the deal and its
risk reasons; and the ``revtops deals`` commands."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from helpers import synced_sandbox_store
from sqlalchemy import text

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.artifacts.timeline_chart import timeline_figure, timeline_svg
from revtops_kernel.cli import main
from revtops_kernel.errors import DealNotFoundError
from revtops_kernel.ids import record_id
from revtops_kernel.intelligence.timeline import EVENT_KINDS, deal_timeline, find_deals
from revtops_kernel.reports.deal_brief import deal_brief_pdf, deal_risk_flags
from revtops_kernel.store import Database
from revtops_sandbox.company import LIVE, PIPELINES, Company
from revtops_sandbox.deal_history import amount_versions, close_versions, pushes
from revtops_sandbox.records import CALL, EMAIL, MEETING

ORG = "timeline-sandbox"
SCALE, SEED = 0.02, 7
TODAY = date(2026, 11, 1)  # the sandbox's anchor

pytestmark = pytest.mark.slow


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Database, Company]]:
    yield from synced_sandbox_store(request, tmp_path_factory, org=ORG, scale=SCALE, seed=SEED)


def deal_id(company: Company, deal: Any) -> str:
    return str(record_id(ORG, "hubspot", "deals", str(company.hs_id("deals", deal))))


def planted(company: Company) -> Any:
    """A live open deal whose close date was pushed at least twice and whose amount changed."""
    for deal in company.deals:
        stages = PIPELINES[deal.pipeline].stages
        if (
            deal.state == LIVE
            and not stages[deal.stage].is_closed
            and pushes(deal) >= 2
            and len(amount_versions(deal)) >= 2
        ):
            return deal
    raise AssertionError("the sandbox planted no pushed deal with an amount change")


def test_a_planted_deals_pushes_and_amount_changes_are_events_in_time_order(
    synced: tuple[Database, Company],
) -> None:
    db, company = synced
    deal = planted(company)
    timeline = deal_timeline(db, ORG, deal_id(company, deal))
    times = [e.at for e in timeline.events]
    assert times == sorted(times)
    assert {e.kind for e in timeline.events} <= set(EVENT_KINDS)
    assert timeline.events[0].kind == "created"

    closes = [day for _, day in close_versions(deal)]
    moves = [(a, b) for a, b in pairwise(closes) if a != b]
    close_events = timeline.of_kind("close_date")
    assert len(close_events) == len(moves)
    assert sum("pushed" in e.title for e in close_events) == pushes(deal)

    amounts = [cents for _, cents in amount_versions(deal)]
    changes = [(a, b) for a, b in pairwise(amounts) if a != b]
    amount_events = timeline.of_kind("amount")
    assert len(amount_events) == len(changes)
    for event, (before, after) in zip(amount_events, changes, strict=True):
        assert f"${before // 100:,}" in event.title and f"${after // 100:,}" in event.title

    # Activities linked to the deal in the sandbox are all there, as their kinds.
    acts = [a for a in company.activities if a.deal == deal.idx and a.state == LIVE]
    shown = [e for e in timeline.events if e.activity_id is not None]
    kinds = {"meeting", "email", "call"}
    assert len([a for a in acts if _kind(a) in kinds]) == len([e for e in shown if e.kind in kinds])
    assert any(p.side == "internal" for p in timeline.participants) or not shown


def _kind(activity: Any) -> str:
    return {MEETING: "meeting", CALL: "call", EMAIL: "email"}.get(activity.kind, "other")


def test_another_organizations_deal_and_bad_ids_are_not_found(
    synced: tuple[Database, Company],
) -> None:
    db, company = synced
    ident = deal_id(company, planted(company))
    with pytest.raises(DealNotFoundError, match="no such deal in organization 'elsewhere'"):
        deal_timeline(db, "elsewhere", ident)
    with pytest.raises(DealNotFoundError, match="is not a deal id"):
        deal_timeline(db, ORG, "acme")
    assert find_deals(db, "elsewhere", ident) == []
    found = find_deals(db, ORG, ident)
    assert [d.id for d in found] == [ident]


def test_find_deals_by_a_fragment_of_the_deal_or_account_name(
    synced: tuple[Database, Company],
) -> None:
    db, company = synced
    header = deal_timeline(db, ORG, deal_id(company, planted(company))).deal
    assert header.name and header.account
    by_name = find_deals(db, ORG, header.name.upper())
    assert by_name[0].id == header.id  # the exact name first
    by_account = find_deals(db, ORG, header.account.lower()[:8])
    assert header.id in [d.id for d in by_account]
    assert find_deals(db, ORG, "100%_of nothing") == []  # LIKE wildcards are text


def test_risk_flags_are_deal_risks_rows_for_the_deal(synced: tuple[Database, Company]) -> None:
    db, _ = synced
    everything = run_verified(db, "deal_risks", {}, org=ORG, today=TODAY, max_rows=50_000).frame
    flagged = everything["deal_id"].astype(str)
    ident = flagged.value_counts().index[0]  # the deal with the most flags
    flags, score = deal_risk_flags(db, ORG, ident, today=TODAY)
    rows = everything[flagged == ident]
    assert sorted(f.rule for f in flags) == sorted(rows["rule"])
    assert sorted(f.reason for f in flags) == sorted(rows["reason"])
    assert score == int(rows["risk_score"].max()) == sum(f.weight for f in flags)


def test_the_chart_has_the_stage_path_amount_and_event_lanes(
    synced: tuple[Database, Company],
) -> None:
    db, company = synced
    timeline = deal_timeline(db, ORG, deal_id(company, planted(company)))
    figure = timeline_figure(timeline)
    names = [trace.name for trace in figure.data]
    assert names[:2] == ["Stage", "Amount"] and "Close date" in names
    svg = timeline_svg(timeline)
    assert svg.startswith("<?xml") and "Close date" in svg


def pdf_pages_and_text(pdf: bytes, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "brief.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    pages = int(next(li.split()[-1] for li in info.stdout.splitlines() if li.startswith("Pages")))
    words = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return pages, " ".join(words.split())


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")
def test_the_brief_is_one_page_with_the_deal_and_its_risk_reasons(
    synced: tuple[Database, Company], tmp_path: Path
) -> None:
    db, company = synced
    ident = deal_id(company, planted(company))
    flags, _ = deal_risk_flags(db, ORG, ident, today=TODAY)
    pages, words = pdf_pages_and_text(deal_brief_pdf(db, ORG, ident, today=TODAY), tmp_path)
    assert pages == 1
    header = deal_timeline(db, ORG, ident).deal
    assert str(header.name) in words
    assert flags, "the planted deal is pushed twice: at least one flag"
    for flag in flags:
        assert " ".join(flag.reason.split())[:40] in words
    if not db.is_duckdb:
        return  # the layout does not depend on the backend: the busiest deal once is enough
    # The busiest deal's brief still fits one page: lists are cut, and say so.
    with db.connect() as conn:
        busiest = conn.execute(
            text(
                "SELECT deal_id FROM activities WHERE organization_id = :org "
                "AND deal_id IS NOT NULL GROUP BY deal_id ORDER BY count(*) DESC LIMIT 1"
            ),
            {"org": ORG},
        ).scalar_one()
    pages, words = pdf_pages_and_text(deal_brief_pdf(db, ORG, str(busiest)), tmp_path)
    assert pages == 1 and "earlier events" in words


def test_the_deals_commands(
    synced: tuple[Database, Company],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, company = synced
    if not db.is_duckdb:
        pytest.skip("the commands are the same on both backends; DuckDB is enough")
    monkeypatch.setenv("REVTOPS_DATABASE_URL", db.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REVTOPS_ORG", ORG)
    header = deal_timeline(db, ORG, deal_id(company, planted(company))).deal
    db.dispose()  # the command opens the DuckDB file itself

    assert main(["deals", "timeline", str(header.name)]) == 0
    out = capsys.readouterr().out
    assert header.id in out and "created" in out and "close_date" in out

    output = tmp_path / "brief.pdf"
    assert main(["deals", "brief", header.id, "-o", str(output)]) == 0
    assert output.read_bytes().startswith(b"%PDF")

    # A fragment naming several deals lists them and exits 2; one naming none exits 2.
    several = find_deals(db, ORG, "-")
    assert len(several) > 1
    assert main(["deals", "timeline", "-"]) == 2
    err = capsys.readouterr().err
    assert "matches several deals" in err and several[0].id in err
    assert main(["deals", "brief", "no deal is called this", "-o", str(output)]) == 2
    assert "no deal in timeline-sandbox matches" in capsys.readouterr().err


def test_the_verified_query_tells_the_same_story(synced: tuple[Database, Company]) -> None:
    db, company = synced
    timeline = deal_timeline(db, ORG, deal_id(company, planted(company)))
    header = timeline.deal
    assert header.name
    words = " ".join(header.name.replace("-", " ").split()[:3]).lower()  # "vertex media gmbh"
    for deal in (header.id, header.name.upper(), words):
        rows = run_verified(db, "deal_timeline", {"deal": deal}, org=ORG).frame
        if deal == words and set(rows["deal_id"].astype(str)) != {header.id}:
            continue  # the words name a larger open deal of the same account: that one first
        assert set(rows["deal_id"].astype(str)) == {header.id}
        assert list(rows["kind"]) == [e.kind for e in timeline.events]
        assert [str(t)[:19] for t in rows["at"]] == [
            e.at.strftime("%Y-%m-%d %H:%M:%S") for e in timeline.events
        ]
    assert run_verified(db, "deal_timeline", {"deal": "no such deal"}, org=ORG).frame.empty


def test_the_copilots_timeline_answer_carries_the_timeline_chart(
    synced: tuple[Database, Company],
) -> None:
    from revtops_kernel.agent.events import VerifiedAnswer
    from revtops_kernel.answering import Answerer
    from revtops_kernel.settings import load_settings

    db, company = synced
    header = deal_timeline(db, ORG, deal_id(company, planted(company))).deal
    answerer = Answerer(db, load_settings(), org=ORG)  # no key: the verified answer alone
    events = list(answerer.ask(f"show me the timeline of deal {header.id}"))
    answers = [e for e in events if isinstance(e, VerifiedAnswer)]
    assert [a.name for a in answers] == ["deal_timeline"]
    chart = answers[0].chart
    assert chart is not None  # the stage steps and event lanes, not a bar of labels
    names = {trace.get("name") for trace in chart["data"]}
    assert "Stage" in names
