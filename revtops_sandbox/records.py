"""The synthetic company's record shapes: constants, pipelines, and the slotted records.

Records refer to each other by list index (-1 for none); ids are derived from the index (see
`Company.hs_id`). `company.Company` holds them; the Slack and Calendar builders
(`slack_data.py`, `calendar_data.py`) read them through `CrmView`, so they need neither
`company` nor each other's modules, and the data model composes one way:
records <- slack_data, calendar_data <- company.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from revtops_sandbox import names

DAY_MS = 86_400_000

# Record life cycle. ARCHIVED is HubSpot's "archived" and Salesforce's recycle bin (IsDeleted);
# PURGED records are gone from every listing, as after a GDPR delete or an emptied recycle bin.
LIVE, ARCHIVED, PURGED = 0, 1, 2

ObjectType = Literal[
    "companies", "contacts", "deals", "meetings", "calls", "emails", "notes", "tasks"
]
OBJECT_TYPES: tuple[ObjectType, ...] = (
    "companies", "contacts", "deals", "meetings", "calls", "emails", "notes", "tasks",
)  # fmt: skip
ACTIVITY_KINDS: tuple[ObjectType, ...] = ("meetings", "calls", "emails", "notes", "tasks")
MEETING, CALL, EMAIL, NOTE, TASK = range(5)

# HubSpot ids are numeric strings; each object type gets its own range so ids never collide
# and an id maps back to a list index with one subtraction.
HS_ID_BASE: dict[str, int] = {
    "owners": 52_550_101,
    "companies": 18_040_000_001,
    "contacts": 51_200_000_001,
    "deals": 9_870_000_001,
    "activities": 30_110_000_001,
}
HS_USER_ID_BASE = 9_586_101


# ---------------------------------------------------------------------------------------------
# Pipelines: the same stages back HubSpot pipelines and Salesforce OpportunityStage rows.


@dataclass(frozen=True, slots=True)
class Stage:
    hs_id: str
    label: str
    probability: float  # 0..1
    is_closed: bool
    is_won: bool
    forecast_name: str  # Salesforce ForecastCategoryName
    sf_sort: int  # Salesforce SortOrder (stages are one global list there)

    @property
    def forecast_category(self) -> str:
        """Salesforce's API value behind ForecastCategoryName."""
        return {"Best Case": "BestCase", "Commit": "Forecast"}.get(
            self.forecast_name, self.forecast_name
        )


@dataclass(frozen=True, slots=True)
class Pipeline:
    hs_id: str
    label: str
    display_order: int
    sf_type: str  # Opportunity.Type for deals in this pipeline
    hs_dealtype: str
    stages: tuple[Stage, ...]

    @property
    def won_index(self) -> int:
        return next(i for i, s in enumerate(self.stages) if s.is_won)

    @property
    def lost_index(self) -> int:
        return next(i for i, s in enumerate(self.stages) if s.is_closed and not s.is_won)


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline(
        "default",
        "New Business",
        0,
        "New Business",
        "newbusiness",
        (
            Stage("appointmentscheduled", "Discovery", 0.1, False, False, "Pipeline", 1),
            Stage("qualifiedtobuy", "Qualified", 0.2, False, False, "Pipeline", 2),
            Stage("presentationscheduled", "Demo Scheduled", 0.4, False, False, "Pipeline", 3),
            Stage("decisionmakerboughtin", "Proposal Sent", 0.6, False, False, "Best Case", 4),
            Stage("contractsent", "Negotiation", 0.8, False, False, "Commit", 5),
            Stage("closedwon", "Closed Won", 1.0, True, True, "Closed", 9),
            Stage("closedlost", "Closed Lost", 0.0, True, False, "Omitted", 10),
        ),
    ),
    Pipeline(
        "81472210",
        "Renewals",
        1,
        "Renewal",
        "existingbusiness",
        (
            Stage("81472211", "Renewal Upcoming", 0.5, False, False, "Pipeline", 6),
            Stage("81472212", "Renewal In Discussion", 0.7, False, False, "Best Case", 7),
            Stage("81472213", "Renewal Committed", 0.9, False, False, "Commit", 8),
            Stage("81472214", "Closed Won", 1.0, True, True, "Closed", 9),
            Stage("81472215", "Closed Lost", 0.0, True, False, "Omitted", 10),
        ),
    ),
)


