"""Salesforce normalizer: SOQL query records in, exact common rows out.

Literals follow the recorded shape of provider-apis.md (``attributes`` on every record,
datetimes ``...000+0000``, currency and percent as JSON numbers); the sandbox tests feed the
exact pages the sandbox serves and compare with its ground truth.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from helpers import row_ids
from sandbox_pages import salesforce_records

from revtops_kernel.normalize import salesforce
from revtops_kernel.normalize.base import (
    NormalizeContext,
    NormalizedPage,
    Row,
    Rows,
    normalize_page,
)
from revtops_kernel.store import Database
from revtops_kernel.store.schema import PENDING_COLUMN, metadata
from revtops_kernel.store.upsert import _dump_json as upsert_json_text
from revtops_kernel.store.upsert import upsert
from revtops_sandbox.server import SandboxServer

ORG = "org_test"
SOBJECTS = (
    "User", "Account", "Contact", "OpportunityStage", "Opportunity", "OpportunityHistory",
    "OpportunityContactRole", "Task", "Event",
)  # fmt: skip


rid = row_ids(ORG, "salesforce")


def attributes(sobject: str, sfid: str) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/v59.0/sobjects/{sobject}/{sfid}"}


def stage(
    sfid: str,
    label: str,
    order: int,
    percent: float,
    closed: bool,
    won: bool,
    forecast: str,
    api_name: str | None = None,
) -> dict[str, Any]:
    return {
        "attributes": attributes("OpportunityStage", sfid),
        "Id": sfid,
        "MasterLabel": label,
        "ApiName": api_name or label,
        "SortOrder": order,
        "DefaultProbability": percent,
        "IsActive": True,
        "IsClosed": closed,
        "IsWon": won,
        "ForecastCategoryName": forecast,
        "CreatedDate": "2023-05-01T00:00:00.000+0000",
        "LastModifiedDate": "2023-05-01T00:00:00.000+0000",
        "SystemModstamp": "2023-05-02T00:00:00.000+0000",
    }


STAGES = [
    stage("01J5g0000000005EAA", "Proposal/Price Quote", 6, 75.0, False, False, "Pipeline"),
    stage("01J5g0000000008EAA", "Closed Won", 9, 100.0, True, True, "Closed"),
    stage("01J5g0000000009EAA", "Closed Lost", 10, 0.0, True, False, "Omitted"),
    # A translated label: opportunities may hold either the label or the API name.
    stage(
        "01J5g0000000006EAA", "Négociation", 7, 90.0, False, False, "Commit", "Negotiation/Review"
    ),
]
# A query record, recorded (provider-apis.md).
OPPORTUNITY: dict[str, Any] = {
    "attributes": attributes("Opportunity", "006D000000IRFmaIAH"),
    "Id": "006D000000IRFmaIAH",
    "Name": "Acme renewal",
    "Amount": 125000.0,
    "StageName": "Proposal/Price Quote",
    "CloseDate": "2024-12-31",
    "IsClosed": False,
    "IsWon": False,
    "Probability": 75.0,
    "ForecastCategoryName": "Pipeline",
    "OwnerId": "005D0000001AbcdIAC",
    "AccountId": "001D000000IomazIAB",
    "LastModifiedDate": "2024-01-15T10:22:33.000+0000",
    "SystemModstamp": "2024-01-15T10:22:33.000+0000",
}
USER: dict[str, Any] = {
    "attributes": attributes("User", "005D0000001AbcdIAC"),
    "Id": "005D0000001AbcdIAC",
    "Name": "Dana Reyes",
    "FirstName": "Dana",
    "LastName": "Reyes",
    "Email": "Dana.Reyes@Northwind.io",
    "IsActive": False,
    "CreatedDate": "2022-03-01T09:00:00.000+0000",
    "LastModifiedDate": "2025-06-01T09:00:00.000+0000",
    "SystemModstamp": "2025-06-02T09:00:00.000+0000",
}
ACCOUNT: dict[str, Any] = {
    "attributes": attributes("Account", "001D000000IomazIAB"),
    "Id": "001D000000IomazIAB",
    "IsDeleted": False,
    "Name": "Acme Corp",
    "Website": "https://www.Acme.com/",
    "Industry": "Technology",
    "Type": "Customer - Direct",
    "NumberOfEmployees": 250,
    "AnnualRevenue": 46250000.0,
    "BillingCity": "Austin",
    "BillingCountry": "United States",
    "OwnerId": "005D0000001AbcdIAC",
    "CreatedDate": "2023-01-02T03:04:05.000+0000",
    "LastModifiedDate": "2024-02-01T00:00:00.000+0000",
    "SystemModstamp": "2024-02-01T00:00:00.000+0000",
}
CONTACT: dict[str, Any] = {
    "attributes": attributes("Contact", "003D000000QwErTIAZ"),
    "Id": "003D000000QwErTIAZ",
    "IsDeleted": False,
    "Name": "Lee Chen",
    "FirstName": "Lee",
    "LastName": "Chen",
    "Email": "Lee.Chen@ACME.com",
    "Title": "VP Sales",
    "Phone": "+1 555-0300-0001",
    "AccountId": "001D000000IomazIAB",
    "OwnerId": "005D0000001AbcdIAC",
    "CreatedDate": "2023-04-01T08:00:00.000+0000",
    "LastModifiedDate": "2024-01-15T12:00:00.000+0000",
    "SystemModstamp": "2024-01-15T12:00:00.000+0000",
}
CALL_TASK: dict[str, Any] = {
    "attributes": attributes("Task", "00T5g0000000000EAA"),
    "Id": "00T5g0000000000EAA",
    "IsDeleted": False,
    "Subject": "Call: Reference call",
    "Description": "Discussed the rollout.",
    "ActivityDate": "2024-01-15",
    "WhoId": "003D000000QwErTIAZ",
    "WhatId": "006D000000IRFmaIAH",
    "AccountId": "001D000000IomazIAB",
    "OwnerId": "005D0000001AbcdIAC",
    "Status": "Completed",
    "TaskSubtype": "Call",
    "CallType": "Inbound",
    "CallDurationInSeconds": 711,
    "CreatedDate": "2024-01-15T10:00:00.000+0000",
    "LastModifiedDate": "2024-01-15T10:30:00.000+0000",
    "SystemModstamp": "2024-01-15T10:30:00.000+0000",
}
EVENT: dict[str, Any] = {
    "attributes": attributes("Event", "00U5g0000000002EAA"),
    "Id": "00U5g0000000002EAA",
    "IsDeleted": False,
    "Subject": "Procurement sync - Acme Corp",
    "Description": None,
    "ActivityDate": "2024-01-20",
    "WhoId": "003D000000QwErTIAZ",
    "WhatId": "006D000000IRFmaIAH",
    "AccountId": "001D000000IomazIAB",
    "OwnerId": "005D0000001AbcdIAC",
    "StartDateTime": "2024-01-20T11:15:00.000+0000",
    "EndDateTime": "2024-01-20T11:45:00.000+0000",
    "ActivityDateTime": "2024-01-20T11:15:00.000+0000",
    "DurationInMinutes": 30,
    "IsAllDayEvent": False,
    "CreatedDate": "2024-01-10T09:00:00.000+0000",
    "LastModifiedDate": "2024-01-10T09:00:00.000+0000",
    "SystemModstamp": "2024-01-10T09:00:00.000+0000",
}


def ctx(stages: bool = True) -> NormalizeContext:
    base = NormalizeContext(ORG, "salesforce")
    if not stages:
        return base
    return NormalizeContext(ORG, "salesforce", stages=salesforce.stage_map(STAGES, base))


def one(rows: Rows, table: str) -> Row:
    assert len(rows[table]) == 1, rows
    return rows[table][0]


def changed(record: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    return {**record, **fields}


def stage_page() -> NormalizedPage:
    """``STAGES`` through ``normalize_page``, as a sync reads them."""
    return normalize_page(
        "OpportunityStage",
        STAGES,
        salesforce.normalize_opportunity_stage,
        ctx(False),
        id_field="Id",
    )


# --- stages --------------------------------------------------------------------------------


def test_opportunity_stage_becomes_a_stage_of_the_one_pipeline() -> None:
    rows = salesforce.normalize_opportunity_stage(STAGES[0], ctx(stages=False))
    assert one(rows, "pipelines") == {
        "id": rid("pipelines", "default"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "default",
        "name": "Opportunities",
        "display_order": 0,
        "is_archived": False,
        "created_at": None,
        "updated_at": None,
        "deleted_at": None,
        "raw": None,
    }
    assert one(rows, "deal_stages") == {
        "id": rid("deal_stages", "01J5g0000000005EAA"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "01J5g0000000005EAA",
        "pipeline_id": rid("pipelines", "default"),
        "label": "Proposal/Price Quote",
        "display_order": 6,
        "probability": Decimal("0.75"),
        "is_closed": False,
        "is_won": False,
        "forecast_category": "Pipeline",
        "is_active": True,
        "created_at": datetime(2023, 5, 1, tzinfo=UTC),
        "updated_at": datetime(2023, 5, 2, tzinfo=UTC),
        "deleted_at": None,
        "raw": STAGES[0],
    }


def test_every_stage_emits_the_same_pipeline_row() -> None:
    page = stage_page()
    assert len(page.rows["pipelines"]) == len(STAGES)
    assert all(row == page.rows["pipelines"][0] for row in page.rows["pipelines"])


def test_stage_map_keys_master_label_and_api_name() -> None:
    stages = salesforce.stage_map(STAGES, ctx(stages=False))
    assert set(stages) == {
        "Proposal/Price Quote",
        "Closed Won",
        "Closed Lost",
        "Négociation",
        "Negotiation/Review",
    }
    assert stages["Négociation"] is stages["Negotiation/Review"]
    won = stages["Closed Won"]
    assert won.stage_id == rid("deal_stages", "01J5g0000000008EAA")
    assert won.pipeline_id == rid("pipelines", "default")
    assert (won.is_closed, won.is_won, won.probability, won.forecast_category) == (
        True,
        True,
        Decimal("1"),
        "Closed",
    )


def test_stage_map_from_deal_stage_rows_equals_the_one_from_records() -> None:
    page = stage_page()
    assert salesforce.stage_map(page.rows["deal_stages"]) == salesforce.stage_map(
        STAGES, ctx(False)
    )


# --- opportunities -------------------------------------------------------------------------


def test_recorded_opportunity_becomes_exactly_this_row() -> None:
    row = one(salesforce.normalize_opportunity(OPPORTUNITY, ctx()), "deals")
    assert row == {
        "id": rid("deals", "006D000000IRFmaIAH"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "006D000000IRFmaIAH",
        "name": "Acme renewal",
        "amount": Decimal("125000.00"),
        "currency": None,
        "pipeline_id": rid("pipelines", "default"),
        "stage_id": rid("deal_stages", "01J5g0000000005EAA"),
        "stage_name": "Proposal/Price Quote",
        "close_date": date(2024, 12, 31),
        "owner_id": rid("owners", "005D0000001AbcdIAC"),
        "account_id": rid("accounts", "001D000000IomazIAB"),
        "is_closed": False,
        "is_won": False,
        "probability": Decimal("0.75"),
        "forecast_category": "Pipeline",
        "deal_type": None,
        "lead_source": None,
        "stage_entered_at": None,  # neither LastStageChangeDate nor CreatedDate was sent
        "created_at": None,
        "updated_at": datetime(2024, 1, 15, 10, 22, 33, tzinfo=UTC),
        "deleted_at": None,
        "raw": OPPORTUNITY,
    }
    assert row["raw"] is OPPORTUNITY
    assert row["updated_at"].utcoffset() == timedelta(0)


def test_opportunity_percent_becomes_a_fraction() -> None:
    record = changed(OPPORTUNITY, Probability=33.333333)
    row = one(salesforce.normalize_opportunity(record, ctx()), "deals")
    assert row["probability"] == Decimal("0.3333")


def test_opportunity_by_api_name_and_its_own_flags_first() -> None:
    record = changed(
        OPPORTUNITY,
        StageName="Negotiation/Review",
        Probability=80.0,
        ForecastCategoryName=None,
        CurrencyIsoCode="EUR",
        Type="Renewal",
        LeadSource="Web",
        CreatedDate="2023-11-01T08:00:00.000+0000",
    )
    row = one(salesforce.normalize_opportunity(record, ctx()), "deals")
    assert row["stage_id"] == rid("deal_stages", "01J5g0000000006EAA")
    assert row["stage_name"] == "Negotiation/Review"
    assert row["probability"] == Decimal("0.8")  # the opportunity's, not the stage's 0.9
    assert row["forecast_category"] == "Commit"  # none on the record: the stage's
    assert (row["currency"], row["deal_type"], row["lead_source"]) == ("EUR", "Renewal", "Web")
    assert row["created_at"] == datetime(2023, 11, 1, 8, tzinfo=UTC)


def test_opportunity_without_flags_takes_them_from_its_stage() -> None:
    record = {k: v for k, v in OPPORTUNITY.items() if k not in ("IsClosed", "IsWon", "Probability")}
    row = one(
        salesforce.normalize_opportunity(changed(record, StageName="Closed Won"), ctx()), "deals"
    )
    assert (row["is_closed"], row["is_won"], row["probability"]) == (True, True, Decimal("1"))


def test_unknown_stage_keeps_the_opportunity_and_its_own_values() -> None:
    record = changed(OPPORTUNITY, StageName="Id. Decision Makers", IsClosed=False)
    row = one(salesforce.normalize_opportunity(record, ctx()), "deals")
    assert (row["stage_id"], row["stage_name"]) == (None, "Id. Decision Makers")
    assert (row["is_closed"], row["is_won"], row["probability"]) == (False, False, Decimal("0.75"))
    assert row["amount"] == Decimal("125000.00")


def test_deleted_opportunity_is_deleted_at_its_system_modstamp() -> None:
    record = changed(OPPORTUNITY, IsDeleted=True, SystemModstamp="2024-02-01T09:00:00.000+0000")
    row = one(salesforce.normalize_opportunity(record, ctx()), "deals")
    assert row["deleted_at"] == row["updated_at"] == datetime(2024, 2, 1, 9, tzinfo=UTC)


def test_last_modified_date_stands_in_for_a_missing_system_modstamp() -> None:
    record = {k: v for k, v in OPPORTUNITY.items() if k != "SystemModstamp"}
    record["LastModifiedDate"] = "2024-01-15T12:22:33.000+0200"
    row = one(salesforce.normalize_opportunity(record, ctx()), "deals")
    assert row["updated_at"] == datetime(2024, 1, 15, 10, 22, 33, tzinfo=UTC)


# --- users, accounts, contacts -------------------------------------------------------------


def test_user() -> None:
    assert one(salesforce.normalize_user(USER, ctx()), "owners") == {
        "id": rid("owners", "005D0000001AbcdIAC"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "005D0000001AbcdIAC",
        "email": "dana.reyes@northwind.io",
        "first_name": "Dana",
        "last_name": "Reyes",
        "full_name": "Dana Reyes",
        "is_active": False,
        "created_at": datetime(2022, 3, 1, 9, tzinfo=UTC),
        "updated_at": datetime(2025, 6, 2, 9, tzinfo=UTC),
        "deleted_at": None,
        "raw": USER,
    }


def test_account() -> None:
    assert one(salesforce.normalize_account(ACCOUNT, ctx()), "accounts") == {
        "id": rid("accounts", "001D000000IomazIAB"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "001D000000IomazIAB",
        "name": "Acme Corp",
        "domain": "acme.com",
        "industry": "Technology",
        "account_type": "Customer - Direct",
        "website": "https://www.Acme.com/",
        "employee_count": 250,
        "annual_revenue": Decimal("46250000.00"),
        "city": "Austin",
        "country": "United States",
        "owner_id": rid("owners", "005D0000001AbcdIAC"),
        "created_at": datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC),
        "updated_at": datetime(2024, 2, 1, tzinfo=UTC),
        "deleted_at": None,
        "raw": ACCOUNT,
    }


@pytest.mark.parametrize(
    ("website", "expected"),
    [("acme.com", "acme.com"), ("http://WWW.acme.co.uk/x", "acme.co.uk"), (None, None)],
)
def test_account_domain_from_website(website: str | None, expected: str | None) -> None:
    row = one(salesforce.normalize_account(changed(ACCOUNT, Website=website), ctx()), "accounts")
    assert row["domain"] == expected


def test_contact() -> None:
    assert one(salesforce.normalize_contact(CONTACT, ctx()), "contacts") == {
        "id": rid("contacts", "003D000000QwErTIAZ"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "003D000000QwErTIAZ",
        "email": "lee.chen@acme.com",
        "first_name": "Lee",
        "last_name": "Chen",
        "full_name": "Lee Chen",
        "title": "VP Sales",
        "phone": "+1 555-0300-0001",
        "account_id": rid("accounts", "001D000000IomazIAB"),
        "owner_id": rid("owners", "005D0000001AbcdIAC"),
        "created_at": datetime(2023, 4, 1, 8, tzinfo=UTC),
        "updated_at": datetime(2024, 1, 15, 12, tzinfo=UTC),
        "deleted_at": None,
        "raw": CONTACT,
    }


# --- tasks and events ----------------------------------------------------------------------


def test_call_task_becomes_a_call_with_its_participants() -> None:
    rows = salesforce.normalize_task(CALL_TASK, ctx())
    activity = one(rows, "activities")
    assert activity == {
        "id": rid("activities", "00T5g0000000000EAA"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "00T5g0000000000EAA",
        "activity_type": "call",
        "subject": "Call: Reference call",
        "body": "Discussed the rollout.",
        "occurred_at": datetime(2024, 1, 15, tzinfo=UTC),
        "ended_at": None,
        "is_all_day": None,
        "duration_seconds": 711,
        "direction": "inbound",
        "status": "completed",
        "owner_id": rid("owners", "005D0000001AbcdIAC"),
        "deal_id": rid("deals", "006D000000IRFmaIAH"),
        "account_id": rid("accounts", "001D000000IomazIAB"),
        "contact_id": rid("contacts", "003D000000QwErTIAZ"),
        "channel": None,
        "thread_id": None,
        "created_at": datetime(2024, 1, 15, 10, tzinfo=UTC),
        "updated_at": datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
        "deleted_at": None,
        "raw": CALL_TASK,
    }
    contact, owner = rows["activity_participants"]
    assert contact["source_id"] == "00T5g0000000000EAA:contact:003D000000QwErTIAZ"
    assert contact["id"] == rid("activity_participants", contact["source_id"])
    assert (contact["role"], contact["is_internal"], contact["activity_id"]) == (
        "participant",
        False,
        activity["id"],
    )
    assert (contact["contact_id"], contact["owner_id"]) == (rid("contacts", CONTACT["Id"]), None)
    assert owner["source_id"] == "00T5g0000000000EAA:owner:005D0000001AbcdIAC"
    assert (owner["role"], owner["is_internal"], owner["owner_id"]) == (
        "owner",
        True,
        rid("owners", "005D0000001AbcdIAC"),
    )


@pytest.mark.parametrize(
    ("subtype", "expected"), [("Email", "email"), ("Task", "task"), (None, "task")]
)
def test_task_subtype_decides_the_activity_type(subtype: str | None, expected: str) -> None:
    record = changed(CALL_TASK, TaskSubtype=subtype, CallType=None, CallDurationInSeconds=None)
    activity = one(salesforce.normalize_task(record, ctx()), "activities")
    assert (activity["activity_type"], activity["direction"]) == (expected, None)


def test_lead_who_and_account_what_are_told_apart_by_prefix() -> None:
    record = changed(
        CALL_TASK,
        WhoId="00Q5g000001LeadIAA",
        WhatId="0015g000002OtherAA",
        AccountId=None,
        Status="Not Started",
    )
    rows = salesforce.normalize_task(record, ctx())
    activity = one(rows, "activities")
    assert (activity["contact_id"], activity["deal_id"]) == (None, None)
    assert activity["account_id"] == rid("accounts", "0015g000002OtherAA")
    assert activity["status"] == "not_started"
    [owner] = rows["activity_participants"]  # a lead is not a contact
    assert owner["role"] == "owner"


def test_completed_task_occurs_when_completed_and_its_due_date_is_still_checked() -> None:
    done = changed(CALL_TASK, CompletedDateTime="2024-01-15T10:25:00.000+0000")
    activity = one(salesforce.normalize_task(done, ctx()), "activities")
    assert activity["occurred_at"] == datetime(2024, 1, 15, 10, 25, tzinfo=UTC)
    bad = changed(done, Id="t2", ActivityDate="2025-02-31")
    result = normalize_page("Task", [bad], salesforce.normalize_task, ctx(), id_field="Id")
    assert [q.reason for q in result.quarantined] == ["ActivityDate is not a date: '2025-02-31'"]


def test_event_becomes_a_meeting() -> None:
    rows = salesforce.normalize_event(EVENT, ctx())
    activity = one(rows, "activities")
    assert activity["source_id"] == "00U5g0000000002EAA"
    assert activity["activity_type"] == "meeting"
    assert activity["occurred_at"] == datetime(2024, 1, 20, 11, 15, tzinfo=UTC)
    assert activity["ended_at"] == datetime(2024, 1, 20, 11, 45, tzinfo=UTC)
    assert (activity["duration_seconds"], activity["is_all_day"]) == (1800, False)
    assert (activity["body"], activity["status"], activity["direction"]) == (None, None, None)
    assert [p["role"] for p in rows["activity_participants"]] == ["attendee", "owner"]


def test_event_without_start_and_end_uses_activity_date_time_and_duration() -> None:
    record = changed(EVENT, StartDateTime=None, EndDateTime=None, DurationInMinutes=90)
    activity = one(salesforce.normalize_event(record, ctx()), "activities")
    assert activity["occurred_at"] == datetime(2024, 1, 20, 11, 15, tzinfo=UTC)
    assert activity["ended_at"] == datetime(2024, 1, 20, 12, 45, tzinfo=UTC)
    assert activity["duration_seconds"] == 5400


def test_all_day_event() -> None:
    record = changed(
        EVENT,
        StartDateTime=None,
        EndDateTime=None,
        ActivityDateTime=None,
        IsAllDayEvent=True,
        DurationInMinutes=1440,
    )
    activity = one(salesforce.normalize_event(record, ctx()), "activities")
    assert activity["occurred_at"] == datetime(2024, 1, 20, tzinfo=UTC)
    assert activity["ended_at"] == datetime(2024, 1, 21, tzinfo=UTC)
    assert activity["is_all_day"] is True


# --- malformed records ---------------------------------------------------------------------


def test_malformed_opportunities_are_quarantined_with_the_reason() -> None:
    other = changed(OPPORTUNITY, Id="006D000000IRFmbIAH", Name="Second")
    page = [
        OPPORTUNITY,
        changed(OPPORTUNITY, Id="b1", Amount="12,5O0"),
        changed(OPPORTUNITY, Id="b2", CloseDate="2025-02-31"),
        changed(OPPORTUNITY, Id=None),
        changed(OPPORTUNITY, Id="b4", Probability=175.0),
        changed(OPPORTUNITY, Id="b5", SystemModstamp="2024-13-01T00:00:00.000+0000"),
        changed(OPPORTUNITY, Id="b6", IsWon="maybe"),
        changed(OPPORTUNITY, Id="b7", Amount=1e17),
        other,
    ]
    result = normalize_page(
        "Opportunity", page, salesforce.normalize_opportunity, ctx(), id_field="Id"
    )
    assert [(q.source_id, q.reason) for q in result.quarantined] == [
        ("b1", "Amount is not a number: '12,5O0'"),
        ("b2", "CloseDate is not a date: '2025-02-31'"),
        (None, "missing Id"),
        ("b4", "Probability is not a percentage between 0 and 100: 175.0"),
        ("b5", "SystemModstamp is not a date-time: '2024-13-01T00:00:00.000+0000'"),
        ("b6", "IsWon is not a boolean: 'maybe'"),
        ("b7", "Amount is out of range: 1e+17"),
    ]
    assert result.quarantined[0].raw is page[1]
    assert [row["name"] for row in result.rows["deals"]] == ["Acme renewal", "Second"]


def test_malformed_activities_are_quarantined_with_the_reason() -> None:
    page = [changed(CALL_TASK, Id="t1", ActivityDate="2025-02-31"), CALL_TASK]
    result = normalize_page("Task", page, salesforce.normalize_task, ctx(), id_field="Id")
    assert [(q.source_id, q.reason) for q in result.quarantined] == [
        ("t1", "ActivityDate is not a date: '2025-02-31'")
    ]
    events = [changed(EVENT, Id="e1", EndDateTime="soon"), EVENT]
    result = normalize_page("Event", events, salesforce.normalize_event, ctx(), id_field="Id")
    assert [(q.source_id, q.reason) for q in result.quarantined] == [
        ("e1", "EndDateTime is not a date-time: 'soon'")
    ]
    assert len(result.rows["activities"]) == 1


def _page_rows(page: NormalizedPage) -> dict[str, list[Row]]:
    """A page's tuples as the dict rows ``normalize_task`` gives one record: ids the store
    would derive filled in, ``raw`` as its JSON text."""
    out: dict[str, list[Row]] = {}
    for table, tuples in page.tuples.items():
        rows = tuples.dicts()
        if "id" not in tuples.names:
            for row in rows:
                row["id"] = rid(table, row["source_id"])
        out[table] = rows
    return out


def _as_stored(rows: Rows) -> dict[str, list[Row]]:
    return {
        table: [{**row, "raw": upsert_json_text(row["raw"])} for row in table_rows]
        for table, table_rows in rows.items()
    }


def test_a_task_page_with_raw_is_normalized_column_by_column_into_the_same_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``raw`` (as run_sync passes it) a page of Tasks is normalized column by column:
    not one record through the record-by-record parts, and the same rows as record by record
    (``raw`` then the record's JSON text)."""
    page = [
        changed(CALL_TASK, Id=f"00T5g00000000{i:02d}AAA", WhoId=who, CallType=call, Status=status)
        for i, (who, call, status) in enumerate(
            [("003D000000QwErTIAZ", "Inbound", "Completed"), (None, None, "Not Started"),
             ("00Q5g000001LeadIAA", "Outbound", None)] * 3
        )
    ]  # fmt: skip
    expected = normalize_page("Task", page, salesforce.normalize_task, ctx(), id_field="Id")
    used: list[Any] = []
    monkeypatch.setattr(salesforce.normalize_task, "parts", lambda *a: used.append(a))
    result = normalize_page(
        "Task", page, salesforce.normalize_task, ctx(), id_field="Id", raw=upsert_json_text
    )
    assert used == [] and result.quarantined == [] and result.rows == {}
    assert _page_rows(result) == _as_stored(expected.rows)
    assert len(result.tuples["activity_participants"].rows) == 9 + 3  # owners + 3 contacts


