"""``deal_risk_facts``: what the deal-risk rules read, rolled up by the sync.

``deal_risks`` (``agent/verified_risk.py``) judges every open deal on windows of days that end
with ``as_of`` and on the deals' histories. Read from the activities, their participants and
the history tables, that is every activity of the windows with a probe of its participants,
every won deal's stage history and every open deal's field history, sorted and windowed per
query: 3.1 s at scale 10 on PostgreSQL. Rolled up here once per sync, the rules read a few
ranges of this table instead, and stay exact for any ``as_of`` and any thresholds:

- the activity windows are whole days (``occurred_at >= as_of - N + 1 AND occurred_at <
  as_of + 1``), so a sum, a min, a max or a set of contacts over the window's days (rows
  per deal and day) is the same as over its activities;
- "no meeting since the window's start, none scheduled" is "the latest meeting ever is
  before the window's start";
- a close-date move is a push or not whatever ``as_of`` is (``as_of`` only cuts the history
  after it, and the previous value of a row before the cut is the same);
- a won deal's days per stage, and so a stage's sorted days of its won deals, do not depend on
  ``as_of`` or the thresholds; nor does the amount a deal had when it entered its stage.

Rows (``schema.DealRiskFacts``), by ``kind``:

- ``touch`` per deal and day (UTC) with emails, calls or Slack messages out or in: outbound
  ones by type, inbound ones (an ``inbound`` email or call, a Slack message by an external
  author), the first outbound and the last inbound time, and the deal's last inbound up to
  the end of the day (``replied_through``: a ghosted deal's last reply is on its window's rows);
- ``contact`` per deal, day and contact: an external participant resolved to a contact,
  engaged in one of the deal's activities that day, and the day before it the contact was
  (``previous_day``: a window's distinct contacts are its rows whose previous day is not in it);
- ``won_stage`` per stage some won deal left: the whole days each of them spent there, sorted
  (``won_days``; the rules read a percentile as the two nearest ranks of it). One row per stage,
  not per deal and stage with its rank: a deal won shifted the rank of every won deal slower
  than it in each of its stages, and the refresh rewrote thousands of rows (~16,000 at scale 10
  for the 1% of deals a re-sync changed); now it rewrites the few rows of the stages it left;
- ``push`` per close-date move later (``deal_field_history``): when (``changed_at``, ``day``);
- ``deal`` per open live deal, what the list reads of it in one row: the later of its and its
  account's latest meeting (CRM meeting or calendar event, live, not cancelled or a no-show,
  scheduled ones included; an account's are those linked to it and those attended by an
  external person resolved to it), its close-date pushes (how many, the last), its first close
  date and its amount when it entered its current stage (derived from the deal as the refresh
  saw it, like ``won_stage``; every sync that writes deals refreshes); a summary of its touch
  rows, the last day with any, with something out and with something in (ghosted in a window
  that ends on or after its last touch is "something out since the window's start, nothing in":
  deal_risks reads no window of touches then); its distinct contacts (``contacts``, the
  count of its contact rows' contacts: single_threaded_deals); and its contact rows split at
  the organization's last day with a touch (what has happened; contact rows after it are
  scheduled meetings): the last contact day up to it, the first after it, and the last day of
  each contact up to it, latest first (the first ``LATEST_CONTACT_DAYS``). A window ending
  between those two days holds exactly the contacts whose last day is in it, so deal_risks
  reads whether more than ``max_contacts`` were engaged from the row; for other as_of (a
  meeting since the last touch, a past as_of) it counts the deal's contact rows.

Kinds no longer derived (``RETIRED_KINDS``: per-deal and per-account ``meeting``,
``first_close``, ``entry_amount``; the ``deal`` row carries what the rules read of them) are
deleted by the next refresh like any row no longer derived, and a sync whose run changed
nothing still refreshes while a store holds some (``needs_refresh``).

The refresh (``refresh_risk_facts``) derives the organization's rows from the store, as the
rules read it, and writes only the difference: each row carries a ``fingerprint`` (md5 of its
values); rows whose fingerprint is no longer derived are deleted, derived ones not stored are
inserted. So it equals a full rebuild by construction whatever changed (an activity, a link, a
participant's resolution, a deletion, a stage or field history row), a re-sync that changed a
few deals writes only their rows, and a refresh that failed or never ran (a store that predates
the table: ``revtops db upgrade`` builds it) is caught up by the next one. It runs after
identity resolution, whose links it reads.

On PostgreSQL it derives only the deals the writes since the last refresh touched: triggers
journal them, old values and new (``store.change_journal``: an activity moved from deal X to
Y, a participant resolved to another contact, a meeting of an account, a deal closed), and
the refresh takes the journal and derives those deals, every deal of a journaled account,
and, when the organization's last touch day moved, the deals with contact rows after the
earlier of the two days (their split moved); it compares only their stored rows (and every
row of the other kinds: a stage's row spans every won deal that left it, so ``won_stage`` is
derived in full, one row per stage from the won deals' stage history). A journal naming more
than ``SCOPE_MAX_SHARE`` of the deals, one written before the triggers existed, an
organization with no row stored, ``full=True`` and DuckDB (no triggers) derive every deal:
that reads every live activity, participant and history row of the organization (its cost is
in the README).

The sync skips the refresh when its run changed nothing the rows derive from
(``refresh_after_sync``: no row inserted, changed or deleted by the run's batches or its
provider's clean-up, and identity resolution rewrote no participant or activity): what was
derived last is still what would be derived. A refresh that failed leaves a ``stale`` row (its
own transaction, best effort), so the next sync refreshes whatever its run wrote; the refresh
deletes that row like any other row no longer derived. A sync also leaves it before it writes
(``mark_pending``), so a run killed before its refresh is caught up by the next (``store.derived``).

Days are the session's time zone's, as the rules' date comparisons are (the store's sessions
run in UTC).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Connection, bindparam, text

from revtops_kernel.store import change_journal, derived
from revtops_kernel.store.database import Database
from revtops_kernel.store.derived import RefreshReport, Rollup, take_turns, write_difference
from revtops_kernel.store.retry import RetryPolicy

log = logging.getLogger(__name__)

TABLE = "deal_risk_facts"
_NEW = "_deal_risk_facts_new"

# A meeting that took place or is scheduled (``m``: an activity row), as deal_risks reads it.
HELD_MEETING = (
    "m.deleted_at IS NULL AND m.activity_type IN ('meeting', 'calendar_event') "
    "AND m.occurred_at IS NOT NULL AND COALESCE(m.status, '') NOT IN ('cancelled', 'no_show')"
)

# Column -> its SQL type, in the order every branch below lists them. (``account_id`` is
# NULL on every derived row since the account ``meeting`` rows were retired; kept, as the
# table has it, so the kept rows' fingerprints did not change.)
_TYPES = {
    "kind": "TEXT",
    "deal_id": "UUID",
    "account_id": "UUID",
    "stage_id": "UUID",
    "contact_id": "UUID",
    "day": "DATE",
    "emails_out": "INTEGER",
    "calls_out": "INTEGER",
    "messages_out": "INTEGER",
    "replies": "INTEGER",
    "first_out": "TIMESTAMPTZ",
    "last_reply": "TIMESTAMPTZ",
    "last_meeting": "TIMESTAMPTZ",
    "changed_at": "TIMESTAMPTZ",
    "close_date": "DATE",
    "amount": "NUMERIC(18, 2)",
    "previous_day": "DATE",
    "replied_through": "TIMESTAMPTZ",
    "pushes": "INTEGER",
    "contacts": "INTEGER",
    "last_touch_day": "DATE",
    "last_out_day": "DATE",
    "last_reply_day": "DATE",
    "past_contact_day": "DATE",
    "next_contact_day": "DATE",
    "latest_contact_days": "DATE[]",
    "won_days": "INTEGER[]",
}
_COLUMNS = tuple(_TYPES)


def _row(kind: str, **values: str) -> str:
    """A branch's select list: ``values`` (SQL) where given, typed NULLs elsewhere."""
    unknown = set(values) - set(_TYPES)
    assert not unknown, unknown
    cells = [f"'{kind}' AS kind"] + [
        f"CAST({values.get(c, 'NULL')} AS {t}) AS {c}" for c, t in _TYPES.items() if c != "kind"
    ]
    return ", ".join(cells)


