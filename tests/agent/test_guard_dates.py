"""The guard casts the date side of a timestamptz comparison to TIMESTAMPTZ (guard_dates).

Without a database: which shapes are rewritten and which are left alone. With one (both
backends): every rewritten shape returns what the SQL as written returns, around the edges of
a day (23:30 and 00:00 UTC), in the read path's UTC and in another session TimeZone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlglot
from adversarial_sql import truncate_readable
from sqlalchemy import text
from sqlglot import exp

from revtops_kernel.agent.guard import guard_sql, run_guarded
from revtops_kernel.store import Database, upgrade
from revtops_kernel.store.bookkeeping import ensure_organization
from revtops_kernel.store.upsert import upsert

DIALECTS = ["duckdb", "postgres"]
ORG = "dates"


def _timestamptz_casts(tree: exp.Expr, dialect: str) -> list[str]:
    return [
        node.this.sql(dialect)
        for node in tree.find_all(exp.Cast)
        if node.to.this is exp.DataType.Type.TIMESTAMPTZ
    ]


def casts(sql: str, dialect: str = "postgres") -> list[str]:
    """The expressions the guard cast to TIMESTAMPTZ (beyond the casts written), as SQL."""
    out = sqlglot.parse_one(guard_sql(sql, dialect=dialect, org=ORG, max_rows=100).sql, dialect)
    found = _timestamptz_casts(out, dialect)
    for written in _timestamptz_casts(sqlglot.parse_one(sql, dialect), dialect):
        found.remove(written)
    return found


# (sql, what is cast): every one a timestamptz column of a business table against a constant.
REWRITTEN: list[tuple[str, list[str]]] = [
    (
        "SELECT count(*) FROM activities a WHERE a.occurred_at >= DATE '2026-10-01' "
        "AND a.occurred_at < DATE '2026-11-01'",
        ["CAST('2026-10-01' AS DATE)", "CAST('2026-11-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= DATE '2026-10-01'",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE activities.occurred_at > DATE '2026-10-01'",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE DATE '2026-10-01' <= occurred_at",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities a "
        "WHERE a.occurred_at BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'",
        ["CAST('2026-10-01' AS DATE)", "CAST('2026-10-31' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities a WHERE a.occurred_at BETWEEN DATE '2026-10-01' AND now()",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities a WHERE a.occurred_at NOT BETWEEN DATE '2026-10-01' "
        "AND DATE '2026-10-31'",
        ["CAST('2026-10-01' AS DATE)", "CAST('2026-10-31' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at = DATE '2026-10-01' "
        "OR occurred_at <> DATE '2026-10-02'",
        ["CAST('2026-10-01' AS DATE)", "CAST('2026-10-02' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities "
        "WHERE occurred_at IN (DATE '2026-10-01', DATE '2026-10-02')",
        ["CAST('2026-10-01' AS DATE)", "CAST('2026-10-02' AS DATE)"],
    ),
    ("SELECT count(*) FROM activities WHERE occurred_at >= CURRENT_DATE", ["CURRENT_DATE"]),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= CURRENT_DATE - 14",
        ["CURRENT_DATE - 14"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at < 1 + CURRENT_DATE",
        ["1 + CURRENT_DATE"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= (CURRENT_DATE - 30)",
        ["(CURRENT_DATE - 30)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= DATE '2026-11-01' - 7 - 7",
        ["CAST('2026-11-01' AS DATE) - 7 - 7"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= CURRENT_DATE - INTERVAL '14 days'",
        ["CURRENT_DATE - INTERVAL '14 DAYS'"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= TIMESTAMP '2026-10-01 12:30:00'",
        ["CAST('2026-10-01 12:30:00' AS TIMESTAMP)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= CAST('2026-10-01' AS DATE)",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= '2026-10-01'::date",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= CAST(now() AS DATE)",
        ["CAST(NOW() AS DATE)"],
    ),
    # the other timestamptz columns, in joins, subqueries and CTE bodies
    (
        "SELECT count(*) FROM deals d WHERE d.created_at < DATE '2026-10-02' AND NOT EXISTS ("
        "SELECT 1 FROM activities a WHERE a.deal_id = d.id AND a.occurred_at >= DATE "
        "'2026-10-02')",
        ["CAST('2026-10-02' AS DATE)", "CAST('2026-10-02' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM deals d WHERE EXISTS (SELECT 1 FROM activities a "
        "WHERE a.deal_id = d.id AND d.stage_entered_at < DATE '2026-10-02')",
        ["CAST('2026-10-02' AS DATE)"],
    ),
    (
        "SELECT d.name FROM deals d JOIN activities a ON a.deal_id = d.id "
        "AND a.occurred_at >= DATE '2026-10-18' AND a.ended_at < DATE '2026-11-01'",
        ["CAST('2026-10-18' AS DATE)", "CAST('2026-11-01' AS DATE)"],
    ),
    (
        "WITH moves AS (SELECT h.deal_id FROM deal_field_history h "
        "WHERE h.changed_at >= DATE '2026-10-01') SELECT count(*) FROM moves",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id "
        "WHERE h.entered_at >= DATE '2026-07-01' AND d.updated_at < DATE '2026-10-01'",
        ["CAST('2026-07-01' AS DATE)", "CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FILTER (WHERE occurred_at >= DATE '2026-10-01') FROM activities",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "SELECT count(*) FROM activities WHERE occurred_at >= DATE '2026-10-01' "
        "UNION ALL SELECT count(*) FROM deals WHERE created_at >= DATE '2026-10-01'",
        ["CAST('2026-10-01' AS DATE)", "CAST('2026-10-01' AS DATE)"],
    ),
    # a CTE's output column that is a timestamptz column as it stands, beside a window, renamed,
    # through a second CTE
    (
        "WITH m AS (SELECT occurred_at FROM activities) SELECT count(*) FROM m "
        "WHERE m.occurred_at >= DATE '2026-10-01'",
        ["CAST('2026-10-01' AS DATE)"],
    ),
    (
        "WITH steps AS (SELECT h.deal_id, h.entered_at, lag(h.stage_id) OVER (PARTITION BY "
        "h.deal_id ORDER BY h.entered_at) AS previous FROM deal_stage_history h JOIN deals d "
        "ON d.id = h.deal_id) SELECT count(*) FROM steps st "
        "WHERE st.entered_at >= DATE '2026-01-01' AND st.entered_at < DATE '2026-11-01'",
        ["CAST('2026-01-01' AS DATE)", "CAST('2026-11-01' AS DATE)"],
    ),
    (
        "WITH m AS (SELECT a.occurred_at AS at FROM activities a), n AS (SELECT m.at AS t FROM m) "
        "SELECT count(*) FROM n WHERE n.t < DATE '2026-10-01'",
        ["CAST('2026-10-01' AS DATE)"],
    ),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("sql", "expected"), REWRITTEN, ids=[s for s, _ in REWRITTEN])
def test_a_date_constant_against_a_timestamptz_column_is_cast(
    dialect: str, sql: str, expected: list[str]
) -> None:
    found = casts(sql, dialect)
    # The dialects spell a few things their own way (INTERVAL '14' DAYS, NOW()): compare loosely.
    normal = [
        s.replace("INTERVAL '14' DAYS", "INTERVAL '14 DAYS'").replace("CURRENT_TIMESTAMP", "NOW()")
        for s in found
    ]
    assert sorted(normal) == sorted(expected)


# Each left as written: not a timestamptz column of a business table, or not a bounded
# date/timestamp constant, or a column the guard cannot tell for sure.
LEFT_ALONE: list[str] = [
    # a date column: date = date is already leakproof
    "SELECT count(*) FROM deals WHERE close_date >= DATE '2026-10-01'",
    "SELECT count(*) FROM deals WHERE close_date BETWEEN DATE '2026-10-01' AND DATE '2026-12-31'",
    # an untyped string is read as a timestamptz already
    "SELECT count(*) FROM activities WHERE occurred_at >= '2026-10-01'",
    # timestamptz on both sides already
    "SELECT count(*) FROM activities WHERE occurred_at >= now() - INTERVAL '14 days'",
    "SELECT count(*) FROM activities WHERE occurred_at >= date_trunc('month', CURRENT_DATE)",
    "SELECT count(*) FROM activities WHERE occurred_at >= CAST('2026-10-01' AS TIMESTAMPTZ)",
    # a column of another table, not a constant (an index on it may serve a join as it is)
    "SELECT count(*) FROM activities a JOIN deals d ON d.id = a.deal_id "
    "WHERE a.occurred_at >= d.close_date",
    # parameters: their values are not known here (a date past 294276 AD would fail the cast)
    "SELECT count(*) FROM activities WHERE occurred_at >= CAST(:start AS DATE)",
    "SELECT count(*) FROM activities WHERE occurred_at >= :start",
    # out of range or not a plain ISO date
    "SELECT count(*) FROM activities WHERE occurred_at < DATE '20000-01-01'",
    "SELECT count(*) FROM activities WHERE occurred_at < CAST('Oct 1 2026' AS DATE)",
    "SELECT count(*) FROM activities WHERE occurred_at < CAST('infinity' AS DATE)",
    "SELECT count(*) FROM activities WHERE occurred_at < CURRENT_DATE + 200000000",
    "SELECT count(*) FROM activities WHERE occurred_at < CURRENT_DATE + INTERVAL '900000 years'",
    "SELECT count(*) FROM activities WHERE occurred_at < CURRENT_DATE + a.duration_seconds",
    # a subquery's column, a CTE's unqualified one: their type is not looked into
    "WITH m AS (SELECT occurred_at FROM activities) SELECT count(*) FROM m "
    "WHERE occurred_at >= DATE '2026-10-01'",
    "SELECT count(*) FROM (SELECT occurred_at FROM activities) s "
    "WHERE s.occurred_at >= DATE '2026-10-01'",
    # a CTE's column that is not one plain timestamptz column as it stands
    "WITH m AS (SELECT max(occurred_at) AS occurred_at FROM activities) SELECT count(*) "
    "FROM m WHERE m.occurred_at >= DATE '2026-10-01'",
    "WITH m AS (SELECT CAST(occurred_at AS DATE) AS t FROM activities) SELECT count(*) "
    "FROM m WHERE m.t >= DATE '2026-10-01'",
    "WITH m AS (SELECT occurred_at FROM activities UNION ALL SELECT created_at FROM deals) "
    "SELECT count(*) FROM m WHERE m.occurred_at >= DATE '2026-10-01'",
    "WITH m AS (SELECT *, occurred_at FROM activities) SELECT count(*) FROM m "
    "WHERE m.occurred_at >= DATE '2026-10-01'",
    "WITH m(t) AS (SELECT occurred_at FROM activities) SELECT count(*) FROM m "
    "WHERE m.t >= DATE '2026-10-01'",
    "WITH RECURSIVE m AS (SELECT occurred_at FROM activities) SELECT count(*) FROM m "
    "WHERE m.occurred_at >= DATE '2026-10-01'",
    "WITH m AS (SELECT a.occurred_at, d.close_date AS occurred_at FROM activities a "
    "JOIN deals d ON d.id = a.deal_id) SELECT count(*) FROM m "
    "WHERE m.occurred_at >= DATE '2026-10-01'",
    # a CTE named like a table: its occurred_at is a date here
    "WITH activities AS (SELECT CAST(now() AS DATE) AS occurred_at) "
    "SELECT count(*) FROM activities WHERE occurred_at >= DATE '2026-10-01'",
    "WITH activities AS (SELECT CAST(now() AS DATE) AS occurred_at) "
    "SELECT count(*) FROM activities a WHERE a.occurred_at >= DATE '2026-10-01'",
    # columns renamed by the alias
    "SELECT count(*) FROM activities AS a(x, y) WHERE a.y >= DATE '2026-10-01'",
    # unqualified and ambiguous (both tables have created_at), or from outside its SELECT
    "SELECT count(*) FROM deals d JOIN activities a ON a.deal_id = d.id "
    "WHERE created_at >= DATE '2026-10-01'",
    "SELECT count(*) FROM deals WHERE EXISTS (SELECT 1 FROM pipelines p "
    "WHERE stage_entered_at >= DATE '2026-10-01')",
    # unqualified, and also the name of an output column that is something else
    "SELECT CAST(occurred_at AS DATE) AS occurred_at FROM activities "
    "WHERE occurred_at >= DATE '2026-10-01'",
    # a quoted alias with capitals (PostgreSQL and DuckDB fold it differently)
    'SELECT count(*) FROM activities "A" WHERE "A".occurred_at >= DATE \'2026-10-01\'',
    # not a comparison
    "SELECT occurred_at - DATE '2026-10-01' FROM activities",
    "SELECT DATE '2026-10-01', CURRENT_DATE - 14 FROM activities",
    # a column's day against something else than a bounded date constant, or not <, =, >...
    "SELECT count(*) FROM activities WHERE CAST(occurred_at AS DATE) <> DATE '2026-10-01'",
    "SELECT count(*) FROM activities a JOIN deals d ON d.id = a.deal_id "
    "WHERE CAST(a.occurred_at AS DATE) = d.close_date",
    "SELECT count(*) FROM activities WHERE CAST(occurred_at AS DATE) >= TIMESTAMP '2026-10-01'",
    "SELECT count(*) FROM activities WHERE CAST(occurred_at AS DATE) >= CAST(:start AS DATE)",
    "SELECT count(*) FROM activities "
    "WHERE CAST(occurred_at AS DATE) IN (DATE '2026-10-01', DATE '2026-10-02')",
    "SELECT count(*) FROM deals WHERE CAST(close_date AS DATE) = DATE '2026-10-01'",
    "WITH m AS (SELECT occurred_at FROM activities) SELECT count(*) FROM m "
    "WHERE CAST(occurred_at AS DATE) = DATE '2026-10-01'",
    # an unknown qualifier
    "SELECT count(*) FROM activities a WHERE b.occurred_at >= DATE '2026-10-01'",
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql", LEFT_ALONE)
def test_everything_else_is_left_as_written(dialect: str, sql: str) -> None:
    try:
        found = casts(sql, dialect)
    except Exception as exc:  # a shape this dialect refuses or cannot parse: nothing to cast
        pytest.skip(f"{dialect}: {exc}")
    assert found == []


def test_try_cast_is_left_as_written() -> None:
    for where in (
        "occurred_at >= TRY_CAST('2026-10-01' AS DATE)",
        "TRY_CAST(occurred_at AS DATE) = DATE '2026-10-01'",
    ):
        assert casts(f"SELECT count(*) FROM activities WHERE {where}", "duckdb") == []


# A timestamptz column read as a day, against a date constant: a range on the column.
OCT_1_TZ = "CAST(CAST('2026-10-01' AS DATE) AS TIMESTAMPTZ)"
OCT_2_TZ = "CAST(CAST('2026-10-02' AS DATE) AS TIMESTAMPTZ)"
DAY_RANGES: list[tuple[str, str]] = [
    (
        "CAST(occurred_at AS DATE) = DATE '2026-10-01'",
        f"(occurred_at >= {OCT_1_TZ} AND occurred_at < {OCT_2_TZ})",
    ),
    ("CAST(occurred_at AS DATE) >= DATE '2026-10-01'", f"occurred_at >= {OCT_1_TZ}"),
    ("CAST(occurred_at AS DATE) > DATE '2026-10-01'", f"occurred_at >= {OCT_2_TZ}"),
    ("CAST(occurred_at AS DATE) < DATE '2026-10-02'", f"occurred_at < {OCT_2_TZ}"),
    ("CAST(occurred_at AS DATE) <= DATE '2026-10-01'", f"occurred_at < {OCT_2_TZ}"),
    ("DATE '2026-10-01' >= CAST(occurred_at AS DATE)", f"occurred_at < {OCT_2_TZ}"),
    ("DATE '2026-10-01' < CAST(occurred_at AS DATE)", f"occurred_at >= {OCT_2_TZ}"),
    ("occurred_at::date >= DATE '2026-10-01'", f"occurred_at >= {OCT_1_TZ}"),
    (
        "CAST(occurred_at AS DATE) BETWEEN DATE '2026-09-30' AND DATE '2026-10-01'",
        f"(occurred_at >= CAST(CAST('2026-09-30' AS DATE) AS TIMESTAMPTZ) "
        f"AND occurred_at < {OCT_2_TZ})",
    ),
    (
        "CAST(occurred_at AS DATE) > CURRENT_DATE - 14",
        "occurred_at >= CAST((CURRENT_DATE - 14) + 1 AS TIMESTAMPTZ)",
    ),
    (
        "CAST(occurred_at AS DATE) = CURRENT_DATE",
        "(occurred_at >= CAST(CURRENT_DATE AS TIMESTAMPTZ) "
        "AND occurred_at < CAST((CURRENT_DATE) + 1 AS TIMESTAMPTZ))",
    ),
    ("CAST(occurred_at AS DATE) <= DATE '2026-12-31'", "occurred_at < CAST(CAST('2027-01-01'"),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("where", "range_"), DAY_RANGES, ids=[w for w, _ in DAY_RANGES])
def test_a_columns_day_against_a_date_becomes_a_range_on_the_column(
    dialect: str, where: str, range_: str
) -> None:
    sql = guard_sql(
        f"SELECT count(*) FROM activities WHERE {where}", dialect=dialect, org=ORG, max_rows=9
    ).sql
    assert range_ in sql
    assert "CAST(occurred_at AS DATE)" not in sql


# --- on both backends: the same rows as the SQL as written --------------------------------


def _around(day: date) -> list[datetime]:
    """Instants around the start of ``day`` (UTC): 23:30 and 23:59:59 before, 00:00, 00:30."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [
        midnight - timedelta(minutes=30),
        midnight - timedelta(seconds=1),
        midnight,
        midnight + timedelta(minutes=30),
        midnight + timedelta(hours=12),
    ]


