"""The model's cost for the deployment's admins (the ``X-Admin-Key`` header): the ledger summed
(``GET /revtops/api/admin/usage?org=&since=&by=``) and an organization's own cost caps
(``PUT /revtops/api/admin/usage/caps`` with ``{"org", "daily_usd", "monthly_usd"}``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from revtops_kernel.agent.caps import set_org_caps
from revtops_kernel.agent.ledger_report import GROUPINGS, GroupBy, usage_report
from revtops_kernel.known_orgs import require_known_org
from revtops_kernel.settings import ORG_ID_PATTERN

from .base import AdminHandler


class UsageHandler(AdminHandler):
    @allow_unauthenticated
    def get(self) -> None:
        org = _org_of(self.query_text("org", max_length=63), required=False)
        since_text = self.query_text("since", max_length=10)
        try:
            since = date.fromisoformat(since_text) if since_text else None
        except ValueError:
            raise web.HTTPError(400, "'since' must be a date such as 2026-11-01") from None
        by = self.query_text("by", max_length=10) or "day"
        if by not in GROUPINGS:
            raise web.HTTPError(400, f"'by' must be one of {', '.join(GROUPINGS)}")
        grouping: GroupBy = by
        self.reply(usage_report(self.ctx.db, self.ctx.settings, org=org, since=since, by=grouping))


class CostCapsHandler(AdminHandler):
    @allow_unauthenticated
    def put(self) -> None:
        data = self.body()
        org = _org_of(self.text_field(data, "org", max_length=63), required=True)
        daily, monthly = _usd(data, "daily_usd"), _usd(data, "monthly_usd")
        assert org is not None  # required above
        require_known_org(self.ctx.db, org)
        set_org_caps(self.ctx.db, org, daily_usd=daily, monthly_usd=monthly, by="admin API")
        self.reply(usage_report(self.ctx.db, self.ctx.settings, org=org))


def _usd(data: dict[str, Any], name: str) -> Decimal | None:
    """A cap in USD (a number, 0 = no cap), or None (null or absent: the setting's cap)."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise web.HTTPError(400, f"'{name}' must be a number of USD (0: no cap) or null")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise web.HTTPError(400, f"'{name}' must be a number of USD (0: no cap) or null") from None
    if not amount.is_finite() or amount < 0 or amount > Decimal(10) ** 9:
        raise web.HTTPError(400, f"'{name}' must be between 0 (no cap) and 1,000,000,000")
    return amount


def _org_of(value: str | None, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise web.HTTPError(400, "'org' is required")
        return None
    if not ORG_ID_PATTERN.fullmatch(value):
        raise web.HTTPError(400, "'org' must be an organization id such as acme")
    return value
