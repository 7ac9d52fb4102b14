"""Deterministic row ids for synced records.

A business row's id is a function of its natural key, so normalizers can point a deal at its
account (``record_id(org, "hubspot", "accounts", "9001")``) without reading the database, and
the store can fill a missing id in SQL with the same formula (``store.upsert``).
"""

from __future__ import annotations

import hashlib
import uuid


def record_id(organization_id: str, source_system: str, table: str, source_id: str) -> uuid.UUID:
    """UUID made of the MD5 of ``org:system:table:source_id``.

    Only ``source_id`` may contain ``:``; it comes last, so distinct keys never collide by
    concatenation. The same expression in SQL is ``md5(org || ':' || ...)::uuid`` on both
    PostgreSQL and DuckDB, which is why MD5 (not uuid5's SHA-1) is used.
    """
    key = f"{organization_id}:{source_system}:{table}:{source_id}"
    return uuid.UUID(hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest())
