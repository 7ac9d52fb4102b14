"""``meeting_accounts``: each meeting with the accounts it counts for and the contacts met,
rolled up by the sync for ``meetings_by_account``.

``meetings_by_account`` (``agent/verified.py``) counts, per account, the meetings of a window
(a meeting counts for its linked account and for every account its participants resolve to),
the distinct contacts among their participants and the last one. Read from the activities and
their participants, a window meant the resolved participants of every meeting (~600k index
entries at scale 10) to keep the ~80k of the window's meetings: ~600 ms on PostgreSQL. Rolled
up here, after identity resolution, the query reads only the window's rows (an index range on
``(organization_id, occurred_at)``) and stays exact for any window and ``min_meetings``:

- a row per live, dated meeting (``activity_type`` ``meeting`` or ``calendar_event``,
  ``deleted_at IS NULL``), account it counts for and contact among its live participants (one
  row with ``contact_id`` NULL when it has none), at the meeting's ``occurred_at``;
- so the window's rows of an account are the pairs of the query's join, its meetings
  ``count(DISTINCT meeting_id)``, its contacts ``count(DISTINCT contact_id)`` and its last
  meeting ``max(occurred_at)``; whether the account is live is read at query time (accounts
  are not an input here).

The refresh (``refresh_meeting_accounts``) derives the organization's rows from the store and
writes only the difference: rows no longer derived are deleted, derived ones not stored are
inserted (a row is its values, the meeting's time included), so it equals a rebuild by
construction whatever changed: a meeting moved, cancelled or deleted, a participant added,
removed or resolved to another contact or account. It reads every live meeting and their
resolved participants (covering indexes on PostgreSQL). Scale 10 (186k rows for 135k meetings,
47 MB with its index), load ~8: PostgreSQL ~1.9 s of server CPU when nothing changed (~1 s of
it the derivation), ~4 s from an empty table; DuckDB ~0.4 s and ~0.9 s of CPU. Refreshes of one
organization take turns on PostgreSQL (an advisory lock), so two providers' syncs never both
insert a missing row.

Not incremental in what it reads, on purpose: what changes the rows is mostly identity
resolution rewriting a participant's ``contact_id``/``account_id`` (a contact or account synced
later), which leaves no stamp on the row (``updated_at`` is the provider's) and whose marks
(``resolution_pending``) are cleared before this runs; on PostgreSQL batch-resolved rows are
written without marks at all. A scope of "meetings written since the last refresh" would then
miss rows a rebuild has.

As ``deal_risk_facts``: the sync skips the refresh when its run changed nothing the rows derive
from (``derived.run_changed_sources``), and a refresh that failed leaves a marker row
(``meeting_id`` NULL, no time: in no window) so the next sync refreshes whatever its run wrote;
the refresh deletes that row like any row no longer derived. A sync leaves the marker before it
writes too (``mark_pending``): a run killed before its refresh is caught up by the next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from revtops_kernel.store.database import Database
from revtops_kernel.store.derived import others_running, run_changed_sources, take_turns

log = logging.getLogger(__name__)

TABLE = "meeting_accounts"
_NEW = "_meeting_accounts_new"
COLUMNS = ("meeting_id", "account_id", "contact_id", "occurred_at")
_LIST = ", ".join(COLUMNS)

# The organization's rows as meetings_by_account would count them now (``:org``): its
# ``meeting_accounts`` pairs (the meeting's own account, its live people's) without the window,
# each with the contacts among the meeting's live people. Each table is read where it is used
# (no CTE read twice), so PostgreSQL estimates every join from statistics.
_MEETING = (
    "m.organization_id = :org AND m.deleted_at IS NULL "
    "AND m.activity_type IN ('meeting', 'calendar_event') AND m.occurred_at IS NOT NULL"
)
DERIVED_SQL = f"""
SELECT DISTINCT p.meeting_id, p.account_id, c.contact_id, p.occurred_at
FROM (
    SELECT m.id AS meeting_id, m.account_id, m.occurred_at
    FROM activities m
    WHERE {_MEETING} AND m.account_id IS NOT NULL
    UNION
    SELECT m.id, ap.account_id, m.occurred_at
    FROM activities m
    JOIN activity_participants ap ON ap.activity_id = m.id AND ap.organization_id = :org
        AND ap.deleted_at IS NULL AND ap.account_id IS NOT NULL
    WHERE {_MEETING}
) p
LEFT JOIN activity_participants c ON c.activity_id = p.meeting_id AND c.organization_id = :org
    AND c.deleted_at IS NULL AND c.contact_id IS NOT NULL"""

# ``t`` and ``n`` hold the same row: every column equal, a missing contact equal to another.
_SAME = (
    "n.meeting_id = t.meeting_id AND n.account_id = t.account_id "
    "AND n.occurred_at = t.occurred_at AND (n.contact_id = t.contact_id "
    "OR (n.contact_id IS NULL AND t.contact_id IS NULL))"
)


@dataclass
class MeetingAccountsReport:
    derived: int = 0  # the organization's rows now
    deleted: int = 0  # rows no longer derived
    inserted: int = 0  # rows derived and not stored
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return self.deleted + self.inserted


def refresh_meeting_accounts(conn: Connection, org: str) -> MeetingAccountsReport:
    """Bring ``org``'s rows in line with the store, writing only the rows that changed (in
    ``conn``'s transaction)."""
    started = time.monotonic()
    report = MeetingAccountsReport()
    bound = {"org": org}
    take_turns(conn, TABLE, org)
    if conn.dialect.name == "postgresql":
        # At scale 10 the derivation's cost passes jit_above_cost: compiling it took longer
        # than running it (as on the read path, which turns JIT off too). Local: until commit.
        conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text(f"DROP TABLE IF EXISTS {_NEW}"))
    conn.execute(text(f"CREATE TEMPORARY TABLE {_NEW} AS {DERIVED_SQL}"), bound)
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"ANALYZE {_NEW}"))
    report.derived = int(conn.execute(text(f"SELECT count(*) FROM {_NEW}")).scalar_one())
    deleted = conn.execute(
        text(
            f"DELETE FROM {TABLE} t WHERE t.organization_id = :org "
            f"AND NOT EXISTS (SELECT 1 FROM {_NEW} n WHERE {_SAME})"
        ),
        bound,
    )
    report.deleted = max(deleted.rowcount or 0, 0)
    # Stored rows stay; what is left of the derived ones is new.
    conn.execute(
        text(
            f"DELETE FROM {_NEW} n WHERE EXISTS "
            f"(SELECT 1 FROM {TABLE} t WHERE t.organization_id = :org AND {_SAME})"
        ),
        bound,
    )
    inserted = conn.execute(
        text(
            f"INSERT INTO {TABLE} (id, organization_id, {_LIST}) "
            f"SELECT gen_random_uuid(), CAST(:org AS VARCHAR(63)), {_LIST} FROM {_NEW}"
        ),
        bound,
    )
    report.inserted = max(inserted.rowcount or 0, 0)
    conn.execute(text(f"DROP TABLE {_NEW}"))
    report.seconds = time.monotonic() - started
    return report


