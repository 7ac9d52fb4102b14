"""The web app's "At risk" tab in headless Chromium, as a sales manager uses it: the deals the
risk rules flag (the sandbox plants pushed close dates and cut amounts), filtered to one owner,
one deal's timeline opened, its brief PDF downloaded in one click.

The app has its own sandbox, anchored on today so the rules measure the planted patterns where
they were planted, its own database and organization. The sandbox is synced from this process
while the app starts. Screenshots and the brief's pages (pdftoppm) land in the test's tmp dir.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from time import monotonic
from typing import Any

import pytest

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.ids import record_id
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.scratch import scratch_postgres
from revtops_kernel.sync import run_sync
from revtops_kernel.tenancy import create_organization
from revtops_kernel.ui.risk_view import RiskDeal, group_risk_rows, today_in
from revtops_sandbox import SandboxServer
from revtops_sandbox.company import LIVE, PIPELINES, Company, Deal
from revtops_sandbox.deal_history import drop_since_stage, pushes

from .app_server import CHROMIUM, RunningApp, running_app
from .pages import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TZ = "Europe/Paris"


@dataclass
class RiskWorld:
    app: RunningApp
    org: str
    company: Company
    expected: list[RiskDeal]  # what deal_risks says on the user's today: the view shows this

    def planted(self, planted: Callable[[Deal], bool]) -> set[str]:
        """Ids of the open deals the sandbox planted a pattern in."""
        co = self.company
        return {
            str(record_id(self.org, "hubspot", "deals", str(co.hs_id("deals", d))))
            for d in co.deals
            if d.state == LIVE
            and not PIPELINES[d.pipeline].stages[d.stage].is_closed
            and planted(d)
        }

    def flagged(self, rule: str) -> set[str]:
        return {d.deal_id for d in self.expected if any(f.rule == rule for f in d.flags)}


def sync_and_measure(db: Database, settings: Any, org: str) -> list[RiskDeal]:
    """Sync the sandbox's HubSpot, then run ``deal_risks`` as the view will."""
    result = run_sync(db, settings, "hubspot", org=org)
    assert result.ok, result.error
    rows = run_verified(db, "deal_risks", {"as_of": today_in(TZ)}, org=org, max_rows=50_000)
    frame = rows.frame.astype(object).where(rows.frame.notna(), None)
    return group_risk_rows(frame.to_dict("records"))


