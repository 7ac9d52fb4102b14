"""Each provider's sync in one place: its connector, its streams' normalizers, its stage stream,
the field that identifies a record, and its clean-up once every stream is read.

``sync.run_sync`` reads a provider's ``ProviderSpec`` from here and knows no provider by name;
adding one is a ``ProviderInfo`` in ``providers.py`` and a spec here. A provider's modules load
when its spec is first asked for, so a HubSpot sync never imports the Slack connector.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from revtops_kernel.providers import Provider, ProviderInfo, provider_info
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import utcnow

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Connection

    from revtops_kernel.connectors.base import Connector
    from revtops_kernel.connectors.http import TokenSource
    from revtops_kernel.normalize.base import RecordNormalizer, StageInfo
    from revtops_kernel.settings import Settings

ConnectorFactory = Callable[["Settings", "TokenSource", "httpx.Client"], "Connector"]
# provider-specific clean-up after every stream, in one transaction; returns rows changed
AfterStreams = Callable[["Connection", str, "Connector"], int]


@dataclass(frozen=True)
class ProviderSpec:
    """How one provider's streams are read and become rows."""

    info: ProviderInfo
    connect: ConnectorFactory
    normalizers: Mapping[str, RecordNormalizer]  # stream -> normalizer
    id_field: str  # the raw record's id field
    stage_stream: str | None = None  # read first: deals are normalized with its stage map
    stage_map: Callable[[list[dict[str, Any]]], dict[str, StageInfo]] | None = None
    after_streams: AfterStreams | None = None
    # The table after_streams writes: its rows count toward that table's planner statistics
    # like a batch's (a Salesforce first load derives ~2.6 rows of field history per deal there)
    after_streams_table: str | None = None
    # What after_streams' count is in the run's summary: records the provider removed
    # ("deleted": orphaned events, unlinked contacts) or rows it derived ("written": Salesforce's
    # field history, 259k rows of a scale-10 first sync that read as "259,476 deleted").
    after_streams_counts: Literal["deleted", "written"] = "deleted"


def provider_spec(provider: str) -> ProviderSpec:
    """The spec of ``provider``; ``ValueError`` naming the providers for any other name."""
    return _spec(provider_info(provider).provider)


@functools.cache
def _spec(provider: Provider) -> ProviderSpec:
    return _BUILDERS[provider](provider_info(provider))


def _hubspot(info: ProviderInfo) -> ProviderSpec:
    from revtops_kernel.connectors.hubspot import HubSpotConnector
    from revtops_kernel.normalize import hubspot
    from revtops_kernel.store.deal_links import prune_removed_deal_contacts

    def connect(settings: Settings, tokens: TokenSource, http: httpx.Client) -> Connector:
        return HubSpotConnector.connect(settings.hubspot_base_url, tokens, http)

    return ProviderSpec(
        info,
        connect,
        hubspot.NORMALIZERS,
        "id",
        stage_stream="pipelines",
        stage_map=hubspot.stage_map,
        after_streams=prune_removed_deal_contacts,
        after_streams_table="deal_contacts",
    )


def _salesforce(info: ProviderInfo) -> ProviderSpec:
    from revtops_kernel.connectors.credentials import NangoToken
    from revtops_kernel.connectors.salesforce import SalesforceConnector
    from revtops_kernel.errors import SettingsError
    from revtops_kernel.normalize import salesforce
    from revtops_kernel.store.deal_field_history import derive_salesforce_field_history

    def connect(settings: Settings, tokens: TokenSource, http: httpx.Client) -> Connector:
        # A Nango connection names its own instance; settings name it for a static token.
        instance_url = settings.salesforce_instance_url
        if isinstance(tokens, NangoToken):
            instance_url = tokens.instance_url() or instance_url
        if not instance_url:
            raise SettingsError(
                "REVTOPS_SALESFORCE_INSTANCE_URL",
                "set it to your Salesforce instance, e.g. https://acme.my.salesforce.com",
            )
        return SalesforceConnector.connect(instance_url, tokens, http, settings=settings)

    return ProviderSpec(
        info,
        connect,
        salesforce.NORMALIZERS,
        "Id",
        stage_stream="OpportunityStage",
        stage_map=salesforce.stage_map,
        after_streams=derive_salesforce_field_history,
        after_streams_table="deal_field_history",
        after_streams_counts="written",
    )


def _slack(info: ProviderInfo) -> ProviderSpec:
    from revtops_kernel.connectors.slack import SlackConnector
    from revtops_kernel.normalize import slack

    def connect(settings: Settings, tokens: TokenSource, http: httpx.Client) -> Connector:
        return SlackConnector.connect(
            settings.slack_base_url,
            tokens,
            http,
            thread_lookback_days=settings.slack_thread_lookback_days,
            requests_per_minute=settings.slack_requests_per_minute,
        )

    return ProviderSpec(info, connect, slack.NORMALIZERS, "id")


def _google_calendar(info: ProviderInfo) -> ProviderSpec:
    from revtops_kernel.connectors.google_calendar import GoogleCalendarConnector
    from revtops_kernel.normalize import google_calendar

    def connect(settings: Settings, tokens: TokenSource, http: httpx.Client) -> Connector:
        return GoogleCalendarConnector.connect(settings.google_calendar_base_url, tokens, http)

    return ProviderSpec(
        info, connect, google_calendar.NORMALIZERS, "id", after_streams=_calendar_orphans
    )


def _calendar_orphans(conn: Connection, org: str, connector: Connector) -> int:
    """Events of a calendar read in full during this run that the read did not return: they
    are gone from the calendar (deleted while a sync token was invalid, say)."""
    full_reads = getattr(connector, "full_reads", [])
    if not full_reads:
        return 0
    activities = metadata.tables["activities"]
    returned: dict[str, list[set[str]]] = {}
    for read in full_reads:
        returned.setdefault(read.calendar_id, []).append(read.event_ids)
    # One pass over the provider's live events, not one per calendar: no index leads to a
    # calendar's events, and a query per calendar read all of them each time (500 calendars x
    # 77,880 events at scale 10: 0.6-1.4 s a calendar, minutes in all).
    live = select(activities.c.id, activities.c.source_id, activities.c.channel).where(
        activities.c.organization_id == org,
        activities.c.source_system == Provider.GOOGLE_CALENDAR.value,
        activities.c.channel.in_(sorted(returned)),
        activities.c.deleted_at.is_(None),
    )
    gone = [
        row.id
        for row in conn.execute(live)
        if any(row.source_id not in ids for ids in returned[row.channel])
    ]
    now = utcnow()
    for start in range(0, len(gone), 10_000):
        conn.execute(
            activities.update()
            .where(activities.c.id.in_(gone[start : start + 10_000]))
            .values(deleted_at=now, status="cancelled")
        )
    return len(gone)


# Every provider in providers.PROVIDERS has one (a test holds the two lists equal).
_BUILDERS: Mapping[Provider, Callable[[ProviderInfo], ProviderSpec]] = {
    Provider.HUBSPOT: _hubspot,
    Provider.SALESFORCE: _salesforce,
    Provider.SLACK: _slack,
    Provider.GOOGLE_CALENDAR: _google_calendar,
}
