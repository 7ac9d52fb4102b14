"""A `SlackPoster` with an organization's Slack credentials, found as the sync finds them.

The connector (`connectors.slack_post`) knows nothing of the database; which credentials an
organization posts with (its Nango connection when one is recorded, else
``REVTOPS_SLACK_TOKEN``) is a question for the store, so it is asked here.
"""

from __future__ import annotations

import httpx

from revtops_kernel.connectors.credentials import NangoConnection
from revtops_kernel.connectors.slack_post import SlackPoster
from revtops_kernel.settings import Settings
from revtops_kernel.store.database import Database
from revtops_kernel.sync import nango_connection_for


def slack_poster(settings: Settings, http: httpx.Client, *, org: str | None = None) -> SlackPoster:
    """A poster for ``org`` (default: ``settings.org``) over ``http``."""
    return SlackPoster.from_settings(
        settings, http, nango_connection=_nango_connection(settings, org or settings.org)
    )


def _nango_connection(settings: Settings, org: str) -> NangoConnection | None:
    if settings.nango_secret_key is None:
        return None  # without Nango, the token comes from settings
    db = Database.from_settings(settings)
    try:
        with db.connect() as conn:
            return nango_connection_for(conn, org, "slack")
    finally:
        db.dispose()
