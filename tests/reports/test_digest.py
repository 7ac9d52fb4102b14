"""The pipeline digest on a synced HubSpot sandbox: its figures against the store, its PDF
(text, pages, a look at page 1), and its post to the sandbox's Slack."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from digest_helpers import (
    ANCHOR,
    ORG,
    PERIOD_END,
    PERIOD_START,
    SCALE,
    SEED,
    sync_into,
    synced_store,
)
from pydantic import SecretStr
from sqlalchemy import text

from revtops_kernel.agent.verified import run_verified
from revtops_kernel.artifacts.data import plottable
from revtops_kernel.artifacts.specs import TableSpec
from revtops_kernel.artifacts.style import format_tick
from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import make_http_client
from revtops_kernel.connectors.slack_post import SlackPoster
from revtops_kernel.reports.digest import RISK_TOP, TABLE_ROWS, Digest, build_digest
from revtops_kernel.reports.narrative import Narrative, write_narrative
from revtops_kernel.reports.pdf import digest_html, digest_pdf
from revtops_kernel.reports.period import DigestPeriod, resolve_period
from revtops_kernel.reports.publish import pdf_filename, post_digest
from revtops_kernel.settings import load_settings
from revtops_kernel.store import Database
from revtops_kernel.store.schema import metadata
from revtops_sandbox import SandboxServer
from revtops_sandbox.anthropic import (
    ScriptedMessagesServer,
    Turn,
    scripted_settings_overrides,
)

pytestmark = pytest.mark.slow

OUTPUT = Path(__file__).parent / "output"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(scale=SCALE, seed=SEED) as server:
        yield server


@pytest.fixture(scope="module")
def store(sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = synced_store(sandbox, tmp_path_factory.mktemp("digest") / "store.duckdb")
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def period() -> DigestPeriod:
    return resolve_period(
        period_start=PERIOD_START, period_end=PERIOD_END, timezone="Europe/Paris", now=ANCHOR
    )


@pytest.fixture(scope="module")
def digest(store: Database, period: DigestPeriod) -> Digest:
    return build_digest(store, org=ORG, period=period, timezone="Europe/Paris")


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(text(sql), {"org": ORG, **params}).all())


OPEN = "organization_id = :org AND deleted_at IS NULL AND NOT COALESCE(is_closed, false)"


def test_the_figures_match_the_store(store: Database, digest: Digest) -> None:
    start, end, as_of = PERIOD_START, PERIOD_END, date(2026, 11, 1)
    h = digest.headline
    assert digest.period.as_of == as_of  # the sandbox's "today", inside the period

    [(open_deals, open_amount)] = rows(
        store, f"SELECT count(*), sum(amount) FROM deals WHERE {OPEN}"
    )
    assert (h.open_deals, h.open_amount) == (open_deals, float(open_amount))

    def created(first: date, last: date) -> tuple[int, float]:
        [(count, amount)] = rows(
            store,
            "SELECT count(*), COALESCE(sum(amount), 0) FROM deals WHERE organization_id = :org "
            "AND deleted_at IS NULL AND created_at >= :first AND created_at < :after",
            first=first, after=last + timedelta(days=1),
        )  # fmt: skip
        return count, float(amount)

    assert (h.created_deals, h.created_amount) == created(start, end)
    prev_start, prev_end = start - timedelta(days=28), start - timedelta(days=1)
    assert (h.previous_created_deals, h.previous_created_amount) == created(prev_start, prev_end)

    def closed(first: date, last: date) -> tuple[int, float, int]:
        [(won, won_amount, lost)] = rows(
            store,
            "SELECT count(*) FILTER (WHERE is_won), COALESCE(sum(amount) FILTER (WHERE is_won), 0),"
            " count(*) FILTER (WHERE NOT COALESCE(is_won, false)) FROM deals "
            "WHERE organization_id = :org AND deleted_at IS NULL AND is_closed "
            "AND close_date BETWEEN :first AND :last",
            first=first, last=last,
        )  # fmt: skip
        return won, float(won_amount), lost

    assert (h.won_deals, h.won_amount, h.lost_deals) == closed(start, end)
    assert (h.previous_won_deals, h.previous_won_amount, h.previous_lost_deals) == closed(
        prev_start, prev_end
    )
    closed_names = rows(
        store,
        "SELECT name FROM deals WHERE organization_id = :org AND deleted_at IS NULL AND is_closed "
        "AND close_date BETWEEN :first AND :last",
        first=start, last=end,
    )  # fmt: skip
    assert sorted(digest.frames["closed_deals"]["deal"]) == sorted(n for (n,) in closed_names)

    [(moved,)] = rows(
        store,
        "SELECT count(DISTINCT h.deal_id) FROM deal_stage_history h JOIN deals d ON d.id = "
        "h.deal_id AND d.deleted_at IS NULL WHERE h.organization_id = :org AND h.deleted_at IS "
        "NULL AND h.entered_at >= :first AND h.entered_at < :after",
        first=start, after=end + timedelta(days=1),
    )  # fmt: skip
    # A deal entering two stages in the period counts once per stage.
    assert h.stage_moves >= moved > 0

    closing = rows(
        store,
        f"SELECT name, amount FROM deals WHERE {OPEN} AND close_date BETWEEN :first AND :last",
        first=start, last=end,
    )  # fmt: skip
    assert sorted(digest.frames["deals_closing"]["deal"]) == sorted(n for n, _a in closing)
    assert h.closing_amount == float(sum(a or 0 for _n, a in closing))

    slipped = rows(store, f"SELECT name FROM deals WHERE {OPEN} AND close_date < :d", d=as_of)
    assert sorted(digest.frames["slipped_deals"]["deal"]) == sorted(n for (n,) in slipped)

    entered = rows(store, f"SELECT name, stage_entered_at FROM deals WHERE {OPEN}")
    stalled = [n for n, at in entered if at and (as_of - _day(at)).days >= digest.stalled_days]
    assert sorted(digest.frames["stalled_deals"]["deal"]) == sorted(stalled)

    touched = rows(
        store,
        "SELECT DISTINCT deal_id FROM activities WHERE organization_id = :org AND deleted_at IS "
        "NULL AND deal_id IS NOT NULL AND occurred_at >= :first AND occurred_at < :after",
        first=as_of - timedelta(days=digest.ghosted_days - 1), after=as_of + timedelta(days=1),
    )  # fmt: skip
    open_ids = rows(store, f"SELECT id FROM deals WHERE {OPEN}")
    ghosted = {i for (i,) in open_ids} - {i for (i,) in touched}
    assert h.ghosted_deals == len(ghosted)

    # Nothing above is vacuous: the window holds every kind of event.
    assert min(h.created_deals, h.won_deals + h.lost_deals, h.closing_deals) > 0
    assert min(h.slipped_deals, h.stalled_deals, h.ghosted_deals) > 0


def test_movement_risk_and_conversion_are_the_verified_queries(
    store: Database, digest: Digest
) -> None:
    as_of, quarter = date(2026, 11, 1), (date(2026, 10, 1), date(2026, 12, 31))

    def verified(name: str, **params: Any) -> Any:
        return run_verified(store, name, params, org=ORG, today=as_of).frame

    # Deals at risk: every flagged deal counts; the list is the riskiest RISK_TOP, in order.
    flags = verified("deal_risks", as_of=as_of)
    deals = flags.drop_duplicates("deal_id")
    h = digest.headline
    assert h.at_risk_deals == len(deals) > RISK_TOP
    assert h.at_risk_amount == float(sum(deals["amount"].fillna(0)))
    open_ids = {i for (i,) in rows(store, f"SELECT id FROM deals WHERE {OPEN}")}
    assert {str(i) for i in deals["deal_id"]} <= {str(i) for i in open_ids}
    [listed] = [p for p in digest.tables() if p.spec.title == "Deals at risk"]
    assert listed.frame is not None and listed.truncated
    assert list(listed.frame["deal"]) == list(deals["deal"].head(RISK_TOP))
    assert list(listed.frame["risk_score"]) == list(deals["risk_score"].head(RISK_TOP))
    for row in listed.frame.itertuples():
        mine = flags[flags["deal_id"] == row.deal_id]
        assert row.flags == ", ".join(mine["rule"])
        assert row.reasons.startswith("; ".join(mine["reason"].head(3)))
        if len(mine) > 3:
            assert row.reasons.endswith("; also " + ", ".join(mine["rule"].iloc[3:]))
    assert isinstance(listed.spec, TableSpec) and (listed.spec.description or "").startswith(
        f"{len(deals)} deals at risk (${round(h.at_risk_amount):,}) as of 01 Nov"
    )

    # Pipeline movement: the waterfall's total row over the quarter's pipeline; it reconciles.
    [total] = verified(
        "pipeline_waterfall", start_date=PERIOD_START, end_date=PERIOD_END, group_by="none",
        close_from=quarter[0], close_to=quarter[1],
    ).to_dict("records")  # fmt: skip
    m = digest.movement
    assert m is not None and (m.close_from, m.close_to) == quarter
    for name in ("opening", "created", "reopened", "pulled_in", "increased", "decreased",
                 "pushed_out", "won", "lost", "closing", "unexplained"):  # fmt: skip
        assert getattr(m, name) == float(total[name]), name
    assert m.reconciles and m.unexplained == 0
    walked = (
        m.opening + m.created + m.reopened + m.moved_in + m.pulled_in + m.increased
        - m.decreased - m.pushed_out - m.moved_out - m.won - m.lost
    )  # fmt: skip
    assert round(walked, 2) == round(m.closing, 2)
    assert min(m.created, m.won, m.lost, m.pushed_out) > 0  # the window exercises the steps
    # Nothing happens after the sandbox's today (1 Nov), so the closing pipeline is today's
    # open deals closing in the quarter.
    [(closing,)] = rows(
        store,
        f"SELECT COALESCE(sum(amount), 0) FROM deals WHERE {OPEN} AND close_date BETWEEN :a AND :b",
        a=quarter[0], b=quarter[1],
    )  # fmt: skip
    assert m.closing == float(closing)
    [table] = [p for p in digest.tables() if p.spec.title == "Pipeline movement in the period"]
    assert table.frame is not None
    steps = dict(zip(table.frame["movement"], table.frame["amount"], strict=True))
    assert steps["Opening"] == m.opening and steps["Closing"] == m.closing
    assert (steps["Won"], steps["Lost"], steps["Pushed out"]) == (-m.won, -m.lost, -m.pushed_out)
    assert round(sum(list(steps.values())[:-1]), 2) == round(m.closing, 2)

    # Stage conversion: the funnel of the deals created in the period.
    funnel = verified("stage_funnel", start_date=PERIOD_START, end_date=PERIOD_END)
    assert digest.frames["stage_funnel"].astype(str).to_numpy().tolist() == (
        plottable(funnel, for_chart=False).astype(str).to_numpy().tolist()
    )
    created = rows(
        store,
        "SELECT count(*) FROM deals WHERE organization_id = :org AND deleted_at IS NULL "
        "AND created_at >= :a AND created_at < :b",
        a=PERIOD_START, b=PERIOD_END + timedelta(days=1),
    )  # fmt: skip
    first_stages = digest.frames["stage_funnel"].groupby("pipeline")["reached"].max()
    assert int(first_stages.sum()) <= created[0][0]

    # The Slack message: one line for each.
    net = m.closing - m.opening
    assert digest.slack_text().splitlines()[-2:] == [
        f"{len(deals)} deals at risk ({format_tick(round(h.at_risk_amount), 'currency')})",
        f"Pipeline {'+' if net >= 0 else ''}{format_tick(round(net), 'currency')} net (created "
        f"{format_tick(round(m.created), 'currency')}, won {format_tick(round(m.won), 'currency')}"
        f", lost {format_tick(round(m.lost), 'currency')}, pushed "
        f"{format_tick(round(m.pushed_out), 'currency')}, pulled in "
        f"{format_tick(round(m.pulled_in), 'currency')})",
    ]


def test_digest_options_are_checked(store: Database, period: DigestPeriod) -> None:
    with pytest.raises(ValueError, match="risk_top must be a whole number from 1 to 100, got 0"):
        build_digest(store, org=ORG, period=period, risk_top=0)
    with pytest.raises(ValueError, match="movement_window must be one of quarter, all, got 'year'"):
        build_digest(store, org=ORG, period=period, movement_window="year")


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def test_long_lists_are_cut_in_the_report_but_counted_in_full(digest: Digest) -> None:
    for part in digest.tables():
        assert part.frame is not None and len(part.frame) <= TABLE_ROWS
    specs = {p.spec.title: p for p in digest.tables() if isinstance(p.spec, TableSpec)}
    ghosted = specs["Ghosted deals (no recent activity)"]
    full = len(digest.frames["deals_without_activity"])
    assert full > TABLE_ROWS and ghosted.truncated
    assert isinstance(ghosted.spec, TableSpec)
    assert f"Top {TABLE_ROWS} of {full}" in (ghosted.spec.description or "")
    figures = digest.figures()
    assert [(f.layout.title.text, f.data[0].type) for f in figures] == [
        ("Open pipeline by stage", "bar"),
        ("Pipeline movement in the period", "waterfall"),
        ("Stage moves in the period", "bar"),
    ]


def test_the_pdf_reads_right(digest: Digest, tmp_path: Path) -> None:
    pdf = digest_pdf(digest)
    assert pdf.startswith(b"%PDF")
    path = tmp_path / "digest.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    pages = int(
        next(line for line in info.stdout.splitlines() if line.startswith("Pages:")).split()[1]
    )
    assert 2 <= pages <= 10
    body = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Pipeline digest · 19 Oct 2026 – 15 Nov 2026" in body
    h = digest.headline
    assert f"{h.open_deals:,} deals, ${round(h.open_amount):,}" in body
    for heading in (
        "Open pipeline by stage", "Stage moves in the period", "Deals won and lost in the period",
        "Deals closing in the period", "Slipped deals", "Stalled deals", "Ghosted deals",
        "Pipeline movement in the period", "Deals at risk",
        "Stage conversion of the deals created in the period",
        "Reconciles: opening + movements = closing, to the cent.",
    ):  # fmt: skip
        assert heading in body
    assert "verified query deals_closing(start_date=2026-10-19, end_date=2026-11-15)" in body
    first_closing = str(digest.frames["deals_closing"]["deal"].iloc[0])
    assert first_closing.split(" - ")[0] in body
    assert f"Page 1 of {pages}" in body
    # Each list's title, rows and query share a page: no caption alone atop the next one.
    sheets = body.split("\f")
    for title, caption in (
        ("Deals won and lost in the period", "ORDER BY outcome DESC"),
        ("Deals closing in the period", "verified query deals_closing("),
        ("Slipped deals", "verified query slipped_deals("),
        ("Stalled deals", "verified query stalled_deals("),
        ("Ghosted deals", "verified query deals_without_activity("),
        ("Deals at risk", "verified query deal_risks("),
        ("Pipeline movement in the period", "What left the pipeline is negative."),
        ("Stage conversion", "verified query stage_funnel("),
    ):
        [page] = [n for n, sheet in enumerate(sheets) if caption in sheet]
        assert title in sheets[page], (title, page + 1)
    # Kept for a look: tests/reports/output/digest-1.png (page 1 at 60 dpi).
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(path, OUTPUT / "digest.pdf")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(OUTPUT / "digest")],
        check=True,
    )
    assert any(OUTPUT.glob("digest-*1.png"))


def test_synced_names_stay_text_in_slack_and_the_pdf(store: Database, period: DigestPeriod) -> None:
    [(deal_id, name)] = rows(
        store,
        f"SELECT id, name FROM deals WHERE {OPEN} AND close_date BETWEEN :first AND :last "
        "ORDER BY close_date, amount DESC NULLS LAST, name LIMIT 1",
        first=PERIOD_START, last=PERIOD_END,
    )  # fmt: skip
    hostile = "<!channel> <b>Evil</b> & Co"
    with store.begin() as conn:
        conn.execute(text("UPDATE deals SET name = :n WHERE id = :i"), {"n": hostile, "i": deal_id})
    try:
        digest = build_digest(store, org=ORG, period=period, timezone="Europe/Paris")
        message = digest.slack_text()
        assert "&lt;!channel&gt; &lt;b&gt;Evil&lt;/b&gt; &amp; Co" in message
        assert "<!channel>" not in message
        html = digest_html(digest)
        assert "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in html and "<b>Evil</b>" not in html
    finally:
        with store.begin() as conn:
            conn.execute(
                text("UPDATE deals SET name = :n WHERE id = :i"), {"n": name, "i": deal_id}
            )


def test_the_digest_lands_in_slack(digest: Digest, sandbox: SandboxServer) -> None:
    pdf = digest_pdf(digest)
    with make_http_client() as http:
        poster = SlackPoster.connect(
            sandbox.slack_base_url, StaticToken("slack", SecretStr(sandbox.token)), http
        )
        posted = post_digest(poster, digest, pdf, "#sales")
    message, upload = sandbox.slack_posts()[-2:]
    assert (message.method, message.channel_id, message.ts) == (
        "chat.postMessage",
        posted.message.channel_id,
        posted.message.ts,
    )
    assert message.text == digest.slack_text()
    assert "Pipeline digest · 19 Oct 2026 – 15 Nov 2026" in message.text
    assert upload.method == "files.completeUploadExternal"
    assert (upload.channel_id, upload.thread_ts) == (message.channel_id, message.ts)
    assert upload.text.startswith("The full digest (PDF)")
    [shared] = upload.files
    assert shared["id"] == posted.file.file_id and shared["name"] == pdf_filename(digest)
    assert shared["mimetype"] == "application/pdf" and shared["data"] == pdf


def test_the_summary_is_written_by_the_assistant_only_with_a_key(
    store: Database, digest: Digest
) -> None:
    database_url = store.url.render_as_string(hide_password=False)
    without_key = load_settings(REVTOPS_DATABASE_URL=database_url, REVTOPS_ORG=ORG)
    skipped = write_narrative(store, without_key, digest)
    assert skipped == Narrative(None, "no ANTHROPIC_API_KEY configured: the digest has no summary")

    summary = "Open pipeline is $1.7M. <script>alert(1)</script> Chase the 10 slipped deals first."
    with ScriptedMessagesServer() as api:
        api.script(Turn.reply(summary))
        settings = load_settings(
            REVTOPS_DATABASE_URL=database_url,
            REVTOPS_ORG=ORG,
            **scripted_settings_overrides(api),
        )
        narrative = write_narrative(store, settings, digest)
        [request] = api.requests
    assert narrative == Narrative(summary)
    sent = json.dumps(request.body["messages"])
    assert "Using only the figures below" in sent
    assert json.dumps(digest.slack_text())[1:-1] in sent  # the figures, as the model saw them

    told = digest.with_narrative(narrative.text)
    assert told.slack_text().endswith(
        "Open pipeline is $1.7M. &lt;script&gt;alert(1)&lt;/script&gt; Chase the 10 slipped "
        "deals first."
    )
    html = digest_html(told)
    assert "Summary</strong> (written by the assistant)" in html
    assert "Chase the 10 slipped deals first." in html and "<script>" not in html


@pytest.mark.postgres
def test_postgresql_gives_the_same_digest(
    postgres_db: Database, sandbox: SandboxServer, digest: Digest, period: DigestPeriod
) -> None:
    with postgres_db.begin() as conn:
        tables = ", ".join(t.name for t in metadata.sorted_tables)  # cursors too: a full sync
        conn.execute(text(f"TRUNCATE {tables}"))
    sync_into(postgres_db, sandbox)
    try:
        on_postgres = build_digest(postgres_db, org=ORG, period=period, timezone="Europe/Paris")
        assert on_postgres.headline == digest.headline
        assert on_postgres.movement == digest.movement
        for name, frame in digest.frames.items():
            same = on_postgres.frames[name].astype(str).to_numpy().tolist()
            assert same == frame.astype(str).to_numpy().tolist(), name
    finally:
        with postgres_db.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables}"))
