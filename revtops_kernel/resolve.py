"""Identity resolution in the store: set-based SQL, the same on PostgreSQL and DuckDB.

Run after every sync (``run_sync`` calls ``resolve_identities``) over one organization; every
statement is idempotent and only touches rows whose value changes, so running it twice changes
nothing. The rules are stated in ``normalize.identity``; here they are applied in order:

1. stale participants: a calendar or Slack participant older than its activity is no longer on
   it (an attendee was removed): it gets the activity's ``updated_at`` as ``deleted_at``;
2. participants from Slack and Calendar (they come with an email) -> contact, account (the
   contact's, else by domain, never a consumer or own domain), owner, ``is_internal``;
3. Slack and Calendar activities -> owner, contact and account from their live participants;
4. calendar events -> the deal open on their account when they took place.

Incremental: ``store.upsert`` marks every row of the tables read here that a sync inserts or
changes (``resolution_pending``, see ``schema.RESOLUTION_INPUTS``); a CRM row it rewrites stays
as it was unless a column read here changed (``schema.RESOLUTION_READS``: a contact's new
title leaves its resolution nothing to do). A resolution snapshots the marked rows and works
on a scope derived from them, held in temporary tables (those its steps may use):

- participants: the written ones, plus those a written contact, owner or account may now match
  or no longer match (same email or domain, or linked to it);
- activities: the written ones and those of the participants in scope;
- meetings: the activities in scope, plus those on the account of a written deal or linked to it;

then clears the marks it saw. An activity's links (rule 3) and a meeting's deal (rule 4) are
worked out in a scope table first and written in one UPDATE: each activity is rewritten once,
not once per rule (on PostgreSQL an UPDATE writes a whole new row version of a wide row and an
entry in each of its indexes). The rules only ever read the participants of an activity, the
CRM rows with a participant's email or domain, and the deals of a meeting's account, so this
scope gives the same result as a full pass (``full=True``, also taken when the organization was
never resolved or its own domains changed, since those decide every participant).

CRM rows are left as their normalizer wrote them: their participants come linked to contacts
and owners by the CRM's own associations (their accounts are a join on ``contacts``), and their
activities carry the CRM's account and deal. Writing resolved values into CRM rows would make
every re-read of a CRM record (the incremental syncs re-read their boundary) a rewrite, since
the upsert compares the stored row with what the normalizer produced.

On PostgreSQL a sync's Slack and Calendar rows are resolved in their batch before they are
written (``resolve_batch``, at the end of this module), from the CRM rows already in the store,
and written unmarked: this step then only sees what a batch could not settle and what later CRM
writes affect. DuckDB does the same for an incremental sync's small batches
(``DUCKDB_BATCH_MAX``); after a first load, rows freshly upserted by a sync carry NULLs in these
columns until this step commits (a few seconds): the normalizers never guess them.

The question "which accounts did we meet last week, and what is their open pipeline?" is then
a join (``ACCOUNTS_MET_SQL``).
"""

from __future__ import annotations

import functools
import gc
import itertools
import logging
import operator
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, text

from revtops_kernel.email_domains import is_consumer_domain
from revtops_kernel.normalize.identity import (
    CRM_PRECEDENCE,
    DealFacts,
    consumer_domains,
    open_deal_at,
    own_domains,
)
from revtops_kernel.providers import ACTIVITY_PROVIDERS
from revtops_kernel.store.database import driver_connection
from revtops_kernel.store.locks import lock_resolution, share_resolution
from revtops_kernel.store.schema import PENDING_COLUMN, RESOLUTION_INPUTS
from revtops_kernel.store.statistics import REFRESH_SHARE, analyze_tables, estimated_rows
from revtops_kernel.timeutil import utcnow

log = logging.getLogger(__name__)

_ACTIVITY_SYSTEMS = ", ".join(f"'{p}'" for p in ACTIVITY_PROVIDERS)
_PRECEDENCE = (
    "CASE source_system "
    + " ".join(f"WHEN '{p}' THEN {i}" for i, p in enumerate(CRM_PRECEDENCE))
    + f" ELSE {len(CRM_PRECEDENCE)} END"
)
MEETING_TYPES = ("calendar_event",)
_MEETINGS = ", ".join(f"'{t}'" for t in MEETING_TYPES)

# The scope of one resolution, in temporary tables (dropped at its end).
WRITTEN = "_resolve_written"  # (tbl, id): rows marked pending when the resolution started
# (id, activity_id, email, domain, is_internal): what the participants' rule reads of each
SCOPE_PARTICIPANTS = "_resolve_participants"
SCOPE_ACTIVITIES = "_resolve_activities"  # (id)
SCOPE_LIVE = "_resolve_live"  # the live participants of the activities in scope
SCOPE_LINKS = "_resolve_links"  # per activity in scope: its links before and after the rules
# Keyed, so that every "row IN scope" is an index lookup whatever plan is chosen: a provider's
# first rows in a table others filled leave the statistics claiming there are none of its
# rows (too few to reach the refresh share), and a nested loop over an unindexed scope is
# quadratic (31 s for 5,760 Slack participants at scale 1).
_SCOPE_DDL = {
    WRITTEN: "tbl VARCHAR, id UUID, PRIMARY KEY (tbl, id)",
    SCOPE_PARTICIPANTS: "id UUID PRIMARY KEY, activity_id UUID, email VARCHAR, domain VARCHAR, "
    "is_internal BOOLEAN",
    SCOPE_ACTIVITIES: "id UUID PRIMARY KEY",
    SCOPE_LIVE: "activity_id UUID, id UUID, email VARCHAR, role VARCHAR, owner_id UUID, "
    "contact_id UUID, account_id UUID, is_internal BOOLEAN, PRIMARY KEY (activity_id, id)",
    SCOPE_LINKS: "id UUID PRIMARY KEY, is_meeting BOOLEAN, occurred_at TIMESTAMPTZ, "
    "old_owner_id UUID, old_contact_id UUID, old_account_id UUID, old_deal_id UUID, "
    "owner_id UUID, contact_id UUID, account_id UUID, deal_id UUID",
}

# The first live row per email (contacts, owners) or domain (accounts), by CRM precedence,
# among the keys of the participants in scope. DISTINCT ON rather than row_number() over a
# window (both backends have it): DuckDB sorts each window partition, 1.4-2.4x the time of
# DISTINCT ON's ordered first row at scale 0.1; PostgreSQL sorts for either.
_FIRST_BY = """
    SELECT DISTINCT ON ({key}) {key} AS key, id, {account} AS account_id
    FROM {table}
    WHERE organization_id = :org AND deleted_at IS NULL AND {key} IS NOT NULL AND {key} <> ''
      AND {key} IN (SELECT {scope_key} FROM {scope})
    ORDER BY {key}, {precedence}, id
"""


def _first_by(table: str, key: str, account: str, scope_key: str) -> str:
    return _FIRST_BY.format(
        table=table,
        key=key,
        account=account,
        precedence=_PRECEDENCE,
        scope_key=scope_key,
        scope=SCOPE_PARTICIPANTS,
    )


def _written(table: str) -> str:
    return f"SELECT id FROM {WRITTEN} WHERE tbl = '{table}'"


SNAPSHOT_WRITTEN_SQL = "\nUNION ALL\n".join(
    f"SELECT '{t}', id FROM {t} WHERE organization_id = :org AND {PENDING_COLUMN}"
    for t in RESOLUTION_INPUTS
)

# Whether any row is marked (each branch a probe of the partial index of marks on PostgreSQL):
# a sync that wrote nothing resolution reads skips the statements of an empty resolution.
ANY_PENDING_SQL = " UNION ALL ".join(
    f"SELECT 1 FROM (SELECT 1 FROM {t} WHERE organization_id = :org AND {PENDING_COLUMN} "
    f"LIMIT 1) _{t}"
    for t in RESOLUTION_INPUTS
)
# What decides whether and how a resolution runs, in one statement (a small sync's resolution
# is mostly statements' fixed costs): the own domains the last resolution used (no row: never
# resolved), the owners' emails (the own domains now), and a row if any row is marked. Tagged
# rows of a UNION ALL: scalar subqueries and EXISTS tests of the same (DuckDB joins them) took
# 20-60 ms on DuckDB at scale 0.1, the three statements ~2 ms.
PROLOGUE_SQL = f"""
SELECT 'previous', own_domains FROM identity_resolutions WHERE organization_id = :org
UNION ALL
SELECT 'owner', email FROM (
    SELECT DISTINCT lower(email) AS email FROM owners WHERE organization_id = :org) _emails
UNION ALL
SELECT 'pending', NULL FROM (SELECT 1 FROM ({ANY_PENDING_SQL}) _marked LIMIT 1) _any
"""


