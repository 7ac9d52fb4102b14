"""Amount and close-date history: HubSpot's ``propertiesWithHistory`` versions become
deal_field_history rows; malformed history sends its deal (or Salesforce snapshot) to
quarantine with the reason, and the rest of the page still lands."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from revtops_kernel.ids import record_id
from revtops_kernel.normalize import hubspot, salesforce
from revtops_kernel.normalize.base import NormalizeContext, normalize_page

ORG = "org_test"


def version(value: Any, when: str, source: str = "CRM_UI") -> dict[str, Any]:
    return {"value": value, "timestamp": when, "sourceType": source, "updatedByUserId": 9586101}


# As HubSpot sends them: newest first; the amount was set again to its own value once (no
# change), the close date was empty at creation and cleared once.
DEAL: dict[str, Any] = {
    "id": "480202228957",
    "properties": {
        "dealname": "Test Deal",
        "amount": "40000.00",
        "closedate": "2026-04-30T00:00:00.000Z",
        "createdate": "2026-02-01T09:00:00.000Z",
        "hs_lastmodifieddate": "2026-03-05T12:00:00.000Z",
    },
    "propertiesWithHistory": {
        "amount": [
            version("40000.00", "2026-03-05T12:00:00.000Z"),
            version("50000", "2026-02-20T08:00:00.000Z"),
            version("50000.00", "2026-02-10T08:00:00.000Z"),
            version("50000.00", "2026-02-01T09:00:00.000Z", "DEALS"),
        ],
        "closedate": [
            version("2026-04-30T00:00:00.000Z", "2026-03-01T10:00:00.000Z"),
            version("", "2026-02-15T10:00:00.000Z"),
            version("1772323200000", "2026-02-02T10:00:00.000Z"),  # epoch ms: 2026-03-01
            version("", "2026-02-01T09:00:00.000Z", "DEALS"),
        ],
    },
    "createdAt": "2026-02-01T09:00:00.000Z",
    "updatedAt": "2026-03-05T12:00:00.000Z",
    "archived": False,
}


def ctx() -> NormalizeContext:
    return NormalizeContext(ORG, "hubspot")


def rows_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    return hubspot.normalize_deal(record, ctx())["deal_field_history"]


def test_hubspot_versions_become_one_row_per_value_oldest_first() -> None:
    rows = rows_of(DEAL)
    got = [(r["field"], r["changed_at"], r["amount"], r["close_date"]) for r in rows]
    t = lambda text: datetime.fromisoformat(text).replace(tzinfo=UTC)  # noqa: E731
    assert got == [
        ("amount", t("2026-02-01T09:00:00"), Decimal("50000.00"), None),
        ("amount", t("2026-03-05T12:00:00"), Decimal("40000.00"), None),
        # empty at creation: the history starts when first set; a later clearing is a row
        ("close_date", t("2026-02-02T10:00:00"), None, date(2026, 3, 1)),
        ("close_date", t("2026-02-15T10:00:00"), None, None),
        ("close_date", t("2026-03-01T10:00:00"), None, date(2026, 4, 30)),
    ]
    deal_id = record_id(ORG, "hubspot", "deals", "480202228957")
    assert {r["deal_id"] for r in rows} == {deal_id}
    assert rows[0]["source_id"] == "480202228957:amount:1769936400000"
    assert rows[0]["id"] == record_id(ORG, "hubspot", "deal_field_history", rows[0]["source_id"])
    assert all(r["created_at"] == r["updated_at"] == r["changed_at"] for r in rows)
    assert {r["deleted_at"] for r in rows} == {None}


def test_hubspot_history_follows_its_deal_into_the_archive() -> None:
    archived = {**DEAL, "archived": True, "archivedAt": "2026-03-09T00:00:00.000Z"}
    assert {r["deleted_at"] for r in rows_of(archived)} == {datetime(2026, 3, 9, tzinfo=UTC)}


def test_hubspot_deal_without_history_has_no_rows() -> None:
    bare = {k: v for k, v in DEAL.items() if k != "propertiesWithHistory"}
    assert rows_of(bare) == []


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    record = copy.deepcopy(DEAL)
    target: Any = record["propertiesWithHistory"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        (("amount",), {"value": "1"}, "propertiesWithHistory.amount is not a list"),
        (("amount", 1), "50000", "propertiesWithHistory.amount[1] is not an object"),
        (("amount", 1, "timestamp"), None, "propertiesWithHistory.amount[1] has no timestamp"),
        (("amount", 2, "value"), "12,5O0", "propertiesWithHistory.amount[2].value"),
        (("closedate", 0, "value"), "next week", "propertiesWithHistory.closedate[0].value"),
        (("closedate", 0, "timestamp"), "yesterday", "propertiesWithHistory.closedate[0].time"),
    ],
)
def test_malformed_hubspot_history_quarantines_its_deal(
    path: tuple[Any, ...], value: Any, reason: str
) -> None:
    good = {**copy.deepcopy(DEAL), "id": "480202228958"}
    page = normalize_page("deals", [_broken(path, value), good], hubspot.normalize_deal, ctx())
    (entry,) = page.quarantined
    assert entry.source_id == "480202228957" and reason in entry.reason
    assert [r["source_id"] for r in page.rows["deals"]] == ["480202228958"]
    assert {r["deal_id"] for r in page.rows["deal_field_history"]} == {
        record_id(ORG, "hubspot", "deals", "480202228958")
    }


# --- Salesforce: snapshots are checked where they are normalized --------------------------------

SNAPSHOT: dict[str, Any] = {
    "attributes": {"type": "OpportunityHistory"},
    "Id": "0085g00000ABCDEAAA",
    "IsDeleted": False,
    "OpportunityId": "0065g00000XYZ12AAA",
    "StageName": "Qualification",
    "Amount": 125000.0,
    "Probability": 20.0,
    "ForecastCategory": "Pipeline",
    "CloseDate": "2024-06-30",
    "CreatedDate": "2024-01-15T10:22:33.000+0000",
    "SystemModstamp": "2024-01-15T10:22:33.000+0000",
}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Amount", "12,5O0", "Amount is not a number"),
        ("CloseDate", "30/06/2024", "CloseDate"),
        ("CreatedDate", "yesterday", "CreatedDate"),
    ],
)
def test_malformed_salesforce_snapshot_is_quarantined(field: str, value: Any, reason: str) -> None:
    bad = {**SNAPSHOT, field: value}
    good = {**SNAPSHOT, "Id": "0085g00000ABCDFAAA"}
    page = normalize_page(
        "OpportunityHistory",
        [bad, good],
        salesforce.normalize_opportunity_history,
        NormalizeContext(ORG, "salesforce"),
        id_field="Id",
    )
    (entry,) = page.quarantined
    assert entry.source_id == "0085g00000ABCDEAAA" and reason in entry.reason
    (row,) = page.rows["deal_stage_history"]  # the snapshot the field history derives from
    assert (row["amount"], row["close_date"]) == (Decimal("125000.00"), date(2024, 6, 30))
