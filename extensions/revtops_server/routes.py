"""Every REST route of the extension, in one table: path pattern -> handler.

As in jupyter_server's ``examples/simple``, the extension's entry point (and the Voila app)
mount this list; the handler modules never import each other or this module. Paths are
relative to the server's base URL. A new endpoint: a handler in a ``handlers_*`` module (built
on `base.ApiHandler`, `base.PublicHandler` or `base.AdminHandler`) and one line here.
"""

from __future__ import annotations

from revtops_kernel.providers import ALL_PROVIDERS
from revtops_kernel.scheduling import workflows

from . import handlers_account as account
from . import handlers_admin as admin
from . import handlers_data as data
from . import handlers_deals as deals
from . import handlers_usage as usage
from . import handlers_workflows as flows
from .base import ApiHandler

API = "/revtops/api"
ORG_PATTERN = "([a-z0-9][a-z0-9_-]{0,62})"
PROVIDER_PATTERN = "(" + "|".join(ALL_PROVIDERS) + ")"
UUID_PATTERN = "([0-9a-fA-F-]{36})"
# Exactly the names add_workflow accepts, so every stored workflow has a route.
NAME_PATTERN = f"({workflows.NAME_PATTERN})"

ROUTES: tuple[tuple[str, type[ApiHandler]], ...] = (
    # the caller, their organization, the public waitlist
    (f"{API}/health", account.HealthHandler),
    (f"{API}/health/ready", account.ReadyHandler),
    (f"{API}/session", account.SessionHandler),
    (f"{API}/me", account.MeHandler),
    (f"{API}/register", account.RegisterHandler),
    (f"{API}/users/sync", account.UsersSyncHandler),
    (f"{API}/organizations/by-domain", account.OrganizationByDomainHandler),
    (f"{API}/organizations/{ORG_PATTERN}/members", account.MembersHandler),
    (f"{API}/available-integrations", account.AvailableIntegrationsHandler),
    (f"{API}/waitlist", account.WaitlistHandler),
    # the organization's data: integrations, Nango connect, sync, chat history
    (f"{API}/integrations", data.IntegrationsHandler),
    (f"{API}/integrations/{PROVIDER_PATTERN}", data.IntegrationHandler),
    (f"{API}/connect/{PROVIDER_PATTERN}", data.ConnectHandler),
    (f"{API}/connect/{PROVIDER_PATTERN}/session", data.ConnectSessionHandler),
    (f"{API}/callback", data.CallbackHandler),
    (f"{API}/webhooks/nango", data.NangoWebhookHandler),
    (f"{API}/sync", data.SyncHandler),
    (f"{API}/sync/status", data.SyncStatusHandler),
    (f"{API}/chat/conversations", data.ConversationsHandler),
    (f"{API}/chat/conversations/{UUID_PATTERN}", data.ConversationHandler),
    (f"{API}/deals/{UUID_PATTERN}/timeline", deals.DealTimelineHandler),
    (f"{API}/deals/{UUID_PATTERN}/brief.pdf", deals.DealBriefHandler),
    # scheduled work
    (f"{API}/workflows", flows.WorkflowsHandler),
    (f"{API}/workflows/{NAME_PATTERN}", flows.WorkflowHandler),
    (f"{API}/workflows/{NAME_PATTERN}/run", flows.WorkflowRunHandler),
    # the deployment's admins (X-Admin-Key)
    (f"{API}/organizations", admin.OrganizationsHandler),
    (f"{API}/admin/waitlist", admin.AdminWaitlistHandler),
    (f"{API}/admin/waitlist/invite", admin.AdminInviteHandler),
    (f"{API}/admin/usage", usage.UsageHandler),
    (f"{API}/admin/usage/caps", usage.CostCapsHandler),
)


def routes() -> list[tuple[str, type[ApiHandler]]]:
    """The route table as the list Tornado's ``add_handlers`` takes."""
    return list(ROUTES)