def test_a_task_page_with_raw_still_quarantines_a_malformed_record_with_the_reason() -> None:
    good = [changed(CALL_TASK, Id=f"00T5g0000000{i:03d}AAA") for i in range(1200)]
    bad = [
        (7, changed(CALL_TASK, Id="t1", ActivityDate="2025-02-31")),
        (600, changed(CALL_TASK, Id="t2", SystemModstamp="yesterday")),
        (900, changed(CALL_TASK, Id=None)),
        (1000, changed(CALL_TASK, Id="t4", TaskSubtype=["Call"])),
    ]
    page: list[Any] = list(good)
    for at, record in bad:
        page.insert(at, record)
    result = normalize_page(
        "Task", page, salesforce.normalize_task, ctx(), id_field="Id", raw=upsert_json_text
    )
    assert [(q.source_id, q.reason) for q in result.quarantined] == [
        ("t1", "ActivityDate is not a date: '2025-02-31'"),
        ("t2", "SystemModstamp is not a date-time: 'yesterday'"),
        (None, "missing Id"),
        ("t4", "TypeError: unhashable type: 'list'"),
    ]
    assert [q.raw for q in result.quarantined] == [record for _, record in bad]
    expected = normalize_page("Task", good, salesforce.normalize_task, ctx(), id_field="Id")
    assert _page_rows(result) == _as_stored(expected.rows)


