"""Deterministic row ids for synced records.

A business row's id is a function of its natural key, so normalizers can point a deal at its
account (``record_id(org, "hubspot", "accounts", "9001")``) without reading the database, and
the store can fill a missing id in SQL with the same formula (``store.upsert``).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

try:  # CPython's own MD5: ~0.5 µs less per short key than OpenSSL's (hashlib.md5)
    from _md5 import md5 as _md5
except ImportError:  # a build without it
    _md5 = hashlib.md5

_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


class RecordId(uuid.UUID):
    """A ``uuid.UUID`` (equal to, and hashing like, the plain one) that carries its MD5 hex
    digest.

    A sync makes several ids per record and the store writes each as text: ``uuid.UUID()``'s
    validation and ``str()``'s formatting were ~8 µs of an id's ~9. Made from the digest
    directly, the id costs the hash; the store writes the digest itself (``hex``: PostgreSQL
    and DuckDB read 32 hex digits as the same UUID), and the dashed text is made only when
    asked for (``str``).
    """

    __slots__ = ("_hex",)
    _hex: str

    @property
    def hex(self) -> str:
        return self._hex

    def __str__(self) -> str:
        digest = self._hex
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (uuid.UUID, (self._hex,))  # pickles and copies as a plain UUID


def record_id(organization_id: str, source_system: str, table: str, source_id: str) -> uuid.UUID:
    """UUID made of the MD5 of ``org:system:table:source_id``.

    Only ``source_id`` may contain ``:``; it comes last, so distinct keys never collide by
    concatenation. The same expression in SQL is ``md5(org || ':' || ...)::uuid`` on both
    PostgreSQL and DuckDB, which is why MD5 (not uuid5's SHA-1) is used.
    """
    key = f"{organization_id}:{source_system}:{table}:{source_id}"
    digest = _md5(key.encode("utf-8")).hexdigest()
    value = _new(RecordId)
    _set(value, "int", int(digest, 16))
    _set(value, "is_safe", _UNKNOWN)
    _set(value, "_hex", digest)
    return value