_OUT = "t.direction = 'outbound'"

# How many of a deal's contacts' last days its deal row keeps, latest first: one more than the
# most contacts single_threaded accepts (``max_contacts``, at most 10), so whether more than
# that many were engaged in a window is read from the row (deal_risks).
LATEST_CONTACT_DAYS = 11

# The organization's rows as the rules would read them now (``:org``); ``{deals}``, ``{accounts}``
# and ``{last_touch}`` are filled by ``_derived_sql`` (every deal, or the scope's).
_DERIVED_TEMPLATE = f"""
WITH touches AS (
    SELECT a.deal_id, a.activity_type, a.direction, a.occurred_at
    FROM activities a
    WHERE a.organization_id = :org AND a.deleted_at IS NULL AND a.deal_id IS NOT NULL
        AND a.occurred_at IS NOT NULL AND a.activity_type IN ('email', 'call')
        AND a.direction IN ('inbound', 'outbound'){{deals:a.deal_id}}
    UNION ALL
    -- A Slack message is ours or theirs by its author (one row per author row, as the rule
    -- joins them; no author, or one not known to be internal or not: neither way).
    SELECT a.deal_id, a.activity_type,
        CASE WHEN au.is_internal THEN 'outbound' ELSE 'inbound' END, a.occurred_at
    FROM activities a
    JOIN activity_participants au ON au.activity_id = a.id AND au.deleted_at IS NULL
        AND au.role = 'author' AND au.is_internal IS NOT NULL AND au.organization_id = :org
    WHERE a.organization_id = :org AND a.deleted_at IS NULL AND a.deal_id IS NOT NULL
        AND a.occurred_at IS NOT NULL AND a.activity_type = 'slack_message'{{deals:a.deal_id}}
),
touch_days AS (
    SELECT t.deal_id, CAST(t.occurred_at AS DATE) AS day,
        count(*) FILTER (WHERE {_OUT} AND t.activity_type = 'email') AS emails_out,
        count(*) FILTER (WHERE {_OUT} AND t.activity_type = 'call') AS calls_out,
        count(*) FILTER (WHERE {_OUT} AND t.activity_type = 'slack_message') AS messages_out,
        count(*) FILTER (WHERE t.direction = 'inbound') AS replies,
        min(t.occurred_at) FILTER (WHERE {_OUT}) AS first_out,
        max(t.occurred_at) FILTER (WHERE t.direction = 'inbound') AS last_reply
    FROM touches t
    GROUP BY t.deal_id, CAST(t.occurred_at AS DATE)
),
deal_touches AS (
    -- A deal's last day with a touch, with one out and with one in: its ghosted flag for any
    -- window ending on or after its last touch (deal_risks).
    SELECT t.deal_id, max(t.day) AS last_touch_day,
        max(t.day) FILTER (WHERE t.emails_out + t.calls_out + t.messages_out > 0) AS last_out_day,
        max(t.day) FILTER (WHERE t.replies > 0) AS last_reply_day
    FROM touch_days t
    GROUP BY t.deal_id
),
account_meetings AS (
    SELECT m.account_id, m.occurred_at
    FROM activities m
    WHERE m.organization_id = :org AND m.account_id IS NOT NULL AND {
    HELD_MEETING
}{{accounts:m.account_id}}
    UNION ALL
    SELECT ap.account_id, m.occurred_at
    FROM activity_participants ap
    JOIN activities m ON m.id = ap.activity_id AND m.organization_id = :org
    WHERE ap.organization_id = :org AND ap.deleted_at IS NULL AND ap.account_id IS NOT NULL
        AND NOT COALESCE(ap.is_internal, false) AND {HELD_MEETING}{{accounts:ap.account_id}}
),
contact_days AS (
    SELECT DISTINCT a.deal_id, CAST(a.occurred_at AS DATE) AS day, ap.contact_id
    FROM activities a
    JOIN activity_participants ap ON ap.activity_id = a.id AND ap.deleted_at IS NULL
        AND ap.contact_id IS NOT NULL AND NOT COALESCE(ap.is_internal, false)
        AND ap.organization_id = :org
    WHERE a.organization_id = :org AND a.deleted_at IS NULL AND a.deal_id IS NOT NULL
        AND a.occurred_at IS NOT NULL{{deals:a.deal_id}}
),
deal_meetings AS (
    SELECT m.deal_id, max(m.occurred_at) AS last_meeting
    FROM activities m
    WHERE m.organization_id = :org AND m.deal_id IS NOT NULL AND {HELD_MEETING}{{deals:m.deal_id}}
    GROUP BY m.deal_id
),
account_latest AS (
    SELECT k.account_id, max(k.occurred_at) AS last_meeting
    FROM account_meetings k
    GROUP BY k.account_id
),
stays AS (
    -- Each won deal's stays in its stages: entered, and left when the next stage began.
    SELECT h.deal_id, h.stage_id, h.entered_at,
        lead(h.entered_at) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at) AS left_at
    FROM deal_stage_history h
    JOIN deals w ON w.id = h.deal_id AND w.deleted_at IS NULL AND w.is_won
        AND w.organization_id = :org
    WHERE h.organization_id = :org AND h.deleted_at IS NULL AND h.entered_at IS NOT NULL
),
won_stage_days AS (
    SELECT s.stage_id, s.deal_id,
        sum(CAST(s.left_at AS DATE) - CAST(s.entered_at AS DATE)) AS days
    FROM stays s
    WHERE s.left_at IS NOT NULL
    GROUP BY s.stage_id, s.deal_id
),
close_moves AS (
    SELECT h.deal_id, h.close_date, h.changed_at,
        lag(h.close_date) OVER (PARTITION BY h.deal_id ORDER BY h.changed_at, h.source_id)
            AS previous,
        row_number() OVER (PARTITION BY h.deal_id ORDER BY h.changed_at, h.source_id) AS k
    FROM deal_field_history h
    WHERE h.organization_id = :org AND h.deleted_at IS NULL AND h.field = 'close_date'
        {{deals:h.deal_id}}
),
entry_amounts AS (
    SELECT h.deal_id, h.amount,
        row_number() OVER (PARTITION BY h.deal_id ORDER BY h.changed_at DESC, h.source_id DESC)
            AS k
    FROM deal_field_history h
    JOIN deals d ON d.id = h.deal_id AND d.organization_id = :org
    WHERE h.organization_id = :org AND h.deleted_at IS NULL AND h.field = 'amount'
        AND h.changed_at <= d.stage_entered_at{{deals:h.deal_id}}
),
derived AS (
    SELECT {
    _row(
        "touch",
        deal_id="t.deal_id",
        day="t.day",
        emails_out="t.emails_out",
        calls_out="t.calls_out",
        messages_out="t.messages_out",
        replies="t.replies",
        first_out="t.first_out",
        last_reply="t.last_reply",
        replied_through="max(t.last_reply) OVER (PARTITION BY t.deal_id ORDER BY t.day)",
    )
}
    FROM touch_days t
    UNION ALL
    SELECT {
    _row(
        "contact",
        deal_id="c.deal_id",
        day="c.day",
        contact_id="c.contact_id",
        previous_day="lag(c.day) OVER (PARTITION BY c.deal_id, c.contact_id ORDER BY c.day)",
    )
}
    FROM contact_days c
    UNION ALL
    SELECT {
    _row(
        "deal",
        deal_id="d.id",
        last_meeting="CASE WHEN am.last_meeting IS NULL OR dm.last_meeting > am.last_meeting "
        "THEN dm.last_meeting ELSE am.last_meeting END",
        pushes="pt.pushes",
        changed_at="pt.last_push",
        close_date="fc.close_date",
        amount="ea.amount",
        contacts="COALESCE(dc.contacts, 0)",
        last_touch_day="dt.last_touch_day",
        last_out_day="dt.last_out_day",
        last_reply_day="dt.last_reply_day",
        past_contact_day="dc.past_day",
        next_contact_day="dc.next_day",
        latest_contact_days="dc.days",
    )
}
    FROM deals d
    LEFT JOIN deal_meetings dm ON dm.deal_id = d.id
    LEFT JOIN deal_touches dt ON dt.deal_id = d.id
    LEFT JOIN (
        -- Its contacts (p has one row each); and, split at the organization's last day with a
        -- touch (what has happened: contact rows after it are scheduled meetings), its last
        -- contact day up to it, its first after it, and the last day of each contact up to it,
        -- latest first (the first LATEST_CONTACT_DAYS): a window ending between the two reads
        -- them.
        SELECT p.deal_id, count(p.contact_id) AS contacts,
            max(p.last_day) AS past_day, min(p.next_day) AS next_day,
            (array_agg(p.last_day ORDER BY p.last_day DESC)
                FILTER (WHERE p.last_day IS NOT NULL))[1:{LATEST_CONTACT_DAYS}] AS days
        FROM (
            SELECT c.deal_id, c.contact_id,
                max(c.day) FILTER (WHERE h.day IS NULL OR c.day <= h.day) AS last_day,
                min(c.day) FILTER (WHERE c.day > h.day) AS next_day
            FROM contact_days c
            CROSS JOIN ({{last_touch}}) h
            GROUP BY c.deal_id, c.contact_id
        ) p
        GROUP BY p.deal_id
    ) dc ON dc.deal_id = d.id
    LEFT JOIN account_latest am ON am.account_id = d.account_id
    LEFT JOIN (
        SELECT m.deal_id, count(*) AS pushes, max(m.changed_at) AS last_push
        FROM close_moves m
        WHERE m.close_date > m.previous
        GROUP BY m.deal_id
    ) pt ON pt.deal_id = d.id
    LEFT JOIN close_moves fc ON fc.deal_id = d.id AND fc.k = 1
    LEFT JOIN entry_amounts ea ON ea.deal_id = d.id AND ea.k = 1
    WHERE d.organization_id = :org AND d.deleted_at IS NULL AND NOT COALESCE(d.is_closed, false)
        {{deals:d.id}}
    UNION ALL
    SELECT {_row("won_stage", stage_id="w.stage_id", won_days="array_agg(w.days ORDER BY w.days)")}
    FROM won_stage_days w
    GROUP BY w.stage_id
    UNION ALL
    SELECT {
    _row("push", deal_id="m.deal_id", day="CAST(m.changed_at AS DATE)", changed_at="m.changed_at")
}
    FROM close_moves m
    WHERE m.close_date > m.previous
)
SELECT d.*, md5({" || '|' || ".join(f"COALESCE(CAST(d.{c} AS TEXT), '')" for c in _COLUMNS)})
    AS fingerprint
FROM derived d"""