_PARTICIPANT_SCOPE_COLUMNS = (
    "p.id, p.activity_id, lower(p.email), split_part(lower(p.email), '@', 2), p.is_internal"
)
_ACTIVITY_PARTICIPANTS = f"p.organization_id = :org AND p.source_system IN ({_ACTIVITY_SYSTEMS})"
ALL_PARTICIPANTS_SCOPE_SQL = f"""
INSERT INTO {SCOPE_PARTICIPANTS}
SELECT {_PARTICIPANT_SCOPE_COLUMNS} FROM activity_participants p WHERE {_ACTIVITY_PARTICIPANTS}
"""
WRITTEN_PARTICIPANTS_SCOPE_SQL = f"""
INSERT INTO {SCOPE_PARTICIPANTS}
SELECT {_PARTICIPANT_SCOPE_COLUMNS} FROM activity_participants p
WHERE {_ACTIVITY_PARTICIPANTS} AND p.id IN ({_written("activity_participants")})
"""
# Participants a written contact, owner or account may now match, or no longer match. One IN
# over a union of index-friendly branches, and NOT EXISTS rather than NOT IN: PostgreSQL runs an
# "x IN (subquery)" under an OR, or a NOT IN, as a hashed subplan only while the set fits in
# work_mem, and otherwise rescans the set for every row (minutes at scale 10).
_ORG_PARTICIPANTS = "SELECT x.id FROM activity_participants x WHERE x.organization_id = :org AND"
AFFECTED_PARTICIPANTS_SCOPE_SQL = f"""
INSERT INTO {SCOPE_PARTICIPANTS}
SELECT {_PARTICIPANT_SCOPE_COLUMNS} FROM activity_participants p
WHERE {_ACTIVITY_PARTICIPANTS}
  AND NOT EXISTS (SELECT 1 FROM {SCOPE_PARTICIPANTS} s WHERE s.id = p.id)
  AND p.id IN (
      {_ORG_PARTICIPANTS} lower(x.email) IN (
          SELECT lower(c.email) FROM contacts c WHERE c.id IN ({_written("contacts")})
          UNION SELECT lower(o.email) FROM owners o WHERE o.id IN ({_written("owners")}))
      UNION
      {_ORG_PARTICIPANTS} split_part(lower(x.email), '@', 2) IN (
          SELECT lower(a.domain) FROM accounts a WHERE a.id IN ({_written("accounts")}))
      UNION {_ORG_PARTICIPANTS} x.contact_id IN ({_written("contacts")})
      UNION {_ORG_PARTICIPANTS} x.owner_id IN ({_written("owners")})
      UNION {_ORG_PARTICIPANTS} x.account_id IN ({_written("accounts")}))
"""

# The same participants, for a small CRM write (an incremental sync's): one scan of the
# organization's activity participants, each tested against hashed sets of the written rows'
# emails, domains and ids. The union above scans the participants once per branch that no index
# serves (the domain, contact_id, owner_id and account_id branches: four scans, ~55% of a
# HubSpot incremental resolution on PostgreSQL at scale 0.3), plus once more to join the union
# back. Only while each written set is small (``AFFECTED_ONE_SCAN_MAX``): the sets must stay
# hashed in work_mem (see above).
AFFECTED_PARTICIPANTS_ONE_SCAN_SQL = f"""
INSERT INTO {SCOPE_PARTICIPANTS}
SELECT {_PARTICIPANT_SCOPE_COLUMNS} FROM activity_participants p
WHERE {_ACTIVITY_PARTICIPANTS}
  AND NOT EXISTS (SELECT 1 FROM {SCOPE_PARTICIPANTS} s WHERE s.id = p.id)
  AND (lower(p.email) IN (
           SELECT lower(c.email) FROM contacts c WHERE c.id IN ({_written("contacts")})
           UNION SELECT lower(o.email) FROM owners o WHERE o.id IN ({_written("owners")}))
       OR split_part(lower(p.email), '@', 2) IN (
           SELECT lower(a.domain) FROM accounts a WHERE a.id IN ({_written("accounts")}))
       OR p.contact_id IN ({_written("contacts")})
       OR p.owner_id IN ({_written("owners")})
       OR p.account_id IN ({_written("accounts")}))
"""
AFFECTED_ONE_SCAN_MAX = 10_000  # written contacts, owners or accounts (each) for the one scan

STALE_PARTICIPANTS_SQL = f"""
UPDATE activity_participants SET deleted_at = a.updated_at
FROM activities a
WHERE activity_participants.activity_id = a.id
  AND activity_participants.organization_id = :org
  AND activity_participants.source_system IN ({_ACTIVITY_SYSTEMS})
  AND activity_participants.deleted_at IS NULL
  AND a.updated_at IS NOT NULL
  AND activity_participants.updated_at < a.updated_at
  {{scope}}
"""
# Incremental: a participant turns stale when its activity or itself was written: one IN over
# a union (the participants of written activities through the (organization_id, activity_id)
# index, and the written participants), not an OR across the two joined tables, which cannot
# be pushed into either and joined every participant of the organization to its activity.
_STALE_SCOPE = (
    f"AND activity_participants.id IN ({_ORG_PARTICIPANTS} x.activity_id IN "
    f"({_written('activities')}) UNION {_written('activity_participants')})"
)

EMAIL_PARTICIPANTS_SQL = f"""
UPDATE activity_participants
SET contact_id = r.contact_id, account_id = r.account_id, owner_id = r.owner_id,
    is_internal = r.is_internal{{clear}}
FROM (
    SELECT p.id, {{written}},
           c.id AS contact_id,
           CASE WHEN o.id IS NULL THEN COALESCE(c.account_id, d.id) END AS account_id,
           o.id AS owner_id,
           CASE WHEN o.id IS NOT NULL OR p.domain IN :own_domains THEN TRUE
                ELSE COALESCE(p.is_internal, FALSE) END AS is_internal
    FROM {SCOPE_PARTICIPANTS} p
    LEFT JOIN ({_first_by("contacts", "lower(email)", "account_id", "email")}) c
           ON c.key = p.email
    LEFT JOIN ({_first_by("owners", "lower(email)", "NULL", "email")}) o ON o.key = p.email
    LEFT JOIN ({_first_by("accounts", "lower(domain)", "NULL", "domain")}) d
           ON d.key = p.domain AND p.domain NOT IN :consumer_domains
          AND p.domain NOT IN :own_domains
    {{written_join}}
) r
WHERE activity_participants.id = r.id
  AND (activity_participants.contact_id IS DISTINCT FROM r.contact_id
       OR activity_participants.account_id IS DISTINCT FROM r.account_id
       OR activity_participants.owner_id IS DISTINCT FROM r.owner_id
       OR activity_participants.is_internal IS DISTINCT FROM r.is_internal)
"""

# One IN over a union rather than two INs or-ed: a semi-join from the small set by primary key,
# where the OR scanned every activity of the organization.
ACTIVITIES_SCOPE_SQL = f"""
INSERT INTO {SCOPE_ACTIVITIES}
SELECT id FROM activities
WHERE organization_id = :org AND source_system IN ({_ACTIVITY_SYSTEMS})
  AND id IN ({_written("activities")} UNION SELECT activity_id FROM {SCOPE_PARTICIPANTS})
"""
ALL_ACTIVITIES_SCOPE_SQL = f"""
INSERT INTO {SCOPE_ACTIVITIES}
SELECT id FROM activities WHERE organization_id = :org AND source_system IN ({_ACTIVITY_SYSTEMS})
"""

# The live participants of the activities in scope, read once for the three rules below.
LIVE_PARTICIPANTS_SQL = f"""
INSERT INTO {SCOPE_LIVE}
SELECT activity_id, id, email, role, owner_id, contact_id, account_id, is_internal
FROM activity_participants
WHERE organization_id = :org AND deleted_at IS NULL
  AND activity_id IN (SELECT id FROM {SCOPE_ACTIVITIES})
"""

_MEETING = f"a.activity_type IN ({_MEETINGS})"
# Each activity in scope with its links now (old_*) and as the rules make them. A meeting's
# deal is left NULL here and found by MEETING_DEALS_SQL once its account is known.
ACTIVITY_LINKS_SQL = f"""
INSERT INTO {SCOPE_LINKS}
SELECT a.id, {_MEETING}, a.occurred_at,
       a.owner_id, a.contact_id, a.account_id, a.deal_id,
       o.owner_id, c.contact_id, acc.account_id,
       CASE WHEN {_MEETING} THEN NULL ELSE a.deal_id END
FROM activities a
LEFT JOIN (
    SELECT DISTINCT ON (activity_id) activity_id, owner_id
    FROM {SCOPE_LIVE} WHERE owner_id IS NOT NULL
    ORDER BY activity_id, CASE WHEN role IN ('organizer', 'author') THEN 0 ELSE 1 END,
             email NULLS LAST, id
) o ON o.activity_id = a.id
LEFT JOIN (
    SELECT DISTINCT ON (activity_id) activity_id, contact_id
    FROM {SCOPE_LIVE} WHERE contact_id IS NOT NULL
    ORDER BY activity_id, email NULLS LAST, id
) c ON c.activity_id = a.id
LEFT JOIN (
    SELECT DISTINCT ON (activity_id) activity_id, account_id FROM (
        SELECT activity_id, account_id, count(*) AS n FROM {SCOPE_LIVE}
        WHERE account_id IS NOT NULL AND NOT COALESCE(is_internal, FALSE)
        GROUP BY activity_id, account_id
    ) counted
    ORDER BY activity_id, n DESC, account_id
) acc ON acc.activity_id = a.id
WHERE a.organization_id = :org AND a.source_system IN ({_ACTIVITY_SYSTEMS})
  AND a.id IN (SELECT id FROM {SCOPE_ACTIVITIES})
"""

_MEETING_ROWS = (
    f"a.organization_id = :org AND {_MEETING} AND a.source_system IN ({_ACTIVITY_SYSTEMS})"
)
# Meetings a written deal may now be (or no longer be) the deal of, their links unchanged.
# A union of two index lookups (activities by account_id, by deal_id), not an OR over a scan.
DEAL_MEETINGS_SCOPE_SQL = f"""
INSERT INTO {SCOPE_LINKS}
SELECT a.id, TRUE, a.occurred_at, a.owner_id, a.contact_id, a.account_id, a.deal_id,
       a.owner_id, a.contact_id, a.account_id, NULL
FROM activities a
WHERE {_MEETING_ROWS} AND NOT EXISTS (SELECT 1 FROM {SCOPE_LINKS} s WHERE s.id = a.id)
  AND a.id IN (
      SELECT m.id FROM activities m
      WHERE m.organization_id = :org
        AND m.account_id IN (SELECT d.account_id FROM deals d WHERE d.id IN ({_written("deals")}))
      UNION
      SELECT m.id FROM activities m
      WHERE m.organization_id = :org AND m.deal_id IN ({_written("deals")}))
"""

