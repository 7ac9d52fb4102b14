"""Deal-contact links a CRM no longer lists: found by comparing versions, soft-deleted.

HubSpot has no record per deal-contact link: every read of a deal brings its whole contact
list, and the normalizer writes one ``deal_contacts`` row per listed contact stamped with the
deal's ``updated_at``. A link the deal's newest version no longer lists is therefore the only
kind of live link older than its deal; this pass marks those deleted as of the deal's change.
It reads only the store, so it is idempotent and crash-safe: a sync killed before it ran
leaves the stale links for the next sync's pass. A contact added back later arrives with the
deal's newer version and the upsert revives the row (``deleted_at`` NULL again).

Salesforce needs no pass: OpportunityContactRole is a record of its own, and a removed one
comes back from ``queryAll`` with ``IsDeleted``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from revtops_kernel.store.schema import metadata

_CHUNK = 5_000


def prune_removed_deal_contacts(conn: Connection, org: str, connector: Any = None) -> int:
    """Soft-delete the organization's HubSpot deal-contact links older than their deal; returns
    how many. (``connector`` is unused: the signature of ``ProviderSpec.after_streams``.)"""
    links, deals = metadata.tables["deal_contacts"], metadata.tables["deals"]
    stale = conn.execute(
        select(links.c.id, deals.c.updated_at)
        .join(deals, deals.c.id == links.c.deal_id)
        .where(
            links.c.organization_id == org,
            links.c.source_system == "hubspot",
            links.c.deleted_at.is_(None),
            links.c.updated_at < deals.c.updated_at,
        )
    ).all()
    by_time: dict[Any, list[Any]] = {}
    for link_id, changed_at in stale:
        by_time.setdefault(changed_at, []).append(link_id)
    for changed_at, ids in by_time.items():
        for start in range(0, len(ids), _CHUNK):
            conn.execute(
                links.update()
                .where(links.c.id.in_(ids[start : start + _CHUNK]))
                .values(deleted_at=changed_at, updated_at=changed_at)
            )
    return len(stale)
