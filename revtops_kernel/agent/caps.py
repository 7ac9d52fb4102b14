"""An organization's model cost caps: from settings, overridden per organization by an admin.

Periods are UTC calendar days and months. A cap of 0 (or none) means no cap. The caps an
admin sets live in ``llm_cost_caps``; a field left unset there falls back to the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, delete, insert, select

from revtops_kernel.errors import SettingsError
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import LlmCostCap

DAILY_SETTING = "REVTOPS_DAILY_COST_CAP_USD"
MONTHLY_SETTING = "REVTOPS_MONTHLY_COST_CAP_USD"
OWN_CAP = "the organization's own cap"


@dataclass(frozen=True)
class Cap:
    period: str  # day or month
    usd: Decimal  # 0: no cap
    source: str  # the setting, or "the organization's own cap"

    @property
    def active(self) -> bool:
        return self.usd > 0


@dataclass(frozen=True)
class Caps:
    daily: Cap
    monthly: Cap

    def active(self) -> list[Cap]:
        return [cap for cap in (self.daily, self.monthly) if cap.active]


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the UTC day or month holding ``now``."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def caps_for(connection: Connection, settings: Settings, org: str) -> Caps:
    """The caps in force for ``org``: its own where an admin set them, else the settings."""
    row = connection.execute(
        select(LlmCostCap.daily_usd, LlmCostCap.monthly_usd).where(
            LlmCostCap.organization_id == org
        )
    ).first()
    daily = Cap("day", settings.daily_cost_cap_usd, DAILY_SETTING)
    monthly = Cap("month", settings.monthly_cost_cap_usd, MONTHLY_SETTING)
    if row is not None and row.daily_usd is not None:
        daily = Cap("day", Decimal(row.daily_usd), OWN_CAP)
    if row is not None and row.monthly_usd is not None:
        monthly = Cap("month", Decimal(row.monthly_usd), OWN_CAP)
    return Caps(daily, monthly)


def set_org_caps(
    db: Database,
    org: str,
    *,
    daily_usd: Decimal | None,
    monthly_usd: Decimal | None,
    by: str | None = None,
    now: datetime | None = None,
) -> None:
    """Set (or, with both None, clear) an organization's own caps; 0 means no cap."""
    for name, value in (("daily", daily_usd), ("monthly", monthly_usd)):
        if value is not None and value < 0:
            raise SettingsError(f"{name} cap", f"must be 0 (no cap) or more, got {value}")
    with db.begin() as connection:
        connection.execute(delete(LlmCostCap).where(LlmCostCap.organization_id == org))
        if daily_usd is None and monthly_usd is None:
            return
        connection.execute(
            insert(LlmCostCap).values(
                organization_id=org,
                daily_usd=daily_usd,
                monthly_usd=monthly_usd,
                updated_by=by,
                updated_at=now or datetime.now(UTC),
            )
        )
