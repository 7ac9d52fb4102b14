"""``propertiesWithHistory`` for HubSpot records: every version of a property, newest first.

Deals keep their stage path (``Deal.history``: stage, ms pairs), so ``dealstage`` answers with
one version per stage change, as HubSpot does; ``amount`` and ``closedate`` with one per value
they took (``deal_history``), the first at creation. Other properties have no recorded past in
the sandbox: they answer with their current value, stamped with the record's last modification.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from revtops_sandbox.company import DAY_MS, HS_USER_ID_BASE, PIPELINES, Deal, Record, iso_ms
from revtops_sandbox.deal_history import amount_versions, close_versions
from revtops_sandbox.hubspot_schema import HubSpotSchema

Version = dict[str, Any]


def properties_with_history(
    schema: HubSpotSchema, object_type: str, rec: Record, names: Sequence[str]
) -> dict[str, list[Version]]:
    """The ``propertiesWithHistory`` object of ``rec`` for ``names`` (HubSpot ignores names
    it does not know)."""
    out: dict[str, list[Version]] = {}
    table = schema.props[object_type]
    for name in names:
        prop = table.get(name)
        if prop is None:
            continue
        if name == "dealstage" and isinstance(rec, Deal):
            out[name] = stage_versions(rec)
        elif name in ("amount", "closedate") and isinstance(rec, Deal):
            out[name] = field_versions(rec, name)
        elif prop.role == "created":
            out[name] = [_version(iso_ms(rec.created_ms), rec.created_ms, "CRM_UI", rec)]
        elif prop.role == "updated":
            out[name] = [_version(iso_ms(rec.updated_ms), rec.updated_ms, "CALCULATED", rec)]
        elif not prop.role:
            out[name] = [_version(prop.text(rec), rec.updated_ms, "CRM_UI", rec)]
    return out


def stage_versions(deal: Deal) -> list[Version]:
    """The deal's stage changes, newest first (HubSpot's order)."""
    stages = PIPELINES[deal.pipeline].stages
    h = deal.history
    versions = [
        _version(stages[h[k]].hs_id, h[k + 1], "CRM_UI" if k else "DEALS", deal)
        for k in range(0, len(h), 2)
    ]
    versions.reverse()
    return versions


def field_versions(deal: Deal, name: str) -> list[Version]:
    """The deal's amounts (``"12500.00"``) or close dates (midnight UTC), newest first."""
    if name == "amount":
        texts = [(ms, f"{cents / 100:.2f}") for ms, cents in amount_versions(deal)]
    else:
        texts = [(ms, iso_ms(day * DAY_MS)) for ms, day in close_versions(deal)]
    versions = [
        _version(text, ms, "CRM_UI" if k else "DEALS", deal) for k, (ms, text) in enumerate(texts)
    ]
    versions.reverse()
    return versions


def _version(value: Any, ms: int, source: str, rec: Record) -> Version:
    owner = getattr(rec, "owner", -1)
    version: Version = {"value": value, "timestamp": iso_ms(ms), "sourceType": source}
    if owner >= 0:
        version["updatedByUserId"] = HS_USER_ID_BASE + owner
    return version
