"""Fixtures for artifact tests: the store loaded with two organizations' deals."""

from __future__ import annotations

import pytest
from artifact_samples import load_sales

from revtops_kernel.store import Database


@pytest.fixture
def sales(db: Database) -> Database:
    load_sales(db)
    return db
