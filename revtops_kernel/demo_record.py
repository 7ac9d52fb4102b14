"""What ``revtops demo`` left in a store: which sandbox company it synced, and where.

The sandbox serves its APIs only while ``revtops demo`` runs, so a later ``revtops app`` on the
same store has data but nothing to sync from. The demo writes this record beside the store, and
the app reads it to say so, and what to run, instead of showing integrations as "Not connected"
with no way forward.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from revtops_kernel.providers import ALL_PROVIDERS, settings_token
from revtops_kernel.settings import Settings

FILE_NAME = "demo.json"


@dataclass(frozen=True)
class DemoRecord:
    database: str  # the store's display URL (no password)
    organization: str
    other_organization: str  # the second CRM's view of the same company
    crm: str
    scale: float
    seed: int
    anchor: str  # the company's "today", YYYY-MM-DD
    synced_at: str  # ISO 8601, UTC

    def command(self) -> str:
        """The command that serves the app on a live sandbox of the same company."""
        return f"revtops demo --scale {self.scale:g} --seed {self.seed} --crm {self.crm}"


def record_path(settings: Settings) -> Path:
    return settings.home / FILE_NAME


def write_demo_record(settings: Settings, record: DemoRecord) -> Path:
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(record), indent=2) + "\n")
    return path


def read_demo_record(settings: Settings) -> DemoRecord | None:
    """The demo's record for this home, or None (absent or unreadable: not worth failing on)."""
    try:
        data = json.loads(record_path(settings).read_text())
        return DemoRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def demo_without_sandbox_hint(settings: Settings, database: str) -> str | None:
    """One line for an app started on the demo's store without its sandbox, else None."""
    record = read_demo_record(settings)
    if record is None or record.database != database or _has_provider_tokens(settings):
        return None
    return (
        f"this store holds the demo company synced by `revtops demo` ({record.synced_at[:10]}); "
        "its sandbox runs only inside `revtops demo`, so Sync now has nothing to reach here. "
        f"To sync and chat on a live sandbox, run: {record.command()}"
    )


def _has_provider_tokens(settings: Settings) -> bool:
    """Credentials of a real provider set since the demo: the app syncs those, no hint."""
    tokens = (settings_token(settings, provider) for provider in ALL_PROVIDERS)
    return settings.nango_secret_key is not None or any(t is not None for t in tokens)
