"""One deal for the signed-in organization: its timeline as JSON
(``GET /revtops/api/deals/{deal_id}/timeline``) and its one-page brief as a PDF
(``GET /revtops/api/deals/{deal_id}/brief.pdf``). Both take ``?timezone=`` (IANA, default UTC).

The organization is the caller's, never one named in the request: another organization's deal
id answers 404, exactly like an id that does not exist. Both run off the event loop (the risk
rules and the PDF layout take a second or more).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tornado import web

from revtops_kernel.errors import DealNotFoundError, PeriodError
from revtops_kernel.reports.period import zone

from .base import ApiHandler, to_json

_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _DealHandler(ApiHandler):
    def _timezone(self) -> str:
        timezone = self.query_text("timezone", max_length=64) or "UTC"
        try:
            zone(timezone)
        except PeriodError as exc:
            raise web.HTTPError(400, str(exc)) from None
        return timezone

    async def _off_loop(self, work: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, lambda: work(*args, **kwargs))
        except DealNotFoundError:
            raise web.HTTPError(404, "no such deal") from None


class DealTimelineHandler(_DealHandler):
    async def get(self, deal_id: str) -> None:
        # Imported here: the brief pulls in pandas, matplotlib and the PDF stack, which would
        # add seconds to every server start.
        from revtops_kernel.reports.deal_brief import deal_brief

        org = self.principal().organization_id
        timezone = self._timezone()
        brief = await self._off_loop(deal_brief, self.ctx.db, org, deal_id, timezone=timezone)
        timeline = brief.timeline
        self.reply(
            {
                "deal": to_json(timeline.deal),
                "risk_score": brief.risk_score,
                "flags": to_json(brief.flags),
                "events": to_json(timeline.events),
                "participants": to_json(timeline.participants),
                "as_of": brief.today.isoformat(),
            }
        )


class DealBriefHandler(_DealHandler):
    async def get(self, deal_id: str) -> None:
        from revtops_kernel.reports.deal_brief import deal_brief_pdf

        principal = self.principal()
        timezone = self._timezone()
        pdf = await self._off_loop(
            deal_brief_pdf,
            self.ctx.db,
            principal.organization_id,
            deal_id,
            timezone=timezone,
            author=principal.email or "Revtops deal brief",
        )
        name = _FILENAME_UNSAFE.sub("-", f"deal-brief-{deal_id}")[:80]
        self.set_header("Content-Disposition", f'attachment; filename="{name}.pdf"')
        # jupyter_server's APIHandler.finish sets the content type: JSON unless told otherwise.
        self.finish(pdf, set_content_type="application/pdf")
