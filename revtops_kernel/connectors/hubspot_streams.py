"""HubSpot CRM v3: the streams as data, and the API's constants (limits, properties)."""

from __future__ import annotations

from dataclasses import dataclass

from revtops_kernel.hubspot_properties import OBJECTS

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


OBJECT_STREAMS: tuple[ObjectStream, ...] = tuple(
    ObjectStream(name, spec.properties, spec.associations, spec.modified_property, spec.history)
    for name, spec in OBJECTS.items()
)  # the properties are declared once, for the normalizer too (hubspot_properties)

# Read in this order: owners and pipelines first (deals need the stage map), then objects.
STREAMS: tuple[str, ...] = ("owners", "pipelines", *(s.name for s in OBJECT_STREAMS))
OBJECT_STREAM_BY_NAME = {s.name: s for s in OBJECT_STREAMS}
