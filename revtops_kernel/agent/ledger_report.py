"""What the model cost: the ledger summed by user, model, day or organization, and where each
organization stands against its caps. Read by ``revtops usage``, the admin endpoint
(``GET /revtops/api/admin/usage``) and the app's usage view."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Date, String, and_, cast, func, select

from revtops_kernel.agent.caps import caps_for, period_bounds
from revtops_kernel.agent.ledger import spent_in
from revtops_kernel.errors import SettingsError
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import LlmUsage, User

GroupBy = Literal["user", "model", "day", "org"]
GROUPINGS: tuple[GroupBy, ...] = ("user", "model", "day", "org")


@dataclass(frozen=True)
class UsageLine:
    """One group's calls, tokens and cost."""

    key: str  # the user's email (or id, or "(no user)"), the model, the day, the organization
    calls: int
    input_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    output_tokens: int
    cost_usd: Decimal

    def as_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["cost_usd"] = str(self.cost_usd)
        return record


@dataclass(frozen=True)
class CapStanding:
    """One cap of an organization: the cap, what its period spent, when it resets."""

    period: str  # day or month
    cap_usd: Decimal  # 0: no cap
    source: str
    spent_usd: Decimal
    resets_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "cap_usd": str(self.cap_usd),
            "source": self.source,
            "spent_usd": str(self.spent_usd),
            "resets_at": self.resets_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def usage_lines(
    db: Database, *, org: str | None, since: date | datetime | None = None, by: GroupBy = "day"
) -> list[UsageLine]:
    """The settled calls of ``org`` (every organization when None) since ``since``, grouped;
    the biggest cost first (``day``: newest day first)."""
    if by not in GROUPINGS:
        raise SettingsError("--by", f"expected one of {', '.join(GROUPINGS)}, got {by!r}")
    key: Any = {
        "user": func.coalesce(User.email, cast(LlmUsage.user_id, String), "(no user)"),
        "model": LlmUsage.model,
        "day": cast(cast(LlmUsage.started_at, Date), String),
        "org": LlmUsage.organization_id,
    }[by]
    conditions = [LlmUsage.status != "reserved"]
    if org is not None:
        conditions.append(LlmUsage.organization_id == org)
    if since is not None:
        start = since if isinstance(since, datetime) else datetime.combine(since, time(), UTC)
        conditions.append(LlmUsage.started_at >= start)
    cost = func.sum(LlmUsage.cost_usd)
    query = (
        select(
            key.label("key"),
            func.count().label("calls"),
            func.sum(LlmUsage.input_tokens),
            func.sum(LlmUsage.cache_read_tokens),
            func.sum(LlmUsage.cache_creation_tokens),
            func.sum(LlmUsage.output_tokens),
            cost,
        )
        .select_from(LlmUsage)
        .outerjoin(User, User.id == LlmUsage.user_id)
        .where(and_(*conditions))
        .group_by(key)
        .order_by(key.desc() if by == "day" else cost.desc(), key)
    )
    with db.connect() as connection:
        rows = connection.execute(query).all()
    return [
        UsageLine(
            key=str(r[0]),
            calls=int(r[1]),
            input_tokens=int(r[2] or 0),
            cache_read_tokens=int(r[3] or 0),
            cache_creation_tokens=int(r[4] or 0),
            output_tokens=int(r[5] or 0),
            cost_usd=Decimal(r[6] or 0),
        )
        for r in rows
    ]


def cap_standing(
    db: Database, settings: Settings, org: str, *, now: datetime | None = None
) -> list[CapStanding]:
    """The organization's daily and monthly caps, with what each period has spent so far
    (settled calls, and calls in flight at their reservation)."""
    now = now or datetime.now(UTC)
    standing = []
    with db.connect() as connection:
        caps = caps_for(connection, settings, org)
        for cap in (caps.daily, caps.monthly):
            spent = spent_in(connection, org, cap.period, now)
            end = period_bounds(cap.period, now)[1]
            standing.append(CapStanding(cap.period, cap.usd, cap.source, spent, end))
    return standing


def usage_report(
    db: Database,
    settings: Settings,
    *,
    org: str | None,
    since: date | datetime | None = None,
    by: GroupBy = "day",
) -> dict[str, Any]:
    """The JSON the admin endpoint and the usage view show: lines, totals and caps."""
    lines = usage_lines(db, org=org, since=since, by=by)
    return {
        "organization": org,
        "since": since.isoformat() if since is not None else None,
        "by": by,
        "lines": [line.as_json() for line in lines],
        "total_cost_usd": str(sum((line.cost_usd for line in lines), Decimal(0))),
        "total_calls": sum(line.calls for line in lines),
        "caps": [c.as_json() for c in cap_standing(db, settings, org)] if org else [],
    }
