"""The "At risk" view: its pure parts (grouping the rule rows, filters, money, reasons, the
table) and the widget on a small hand-built store (DuckDB), measured on a fixed day."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from revtops_kernel.store import Database, upgrade
from revtops_kernel.ui.risk_view import (
    ALL,
    NO_OWNER,
    RiskDeal,
    RiskFlag,
    RiskView,
    count_text,
    deal_card_html,
    empty_html,
    filter_deals,
    filter_options,
    format_money,
    group_risk_rows,
    reason_line,
    risk_table_html,
    today_in,
)
from tests.intelligence.risk_dataset import AS_OF, Builder

ORG = "v-risk-view"


def row(deal: str, rule: str, score: int, weight: int, **extra: Any) -> dict[str, Any]:
    return {
        "deal_id": f"id-{deal}",
        "deal": deal,
        "account": f"{deal} Inc",
        "pipeline": "New Business",
        "stage": "Discovery",
        "owner": "Ann Rep",
        "amount": Decimal("14800.00"),
        "close_date": date(2026, 10, 20),
        "risk_score": score,
        "rule": rule,
        "reason": f"{rule} reason",
        "weight": weight,
        "since": date(2026, 10, 1),
        **extra,
    }


def test_rows_fold_into_one_deal_each_riskiest_first_flags_heaviest_first() -> None:
    deals = group_risk_rows(
        [
            row("b", "past_due", 30, 10),
            row("b", "ghosted", 30, 20),
            row("a", "stalled", 45, 20),
            row("a", "close_date_pushed", 45, 15),
            row("a", "single_threaded", 45, 10, owner=None, amount=None),
        ]
    )
    assert [d.deal for d in deals] == ["a", "b"]
    assert [f.rule for f in deals[0].flags] == ["stalled", "close_date_pushed", "single_threaded"]
    assert [f.rule for f in deals[1].flags] == ["ghosted", "past_due"]
    assert deals[0].score == 45 and deals[0].owner == "Ann Rep"  # the deal's first row
    assert deals[1].flags[0].since == date(2026, 10, 1)
    assert deals[1].flags[0].label == "Ghosted"


def deal(name: str, owner: str | None, pipeline: str | None, score: int = 20) -> RiskDeal:
    return RiskDeal(
        deal_id=name, deal=name, account=None, pipeline=pipeline, stage=None, owner=owner,
        amount=None, close_date=None, score=score, flags=(RiskFlag("stalled", "x", 20),),
    )  # fmt: skip


def test_filters_by_owner_and_pipeline_with_all_and_unowned() -> None:
    deals = [
        deal("a", "Ann", "New Business"),
        deal("b", "Bob", "Renewals"),
        deal("c", None, "Renewals"),
        deal("d", "Ann", "Renewals"),
    ]
    names = lambda found: [d.deal for d in found]  # noqa: E731
    assert names(filter_deals(deals)) == ["a", "b", "c", "d"]
    assert names(filter_deals(deals, owner="Ann")) == ["a", "d"]
    assert names(filter_deals(deals, owner="Ann", pipeline="Renewals")) == ["d"]
    assert names(filter_deals(deals, owner=NO_OWNER)) == ["c"]
    assert names(filter_deals(deals, owner=ALL, pipeline=ALL)) == ["a", "b", "c", "d"]
    assert filter_deals(deals, owner="Zed") == []
    assert filter_options(deals, "owner", NO_OWNER) == [
        ("All (4)", ALL),
        ("(no owner) (1)", NO_OWNER),
        ("Ann (2)", "Ann"),
        ("Bob (1)", "Bob"),
    ]
    assert filter_options(deals, "pipeline", "-")[1:] == [
        ("New Business (1)", "New Business"),
        ("Renewals (3)", "Renewals"),
    ]


def test_money_and_reasons_read_as_a_person_writes_them() -> None:
    assert format_money(Decimal("14800.00")) == "$14,800"
    assert format_money(Decimal("1234.5"), "USD") == "$1,234.50"
    assert format_money(Decimal("-2000"), "EUR") == "-€2,000"
    assert format_money(Decimal("9000"), "CHF") == "9,000 CHF"
    assert format_money(None) == "—"
    cut = RiskFlag(
        "amount_dropped", "amount cut 39% since entering Discovery on 2026-02-07: "
        "24300.00 to 14800.00", 15,
    )  # fmt: skip
    assert reason_line(cut) == (
        "Amount dropped: amount cut 39% since entering Discovery on 2026-02-07: $24,300 to $14,800"
    )
    ghosted = RiskFlag("ghosted", "3 emails out since 2026-10-18, no reply ever", 20)
    assert reason_line(ghosted) == "Ghosted: 3 emails out since 2026-10-18, no reply ever"
    assert reason_line(RiskFlag("new_rule", "why", 5)) == "New rule: why"


def test_the_table_escapes_what_the_crm_wrote_and_shows_every_reason() -> None:
    hostile = RiskDeal(
        deal_id="x", deal="<img src=x onerror=alert(1)>", account="<b>Acme</b>",
        pipeline="New Business", stage="Discovery", owner="Ann", amount=Decimal("5000"),
        close_date=date(2026, 10, 30), score=55,
        flags=(RiskFlag("ghosted", "2 emails out <script>", 20),
               RiskFlag("past_due", "close date passed", 10)),
    )  # fmt: skip
    table = risk_table_html([hostile], today=date(2026, 11, 1))
    assert "<img" not in table and "<script>" not in table and "<b>Acme" not in table
    assert "&lt;img src=x onerror=alert(1)&gt;" in table
    assert table.count("rt-chip ") == 2 and "Past due" in table
    assert "$5,000" in table and "2 days ago" in table and "rt-score-high" in table
    card = deal_card_html(hostile, today=date(2026, 11, 1), brief_href="/b?x=1&y=<2>")
    assert 'href="/b?x=1&amp;y=&lt;2&gt;"' in card and "download=" in card
    assert "Download brief (PDF)" in card and "<img" not in card


def test_empty_states_and_counts_say_what_is_shown() -> None:
    day = date(2026, 11, 1)
    assert "No deal is at risk as of 2026-11-01" in empty_html(
        any_at_risk=False, owner=None, pipeline=None, today=day
    )
    assert "No deal at risk for owner <Bob> and pipeline Renewals" not in empty_html(
        any_at_risk=True, owner="<Bob>", pipeline="Renewals", today=day
    )  # escaped
    assert "owner &lt;Bob&gt; and pipeline Renewals" in empty_html(
        any_at_risk=True, owner="<Bob>", pipeline="Renewals", today=day
    )
    assert count_text(1, 1, page=0, pages=1, first=0) == "1 deal at risk"
    assert count_text(2, 2, page=0, pages=1, first=0, today=day) == "2 deals at risk on 2026-11-01"
    assert count_text(25, 60, page=1, pages=3, first=25) == (
        "60 deals at risk · showing 26–50 (page 2 of 3)"
    )


def test_today_is_the_users_day() -> None:
    late = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    assert today_in("Europe/Paris", now=late) == date(2026, 12, 7)
    assert today_in("America/New_York", now=late) == date(2026, 12, 6)
    assert today_in("Not/AZone", now=late) == date(2026, 12, 6)  # falls back to UTC


# -- the widget on a store ------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, dict[str, Any]]]:
    """Three deals at risk (two owners, two pipelines), one healthy, one in another org."""
    db = Database(f"duckdb:///{tmp_path_factory.mktemp('risk_view') / 'store.duckdb'}")
    upgrade(db)
    b = Builder(org=ORG)
    bob = b.add("owners", email="bob@seller.example", full_name="Bob Rep")
    renewals = b.add("pipelines", name="Renewals", display_order=1)
    for n, days in enumerate((10, 20, 30, 40, 50)):  # Negotiation's 75th percentile: 40 days
        b.won_deal(f"won{n}", days)
    ghosted = b.deal("Ghosted Co", healthy_reply=False, amount="81000")
    b.activity(ghosted, "email", 20, direction="inbound")
    b.activity(ghosted, "email", 10, direction="outbound")
    b.activity(ghosted, "email", 3, direction="outbound")
    stalled = b.deal("Stalled Co", stage="Negotiation", entered=41, amount="24000")
    pushed = b.deal("Pushed Co", amount="12000")
    b.history(pushed, "close_date", (80, date(2026, 10, 1)), (60, date(2026, 11, 15)),
              (40, date(2026, 12, 15)))  # fmt: skip
    b.deal("Healthy Co")
    for record in b.rows["deals"]:
        if record["id"] in (stalled, pushed):
            record["owner_id"], record["pipeline_id"] = bob, renewals
    b.write(db)
    other = Builder(org="v-risk-other")
    other.deal("Other Org Deal", stage="Negotiation", entered=400)
    other.write(db)
    yield db, {"ghosted": ghosted, "stalled": stalled, "pushed": pushed}
    db.dispose()


def view(db: Database, **options: Any) -> RiskView:
    return RiskView(db, org=ORG, author="Ann", as_of=AS_OF, timezone="Europe/Paris", **options)


def test_the_view_lists_the_deals_at_risk_and_filters_them(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    db, ids = store
    page = view(db)
    assert [d.deal for d in page.deals] == ["Ghosted Co", "Stalled Co", "Pushed Co"]
    assert "Healthy Co" not in page.table.value and "Other Org Deal" not in page.table.value
    assert page.count.value == "3 deals at risk on 2026-11-01"
    assert page.deals[0].currency == "USD" or page.deals[0].currency is None
    ghosted_line = "Ghosted</span>2 emails out since 2026-10-22, no reply since 2026-10-12"
    assert ghosted_line in re.sub(r'<span class="rt-day">([-\d]+)</span>', r"\1", page.table.value)
    assert '<span class="rt-day">2026-10-22</span>' in page.table.value  # no break in a date
    assert [v for _, v in page.owner.options] == [ALL, "Ann Rep", "Bob Rep"]

    page.owner.value = "Bob Rep"
    assert [d.deal for d in page.shown] == ["Stalled Co", "Pushed Co"]
    assert (
        "Ghosted Co" not in page.table.value and page.count.value == "2 deals at risk on 2026-11-01"
    )
    assert [v for _, v in page.picker.options] == [str(ids["stalled"]), str(ids["pushed"])]
    page.pipeline.value = "New Business"
    assert page.shown == [] and "No deal at risk for owner Bob Rep" in page.table.value
    assert page.picker.layout.display == "none"

    page.pipeline.value = ALL
    page.owner.value = ALL
    page.page_size = 2
    page.turn(0)
    assert page.count.value == "3 deals at risk on 2026-11-01 · showing 1–2 (page 1 of 2)"
    page.next_button.click()
    assert [label.split(" · ")[0] for label, _ in page.picker.options] == ["Pushed Co"]
    assert page.previous_button.disabled is False and page.next_button.disabled is True


def test_an_organization_with_nothing_at_risk_says_so(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    db, _ = store
    page = RiskView(db, org="v-risk-nobody", author="Ann", as_of=AS_OF)
    assert page.deals == [] and "No deal is at risk as of 2026-11-01" in page.table.value
    assert page.count.value == "0 deals at risk on 2026-11-01"


def test_a_store_that_cannot_answer_is_said_in_place_of_the_table(tmp_path: Path) -> None:
    page = RiskView(Database(f"duckdb:///{tmp_path / 'none.duckdb'}"), org=ORG, author="Ann")
    assert "Could not measure deal risk" in page.table.value
    assert "revtops db upgrade" in page.table.value and page.deals == []


def test_the_app_builds_the_at_risk_tab_second_and_only_when_opened(
    store: tuple[Database, dict[str, uuid.UUID]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from revtops_kernel.app_identity import identity_for
    from revtops_kernel.settings import load_settings
    from revtops_kernel.ui.webapp import WebApp

    db, ids = store
    identity = identity_for(
        organization_id=ORG, user_id=None, email="ann@seller.example", name="Ann", role="member"
    )
    monkeypatch.setenv("VOILA_BASE_URL", "/base/")
    app = WebApp(identity, db=db, settings=load_settings())
    assert app.tabs.get_title(1) == "At risk" and app.tabs.children[1].children == ()
    app.tabs.selected_index = 1
    (page,) = app.tabs.children[1].children
    assert isinstance(page, RiskView) and page.org == ORG
    assert "Ghosted Co" in page.table.value  # still at risk on the real today
    assert page.brief_url is not None
    ghosted = page.deal(str(ids["ghosted"]))
    assert ghosted is not None
    assert page.brief_url(ghosted, "Europe/Paris") == (
        f"/base/revtops/api/deals/{ids['ghosted']}/brief.pdf?timezone=Europe%2FParis"
    )


def test_opening_a_deal_shows_its_timeline_chart_people_and_a_one_click_brief(
    store: tuple[Database, dict[str, uuid.UUID]], tmp_path: Path
) -> None:
    db, ids = store
    page = view(db)
    page.picker.value = str(ids["pushed"])  # choosing it opens it
    card, chart, events, people = page.deal_view.children
    assert "Pushed Co" in card.value and "Close date pushed" in card.value
    assert "close date moved later 2 times" in card.value
    assert "days in stage" in card.value
    assert events.value.count('data-kind="close_date"') == 2  # the two pushes, in time order
    kinds = re.findall(r'data-kind="(\w+)"', events.value)
    assert kinds[0] == "created" and "times in Europe/Paris" in events.value
    assert "Customer" in people.value and "Ours" in people.value
    assert chart.figure["data"] and "rt-chart" in chart._dom_classes  # drawn by chart.js
    # No server here: the brief is made when the deal opens and is one data: link.
    (href,) = re.findall(r'<a class="rt-download" href="([^"]+)"', card.value)
    assert href.startswith("data:application/pdf;base64,")
    pdf = tmp_path / "brief.pdf"
    pdf.write_bytes(base64.b64decode(href.split(",", 1)[1]))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "Pushed Co" in text


def test_another_organizations_deal_does_not_open(
    store: tuple[Database, dict[str, uuid.UUID]],
) -> None:
    db, ids = store
    page = RiskView(db, org="v-risk-other", author="Ann", as_of=AS_OF)
    page.open_deal(str(ids["pushed"]))
    assert "not at risk" in page.deal_view.children[0].value


def test_the_list_reloads_when_a_sync_finished_since_it_was_read(
    store: tuple[Database, dict[str, uuid.UUID]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reopening the tab re-reads the list only when a sync (in any process) finished since."""
    from revtops_kernel.store.bookkeeping import record_sync
    from revtops_kernel.ui import risk_view

    db, _ = store
    page = view(db)
    reads: list[date] = []
    real = risk_view.load_risk_deals

    def counting(*args: Any, **kwargs: Any) -> list[RiskDeal]:
        reads.append(kwargs["as_of"])
        return real(*args, **kwargs)

    monkeypatch.setattr(risk_view, "load_risk_deals", counting)
    assert page.refresh_if_stale() is False and reads == []  # nothing moved
    with db.begin() as conn:
        record_sync(conn, ORG, "hubspot", succeeded_at=datetime(2026, 11, 2, 9, tzinfo=UTC),
                    error=None)  # fmt: skip
    assert page.refresh_if_stale() is True and reads == [AS_OF]
    assert page.synced_at == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert page.refresh_if_stale() is False and len(reads) == 1
    with db.begin() as conn:  # a failed sync changes nothing the list reads
        record_sync(conn, ORG, "slack", succeeded_at=None, error="boom")
    assert page.refresh_if_stale() is False and len(reads) == 1