# A meeting's deal: the one open on its (new) account when it took place. In the scope table,
# so that every activity is rewritten once with all its links, not once per rule.
MEETING_DEALS_SQL = f"""
UPDATE {SCOPE_LINKS} SET deal_id = d.deal_id
FROM (
    SELECT DISTINCT ON (m.id) m.id, deals.id AS deal_id
    FROM {SCOPE_LINKS} m
    JOIN deals ON deals.organization_id = :org
              AND deals.account_id = m.account_id
              AND deals.deleted_at IS NULL
              AND deals.created_at <= m.occurred_at
              AND (NOT COALESCE(deals.is_closed, FALSE)
                   OR deals.close_date >= CAST(m.occurred_at AS DATE))
    WHERE m.is_meeting
    ORDER BY m.id, deals.created_at DESC, deals.id
) d
WHERE {SCOPE_LINKS}.id = d.id
"""

_LINKS_CHANGED = (
    "(l.owner_id IS DISTINCT FROM l.old_owner_id OR l.contact_id IS DISTINCT FROM "
    "l.old_contact_id OR l.account_id IS DISTINCT FROM l.old_account_id)"
)
_DEAL_CHANGED = "(l.is_meeting AND l.deal_id IS DISTINCT FROM l.old_deal_id)"
LINK_COUNTS_SQL = (
    f"SELECT count(*) FILTER (WHERE {_LINKS_CHANGED}), count(*) FILTER (WHERE {_DEAL_CHANGED}), "
    f"count(*) FILTER (WHERE l.is_meeting) FROM {SCOPE_LINKS} l"
)
# One UPDATE per activity whose links changed (the stored values compared again: they are
# what counts if a row changed since the scope was read).
ACTIVITIES_UPDATE_SQL = f"""
UPDATE activities
SET owner_id = r.owner_id, contact_id = r.contact_id, account_id = r.account_id,
    deal_id = r.deal_id{{clear}}
FROM (
    SELECT l.id, l.owner_id, l.contact_id, l.account_id, l.deal_id, {{written}}
    FROM {SCOPE_LINKS} l
    {{written_join}}
    WHERE {_LINKS_CHANGED} OR {_DEAL_CHANGED}
) r
WHERE activities.id = r.id
  AND (activities.owner_id IS DISTINCT FROM r.owner_id
       OR activities.contact_id IS DISTINCT FROM r.contact_id
       OR activities.account_id IS DISTINCT FROM r.account_id
       OR activities.deal_id IS DISTINCT FROM r.deal_id)
"""

# PostgreSQL: resolution rewrites most written participants and activities anyway (their links),
# and an UPDATE there writes a whole new row version and an entry in every index (no HOT: the
# mark is in a partial index's predicate). So their marks are not cleared by an UPDATE of their
# own before the rules run: the written rows are locked instead (a sync writing one meanwhile
# still waits for this transaction, then marks it again), the rules' UPDATEs clear the marks of
# the written rows they rewrite, and one UPDATE at the end clears the rest. Each such row is
# rewritten once instead of twice (the Calendar's first resolution: every participant).
MARKS_CLEARED_BY_RULES = ("activity_participants", "activities")


def _rules_sql(template: str, table: str, *, clear_marks: bool, alias: str) -> str:
    """A rule's UPDATE, clearing the marks of the written rows it rewrites if ``clear_marks``."""
    if not clear_marks:
        return template.format(clear="", written="NULL AS written", written_join="")
    return template.format(
        clear=f", {PENDING_COLUMN} = CASE WHEN r.written THEN FALSE "
        f"ELSE {table}.{PENDING_COLUMN} END",
        written="w.id IS NOT NULL AS written",
        written_join=f"LEFT JOIN {WRITTEN} w ON w.tbl = '{table}' AND w.id = {alias}.id",
    )


# "Which accounts did we meet last week, and what is their open pipeline?" - joins alone.
# Parameters :org, :week_start, :week_end (UTC instants). A meeting is a calendar event that
# was not cancelled and had an external participant resolved to the account.
ACCOUNTS_MET_SQL = f"""
SELECT acc.id AS account_id, acc.name AS account_name,
       count(DISTINCT m.id) AS meetings,
       (SELECT count(*) FROM deals d
         WHERE d.account_id = acc.id AND d.deleted_at IS NULL
           AND NOT COALESCE(d.is_closed, FALSE)) AS open_deals,
       (SELECT COALESCE(sum(d.amount), 0) FROM deals d
         WHERE d.account_id = acc.id AND d.deleted_at IS NULL
           AND NOT COALESCE(d.is_closed, FALSE)) AS open_pipeline
FROM activities m
JOIN activity_participants p ON p.activity_id = m.id AND p.deleted_at IS NULL
     AND NOT COALESCE(p.is_internal, FALSE)
JOIN accounts acc ON acc.id = p.account_id AND acc.deleted_at IS NULL
WHERE m.organization_id = :org AND m.activity_type IN ({_MEETINGS})
  AND m.deleted_at IS NULL AND COALESCE(m.status, '') <> 'cancelled'
  AND m.occurred_at >= :week_start AND m.occurred_at < :week_end
GROUP BY acc.id, acc.name
ORDER BY open_pipeline DESC, acc.name
"""


@dataclass(frozen=True)
class ResolveReport:
    """What one resolution looked at (its scope) and changed."""

    consumer_domains: int
    own_domains: tuple[str, ...]
    full: bool = False
    written_rows: int = 0  # rows marked pending by syncs, seen and cleared by this run
    participants_examined: int = 0
    participants_updated: int = 0
    participants_stale: int = 0
    activities_examined: int = 0
    activities_updated: int = 0  # whose owner, contact or account changed
    meetings_examined: int = 0
    meetings_updated: int = 0  # whose deal changed (an activity may count in both)
    marks_cleared: tuple[tuple[str, int], ...] = ()  # (table, rows) whose marks were cleared

    @property
    def rows_updated(self) -> int:
        return (
            self.participants_updated
            + self.participants_stale
            + self.activities_updated
            + self.meetings_updated
        )


def resolve_identities(
    conn: Connection, org: str, *, full: bool = False, analyze: bool = True
) -> ResolveReport:
    """Apply the resolution rules to ``org``'s rows, in the caller's transaction, and record
    the run in ``identity_resolutions`` (not when nothing was marked: the record stands).

    Incremental by default: only rows written since the last resolution and what they affect
    (module docstring). ``full=True`` resolves every row, e.g. after a change of the rules.
    ``analyze=False`` leaves the statistics of the tables whose marks were mostly cleared to
    the caller (``report.marks_cleared``): a sync refreshes them with those of the tables it
    and the rules wrote, once, after this transaction commits.
    """
    lock_resolution(conn, org)  # two syncs' resolutions would deadlock on the same rows
    params = {"org": org}
    tagged = conn.execute(text(PROLOGUE_SQL), params).all()
    own = sorted(own_domains(value for tag, value in tagged if tag == "owner"))
    own_text = ",".join(own)
    previous = [value for tag, value in tagged if tag == "previous"]
    full = full or previous != [own_text]
    if full or any(tag == "pending" for tag, _ in tagged):
        # On an error the caller's transaction rolls back, and the scope tables with it.
        _create_scope(conn, [WRITTEN], drop=True)
        report = _resolve_in_scope(conn, org, own, full=full)  # drops them at its end
    else:
        # Nothing written since the last one, same own domains: no scope tables, no statement
        # over none, and nothing to record (its record stands), so the transaction writes
        # nothing (on DuckDB a commit that wrote flushes the write-ahead log).
        return ResolveReport(consumer_domains=0, own_domains=tuple(own))
    if analyze:
        _analyze_cleared(conn, dict(report.marks_cleared))
    conn.execute(
        text(
            "INSERT INTO identity_resolutions (organization_id, own_domains, resolved_at, "
            "full_at) VALUES (:org, :own, :now, :full_at) ON CONFLICT (organization_id) "
            "DO UPDATE SET own_domains = excluded.own_domains, "
            "resolved_at = excluded.resolved_at, "
            "full_at = COALESCE(excluded.full_at, identity_resolutions.full_at)"
        ),
        {"org": org, "own": own_text, "now": utcnow(), "full_at": utcnow() if full else None},
    )
    log.info(
        "identities resolved for %s (%s; own domains: %s): %d participants examined, "
        "%d updated; %d activities examined, %d updated",
        org,
        "full" if full else "incremental",
        ", ".join(own) or "none",
        report.participants_examined,
        report.participants_updated,
        report.activities_examined,
        report.activities_updated,
    )
    return report