def test_sandbox_task_pages_with_raw_equal_the_record_by_record_rows() -> None:
    """The sandbox's Tasks, deleted and malformed ones included, in pages of several sizes:
    column by column (with ``raw``) and record by record give the same rows and quarantine."""
    with SandboxServer(scale=0.02, seed=5, freeze_gc=False) as sb:
        sb.mutate(modified_pct=0.0, archived_pct=10, object_types=("calls", "emails", "tasks"))
        sb.faults.salesforce.malformed_rate = 0.1
        tasks = salesforce_records(sb, "Task", query_all=True)
    assert any(t.get("IsDeleted") for t in tasks)
    for size in (2000, 333):
        for start in range(0, len(tasks), size):
            chunk = tasks[start : start + size]
            columns = normalize_page(
                "Task", chunk, salesforce.normalize_task, ctx(), id_field="Id", raw=upsert_json_text
            )
            records = normalize_page("Task", chunk, salesforce.normalize_task, ctx(), id_field="Id")
            assert _page_rows(columns) == _as_stored(records.rows)
            assert [(q.source_id, q.reason) for q in columns.quarantined] == [
                (q.source_id, q.reason) for q in records.quarantined
            ]
    every = normalize_page("Task", tasks, salesforce.normalize_task, ctx(), id_field="Id")
    assert every.quarantined  # the malformed ones were among them


