"""The providers Revtops syncs, by kind. A leaf module: the CLI reads it without importing sync."""

from __future__ import annotations

CRM_PROVIDERS: tuple[str, ...] = ("hubspot", "salesforce")
ACTIVITY_PROVIDERS: tuple[str, ...] = ("slack", "google_calendar")
ALL_PROVIDERS: tuple[str, ...] = CRM_PROVIDERS + ACTIVITY_PROVIDERS
