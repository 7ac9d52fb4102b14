"""The project's one error tree.

Every layer translates foreign exceptions at its boundary (``raise StoreError(...) from exc``)
so callers catch ``RevtopsError`` subclasses and read their fields instead of parsing messages.
Messages say how to fix the problem where there is a fix.

    RevtopsError
    ├── SettingsError           a variable in the environment or .env is missing or malformed
    ├── ArtifactSpecError       an artifact spec is malformed or names columns its query lacks
    ├── ArtifactNotFoundError   no artifact of that id in the organization
    ├── ConnectorError          a provider's API refused or failed (provider, endpoint, status)
    │   ├── ProviderAuthError       401/403 that a fresh token did not fix
    │   ├── RateLimitError          still rate limited after every retry
    │   ├── ProviderUnavailableError  5xx or network failures after every retry
    │   ├── CredentialsError        no token configured, or Nango could not give one
    │   ├── SlackPostError          Slack refused a post, or the channel cannot be found
    │   └── ForeignOriginError      a URL would take credentials off the configured origin
    └── StoreError              the database could not do what was asked
        ├── DatabaseLockedError another process holds the DuckDB file for too long
        ├── SyncBusyError       another process's sync of the provider held its lock too long
        ├── SchemaError         the schema is missing, too old or too new
        ├── UpsertError         a batch could not be written (bad columns, wrong key)
        └── QueryError          a read-only query failed
            ├── QueryRefusedError  the query tried to write, escape its org or reach outside
            └── QueryTimeoutError  the query ran past its deadline and was cancelled
    VerifiedQueryError          an unknown verified query, or a bad parameter for one
    ConversationNotFoundError   no conversation of that id in the organization
    DealNotFoundError           no deal of that id (or name) in the organization
    WorkflowError               a workflow that does not exist, or a request it cannot serve
    ├── WorkflowBusyError       a run of it is already queued or running
    ├── WorkflowExistsError     the name is taken in the organization
    ├── WorkflowInputError      a malformed name, schedule or field (``field``)
    │   ├── WorkflowParameterError  a parameter the notebook does not declare, or a bad value
    │   └── ScheduleError       a cron expression or time zone that cannot be used
    └── WorkflowLimitError      a cap on workflows or runs per organization (``retry_after``)
    KernelBindingError          a web-app kernel would be handed to a second user
    TenancyError                a request about organizations, users or the waitlist
    └── TenancyConflictError    it clashes with what exists (a domain in use, already joined)
    IdentityError               a web-app kernel has no verified identity
    PeriodError                 a report period, date or time zone that cannot be used
    CostCapError                an organization reached its daily or monthly model cost cap
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uuid
    from datetime import datetime
    from decimal import Decimal


class RevtopsError(Exception):
    """Base of every error this package raises on purpose."""


class SettingsError(RevtopsError):
    """A setting read from the environment (or .env) is invalid.

    ``variable`` names the environment variable, so the message can say exactly what to fix.
    """

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class ConnectorError(RevtopsError):
    """A provider call failed. Never carries a token: only provider, endpoint and status."""

    def __init__(self, provider: str, endpoint: str, status: int | None, message: str) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.status = status
        where = f"{provider} {endpoint}" + (f" -> HTTP {status}" if status is not None else "")
        super().__init__(f"{where}: {message}")


class ProviderAuthError(ConnectorError):
    """The provider refused the credentials, even after fetching a fresh token."""


class RateLimitError(ConnectorError):
    """Still rate limited after every retry."""


class ProviderUnavailableError(ConnectorError):
    """Server errors or network failures outlasted the retries."""


class CredentialsError(ConnectorError):
    """No usable credentials: a missing token setting, or Nango could not provide one."""


class SlackPostError(ConnectorError):
    """Slack refused a post (``ok: false``), or the channel to post in cannot be found."""


class StoreError(RevtopsError):
    """The store (PostgreSQL or DuckDB) failed."""


class DatabaseLockedError(StoreError):
    def __init__(self, path: str, waited_seconds: float, detail: str) -> None:
        self.path = path
        self.waited_seconds = waited_seconds
        super().__init__(
            f"The DuckDB file {path} stayed locked by another process for {waited_seconds:.0f}s "
            f"({detail}). DuckDB allows one writing process at a time: wait for the running sync "
            "or notebook to finish, raise REVTOPS_DB_LOCK_TIMEOUT, or use PostgreSQL "
            "(REVTOPS_DATABASE_URL=postgresql://...) for concurrent writers."
        )


class SyncBusyError(StoreError):
    """Another process's sync of this provider for this organization kept its lock past the
    wait (``REVTOPS_SYNC_LOCK_WAIT``): most likely hung, since a killed one releases it."""

    def __init__(self, org: str, provider: str, waited_seconds: float, holder: str | None) -> None:
        self.org = org
        self.provider = provider
        self.waited_seconds = waited_seconds
        super().__init__(
            f"another sync of {provider} for {org} still held its lock after {waited_seconds:.0f}s"
            f" of waiting ({holder or 'its holder is no longer visible'}); this sync did not run."
            " If that process is hung, stop it (its lock is released with its connection), or"
            " raise REVTOPS_SYNC_LOCK_WAIT."
        )


class SchemaError(StoreError):
    """The database schema does not match what this version expects."""


class UpsertError(StoreError):
    def __init__(self, table: str, problem: str) -> None:
        self.table = table
        super().__init__(f"upsert into {table}: {problem}")


class QueryError(StoreError):
    """A read-only query failed; the message is safe to show to the user and to the model."""


class QueryRefusedError(QueryError):
    """The query tried something the read-only path does not allow."""


class QueryTimeoutError(QueryError):
    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        super().__init__(
            f"The query ran longer than {timeout_seconds:g}s and was cancelled. "
            "Narrow it with filters, aggregate, or add a LIMIT."
        )


class ArtifactSpecError(RevtopsError):
    """A chart, table, report or dashboard spec cannot be built as asked.

    The message is written for the model that wrote the spec: which field, what is allowed, and
    (for a column problem) the columns the query actually returned, so it can fix the spec.
    ``field`` is the spec path that is wrong (``items[1].y``), or None for the spec as a whole.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ArtifactNotFoundError(RevtopsError):
    """No artifact ``artifact_id`` in the organization (or none of that id at all)."""

    def __init__(self, artifact_id: uuid.UUID | str, org: str) -> None:
        self.artifact_id = artifact_id
        super().__init__(f"no artifact {artifact_id} in organization {org!r}")