# --- every row fits the schema -------------------------------------------------------------


def test_rows_carry_exactly_the_columns_of_their_table() -> None:
    c = ctx()
    samples = [
        (salesforce.normalize_user, USER),
        (salesforce.normalize_account, ACCOUNT),
        (salesforce.normalize_contact, CONTACT),
        (salesforce.normalize_opportunity_stage, STAGES[0]),
        (salesforce.normalize_opportunity, OPPORTUNITY),
        (salesforce.normalize_opportunity, changed(OPPORTUNITY, StageName="?")),
        (salesforce.normalize_task, CALL_TASK),
        (salesforce.normalize_event, EVENT),
    ]
    for fn, record in samples:
        for table, rows in fn(record, c).items():
            columns = {col.name for col in metadata.tables[table].columns} - {PENDING_COLUMN}
            for row in rows:
                assert set(row) == columns, (table, set(row) ^ columns)


def test_normalizers_cover_every_stream_and_declare_their_fields() -> None:
    assert set(salesforce.NORMALIZERS) == set(SOBJECTS) == set(salesforce.FIELDS)


# --- the sandbox's real pages --------------------------------------------------------------


@pytest.fixture(scope="module")
def pages(sandbox: SandboxServer) -> dict[str, list[dict[str, Any]]]:
    return {sobject: salesforce_records(sandbox, sobject) for sobject in SOBJECTS}


