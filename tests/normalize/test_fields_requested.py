"""Every field a normalizer reads is one its connector asks for (HubSpot properties,
Salesforce SELECT lists).

HubSpot silently leaves out properties a request does not name, so a read of an unrequested
name is dead code against the real API (the sandbox, asked with the normalizer's own list,
could not show it). The normalizers run on records whose ``properties`` and
``propertiesWithHistory`` record every name looked up; empty ones, so every ``a or b``
fallback is evaluated too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from revtops_kernel.connectors.credentials import StaticToken
from revtops_kernel.connectors.http import ProviderClient
from revtops_kernel.connectors.hubspot_streams import OBJECT_STREAM_BY_NAME
from revtops_kernel.connectors.salesforce import STREAMS_BY_NAME as SF_STREAMS
from revtops_kernel.connectors.salesforce import SalesforceConnector, soql
from revtops_kernel.normalize import google_calendar, hubspot, salesforce, slack
from revtops_kernel.normalize.base import NormalizeContext, RecordRejected
from revtops_kernel.salesforce_fields import OBJECTS


class Recording(dict[str, Any]):
    """An empty JSON object that remembers the keys looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def __bool__(self) -> bool:
        return True  # not skipped as empty: ``if not history`` must look inside


def reads(stream: str) -> tuple[set[str], set[str]]:
    """(properties, properties with history) the stream's normalizer looks up: in an empty
    record, and in one whose every requested property is set but has no history (names
    made of values, like ``hs_date_entered_{stage}``, are only looked up then)."""
    props, history = Recording(), Recording()
    record: dict[str, Any] = {"id": "1", "properties": props, "propertiesWithHistory": history}
    hubspot.NORMALIZERS[stream](record, NormalizeContext("org", "hubspot"))
    filled = Recording()
    for name in OBJECT_STREAM_BY_NAME[stream].properties:
        # a value every parser takes (a number, a probability, epoch ms, a name); the flags
        dict.__setitem__(filled, name, "false" if "_is_" in name else "1")
    hubspot.NORMALIZERS[stream](
        {"id": "1", "properties": filled}, NormalizeContext("org", "hubspot")
    )
    return props.read | filled.read, history.read


def unrequested(requested: Mapping[str, tuple[str, ...]]) -> dict[str, set[str]]:
    """Per stream, the properties its normalizer reads that ``requested`` does not name."""
    out = {}
    for stream, names in requested.items():
        missing = reads(stream)[0] - set(names)
        if missing:
            out[stream] = missing
    return out


@pytest.mark.parametrize("stream", sorted(OBJECT_STREAM_BY_NAME))
def test_every_property_a_normalizer_reads_is_requested(stream: str) -> None:
    connector = OBJECT_STREAM_BY_NAME[stream]
    properties, history = reads(stream)
    assert properties <= set(connector.properties), properties - set(connector.properties)
    assert history <= set(connector.history), history - set(connector.history)
    if stream == "deals":  # the recorder sees history reads at all
        assert history == {"dealstage", "amount", "closedate"}


def test_the_check_finds_the_old_drift() -> None:
    """The lists as they were before one declaration: the connector never asked for three
    properties the normalizers read."""
    before = {
        name: tuple(
            p
            for p in stream.properties
            if p not in ("mobilephone", "hs_manual_forecast_category", "hs_email_html")
        )
        for name, stream in OBJECT_STREAM_BY_NAME.items()
    }
    assert unrequested(before) == {
        "contacts": {"mobilephone"},
        "deals": {"hs_manual_forecast_category"},
        "emails": {"hs_email_html"},
    }


# --- Salesforce: the SELECT list -------------------------------------------------------------


def salesforce_reads(sobject: str) -> set[str]:
    """Fields the object's normalizer looks up, in an empty record and in one with every
    declared field set."""
    empty = Recording()
    dict.__setitem__(empty, "Id", "001000000000001AAA")
    with contextlib.suppress(RecordRejected):  # (a link it needs is missing: read until then)
        salesforce.NORMALIZERS[sobject](empty, NormalizeContext("org", "salesforce"))
    filled = Recording()
    for name in SF_STREAMS[sobject].fields:
        dict.__setitem__(filled, name, _sf_value(name))
    salesforce.NORMALIZERS[sobject](filled, NormalizeContext("org", "salesforce"))
    return empty.read | filled.read


