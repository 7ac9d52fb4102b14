"""What every handler of the extension shares: settings, the store, the token verifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from revtops_kernel.settings import Settings, load_settings
from revtops_kernel.store import Database, upgrade

from .supabase import SupabaseVerifier

SETTINGS_KEY = "revtops"


@dataclass
class Context:
    settings: Settings
    db: Database
    limits: dict[str, Any] = field(default_factory=dict)  # rate limiters by name

    @classmethod
    def create(cls, settings: Settings | None = None) -> Context:
        settings = settings or load_settings()
        db = Database.from_settings(settings)
        upgrade(db)
        return cls(settings, db)

    @cached_property
    def verifier(self) -> SupabaseVerifier | None:
        """None when sign-in is not configured (a local JupyterLab keeps Jupyter's own auth)."""
        if self.settings.supabase_url is None:
            return None
        secret = self.settings.supabase_jwt_secret
        return SupabaseVerifier(
            supabase_url=str(self.settings.supabase_url),
            jwt_secret=secret.get_secret_value() if secret else None,
        )


def context_of(web_settings: dict[str, Any]) -> Context:
    found = web_settings.get(SETTINGS_KEY)
    if not isinstance(found, Context):
        raise RuntimeError("the revtops server extension is not loaded")
    return found
