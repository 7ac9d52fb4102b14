"""The adversarial corpus against real stores: every entry is refused or contained.

Both backends hold two organizations; queries run as ``acme`` through ``run_guarded`` (guard,
then the read-only path). A contained query may run but returns nothing of ``globex``'s, writes
nothing, and stops at the row cap or the (short) timeout.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from adversarial_sql import (
    CALLER,
    CONTAINED,
    CORPUS,
    MARKER,
    REFUSED,
    Attack,
    load_two_orgs,
    truncate_readable,
)
from sqlalchemy import text

from revtops_kernel.agent.guard import guard_sql, run_guarded
from revtops_kernel.errors import QueryError, QueryRefusedError
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.schema import readable_tables

MAX_ROWS = 50
TIMEOUT = 1.5


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """Both organizations loaded once per backend for the whole module."""
    if request.param == "duckdb":
        db = Database(f"duckdb:///{tmp_path_factory.mktemp('adv') / 'store.duckdb'}")
        upgrade(db)
        load_two_orgs(db)
        yield db
        db.dispose()
        return
    db = request.getfixturevalue("postgres_db")
    truncate_readable(db)
    load_two_orgs(db)
    yield db
    truncate_readable(db)


def _counts(db: Database) -> dict[str, int]:
    with db.connect() as conn:
        return {
            name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            for name in readable_tables()
        }


def _dialect(db: Database) -> str:
    return "duckdb" if db.is_duckdb else "postgres"


def _id(attack: Attack) -> str:
    return f"{attack.expect}:{attack.category}:{attack.sql[:60]}"


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 60
    assert len({a.sql for a in CORPUS}) == len(CORPUS)
    assert len({a.category for a in CORPUS}) >= 10


@pytest.mark.parametrize("attack", CORPUS, ids=_id)
def test_every_attack_is_refused_or_contained(store: Database, attack: Attack) -> None:
    dialect = _dialect(store)
    if dialect not in attack.dialects:
        pytest.skip(f"{dialect}: not applicable")
    if attack.expect == REFUSED:  # refused before anything reaches the database
        with pytest.raises(QueryRefusedError, match="refused"):
            guard_sql(attack.sql, dialect=dialect, org=CALLER, max_rows=MAX_ROWS)
        return
    assert attack.expect == CONTAINED
    before = _counts(store)
    try:
        result = run_guarded(store, attack.sql, org=CALLER, max_rows=MAX_ROWS, timeout=TIMEOUT)
    except QueryRefusedError:
        pytest.fail(f"a contained attack should run rewritten, not be refused: {attack.sql}")
    except QueryError as exc:  # a timeout or a database error: nothing came back
        assert MARKER not in str(exc)
    else:
        assert result.row_count <= MAX_ROWS
        assert MARKER not in result.frame.to_csv()
        frame = result.frame
        org_values = frame.loc[:, frame.columns == "organization_id"].to_numpy().ravel()
        assert set(org_values) <= {CALLER}
    assert _counts(store) == before