def _resolve_in_scope(conn: Connection, org: str, own: list[str], *, full: bool) -> ResolveReport:
    """The rules over the scope the marks give (module docstring). A statement whose scope is
    empty is not sent (the scope tables' sizes come from the rowcounts of their INSERTs): a
    small sync's resolution is mostly statements' fixed costs, not their rows."""
    params = {"org": org}
    conn.execute(text(f"INSERT INTO {WRITTEN} {SNAPSHOT_WRITTEN_SQL}"), params)
    _analyze_scope(conn, WRITTEN)
    written = _counts_by_table(conn)
    # Cleared (or, for the tables the rules rewrite, locked) first: every statement below then
    # reads (PostgreSQL, read committed) versions at least as new as the marks it saw, and a
    # sync writing one of these rows meanwhile waits for this transaction and marks it again.
    # A row inserted meanwhile is not in the snapshot and stays marked for the next resolution.
    merge = conn.dialect.name == "postgresql"
    deferred = [t for t in MARKS_CLEARED_BY_RULES if merge and written.get(t)]
    # The scope tables the steps below may fill, created in the same round trip (a deals-only
    # write, a CRM re-sync's usual one, needs the links' alone: each temporary table created
    # and dropped is catalog rows written and removed).
    _create_scope(
        conn,
        _scope_tables(full, written),
        then=[
            _lock_marked_sql(table) if table in deferred else _clear_marked_sql(table)
            for table in RESOLUTION_INPUTS
            if written.get(table)
        ],
    )
    if full:
        participants = conn.execute(text(ALL_PARTICIPANTS_SCOPE_SQL), params).rowcount
    else:
        participants = 0
        if written.get("activity_participants"):
            participants = conn.execute(text(WRITTEN_PARTICIPANTS_SCOPE_SQL), params).rowcount
        crm = [written.get(t, 0) for t in ("contacts", "owners", "accounts")]
        if any(crm):
            affected = (
                AFFECTED_PARTICIPANTS_ONE_SCAN_SQL
                if max(crm) <= AFFECTED_ONE_SCAN_MAX
                else AFFECTED_PARTICIPANTS_SCOPE_SQL
            )
            participants += conn.execute(text(affected), params).rowcount
    stale = consumer_count = participants_updated = 0
    if participants:
        _analyze_scope(conn, SCOPE_PARTICIPANTS)
    if full or written.get("activities") or written.get("activity_participants"):
        stale = conn.execute(
            text(STALE_PARTICIPANTS_SQL.format(scope="" if full else _STALE_SCOPE)), params
        ).rowcount
    if participants:
        domains = conn.execute(
            text(f"SELECT DISTINCT domain FROM {SCOPE_PARTICIPANTS} WHERE domain IS NOT NULL")
        ).scalars()
        consumer = consumer_domains(domains)
        consumer_count = len(consumer)
        lists = {"own_domains": own or [""], "consumer_domains": consumer or [""]}
        table = "activity_participants"
        email_sql = _rules_sql(
            EMAIL_PARTICIPANTS_SQL, table, clear_marks=table in deferred, alias="p"
        )
        participants_updated = conn.execute(
            text(email_sql).bindparams(
                bindparam("own_domains", expanding=True),
                bindparam("consumer_domains", expanding=True),
            ),
            {**params, **lists},
        ).rowcount
    activities = in_links = 0
    if full or written.get("activities") or participants:
        activities = conn.execute(
            text(ALL_ACTIVITIES_SCOPE_SQL if full else ACTIVITIES_SCOPE_SQL), params
        ).rowcount
    if activities:
        _analyze_scope(conn, SCOPE_ACTIVITIES)
        conn.execute(text(LIVE_PARTICIPANTS_SQL), params)
        _analyze_scope(conn, SCOPE_LIVE)
        in_links = conn.execute(text(ACTIVITY_LINKS_SQL), params).rowcount
    if written.get("deals") and not full:
        in_links += conn.execute(text(DEAL_MEETINGS_SCOPE_SQL), params).rowcount
    links = deals = meetings = 0
    if in_links:
        _analyze_scope(conn, SCOPE_LINKS)
        conn.execute(text(MEETING_DEALS_SQL), params)
        links, deals, meetings = conn.execute(text(LINK_COUNTS_SQL)).one()
        if links or deals:
            activities_sql = _rules_sql(
                ACTIVITIES_UPDATE_SQL,
                "activities",
                clear_marks="activities" in deferred,
                alias="l",
            )
            conn.execute(text(activities_sql), params)
    # The written rows no rule rewrote, and the scope tables, in one round trip.
    _run_together(conn, [_clear_marked_sql(table) for table in deferred] + _DROP_SCOPE)
    return ResolveReport(
        consumer_domains=consumer_count,
        own_domains=tuple(own),
        full=full,
        written_rows=sum(written.values()),
        participants_examined=participants,
        participants_updated=participants_updated,
        participants_stale=stale,
        activities_examined=activities,
        activities_updated=int(links),
        meetings_examined=int(meetings),
        meetings_updated=int(deals),
        marks_cleared=tuple(sorted((t, n) for t, n in written.items() if n)),
    )


def _clear_marked_sql(table: str) -> str:
    # By the snapshot's ids alone (taken of this organization's rows): no parameter, so that
    # the statements of a step go to the server together (``_run_together``).
    return (
        f"UPDATE {table} SET {PENDING_COLUMN} = FALSE "
        f"WHERE {PENDING_COLUMN} AND id IN ({_written(table)})"
    )


def _lock_marked_sql(table: str) -> str:
    locked = f"SELECT id FROM {table} WHERE {PENDING_COLUMN} AND id IN ({_written(table)})"
    return f"SELECT count(*) FROM ({locked} FOR NO KEY UPDATE) locked"


def _run_together(conn: Connection, statements: list[str]) -> None:
    """Statements without parameters in one call: one round trip on PostgreSQL (psycopg sends
    a query without parameters as a simple query, which may hold several), one call on DuckDB
    (its ``execute`` runs every statement of a string)."""
    if statements:
        conn.exec_driver_sql("; ".join(statements))


_DROP_SCOPE = [f"DROP TABLE IF EXISTS {name}" for name in _SCOPE_DDL]


def _create_scope(
    conn: Connection, names: list[str], *, drop: bool = False, then: Sequence[str] = ()
) -> None:
    """Create the scope tables ``names`` (all of them dropped first if ``drop``, should the
    session still hold them: a temporary table is the session's), then run ``then``, in one
    round trip."""
    create = [f"CREATE TEMPORARY TABLE {name} ({_SCOPE_DDL[name]})" for name in names]
    _run_together(conn, (_DROP_SCOPE if drop else []) + create + list(then))


def _scope_tables(full: bool, written: dict[str, int]) -> list[str]:
    """The scope tables (besides ``WRITTEN``) the steps may use given what was written: the
    participants' and activities' steps run on written participants or activities or CRM rows
    participants match, the meetings' on those and written deals."""
    activities = full or any(
        written.get(t)
        for t in ("activity_participants", "activities", "contacts", "owners", "accounts")
    )
    tables = [SCOPE_PARTICIPANTS, SCOPE_ACTIVITIES, SCOPE_LIVE] if activities else []
    if activities or written.get("deals"):
        tables.append(SCOPE_LINKS)
    return tables


def _analyze_scope(conn: Connection, *tables: str) -> None:
    # A temporary table has no statistics until analyzed: PostgreSQL would guess its size
    # and may pick nested loops over the whole organization (issue 13). DuckDB keeps its own.
    if conn.dialect.name == "postgresql":
        for table in tables:
            conn.execute(text(f"ANALYZE {table}"))


def _analyze_cleared(conn: Connection, cleared: dict[str, int]) -> None:
    """Refresh the statistics of the tables whose marks were mostly just cleared (PostgreSQL).

    Their statistics were taken while the sync's rows were marked: after a first load every
    row. The planner then expects the next snapshot to find the whole table pending and scans
    it (2.3 s each for contacts and deals at scale 10) instead of the partial index on the
    marks, at every later sync. Analyzed inside this transaction, which sees its own clearing.
    """
    if conn.dialect.name != "postgresql":
        return
    sizes = estimated_rows(conn, [table for table, rows in cleared.items() if rows])
    due = [t for t, rows in sizes.items() if rows < 0 or cleared[t] >= REFRESH_SHARE * rows]
    analyze_tables(conn, due)


def _counts_by_table(conn: Connection) -> dict[str, int]:
    rows = conn.execute(text(f"SELECT tbl, count(*) FROM {WRITTEN} GROUP BY tbl"))
    return {str(table): int(count) for table, count in rows}


# --- Resolution in the batch ------------------------------------------------------------------
#
# A sync's Slack and Calendar rows are resolved before they are written: the batch's
# participants and activities get their links (rules 2-5, the same as the SQL above) from the
# contacts, owners, accounts and deals already in the store, and are written once, resolved and
# unmarked. On PostgreSQL the resolution after the sync otherwise rewrote each of them (a new
# version of the row and an entry in every index): Calendar's first resolution was ~18% of its
# sync. What a batch cannot settle alone stays marked for the resolution after the sync: an
# activity with live participants in the store that the batch does not hold (they may turn
# stale or count in its links), one stored with a newer version than the batch's, one that
# comes in the batch in two versions, a participant whose activity is not in the batch. A CRM
# row written later (a contact whose participants were written before it) marks itself, and the
# resolution after its sync finds the participants it affects, as before. The batch takes the
# resolution lock shared (``store.locks.share_resolution``), so no resolution runs between its
# reads and its commit.
#
# What the store holds of a batch's activities is known without asking it for those this sync
# wrote itself (kept per activity: its version and live participants), and for all of them when
# the store held none of the provider's rows when the sync began (a first load): an event on
# several calendars is met again in later batches, and probing the store for every activity of
# every batch was a fifth of resolve_batch's time at scale 10.