def is_stale(conn: Connection, org: str) -> bool:
    """Whether a refresh of ``org``'s rows failed since the last one that succeeded."""
    found = conn.execute(
        text(f"SELECT 1 FROM {TABLE} WHERE organization_id = :org AND meeting_id IS NULL LIMIT 1"),
        {"org": org},
    ).first()
    return found is not None


def mark_pending(conn: Connection, org: str) -> bool:
    """Leave ``org``'s stale row (in ``conn``'s transaction) unless one is there; return whether
    one was. A sync calls it before it writes (``store.derived``): a run killed before its
    refresh leaves the rows marked, and the next sync refreshes whatever it changes."""
    if is_stale(conn, org):
        return True
    conn.execute(
        text(f"INSERT INTO {TABLE} (id, organization_id) VALUES (gen_random_uuid(), :org)"),
        {"org": org},
    )
    return False


def _clear_pending(conn: Connection, org: str, run: Any) -> None:
    """Drop the stale row unless another sync of ``org`` is running (it may write still)."""
    if not others_running(conn, org, run):
        conn.execute(
            text(f"DELETE FROM {TABLE} WHERE organization_id = :org AND meeting_id IS NULL"),
            {"org": org},
        )


def _mark_stale(db: Database, org: str) -> None:
    try:
        with db.begin() as conn:
            mark_pending(conn, org)
    except Exception:
        log.exception("marking %s of %s stale failed", TABLE, org)


def refresh_after_sync(
    db: Database,
    org: str,
    note: Callable[[str, int], None] | None = None,
    *,
    run: Any = None,
    pending_before: bool | None = None,
) -> MeetingAccountsReport | None:
    """The sync's call after identity resolution: refresh ``org``'s rows in their own
    transaction; ``note`` hears how many rows were written (the sync's statistics refresh and
    vacuum). Skipped when ``run`` (the sync's result) changed nothing the rows derive from and
    no earlier refresh failed; ``pending_before``: what ``mark_pending`` returned when the sync
    started (the stale row then found is not this run's own; ``None``: not marked at start).
    A failure is logged, never raised: the rows stay as the last refresh left them, marked
    stale, and the next sync's refresh catches up."""
    started = time.monotonic()
    try:
        if run is not None and not run_changed_sources(run):
            with db.begin() as conn:
                if pending_before is None:
                    stale = is_stale(conn, org)
                else:  # the mark is this run's own unless one was there before it
                    stale = pending_before
                    if not stale:
                        _clear_pending(conn, org, run)
            if not stale:
                log.info("%s for %s: the run changed nothing it derives from", TABLE, org)
                return MeetingAccountsReport(seconds=time.monotonic() - started)
        with db.begin() as conn:
            report = refresh_meeting_accounts(conn, org)  # drops the stale row: not derived
            if others_running(conn, org, run):
                mark_pending(conn, org)  # that sync may still write, and die before its refresh
    except Exception:
        log.exception("refreshing %s for %s failed", TABLE, org)
        _mark_stale(db, org)
        return None
    if note is not None:
        note(TABLE, report.written)
    log.info(
        "%s for %s: %d rows, %d deleted, %d inserted in %.2f s",
        TABLE,
        org,
        report.derived,
        report.deleted,
        report.inserted,
        report.seconds,
    )
    return report


def rebuild_all(conn: Connection) -> int:
    """Every organization's rows from nothing (``revtops db upgrade`` on a store that predates
    the table, or a version that added a column); returns the rows written."""
    conn.execute(text(f"DELETE FROM {TABLE}"))
    orgs = [
        row[0]
        for row in conn.execute(text("SELECT DISTINCT organization_id FROM activities ORDER BY 1"))
    ]
    return sum(refresh_meeting_accounts(conn, org).written for org in orgs)
