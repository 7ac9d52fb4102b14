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

On PostgreSQL it derives only the meetings the writes since the last refresh touched:
resolution rewriting a participant's ``contact_id``/``account_id`` leaves no stamp on the row
(``updated_at`` is the provider's, and its ``resolution_pending`` marks are cleared before this
runs), so a scope of "meetings written since" would miss rows; the change journal's triggers
(``store.change_journal``) see every write, old row and new, and journal the meeting of each
changed meeting or meeting participant. The refresh takes those entries and compares only
their meetings' stored rows. A journal naming more than ``SCOPE_MAX_SHARE`` of the rows, one
written before the triggers existed, an organization with no row stored, ``full=True`` and
DuckDB (no triggers) derive every meeting.

As ``deal_risk_facts``: the sync skips the refresh when its run changed nothing the rows derive
from (``derived.run_changed_sources``), and a refresh that failed leaves a marker row
(``meeting_id`` NULL, no time: in no window) so the next sync refreshes whatever its run wrote;
the refresh deletes that row like any row no longer derived. A sync leaves the marker before it
writes too (``mark_pending``): a run killed before its refresh is caught up by the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, text

from revtops_kernel.store import change_journal, derived
from revtops_kernel.store.database import Database
from revtops_kernel.store.derived import RefreshReport, Rollup, take_turns, write_difference
from revtops_kernel.store.retry import RetryPolicy

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
_DERIVED_TEMPLATE = f"""
SELECT DISTINCT p.meeting_id, p.account_id, c.contact_id, p.occurred_at
FROM (
    SELECT m.id AS meeting_id, m.account_id, m.occurred_at
    FROM activities m
    WHERE {_MEETING} AND m.account_id IS NOT NULL{{scope}}
    UNION
    SELECT m.id, ap.account_id, m.occurred_at
    FROM activities m
    JOIN activity_participants ap ON ap.activity_id = m.id AND ap.organization_id = :org
        AND ap.deleted_at IS NULL AND ap.account_id IS NOT NULL
    WHERE {_MEETING}{{scope}}
) p
LEFT JOIN activity_participants c ON c.activity_id = p.meeting_id AND c.organization_id = :org
    AND c.deleted_at IS NULL AND c.contact_id IS NOT NULL"""
_IN_SCOPE = f"SELECT s.meeting_id FROM {change_journal.MEETING_SCOPE} s"
DERIVED_SQL = _DERIVED_TEMPLATE.replace("{scope}", "")
# The journaled meetings' rows alone (store.change_journal), and the stored rows they replace:
# the marker rows and the journaled meetings' (disjoint: one index range each).
_SCOPED_SQL = _DERIVED_TEMPLATE.replace("{scope}", f" AND m.id IN ({_IN_SCOPE})")
_STORED_IN_SCOPE = ("t.meeting_id IS NULL", f"t.meeting_id IN ({_IN_SCOPE})")
# A journal naming more meetings than this share of the organization's rows: derive them all.
SCOPE_MAX_SHARE = 0.3

# ``t`` and ``n`` hold the same row: every column equal, a missing contact equal to another.
_SAME = (
    "n.meeting_id = t.meeting_id AND n.account_id = t.account_id "
    "AND n.occurred_at = t.occurred_at AND (n.contact_id = t.contact_id "
    "OR (n.contact_id IS NULL AND t.contact_id IS NULL))"
)


def refresh_meeting_accounts(conn: Connection, org: str, *, full: bool = False) -> RefreshReport:
    """Bring ``org``'s rows in line with the store, writing only the rows that changed (in
    ``conn``'s transaction). On PostgreSQL with the change journal, only the meetings the
    writes since the last refresh touched are derived again; ``full``, a journal that asks
    for it or names too many, an organization with no row stored, DuckDB: every meeting."""
    scope: int | None = None
    if conn.dialect.name == "postgresql":
        # At scale 10 the derivation's cost passes jit_above_cost: compiling it took longer
        # than running it (as on the read path, which turns JIT off too). Local: until commit.
        conn.execute(text("SET LOCAL jit = off"))
        take_turns(conn, TABLE, org)  # before taking the journal: refreshes take it in turns
        if change_journal.installed(conn):
            stored = conn.execute(
                text(f"SELECT count(*) FROM {TABLE} WHERE organization_id = :org"), {"org": org}
            ).scalar_one()
            if full or not stored:
                change_journal.discard_meetings(conn, org)
            else:
                taken = change_journal.take_meetings(conn, org)
                if not taken.everything and taken.scope <= SCOPE_MAX_SHARE * stored:
                    scope = taken.scope
    report = write_difference(
        conn,
        org,
        table=TABLE,
        derived_sql=DERIVED_SQL if scope is None else _SCOPED_SQL,
        scratch=_NEW,
        same=_SAME,
        columns=_LIST,
        stored=None if scope is None else _STORED_IN_SCOPE,
    )
    report.scope = scope
    return report


def is_stale(conn: Connection, org: str) -> bool:
    """Whether a refresh of ``org``'s rows failed since the last one that succeeded."""
    found = conn.execute(
        text(f"SELECT 1 FROM {TABLE} WHERE organization_id = :org AND meeting_id IS NULL LIMIT 1"),
        {"org": org},
    ).first()
    return found is not None


def _add_mark(conn: Connection, org: str) -> None:
    conn.execute(
        text(f"INSERT INTO {TABLE} (id, organization_id) VALUES (gen_random_uuid(), :org)"),
        {"org": org},
    )


def _drop_mark(conn: Connection, org: str) -> None:
    conn.execute(
        text(f"DELETE FROM {TABLE} WHERE organization_id = :org AND meeting_id IS NULL"),
        {"org": org},
    )


# Lambdas, not the functions: a test that replaces refresh_meeting_accounts is heard.
ROLLUP = Rollup(
    table=TABLE,
    refresh=lambda conn, org: refresh_meeting_accounts(conn, org),
    has_mark=lambda conn, org: is_stale(conn, org),
    add_mark=lambda conn, org: _add_mark(conn, org),
    drop_mark=lambda conn, org: _drop_mark(conn, org),
)


def mark_pending(conn: Connection, org: str) -> bool:
    """Leave ``org``'s marker row (in ``conn``'s transaction) unless one is there; return
    whether one was. A sync calls it before it writes (``store.derived``)."""
    return derived.mark_pending(conn, org, ROLLUP)


def refresh_after_sync(
    db: Database,
    org: str,
    note: Callable[[str, int], None] | None = None,
    *,
    run: Any = None,
    pending_before: bool | None = None,
    policy: RetryPolicy | None = None,
) -> RefreshReport | None:
    """The sync's call after identity resolution (``derived.refresh_after_sync``): skipped
    when ``run`` changed nothing the rows derive from and no refresh is pending."""
    return derived.refresh_after_sync(
        db, org, ROLLUP, note, run=run, pending_before=pending_before, policy=policy
    )


def rebuild_all(conn: Connection) -> int:
    """Every organization's rows from nothing (``revtops db upgrade`` on a store that predates
    the table, or a version that added a column); returns the rows written."""
    conn.execute(text(f"DELETE FROM {TABLE}"))
    orgs = [
        row[0]
        for row in conn.execute(text("SELECT DISTINCT organization_id FROM activities ORDER BY 1"))
    ]
    return sum(refresh_meeting_accounts(conn, org, full=True).written for org in orgs)