class ConversationNotFoundError(RevtopsError):
    """No conversation ``conversation_id`` in the organization."""

    def __init__(self, conversation_id: uuid.UUID, org: str) -> None:
        self.conversation_id = conversation_id
        super().__init__(f"no conversation {conversation_id} in organization {org!r}")


class VerifiedQueryError(RevtopsError):
    """A verified query was asked for by an unknown name or with a bad parameter.

    ``query`` is the name asked for; ``param`` the offending parameter, if one is to blame. The
    message is written for the model as much as for people: it lists what would be accepted.
    """

    def __init__(self, query: str, problem: str, *, param: str | None = None) -> None:
        self.query = query
        self.param = param
        where = f"verified query {query!r}" + (f", parameter {param!r}" if param else "")
        super().__init__(f"{where}: {problem}")


class ForeignOriginError(ConnectorError):
    """A URL would take credentials outside the origin a provider (or Nango) is configured with.

    Raised before anything is sent: ``refused`` is the origin (scheme, host, port) that was
    refused, never a path, query or token; ``allowed`` the origins credentials may go to;
    ``why`` what carried the URL (a pagination link, a redirect, Nango's instance URL).
    """

    def __init__(
        self,
        provider: str,
        endpoint: str,
        status: int | None,
        *,
        refused: str,
        allowed: tuple[str, ...],
        why: str,
    ) -> None:
        self.refused = refused
        self.allowed = allowed
        self.why = why
        super().__init__(
            provider,
            endpoint,
            status,
            f"refused to send credentials to {refused}: {why} points outside the allowed "
            f"origin {' or '.join(allowed)}; nothing was sent there (check the provider's base "
            "URL setting, or a proxy that rewrites links)",
        )


# --- scheduled work (workflows) ------------------------------------------------------------------


class WorkflowError(RevtopsError):
    """A workflow that does not exist, or a request about one that cannot be carried out."""


class WorkflowBusyError(WorkflowError):
    """The workflow already has a run queued or running; one runs at a time."""


class WorkflowExistsError(WorkflowError):
    """A workflow of that name already exists in the organization."""

    def __init__(self, name: str, org: str) -> None:
        self.name = name
        self.org = org
        super().__init__(f"a workflow named {name!r} already exists in {org!r}")


