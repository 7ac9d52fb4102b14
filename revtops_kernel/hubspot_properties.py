"""The HubSpot properties each CRM object is read with: declared once, for the connector (what
it asks for) and the normalizer (what it may read). HubSpot returns only the properties a
request names (a few defaults otherwise) and silently ignores names it does not know, so a
name the normalizer reads but the connector never asks for simply never arrives:
``tests/normalize/test_fields_requested.py`` checks every normalizer read against this list.
(dlt's HubSpot source keeps its ``settings.py`` the same way.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectProperties:
    properties: tuple[str, ...]
    associations: tuple[str, ...] = ()
    # Properties read with every past value (propertiesWithHistory).
    history: tuple[str, ...] = ()
    modified_property: str = "hs_lastmodifieddate"


def _props(names: str) -> tuple[str, ...]:
    return tuple(names.split())


_ENGAGEMENT_LINKS = ("contacts", "companies", "deals")
_ENGAGEMENT_COMMON = "hs_timestamp hubspot_owner_id hs_createdate hs_lastmodifieddate "

OBJECTS: dict[str, ObjectProperties] = {
    "companies": ObjectProperties(
        _props(
            "name domain industry type website numberofemployees annualrevenue city country "
            "hubspot_owner_id createdate hs_lastmodifieddate"
        )
    ),
    "contacts": ObjectProperties(
        _props(
            "firstname lastname email jobtitle phone mobilephone associatedcompanyid "
            "hubspot_owner_id lifecyclestage createdate lastmodifieddate"
        ),
        ("companies",),
        modified_property="lastmodifieddate",
    ),
    "deals": ObjectProperties(
        _props(
            "dealname amount deal_currency_code dealstage pipeline closedate "
            "hubspot_owner_id dealtype hs_deal_stage_probability hs_forecast_category "
            "hs_manual_forecast_category hs_is_closed hs_is_closed_won leadsource "
            "hs_analytics_source createdate hs_lastmodifieddate"
        ),
        ("companies", "contacts"),
        history=("dealstage", "closedate", "amount"),
    ),
    "meetings": ObjectProperties(
        _props(
            _ENGAGEMENT_COMMON + "hs_meeting_title hs_meeting_body hs_internal_meeting_notes "
            "hs_meeting_start_time hs_meeting_end_time hs_meeting_outcome hs_meeting_location"
        ),
        _ENGAGEMENT_LINKS,
    ),
    "calls": ObjectProperties(
        _props(
            _ENGAGEMENT_COMMON + "hs_call_title hs_call_body hs_call_duration "
            "hs_call_direction hs_call_disposition hs_call_status"
        ),
        _ENGAGEMENT_LINKS,
    ),
    "emails": ObjectProperties(
        _props(
            _ENGAGEMENT_COMMON + "hs_email_subject hs_email_text hs_email_html "
            "hs_email_direction hs_email_status hs_email_from_email hs_email_to_email"
        ),
        _ENGAGEMENT_LINKS,
    ),
    "notes": ObjectProperties(_props(_ENGAGEMENT_COMMON + "hs_note_body"), _ENGAGEMENT_LINKS),
    "tasks": ObjectProperties(
        _props(
            _ENGAGEMENT_COMMON + "hs_task_subject hs_task_body hs_task_status hs_task_priority "
            "hs_task_type"
        ),
        _ENGAGEMENT_LINKS,
    ),
}