_MARKER = re.compile(r"\{(deals|accounts):([a-z_.]+)\}")
_IN_SCOPE = f"SELECT s.deal_id FROM {change_journal.SCOPE} s"
_SCOPE_ACCOUNTS = (
    f"SELECT d.account_id FROM deals d JOIN {change_journal.SCOPE} s ON s.deal_id = d.id "
    "WHERE d.organization_id = :org AND d.account_id IS NOT NULL"
)


def _derived_sql(scoped: bool) -> str:
    """The derivation of every deal's rows, or (``scoped``) of the deals in the journal's scope
    table (``change_journal.SCOPE``) with the organization's last touch day bound as
    ``:last_touch_day``; the stages' won_stage rows are derived in full either way (a stage's
    row spans every won deal that left it)."""

    def fill(match: re.Match[str]) -> str:
        if not scoped:
            return ""
        kind, column = match.groups()
        return f" AND {column} IN ({_IN_SCOPE if kind == 'deals' else _SCOPE_ACCOUNTS})"

    last_touch = (
        "SELECT CAST(:last_touch_day AS DATE) AS day"
        if scoped
        else "SELECT max(t.day) AS day FROM touch_days t"
    )
    return _MARKER.sub(fill, _DERIVED_TEMPLATE.replace("{last_touch}", last_touch))