@pytest.fixture(scope="module")
def normalized(pages: dict[str, list[dict[str, Any]]]) -> dict[str, Rows]:
    base = NormalizeContext(ORG, "salesforce")
    stages = salesforce.stage_map(pages["OpportunityStage"], base)
    c = NormalizeContext(ORG, "salesforce", stages=stages)
    out: dict[str, Rows] = {}
    for sobject, records in pages.items():
        result = normalize_page(sobject, records, salesforce.NORMALIZERS[sobject], c, id_field="Id")
        assert result.quarantined == [], (sobject, result.quarantined[:3])
        out[sobject] = result.rows
    return out


def test_sandbox_pages_normalize_completely(
    pages: dict[str, list[dict[str, Any]]], normalized: dict[str, Rows]
) -> None:
    assert len(normalized["Opportunity"]["deals"]) == len(pages["Opportunity"]) > 50
    assert len(normalized["Account"]["accounts"]) == len(pages["Account"]) > 20
    types = {row["activity_type"] for row in normalized["Task"]["activities"]}
    assert types == {"call", "email", "task"}
    assert {row["activity_type"] for row in normalized["Event"]["activities"]} == {"meeting"}
    assert len({row["id"] for row in normalized["OpportunityStage"]["pipelines"]}) == 1


def test_sandbox_links_point_at_rows_that_exist(normalized: dict[str, Rows]) -> None:
    ids: dict[str, set[uuid.UUID]] = {}
    for sobject_rows in normalized.values():
        for table, rows in sobject_rows.items():
            ids.setdefault(table, set()).update(row["id"] for row in rows)
    for deal in normalized["Opportunity"]["deals"]:
        assert deal["stage_id"] in ids["deal_stages"]
        assert deal["pipeline_id"] in ids["pipelines"]
        assert deal["account_id"] in ids["accounts"]
        assert deal["owner_id"] in ids["owners"]
    for sobject in ("Task", "Event"):
        for activity in normalized[sobject]["activities"]:
            assert activity["owner_id"] in ids["owners"]
            assert activity["account_id"] in ids["accounts"]
            assert activity["deal_id"] is None or activity["deal_id"] in ids["deals"]
            assert activity["contact_id"] is None or activity["contact_id"] in ids["contacts"]
            assert activity["occurred_at"] is not None
        for participant in normalized[sobject]["activity_participants"]:
            assert participant["activity_id"] in ids["activities"]


