"""The providers Revtops syncs: their names, kinds and where their settings are. A leaf module:
the CLI, the schema and the credentials layer read it without importing sync.

How a provider's data is read and stored (its connector, normalizers, clean-up) is the sync's
registry, ``revtops_kernel.registry``; this module holds only the facts every layer shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pydantic import SecretStr

    from revtops_kernel.settings import Settings


class Provider(StrEnum):
    """A provider's name as stored (``source_system``, ``integrations.provider``)."""

    HUBSPOT = "hubspot"
    SALESFORCE = "salesforce"
    SLACK = "slack"
    GOOGLE_CALENDAR = "google_calendar"


ProviderKind = Literal["crm", "activity"]


@dataclass(frozen=True)
class ProviderInfo:
    provider: Provider
    display_name: str  # as people read it: "Google Calendar"
    kind: ProviderKind
    nango_key: str  # Nango's integration id (provider config key)
    token_variable: str  # the environment variable of a single-user token
    # the Settings field holding that token (typed: no getattr on a built name)
    settings_token: Callable[[Settings], SecretStr | None]


PROVIDERS: Mapping[Provider, ProviderInfo] = {
    info.provider: info
    for info in (
        ProviderInfo(
            Provider.HUBSPOT,
            "HubSpot",
            "crm",
            "hubspot",
            "REVTOPS_HUBSPOT_TOKEN",
            lambda settings: settings.hubspot_token,
        ),
        ProviderInfo(
            Provider.SALESFORCE,
            "Salesforce",
            "crm",
            "salesforce",
            "REVTOPS_SALESFORCE_TOKEN",
            lambda settings: settings.salesforce_token,
        ),
        ProviderInfo(
            Provider.SLACK,
            "Slack",
            "activity",
            "slack",
            "REVTOPS_SLACK_TOKEN",
            lambda settings: settings.slack_token,
        ),
        ProviderInfo(
            Provider.GOOGLE_CALENDAR,
            "Google Calendar",
            "activity",
            "google-calendar",
            "REVTOPS_GOOGLE_CALENDAR_TOKEN",
            lambda settings: settings.google_calendar_token,
        ),
    )
}

# In precedence order (a CRM listed first wins a conflict between CRMs: normalize/identity.py).
CRM_PROVIDERS: tuple[str, ...] = tuple(p.value for p, i in PROVIDERS.items() if i.kind == "crm")
ACTIVITY_PROVIDERS: tuple[str, ...] = tuple(
    p.value for p, i in PROVIDERS.items() if i.kind == "activity"
)
ALL_PROVIDERS: tuple[str, ...] = CRM_PROVIDERS + ACTIVITY_PROVIDERS


def provider_info(name: str) -> ProviderInfo:
    """The provider called ``name``; ``ValueError`` naming the choices for any other name."""
    try:
        return PROVIDERS[Provider(name)]
    except ValueError:
        raise ValueError(
            f"unknown provider {name!r}; expected one of {', '.join(ALL_PROVIDERS)}"
        ) from None


def settings_token(settings: Settings, provider: str) -> SecretStr | None:
    """The single-user token settings hold for ``provider``, if any."""
    return provider_info(provider).settings_token(settings)


def provider_for_nango_key(key: str) -> Provider | None:
    """Our provider for a Nango provider config key (``google-calendar`` -> google_calendar)."""
    for info in PROVIDERS.values():
        if key in (info.nango_key, info.provider.value):
            return info.provider
    return None
