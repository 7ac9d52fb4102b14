"""The sandbox company's ground truth, in the shape the golden questions ask about.

Expected answers are computed from the sandbox's ``Company`` (the records the APIs are rendered
from), never from the store: a question whose gold SQL disagrees with this module has found a
bug in the SQL, the sync or a normalizer. Each fact here says which provider field the store's
column is synced from, so that the correspondence can be checked by reading.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property

from revtops_sandbox import names
from revtops_sandbox.company import DAY_MS, LIVE, PIPELINES, Company
from revtops_sandbox.hubspot_schema import deal_name

ACTIVITY_TYPE = ("meeting", "call", "email", "note", "task")  # Activity.kind -> activity_type
DIRECTION = {1: ("outbound", "inbound"), 2: ("outbound", "inbound")}  # kind -> by status
EPOCH = date(1970, 1, 1)


def ms_to_datetime(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class DealFact:
    idx: int
    name: str  # dealname
    account: str  # the associated company's name
    pipeline: str  # pipeline label
    stage: str  # dealstage's label
    stage_order: int  # position in the pipeline
    is_closed: bool
    is_won: bool
    probability: Decimal  # hs_deal_stage_probability
    forecast_category: str  # hs_forecast_category, as the schema's labels
    amount: Decimal | None  # amount (None when not entered)
    close_date: date  # closedate
    created_at: datetime  # createdate
    updated_at: datetime  # hs_lastmodifieddate
    owner: str  # the owner's full name
    lead_source: str  # leadsource

    @property
    def is_open(self) -> bool:
        return not self.is_closed


@dataclass(frozen=True)
class ActivityFact:
    activity_type: str
    occurred_at: datetime  # hs_timestamp
    # The deal idx, -1 for none: the CRM's link. Identity resolution links only Slack and
    # Calendar activities to deals; CRM activities keep what the CRM says.
    deal: int
    account: str | None  # the associated company's name
    contact: int  # contact idx, -1 for none (the one engagement -> contact association)
    owner: str  # the owner's full name
    duration_seconds: int | None
    direction: str | None


@dataclass(frozen=True)
class OwnerFact:
    name: str
    email: str
    is_active: bool


class Truth:
    """Facts about one generated company, as the store should hold them after a HubSpot sync."""

    def __init__(self, company: Company) -> None:
        self.company = company

    @property
    def as_of(self) -> date:
        """The data's "today": nothing was created or changed after its start."""
        return EPOCH + timedelta(days=self.company.anchor_ms // DAY_MS)

    @cached_property
    def owners(self) -> list[OwnerFact]:
        return [
            OwnerFact(f"{o.first_name} {o.last_name}", o.email, o.active)
            for o in self.company.owners
        ]

    @cached_property
    def deals(self) -> list[DealFact]:
        co = self.company
        out = []
        for d in co.deals:
            if d.state != LIVE:
                continue
            pipeline = PIPELINES[d.pipeline]
            stage = pipeline.stages[d.stage]
            out.append(
                DealFact(
                    idx=d.idx,
                    name=deal_name(co.accounts[d.account], d),
                    account=co.accounts[d.account].name,
                    pipeline=pipeline.label,
                    stage=stage.label,
                    stage_order=d.stage,
                    is_closed=stage.is_closed,
                    is_won=stage.is_won,
                    probability=Decimal(str(stage.probability)).quantize(Decimal("0.0001")),
                    forecast_category=stage.forecast_name,
                    amount=None if d.amount_cents < 0 else Decimal(d.amount_cents) / 100,
                    close_date=EPOCH + timedelta(days=d.close_day),
                    created_at=ms_to_datetime(d.created_ms),
                    updated_at=ms_to_datetime(d.updated_ms),
                    owner=self.owners[d.owner].name,
                    lead_source=names.LEAD_SOURCES[d.lead_source],
                )
            )
        return out

    @cached_property
    def activities(self) -> list[ActivityFact]:
        co = self.company
        out = []
        for a in co.activities:
            if a.state != LIVE:
                continue
            has_duration = a.kind in (0, 1)  # meetings (end - start) and calls
            direction = DIRECTION[a.kind][a.status] if a.kind in DIRECTION else None
            deal_live = a.deal >= 0 and co.deals[a.deal].state == LIVE
            contact_live = a.contact >= 0 and co.contacts[a.contact].state == LIVE
            account = co.accounts[a.account]
            out.append(
                ActivityFact(
                    activity_type=ACTIVITY_TYPE[a.kind],
                    occurred_at=ms_to_datetime(a.ts_ms),
                    deal=a.deal if deal_live else -1,
                    account=account.name if account.state == LIVE else None,
                    contact=a.contact if contact_live else -1,
                    owner=self.owners[a.owner].name,
                    duration_seconds=a.duration if has_duration else None,
                    direction=direction,
                )
            )
        return out

    @cached_property
    def activities_by_deal(self) -> dict[int, list[ActivityFact]]:
        out: dict[int, list[ActivityFact]] = defaultdict(list)
        for a in self.activities:
            if a.deal >= 0:
                out[a.deal].append(a)
        return out

    @cached_property
    def accounts(self) -> list[tuple[str, str, int]]:
        """(name, account type, contacts) of every live account."""
        contacts: dict[int, int] = defaultdict(int)
        for c in self.company.contacts:
            if c.state == LIVE:
                contacts[c.account] += 1
        return [
            (a.name, names.ACCOUNT_KINDS[a.kind][1], contacts[a.idx])
            for a in self.company.accounts
            if a.state == LIVE
        ]

    @cached_property
    def accounts_with_deals(self) -> set[str]:
        return {d.account for d in self.deals}
