"""Stage history, deal contacts, stage_entered_at and retired stages, from both CRMs.

Literal wire shapes first (HubSpot's ``propertiesWithHistory``, newest first; Salesforce's
OpportunityHistory and OpportunityContactRole query records), then the sandbox's real pages
against its ground truth.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from helpers import row_ids_any_system
from sandbox_pages import hubspot_records, salesforce_records

from revtops_kernel.normalize import hubspot, salesforce
from revtops_kernel.normalize.base import NormalizeContext, normalize_page
from revtops_kernel.store.schema import PENDING_COLUMN, metadata
from revtops_sandbox.company import HS_ID_BASE, LIVE, PIPELINES, RETIRED_STAGES
from revtops_sandbox.deal_history import snapshots
from revtops_sandbox.server import SandboxServer

ORG = "org_test"


rid = row_ids_any_system(ORG)


def hs_ctx() -> NormalizeContext:
    base = NormalizeContext(ORG, "hubspot")
    return NormalizeContext(ORG, "hubspot", stages=hubspot.stage_map([PIPELINE], base))


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
            "label": "Contract Sent",
            "displayOrder": 1,
            "metadata": {"isClosed": "false", "probability": "0.9"},
            "id": "contractsent",
            "archived": False,
        },
        {
            "label": "Legal Review",
            "displayOrder": 2,
            "metadata": {"isClosed": "false", "probability": "0.7"},
            "id": "1043221",
            "archived": True,
            "archivedAt": "2025-01-01T00:00:00.000Z",
        },
    ],
}

# A deals list record asked for with propertiesWithHistory=dealstage and
# associations=companies,contacts: versions come newest first; the stage was set to its own
# value once (10:00 on the 3rd), which is no stage change.
DEAL: dict[str, Any] = {
    "id": "480202228957",
    "properties": {
        "dealname": "Test Deal",
        "dealstage": "contractsent",
        "pipeline": "default",
        "createdate": "2026-02-01T09:00:00.000Z",
        "hs_lastmodifieddate": "2026-02-05T12:00:00.000Z",
    },
    "propertiesWithHistory": {
        "dealstage": [
            {
                "value": "contractsent",
                "timestamp": "2026-02-04T08:30:00.000Z",
                "sourceType": "CRM_UI",
                "sourceId": "userId:9586101",
                "updatedByUserId": 9586101,
            },
            {
                "value": "appointmentscheduled",
                "timestamp": "2026-02-03T10:00:00.000Z",
                "sourceType": "WORKFLOW",
            },
            {
                "value": "appointmentscheduled",
                "timestamp": "2026-02-01T09:00:00.000Z",
                "sourceType": "CRM_UI",
            },
        ]
    },
    "createdAt": "2026-02-01T09:00:00.000Z",
    "updatedAt": "2026-02-05T12:00:00.000Z",
    "archived": False,
    "associations": {
        "companies": {"results": [{"id": "9001", "type": "deal_to_company"}]},
        "contacts": {
            "results": [
                {"id": "51200000001", "type": "deal_to_contact"},
                {"id": "51200000002", "type": "deal_to_contact"},
                {"id": "51200000001", "type": "deal_to_contact"},  # labelled + unlabelled
            ]
        },
    },
}


def test_hubspot_stage_history_becomes_one_row_per_stage_entered_oldest_first() -> None:
    rows = hubspot.normalize_deal(DEAL, hs_ctx())
    deal = rows["deals"][0]
    history = rows["deal_stage_history"]
    assert [(h["stage_name"], h["entered_at"]) for h in history] == [
        ("Appointment Scheduled", datetime(2026, 2, 1, 9, tzinfo=UTC)),
        ("Contract Sent", datetime(2026, 2, 4, 8, 30, tzinfo=UTC)),
    ]
    first = history[0]
    source_id = "480202228957:appointmentscheduled:1769936400000"
    assert first == {
        "id": rid("hubspot", "deal_stage_history", source_id),
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": source_id,
        "deal_id": deal["id"],
        "pipeline_id": rid("hubspot", "pipelines", "default"),
        "stage_id": rid("hubspot", "deal_stages", "default:appointmentscheduled"),
        "stage_name": "Appointment Scheduled",
        "entered_at": datetime(2026, 2, 1, 9, tzinfo=UTC),
        "amount": None,  # HubSpot keeps no amount at the time of a stage change
        "probability": Decimal("0.2"),
        "forecast_category": None,
        "close_date": None,
        "created_at": datetime(2026, 2, 1, 9, tzinfo=UTC),
        "updated_at": datetime(2026, 2, 1, 9, tzinfo=UTC),
        "deleted_at": None,
        "raw": None,
    }
    assert deal["stage_entered_at"] == datetime(2026, 2, 4, 8, 30, tzinfo=UTC)
    # Reading the deal again lands on the same rows: nothing duplicated across syncs.
    again = hubspot.normalize_deal(DEAL, hs_ctx())["deal_stage_history"]
    assert [h["id"] for h in again] == [h["id"] for h in history]


def test_hubspot_deal_contacts_are_its_associated_contacts_once_each() -> None:
    rows = hubspot.normalize_deal(DEAL, hs_ctx())
    deal = rows["deals"][0]
    links = rows["deal_contacts"]
    assert [link["contact_id"] for link in links] == [
        rid("hubspot", "contacts", "51200000001"),
        rid("hubspot", "contacts", "51200000002"),
    ]
    assert links[0] == {
        "id": rid("hubspot", "deal_contacts", "480202228957:51200000001"),
        "organization_id": ORG,
        "source_system": "hubspot",
        "source_id": "480202228957:51200000001",
        "deal_id": deal["id"],
        "contact_id": rid("hubspot", "contacts", "51200000001"),
        "role": None,
        "is_primary": None,
        "created_at": deal["created_at"],
        "updated_at": deal["updated_at"],  # what finds links a later version no longer lists
        "deleted_at": None,
        "raw": None,
    }


def test_hubspot_archived_deal_takes_its_history_and_links_with_it() -> None:
    archived = {**DEAL, "archived": True, "archivedAt": "2026-03-01T00:00:00.000Z"}
    rows = hubspot.normalize_deal(archived, hs_ctx())
    gone = datetime(2026, 3, 1, tzinfo=UTC)
    assert {r["deleted_at"] for r in rows["deal_stage_history"] + rows["deal_contacts"]} == {gone}


def test_hubspot_without_history_has_no_stage_time() -> None:
    """``hs_date_entered_{stage}`` is never requested (the connector asks for dealstage
    history instead), so the normalizer does not read it."""
    bare = {k: v for k, v in DEAL.items() if k != "propertiesWithHistory"}
    props = {**bare["properties"], "hs_date_entered_contractsent": "1770193800000"}
    rows = hubspot.normalize_deal({**bare, "properties": props}, hs_ctx())
    assert rows["deal_stage_history"] == rows["deal_field_history"] == []
    assert rows["deals"][0]["stage_entered_at"] is None


def test_hubspot_stage_of_another_pipeline_or_unknown_keeps_its_id() -> None:
    record = {
        **DEAL,
        "propertiesWithHistory": {
            "dealstage": [{"value": "9999", "timestamp": "2026-02-01T09:00:00.000Z"}]
        },
    }
    (row,) = hubspot.normalize_deal(record, hs_ctx())["deal_stage_history"]
    assert row["stage_id"] == rid("hubspot", "deal_stages", "default:9999")
    assert (row["stage_name"], row["probability"]) == ("9999", None)


def test_hubspot_stage_from_a_pipeline_the_deal_left_keeps_that_pipeline() -> None:
    moved = {**DEAL, "properties": {**DEAL["properties"], "pipeline": "81472210"}}
    first, last = hubspot.normalize_deal(moved, hs_ctx())["deal_stage_history"]
    assert first["stage_id"] == rid("hubspot", "deal_stages", "default:appointmentscheduled")
    assert first["pipeline_id"] == rid("hubspot", "pipelines", "default")
    assert last["stage_name"] == "Contract Sent"


def test_hubspot_malformed_history_is_quarantined_with_the_field() -> None:
    bad_time = {
        **DEAL,
        "propertiesWithHistory": {"dealstage": [{"value": "contractsent", "timestamp": "soon"}]},
    }
    not_a_list = {**DEAL, "propertiesWithHistory": {"dealstage": "contractsent"}}
    page = normalize_page("deals", [bad_time, not_a_list, DEAL], hubspot.normalize_deal, hs_ctx())
    reasons = [q.reason for q in page.quarantined]
    assert reasons[0].startswith("propertiesWithHistory.dealstage[0].timestamp")
    assert reasons[1] == "propertiesWithHistory.dealstage is not a list"
    assert len(page.rows["deals"]) == 1


def test_hubspot_archived_stage_is_inactive() -> None:
    stages = hubspot.normalize_pipeline(PIPELINE, NormalizeContext(ORG, "hubspot"))["deal_stages"]
    assert [(s["label"], s["is_active"]) for s in stages] == [
        ("Appointment Scheduled", True),
        ("Contract Sent", True),
        ("Legal Review", False),
    ]


# --- Salesforce ----------------------------------------------------------------------------

SF_STAGE: dict[str, Any] = {
    "Id": "01J5g0000000005EAA",
    "MasterLabel": "Proposal/Price Quote",
    "ApiName": "Proposal/Price Quote",
    "SortOrder": 6,
    "DefaultProbability": 75.0,
    "IsActive": False,
    "IsClosed": False,
    "IsWon": False,
    "ForecastCategoryName": "Best Case",
    "SystemModstamp": "2023-05-02T00:00:00.000+0000",
}
HISTORY: dict[str, Any] = {
    "attributes": {"type": "OpportunityHistory"},
    "Id": "0085g00000AbCdEAAZ",
    "IsDeleted": False,
    "OpportunityId": "006D000000IRFmaIAH",
    "StageName": "Proposal/Price Quote",
    "Amount": 125000.0,
    "Probability": 75.0,
    "ForecastCategory": "BestCase",
    "CloseDate": "2024-12-31",
    "CreatedDate": "2024-01-10T08:00:00.000+0000",
    "SystemModstamp": "2024-01-10T08:00:00.000+0000",
}
ROLE: dict[str, Any] = {
    "attributes": {"type": "OpportunityContactRole"},
    "Id": "00K5g00000XyZ12EAA",
    "IsDeleted": False,
    "OpportunityId": "006D000000IRFmaIAH",
    "ContactId": "003D000000QzLpVIAV",
    "Role": "Economic Buyer",
    "IsPrimary": True,
    "CreatedDate": "2024-01-02T08:00:00.000+0000",
    "LastModifiedDate": "2024-01-02T08:00:00.000+0000",
    "SystemModstamp": "2024-01-02T08:00:00.000+0000",
}


def sf_ctx() -> NormalizeContext:
    base = NormalizeContext(ORG, "salesforce")
    return NormalizeContext(ORG, "salesforce", stages=salesforce.stage_map([SF_STAGE], base))


def test_opportunity_history_becomes_a_stage_history_row() -> None:
    (row,) = salesforce.normalize_opportunity_history(HISTORY, sf_ctx())["deal_stage_history"]
    entered = datetime(2024, 1, 10, 8, tzinfo=UTC)
    assert row == {
        "id": rid("salesforce", "deal_stage_history", "0085g00000AbCdEAAZ"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "0085g00000AbCdEAAZ",
        "deal_id": rid("salesforce", "deals", "006D000000IRFmaIAH"),
        "pipeline_id": rid("salesforce", "pipelines", "default"),
        "stage_id": rid("salesforce", "deal_stages", "01J5g0000000005EAA"),
        "stage_name": "Proposal/Price Quote",
        "entered_at": entered,
        "amount": Decimal("125000.00"),
        "probability": Decimal("0.75"),
        "forecast_category": "Best Case",  # the label, as deals keep it
        "close_date": date(2024, 12, 31),
        "created_at": entered,
        "updated_at": entered,
        "deleted_at": None,
        "raw": HISTORY,
    }
    deleted = {**HISTORY, "IsDeleted": True, "SystemModstamp": "2024-02-01T00:00:00.000+0000"}
    (gone,) = salesforce.normalize_opportunity_history(deleted, sf_ctx())["deal_stage_history"]
    assert gone["deleted_at"] == datetime(2024, 2, 1, tzinfo=UTC)


def test_opportunity_contact_role_becomes_a_deal_contact() -> None:
    (row,) = salesforce.normalize_contact_role(ROLE, sf_ctx())["deal_contacts"]
    assert row == {
        "id": rid("salesforce", "deal_contacts", "00K5g00000XyZ12EAA"),
        "organization_id": ORG,
        "source_system": "salesforce",
        "source_id": "00K5g00000XyZ12EAA",
        "deal_id": rid("salesforce", "deals", "006D000000IRFmaIAH"),
        "contact_id": rid("salesforce", "contacts", "003D000000QzLpVIAV"),
        "role": "Economic Buyer",
        "is_primary": True,
        "created_at": datetime(2024, 1, 2, 8, tzinfo=UTC),
        "updated_at": datetime(2024, 1, 2, 8, tzinfo=UTC),
        "deleted_at": None,
        "raw": ROLE,
    }
    page = normalize_page(
        "OpportunityContactRole",
        [{**ROLE, "ContactId": None}],
        salesforce.normalize_contact_role,
        sf_ctx(),
        id_field="Id",
    )
    assert [q.reason for q in page.quarantined] == ["missing OpportunityId or ContactId"]


def test_opportunity_stage_entered_at_and_inactive_stage() -> None:
    opportunity = {
        "Id": "006D000000IRFmaIAH",
        "StageName": "Proposal/Price Quote",
        "CreatedDate": "2024-01-02T08:00:00.000+0000",
        "SystemModstamp": "2024-01-15T10:22:33.000+0000",
    }
    (deal,) = salesforce.normalize_opportunity(opportunity, sf_ctx())["deals"]
    assert deal["stage_entered_at"] == datetime(2024, 1, 2, 8, tzinfo=UTC)  # never changed
    moved = {**opportunity, "LastStageChangeDate": "2024-01-10T08:00:00.000+0000"}
    (deal,) = salesforce.normalize_opportunity(moved, sf_ctx())["deals"]
    assert deal["stage_entered_at"] == datetime(2024, 1, 10, 8, tzinfo=UTC)
    (stage,) = salesforce.normalize_opportunity_stage(SF_STAGE, sf_ctx())["deal_stages"]
    assert stage["is_active"] is False


def test_new_rows_carry_exactly_the_columns_of_their_tables() -> None:
    produced = [
        *hubspot.normalize_deal(DEAL, hs_ctx()).items(),
        *salesforce.normalize_opportunity_history(HISTORY, sf_ctx()).items(),
        *salesforce.normalize_contact_role(ROLE, sf_ctx()).items(),
    ]
    for table, rows in produced:
        # resolution_pending is the store's bookkeeping, set by upsert, never by a normalizer
        columns = {c.name for c in metadata.tables[table].columns} - {PENDING_COLUMN}
        for row in rows:
            assert set(row) == columns, (table, set(row) ^ columns)


# --- the sandbox's real pages against its ground truth -----------------------------------


def test_sandbox_hubspot_history_contacts_and_retired_stage(sandbox: SandboxServer) -> None:
    company = sandbox.company
    pipelines = hubspot_records(sandbox, "pipelines")
    base = NormalizeContext(ORG, "hubspot")
    c = NormalizeContext(ORG, "hubspot", stages=hubspot.stage_map(pipelines, base))
    page = normalize_page("deals", hubspot_records(sandbox, "deals"), hubspot.normalize_deal, c)
    assert page.quarantined == []
    history: dict[uuid.UUID, list[tuple[str, datetime]]] = {}
    for h in page.rows["deal_stage_history"]:
        history.setdefault(h["deal_id"], []).append((h["stage_name"], h["entered_at"]))
    links: dict[uuid.UUID, set[uuid.UUID]] = {}
    for link in page.rows["deal_contacts"]:
        links.setdefault(link["deal_id"], set()).add(link["contact_id"])
    deals = page.rows["deals"]
    assert len(deals) == company.counts()["deals"]
    for row in deals:
        truth: Any = company.find("deals", row["source_id"])
        stages = PIPELINES[truth.pipeline].stages
        expected = [
            (stages[truth.history[k]].label, _ms(truth.history[k + 1]))
            for k in range(0, len(truth.history), 2)
        ]
        assert history[row["id"]] == expected
        assert row["stage_entered_at"] == expected[-1][1]
        assert links.get(row["id"], set()) == {
            rid("hubspot", "contacts", str(HS_ID_BASE["contacts"] + i)) for i in truth.contacts
        }
    retired = {s["label"] for s in _stage_rows(pipelines) if s["is_active"] is False}
    assert retired == {s.label for stages in RETIRED_STAGES.values() for s in stages}


def test_sandbox_salesforce_history_and_contact_roles(sandbox: SandboxServer) -> None:
    company = sandbox.company
    stage_records = salesforce_records(sandbox, "OpportunityStage")
    base = NormalizeContext(ORG, "salesforce")
    c = NormalizeContext(ORG, "salesforce", stages=salesforce.stage_map(stage_records, base))
    history = normalize_page(
        "OpportunityHistory",
        salesforce_records(sandbox, "OpportunityHistory"),
        salesforce.normalize_opportunity_history,
        c,
        id_field="Id",
    )
    roles = normalize_page(
        "OpportunityContactRole",
        salesforce_records(sandbox, "OpportunityContactRole"),
        salesforce.normalize_contact_role,
        c,
        id_field="Id",
    )
    assert history.quarantined == roles.quarantined == []
    by_deal: dict[uuid.UUID, list[tuple[str, datetime]]] = {}
    for h in history.rows["deal_stage_history"]:
        assert h["stage_id"] is not None
        by_deal.setdefault(h["deal_id"], []).append((h["stage_name"], h["entered_at"]))
    contacts: dict[uuid.UUID, list[tuple[uuid.UUID, bool]]] = {}
    for link in roles.rows["deal_contacts"]:
        assert link["role"]
        contacts.setdefault(link["deal_id"], []).append((link["contact_id"], link["is_primary"]))
    for deal in (d for d in company.deals if d.state == LIVE):
        deal_id = rid("salesforce", "deals", company.sf_id("deals", deal))
        stages = PIPELINES[deal.pipeline].stages
        # A snapshot per stage entry and per amount or close-date change (repeating the stage)
        expected = [
            (stages[snap.stage].label, _ms(snap.ms - snap.ms % 1000)) for snap in snapshots(deal)
        ]
        assert sorted(by_deal[deal_id], key=lambda e: e[1]) == expected
        linked = sorted(contacts.get(deal_id, []), key=lambda e: not e[1])
        assert {cid for cid, _ in linked} == {
            rid("salesforce", "contacts", company.sf_id("contacts", company.contacts[i]))
            for i in deal.contacts
        }
        assert [primary for _, primary in linked].count(True) == (1 if deal.contacts else 0)


def _ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _stage_rows(pipelines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = NormalizeContext(ORG, "hubspot")
    return [s for p in pipelines for s in hubspot.normalize_pipeline(p, base)["deal_stages"]]
