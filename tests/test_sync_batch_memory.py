"""A sync's batch holds its rows' JSON payloads as text, not as the decoded records."""

from __future__ import annotations

from revtops_kernel.connectors.base import Page
from revtops_kernel.normalize.base import NormalizedPage
from revtops_kernel.store.upsert import _dump_json
from revtops_kernel.sync import _Pending


def _page() -> tuple[Page, NormalizedPage]:
    record = {"id": "e1", "summary": "Kickoff", "attendees": [{"email": "a@x.example"}], "z": 1}
    row = {"source_id": "e1", "subject": "Kickoff", "raw": record}
    return Page([record], "cursor"), NormalizedPage(rows={"activities": [row]})


def test_a_batch_keeps_raw_payloads_as_the_text_the_upsert_writes() -> None:
    page, normalized = _page()
    record = page.records[0]
    pending = _Pending("events")
    pending.add(page, normalized, "id")
    raw = pending.rows["activities"][0]["raw"]
    assert isinstance(raw, str) and raw == _dump_json(record)  # byte for byte, keys sorted
    assert pending.rows["activities"][0]["subject"] == "Kickoff"


def test_the_stage_streams_rows_keep_their_payloads() -> None:
    # Their rows are read again as rows (the stage map reads raw's ApiName on Salesforce).
    page, normalized = _page()
    pending = _Pending("stages")
    pending.add(page, normalized, "id", keep_json=True)
    assert isinstance(pending.rows["activities"][0]["raw"], dict)
