"""``record_id``: the ids a sync has always written, made faster, and the SQL formula's ids."""

from __future__ import annotations

import copy
import hashlib
import pickle
import uuid

import pytest
from sqlalchemy import text

from revtops_kernel.ids import record_id
from revtops_kernel.store import Database

KEYS = [
    ("acme", "hubspot", "deals", "9001"),
    ("acme", "salesforce", "accounts", "001Dn00000AbCdEIAX"),
    ("org-ü", "slack", "activities", "C0123:1700000000.000100"),  # ':' and non-ASCII
    ("", "google_calendar", "activities", ""),
]


def reference(org: str, system: str, table: str, source_id: str) -> uuid.UUID:
    """The formula as it was first written: uuid.UUID of the MD5 hex digest."""
    key = f"{org}:{system}:{table}:{source_id}"
    return uuid.UUID(hashlib.md5(key.encode("utf-8")).hexdigest())


@pytest.mark.parametrize("key", KEYS)
def test_record_id_is_the_md5_uuid_it_always_was(key: tuple[str, str, str, str]) -> None:
    made, expected = record_id(*key), reference(*key)
    assert isinstance(made, uuid.UUID)
    assert made == expected and expected == made
    assert hash(made) == hash(expected)
    assert str(made) == str(expected)
    assert made.hex == expected.hex and made.bytes == expected.bytes
    assert {expected: "row"}[made] == "row"
    for twin in (pickle.loads(pickle.dumps(made)), copy.deepcopy(made), copy.copy(made)):
        assert twin == expected and str(twin) == str(expected)


def test_record_id_matches_the_stores_sql_formula(db: Database) -> None:
    """upsert fills a missing id with md5(...)::uuid; both backends give record_id's value."""
    with db.connect() as conn:
        for org, system, table, source_id in KEYS:
            stored = conn.execute(
                text(
                    "SELECT CAST(md5(:org || ':' || :system || ':' || :table || ':' || :sid) "
                    "AS UUID)"
                ),
                {"org": org, "system": system, "table": table, "sid": source_id},
            ).scalar_one()
            assert uuid.UUID(str(stored)) == record_id(org, system, table, source_id)