DERIVED_SQL = _derived_sql(scoped=False)
_SCOPED_SQL = _derived_sql(scoped=True)
# The scope's touches alone (the template's first CTE): their last day.
_SCOPED_LAST_TOUCH = (
    _SCOPED_SQL.split("\ntouch_days AS (")[0].rstrip().rstrip(",")
    + "\nSELECT max(CAST(t.occurred_at AS DATE)) FROM touches t"
)
# Kinds derived per deal: a scoped refresh compares the stored rows of these kinds for the
# scope's deals only, and every row of the other kinds (``_WHOLE``: won_stage, a row per stage
# over every won deal, and the stale and retired ones), each list an index range.
_PER_DEAL = ("touch", "contact", "deal", "push")
_WHOLE_KINDS = ("won_stage",)


def _stored_in_scope() -> tuple[str, str]:
    def listed(kinds: tuple[str, ...]) -> str:
        return ", ".join(f"'{k}'" for k in kinds)

    whole = (*_WHOLE_KINDS, STALE, *RETIRED_KINDS)
    return (
        f"t.kind IN ({listed(whole)})",
        f"t.deal_id IN ({_IN_SCOPE}) AND t.kind IN ({listed(_PER_DEAL)})",
    )


# A journal that names more than this share of the organization's deals is cheaper to derive
# in full than deal by deal.
SCOPE_MAX_SHARE = 0.3

