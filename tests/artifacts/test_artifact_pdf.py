"""PDFs of a conversation and of a dashboard: text, pages, repeated headers, vector charts, and
nothing from data or the model that runs or fetches."""

from __future__ import annotations

import http.server
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from artifact_samples import (
    QUESTION_1,
    QUESTION_2,
    load_sales,
    many_deals,
    sample_conversation,
)
from helpers import duckdb_copy
from test_artifact_markdown import assert_inert

from revtops_kernel.artifacts import create_artifact
from revtops_kernel.artifacts.pdf import (
    artifact_to_pdf,
    conversation_html,
    conversation_to_pdf,
    html_to_pdf,
)
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.upsert import upsert

OUTPUT = Path(__file__).parent / "output"
pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")


@pytest.fixture
def store(tmp_path: Path, duckdb_template: Path) -> Iterator[Database]:
    """DuckDB only: the layout does not depend on the backend (round trips test both)."""
    database = Database(duckdb_copy(duckdb_template, tmp_path / "store.duckdb"), lock_timeout=10)
    upgrade(database)
    load_sales(database)
    with database.begin() as conn:
        upsert(conn, "deals", many_deals(120))
    yield database
    database.dispose()


@pytest.fixture
def sink() -> Iterator[list[str]]:
    """A loopback HTTP server that records every request: a rendered PDF must make none."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    requests.append(f"port:{server.server_address[1]}")
    yield requests
    server.shutdown()


def pdf_text(path: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    command = ["pdftotext", "-layout", *pages, str(path), "-"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def page_count(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True)
    return int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))  # type: ignore[union-attr]


@pytest.mark.slow
def test_a_conversation_pdf_has_the_questions_answers_sql_and_artifacts(
    store: Database, sink: list[str], tmp_path: Path
) -> None:
    port = int(sink.pop(0).split(":")[1])
    conversation_id, _ = sample_conversation(store, port=port)
    pdf = conversation_to_pdf(
        store, conversation_id, org="acme", author="Ana Lopez", timezone="Europe/Paris"
    )
    path = tmp_path / "conversation.pdf"
    path.write_bytes(pdf)
    text = " ".join(pdf_text(path).split())

    assert "Q1 pipeline review" in text and "Acme Corp" in text and "Ana Lopez" in text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T \(Europe/Paris\)", text)
    assert QUESTION_1 in text  # the <script> of the question printed as text
    assert QUESTION_2 in text
    assert "SELECT nope FROM deals" in text and "column nope does not exist" in text
    assert (
        "Verified query forecast_by_category (start_date=2026-01-01, end_date=2026-03-31)" in text
    )
    assert "Q1 pipeline by stage" in text and "Every open deal" in text
    assert "Pipeline is concentrated in Discovery." in text
    assert "<script>alert('answer')</script>" in text  # raw HTML stays visible, inert text
    assert "[image: tracker]" in text
    for stage in ("Closed Won", "Negotiation", "Proposal", "Discovery", "$80k"):
        assert stage in text  # chart labels are text in the vector chart
    assert "Globex" not in text  # the other organization's rows never show
    assert "Bulk deal 000" in text and "144 rows" in text

    pages = page_count(path)
    assert 4 <= pages <= 6  # chart page + 144 table rows at ~45 a page
    assert f"Page {pages} of {pages}" in text
    for number in range(2, pages + 1):  # the table's header repeats on every page it spans
        page = pdf_text(path, number)
        if "Bulk deal" in page:
            assert re.search(r"Deal\s+Stage\s+Amount\s+Close date", page), number
        assert "Acme Corp" in page and f"Page {number} of {pages}" in page

    assert sink == []  # neither the raw <img> nor the markdown image was fetched
    assert b"/JavaScript" not in pdf and b"/JS " not in pdf
    images = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True)
    assert len(images.stdout.strip().splitlines()) == 2  # header lines only: charts are vectors

    OUTPUT.mkdir(exist_ok=True)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "2", str(path), str(OUTPUT / "conv")],
        check=True,
    )
    assert (OUTPUT / "conv-1.png").stat().st_size > 10_000


def test_the_conversation_html_is_inert(store: Database) -> None:
    conversation_id, _ = sample_conversation(store)
    html = conversation_html(
        store, conversation_id, org="acme", author="<b>Ana</b>", timezone="UTC"
    )
    body = html.split("<body>", 1)[1]
    assert "&lt;b&gt;Ana&lt;/b&gt;" in body
    # Every element in the page is one the templates or the sanitizer made.
    assert_inert(
        re.sub(
            r"<(/?)(html|head|meta|title|style|body|div|span|section|header|article|"
            r"figure|figcaption|img)\b[^>]*>",
            "",
            body,
        )
    )
    sources = re.findall(r'<img[^>]*src="([^"]*)"', html)
    assert sources and all(src.startswith("data:image/svg+xml;base64,") for src in sources)


def test_the_pdf_renderer_fetches_nothing_but_data_uris(sink: list[str]) -> None:
    port = sink.pop(0).split(":")[1]
    html = (
        f'<html><head><link rel="stylesheet" href="http://127.0.0.1:{port}/a.css"></head><body>'
        f'<img src="http://127.0.0.1:{port}/b.png"><p style="background: '
        f'url(http://127.0.0.1:{port}/c.png)">x</p><img src="file:///etc/passwd"></body></html>'
    )
    assert html_to_pdf(html).startswith(b"%PDF")
    assert sink == []


@pytest.mark.slow
def test_a_dashboard_pdf_draws_every_chart_type_as_vectors(store: Database, tmp_path: Path) -> None:
    sql = "SELECT stage_name, count(*) AS n, sum(amount) AS total FROM deals GROUP BY 1 ORDER BY 1"
    types = ["bar", "stacked_bar", "line", "area", "scatter", "pie", "funnel"]
    items = [
        {
            "kind": "chart",
            "title": f"Chart {kind}",
            "sql": sql,
            "type": kind,
            "x": "stage_name",
            "y": ["n"],
        }
        for kind in types
    ]
    items.append(
        {
            "kind": "chart",
            "title": "Chart histogram",
            "sql": "SELECT amount FROM deals",
            "type": "histogram",
            "x": "amount",
        }
    )
    items.append({"kind": "table", "title": "Stage table", "sql": sql})
    spec = {"kind": "dashboard", "title": "Every chart", "items": items, "grid_columns": 2}
    event = create_artifact(store, org="acme", spec=spec)
    path = tmp_path / "dashboard.pdf"
    path.write_bytes(
        artifact_to_pdf(
            store, event.artifact_id, org="acme", author="Ana", timezone="America/New_York"
        )
    )
    text = " ".join(pdf_text(path).split())
    for kind in [*types, "histogram"]:
        assert f"Chart {kind}" in text
    assert "Stage table" in text and "America/New_York" in text
    assert 1 <= page_count(path) <= 4
    images = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True)
    assert len(images.stdout.strip().splitlines()) == 2


def test_an_unknown_time_zone_is_refused(store: Database) -> None:
    conversation_id, _ = sample_conversation(store)
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        conversation_html(store, conversation_id, org="acme", author="A", timezone="Mars/Olympus")
