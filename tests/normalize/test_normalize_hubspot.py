"""HubSpot normalizer: recorded wire shapes in, exact common rows out.

The literals are the recorded shapes of provider-apis.md (every property a string or null);
the sandbox tests feed the exact pages the sandbox serves and compare with its ground truth.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from helpers import row_ids
from sandbox_pages import ENGAGEMENTS, hubspot_records

from revtops_kernel.normalize import hubspot
from revtops_kernel.normalize.base import NormalizeContext, Row, Rows, normalize_page
from revtops_kernel.store import Database
from revtops_kernel.store.schema import PENDING_COLUMN, metadata
from revtops_kernel.store.upsert import _dump_json, upsert
from revtops_sandbox.server import SandboxServer

ORG = "org_test"


rid = row_ids(ORG, "hubspot")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# GET /crm/v3/pipelines/deals, recorded (provider-apis.md).
PIPELINE: dict[str, Any] = {
    "label": "Sales Pipeline",
    "displayOrder": 0,
    "id": "default",
    "archived": False,
    "stages": [
        {
            "label": "Appointment Scheduled",
            "displayOrder": 0,
            "metadata": {"isClosed": "false", "probability": "0.2"},
            "id": "appointmentscheduled",
            "archived": False,
        },
        {
            "label": "Closed Won",
            "displayOrder": 5,
            "metadata": {"isClosed": "true", "probability": "1.0"},
            "id": "closedwon",
        },
        {
            "label": "Closed Lost",
            "displayOrder": 6,
            "metadata": {"isClosed": "true", "probability": "0.0"},
            "id": "closedlost",
        },
    ],
}
# GET /crm/v3/objects/deals?associations=companies, recorded (provider-apis.md).
DEAL: dict[str, Any] = {
    "id": "480202228957",
    "properties": {
        "amount": "5000.00",
        "closedate": None,
        "createdate": "2026-02-26T13:45:36.485Z",
        "dealname": "Test Deal",
        "dealstage": "appointmentscheduled",
        "pipeline": "default",
        "hs_lastmodifieddate": "2026-02-26T13:45:43.181Z",
        "hs_object_id": "480202228957",
        "hubspot_owner_id": None,
    },
    "createdAt": "2026-02-26T13:45:36.485Z",
    "updatedAt": "2026-02-26T13:45:43.181Z",
    "archived": False,
    "associations": {"companies": {"results": [{"id": "9001", "type": "deal_to_company"}]}},
}
OWNER: dict[str, Any] = {
    "id": "52550101",
    "email": "Dana.Reyes@Northwind.io",
    "type": "PERSON",
    "firstName": "Dana",
    "lastName": "Reyes",
    "userId": 9586101,
    "userIdIncludingInactive": 9586101,
    "createdAt": "2024-03-01T09:00:00.000Z",
    "updatedAt": "2026-01-10T17:30:00.250Z",
    "archived": False,
    "teams": [{"id": "4100000", "name": "Enterprise", "primary": True}],
}
COMPANY: dict[str, Any] = {
    "id": "9001",
    "properties": {
        "name": "Acme Corp",
        "domain": "WWW.Acme.com",
        "website": "https://www.acme.com/about",
        "industry": "COMPUTER_SOFTWARE",
        "type": "CUSTOMER",
        "numberofemployees": "250",
        "annualrevenue": "46250000",
        "city": "Austin",
        "country": "United States",
        "hubspot_owner_id": "52550101",
        "createdate": "2025-01-02T03:04:05.006Z",
        "hs_lastmodifieddate": "2026-02-01T00:00:00.000Z",
        "hs_object_id": "9001",
    },
    "createdAt": "2025-01-02T03:04:05.006Z",
    "updatedAt": "2026-02-01T00:00:00.000Z",
    "archived": False,
}
CONTACT: dict[str, Any] = {
    "id": "51200000001",
    "properties": {
        "firstname": "Lee",
        "lastname": "Chen",
        "email": "Lee.Chen@ACME.com",
        "jobtitle": "VP Sales",
        "phone": "+1 555-0100-0001",
        "associatedcompanyid": "9002",
        "hubspot_owner_id": "52550101",
        "createdate": "2025-04-01T08:00:00.000Z",
        "lastmodifieddate": "2026-01-15T12:00:00.000Z",
        "hs_object_id": "51200000001",
    },
    "createdAt": "2025-04-01T08:00:00.000Z",
    "updatedAt": "2026-01-15T12:00:00.000Z",
    "archived": False,
    "associations": {"companies": {"results": [{"id": "9001", "type": "contact_to_company"}]}},
}
MEETING: dict[str, Any] = {
    "id": "30110000003",
    "properties": {
        "hs_timestamp": "2026-02-20T16:00:00.000Z",
        "hs_meeting_title": "Product demo - Acme Corp",
        "hs_meeting_body": "Walked through the roadmap.",
        "hs_internal_meeting_notes": None,
        "hs_meeting_start_time": "2026-02-20T16:00:00.000Z",
        "hs_meeting_end_time": "2026-02-20T16:45:00.000Z",
        "hs_meeting_outcome": "COMPLETED",
        "hubspot_owner_id": "52550101",
        "hs_createdate": "2026-02-18T10:00:00.000Z",
        "hs_lastmodifieddate": "2026-02-20T17:00:00.000Z",
        "hs_object_id": "30110000003",
    },
    "createdAt": "2026-02-18T10:00:00.000Z",
    "updatedAt": "2026-02-20T17:00:00.000Z",
    "archived": False,
    "associations": {
        "contacts": {
            "results": [
                {"id": "51200000001", "type": "meeting_event_to_contact"},
                {"id": "51200000002", "type": "meeting_event_to_contact"},
            ]
        },
        "companies": {"results": [{"id": "9001", "type": "meeting_event_to_company"}]},
        "deals": {"results": [{"id": "480202228957", "type": "meeting_event_to_deal"}]},
    },
}
CALL: dict[str, Any] = {
    "id": "30110000001",
    "properties": {
        "hs_timestamp": "1771603200000",  # epoch ms, as HubSpot also sends it
        "hs_call_title": "Intro call",
        "hs_call_body": "Left a voicemail.",
        "hs_call_duration": "125400",
        "hs_call_direction": "INBOUND",
        "hs_call_status": "COMPLETED",
        "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
        "hubspot_owner_id": None,
        "hs_createdate": "2026-02-20T16:05:00.000Z",
        "hs_lastmodifieddate": "2026-02-20T16:05:00.000Z",
        "hs_object_id": "30110000001",
    },
    "createdAt": "2026-02-20T16:05:00.000Z",
    "updatedAt": "2026-02-20T16:05:00.000Z",
    "archived": False,
    "associations": {"contacts": {"results": [{"id": "51200000001", "type": "call_to_contact"}]}},
}


def ctx(stages: bool = True) -> NormalizeContext:
    base = NormalizeContext(ORG, "hubspot")
    if not stages:
        return base
    return NormalizeContext(ORG, "hubspot", stages=hubspot.stage_map([PIPELINE], base))


def one(rows: Rows, table: str) -> Row:
    assert list(rows[table]) == rows[table] and len(rows[table]) == 1, rows
    return rows[table][0]


def with_props(record: Mapping[str, Any], **props: Any) -> dict[str, Any]:
    return {**record, "properties": {**record["properties"], **props}}


# --- pipelines and the stage map ---------------------------------------------------------------


def test_pipeline_becomes_a_pipeline_row_and_one_row_per_stage() -> None:
    rows = hubspot.normalize_pipeline(PIPELINE, ctx(stages=False))
    pipeline = one(rows, "pipelines")
    assert pipeline == {
        "id": rid("pipelines", "default"),
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": "default",
        "name": "Sales Pipeline",
        "display_order": 0,
        "is_archived": False,
        "created_at": None,
        "updated_at": None,
        "deleted_at": None,
        "raw": PIPELINE,
    }
    stages = rows["deal_stages"]
    assert [s["source_id"] for s in stages] == [
        "default:appointmentscheduled",
        "default:closedwon",
        "default:closedlost",
    ]
    assert [s["id"] for s in stages] == [rid("deal_stages", s["source_id"]) for s in stages]
    assert {s["pipeline_id"] for s in stages} == {rid("pipelines", "default")}
    assert [(s["label"], s["display_order"], s["probability"]) for s in stages] == [
        ("Appointment Scheduled", 0, Decimal("0.2")),
        ("Closed Won", 5, Decimal("1")),
        ("Closed Lost", 6, Decimal("0")),
    ]
    assert [(s["is_closed"], s["is_won"]) for s in stages] == [
        (False, False),
        (True, True),
        (True, False),
    ]
    assert stages[1]["raw"] is PIPELINE["stages"][1]


def test_stage_map_keys_pipeline_and_bare_stage_ids() -> None:
    stages = hubspot.stage_map([PIPELINE], ctx(stages=False))
    assert set(stages) == {
        "default:appointmentscheduled",
        "appointmentscheduled",
        "default:closedwon",
        "closedwon",
        "default:closedlost",
        "closedlost",
    }
    won = stages["default:closedwon"]
    assert won is stages["closedwon"]
    assert won.stage_id == rid("deal_stages", "default:closedwon")
    assert won.pipeline_id == rid("pipelines", "default")
    assert (won.label, won.is_closed, won.is_won, won.probability) == (
        "Closed Won",
        True,
        True,
        Decimal("1"),
    )
    lost = stages["closedlost"]
    assert (lost.is_closed, lost.is_won) == (True, False)


def test_stage_map_from_deal_stage_rows_equals_the_one_from_records() -> None:
    page = normalize_page("pipelines", [PIPELINE], hubspot.normalize_pipeline, ctx(False))
    assert hubspot.stage_map(page.rows["deal_stages"]) == hubspot.stage_map([PIPELINE], ctx(False))


def test_stage_is_won_honours_an_explicit_is_won_flag() -> None:
    custom = {
        "id": "777",
        "label": "Custom",
        "stages": [
            {"id": "s1", "label": "Won", "metadata": {"isClosed": "true", "probability": "0.9"}},
            {"id": "s2", "label": "Won!", "metadata": {"isClosed": "true", "isWon": "true"}},
        ],
    }
    stages = hubspot.stage_map([custom], ctx(False))
    assert stages["777:s1"].is_won is False  # closed at 0.9 is not won
    assert stages["777:s2"].is_won is True


# --- deals -------------------------------------------------------------------------------------


def test_recorded_deal_becomes_exactly_this_row() -> None:
    row = one(hubspot.normalize_deal(DEAL, ctx()), "deals")
    assert row == {
        "id": rid("deals", "480202228957"),
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": "480202228957",
        "name": "Test Deal",
        "amount": Decimal("5000.00"),
        "currency": None,
        "pipeline_id": rid("pipelines", "default"),
        "stage_id": rid("deal_stages", "default:appointmentscheduled"),
        "stage_name": "Appointment Scheduled",
        "close_date": None,
        "owner_id": None,
        "account_id": rid("accounts", "9001"),
        "is_closed": False,
        "is_won": False,
        "probability": Decimal("0.2"),
        "forecast_category": None,
        "deal_type": None,
        "lead_source": None,
        "stage_entered_at": None,  # no stage history in this record
        "created_at": datetime(2026, 2, 26, 13, 45, 36, 485000, tzinfo=UTC),
        "updated_at": datetime(2026, 2, 26, 13, 45, 43, 181000, tzinfo=UTC),
        "deleted_at": None,
        "raw": DEAL,
    }
    assert row["raw"] is DEAL  # the record itself, not a copy
    assert row["updated_at"].utcoffset() == timedelta(0)


def test_deal_properties_override_stage_defaults_and_map_hubspot_values() -> None:
    record = with_props(
        DEAL,
        dealstage="closedwon",
        amount="125000.5",
        deal_currency_code="EUR",
        closedate="2026-03-31T00:00:00.000Z",
        hubspot_owner_id="52550101",
        hs_deal_stage_probability="0.95",
        hs_manual_forecast_category="BEST_CASE",
        dealtype="existingbusiness",
        leadsource="Partner Referral",
    )
    row = one(hubspot.normalize_deal(record, ctx()), "deals")
    assert row["stage_id"] == rid("deal_stages", "default:closedwon")
    assert (row["stage_name"], row["is_closed"], row["is_won"]) == ("Closed Won", True, True)
    assert row["probability"] == Decimal("0.95")
    assert row["amount"] == Decimal("125000.50") and row["currency"] == "EUR"
    assert row["close_date"] == date(2026, 3, 31)
    assert row["owner_id"] == rid("owners", "52550101")
    assert row["forecast_category"] == "Best Case"
    assert row["deal_type"] == "Existing Business"
    assert row["lead_source"] == "Partner Referral"


def test_deal_looks_up_the_bare_stage_id_when_the_pipeline_key_is_unknown() -> None:
    row = one(hubspot.normalize_deal(with_props(DEAL, pipeline=None), ctx()), "deals")
    assert row["stage_id"] == rid("deal_stages", "default:appointmentscheduled")
    assert row["pipeline_id"] is None


def test_unknown_stage_keeps_the_deal_with_the_stage_it_will_have() -> None:
    record = with_props(DEAL, pipeline="81472210", dealstage="81472299")
    row = one(hubspot.normalize_deal(record, ctx()), "deals")
    assert row["stage_id"] == rid("deal_stages", "81472210:81472299")
    assert row["stage_name"] == "81472299"
    assert (row["is_closed"], row["is_won"], row["probability"]) == (None, None, None)
    assert row["pipeline_id"] == rid("pipelines", "81472210")
    assert row["amount"] == Decimal("5000.00")


def test_unknown_stage_uses_the_deals_own_closed_flags_when_sent() -> None:
    record = with_props(DEAL, dealstage="mystery", hs_is_closed="true", hs_is_closed_won="false")
    row = one(hubspot.normalize_deal(record, ctx()), "deals")
    assert (row["is_closed"], row["is_won"]) == (True, False)


def test_archived_deal_is_deleted_at_its_archive_time() -> None:
    record = {**DEAL, "archived": True, "archivedAt": "2026-03-01T08:00:00.000Z"}
    row = one(hubspot.normalize_deal(record, ctx()), "deals")
    assert row["deleted_at"] == datetime(2026, 3, 1, 8, tzinfo=UTC)


def test_epoch_millisecond_and_offset_times_become_utc() -> None:
    record = with_props(
        DEAL, closedate="1774915200000", hs_lastmodifieddate="2026-02-26T14:45:43.181+01:00"
    )
    row = one(hubspot.normalize_deal(record, ctx()), "deals")
    assert row["close_date"] == date(2026, 3, 31)
    assert row["updated_at"] == datetime(2026, 2, 26, 13, 45, 43, 181000, tzinfo=UTC)
    assert row["updated_at"].tzinfo is UTC


def test_amount_and_probability_fit_their_numeric_columns() -> None:
    record = with_props(DEAL, amount="1234.565", hs_deal_stage_probability="0.333333")
    row = one(hubspot.normalize_deal(record, ctx()), "deals")
    assert row["amount"] == Decimal("1234.56")  # half-even to cents
    assert row["probability"] == Decimal("0.3333")


# --- owners, companies, contacts ---------------------------------------------------------------


def test_owner() -> None:
    row = one(hubspot.normalize_owner(OWNER, ctx()), "owners")
    assert row == {
        "id": rid("owners", "52550101"),
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": "52550101",
        "email": "dana.reyes@northwind.io",
        "first_name": "Dana",
        "last_name": "Reyes",
        "full_name": "Dana Reyes",
        "is_active": True,
        "created_at": datetime(2024, 3, 1, 9, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 10, 17, 30, 0, 250000, tzinfo=UTC),
        "deleted_at": None,
        "raw": OWNER,
    }


def test_archived_owner_is_inactive_but_not_deleted() -> None:
    row = one(hubspot.normalize_owner({**OWNER, "archived": True}, ctx()), "owners")
    assert (row["is_active"], row["deleted_at"]) == (False, None)


def test_company() -> None:
    row = one(hubspot.normalize_company(COMPANY, ctx()), "accounts")
    assert row == {
        "id": rid("accounts", "9001"),
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": "9001",
        "name": "Acme Corp",
        "domain": "acme.com",
        "industry": "COMPUTER_SOFTWARE",
        "account_type": "CUSTOMER",
        "website": "https://www.acme.com/about",
        "employee_count": 250,
        "annual_revenue": Decimal("46250000.00"),
        "city": "Austin",
        "country": "United States",
        "owner_id": rid("owners", "52550101"),
        "created_at": datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
        "updated_at": datetime(2026, 2, 1, tzinfo=UTC),
        "deleted_at": None,
        "raw": COMPANY,
    }


@pytest.mark.parametrize(
    ("domain", "website", "expected"),
    [
        ("acme.com", None, "acme.com"),
        ("www.ACME.com", None, "acme.com"),
        (None, "https://www.acme.co.uk/en/home?x=1", "acme.co.uk"),
        ("", "http://acme.io:8080", "acme.io"),
        (None, None, None),
    ],
)
def test_company_domain(domain: str | None, website: str | None, expected: str | None) -> None:
    record = with_props(COMPANY, domain=domain, website=website)
    assert one(hubspot.normalize_company(record, ctx()), "accounts")["domain"] == expected


def test_archived_company_is_deleted() -> None:
    record = {**COMPANY, "archived": True, "archivedAt": "2026-02-02T00:00:00.000Z"}
    row = one(hubspot.normalize_company(record, ctx()), "accounts")
    assert row["deleted_at"] == datetime(2026, 2, 2, tzinfo=UTC)


def test_contact_takes_its_account_from_the_association_first() -> None:
    row = one(hubspot.normalize_contact(CONTACT, ctx()), "contacts")
    assert row == {
        "id": rid("contacts", "51200000001"),
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": "51200000001",
        "email": "lee.chen@acme.com",
        "first_name": "Lee",
        "last_name": "Chen",
        "full_name": "Lee Chen",
        "title": "VP Sales",
        "phone": "+1 555-0100-0001",
        "account_id": rid("accounts", "9001"),
        "owner_id": rid("owners", "52550101"),
        "created_at": datetime(2025, 4, 1, 8, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 15, 12, tzinfo=UTC),
        "deleted_at": None,
        "raw": CONTACT,
    }


def test_contact_without_association_uses_associatedcompanyid() -> None:
    record = {k: v for k, v in CONTACT.items() if k != "associations"}
    row = one(hubspot.normalize_contact(record, ctx()), "contacts")
    assert row["account_id"] == rid("accounts", "9002")


# --- engagements -------------------------------------------------------------------------------


def test_meeting_becomes_an_activity_and_its_participants() -> None:
    rows = hubspot.normalize_meeting(MEETING, ctx())
    activity = one(rows, "activities")
    activity_id = rid("activities", "meeting:30110000003")
    assert activity == {
        "id": activity_id,
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": "meeting:30110000003",
        "activity_type": "meeting",
        "subject": "Product demo - Acme Corp",
        "body": "Walked through the roadmap.",
        "occurred_at": datetime(2026, 2, 20, 16, tzinfo=UTC),
        "ended_at": datetime(2026, 2, 20, 16, 45, tzinfo=UTC),
        "is_all_day": None,
        "duration_seconds": 2700,
        "direction": None,
        "status": "completed",
        "owner_id": rid("owners", "52550101"),
        "deal_id": rid("deals", "480202228957"),
        "account_id": rid("accounts", "9001"),
        "contact_id": rid("contacts", "51200000001"),
        "channel": None,
        "thread_id": None,
        "created_at": datetime(2026, 2, 18, 10, tzinfo=UTC),
        "updated_at": datetime(2026, 2, 20, 17, tzinfo=UTC),
        "deleted_at": None,
        "raw": MEETING,
    }
    participants = rows["activity_participants"]
    assert [p["source_id"] for p in participants] == [
        "meeting:30110000003:contact:51200000001",
        "meeting:30110000003:contact:51200000002",
        "meeting:30110000003:owner:52550101",
    ]
    assert [p["id"] for p in participants] == [
        rid("activity_participants", p["source_id"]) for p in participants
    ]
    assert {p["activity_id"] for p in participants} == {activity_id}
    assert [(p["role"], p["is_internal"]) for p in participants] == [
        ("attendee", False),
        ("attendee", False),
        ("owner", True),
    ]
    assert [p["contact_id"] for p in participants] == [
        rid("contacts", "51200000001"),
        rid("contacts", "51200000002"),
        None,
    ]
    assert [p["owner_id"] for p in participants] == [None, None, rid("owners", "52550101")]
    assert {p["updated_at"] for p in participants} == {activity["updated_at"]}


def test_call_with_epoch_timestamp_duration_and_direction() -> None:
    rows = hubspot.normalize_call(CALL, ctx())
    activity = one(rows, "activities")
    assert activity["source_id"] == "call:30110000001"
    assert activity["occurred_at"] == datetime(2026, 2, 20, 16, tzinfo=UTC)
    assert activity["duration_seconds"] == 125  # 125,400 ms
    assert (activity["direction"], activity["status"]) == ("inbound", "completed")
    assert (activity["subject"], activity["body"]) == ("Intro call", "Left a voicemail.")
    assert (activity["owner_id"], activity["deal_id"], activity["account_id"]) == (None,) * 3
    # no owner: the contact is the only participant
    [participant] = rows["activity_participants"]
    assert participant["source_id"] == "call:30110000001:contact:51200000001"
    assert participant["role"] == "participant"


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("INCOMING_EMAIL", "inbound"), ("EMAIL", "outbound"), ("FORWARDED_EMAIL", "outbound")],
)
def test_email_direction(direction: str, expected: str) -> None:
    record = {
        "id": "30110000005",
        "properties": {
            "hs_timestamp": "2026-02-21T09:00:00.000Z",
            "hs_email_subject": "Pricing",
            "hs_email_text": "See attached.",
            "hs_email_direction": direction,
            "hs_email_status": "SENT",
        },
        "createdAt": "2026-02-21T09:00:00.000Z",
        "updatedAt": "2026-02-21T09:00:00.000Z",
        "archived": False,
    }
    activity = one(hubspot.normalize_email(record, ctx()), "activities")
    assert (activity["activity_type"], activity["direction"]) == ("email", expected)
    assert (activity["subject"], activity["body"], activity["status"]) == (
        "Pricing",
        "See attached.",
        "sent",
    )


def test_note_and_task() -> None:
    note = {
        "id": "30110000004",
        "properties": {"hs_timestamp": "2026-02-22T10:00:00.000Z", "hs_note_body": "<p>Hi</p>"},
        "createdAt": "2026-02-22T10:00:00.000Z",
        "updatedAt": "2026-02-22T10:00:00.000Z",
        "archived": False,
    }
    task = {
        "id": "30110000006",
        "properties": {
            "hs_timestamp": "2026-03-01T00:00:00.000Z",
            "hs_task_subject": "Send proposal",
            "hs_task_body": "Include the security annex.",
            "hs_task_status": "NOT_STARTED",
            "hubspot_owner_id": "52550101",
        },
        "createdAt": "2026-02-22T10:00:00.000Z",
        "updatedAt": "2026-02-22T10:00:00.000Z",
        "archived": True,
        "archivedAt": "2026-02-23T00:00:00.000Z",
    }
    note_row = one(hubspot.normalize_note(note, ctx()), "activities")
    assert (note_row["activity_type"], note_row["subject"], note_row["body"]) == (
        "note",
        None,
        "<p>Hi</p>",
    )
    rows = hubspot.normalize_task(task, ctx())
    task_row = one(rows, "activities")
    assert (task_row["activity_type"], task_row["subject"], task_row["status"]) == (
        "task",
        "Send proposal",
        "not_started",
    )
    assert task_row["deleted_at"] == datetime(2026, 2, 23, tzinfo=UTC)
    [owner] = rows["activity_participants"]
    assert owner["deleted_at"] == task_row["deleted_at"] and owner["role"] == "owner"


def test_engagements_of_different_types_with_one_id_do_not_collide() -> None:
    same = {"id": "42", "properties": {}, "archived": False}
    ids = {
        one(hubspot.NORMALIZERS[stream](same, ctx()), "activities")["id"] for stream in ENGAGEMENTS
    }
    assert len(ids) == len(ENGAGEMENTS)


def test_duplicate_associations_give_one_participant() -> None:
    labelled = {"id": "51200000001", "type": "call_to_contact"}
    unlabelled = {"id": "51200000001", "type": "call_to_contact_unlabeled"}
    record = {**CALL, "associations": {"contacts": {"results": [labelled, unlabelled]}}}
    assert len(hubspot.normalize_call(record, ctx())["activity_participants"]) == 1


# --- malformed records -------------------------------------------------------------------------


def test_malformed_deals_are_quarantined_with_the_reason_and_the_rest_comes_through() -> None:
    other = {**with_props(DEAL, dealname="Second"), "id": "480202228958"}
    page: list[Any] = [
        DEAL,
        {**with_props(DEAL, amount="12,5O0"), "id": "b1"},
        {**with_props(DEAL, closedate="next tuesday"), "id": "b2"},
        {**DEAL, "id": None},
        {**DEAL, "id": "b4", "properties": "amount=5"},
        {**DEAL, "id": "b5", "associations": {"companies": {"results": [{"type": "x"}]}}},
        {**with_props(DEAL, hs_deal_stage_probability="75"), "id": "b6"},
        {**with_props(DEAL, amount="NaN"), "id": "b7"},
        {**with_props(DEAL, hs_lastmodifieddate="2026-02-30T00:00:00Z"), "id": "b8"},
        ["not", "an", "object"],
        other,
    ]
    result = normalize_page("deals", page, hubspot.normalize_deal, ctx())
    assert [(q.source_id, q.reason) for q in result.quarantined] == [
        ("b1", "amount is not a number: '12,5O0'"),
        ("b2", "closedate is not a date-time: 'next tuesday'"),
        (None, "missing id"),
        ("b4", "properties is not an object but str"),
        ("b5", "associations.companies.results has an entry without id"),
        ("b6", "hs_deal_stage_probability is not a probability between 0 and 1: '75'"),
        ("b7", "amount is not a finite number: 'NaN'"),
        ("b8", "hs_lastmodifieddate is not a date-time: '2026-02-30T00:00:00Z'"),
        (None, "record is not a JSON object but list"),
    ]
    assert result.quarantined[0].raw is page[1]
    assert [row["name"] for row in result.rows["deals"]] == ["Test Deal", "Second"]


def test_malformed_engagements_are_quarantined_with_the_reason() -> None:
    meetings = [
        MEETING,
        {**with_props(MEETING, hs_timestamp="31/02/2025"), "id": "m1"},
        {**with_props(MEETING, hs_meeting_end_time="yesterday"), "id": "m2"},
    ]
    result = normalize_page("meetings", meetings, hubspot.normalize_meeting, ctx())
    assert [(q.source_id, q.reason) for q in result.quarantined] == [
        ("m1", "hs_timestamp is not a date-time: '31/02/2025'"),
        ("m2", "hs_meeting_end_time is not a date-time: 'yesterday'"),
    ]
    assert len(result.rows["activities"]) == 1
    assert len(result.rows["activity_participants"]) == 3
    calls = [{**with_props(CALL, hs_call_duration="two minutes"), "id": "c1"}, CALL]
    result = normalize_page("calls", calls, hubspot.normalize_call, ctx())
    assert [(q.source_id, q.reason) for q in result.quarantined] == [
        ("c1", "hs_call_duration is not a number: 'two minutes'"),
    ]
    assert [row["source_id"] for row in result.rows["activities"]] == ["call:30110000001"]


def test_malformed_pipeline_stage_rejects_the_pipeline() -> None:
    bad = {**PIPELINE, "stages": [{"label": "No id", "metadata": {}}]}
    worse = {**PIPELINE, "id": "p2", "stages": [{"id": "s", "metadata": {"probability": "high"}}]}
    result = normalize_page("pipelines", [bad, worse], hubspot.normalize_pipeline, ctx(False))
    assert [q.reason for q in result.quarantined] == [
        "stages[0] missing id",
        "stages[0].metadata.probability is not a number: 'high'",
    ]


# --- every row fits the schema -----------------------------------------------------------------


def _all_literal_rows() -> Rows:
    c = ctx()
    out: Rows = {}
    for fn, record in [
        (hubspot.normalize_owner, OWNER),
        (hubspot.normalize_company, COMPANY),
        (hubspot.normalize_contact, CONTACT),
        (hubspot.normalize_pipeline, PIPELINE),
        (hubspot.normalize_deal, DEAL),
        (hubspot.normalize_deal, with_props(DEAL, dealstage="unknown")),
        (hubspot.normalize_meeting, MEETING),
        (hubspot.normalize_call, CALL),
    ]:
        for table, rows in fn(record, c).items():
            out.setdefault(table, []).extend(rows)
    return out


def test_rows_carry_exactly_the_columns_of_their_table() -> None:
    for table, rows in _all_literal_rows().items():
        columns = {c.name for c in metadata.tables[table].columns} - {PENDING_COLUMN}
        for row in rows:
            assert set(row) == columns, (table, set(row) ^ columns)


def test_normalizers_cover_every_stream() -> None:
    assert set(hubspot.NORMALIZERS) == {
        "owners",
        "companies",
        "contacts",
        "pipelines",
        "deals",
        *ENGAGEMENTS,
    }


# --- the sandbox's real pages ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages(sandbox: SandboxServer) -> dict[str, list[dict[str, Any]]]:
    return {stream: hubspot_records(sandbox, stream) for stream in hubspot.NORMALIZERS}


@pytest.fixture(scope="module")
def normalized(pages: dict[str, list[dict[str, Any]]]) -> dict[str, Rows]:
    base = NormalizeContext(ORG, "hubspot")
    c = NormalizeContext(ORG, "hubspot", stages=hubspot.stage_map(pages["pipelines"], base))
    out: dict[str, Rows] = {}
    for stream, records in pages.items():
        result = normalize_page(stream, records, hubspot.NORMALIZERS[stream], c)
        assert result.quarantined == [], (stream, result.quarantined[:3])
        out[stream] = result.rows
    return out


def test_sandbox_pages_normalize_completely(
    pages: dict[str, list[dict[str, Any]]], normalized: dict[str, Rows]
) -> None:
    assert len(normalized["deals"]["deals"]) == len(pages["deals"]) > 50
    assert len(normalized["companies"]["accounts"]) == len(pages["companies"]) > 20
    for stream in ENGAGEMENTS:
        assert len(normalized[stream]["activities"]) == len(pages[stream]) > 5, stream
        assert len(normalized[stream]["activity_participants"]) >= len(pages[stream])


def test_sandbox_links_point_at_rows_that_exist(normalized: dict[str, Rows]) -> None:
    ids: dict[str, set[uuid.UUID]] = {}
    for stream_rows in normalized.values():
        for table, rows in stream_rows.items():
            ids.setdefault(table, set()).update(row["id"] for row in rows)
    for deal in normalized["deals"]["deals"]:
        assert deal["stage_id"] in ids["deal_stages"]
        assert deal["pipeline_id"] in ids["pipelines"]
        assert deal["account_id"] in ids["accounts"]
        assert deal["owner_id"] in ids["owners"]
        assert deal["stage_name"] and deal["is_closed"] is not None
    for contact in normalized["contacts"]["contacts"]:
        assert contact["account_id"] in ids["accounts"]
    for stream in ENGAGEMENTS:
        for activity in normalized[stream]["activities"]:
            assert activity["owner_id"] in ids["owners"]
            assert activity["account_id"] in ids["accounts"]
            assert activity["occurred_at"] is not None
        for participant in normalized[stream]["activity_participants"]:
            assert participant["activity_id"] in ids["activities"]
            assert (participant["contact_id"] in ids["contacts"]) or (
                participant["owner_id"] in ids["owners"]
            )


def test_sandbox_deals_match_the_ground_truth(
    sandbox: SandboxServer, normalized: dict[str, Rows]
) -> None:
    company = sandbox.company
    for row in normalized["deals"]["deals"]:
        truth: Any = company.find("deals", row["source_id"])
        stage = company.stage(truth)
        account = company.hs_id("companies", company.accounts[truth.account])
        assert row["stage_name"] == stage.label
        assert (row["is_closed"], row["is_won"]) == (stage.is_closed, stage.is_won)
        assert row["probability"] == Decimal(str(stage.probability))
        cents = truth.amount_cents
        assert row["amount"] == (None if cents < 0 else Decimal(cents) / 100)
        assert row["close_date"] == date(1970, 1, 1) + timedelta(days=truth.close_day)
        assert row["account_id"] == rid("accounts", str(account))


def test_sandbox_malformed_records_are_quarantined_like_the_ground_truth() -> None:
    with SandboxServer(scale=0.02, seed=11, freeze_gc=False) as sb:
        sb.faults.hubspot.malformed_rate = 0.15
        truth = sb.malformed("hubspot")
        pages = {stream: hubspot_records(sb, stream) for stream in ("deals", "calls", "contacts")}
        pipelines = hubspot_records(sb, "pipelines")
    c = NormalizeContext(ORG, "hubspot")
    c = NormalizeContext(ORG, "hubspot", stages=hubspot.stage_map(pipelines, c))
    reasons = {
        "bad_amount": "amount is not a number: ",
        "bad_date": "is not a date-time: ",
        "missing_id": "missing id",
    }
    for stream, records in pages.items():
        result = normalize_page(stream, records, hubspot.NORMALIZERS[stream], c)
        expected = truth.get(stream, {})
        rejectable = {i: k for i, k in expected.items() if k in reasons}
        assert len(result.quarantined) == len(rejectable), stream
        for q in result.quarantined:
            if q.source_id is None:
                assert q.reason == "missing id"
            else:
                assert reasons[rejectable[q.source_id]] in q.reason, (q.source_id, q.reason)
        # A dangling association is no malformation a normalizer can see: the row stays.
        table = {"deals": "deals", "calls": "activities", "contacts": "contacts"}[stream]
        kept = {row["source_id"].rpartition(":")[2] for row in result.rows.get(table, [])}
        dangling = {i for i, k in expected.items() if k == "dangling_association"}
        assert dangling <= kept
        assert len(kept) == len(records) - len(rejectable)


def test_sandbox_rows_upsert_into_the_store(db: Database, normalized: dict[str, Rows]) -> None:
    written: dict[str, int] = {}
    with db.begin() as conn:
        for rows in normalized.values():
            for table, table_rows in rows.items():
                result = upsert(conn, table, table_rows)
                written[table] = written.get(table, 0) + result.written
    assert written["deals"] == len(normalized["deals"]["deals"])
    assert written["deal_stages"] == len(normalized["pipelines"]["deal_stages"])
    with db.begin() as conn:  # the same rows again change nothing
        again = upsert(conn, "deals", normalized["deals"]["deals"])
    assert again.written == 0


def test_sandbox_archived_records_are_deleted_at_their_archive_time() -> None:
    with SandboxServer(scale=0.02, seed=11, freeze_gc=False) as sb:
        changes = sb.mutate(modified_pct=0.0, archived_pct=20, object_types=("deals", "calls"))
        deals = hubspot_records(sb, "deals", archived=True)
        calls = hubspot_records(sb, "calls", archived=True)
    assert {d["id"] for d in deals} == set(changes.archived["deals"])
    result = normalize_page("deals", deals, hubspot.normalize_deal, ctx())
    assert result.quarantined == []
    for record, row in zip(deals, result.rows["deals"], strict=True):
        assert row["deleted_at"] == at(record["archivedAt"])
    rows = hubspot.normalize_call(calls[0], ctx())
    assert one(rows, "activities")["deleted_at"] == at(calls[0]["archivedAt"])
    assert {p["deleted_at"] for p in rows["activity_participants"]} == {at(calls[0]["archivedAt"])}


def test_a_columnar_page_is_the_records_rows_as_tuples(
    pages: dict[str, list[dict[str, Any]]], normalized: dict[str, Rows]
) -> None:
    """What the sync keeps of a page (tuples, ``raw`` as its JSON text, child ids left to the
    store) is the same rows as normalizing record by record; a bad record among them is
    quarantined with its reason and leaves no row of any table behind."""
    base = NormalizeContext(ORG, "hubspot")
    c = NormalizeContext(ORG, "hubspot", stages=hubspot.stage_map(pages["pipelines"], base))
    for stream in ("companies", "contacts", "deals"):
        bad = with_props(pages[stream][0], createdate="not a time")
        bad["id"] = "bad-1"
        records = [*pages[stream], bad]
        page = normalize_page(stream, records, hubspot.NORMALIZERS[stream], c, raw=_dump_json)
        assert page.rows == {}
        assert [(q.source_id, q.reason) for q in page.quarantined] == [
            ("bad-1", "createdate is not a date-time: 'not a time'")
        ]
        for table, rows in normalized[stream].items():
            got = page.tuples[table].dicts()
            for row in got:
                row.setdefault("id", c.id_for(table, row["source_id"]))
            expected = [{**row, "raw": _dump_json(row["raw"])} for row in rows]
            assert got == expected, (stream, table)  # and so nothing of the bad record


def test_an_engagement_page_is_the_records_rows_as_tuples(
    pages: dict[str, list[dict[str, Any]]], normalized: dict[str, Rows]
) -> None:
    """Engagements are columnar too: a page the sync keeps (tuples, ``raw`` as its JSON text,
    participants' ids left to the store) is the rows of normalizing record by record; a record
    with several faults is quarantined for the first one the dict rows named, and leaves no
    activity or participant behind."""
    c = ctx()
    for stream in ENGAGEMENTS:
        template = pages[stream][0]
        bad = with_props(template, hs_timestamp="31/02/2025", hs_createdate="not a time")
        bad.update(id="bad-1", associations={"companies": {"results": "no list"}})
        late = with_props(template, hs_createdate="not a time")  # read after the associations
        late.update(id="bad-2", associations={"companies": {"results": "no list"}})
        records = [*pages[stream], bad, late]
        page = normalize_page(stream, records, hubspot.NORMALIZERS[stream], c, raw=_dump_json)
        assert page.rows == {}
        assert [(q.source_id, q.reason) for q in page.quarantined] == [
            ("bad-1", "hs_timestamp is not a date-time: '31/02/2025'"),
            ("bad-2", "associations.companies.results is not a list"),
        ]
        assert (
            set(page.tuples) == set(normalized[stream]) == {"activities", "activity_participants"}
        )
        for table, rows in normalized[stream].items():
            got = page.tuples[table].dicts()
            for row in got:
                row.setdefault("id", c.id_for(table, row["source_id"]))
            raw = _dump_json
            expected = [
                {**row, "raw": None if row["raw"] is None else raw(row["raw"])} for row in rows
            ]
            assert got == expected, (stream, table)