_AUTHOR_ROLES = frozenset(("organizer", "author"))
_NO_MATCH: tuple[Any, Any, Any, bool] = (None, None, None, False)
_UNKNOWN = object()  # an activity this sync has not written
# New emails in one batch, as a share of the contacts (estimated), from which a sync's batches
# read every contact, owner and account once rather than looking up their keys (accounts whose
# deals are wanted, as a share of the accounts: every deal).
READ_ALL_SHARE = 0.05
# ... and on a provider's first load (the store held none of its rows), whose batches go on to
# meet most keys anyway: Calendar's first sync at scale 10 looked up ~4,000 new emails in each
# of 12 batches (2% of the contacts: 0.6-1.0 s each on a fresh copy of the store, 20.2 s in
# all, waiting on the contacts' pages), where one read of every contact took 2.4 s.
READ_ALL_FIRST_LOAD_SHARE = 0.01
# DuckDB resolves an incremental sync's batches (sync._StreamWriter) up to this many
# participants each; a larger batch is left to the set-based resolution after the sync, cheaper
# there for many rows (its lookups by key scan the tables: no index serves them).
DUCKDB_BATCH_MAX = 2_000
# ... and its first this many batches only: each batch's lookups scan the tables there, so a
# long incremental sync (a commit every 5 s of a slow provider: ~13 for Calendar at scale 10)
# leaves the rest to the one resolution after it.
DUCKDB_BATCHES = 2
SORT_MEMORY = "64MB"  # work_mem for the statements that read all contacts or deals


@dataclass(frozen=True)
class BatchResolution:
    """What ``resolve_batch`` did to one batch's rows."""

    participants: int = 0  # written resolved and unmarked
    activities: int = 0
    left_participants: int = 0  # left marked for the resolution after the sync
    left_activities: int = 0
    stale: int = 0  # stored participants its activities no longer have, made stale (rule 1)


def resolve_batch(
    conn: Connection,
    org: str,
    rows: dict[str, list[dict[str, Any]]],
    normalized: dict[int, Any] | None = None,
    lookups: BatchLookups | None = None,
) -> BatchResolution:
    """Resolve the Slack and Calendar participants and activities of a sync batch in place,
    before they are upserted in ``conn``'s transaction (module notes above); each such row gets
    ``resolution_pending`` set: FALSE where the batch settled it, TRUE where it did not.

    ``normalized`` keeps the normalizer's ``is_internal`` of each participant (by ``id(row)``)
    across calls on the same rows, as a batch retried on a fresh connection is resolved again.
    ``lookups`` keeps what earlier batches of the same sync read of the store and wrote to it,
    valid while the sync holds the resolution lock shared for all its batches (``store.locks.
    resolution_shared``) and its provider's sync lock; without it, or once that lock is lost,
    this batch takes the lock in its own transaction and reads afresh.

    Each row is read once (the fields the rules use, as columns: ``_columns``) and written
    once (all it gets in one ``dict.update``): a batch's rows are memory-bound to walk at
    scale 10, where ~15 passes over its participants were most of this step's CPU. The cyclic
    garbage collector is paused meanwhile (``_collector_paused``).
    """
    with _collector_paused():
        return _resolve_batch(conn, org, rows, normalized, lookups)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, if it was on. Resolving a scale-10
    batch allocates ~1.3M containers per sync (rows' fields, groups, links), most freed by
    their reference counts within the step: they set off ~130 young collections (each walking
    the last 10,000 objects) and the middle ones those count towards (~0.2 s each, walking
    everything young collections promoted), 0.7 of the step's 3.4 s of CPU. Afterwards one
    young collection walks what the step kept. Syncs in threads side by side: the first to
    end turns it back on."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _resolve_batch(
    conn: Connection,
    org: str,
    rows: dict[str, list[dict[str, Any]]],
    normalized: dict[int, Any] | None,
    lookups: BatchLookups | None,
) -> BatchResolution:
    participants = rows.get("activity_participants") or []
    activities = rows.get("activities") or []
    if not participants and not activities:
        return BatchResolution()
    people_columns = _Participants(*_columns(participants, _Participants._fields))
    activity_columns = _Activities(*_columns(activities, _Activities._fields))
    systems = set(people_columns.source_system)
    systems.update(activity_columns.source_system)
    crm_rows = any(rows.get(t) for t in RESOLUTION_INPUTS if t not in MARKS_CLEARED_BY_RULES)
    large = conn.dialect.name == "duckdb" and len(participants) > DUCKDB_BATCH_MAX
    if crm_rows or large or not systems <= _ACTIVITY_PROVIDERS:
        if lookups is not None:
            lookups.forget_written()  # these rows are written without it knowing
        return BatchResolution()  # left to the resolution
    if lookups is None or not lookups.bind(conn):
        share_resolution(conn, org)
        lookups = BatchLookups(org)
        # This batch's alone: it asks the store about each of its activities, without first
        # asking whether the store held any of the provider's (a statement less; on DuckDB,
        # where an incremental sync's batches read afresh, the answer is yes anyway).
        lookups.complete = False
        lookups.bind(conn)
    emails = people_columns.email
    system = next(iter(systems)) if len(systems) == 1 else None
    # A first load's batches read every contact, owner, account and deal at a smaller share.
    lookups.first_load = lookups._empty_before(system)
    outcomes = lookups.outcomes(emails)
    given = people_columns.is_internal
    if normalized is not None:  # the normalizer's values, not those of an earlier attempt
        if normalized:
            given = list(map(normalized.setdefault, map(id, participants), given))
        else:
            normalized.update(zip(map(id, participants), given, strict=True))
    # Activities by the int of their id (hashed in C; a UUID hashes through Python).
    activity_keys = _keys(activity_columns.id)
    participant_keys = _keys(people_columns.activity_id)  # their activities'
    found = list(map(outcomes.__getitem__, emails))  # rules 2-4: each email's outcome
    # Each activity's participants (their positions) for rule 3, in batch order (a normalizer
    # writes an event's participants together: one step per run of them).
    people: dict[int, list[int]] = {}
    runs = itertools.groupby(range(len(participant_keys)), participant_keys.__getitem__)
    for activity_id, run in runs:
        if (group := people.get(activity_id)) is None:
            people[activity_id] = list(run)
        else:
            group.extend(run)
    updated = activity_columns.updated_at
    versions: dict[int, Any] = dict(zip(activity_keys, updated, strict=True))
    twice: set[int] = set()  # activities in the batch more than once (an event on two calendars)
    if len(versions) < len(activity_keys):  # the latest updated_at of each
        versions.clear()
        for activity_id, updated_at in zip(activity_keys, updated, strict=True):
            if activity_id in versions:
                twice.add(activity_id)
                if not _not_older(updated_at, versions[activity_id]):
                    continue
            versions[activity_id] = updated_at
    # Those rows as the upsert collapses them; one whose older version brought a participant
    # the newer lacks is left to the resolution after the sync (rule 1 makes it stale).
    row_ids, deleted = people_columns.id, people_columns.deleted_at
    stale: set[int] = set()
    for activity_id in twice:
        if activity_id in people:
            people[activity_id] = group = _latest_by_id(people[activity_id], participants)
            if _has_stale(group, participants, versions[activity_id]):
                stale.add(activity_id)
    held = people.get

    def ids_of(activity_id: int) -> list[Any]:
        return list(map(row_ids.__getitem__, held(activity_id, ())))

    unsettled = lookups.unsettled(system, versions, ids_of) | stale
    made_stale = lookups.make_stale(unsettled)
    # Rule 3 per activity from its live participants (the batch's), and the ids of those
    # participants for ``remember``, in one pass over each activity's positions.
    rule_3 = _Rule3(found, given, row_ids, deleted, emails, people_columns.role)
    links: dict[int, dict[str, Any]] = {}
    live: dict[int, list[Any]] = {}
    no_links = (None, None, None)
    for activity_id in versions:
        if group := people.get(activity_id):
            (owner, contact, account), live[activity_id] = rule_3.links(group)
        else:
            owner, contact, account = no_links
        links[activity_id] = {
            "owner_id": owner,
            "contact_id": contact,
            "account_id": account,
            PENDING_COLUMN: activity_id in unsettled,
        }
    lookups.remember(versions, live, people, unsettled)
    # Rule 5 per meeting row, from its activity's account (an unsettled meeting's deals may not
    # have been read: as before, from what was), then each activity row written once.
    linked = list(map(links.__getitem__, activity_keys))
    accounts = list(map(_ACCOUNT_ID, linked))
    left = list(map(unsettled.__contains__, activity_keys))
    meetings = list(map(MEETING_TYPES.__contains__, activity_columns.activity_type))
    meeting_accounts = set(
        itertools.compress(accounts, map(_settled_meeting, meetings, accounts, left))
    )
    accounts_deals = lookups.deals_of(meeting_accounts)
    meeting_rows = zip(linked, accounts, activity_columns.occurred_at, meetings, strict=True)
    written = [
        {**link, "deal_id": _deal_at(accounts_deals, account_id, occurred)} if meeting else link
        for link, account_id, occurred, meeting in meeting_rows
    ]
    deque(map(dict.update, activities, written), maxlen=0)
    left_activities = left.count(True)
    # Each participant row written once: its email's values (one dict per email, shared), then
    # the few rows whose normalizer said internal, or left marked (no activity in the batch).
    values = lookups.values
    deque(map(dict.update, participants, map(values.__getitem__, emails)), maxlen=0)
    for row in itertools.compress(participants, given):
        row["is_internal"] = True
    left = list(map(operator.not_, map(versions.__contains__, participant_keys)))
    left_participants = left.count(True)
    for row in itertools.compress(participants, left):
        row[PENDING_COLUMN] = True
    return BatchResolution(
        participants=len(participants) - left_participants,
        activities=len(activities) - left_activities,
        left_participants=left_participants,
        left_activities=left_activities,
        stale=made_stale,
    )


_ACTIVITY_PROVIDERS = frozenset(ACTIVITY_PROVIDERS)
_ACCOUNT_ID = operator.itemgetter("account_id")
_UPDATED_AT = operator.methodcaller("get", "updated_at")