# Stages retired from a pipeline (HubSpot: archived stages, Salesforce: inactive
# OpportunityStage). Kept out of PIPELINES so generation and mutation never put a deal there;
# the pipeline and stage endpoints still list them, as the real APIs do.
RETIRED_STAGES: dict[str, tuple[Stage, ...]] = {
    "default": (Stage("1043221", "Legal Review", 0.7, False, False, "Commit", 11),),
}


# ---------------------------------------------------------------------------------------------
# Records. References are list indices (-1 for none); ids are derived (see `Company.hs_id`).


@dataclass(slots=True)
class Owner:
    idx: int
    first_name: str
    last_name: str
    email: str
    team: int  # index into names.OWNER_TEAMS
    active: bool
    created_ms: int
    updated_ms: int

    @property
    def hs_id(self) -> int:
        return HS_ID_BASE["owners"] + self.idx

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(slots=True)
class Account:
    idx: int
    name: str
    domain: str
    industry: int  # index into names.INDUSTRIES
    kind: int  # index into names.ACCOUNT_KINDS
    city: int  # index into names.CITIES
    employees: int
    owner: int
    created_ms: int
    updated_ms: int
    state: int = LIVE
    archived_ms: int = 0
    version: int = 0


@dataclass(slots=True)
class Contact:
    idx: int
    first_name: str
    last_name: str
    email: str
    title: int  # index into names.CONTACT_TITLES
    account: int
    owner: int
    created_ms: int
    updated_ms: int
    state: int = LIVE
    archived_ms: int = 0
    version: int = 0


@dataclass(slots=True)
class Deal:
    idx: int
    account: int
    product: int  # index into names.PRODUCTS (names the deal)
    pipeline: int
    stage: int  # index into PIPELINES[pipeline].stages
    amount_cents: int  # -1: no amount entered
    close_day: int
    owner: int
    contacts: tuple[int, ...]
    lead_source: int
    created_ms: int
    updated_ms: int
    history: tuple[int, ...]  # flat (stage, ms, stage, ms, ...) stage changes, oldest first
    state: int = LIVE
    archived_ms: int = 0
    version: int = 0
    # Values amount and close date took, oldest first, the first at creation: flat
    # (cents, ms, ...) and (day, ms, ...); empty: the current value since creation
    # (see `deal_history`).
    amounts: tuple[int, ...] = ()
    close_days: tuple[int, ...] = ()


@dataclass(slots=True)
class Activity:
    """A meeting, call, email, note or task (HubSpot engagement; Salesforce Event or Task)."""

    idx: int
    kind: int  # MEETING, CALL, EMAIL, NOTE or TASK
    kind_idx: int  # position in Company.by_kind[kind]
    ts_ms: int  # when it happened (task: due date)
    owner: int
    deal: int
    contact: int
    account: int
    subject: int  # index into the kind's title list
    body: int  # index into names.BODIES
    duration: int  # seconds (calls, meetings)
    status: int  # direction (calls, emails), status (tasks), outcome (meetings)
    priority: int  # tasks
    created_ms: int
    updated_ms: int
    state: int = LIVE
    archived_ms: int = 0
    version: int = 0


Record = Account | Contact | Deal | Activity


def deal_name(account: Account, deal: Deal) -> str:
    """The deal's name as both CRMs show it (and Slack channels and calendar titles quote it)."""
    if deal.pipeline == 1:
        year = 1970 + deal.close_day // 365
        return f"{account.name} - Renewal {year}"
    return f"{account.name} - {names.PRODUCTS[deal.product]}"


@dataclass(slots=True)
class ActivityInputs:
    account_kinds: list[int]
    account_employees: list[int]
    deal_amounts: list[int]  # cents, -1: none
    deal_close_days: list[int]

    @classmethod
    def of(cls, co: CrmView) -> ActivityInputs:
        return cls(
            [a.kind for a in co.accounts],
            [a.employees for a in co.accounts],
            [d.amount_cents for d in co.deals],
            [d.close_day for d in co.deals],
        )


class CrmView(Protocol):
    """What the activity builders read of the company; `company.Company` satisfies it."""

    seed: int
    scale: float
    anchor_ms: int
    seller_name: str
    owners: list[Owner]
    accounts: list[Account]
    contacts: list[Contact]
    deals: list[Deal]
    by_kind: tuple[list[Activity], ...]

    def activity_inputs(self) -> ActivityInputs: ...

    def reverse(self, source: str, target: str) -> dict[int, list[int]]: ...
