"""``deal_states``: each deal's state (pipeline, open/won/lost, amount, close date) from every
moment something changed to the next, derived from ``deals``, ``deal_stage_history`` and
``deal_field_history`` after each CRM sync.

Why a derived table: "the deal's stage, amount and close date at instant T" over the three
sources is a window pass over every deal's whole history (one row per moment, each attribute
carried forward from its last change), which ``pipeline_waterfall`` paid on every run: 1.3 s at
scale 10 on PostgreSQL. Kept here once per sync, the same question is a range lookup
(``valid_from <= T < valid_to``) and each row carries the state before it (``prev_*``), so a
movement needs no second window pass either.

The rules (``pipeline_waterfall``'s, written once here): a deal's moments are its creation,
its stage changes (``entered_at``) and its amount and close-date changes (``changed_at``); at
each moment every attribute takes the value of its latest change so far (at or before the
moment; the first change's value before it); a deal with no change of an attribute keeps its
current value (the ``deals`` row) throughout. Pipeline and stage state come from stage history
(the stage's pipeline when the row has none; an unknown stage counts as open), amount and close
date from field history. Deals without ``created_at`` have no states.

Kept up to date incrementally and crash-safe: the next refresh rebuilds (delete + insert) only
the deals whose deal row or history rows were stamped (provider ``updated_at``) at or after the
mark this refresh leaves in ``derived_marks``, so a sync that changed nothing costs a few small
queries, and a sync killed before the refresh leaves its changes to the next one.

Where the mark stands: a row the next syncs bring was changed after this sync read its table,
so it is stamped at most a commit's lag before the sync began; the newest stamp this refresh
sees is at most the sync's running time after that. The mark is therefore the newest stamp less
the sync's running time and ``LOOKBACK`` (the commit lag, twice). It used to be the newest
stamp less a day for every refresh, so each rebuilt a day of deals again; a sync's running
time is minutes. A refresh that is not a sync's (``elapsed`` unknown) and a store from before
the marks (each row's ``source_mark``, the newest stamp its build saw) keep the day.
``refresh_deal_states(..., full=True)`` (``revtops db upgrade`` for existing stores, a
full-refresh sync) rebuilds the provider's deals from scratch.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, bindparam, text

from revtops_kernel.store.database import Database
from revtops_kernel.store.retry import RetryPolicy, in_transaction

log = logging.getLogger(__name__)

TABLE = "deal_states"
CRM_SYSTEMS = ("hubspot", "salesforce")
# A provider's modification stamp is taken before its transaction commits, so a row may appear
# up to this long after its stamp: the connectors read again 5 minutes before their cursors
# for the same reason (Salesforce's SETTLE_SECONDS, HubSpot's SEARCH_INDEX_LAG_MS). Twice that
# leaves room for the provider's clock and ours to disagree.
LOOKBACK = timedelta(minutes=10)
# How far back a refresh looks when it cannot tell how long its sync ran.
LEGACY_LOOKBACK = timedelta(days=1)
MARKS = "derived_marks"
# Up to this many changed deals are bound as a list of ids; more are selected again by stamp.
MAX_LISTED = 20_000

# One row per deal and moment, for the deals of ``{deals}`` (a parenthesized query of deal ids, or
# an expanding list parameter, of one
# organization and provider). ``:org`` binds the organization, ``:mark`` the build's mark.
_STATES_SQL = """
WITH scoped AS (
    SELECT d.id, d.source_system, d.created_at, d.amount, d.close_date, d.pipeline_id,
        CASE WHEN d.is_won THEN 2 WHEN d.is_closed THEN 1 ELSE 0 END AS stage_state
    FROM deals d
    WHERE d.organization_id = :org AND d.created_at IS NOT NULL AND d.id IN {deals}
),
changes AS (
    SELECT h.deal_id, h.entered_at AS moment_at,
        CAST(COALESCE(h.pipeline_id, s.pipeline_id) AS TEXT) AS pipeline_key,
        CASE WHEN s.is_won THEN 2 WHEN s.is_closed THEN 1 ELSE 0 END AS stage_state,
        1 AS has_stage, CAST(NULL AS NUMERIC(18, 2)) AS amount, 0 AS has_amount,
        CAST(NULL AS DATE) AS close_date, 0 AS has_close
    FROM deal_stage_history h
    LEFT JOIN deal_stages s ON s.id = h.stage_id AND s.deleted_at IS NULL
    WHERE h.organization_id = :org AND h.deleted_at IS NULL AND h.entered_at IS NOT NULL
        AND h.deal_id IN (SELECT c.id FROM scoped c)
    UNION ALL
    SELECT f.deal_id, f.changed_at, NULL, NULL, 0,
        CASE WHEN f.field = 'amount' THEN f.amount END,
        CASE WHEN f.field = 'amount' THEN 1 ELSE 0 END,
        CASE WHEN f.field = 'close_date' THEN f.close_date END,
        CASE WHEN f.field = 'close_date' THEN 1 ELSE 0 END
    FROM deal_field_history f
    WHERE f.organization_id = :org AND f.deleted_at IS NULL AND f.changed_at IS NOT NULL
        AND f.field IN ('amount', 'close_date') AND f.deal_id IN (SELECT c.id FROM scoped c)
    UNION ALL
    SELECT c.id, c.created_at, NULL, NULL, 0, NULL, 0, NULL, 0
    FROM scoped c
),
moments AS (
    SELECT deal_id, moment_at, max(pipeline_key) FILTER (WHERE has_stage = 1) AS pipeline_key,
        max(stage_state) FILTER (WHERE has_stage = 1) AS stage_state, max(has_stage) AS has_stage,
        max(amount) FILTER (WHERE has_amount = 1) AS amount, max(has_amount) AS has_amount,
        max(close_date) FILTER (WHERE has_close = 1) AS close_date, max(has_close) AS has_close
    FROM changes
    GROUP BY deal_id, moment_at
),
timed AS (
    SELECT m.*, row_number() OVER w AS seq, lead(m.moment_at) OVER w AS next_at,
        GREATEST(sum(m.has_stage) OVER w, 1) AS stage_group,
        GREATEST(sum(m.has_amount) OVER w, 1) AS amount_group,
        GREATEST(sum(m.has_close) OVER w, 1) AS close_group
    FROM moments m
    WINDOW w AS (PARTITION BY m.deal_id ORDER BY m.moment_at ROWS BETWEEN UNBOUNDED PRECEDING
        AND CURRENT ROW)
),
carried AS (
    SELECT t.deal_id, t.moment_at, t.seq, t.next_at,
        max(t.has_stage) OVER (PARTITION BY t.deal_id, t.stage_group) AS stage_known,
        max(t.pipeline_key) OVER (PARTITION BY t.deal_id, t.stage_group) AS pipeline_key,
        max(t.stage_state) OVER (PARTITION BY t.deal_id, t.stage_group) AS stage_state,
        max(t.has_amount) OVER (PARTITION BY t.deal_id, t.amount_group) AS amount_known,
        max(t.amount) OVER (PARTITION BY t.deal_id, t.amount_group) AS amount,
        max(t.has_close) OVER (PARTITION BY t.deal_id, t.close_group) AS close_known,
        max(t.close_date) OVER (PARTITION BY t.deal_id, t.close_group) AS close_date
    FROM timed t
),
states AS (
    SELECT t.deal_id, c.source_system, t.moment_at, t.next_at, t.seq,
        CASE WHEN t.stage_known = 1 THEN t.pipeline_key ELSE CAST(c.pipeline_id AS TEXT) END
            AS pipeline_key,
        CASE WHEN t.stage_known = 1 THEN t.stage_state ELSE c.stage_state END AS stage_state,
        CASE WHEN t.amount_known = 1 THEN t.amount ELSE c.amount END AS amount,
        CASE WHEN t.close_known = 1 THEN t.close_date ELSE c.close_date END AS close_date
    FROM carried t JOIN scoped c ON c.id = t.deal_id
)
SELECT :org AS organization_id, st.source_system, st.deal_id, st.moment_at AS valid_from,
    st.next_at AS valid_to, CAST(st.seq AS INTEGER) AS seq,
    CAST(st.pipeline_key AS UUID) AS pipeline_id, CAST(st.stage_state AS SMALLINT) AS stage_state,
    CAST(st.amount AS NUMERIC(18, 2)) AS amount, st.close_date,
    CAST(lag(st.pipeline_key) OVER w AS UUID) AS prev_pipeline_id,
    CAST(lag(st.stage_state) OVER w AS SMALLINT) AS prev_stage_state,
    CAST(lag(st.amount) OVER w AS NUMERIC(18, 2)) AS prev_amount,
    lag(st.close_date) OVER w AS prev_close_date,
    CAST(:mark AS TIMESTAMP WITH TIME ZONE) AS source_mark