class _Participants(NamedTuple):
    """What the rules read of a batch's participants, column by column (``_columns``)."""

    activity_id: list[Any]
    email: list[Any]
    id: list[Any]
    is_internal: list[Any]
    deleted_at: list[Any]
    role: list[Any]
    source_system: list[Any]


class _Activities(NamedTuple):
    """What the rules read of a batch's activities."""

    id: list[Any]
    updated_at: list[Any]
    activity_type: list[Any]
    occurred_at: list[Any]
    source_system: list[Any]


def _columns(rows: list[dict[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    """The values of ``names`` in ``rows``, one list per name, from one pass over the rows (in C):
    a pass over a scale-10 batch's participant dicts (~306k of 17 keys, spread over ~400 MB)
    costs 0.05-0.1 s of cache misses, a pass over a list of them a few ms. A missing field is
    None (as ``dict.get``)."""
    if not rows:
        return [[] for _ in names]
    try:
        records = list(map(operator.itemgetter(*names), rows))
    except KeyError:  # a caller's rows without some of them
        records = [tuple(map(row.get, names)) for row in rows]
    return [list(map(operator.itemgetter(i), records)) for i in range(len(names))]


def _deal_at(
    accounts_deals: dict[Any, list[DealFacts]], account_id: Any, occurred: datetime | None
) -> Any:
    """Rule 5 for one meeting row: the deal open on its account when it took place."""
    deals = accounts_deals.get(account_id) if account_id is not None else None
    if not deals or occurred is None:
        return None
    moment = occurred if occurred.tzinfo is UTC else _utc(occurred).astimezone(UTC)
    return open_deal_at(moment, deals)


_INT = operator.attrgetter("int")


def _keys(ids: list[Any]) -> list[int]:
    """``_key`` of each id, in C when all are UUIDs (the normalizers' ids)."""
    try:
        return list(map(_INT, ids))
    except AttributeError:  # text ids (a caller's own rows)
        return [_key(value) for value in ids]


def _latest_by_id(group: list[int], rows: list[dict[str, Any]]) -> list[int]:
    """One row per id among the positions ``group`` of ``rows``, as the upsert collapses a
    batch: the latest ``updated_at`` (none is the oldest), the later row on a tie."""
    of_group = list(map(rows.__getitem__, group))
    keys = _keys([row["id"] for row in of_group])  # ints: hashed in C
    if len(set(map(_UPDATED_AT, of_group))) == 1:  # one version (copies of one event): the later
        return list(dict(zip(keys, group, strict=True)).values())
    latest: dict[int, int] = {}
    for position, row, key in zip(group, of_group, keys, strict=True):
        kept = latest.get(key)
        if kept is None or _not_older(row.get("updated_at"), rows[kept].get("updated_at")):
            latest[key] = position
    return list(latest.values())


def _has_stale(group: list[int], rows: list[dict[str, Any]], updated_at: datetime | None) -> bool:
    """Whether rule 1 makes one of an activity's live participants (the positions ``group`` of
    ``rows``) stale (STALE_PARTICIPANTS_SQL: older than the activity, neither time unknown)."""
    if updated_at is None:
        return False
    latest = _utc(updated_at)
    participants = list(map(rows.__getitem__, group))
    times = set(map(_UPDATED_AT, participants))  # copies of one event: mostly one time
    if all(at is None or _utc(at) >= latest for at in times):
        return False
    return any(
        p.get("deleted_at") is None
        and (at := p.get("updated_at")) is not None
        and _utc(at) < latest
        for p in participants
    )


def _not_older(moment: datetime | None, than: datetime | None) -> bool:
    if moment is None:
        return than is None
    return than is None or _utc(moment) >= _utc(than)


def _participants_links(
    emails: Collection[Any],
    first: _FirstRows,
    own: set[str],
    by_domain: dict[str, tuple[Any, bool]],
) -> dict[Any, tuple[Any, Any, Any, bool]]:
    """Rules 2-3 for each email: email -> (contact_id, owner_id, account_id, internal by them).
    Column by column (the lookups in C); each domain's tests once per sync, kept in
    ``by_domain`` (domain -> (account by domain, own); emails share domains, and a domain's
    account is read with its first email)."""
    own_match = own or {""}  # as the SQL: an empty list is bound as ('')
    texts = [email for email in emails if isinstance(email, str)]
    found: dict[Any, tuple[Any, Any, Any, bool]] = dict.fromkeys(emails, _NO_MATCH)
    keys = list(map(str.lower, texts))
    domains = [key.split("@")[1] if "@" in key else "" for key in keys]  # split_part(key, '@', 2)
    accounts = first.accounts
    by_domain.update(
        (
            domain,
            (
                accounts.get(domain)
                if domain and not is_consumer_domain(domain) and domain not in own
                else None,
                domain in own_match,
            ),
        )
        for domain in set(domains).difference(by_domain)
    )
    contacts = map(first.contacts.get, keys)
    owners = map(first.owners.get, keys)
    rows = zip(texts, contacts, owners, map(by_domain.__getitem__, domains), strict=True)
    found.update(
        (
            email,
            (
                None if contact is None else contact[0],
                owner,
                None
                if owner is not None
                else contact[1]
                if contact is not None and contact[1] is not None
                else of_domain[0],
                owner is not None or of_domain[1],
            ),
        )
        for email, contact, owner, of_domain in rows
    )
    return found


def _values(outcome: tuple[Any, Any, Any, bool]) -> dict[str, Any]:
    """What a participant row with this outcome gets (its normalizer's ``is_internal`` and an
    activity missing from the batch are applied after)."""
    contact, owner, account, internal = outcome
    return {
        "contact_id": contact,
        "owner_id": owner,
        "account_id": account,
        "is_internal": bool(internal),
        PENDING_COLUMN: False,
    }


@dataclass(frozen=True)
class _Rule3:
    """Rule 3 over a batch's participants, given as columns (their email outcomes, the
    normalizer's ``is_internal``, ids, ``deleted_at``, emails, roles)."""

    found: list[tuple[Any, Any, Any, bool]]
    given: list[Any]
    ids: list[Any]
    deleted: list[Any]
    emails: list[Any]
    roles: list[Any]

    def links(self, group: list[int]) -> tuple[tuple[Any, Any, Any], list[Any]]:
        """(owner, contact, account) of one activity from its participants at the positions
        ``group`` (ACTIVITY_LINKS_SQL's orders, in Python; UUIDs order as PostgreSQL orders
        them, and emails compare as text in the C collation), and the ids of its live ones."""
        found, ids, deleted, emails, roles, given = (
            self.found,
            self.ids,
            self.deleted,
            self.emails,
            self.roles,
            self.given,
        )
        owner = contact = None
        owner_key: tuple[Any, ...] | None = None
        contact_key: tuple[Any, ...] | None = None
        counts: dict[Any, int] = {}
        live = []
        for i in group:
            if deleted[i] is not None:
                continue
            row_id = ids[i]
            live.append(row_id)
            contact_id, owner_id, account_id, internal = found[i]
            if owner_id is None and contact_id is None and account_id is None:
                continue  # counts for none of the three (an attendee nothing matched)
            email = emails[i]
            if owner_id is not None:
                key = (roles[i] not in _AUTHOR_ROLES, email is None, email or "", row_id)
                if owner_key is None or key < owner_key:
                    owner_key, owner = key, owner_id
            if contact_id is not None:
                by_email = (email is None, email or "", row_id)
                if contact_key is None or by_email < contact_key:
                    contact_key, contact = by_email, contact_id
            if account_id is not None and not (internal or given[i]):
                counts[account_id] = counts.get(account_id, 0) + 1
        if not counts:
            return (owner, contact, None), live
        if len(counts) == 1:
            return (owner, contact, next(iter(counts))), live
        most = max(counts.values())
        # The smallest id on a tie (text ids order as their UUIDs: canonical lowercase hex).
        account = min((a for a, n in counts.items() if n == most), key=str)
        return (owner, contact, account), live


def _settled_meeting(is_meeting: bool, account_id: Any, unsettled: bool) -> bool:
    return is_meeting and account_id is not None and not unsettled


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _key(value: Any) -> int:
    """An id as the int of its UUID (a plain int hashes and compares in C)."""
    return value.int if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).int


def _first_of(
    keys: list[str], values: list[Any], ids: list[str], ranks: list[int]
) -> dict[str, Any]:
    """Each key's value from its first row by CRM precedence (``ranks``), then id, as
    ``_FIRST_BY`` ranks them; ``ids`` as text, which orders as their UUIDs (canonical lowercase
    hex). Rows of a key met once are taken as they come (in C); only the others are ranked."""
    first = dict(zip(keys, values, strict=True))
    if len(first) == len(keys):
        return first
    counts = Counter(keys)
    repeated = {key for key, count in counts.items() if count > 1}
    best: dict[str, tuple[int, str, Any]] = {}
    rows = zip(keys, ranks, ids, values, strict=True)
    for key, rank, row_id, value in itertools.compress(rows, map(repeated.__contains__, keys)):
        kept = best.get(key)
        if kept is None or (rank, row_id) < kept[:2]:
            best[key] = (rank, row_id, value)
    first.update((key, kept[2]) for key, kept in best.items())
    return first


@dataclass
class _FirstRows:
    contacts: dict[str, tuple[Any, Any]]  # lower(email) -> (id, account_id)
    owners: dict[str, Any]  # lower(email) -> id
    accounts: dict[str, Any]  # lower(domain) -> id


class BatchLookups:
    """The store rows batches' resolutions read: contacts and owners by email, accounts by
    domain, deals by account, own domains; and what the sync's batches wrote of their
    activities. Kept across one sync's batches (each reads only the keys it has not seen) while
    the sync holds the resolution lock shared for all of them: a CRM row committed meanwhile
    stays marked, and the resolution that clears its mark runs after the last batch and finds
    the participants it affects."""

    def __init__(self, org: str, lock_pid: int | None = None) -> None:
        self.org = org
        self.lock_pid = lock_pid  # the backend holding the sync's shared resolution lock
        self.conn: Connection | None = None
        self.postgresql = True
        self.own: set[str] | None = None
        self.first = _FirstRows({}, {}, {})
        self.emails_read: set[str] = set()
        self.all_read = False  # every contact, owner and account is in ``first``
        self.domains_read: set[str] = set()
        self._outcomes: dict[Any, tuple[Any, Any, Any, bool]] = {}  # per email as written
        self.values: dict[Any, dict[str, Any]] = {}  # per email: what its rows get (_values)
        self.by_domain: dict[str, tuple[Any, bool]] = {}  # per domain (_participants_links)
        self.deals: dict[Any, list[DealFacts]] = {}
        self.accounts_read: set[Any] = set()
        self.deals_all_read = False  # every deal is in ``deals``
        self.sizes: dict[str, float] = {}  # estimated rows per table (``_many``)
        # Per source system: whether the store held none of its activities and participants
        # before this sync's first batch (read then, before anything of this sync was written).
        self.empty_before: dict[str, bool] = {}
        self.complete = True  # every batch of the sync so far went through these lookups
        self.first_load = False  # this batch's provider held no row before the sync
        # Per activity this sync wrote (the int of its id): the version and the live
        # participants' ids it left in the store, or None when a batch left it unsettled
        # (the store is then asked again).
        # The ids are kept as the rows hold them (turned into ints only for an activity met
        # again): a set per activity cost a tenth of resolve_batch's CPU at scale 1.
        self.written: dict[int, tuple[Any, Sequence[Any]] | None] = {}
        # The updated_at of the stored live participants this batch's ``_stored`` read (by the
        # int of their id), and the stale ones it found (activity, participant id, time): rule 1.
        self.participant_times: dict[int, Any] = {}
        self.to_stale: list[tuple[int, Any, Any]] = []

    def bind(self, conn: Connection) -> bool:
        """Use ``conn`` for this batch; False when the sync's shared lock is gone (its backend
        ended: a dropped connection), so what was kept may be stale."""
        self.conn = conn
        self.postgresql = conn.dialect.name == "postgresql"
        if self.lock_pid is None:
            return True
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = :pid"
            ),
            {"pid": self.lock_pid},
        ).scalar_one()
        if not held:
            log.warning("the sync's shared resolution lock is gone; batches read afresh")
            self.lock_pid = None
            return False
        return True

    def forget_written(self) -> None:
        """A batch was written without these lookups: ask the store about every activity."""
        self.complete = False
        self.written.clear()

    @property
    def own_domains(self) -> set[str]:
        if self.own is None:
            owners = self._conn.execute(
                text("SELECT DISTINCT lower(email) FROM owners WHERE organization_id = :org"),
                {"org": self.org},
            ).scalars()
            self.own = own_domains(owners)
        return self.own

    @property
    def _conn(self) -> Connection:
        assert self.conn is not None, "bind a connection first"
        return self.conn

    def _among(self, column: str, param: str, *, uuids: bool = False) -> str:
        """A join keeping the rows whose ``column`` is in the list ``:param`` (no duplicates).

        Not ``column = ANY(:param)``: PostgreSQL plans that by estimating each element's
        selectivity, 0.7 s for 8,375 emails, more than running it; a join to ``unnest`` is
        planned in under a millisecond, as index probes for a few keys, a hash join for many.
        """
        if self.postgresql:
            kind = "UUID" if uuids else "TEXT"
            return f"JOIN unnest(CAST(:{param} AS {kind}[])) AS wanted(v) ON {column} = wanted.v"
        element = "CAST(unnest(x) AS UUID)" if uuids else "unnest(x)"
        return (
            f"JOIN (SELECT {element} AS v FROM (SELECT CAST(:{param} AS VARCHAR[]) AS x)) wanted "
            f"ON {column} = wanted.v"
        )

    def outcomes(self, emails: list[Any]) -> dict[Any, tuple[Any, Any, Any, bool]]:
        """Rules 2-4's outcome per email of ``emails`` (as written, any case), read of the
        store for the emails and domains no earlier batch of the sync met."""
        known = self._outcomes
        new = set(emails).difference(known)
        if new:
            first = self.first_rows(new)
            found = _participants_links(new, first, self.own_domains, self.by_domain)
            known.update(found)
            self.values.update(zip(found, map(_values, found.values()), strict=True))
        return known

    def first_rows(self, emails: Iterable[Any]) -> _FirstRows:
        """The first live contact and owner of each email, and account of each domain, by CRM
        precedence then id (as ``_FIRST_BY``), read for the keys not read before; all of them
        once a batch brings many new keys (``READ_ALL_SHARE``)."""
        first = self.first
        if self.all_read:
            return first
        wanted = set(map(str.lower, filter(None, filter(_is_text, emails))))
        wanted.difference_update(self.emails_read)
        if wanted and self._many(len(wanted), "contacts"):
            self._read_all()  # every key: which ones were wanted no longer matters
        elif wanted:
            keys = sorted(wanted)
            domains = sorted({k.split("@")[1] for k in keys if "@" in k} - {""} - self.domains_read)
            self.emails_read.update(keys)
            self.domains_read.update(domains)
            statement = " UNION ALL ".join(
                f"SELECT '{table}', * FROM ({self._first_sql(table, *how)}) {table}"
                for table, how in (
                    ("contacts", ("lower(email)", "account_id", "keys")),
                    ("owners", ("lower(email)", "NULL", "keys")),
                    ("accounts", ("lower(domain)", "NULL", "domains")),
                )
            )
            params = {"org": self.org, "keys": keys, "domains": domains}
            # One round trip for the three (under load each waits for the server's turn).
            ranked = self._conn.execute(text(statement), params).all()
            for table, found, row_ids, accounts in ranked:
                if not found:  # array_agg of no row
                    continue
                if table == "contacts":
                    pairs = zip(row_ids, accounts, strict=True)
                    first.contacts.update(zip(found, pairs, strict=True))
                elif table == "owners":
                    first.owners.update(zip(found, row_ids, strict=True))
                else:
                    first.accounts.update(zip(found, row_ids, strict=True))
        return first

    def _read_all(self) -> None:
        """Every live contact, owner and account into ``first``: their rows unsorted, as arrays
        (key, id, account id, CRM precedence), and the first per key picked here
        (``_first_of``): sorting the 213,226 contacts by key in the server was half the
        server's CPU of this read at scale 10 (1.0-1.2 s -> 0.6 s), and most keys have one row.
        Once per sync, when a batch brings many new keys (``READ_ALL_SHARE``)."""
        statement = " UNION ALL ".join(
            f"SELECT '{table}', array_agg({key}), array_agg(CAST(id AS TEXT)), "
            f"array_agg(CAST({account} AS TEXT)), array_agg({_PRECEDENCE}) FROM {table} "
            f"WHERE organization_id = :org AND deleted_at IS NULL AND {key} <> ''"
            for table, key, account in (
                ("contacts", "lower(email)", "account_id"),
                ("owners", "lower(email)", "NULL"),
                ("accounts", "lower(domain)", "NULL"),
            )
        )
        first = self.first
        for table, found, row_ids, accounts, ranks in self._conn.execute(
            text(statement), {"org": self.org}
        ).all():
            if not found:  # array_agg of no row
                continue
            if table == "contacts":
                pairs = list(zip(row_ids, accounts, strict=True))
                first.contacts.update(_first_of(found, pairs, row_ids, ranks))
            elif table == "owners":
                first.owners.update(_first_of(found, row_ids, row_ids, ranks))
            else:
                first.accounts.update(_first_of(found, row_ids, row_ids, ranks))
        self.all_read = True

    def _many(self, keys: int, table: str) -> bool:
        """Whether ``keys`` new keys (emails; accounts whose deals are wanted) are enough of
        ``table``'s rows (estimated) to read all of them at once: a lookup of that many scans
        the table anyway (PostgreSQL's plan: a hash join over every contact from ~5% of them),
        once per batch; at scale 10 the lookups were 11 of resolve_batch's 28 s, deals 4 s. A
        small sync's batches keep looking up their own keys (index probes)."""
        if not self.postgresql:
            return False
        if table not in self.sizes:  # once per sync: a round trip less per batch
            self.sizes[table] = estimated_rows(self._conn, [table]).get(table, -1.0)
        rows = self.sizes[table]
        share = READ_ALL_FIRST_LOAD_SHARE if self.first_load else READ_ALL_SHARE
        return rows >= 0 and keys >= share * rows

    def _first_sql(self, table: str, key: str, account: str, param: str | bool) -> str:
        """The first row per key, ranked by the server (one row per key comes back, not every
        candidate), as three arrays (keys, ids, account ids): psycopg parses an array in C,
        where a row per key cost ~4 us of Python (213,220 contacts at scale 10: 0.9 s). Ids
        as text: the upsert writes them as text, and a str hashes and compares in C where a
        uuid.UUID does it in Python (their orders agree: canonical lowercase hex). Keys
        compared bytewise (C collation): only equal keys must meet, and a sort of 213,220
        emails by the database's collation cost twice as much."""
        among = self._among(key, param) if isinstance(param, str) else ""
        ranked = f'{key} COLLATE "C"' if self.postgresql else key
        return (
            "SELECT array_agg(key) AS keys, array_agg(id) AS ids, array_agg(account_id) AS "
            f"accounts FROM (SELECT DISTINCT ON ({ranked}) {key} AS key, CAST(id AS TEXT) AS id, "
            f"CAST({account} AS TEXT) AS account_id FROM {table} {among} "
            f"WHERE organization_id = :org AND deleted_at IS NULL AND {key} <> '' "
            f"ORDER BY {ranked}, {_PRECEDENCE}, {table}.id) ranked"
        )

    def _tuples(self, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        """The rows of ``sql`` as the driver gives them: psycopg's tuples on PostgreSQL, where
        a SQLAlchemy Row per row cost ~3 us (every deal at scale 10: 94,751 rows, ~0.3 s)."""
        if not self.postgresql:
            return self._conn.execute(text(sql), params).all()
        compiled = text(sql).bindparams(**params).compile(dialect=self._conn.dialect)
        with driver_connection(self._conn).cursor() as cursor:
            cursor.execute(str(compiled), compiled.params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows

    @contextmanager
    def _sort_memory(self, needed: bool) -> Iterator[None]:
        """``SORT_MEMORY`` for the statements inside (PostgreSQL, when ``needed``), the
        transaction's own setting back after them, never lowered: the read of every contact
        sorts them (~32 MB at scale 10), which spilled to disk at the default 4 MB."""
        if not (needed and self.postgresql):
            yield
            return
        before = self._conn.execute(
            text(
                "SELECT current_setting('work_mem'), set_config('work_mem', CASE WHEN "
                "pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(:memory) "
                "THEN :memory ELSE current_setting('work_mem') END, true)"
            ),
            {"memory": SORT_MEMORY},
        ).scalar_one()
        yield
        self._conn.execute(text("SELECT set_config('work_mem', :before, true)"), {"before": before})

    def _empty_before(self, system: str | None) -> bool:
        if system is None or not self.complete:
            return False
        if system not in self.empty_before:
            held = self._conn.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM activities WHERE organization_id = :org "
                    "AND source_system = :system) OR EXISTS (SELECT 1 FROM "
                    "activity_participants WHERE organization_id = :org "
                    "AND source_system = :system)"
                ),
                {"org": self.org, "system": system},
            ).scalar_one()
            self.empty_before[system] = not held
        return self.empty_before[system]

    def unsettled(
        self,
        system: str | None,
        versions: dict[int, Any],
        ids_of: Callable[[int], list[Any]],
    ) -> set[int]:
        """The batch's activities (``versions``: the int of each id -> its updated_at) already
        stored with a newer version, or with live participants the batch does not hold
        (``ids_of``: the ids of the batch's participants of an activity, by the int of its id)."""
        written = self.written
        empty_before = self._empty_before(system)
        stored: dict[int, tuple[Any, Sequence[Any]]] = {}
        ask: list[str] = []
        # After an empty store only those this sync wrote are known to it (a set operation in C
        # instead of a dict probe per activity in Python).
        candidates = versions.keys() & written.keys() if empty_before else versions
        for activity_id in candidates:
            known = written.get(activity_id, _UNKNOWN)
            if known is None or (known is _UNKNOWN and not empty_before):
                ask.append(str(uuid.UUID(int=activity_id)))
            elif known is not _UNKNOWN:
                stored[activity_id] = known  # type: ignore[assignment]
        self.participant_times = {}
        probed: set[int] = set()
        if ask:
            asked = self._stored(ask)
            stored.update(asked)
            probed.update(asked)
        unsettled = set()
        to_stale: list[tuple[int, Any, Any]] = []
        self.to_stale = to_stale
        for activity_id, (updated_at, live) in stored.items():
            theirs = versions[activity_id]
            newer = updated_at is not None and (theirs is None or _utc(updated_at) > _utc(theirs))
            if newer:
                unsettled.add(activity_id)
                continue
            if not live:
                continue
            held = set(_keys(ids_of(activity_id)))
            missing = [p for p, key in zip(live, _keys(list(live)), strict=True) if key not in held]
            if not missing:
                continue
            # Stored participants the batch's version of the activity no longer has (an
            # attendee removed from a moved event): rule 1 makes each stale once this version
            # is written, if it is older than the version (its time read with it, ``_stored``).
            # Then the batch settles the activity: its live participants are the batch's, and
            # it writes their ``deleted_at`` itself (``make_stale``). Otherwise (a time
            # unknown or not older) the resolution after the sync sees to it, as before.
            times = list(map(self.participant_times.get, map(_key, missing)))
            if (
                activity_id in probed  # times read just now (not known from an earlier batch)
                and theirs is not None
                and all(t is not None and _utc(t) < _utc(theirs) for t in times)
            ):
                to_stale.extend((activity_id, p, theirs) for p in missing)
            else:
                unsettled.add(activity_id)
        return unsettled

    def make_stale(self, unsettled: set[int]) -> int:
        """Rule 1 for the stored participants ``unsettled`` found stale in the batch's settled
        activities (``deleted_at`` = the activity's new ``updated_at``, the same statement's
        conditions as STALE_PARTICIPANTS_SQL); the number of rows it changed."""
        rows = [(p, at) for activity_id, p, at in self.to_stale if activity_id not in unsettled]
        self.to_stale = []
        if not rows:
            return 0
        changed = self._conn.execute(
            text(
                "UPDATE activity_participants SET deleted_at = v.at FROM (SELECT "
                "CAST(unnest(CAST(:ids AS VARCHAR[])) AS UUID) AS id, "
                "unnest(CAST(:ats AS TIMESTAMPTZ[])) AS at) v "
                "WHERE activity_participants.id = v.id "
                "AND activity_participants.organization_id = :org "
                "AND activity_participants.deleted_at IS NULL "
                "AND activity_participants.updated_at < v.at"
            ),
            {"org": self.org, "ids": [str(p) for p, _ in rows], "ats": [at for _, at in rows]},
        ).rowcount
        return int(changed)

    def _stored(self, ids: list[str]) -> dict[int, tuple[Any, Sequence[Any]]]:
        """The version and live participants the store holds of the activities ``ids``."""
        found = self._conn.execute(
            text(
                f"SELECT id, updated_at FROM activities {self._among('id', 'ids', uuids=True)} "
                "WHERE organization_id = :org"
            ),
            {"org": self.org, "ids": ids},
        ).all()
        if not found:
            return {}
        live: dict[int, list[Any]] = {}
        participants = self._conn.execute(
            text(
                "SELECT activity_id, id, updated_at FROM activity_participants "
                f"{self._among('activity_id', 'ids', uuids=True)} "
                "WHERE organization_id = :org AND deleted_at IS NULL"
            ),
            {"org": self.org, "ids": [str(row_id) for row_id, _ in found]},
        )
        times = self.participant_times
        for activity_id, row_id, updated_at in participants:
            live.setdefault(_key(activity_id), []).append(row_id)
            times[_key(row_id)] = updated_at
        return {
            _key(row_id): (updated_at, live.get(_key(row_id), ())) for row_id, updated_at in found
        }

    def remember(
        self,
        versions: dict[int, Any],
        live: dict[int, list[Any]],
        people: dict[int, list[int]],
        unsettled: set[int],
    ) -> None:
        """What this batch leaves in the store of its activities once written: the version
        and the live participants (``live``: their ids, by activity) of each it settled (the
        store held no live participant it lacks, and none newer); nothing known of the others,
        which the store is asked about."""
        written = self.written
        held = map(live.get, versions, repeat(()))
        written.update(zip(versions, zip(versions.values(), held, strict=True), strict=True))
        written.update(dict.fromkeys(unsettled & versions.keys()))
        # Participants without their activity.
        written.update(dict.fromkeys(people.keys() - versions.keys()))

    def deals_of(self, accounts: set[Any]) -> dict[Any, list[DealFacts]]:
        """The live deals of ``accounts`` with a creation time (rule 5 needs one), each
        account's in rule 5's order (``latest_first``)."""
        if self.deals_all_read:
            return self.deals
        wanted = sorted(accounts - self.accounts_read)
        self.accounts_read.update(wanted)
        if not wanted:
            return self.deals
        # Every deal at once when the accounts are many, as first_rows does. In rule 5's order
        # (``latest_first``: latest created first, the smallest id on a tie), sorted by the
        # server, and keyed by account as text, as first_rows gives the accounts.
        self.deals_all_read = everything = self._many(len(wanted), "accounts")
        among = "" if everything else self._among("account_id", "accounts", uuids=True)
        with self._sort_memory(everything):
            rows = self._tuples(
                "SELECT CAST(account_id AS TEXT), id, created_at, is_closed, close_date "
                f"FROM deals {among} WHERE organization_id = :org AND deleted_at IS NULL "
                "AND created_at IS NOT NULL ORDER BY account_id, created_at DESC, deals.id",
                {"org": self.org}
                if everything
                else {"org": self.org, "accounts": [str(a) for a in wanted]},
            )
        for account_id, deals in itertools.groupby(rows, _FIRST):
            if self.postgresql:  # psycopg's UUIDs and aware datetimes, taken as they come
                self.deals[account_id] = list(map(_DEAL_FACTS_OF, map(_DEAL_FACTS, deals)))
                continue
            self.deals[account_id] = [
                DealFacts(_uuid(deal_id), _utc(created_at), is_closed, close_date)
                for _, deal_id, created_at, is_closed, close_date in deals
            ]
        return self.deals


_FIRST = operator.itemgetter(0)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


_DEAL_FACTS = operator.itemgetter(1, 2, 3, 4)  # a deal row's DealFacts
# DealFacts of a 4-tuple, in C (what ``DealFacts._make`` does in Python, less its length check:
# 94,751 deals at scale 10).
_DEAL_FACTS_OF: Callable[[tuple[Any, ...]], DealFacts] = functools.partial(tuple.__new__, DealFacts)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