TODAY = datetime.now(UTC).date()
INSTANTS = sorted(
    {
        t
        for day in (
            date(2026, 10, 1),
            date(2026, 10, 2),
            date(2026, 10, 31),
            date(2026, 11, 1),
            TODAY - timedelta(days=14),
            TODAY,
            TODAY + timedelta(days=1),
        )
        for t in _around(day)
    }
)
DEALS = 6


@pytest.fixture(
    scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    if request.param == "duckdb":
        db = Database(f"duckdb:///{tmp_path_factory.mktemp('dates') / 'store.duckdb'}")
        upgrade(db)
        _load(db)
        yield db
        db.dispose()
        return
    db = request.getfixturevalue("postgres_db")
    truncate_readable(db)
    _load(db)
    yield db
    truncate_readable(db)


def _id(kind: str, n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{ORG}/{kind}/{n}")


def _load(db: Database) -> None:
    base = {"organization_id": ORG, "source_system": "hubspot"}
    deals = [
        {
            **base,
            "id": _id("deal", i),
            "source_id": f"d{i}",
            "name": f"Deal {i}",
            "is_closed": False,
            "created_at": INSTANTS[(7 * i) % len(INSTANTS)],
            "stage_entered_at": INSTANTS[(11 * i + 3) % len(INSTANTS)],
        }
        for i in range(DEALS)
    ]
    activities = [
        {
            **base,
            "id": _id("activity", i),
            "source_id": f"a{i}",
            "activity_type": ["meeting", "email", "call"][i % 3],
            "occurred_at": t,
            "ended_at": t + timedelta(minutes=45),
            "deal_id": _id("deal", i % (DEALS - 1)),  # the last deal has no activity
        }
        for i, t in enumerate(INSTANTS)
    ]
    with db.begin() as conn:
        ensure_organization(conn, ORG)
        upsert(conn, "deals", deals)
        upsert(conn, "activities", activities)


def _between(lo: datetime, hi: datetime) -> int:
    return sum(lo <= t < hi for t in INSTANTS)


OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)

# (sql, the count when known from INSTANTS); every one is rewritten (asserted below).
EQUAL: list[tuple[str, int | None]] = [
    (
        "SELECT count(*) AS n FROM activities "
        "WHERE occurred_at >= DATE '2026-10-01' AND occurred_at < DATE '2026-11-01'",
        _between(OCT_1, NOV_1),
    ),
    (
        "SELECT count(*) AS n FROM activities a "
        "WHERE a.occurred_at BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'",
        sum(OCT_1 <= t <= datetime(2026, 10, 31, tzinfo=UTC) for t in INSTANTS),
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE occurred_at > DATE '2026-09-30' "
        "AND occurred_at <= DATE '2026-11-01'",
        sum(datetime(2026, 9, 30, tzinfo=UTC) < t <= NOV_1 for t in INSTANTS),
    ),
    ("SELECT count(*) AS n FROM activities WHERE occurred_at = DATE '2026-10-01'", 1),
    (
        "SELECT count(*) AS n FROM activities WHERE occurred_at <> DATE '2026-10-01'",
        len(INSTANTS) - 1,
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE DATE '2026-10-01' <= occurred_at",
        sum(t >= OCT_1 for t in INSTANTS),
    ),
    (
        "SELECT count(*) AS n FROM activities "
        "WHERE occurred_at IN (DATE '2026-10-01', DATE '2026-11-01')",
        2,
    ),
    ("SELECT count(*) AS n FROM activities WHERE occurred_at >= CURRENT_DATE - 14", None),
    (
        "SELECT count(*) AS n FROM activities "
        "WHERE occurred_at >= CURRENT_DATE - 14 AND occurred_at < CURRENT_DATE + 1",
        None,
    ),
    (
        "SELECT count(*) AS n FROM activities "
        "WHERE occurred_at >= CURRENT_DATE - INTERVAL '14 days'",
        None,
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE occurred_at >= CAST(now() AS DATE)",
        None,
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE occurred_at >= TIMESTAMP '2026-09-30 23:30:00'",
        sum(t >= OCT_1 - timedelta(minutes=30) for t in INSTANTS),
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE occurred_at < '2026-10-02'::date",
        sum(t < datetime(2026, 10, 2, tzinfo=UTC) for t in INSTANTS),
    ),
    (
        "SELECT count(*) AS n FROM deals d WHERE NOT EXISTS (SELECT 1 FROM activities a "
        "WHERE a.deal_id = d.id AND a.occurred_at >= DATE '2026-10-02' "
        "AND a.occurred_at < DATE '2026-11-01')",
        None,
    ),
    (
        "SELECT count(*) AS n FROM deals d WHERE d.created_at < DATE '2026-10-02' "
        "AND d.stage_entered_at >= DATE '2026-10-01'",
        None,
    ),
    (
        "SELECT count(*) AS n FROM deals d JOIN activities a ON a.deal_id = d.id "
        "AND a.ended_at >= DATE '2026-10-31' AND a.occurred_at < DATE '2026-11-01'",
        None,
    ),
    (
        "WITH m AS (SELECT a.occurred_at AS at, row_number() OVER (ORDER BY a.occurred_at) AS k "
        "FROM activities a) SELECT count(*) AS n FROM m "
        "WHERE m.at >= DATE '2026-10-01' AND m.at < DATE '2026-11-01'",
        _between(OCT_1, NOV_1),
    ),
    # a column's day against a date
    (
        "SELECT count(*) AS n FROM activities WHERE CAST(occurred_at AS DATE) = DATE '2026-10-01'",
        _between(OCT_1, OCT_1 + timedelta(days=1)),
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE occurred_at::date > DATE '2026-10-01' "
        "AND occurred_at::date <= DATE '2026-10-31'",
        _between(OCT_1 + timedelta(days=1), NOV_1),
    ),
    (
        "SELECT count(*) AS n FROM activities a "
        "WHERE CAST(a.occurred_at AS DATE) BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'",
        _between(OCT_1, NOV_1),
    ),
    (
        "SELECT count(*) AS n FROM activities a "
        "WHERE NOT CAST(a.occurred_at AS DATE) BETWEEN DATE '2026-10-01' AND DATE '2026-10-31'",
        len(INSTANTS) - _between(OCT_1, NOV_1),
    ),
    (
        "SELECT count(*) AS n FROM activities "
        "WHERE DATE '2026-10-31' >= CAST(occurred_at AS DATE) "
        "AND CAST(occurred_at AS DATE) >= CURRENT_DATE - 14",
        None,
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE CAST(occurred_at AS DATE) = CURRENT_DATE",
        None,
    ),
    (
        "SELECT count(*) AS n FROM activities WHERE CAST(occurred_at AS DATE) < CURRENT_DATE - 14",
        None,
    ),
]

DAYS = EQUAL[-7:]


def _written(db: Database, sql: str, timezone: str = "UTC") -> int:
    """``sql`` as written, run directly (one organization in the store, so no scoping)."""
    with db.connect() as conn:
        conn.exec_driver_sql(f"SET TimeZone = '{timezone}'")
        try:
            return int(conn.execute(text(sql)).scalar_one())
        finally:
            conn.exec_driver_sql("SET TimeZone = 'UTC'")
            conn.rollback()


def _guarded_directly(db: Database, sql: str, timezone: str) -> int:
    """The guarded SQL run directly in a session of ``timezone`` (the read path sets UTC)."""
    dialect = "duckdb" if db.is_duckdb else "postgres"
    guarded = guard_sql(sql, dialect=dialect, org=ORG, max_rows=100).sql
    return _written(db, guarded, timezone)


@pytest.mark.parametrize(("sql", "known"), EQUAL, ids=[s for s, _ in EQUAL])
def test_rewritten_comparisons_return_what_was_written(
    store: Database, sql: str, known: int | None
) -> None:
    dialect = "duckdb" if store.is_duckdb else "postgres"
    assert casts(sql, dialect), "the shape must be one the guard rewrites"
    written = _written(store, sql)
    guarded = run_guarded(store, sql, org=ORG, timeout=20).frame
    assert int(guarded["n"].iloc[0]) == written
    if known is not None:
        assert written == known


@pytest.mark.parametrize("timezone", ["America/Los_Angeles", "Asia/Kolkata"])
@pytest.mark.parametrize(("sql", "known"), EQUAL[:7] + DAYS, ids=[s for s, _ in EQUAL[:7] + DAYS])
def test_the_same_in_another_session_timezone(
    store: Database, sql: str, known: int | None, timezone: str
) -> None:
    """The cast converts a date at the session's midnight, as the comparison did, and a day
    starts at that midnight: equal in these TimeZones too (the read path's is UTC, where the
    counts above hold)."""
    assert _guarded_directly(store, sql, timezone) == _written(store, sql, timezone)
