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

CRM rows are left as their normalizer wrote them: their participants come linked to contacts
and owners by the CRM's own associations (their accounts are a join on ``contacts``), and their
activities carry the CRM's account and deal. Writing resolved values into CRM rows would make
every re-read of a CRM record (the incremental syncs re-read their boundary) a rewrite, since
the upsert compares the stored row with what the normalizer produced.

Rows freshly upserted by a sync carry NULLs in these columns until this step commits (a few
seconds): the normalizers never guess them.

The question "which accounts did we meet last week, and what is their open pipeline?" is then
a join (``ACCOUNTS_MET_SQL``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, text

from revtops_kernel.normalize.identity import CRM_PRECEDENCE, consumer_domains, own_domains
from revtops_kernel.providers import ACTIVITY_PROVIDERS

log = logging.getLogger(__name__)

_ACTIVITY_SYSTEMS = ", ".join(f"'{p}'" for p in ACTIVITY_PROVIDERS)
_PRECEDENCE = (
    "CASE source_system "
    + " ".join(f"WHEN '{p}' THEN {i}" for i, p in enumerate(CRM_PRECEDENCE))
    + f" ELSE {len(CRM_PRECEDENCE)} END"
)
MEETING_TYPES = ("calendar_event",)
_MEETINGS = ", ".join(f"'{t}'" for t in MEETING_TYPES)

# The first live row per email (contacts, owners) or domain (accounts), by CRM precedence.
_FIRST_BY = """
    SELECT key, id, account_id FROM (
        SELECT {key} AS key, id, {account} AS account_id,
               row_number() OVER (PARTITION BY {key} ORDER BY {precedence}, id) AS rn
        FROM {table}
        WHERE organization_id = :org AND deleted_at IS NULL AND {key} IS NOT NULL AND {key} <> ''
    ) ranked WHERE rn = 1
"""


def _first_by(table: str, key: str, account: str) -> str:
    return _FIRST_BY.format(table=table, key=key, account=account, precedence=_PRECEDENCE)


STALE_PARTICIPANTS_SQL = f"""
UPDATE activity_participants SET deleted_at = a.updated_at
FROM activities a
WHERE activity_participants.activity_id = a.id
  AND activity_participants.organization_id = :org
  AND activity_participants.source_system IN ({_ACTIVITY_SYSTEMS})
  AND activity_participants.deleted_at IS NULL
  AND a.updated_at IS NOT NULL
  AND activity_participants.updated_at < a.updated_at
"""

EMAIL_PARTICIPANTS_SQL = f"""
UPDATE activity_participants
SET contact_id = r.contact_id, account_id = r.account_id, owner_id = r.owner_id,
    is_internal = r.is_internal
FROM (
    SELECT p.id,
           c.id AS contact_id,
           CASE WHEN o.id IS NULL THEN COALESCE(c.account_id, d.id) END AS account_id,
           o.id AS owner_id,
           CASE WHEN o.id IS NOT NULL OR p.domain IN :own_domains THEN TRUE
                ELSE COALESCE(p.is_internal, FALSE) END AS is_internal
    FROM (
        SELECT id, lower(email) AS email, split_part(lower(email), '@', 2) AS domain, is_internal
        FROM activity_participants
        WHERE organization_id = :org AND source_system IN ({_ACTIVITY_SYSTEMS})
    ) p
    LEFT JOIN ({_first_by("contacts", "lower(email)", "account_id")}) c ON c.key = p.email
    LEFT JOIN ({_first_by("owners", "lower(email)", "NULL")}) o ON o.key = p.email
    LEFT JOIN ({_first_by("accounts", "lower(domain)", "NULL")}) d
           ON d.key = p.domain AND p.domain NOT IN :consumer_domains
          AND p.domain NOT IN :own_domains
) r
WHERE activity_participants.id = r.id
  AND (activity_participants.contact_id IS DISTINCT FROM r.contact_id
       OR activity_participants.account_id IS DISTINCT FROM r.account_id
       OR activity_participants.owner_id IS DISTINCT FROM r.owner_id
       OR activity_participants.is_internal IS DISTINCT FROM r.is_internal)
"""

_LIVE_PARTICIPANTS = """
    SELECT activity_id, id, email, role, owner_id, contact_id, account_id, is_internal
    FROM activity_participants
    WHERE organization_id = :org AND deleted_at IS NULL
"""

ACTIVITY_LINKS_SQL = f"""
UPDATE activities
SET owner_id = r.owner_id, contact_id = r.contact_id, account_id = r.account_id
FROM (
    SELECT a.id, o.owner_id, c.contact_id, acc.account_id
    FROM activities a
    LEFT JOIN (
        SELECT activity_id, owner_id, row_number() OVER (
            PARTITION BY activity_id
            ORDER BY CASE WHEN role IN ('organizer', 'author') THEN 0 ELSE 1 END,
                     email NULLS LAST, id) AS rn
        FROM ({_LIVE_PARTICIPANTS}) lp WHERE owner_id IS NOT NULL
    ) o ON o.activity_id = a.id AND o.rn = 1
    LEFT JOIN (
        SELECT activity_id, contact_id, row_number() OVER (
            PARTITION BY activity_id ORDER BY email NULLS LAST, id) AS rn
        FROM ({_LIVE_PARTICIPANTS}) lp WHERE contact_id IS NOT NULL
    ) c ON c.activity_id = a.id AND c.rn = 1
    LEFT JOIN (
        SELECT activity_id, account_id, row_number() OVER (
            PARTITION BY activity_id ORDER BY count(*) DESC, account_id) AS rn
        FROM ({_LIVE_PARTICIPANTS}) lp
        WHERE account_id IS NOT NULL AND NOT COALESCE(is_internal, FALSE)
        GROUP BY activity_id, account_id
    ) acc ON acc.activity_id = a.id AND acc.rn = 1
    WHERE a.organization_id = :org AND a.source_system IN ({_ACTIVITY_SYSTEMS})
) r
WHERE activities.id = r.id
  AND (activities.owner_id IS DISTINCT FROM r.owner_id
       OR activities.contact_id IS DISTINCT FROM r.contact_id
       OR activities.account_id IS DISTINCT FROM r.account_id)
"""

MEETING_DEALS_SQL = f"""
UPDATE activities SET deal_id = r.deal_id
FROM (
    SELECT a.id, d.deal_id
    FROM activities a
    LEFT JOIN (
        SELECT m.id AS activity_id, deals.id AS deal_id, row_number() OVER (
            PARTITION BY m.id ORDER BY deals.created_at DESC, deals.id) AS rn
        FROM activities m
        JOIN deals ON deals.organization_id = m.organization_id
                  AND deals.account_id = m.account_id
                  AND deals.deleted_at IS NULL
                  AND deals.created_at <= m.occurred_at
                  AND (NOT COALESCE(deals.is_closed, FALSE)
                       OR deals.close_date >= CAST(m.occurred_at AS DATE))
        WHERE m.organization_id = :org AND m.activity_type IN ({_MEETINGS})
          AND m.source_system IN ({_ACTIVITY_SYSTEMS})
    ) d ON d.activity_id = a.id AND d.rn = 1
    WHERE a.organization_id = :org AND a.activity_type IN ({_MEETINGS})
      AND a.source_system IN ({_ACTIVITY_SYSTEMS})
) r
WHERE activities.id = r.id AND activities.deal_id IS DISTINCT FROM r.deal_id
"""

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
    consumer_domains: int
    own_domains: tuple[str, ...]


def resolve_identities(conn: Connection, org: str) -> ResolveReport:
    """Apply the resolution rules to ``org``'s rows, in the caller's transaction."""
    params = {"org": org}
    owners = conn.execute(
        text("SELECT DISTINCT lower(email) FROM owners WHERE organization_id = :org"), params
    ).scalars()
    own = sorted(own_domains(owners))
    domains = conn.execute(
        text(
            "SELECT DISTINCT split_part(lower(email), '@', 2) FROM activity_participants "
            "WHERE organization_id = :org AND email IS NOT NULL"
        ),
        params,
    ).scalars()
    consumer = consumer_domains(domains)
    lists = {"own_domains": own or [""], "consumer_domains": consumer or [""]}
    conn.execute(text(STALE_PARTICIPANTS_SQL), params)
    conn.execute(
        text(EMAIL_PARTICIPANTS_SQL).bindparams(
            bindparam("own_domains", expanding=True), bindparam("consumer_domains", expanding=True)
        ),
        {**params, **lists},
    )
    conn.execute(text(ACTIVITY_LINKS_SQL), params)
    conn.execute(text(MEETING_DEALS_SQL), params)
    log.info("identities resolved for %s (own domains: %s)", org, ", ".join(own) or "none")
    return ResolveReport(len(consumer), tuple(own))