@pytest.fixture(scope="module")
def risk_world(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[RiskWorld]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    anchor = datetime.combine(today_in(TZ), time(), UTC)
    with (
        SandboxServer(scale=0.02, seed=11, anchor=anchor) as sandbox,
        scratch_postgres(admin_url, prefix="revtops_test_atrisk") as database_url,
    ):
        db = Database(database_url)
        upgrade(db)
        org = create_organization(db, name="Umbrella", domain="umbrella.com")["id"]
        settings = load_settings(
            REVTOPS_DATABASE_URL=database_url,
            REVTOPS_ORG=org,
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        )
        results: list[list[RiskDeal]] = []
        sync = threading.Thread(target=lambda: results.append(sync_and_measure(db, settings, org)))
        sync.start()  # while the app starts
        try:
            with running_app(
                tmp_path_factory.mktemp("atrisk"),
                REVTOPS_DATABASE_URL=database_url,
                REVTOPS_TIMEZONE=TZ,
            ) as app:
                sync.join()
                assert results, "the sync failed (see the thread's exception above)"
                yield RiskWorld(app, org, sandbox.company, results[0])
        finally:
            sync.join()
            db.dispose()


def shot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def tall(page: Any, take: Any) -> None:
    """``take`` a screenshot in a viewport tall enough for the whole view (the app scrolls
    inside its own panel, so a full-page shot would stop at the window)."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 3000})
    try:
        take()
    finally:
        page.set_viewport_size(size)


def rows_settle(page: Any, wanted: list[str], seconds: float = 30.0) -> list[str]:
    """The rows shown once they are the first of ``wanted``, or after ``seconds`` (then the
    caller's assertion says what was shown)."""
    deadline = monotonic() + seconds
    while (shown := row_ids(page)) != wanted[: len(shown)] and monotonic() < deadline:
        page.wait_for_timeout(200)
    return shown


def row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        ".rt-risk-table tbody tr", "rows => rows.map(r => r.dataset.dealId)"
    )


def test_at_risk_filter_by_owner_open_a_timeline_download_its_brief(
    risk_world: RiskWorld, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=120_000)
    world = risk_world
    expected = world.expected
    planted = world.planted(lambda d: pushes(d) >= 2)
    assert expected and planted, "the sandbox plants deals at risk"
    # What the view will show is the planted truth: pushed twice or more, cut 20% or more.
    assert world.flagged("close_date_pushed") == planted
    assert world.flagged("amount_dropped") == world.planted(lambda d: drop_since_stage(d) >= 0.2)

    page = sign_in(browser, world.app, "rita@umbrella.com", "Rita Risk", timezone_id=TZ)
    try:
        page.locator(".lm-TabBar-tab:has-text('At risk')").click()
        table = page.locator(".rt-risk-table")
        expect(table).to_be_visible()
        count = page.locator(".rt-risk-count")
        expect(count).to_contain_text(f"{len(expected)} deals at risk")
        page_size = len(row_ids(page))
        assert row_ids(page) == [d.deal_id for d in expected[:page_size]]  # riskiest first
        assert table.locator(".rt-chip").first.is_visible()
        shot(page, tmp_path, "01-at-risk")
        tall(page, lambda: page.locator(".rt-risk").screenshot(
            path=str(tmp_path / "01-at-risk-all.png")))  # fmt: skip

        # Filter by the owner with the most planted pushes: only their deals remain.
        owners: dict[str, list[RiskDeal]] = {}
        for deal in expected:
            owners.setdefault(deal.owner or "", []).append(deal)
        owner = max(owners, key=lambda o: sum(d.deal_id in planted for d in owners[o]))
        mine = owners[owner]
        page.locator(".rt-filter-owner select").select_option(label=f"{owner} ({len(mine)})")
        expect(count).to_contain_text(f"{len(mine)} deal{'s' if len(mine) != 1 else ''} at risk")
        # The count and the rows are two nodes the view redraws: under load the count was
        # seen before the rows changed (the unfiltered first page read as the owner's).
        shown = rows_settle(page, [d.deal_id for d in mine])
        assert shown == [d.deal_id for d in mine[: len(shown)]]
        cells = page.eval_on_selector_all(
            ".rt-risk-table td.rt-owner", "cells => cells.map(c => c.innerText)"
        )
        assert set(cells) == {owner}
        shot(page, tmp_path, "02-one-owner")

        # Open one planted deal's timeline: its events, the pushes among them.
        target = next(d for d in mine if d.deal_id in planted and d.deal_id in shown)
        picker = page.locator(".rt-risk-picker select")
        picker.select_option(label=f"{target.deal} · {owner} · score {target.score}")
        card = page.locator(f".rt-deal-card[data-deal-id='{target.deal_id}']")
        expect(card).to_be_visible()
        expect(card).to_contain_text("Close date pushed")
        events = page.locator(".rt-timeline tr.rt-event")
        expect(events.first).to_be_visible()
        assert page.locator(".rt-timeline tr[data-kind='close_date']").count() >= 2
        expect(page.locator(".rt-deal-view .rt-chart .main-svg").first).to_be_attached()
        tall(page, lambda: page.locator(".rt-deal-view").screenshot(
            path=str(tmp_path / "03-timeline.png")))  # fmt: skip

        # The brief: one click on the link that is there when the deal shows.
        with page.expect_download() as download:
            card.locator("a.rt-download").click()
        pdf = tmp_path / "brief.pdf"
        download.value.save_as(pdf)
        assert pdf.read_bytes().startswith(b"%PDF")
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert target.deal in " ".join(text.split())
        subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(tmp_path / "brief")],
                       check=True)  # fmt: skip
        assert sorted(p.name for p in tmp_path.glob("brief*.png")) == ["brief-1.png"]
    finally:
        page.context.close()