_LIST = ", ".join(_COLUMNS)


def refresh_risk_facts(conn: Connection, org: str, *, full: bool = False) -> RefreshReport:
    """Bring ``org``'s ``deal_risk_facts`` rows in line with the store, writing only the rows
    whose fingerprint changed (in ``conn``'s transaction). On PostgreSQL with the change
    journal (``store.change_journal``), only the deals the writes since the last refresh
    touched are derived again, with those the moved last touch day re-splits; ``full``, a
    journal that asks for it or names too many deals, DuckDB: every deal."""
    take_turns(conn, TABLE, org)  # before taking the journal: refreshes take it in turns
    params: dict[str, Any] = {}
    scope: int | None = None
    if conn.dialect.name == "postgresql" and change_journal.installed(conn):
        if full or _holds(conn, org, RETIRED_KINDS) or not _holds_any(conn, org):
            change_journal.discard(conn, org)
        else:
            taken = change_journal.take(conn, org)
            deals = conn.execute(
                text("SELECT count(*) FROM deals WHERE organization_id = :org"), {"org": org}
            ).scalar_one()
            if not taken.everything and taken.scope <= SCOPE_MAX_SHARE * max(deals, 1):
                params["last_touch_day"], scope = _widen_scope(conn, org, taken.scope)
    report = write_difference(
        conn,
        org,
        table=TABLE,
        derived_sql=DERIVED_SQL if scope is None else _SCOPED_SQL,
        scratch=_NEW,
        same="n.fingerprint = t.fingerprint",
        columns=f"{_LIST}, fingerprint",
        index_on="fingerprint",
        params=params,
        stored=None if scope is None else _stored_in_scope(),
    )
    report.scope = scope
    return report


