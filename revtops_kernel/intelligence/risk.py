"""An organization's own deal-risk thresholds: read, set, clear.

The rules themselves are SQL (``agent/verified_risk.py``), which reads the organization's row
of ``organization_risk_settings`` directly, so a verified answer needs nothing from here. This
module is the admin side: an app, a notebook or a command sets the row. Values are checked
against ``RiskThresholds`` (the defaults and bounds, in ``settings.py``); a NULL column means
"the default".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table, delete, insert, select

from revtops_kernel.errors import RiskSettingsError
from revtops_kernel.settings import RISK_DEFAULTS, RiskThresholds
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import OrganizationRiskSettings

_TABLE: Table = OrganizationRiskSettings.__table__  # type: ignore[assignment]
PREFIX = "risk_"
THRESHOLDS = tuple(RiskThresholds.model_fields)  # risk_ghosted_days, ...


def column_of(name: str) -> str:
    """The table column holding threshold ``name`` (``risk_ghosted_days`` -> ``ghosted_days``)."""
    return name.removeprefix(PREFIX)


def organization_overrides(db: Database, org: str) -> dict[str, int]:
    """The thresholds ``org`` set itself, by setting name (unset ones are left out)."""
    with db.begin() as conn:
        row = conn.execute(select(_TABLE).where(_TABLE.c.organization_id == org)).mappings().first()
    if row is None:
        return {}
    return {name: row[column_of(name)] for name in THRESHOLDS if row[column_of(name)] is not None}


def effective_thresholds(db: Database, org: str) -> RiskThresholds:
    """The thresholds the rules use for ``org``: its own where set, else the defaults."""
    return RISK_DEFAULTS.model_copy(update=organization_overrides(db, org))


def set_organization_thresholds(
    db: Database, org: str, values: Mapping[str, Any], *, updated_by: str | None = None
) -> RiskThresholds:
    """Set some of ``org``'s thresholds (by setting name; None clears one back to the
    default), keeping the others. Raises ``RiskSettingsError`` naming a bad one; nothing is
    written then. Returns the thresholds now in effect."""
    unknown = sorted(set(values) - set(THRESHOLDS))
    if unknown:
        raise RiskSettingsError(unknown[0], f"unknown; known thresholds: {', '.join(THRESHOLDS)}")
    merged = {**organization_overrides(db, org), **values}
    kept = {name: value for name, value in merged.items() if value is not None}
    try:
        RiskThresholds(**kept)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "thresholds"
        raise RiskSettingsError(name, f"{first['msg']} (got {first.get('input')!r})") from None
    row: dict[str, Any] = {column_of(name): kept.get(name) for name in THRESHOLDS}
    row.update(organization_id=org, updated_by=updated_by, updated_at=datetime.now(UTC))
    with db.begin() as conn:  # one transaction on either backend: no dialect's upsert needed
        conn.execute(delete(_TABLE).where(_TABLE.c.organization_id == org))
        if kept:
            conn.execute(insert(_TABLE).values(row))
    return RISK_DEFAULTS.model_copy(update=kept)


def clear_organization_thresholds(db: Database, org: str) -> None:
    """Back to the defaults for every threshold of ``org``."""
    with db.begin() as conn:
        conn.execute(delete(_TABLE).where(_TABLE.c.organization_id == org))