def _sf_value(name: str) -> Any:
    if name.startswith("Is"):
        return False
    if name.endswith(("Date", "DateTime", "Modstamp")):
        return "2024-06-30T00:00:00.000+0000" if not name.endswith("Date") else "2024-06-30"
    if name in ("Amount", "AnnualRevenue", "Probability", "DefaultProbability"):
        return 50.0
    if name in ("NumberOfEmployees", "SortOrder", "CallDurationInSeconds", "DurationInMinutes"):
        return 1
    return "001000000000001AAA" if name.endswith("Id") else "x"


@pytest.mark.parametrize("sobject", sorted(SF_STREAMS))
def test_every_field_a_salesforce_normalizer_reads_is_selected(sobject: str) -> None:
    declared = OBJECTS[sobject]
    assert salesforce_reads(sobject) <= set(declared.readable)


def test_optional_fields_are_selected_only_where_the_org_has_them() -> None:
    """CurrencyIsoCode exists in multi-currency orgs only: naming it elsewhere fails the query."""
    token = StaticToken("salesforce", SecretStr("t"))
    client = ProviderClient("salesforce", "https://example.invalid", token, httpx.Client())
    connector = SalesforceConnector(client)
    spec = SF_STREAMS["Opportunity"]
    connector._field_types["Opportunity"] = {f: "string" for f in spec.fields}
    assert "CurrencyIsoCode" not in soql(connector._with_optional(spec), None)
    connector._field_types["Opportunity"]["CurrencyIsoCode"] = "picklist"
    assert "CurrencyIsoCode" in soql(connector._with_optional(spec), None)
    assert "CurrencyIsoCode" in salesforce_reads("Opportunity")  # what it is for


# --- Slack and Google Calendar: what the API always returns, and what the connector adds ------
#
# Neither connector chooses fields: Slack's conversations.history / replies return whole message
# objects, and the events list is called without ``fields`` (the whole Events resource). So the
# contract is the documented resources (api.slack.com "message" object; Google Calendar v3
# "Events" resource and calendarList entry), plus the envelope keys the connectors build
# (``connectors/slack.py`` ``_envelope``/``_Person.as_record``; ``google_calendar.py``
# ``_envelope``). A path below is one of those; ``[]`` marks the items of a list.

SLACK_FIELDS = {
    "channel", "channel.id", "channel.name",  # from conversations.list, kept by the connector
    "message", "message.type", "message.subtype", "message.ts", "message.user",
    "message.bot_id", "message.text", "message.thread_ts", "message.edited",
    "message.edited.ts", "message.edited.user",
    "author", "author.id", "author.email", "author.name", "author.internal",
    "mentions", "mentions[].id", "mentions[].email", "mentions[].name", "mentions[].internal",
}  # fmt: skip
CALENDAR_FIELDS = {
    "calendar", "calendar.id", "calendar.timeZone", "observed_at",  # the connector's envelope
    "event", "event.id", "event.status", "event.summary", "event.description", "event.created",
    "event.updated", "event.recurringEventId", "event.start", "event.end",
    "event.originalStartTime",
    *(f"event.{w}.{k}" for w in ("start", "end", "originalStartTime")
      for k in ("date", "dateTime", "timeZone")),
    "event.attendees", "event.attendees[].email", "event.attendees[].displayName",
    "event.attendees[].responseStatus", "event.attendees[].organizer",
    "event.attendees[].resource", "event.attendees[].self", "event.attendees[].optional",
    "event.organizer", "event.organizer.email", "event.organizer.displayName",
    "event.organizer.self",
}  # fmt: skip