def test_sandbox_opportunities_match_the_ground_truth(
    sandbox: SandboxServer, normalized: dict[str, Rows]
) -> None:
    company = sandbox.company
    by_sf_id = {company.sf_id("deals", deal): deal for deal in company.deals}
    for row in normalized["Opportunity"]["deals"]:
        truth = by_sf_id[row["source_id"]]
        stage = company.stage(truth)
        assert row["stage_name"] == stage.label
        assert (row["is_closed"], row["is_won"]) == (stage.is_closed, stage.is_won)
        assert row["probability"] == Decimal(str(stage.probability))
        cents = truth.amount_cents
        assert row["amount"] == (None if cents < 0 else Decimal(cents) / 100)
        assert row["close_date"] == date(1970, 1, 1) + timedelta(days=truth.close_day)
        assert row["forecast_category"] == stage.forecast_name


def test_sandbox_malformed_and_deleted_records() -> None:
    with SandboxServer(scale=0.02, seed=11, freeze_gc=False) as sb:
        archived = sb.mutate(modified_pct=0.0, archived_pct=20, object_types=("deals",))
        deleted_ids = {sb.company.salesforce_id("deals", i) for i in archived.archived["deals"]}
        sb.faults.salesforce.malformed_rate = 0.15
        truth = sb.malformed("salesforce")
        opportunities = salesforce_records(sb, "Opportunity", query_all=True)
        tasks = salesforce_records(sb, "Task")
    assert deleted_ids
    result = normalize_page(
        "Opportunity", opportunities, salesforce.normalize_opportunity, ctx(), id_field="Id"
    )
    reasons = {
        "bad_amount": "Amount is not a number: ",
        "bad_date": "CloseDate is not a date: ",
        "missing_id": "missing Id",
    }
    rejectable = {i: k for i, k in truth["deals"].items() if k in reasons}
    assert len(result.quarantined) == len(rejectable) > 0
    for q in result.quarantined:
        kind = "missing_id" if q.source_id is None else rejectable[q.source_id]
        assert q.reason.startswith(reasons[kind]), (q.source_id, q.reason)
    deals = {row["source_id"]: row for row in result.rows["deals"]}
    for sfid, row in deals.items():
        if sfid in deleted_ids:
            assert row["deleted_at"] == row["updated_at"] is not None
        else:
            assert row["deleted_at"] is None
    assert deleted_ids - set(rejectable) <= set(deals)
    task_result = normalize_page("Task", tasks, salesforce.normalize_task, ctx(), id_field="Id")
    bad_tasks = {
        i
        for t in ("calls", "emails", "notes", "tasks")
        for i, k in truth.get(t, {}).items()
        if k == "bad_date"
    }
    assert {q.source_id for q in task_result.quarantined} == bad_tasks
    assert all(q.reason.startswith("ActivityDate is not a date: ") for q in task_result.quarantined)


