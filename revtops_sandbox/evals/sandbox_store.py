"""Fill a store with the sandbox company the golden set is about.

The eval syncs the sandbox's HubSpot API over loopback (the real connector, normalizer and
upsert), so a question checks the whole path from provider JSON to SQL, and returns the
``Company`` the answers are derived from.
"""

from __future__ import annotations

from revtops_kernel.errors import RevtopsError
from revtops_kernel.settings import load_settings
from revtops_kernel.store.database import Database
from revtops_kernel.store.migrate import upgrade
from revtops_sandbox.company import Company
from revtops_sandbox.evals import EVAL_ORG, EVAL_SCALE, EVAL_SEED

__all__ = ["EVAL_ORG", "EVAL_SCALE", "EVAL_SEED", "EvalSetupError", "sync_sandbox"]


class EvalSetupError(RevtopsError):
    """The sandbox could not be synced into the eval's store."""


def sync_sandbox(db: Database, *, org: str, scale: float, seed: int) -> Company:
    """Serve the sandbox on loopback, sync its HubSpot data into ``db`` as ``org``."""
    from revtops_kernel.sync import run_sync
    from revtops_sandbox.server import SandboxServer

    upgrade(db)
    with SandboxServer(scale=scale, seed=seed) as sandbox:
        settings = load_settings(
            REVTOPS_DATABASE_URL=db.url.render_as_string(hide_password=False),
            REVTOPS_ORG=org,
            REVTOPS_HUBSPOT_BASE_URL=sandbox.hubspot_base_url,
            REVTOPS_HUBSPOT_TOKEN=sandbox.token,
        )
        result = run_sync(db, settings, "hubspot", org=org)
        if not result.ok:
            raise EvalSetupError(
                f"syncing the sandbox into {db.display_url} failed: {result.error}"
            )
        if result.counts.quarantined:
            raise EvalSetupError(
                f"{result.counts.quarantined} sandbox records were quarantined; the golden "
                "answers assume every record landed"
            )
        return sandbox.company