class Deep(dict[str, Any]):
    """A JSON object that records the dotted path of every key looked up in it or in the
    objects (and lists of objects) it holds."""

    def __init__(self, data: Mapping[str, Any], prefix: str, read: set[str]) -> None:
        super().__init__(data)
        self.prefix, self.read = prefix, read

    def _path(self, key: object) -> str:
        return f"{self.prefix}{key}"

    def _wrap(self, key: str, value: Any) -> Any:
        if isinstance(value, Mapping):
            return Deep(value, f"{self._path(key)}.", self.read)
        if isinstance(value, list):
            return [
                Deep(v, f"{self._path(key)}[].", self.read) if isinstance(v, Mapping) else v
                for v in value
            ]
        return value

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(self._path(key))
        return self._wrap(key, super().get(key, default))

    def __getitem__(self, key: str) -> Any:
        self.read.add(self._path(key))
        return self._wrap(key, super().__getitem__(key))

    def __contains__(self, key: object) -> bool:
        self.read.add(self._path(key))
        return super().__contains__(key)


def deep_reads(normalize: Any, records: list[dict[str, Any]], system: str) -> set[str]:
    read: set[str] = set()
    for record in records:
        normalize(Deep(record, "", read), NormalizeContext("org", system))
    return read


def _person(user: str, email: str, internal: bool) -> dict[str, Any]:
    return {"id": user, "email": email, "name": user.lower(), "internal": internal}


SLACK_ENVELOPES = [
    {  # a reply by a person mentioning another, edited
        "channel": {"id": "C1", "name": "deal-acme"},
        "message": {"type": "message", "ts": "1770000000.000200", "user": "U1",
                    "text": "<@U2> sent", "thread_ts": "1770000000.000100",
                    "edited": {"user": "U1", "ts": "1770000100.000000"}},
        "author": _person("U1", "rep@seller.example", True),
        "mentions": [_person("U2", "buyer@acme.example", False)],
    },
    {  # a bot's message without author details
        "channel": {"id": "C1"},
        "message": {"type": "message", "subtype": "bot_message", "ts": "1770000000.000300",
                    "bot_id": "B1", "text": "deployed"},
    },
]  # fmt: skip
CALENDAR_ENVELOPES = [
    {  # a timed meeting in the event's own zone, with attendees and an organizer
        "calendar": {"id": "rep@seller.example", "timeZone": "Europe/Berlin"},
        "observed_at": "2026-02-04T18:00:00Z",
        "event": {
            "id": "e1", "status": "confirmed", "summary": "Demo", "description": "agenda",
            "created": "2026-01-01T00:00:00Z", "updated": "2026-01-02T00:00:00Z",
            "recurringEventId": "r1",
            "start": {"dateTime": "2026-02-05T10:00:00", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-02-05T11:00:00-05:00"},
            "originalStartTime": {"dateTime": "2026-02-05T10:00:00-05:00"},
            "attendees": [
                {"email": "buyer@acme.example", "displayName": "Buyer",
                 "responseStatus": "accepted"},
                {"email": "room@resource.calendar.google.com", "resource": True},
                {"email": "rep@seller.example", "organizer": True, "self": True},
            ],
            "organizer": {"email": "rep@seller.example", "displayName": "Rep"},
        },
    },
    {  # an all-day event, and a cancelled one (only id and status come back)
        "calendar": {"id": "rep@seller.example"},
        "observed_at": "2026-02-04T18:00:00Z",
        "event": {"id": "e2", "status": "confirmed", "start": {"date": "2026-02-06"},
                  "end": {"date": "2026-02-07"}, "updated": "2026-01-02T00:00:00Z"},
    },
    {"calendar": {"id": "rep@seller.example"}, "observed_at": "2026-02-04T18:00:00Z",
     "event": {"id": "e3", "status": "cancelled"}},
]  # fmt: skip


def test_every_field_the_slack_normalizer_reads_is_returned() -> None:
    read = deep_reads(slack.normalize_message, SLACK_ENVELOPES, "slack")
    assert read <= SLACK_FIELDS, read - SLACK_FIELDS
    assert {"message.ts", "author.email", "mentions[].email"} <= read  # the recorder sees them


def test_every_field_the_calendar_normalizer_reads_is_returned() -> None:
    read = deep_reads(google_calendar.normalize_event, CALENDAR_ENVELOPES, "google_calendar")
    assert read <= CALENDAR_FIELDS, read - CALENDAR_FIELDS
    assert {"event.start.dateTime", "event.attendees[].email", "observed_at"} <= read