def test_sandbox_rows_upsert_into_the_store(db: Database, normalized: dict[str, Rows]) -> None:
    written: dict[str, int] = {}
    with db.begin() as conn:
        for rows in normalized.values():
            for table, table_rows in rows.items():
                written[table] = written.get(table, 0) + upsert(conn, table, table_rows).written
    assert written["deals"] == len(normalized["Opportunity"]["deals"])
    assert written["pipelines"] == 1  # one pipeline, however many stages named it
    with db.begin() as conn:
        assert upsert(conn, "activities", normalized["Task"]["activities"]).written == 0


# Fields whose faults are found in this order, one record with several of them per stream:
# the first one the dict rows named is the quarantine's reason.
_FAULTS = {
    "Account": ({"NumberOfEmployees": "many", "AnnualRevenue": "lots"}, "NumberOfEmployees"),
    "Contact": ({"CreatedDate": "then", "SystemModstamp": "now"}, "SystemModstamp"),
    "Opportunity": ({"CloseDate": "2025-02-31", "LastStageChangeDate": "x"}, "CloseDate"),
    "OpportunityHistory": ({"Amount": "12,5O0", "CloseDate": "soon"}, "Amount"),
    "OpportunityContactRole": ({"IsPrimary": "maybe", "ContactId": None}, "ContactId"),
}


def test_crm_pages_with_raw_are_tuples_of_the_record_by_record_rows(
    pages: dict[str, list[dict[str, Any]]], normalized: dict[str, Rows]
) -> None:
    """Accounts, contacts, opportunities, their stage history and contact roles are columnar:
    a page the sync keeps (tuples, ``raw`` as its JSON text, ids the store derives left out)
    is the rows of normalizing record by record, and a record with several faults is
    quarantined for the first of them and leaves no row behind."""
    base = NormalizeContext(ORG, "salesforce")
    c = NormalizeContext(
        ORG, "salesforce", stages=salesforce.stage_map(pages["OpportunityStage"], base)
    )
    for sobject, (faults, first) in _FAULTS.items():
        bad = changed(pages[sobject][0], Id="bad-1", **faults)
        records = [*pages[sobject], bad]
        page = normalize_page(
            sobject,
            records,
            salesforce.NORMALIZERS[sobject],
            c,
            id_field="Id",
            raw=upsert_json_text,
        )
        assert page.rows == {}
        assert [q.source_id for q in page.quarantined] == ["bad-1"]
        assert first in page.quarantined[0].reason, (sobject, page.quarantined[0].reason)
        assert _page_rows(page) == _as_stored(normalized[sobject]), sobject
