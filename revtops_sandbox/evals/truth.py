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
from typing import TypeVar

from revtops_sandbox import names
from revtops_sandbox.company import DAY_MS, LIVE, PIPELINES, Company
from revtops_sandbox.deal_history import amount_versions, close_versions
from revtops_sandbox.evals.quota_plan import QuotaFact, quota_plan
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
    account_idx: int = -1  # the associated company

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
    account_idx: int = -1  # the associated company (-1: none or not live)


@dataclass(frozen=True)
class OwnerFact:
    name: str
    email: str
    is_active: bool


_T = TypeVar("_T")


@dataclass(frozen=True)
class StageEntry:
    """A stage a deal entered (HubSpot ``propertiesWithHistory.dealstage``)."""

    stage: str  # the stage's label
    order: int  # its position in the pipeline
    is_closed: bool
    is_won: bool
    entered_at: datetime


@dataclass(frozen=True)
class DealState:
    """What a deal was at one instant: open or not, its amount and close date then."""

    is_open: bool
    is_won: bool
    amount: Decimal | None
    close_date: date


def _collapse(versions: list[tuple[datetime, _T]]) -> list[tuple[datetime, _T]]:
    """Oldest first; a value equal to the one before is no change (the normalizer's rule)."""
    out: list[tuple[datetime, _T]] = []
    for when, value in sorted(versions, key=lambda v: v[0]):
        if not out or out[-1][1] != value:
            out.append((when, value))
    return out


def value_at(versions: list[tuple[datetime, _T]], moment: datetime) -> _T | None:
    """The value in effect just before ``moment``: the latest version before it (an instant
    such as 2026-10-01 00:00 sees what was true up to then)."""
    found = None
    for when, value in versions:
        if when >= moment:
            break
        found = value
    return found


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
                    account_idx=d.account,
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
                    account_idx=a.account if account.state == LIVE else -1,
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

    # --- history and quotas: the facts behind the risk, movement, funnel and quota questions

    @cached_property
    def stage_paths(self) -> dict[int, list[StageEntry]]:
        out: dict[int, list[StageEntry]] = {}
        for d in self.company.deals:
            if d.state != LIVE:
                continue
            stages = PIPELINES[d.pipeline].stages
            raw = [(ms_to_datetime(d.history[k + 1]), d.history[k])
                   for k in range(0, len(d.history), 2)]  # fmt: skip
            out[d.idx] = [
                StageEntry(stages[s].label, s, stages[s].is_closed, stages[s].is_won, when)
                for when, s in _collapse(raw)
            ]
        return out

    @cached_property
    def amount_history(self) -> dict[int, list[tuple[datetime, Decimal]]]:
        """Every amount a live deal had, oldest first (HubSpot ``propertiesWithHistory
        .amount``); empty when none was ever entered."""
        return {
            d.idx: _collapse(
                [(ms_to_datetime(ms), Decimal(cents) / 100) for ms, cents in amount_versions(d)]
            )
            for d in self.company.deals
            if d.state == LIVE
        }

    @cached_property
    def close_history(self) -> dict[int, list[tuple[datetime, date]]]:
        """Every close date a live deal had, oldest first (``propertiesWithHistory.closedate``)."""
        return {
            d.idx: _collapse(
                [(ms_to_datetime(ms), EPOCH + timedelta(days=day)) for ms, day in close_versions(d)]
            )
            for d in self.company.deals
            if d.state == LIVE
        }

    def stage_entered_at(self, idx: int) -> datetime:
        """When the deal entered its current stage (its last stage entry)."""
        return self.stage_paths[idx][-1].entered_at

    def state_at(self, deal: DealFact, moment: datetime) -> DealState | None:
        """The deal just before ``moment`` (None if it did not exist yet)."""
        if deal.created_at >= moment:
            return None
        path = self.stage_paths[deal.idx]
        entry = value_at([(e.entered_at, e) for e in path], moment) or path[0]
        close = value_at(self.close_history[deal.idx], moment) or deal.close_date
        return DealState(
            not entry.is_closed,
            entry.is_won,
            value_at(self.amount_history[deal.idx], moment),
            close,
        )

    @cached_property
    def owner_emails(self) -> dict[str, str]:
        return {o.name: o.email.lower() for o in self.owners}

    @cached_property
    def quotas(self) -> list[QuotaFact]:
        return quota_plan(self.company)

    def quota(self, owner: str, start: date, end: date) -> Decimal | None:
        """The owner's quota for periods inside ``start``..``end`` (the plan has whole
        quarters), None when the plan gives them none."""
        amounts = [
            q.amount
            for q in self.quotas
            if q.owner == owner and start <= q.period_start and q.period_end <= end
        ]
        return sum(amounts, Decimal(0)) if amounts else None
