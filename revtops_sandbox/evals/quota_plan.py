"""The sandbox company's quota plan: what each rep is expected to close per quarter of 2026.

No CRM holds quotas, so neither does the sandbox's HubSpot: a user imports them from a file
(``revtops quotas import``). The eval does the same: ``load_quota_plan`` writes the plan as the
CSV a sales-ops lead would keep and imports it through the product's ``import_quotas``, and the
golden set derives its quota answers from ``quota_plan`` — the same plan, never read back from
the store.

The plan: every active rep gets a quota for each quarter of 2026, by team (the rep's team in
the sandbox, ``names.OWNER_TEAMS``). A rep carries about the same book at every scale (owners
and accounts both grow with it), so one table of amounts fits every scale: some reps land
above their quota in a quarter, some below half of it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from revtops_sandbox import names
from revtops_sandbox.company import Company

if TYPE_CHECKING:
    from revtops_kernel.intelligence.quotas import QuotaImport
    from revtops_kernel.store.database import Database

PLAN_YEAR = 2026
# Quarterly quota per team, in dollars.
TEAM_QUOTA: dict[str, int] = {
    "AE - East": 300_000,
    "AE - West": 300_000,
    "AE - EMEA": 250_000,
    "Enterprise": 450_000,
    "Renewals": 200_000,
    "SDR": 100_000,
}
PLAN_SOURCE = "sandbox quota plan"


@dataclass(frozen=True)
class QuotaFact:
    owner: str  # the owner's full name
    email: str  # lowercased, as quotas.owner_email
    team: str
    period_start: date
    period_end: date
    amount: Decimal


def quarters(year: int) -> list[tuple[date, date]]:
    ends = (date(year, 3, 31), date(year, 6, 30), date(year, 9, 30), date(year, 12, 31))
    return [(date(year, 3 * q + 1, 1), end) for q, end in enumerate(ends)]


def quota_plan(company: Company) -> list[QuotaFact]:
    """Every quota of the plan: active reps, each quarter of ``PLAN_YEAR``."""
    plan = []
    for owner in company.owners:
        if not owner.active:
            continue
        team = names.OWNER_TEAMS[owner.team]
        for start, end in quarters(PLAN_YEAR):
            plan.append(
                QuotaFact(
                    owner.name,
                    owner.email.lower(),
                    team,
                    start,
                    end,
                    Decimal(TEAM_QUOTA[team]),
                )
            )
    return plan


def plan_csv(plan: list[QuotaFact]) -> str:
    """The plan as the quota file ``revtops quotas import`` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["owner_email", "period_start", "period_end", "amount", "team"])
    for q in plan:
        writer.writerow([q.email, q.period_start, q.period_end, q.amount, q.team])
    return out.getvalue()


def load_quota_plan(db: Database, org: str, company: Company) -> QuotaImport:
    """Import the plan into ``org`` as a user would; again, it updates the same rows."""
    from revtops_kernel.intelligence.quotas import import_quotas

    return import_quotas(db, org, plan_csv(quota_plan(company)), source=PLAN_SOURCE, replace=True)