class WorkflowInputError(WorkflowError):
    """A workflow's name, schedule or another field is malformed; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(problem)


class WorkflowParameterError(WorkflowInputError):
    """A parameter the notebook does not declare, or a value it cannot take.

    ``parameter`` is the offending name exactly as given (shown with ``repr``, so a name
    carrying a newline stays on one line); ``notebook`` the notebook's file name.
    """

    def __init__(self, parameter: str, notebook: str, problem: str) -> None:
        self.parameter = parameter
        self.notebook = notebook
        super().__init__("parameters", f"parameter {parameter!r} {problem}")


class ScheduleError(WorkflowInputError, ValueError):
    """A cron expression or time zone that cannot be used; ``field`` is ``cron`` or ``timezone``."""

    def __init__(self, problem: str, *, field: str = "cron") -> None:
        super().__init__(field, problem)


class WorkflowLimitError(WorkflowError):
    """An organization reached a cap on workflows or runs.

    ``setting`` is the variable that sets the cap, ``limit`` its value; ``retry_after`` the
    seconds after which the same request can succeed, or None when only removing something
    (a workflow, a run in flight) will make room.
    """

    def __init__(
        self, message: str, *, setting: str, limit: int, retry_after: float | None = None
    ) -> None:
        self.setting = setting
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(message)


class KernelBindingError(RevtopsError):
    """A web-app kernel cannot be handed to this user (``kernel_id`` is the kernel's id)."""

    def __init__(self, kernel_id: str, problem: str) -> None:
        self.kernel_id = kernel_id
        super().__init__(f"kernel {kernel_id} {problem}")


class TenancyError(RevtopsError):
    """A request about organizations, users or the waitlist that cannot be honoured."""


class TenancyConflictError(TenancyError):
    """It clashes with what exists: a domain another organization uses, an invitee who has
    already joined (the extension answers 409)."""


class IdentityError(RevtopsError):
    """A web-app kernel has no verified identity; the message says why."""


class PeriodError(RevtopsError, ValueError):
    """A period name, date or time zone a report cannot use."""


class UnknownOrganizationError(RevtopsError):
    """An organization id the store does not know (``known`` lists the ones it does)."""

    def __init__(self, org: str, known: list[str]) -> None:
        import difflib

        self.org = org
        self.known = known
        close = difflib.get_close_matches(org, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.suggestion = close[0] if close else None
        listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        super().__init__(f"unknown organization {org!r}{hint}. Known organizations: {listed}")


class CostCapError(RevtopsError):
    """An organization reached a cost cap: no Messages API call until it resets.

    ``period`` is ``day`` or ``month``; ``cap_usd`` the cap, ``spent_usd`` what was spent (and
    held by calls in flight); ``setting`` where the cap comes from (a variable, or the
    organization's own cap); ``resets_at`` when the period ends (UTC)."""

    def __init__(
        self,
        *,
        org: str,
        period: str,
        cap_usd: Decimal,
        spent_usd: Decimal,
        setting: str,
        resets_at: datetime,
    ) -> None:
        self.org = org
        self.period = period
        self.cap_usd = cap_usd
        self.spent_usd = spent_usd
        self.setting = setting
        self.resets_at = resets_at
        name = "daily" if period == "day" else "monthly"
        super().__init__(
            f"Organization {org!r} reached its {name} cost cap of ${cap_usd:,.2f} "
            f"(${spent_usd:,.2f} spent; {setting}). Questions to the model resume when it "
            f"resets at {resets_at:%Y-%m-%d %H:%M} UTC; verified questions still answer. An "
            f"admin can raise it: revtops usage --org {org} --set-{name}-cap USD."
        )


class QuotaImportError(RevtopsError):
    """A quota file that cannot be imported; nothing of it was stored.

    ``source`` names the file; ``problems`` lists every problem found, each naming its line and
    column; ``unknown_owners`` the emails that match no owner of the organization."""

    def __init__(
        self, source: str, problems: list[str], unknown_owners: tuple[str, ...] = ()
    ) -> None:
        self.source = source
        self.problems = list(problems)
        self.unknown_owners = list(unknown_owners)
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        lines = "\n".join(f"  - {p}" for p in shown) + (f"\n  … and {more} more" if more else "")
        super().__init__(f"{source}: nothing imported; fix these and import again:\n{lines}")


class RiskSettingsError(RevtopsError):
    """An organization's deal-risk threshold was refused: ``name`` is the threshold
    (``risk_ghosted_days``...), ``problem`` what is wrong with the value given."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"deal-risk threshold {name}: {problem}")


class DealNotFoundError(RevtopsError):
    """No live deal ``deal_id`` in the organization (another organization's deal is not
    found either); ``problem`` says what is wrong with the id when it is not one."""

    def __init__(self, deal_id: str, org: str, *, problem: str | None = None) -> None:
        self.deal_id = deal_id
        self.org = org
        what = problem or f"no such deal in organization {org!r}"
        super().__init__(f"deal {deal_id!r}: {what}")