FROM states st
WINDOW w AS (PARTITION BY st.deal_id ORDER BY st.moment_at)
"""

# One row per stage visit of the deals of ``{deals}``: the stage changes that begin a run of
# changes into the same stage (an unknown stage always begins one), each ending where the next
# visit begins (stage_funnel's rule, the same order: entered_at, then id). The deal's first
# visit carries its furthest stage (stage_funnel's "reached"): the highest display_order among
# the open, active stages of the deal's current pipeline it visited. It depends on the deal's
# pipeline and its stages' rows, whose changes stamp the deal for the next refresh
# (_CHANGED_DEALS), like deal_states' stage state. Days in stage are calendar days in UTC (the
# store's sessions' time zone), as the funnel counted them.
_VISITS_SQL = """
WITH history AS (
    SELECT h.id, h.deal_id, h.stage_id, h.entered_at,
        lag(h.stage_id) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at, h.id) AS previous
    FROM deal_stage_history h
    WHERE h.organization_id = :org AND h.deleted_at IS NULL AND h.entered_at IS NOT NULL
        AND h.deal_id IN {deals}
)
SELECT r.*, CAST(r.left_at AS DATE) - CAST(r.entered_at AS DATE) AS days_in_stage
FROM (
SELECT :org AS organization_id, :system AS source_system, v.id AS history_id, v.deal_id,
    v.stage_id, v.entered_at,
    lead(v.entered_at) OVER (PARTITION BY v.deal_id ORDER BY v.entered_at, v.id) AS left_at,
    CASE WHEN row_number() OVER (PARTITION BY v.deal_id ORDER BY v.entered_at, v.id) = 1
        THEN max(o.display_order) OVER (PARTITION BY v.deal_id) END AS furthest_order
FROM history v
LEFT JOIN deals d ON d.id = v.deal_id AND d.organization_id = :org
LEFT JOIN deal_stages o ON o.id = v.stage_id AND o.organization_id = :org
    AND o.pipeline_id = d.pipeline_id AND o.deleted_at IS NULL AND COALESCE(o.is_active, true)
    AND NOT COALESCE(o.is_closed, false)
WHERE v.previous IS NULL OR v.stage_id IS NULL OR v.previous <> v.stage_id
) r
"""
VISITS = "deal_stage_visits"
DERIVED = frozenset({TABLE, VISITS})
_VISIT_COLUMNS = (
    "organization_id, source_system, history_id, deal_id, stage_id, entered_at, left_at, "
    "furthest_order, days_in_stage"
)

_COLUMNS = (
    "organization_id, source_system, deal_id, valid_from, valid_to, seq, pipeline_id, "
    "stage_state, amount, close_date, prev_pipeline_id, prev_stage_state, prev_amount, "
    "prev_close_date, source_mark"
)

_ALL_DEALS = "SELECT a.id FROM deals a WHERE a.organization_id = :org AND a.source_system = :system"
_CHANGED_DEALS = """
SELECT a.id FROM deals a
WHERE a.organization_id = :org AND a.source_system = :system AND a.updated_at >= :since
UNION
SELECT h.deal_id FROM deal_stage_history h
WHERE h.organization_id = :org AND h.source_system = :system AND h.updated_at >= :since
UNION
SELECT f.deal_id FROM deal_field_history f
WHERE f.organization_id = :org AND f.source_system = :system AND f.updated_at >= :since
UNION
SELECT h.deal_id FROM deal_stage_history h JOIN deal_stages s ON s.id = h.stage_id
WHERE s.organization_id = :org AND s.source_system = :system AND s.updated_at >= :since
    AND h.organization_id = :org"""
_NEWEST = """
SELECT max(m) FROM (
    SELECT max(updated_at) AS m FROM deals
    WHERE organization_id = :org AND source_system = :system
    UNION ALL
    SELECT max(updated_at) FROM deal_stage_history
    WHERE organization_id = :org AND source_system = :system
    UNION ALL
    SELECT max(updated_at) FROM deal_field_history
    WHERE organization_id = :org AND source_system = :system
    UNION ALL
    SELECT max(updated_at) FROM deal_stages
    WHERE organization_id = :org AND source_system = :system
) newest"""


def _since(conn: Connection, org: str, system: str) -> datetime | None:
    """The last refresh's mark; for a store from before the marks, its rows' newest
    ``source_mark`` less ``LEGACY_LOOKBACK``; None: nothing derived yet."""
    params = {"org": org, "system": system, "derived": TABLE}
    mark = conn.execute(
        text(
            f"SELECT since FROM {MARKS} WHERE organization_id = :org "
            "AND derived_table = :derived AND source_system = :system"
        ),
        params,
    ).scalar_one_or_none()
    if mark is not None:
        return cast(datetime, mark)
    legacy = conn.execute(
        text(
            f"SELECT max(source_mark) FROM {TABLE} "
            "WHERE organization_id = :org AND source_system = :system"
        ),
        params,
    ).scalar_one()
    return None if legacy is None else legacy - LEGACY_LOOKBACK


def _save_mark(conn: Connection, org: str, system: str, since: datetime) -> None:
    conn.execute(
        text(
            f"INSERT INTO {MARKS} (organization_id, derived_table, source_system, since) "
            "VALUES (:org, :derived, :system, :since) "
            "ON CONFLICT (organization_id, derived_table, source_system) "
            "DO UPDATE SET since = excluded.since"
        ),
        {"org": org, "system": system, "derived": TABLE, "since": since},
    )


def refresh_deal_states(
    conn: Connection,
    org: str,
    system: str,
    *,
    full: bool = False,
    elapsed: timedelta | None = None,
) -> dict[str, int]:
    """Bring ``org``'s deal states and stage visits of provider ``system`` in line with its
    deals and their histories (``full``: rebuild them all); returns the rows written per
    table. ``elapsed``: how long the sync whose refresh this is had been running (it decides
    how far back the next refresh looks; unknown: ``LEGACY_LOOKBACK``)."""
    if system not in CRM_SYSTEMS:
        return {}
    params: dict[str, Any] = {"org": org, "system": system}
    since = None if full else _since(conn, org, system)
    # Read before the changed deals: a row committed after this is the next refresh's.
    newest = conn.execute(text(_NEWEST), params).scalar_one()
    if newest is not None:
        reach = LEGACY_LOOKBACK if elapsed is None else elapsed + LOOKBACK
        _save_mark(conn, org, system, newest - reach)
    if since is None:
        deals = f"({_ALL_DEALS})"
    else:
        params["since"] = since
        # The changed deals once, by id: each statement below then looks them up by key
        # instead of scanning the deals and histories for stamps again (4 times).
        changed = [row[0] for row in conn.execute(text(_CHANGED_DEALS), params)]
        if not changed:
            return {TABLE: 0, VISITS: 0}
        deals = ":ids" if len(changed) <= MAX_LISTED else f"({_CHANGED_DEALS})"
        if deals == ":ids":
            params["ids"] = changed
    stale = "source_system = :system" if since is None else f"deal_id IN {deals}"

    def statement(sql: str) -> Any:
        clause = text(sql)
        if deals == ":ids":
            clause = clause.bindparams(bindparam("ids", expanding=True))
        return clause

    for table in (TABLE, VISITS):
        conn.execute(
            statement(f"DELETE FROM {table} WHERE organization_id = :org AND {stale}"), params
        )
    visits = conn.execute(
        statement(f"INSERT INTO {VISITS} ({_VISIT_COLUMNS}) " + _VISITS_SQL.format(deals=deals)),
        params,
    )
    states = conn.execute(
        statement(f"INSERT INTO {TABLE} ({_COLUMNS}) " + _STATES_SQL.format(deals=deals)),
        {**params, "mark": newest},
    )
    return {TABLE: max(states.rowcount or 0, 0), VISITS: max(visits.rowcount or 0, 0)}


def build_all(conn: Connection) -> int:
    """Every organization's deal states from scratch (``revtops db upgrade`` when it creates
    the table in an existing store); returns the rows written."""
    pairs = conn.execute(
        text(
            "SELECT DISTINCT organization_id, source_system FROM deals "
            "WHERE source_system IN ('hubspot', 'salesforce')"
        )
    ).all()
    return sum(
        sum(refresh_deal_states(conn, org, system, full=True).values()) for org, system in pairs
    )


def refresh_after_sync(
    db: Database,
    result: Any,
    statistics: Any,
    *,
    full: bool,
    elapsed: timedelta,
    policy: RetryPolicy | None = None,
) -> int:
    """The sync's step after identity resolution (``sync._run_sync``, running for
    ``elapsed``): refresh the synced provider's deal states in their own transaction; returns
    the rows written (-1: the refresh failed). Never fails the sync: a failed refresh leaves
    the mark where it was, so the next sync's refresh redoes it."""
    if result.provider not in CRM_SYSTEMS:
        return 0
    started = time.monotonic()
    try:
        written = in_transaction(  # retried on a transient fault or DuckDB out of memory
            db,
            lambda conn: refresh_deal_states(
                conn, result.organization_id, result.provider, full=full, elapsed=elapsed
            ),
            what=f"deal states of {result.organization_id}",
            policy=policy or RetryPolicy(),
        )
        for table, rows in written.items():
            statistics.note(table, rows)
        log.info(
            "deal states of %s: %s in %.2f s",
            result.provider,
            ", ".join(f"{rows:,} {table}" for table, rows in written.items()),
            time.monotonic() - started,
        )
        return sum(written.values())
    except Exception:
        log.exception("refreshing deal states for %s failed", result.organization_id)
        return -1
