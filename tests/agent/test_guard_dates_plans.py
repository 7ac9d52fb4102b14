"""The date rewrite seen from PostgreSQL's planner: EXPLAIN of guarded SQL as the organization's
role, under row-level security (issue 13, finding 3).

A window ``occurred_at >= DATE '2026-10-01'`` goes through the non-leakproof operator
timestamptz_ge_date, so under RLS the planner may not read the column's histogram and guesses
1 row; the guard casts the date to TIMESTAMPTZ and the estimate comes from the statistics.
Each test also plans the SQL without the cast, to show it would fail without the rewrite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import explain_as_org
from sqlalchemy import text
from sqlalchemy.engine import make_url

from revtops_kernel.agent.guard import guard_sql
from revtops_kernel.store import Database, org_roles, upgrade
from revtops_kernel.store.bookkeeping import ensure_organization
from revtops_kernel.store.scratch import scratch_postgres

pytestmark = pytest.mark.postgres

ORG = "dateplans"
ACTIVITIES = 40_000  # two years of them (2024-11-01 to 2026-11-01); a month holds ~1/24
DEALS = 2_000


@pytest.fixture(scope="module")
def store(postgres_url: str) -> Iterator[Database]:
    admin = make_url(postgres_url).set(database="postgres")
    with scratch_postgres(admin, prefix="p_dateplans") as url:
        db = Database(url)
        upgrade(db)
        with db.begin() as conn:
            ensure_organization(conn, ORG)
            conn.execute(
                text(
                    "INSERT INTO deals (id, organization_id, source_system, source_id, name, "
                    "is_closed, created_at) SELECT md5('d' || g)::uuid, :org, 'hubspot', "
                    "'d' || g, 'Deal ' || g, g % 3 = 0, "
                    "TIMESTAMPTZ '2024-11-01' + (g * 730.0 / :n) * INTERVAL '1 day' "
                    "FROM generate_series(1, :n) g"
                ),
                {"org": ORG, "n": DEALS},
            )
            conn.execute(
                text(
                    "INSERT INTO activities (id, organization_id, source_system, source_id, "
                    "activity_type, occurred_at, deal_id) "
                    "SELECT md5('a' || g)::uuid, :org, 'hubspot', 'a' || g, "
                    "(ARRAY['meeting', 'email', 'call', 'note'])[1 + g % 4], "
                    "TIMESTAMPTZ '2024-11-01' + (g * 730.0 / :n) * INTERVAL '1 day', "
                    "md5('d' || (1 + g % :deals))::uuid FROM generate_series(1, :n) g"
                ),
                {"org": ORG, "n": ACTIVITIES, "deals": DEALS},
            )
            conn.execute(text("ANALYZE deals"))
            conn.execute(text("ANALYZE activities"))
            org_roles.ensure_org_role(conn, ORG)
        try:
            yield db
        finally:
            db.dispose()


def _plan(db: Database, sql: str) -> dict[str, Any]:
    """EXPLAIN (FORMAT JSON) of ``sql`` (already guarded) as the organization's role."""
    return explain_as_org(db, ORG, sql)


def _scans(plan: dict[str, Any], table: str) -> list[dict[str, Any]]:
    found = [plan] if plan.get("Relation Name") == table else []
    for child in plan.get("Plans", []):
        found += _scans(child, table)
    return found


def _count(db: Database, where: str, table: str = "activities") -> int:
    with db.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())


def _uncast(guarded: str) -> str:
    """The guarded SQL with the rewrite undone (the date constants compared as dates)."""
    undone = guarded.replace(" AS TIMESTAMPTZ)", "")
    return undone.replace("CAST(CAST(", "CAST(").replace("CAST(CURRENT_DATE", "(CURRENT_DATE")


WINDOWS = [
    (
        "SELECT activity_type, count(*) FROM activities WHERE deleted_at IS NULL "
        "AND occurred_at >= DATE '2026-10-01' AND occurred_at < DATE '2026-11-01' "
        "GROUP BY activity_type",
        "activities",
        "occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'",
    ),
    (
        "SELECT count(*) FROM activities a "
        "WHERE a.occurred_at BETWEEN DATE '2026-07-01' AND DATE '2026-09-30'",
        "activities",
        "occurred_at BETWEEN '2026-07-01' AND '2026-09-30'",
    ),
    (
        "SELECT count(*) FROM deals d WHERE NOT d.is_closed "
        "AND d.created_at >= DATE '2025-11-01' AND d.created_at < DATE '2026-05-01'",
        "deals",
        "NOT is_closed AND created_at >= '2025-11-01' AND created_at < '2026-05-01'",
    ),
]


@pytest.mark.parametrize(("sql", "table", "where"), WINDOWS, ids=[w[2] for w in WINDOWS])
def test_a_date_window_is_estimated_from_statistics(
    store: Database, sql: str, table: str, where: str
) -> None:
    actual = _count(store, where, table)
    assert actual > 200
    guarded = guard_sql(sql, dialect="postgres", org=ORG, max_rows=10_000).sql
    assert "AS TIMESTAMPTZ)" in guarded
    (scan,) = _scans(_plan(store, guarded), table)
    assert actual / 3 <= scan["Plan Rows"] <= actual * 3, (scan["Plan Rows"], actual)
    # Without the cast the planner guesses from defaults (the 1-row estimate of finding 3).
    (before,) = _scans(_plan(store, _uncast(guarded)), table)
    assert before["Plan Rows"] < actual / 10, (before["Plan Rows"], actual)


def test_a_window_on_activities_uses_its_time_index(store: Database) -> None:
    """Under RLS a non-leakproof qual cannot be an index condition either; cast, it can."""
    sql = (
        "SELECT count(*) FROM activities WHERE occurred_at >= DATE '2026-10-25' "
        "AND occurred_at < DATE '2026-11-01'"
    )
    guarded = guard_sql(sql, dialect="postgres", org=ORG, max_rows=10).sql
    (scan,) = _scans(_plan(store, guarded), "activities")
    assert "occurred_at" in (scan.get("Index Cond") or ""), scan
    (before,) = _scans(_plan(store, _uncast(guarded)), "activities")
    assert "occurred_at" not in (before.get("Index Cond") or ""), before


def test_a_columns_day_window_is_estimated_from_statistics(store: Database) -> None:
    """``CAST(occurred_at AS DATE) BETWEEN ...`` becomes a range on occurred_at itself."""
    where = "CAST(occurred_at AS DATE) BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'"
    actual = _count(store, where)
    assert actual > 1_000
    sql = f"SELECT count(*) FROM activities WHERE {where}"
    guarded = guard_sql(sql, dialect="postgres", org=ORG, max_rows=10).sql
    (scan,) = _scans(_plan(store, guarded), "activities")
    assert actual / 3 <= scan["Plan Rows"] <= actual * 3, (scan["Plan Rows"], actual)
    # As written (scoped by hand), the planner has no statistics for the cast: the default
    # 0.005 of the table for a range, 200 rows here.
    written = (
        f"SELECT count(*) FROM (SELECT * FROM activities WHERE organization_id = '{ORG}') "
        f"AS activities WHERE {where}"
    )
    (before,) = _scans(_plan(store, written), "activities")
    assert before["Plan Rows"] < actual / 5, (before["Plan Rows"], actual)