def _widen_scope(conn: Connection, org: str, deals: int) -> tuple[date | None, int]:
    """The organization's last touch day after the writes, and the scope's deals once those
    whose deal row splits its contact days at it are added: when the day moved, the deals
    with contact rows after the earlier of the two (their split changed, nothing else)."""
    bound = {"org": org}
    before = conn.execute(
        text(f"SELECT max(day) FROM {TABLE} WHERE organization_id = :org AND kind = 'touch'"),
        bound,
    ).scalar_one()
    rest = conn.execute(  # the latest first, by index: it stops at the first deal not in scope
        text(
            f"SELECT f.day FROM {TABLE} f WHERE f.organization_id = :org "
            f"AND f.kind = 'touch' AND f.day IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {change_journal.SCOPE} s WHERE s.deal_id = f.deal_id) "
            "ORDER BY f.day DESC LIMIT 1"
        ),
        bound,
    ).scalar()
    scoped = conn.execute(text(_SCOPED_LAST_TOUCH), bound).scalar_one()
    after = max((d for d in (rest, scoped) if d is not None), default=None)
    if before != after:
        since = min(d for d in (before, after) if d is not None)
        deals += change_journal.widen(
            conn,
            f"SELECT DISTINCT f.deal_id FROM {TABLE} f WHERE f.organization_id = :org "
            "AND f.kind = 'contact' AND f.day > :since",
            {**bound, "since": since},
        )
    return after, deals


