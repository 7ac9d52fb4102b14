"""REST endpoints for the deployment's admins (the ``X-Admin-Key`` header, not a session):
create organizations, read the waitlist, invite from it."""

from __future__ import annotations

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from revtops_kernel.tenancy import create_organization, invite, waitlist

from .base import AdminHandler, plain
from .text_input import InvalidText, clean_domain

WAITLIST_STATUSES = ("waiting", "invited", "joined")


class OrganizationsHandler(AdminHandler):
    @allow_unauthenticated
    def post(self) -> None:
        """Create an organization: admins of the deployment only (the admin key)."""
        data = self.body()
        name = self.required_text(data, "name", max_length=200)
        domain = self.text_field(data, "domain", max_length=253)
        if domain is not None:
            try:
                domain = clean_domain(domain)
            except InvalidText as exc:
                raise web.HTTPError(400, plain(exc)) from None
        self.reply(create_organization(self.ctx.db, name=name, domain=domain), 201)


class AdminWaitlistHandler(AdminHandler):
    @allow_unauthenticated
    def get(self) -> None:
        status = self.query_text("status", max_length=20)
        if status is not None and status not in WAITLIST_STATUSES:
            raise web.HTTPError(400, f"'status' must be one of {', '.join(WAITLIST_STATUSES)}")
        self.reply({"waitlist": waitlist(self.ctx.db, status=status)})


class AdminInviteHandler(AdminHandler):
    @allow_unauthenticated
    def post(self) -> None:
        self.reply(invite(self.ctx.db, self.email_field(self.body())))
