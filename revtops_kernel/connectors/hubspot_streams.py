"""HubSpot CRM v3: the streams as data, and the API's constants (limits, properties)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE_URL = "https://api.hubapi.com"

LIST_PAGE_SIZE = 100  # the list endpoints' maximum
HISTORY_PAGE_SIZE = 50  # list pages and batch reads that ask for propertiesWithHistory
SEARCH_PAGE_SIZE = 200  # the search endpoint's maximum
SEARCH_RESULT_CAP = 10_000  # search answers 400 past this many results for one query
ASSOCIATION_BATCH_SIZE = 1_000  # ids per v4 batch association read

# Published limits: 190 requests per 10 s (private apps, Pro/Enterprise) and 5 search requests
# per second. Stay under both: other tools share the account's budget.
REQUESTS_PER_10_SECONDS = 170
SEARCHES_PER_SECOND = 4
# Share of the announced limit (X-HubSpot-RateLimit-Max) the client allows itself.
BUDGET_SHARE = 0.9

# Search results lag behind writes by a few seconds (indexing); a full listing's hand-off to
# search starts this far before the listing began, so nothing changed meanwhile is missed.
SEARCH_INDEX_LAG_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class ObjectStream:
    """A CRM object read through the list endpoint in full, then through search by change time."""

    name: str
    properties: tuple[str, ...]
    associations: tuple[str, ...]
    modified_property: str = "hs_lastmodifieddate"
    # Properties read with every past value (propertiesWithHistory): the list walk then takes
    # 50 records a page, and search results get theirs from a batch read.
    history: tuple[str, ...] = ()

    @property
    def object_type(self) -> str:
        return self.name

    @property
    def list_page_size(self) -> int:
        return HISTORY_PAGE_SIZE if self.history else LIST_PAGE_SIZE


_ENGAGEMENT_LINKS = ("contacts", "companies", "deals")


def _props(names: str) -> tuple[str, ...]:
    return tuple(names.split())


OBJECT_STREAMS: tuple[ObjectStream, ...] = (
    ObjectStream(
        "companies",
        _props(
            "name domain industry type website numberofemployees annualrevenue city country "
            "hubspot_owner_id createdate hs_lastmodifieddate"
        ),
        (),
    ),
    ObjectStream(
        "contacts",
        _props(
            "firstname lastname email jobtitle phone associatedcompanyid hubspot_owner_id "
            "lifecyclestage createdate lastmodifieddate"
        ),
        ("companies",),
        modified_property="lastmodifieddate",
    ),
    ObjectStream(
        "deals",
        _props(
            "dealname amount deal_currency_code dealstage pipeline closedate "
            "hubspot_owner_id dealtype hs_deal_stage_probability hs_forecast_category "
            "hs_is_closed hs_is_closed_won leadsource hs_analytics_source createdate "
            "hs_lastmodifieddate"
        ),
        ("companies", "contacts"),
        history=("dealstage", "closedate", "amount"),
    ),
    ObjectStream(
        "meetings",
        _props(
            "hs_timestamp hs_meeting_title hs_meeting_body hs_internal_meeting_notes "
            "hs_meeting_start_time hs_meeting_end_time hs_meeting_outcome "
            "hs_meeting_location hubspot_owner_id hs_createdate hs_lastmodifieddate"
        ),
        _ENGAGEMENT_LINKS,
    ),
    ObjectStream(
        "calls",
        _props(
            "hs_timestamp hs_call_title hs_call_body hs_call_duration hs_call_direction "
            "hs_call_disposition hs_call_status hubspot_owner_id hs_createdate "
            "hs_lastmodifieddate"
        ),
        _ENGAGEMENT_LINKS,
    ),
    ObjectStream(
        "emails",
        _props(
            "hs_timestamp hs_email_subject hs_email_text hs_email_direction hs_email_status "
            "hs_email_from_email hs_email_to_email hubspot_owner_id hs_createdate "
            "hs_lastmodifieddate"
        ),
        _ENGAGEMENT_LINKS,
    ),
    ObjectStream(
        "notes",
        _props("hs_timestamp hs_note_body hubspot_owner_id hs_createdate hs_lastmodifieddate"),
        _ENGAGEMENT_LINKS,
    ),
    ObjectStream(
        "tasks",
        _props(
            "hs_timestamp hs_task_subject hs_task_body hs_task_status hs_task_priority "
            "hs_task_type hubspot_owner_id hs_createdate hs_lastmodifieddate"
        ),
        _ENGAGEMENT_LINKS,
    ),
)

# Read in this order: owners and pipelines first (deals need the stage map), then objects.
STREAMS: tuple[str, ...] = ("owners", "pipelines", *(s.name for s in OBJECT_STREAMS))
OBJECT_STREAM_BY_NAME = {s.name: s for s in OBJECT_STREAMS}