# The row a failed refresh leaves (not derived: the next refresh deletes it).
STALE = "stale"


# Kinds a former version derived and nothing reads any more: a refresh deletes them (they are
# no longer derived); ``needs_refresh`` makes the next sync refresh while some are stored.
RETIRED_KINDS = ("meeting", "first_close", "entry_amount")


def is_stale(conn: Connection, org: str) -> bool:
    """Whether a refresh of ``org``'s rows failed since the last one that succeeded."""
    return _holds(conn, org, (STALE,))


def needs_refresh(conn: Connection, org: str) -> bool:
    """Whether ``org``'s rows may differ from a rebuild whatever the store holds: a refresh
    failed, or a former version's retired kinds are still stored."""
    return _holds(conn, org, (STALE, *RETIRED_KINDS))


def _holds(conn: Connection, org: str, kinds: tuple[str, ...]) -> bool:
    """Whether ``org`` has a row of one of ``kinds``."""
    found = conn.execute(
        text(
            f"SELECT 1 FROM {TABLE} WHERE organization_id = :org AND kind IN :kinds LIMIT 1"
        ).bindparams(bindparam("kinds", expanding=True)),
        {"org": org, "kinds": list(kinds)},
    ).first()
    return found is not None


def _holds_any(conn: Connection, org: str) -> bool:
    """Whether ``org`` has any row (none stored: nothing to scope a refresh against)."""
    found = conn.execute(
        text(f"SELECT 1 FROM {TABLE} WHERE organization_id = :org LIMIT 1"), {"org": org}
    ).first()
    return found is not None


def _add_mark(conn: Connection, org: str) -> None:
    conn.execute(
        text(
            f"INSERT INTO {TABLE} (id, organization_id, kind, fingerprint) "
            "VALUES (gen_random_uuid(), :org, :stale, :mark)"
        ),
        {"org": org, "stale": STALE, "mark": STALE},
    )


def _drop_mark(conn: Connection, org: str) -> None:
    conn.execute(
        text(f"DELETE FROM {TABLE} WHERE organization_id = :org AND kind = :stale"),
        {"org": org, "stale": STALE},
    )


# Lambdas, not the functions: a test that replaces refresh_risk_facts is heard.
ROLLUP = Rollup(
    table=TABLE,
    refresh=lambda conn, org: refresh_risk_facts(conn, org),
    has_mark=lambda conn, org: is_stale(conn, org),
    add_mark=lambda conn, org: _add_mark(conn, org),
    drop_mark=lambda conn, org: _drop_mark(conn, org),
    holds_outdated=lambda conn, org: _holds(conn, org, RETIRED_KINDS),
)


def mark_pending(conn: Connection, org: str) -> bool:
    """Leave ``org``'s stale row (in ``conn``'s transaction) unless one is there; return whether
    one was. A sync calls it before it writes (``store.derived``): a run killed before its
    refresh leaves the rows marked, and the next sync refreshes whatever it changes."""
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
    """The sync's call, right after identity resolution (``derived.refresh_after_sync``):
    skipped when ``run`` changed nothing the rows derive from, no refresh is pending and no
    retired kind is stored (``needs_refresh``)."""
    return derived.refresh_after_sync(
        db, org, ROLLUP, note, run=run, pending_before=pending_before, policy=policy
    )


def rebuild_all(conn: Connection) -> int:
    """Every organization's rows from nothing (``revtops db upgrade`` on a store that predates
    the table, or a version that added a column: stored rows would keep their fingerprints
    and an empty new column); returns the rows written."""
    conn.execute(text(f"DELETE FROM {TABLE}"))
    orgs = [
        row[0]
        for row in conn.execute(
            text(
                "SELECT organization_id FROM deals UNION "
                "SELECT organization_id FROM activities ORDER BY 1"
            )
        )
    ]
    return sum(refresh_risk_facts(conn, org, full=True).written for org in orgs)
