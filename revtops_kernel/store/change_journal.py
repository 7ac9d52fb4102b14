"""``derived_changes``: which deals, accounts and meetings the store's writes touched since the
rollups' last refresh, kept by PostgreSQL triggers, so ``deal_risk_facts`` and
``meeting_accounts`` are refreshed for them alone (each takes its own entries: a deal or an
account for the first, a meeting for the second).

Why triggers: a refresh scoped from the rows as they are now would miss the deals that *lost*
something (an activity moved from deal X to deal Y leaves only Y in the store), and identity
resolution rewrites participants and activities without a stamp. A statement-level trigger
sees every write, whoever makes it (a batch's upsert, a provider's clean-up, resolution, a
workflow's writer role), with its old and new rows (transition tables), and costs one
set-based INSERT per statement. Each trigger journals only writes that change what the rollup
reads (resolution clearing its ``resolution_pending`` marks journals nothing):

- ``activities``: the deal (old and new), and a meeting's account and the meeting itself;
- ``activity_participants``: their activity's deal, and a meeting participant's account and
  meeting;
- ``deals``: the deal (its account, open/won/deleted, when it entered its stage);
- ``deal_field_history``: the deal. (``deal_stage_history`` only feeds the won deals' days per
  stage, whose ranks span every won deal: a scoped refresh derives those in full.)

The journal is written in the writer's transaction, so it holds exactly the committed writes;
a refresh takes (deletes and returns) the entries it can see, in its own transaction, and a
sync's rows committed after that stay for that sync's refresh. DuckDB has no triggers: its
refresh derives the whole organization (~3 s at scale 10).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

TABLE = "derived_changes"
SCOPE = "_derived_scope"  # the deals a scoped refresh derives (a temporary table)
MEETING_SCOPE = "_meeting_scope"  # the meetings a scoped meeting_accounts refresh derives
EVERY_MEETING = "00000000-0000-0000-0000-000000000000"  # a meeting entry asking for all

# What each journaled table's rows mean to the rollups: (columns whose change matters, the
# deal, the account, the meeting) as SQL over the row ``r`` (for participants: and its
# activity ``a``).
_MEETING = "a.activity_type IN ('meeting', 'calendar_event')"
_NONE = "CAST(NULL AS UUID)"
_WATCHED: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "activities": (
        (
            "organization_id",
            "deal_id",
            "account_id",
            "activity_type",
            "direction",
            "occurred_at",
            "deleted_at",
            "status",
        ),
        "r.deal_id",
        f"CASE WHEN {_MEETING.replace('a.', 'r.')} THEN r.account_id END",
        f"CASE WHEN {_MEETING.replace('a.', 'r.')} THEN r.id END",
    ),
    "activity_participants": (
        (
            "organization_id",
            "activity_id",
            "deleted_at",
            "role",
            "is_internal",
            "contact_id",
            "account_id",
        ),
        "a.deal_id",
        f"CASE WHEN {_MEETING} THEN r.account_id END",
        f"CASE WHEN {_MEETING} THEN r.activity_id END",
    ),
    "deals": (
        (
            "organization_id",
            "deleted_at",
            "is_closed",
            "is_won",
            "account_id",
            "stage_entered_at",
        ),
        "r.id",
        _NONE,
        _NONE,
    ),
    "deal_field_history": (
        (
            "organization_id",
            "deal_id",
            "field",
            "changed_at",
            "close_date",
            "amount",
            "source_id",
            "deleted_at",
        ),
        "r.deal_id",
        _NONE,
        _NONE,
    ),
}
JOURNALED = tuple(_WATCHED)
_FUNCTION = "revtops_journal_{table}"
_TRIGGER = "revtops_journal_{table}_{op}"


def _entry(table: str) -> str:
    """The organization, deal, account and meeting of a row ``r`` (and its activity ``a``)."""
    _, deal, account, meeting = _WATCHED[table]
    return f"r.organization_id, {deal}, {account}, {meeting}"


def _activity_join(table: str) -> str:
    return (
        " LEFT JOIN activities a ON a.id = r.activity_id"
        if table == "activity_participants"
        else ""
    )


def _entries_sql(table: str, op: str) -> str:
    """The journal entries of a statement's transition tables (``new_rows``, ``old_rows``)."""
    entry = _entry(table)
    if op in ("INSERT", "DELETE"):
        rows = "new_rows" if op == "INSERT" else "old_rows"
        return f"SELECT {entry} FROM {rows} r{_activity_join(table)}"
    # An UPDATE: the rows whose watched columns changed, with their old and their new values:
    # each side's watched tuples (with the id) that the other side does not have. A set
    # difference (hashed), not a join of the transition tables, which have no statistics: the
    # planner nested-looped them, 15 s instead of 2-4 s for 20k rows in 2,000-row batches.
    columns = _WATCHED[table][0]
    watched = ", ".join(("id", *columns))
    changed = []
    for rows, other in (("old_rows", "new_rows"), ("new_rows", "old_rows")):
        changed.append(
            f"SELECT {entry} FROM "
            f"(SELECT {watched} FROM {rows} EXCEPT SELECT {watched} FROM {other}) r"
            f"{_activity_join(table)}"
        )
    return " UNION ALL ".join(changed)


def _function_sql(table: str) -> str:
    # Two kinds of entries from one pass: deal_risk_facts' (a deal or an account, no meeting)
    # and meeting_accounts' (a meeting alone).
    branches = "\n".join(
        f"""    {"IF" if i == 0 else "ELSIF"} TG_OP = '{op}' THEN
        INSERT INTO {TABLE} (id, organization_id, deal_id, account_id, meeting_id)
        WITH e (organization_id, deal_id, account_id, meeting_id) AS (
            {_entries_sql(table, op)})
        SELECT gen_random_uuid(), x.* FROM (
            SELECT DISTINCT e.organization_id, e.deal_id, e.account_id, {_NONE} FROM e
            WHERE e.deal_id IS NOT NULL OR e.account_id IS NOT NULL
            UNION
            SELECT DISTINCT e.organization_id, {_NONE}, {_NONE}, e.meeting_id FROM e
            WHERE e.meeting_id IS NOT NULL) x;"""
        for i, op in enumerate(("INSERT", "UPDATE", "DELETE"))
    )
    return f"""
CREATE OR REPLACE FUNCTION {_FUNCTION.format(table=table)}() RETURNS trigger
LANGUAGE plpgsql AS $${_body(branches)}$$"""


def _body(branches: str) -> str:
    return f"""
BEGIN
{branches}
    END IF;
    RETURN NULL;
END
"""


def install_sql() -> list[str]:
    """The functions and triggers, idempotent (``revtops db upgrade`` runs them each time)."""
    statements: list[str] = []
    for table in JOURNALED:
        statements.append(_function_sql(table))
        for op, transition in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            trigger = _TRIGGER.format(table=table, op=op.lower())
            statements.append(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
            statements.append(
                f"CREATE TRIGGER {trigger} AFTER {op} ON {table} REFERENCING {transition} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION.format(table=table)}()"
            )
    return statements


def install(conn: Connection) -> None:
    """Create or replace the journal's triggers (PostgreSQL; nothing on DuckDB). Where they
    are new or changed, writes before them went unjournaled (or journaled otherwise): every
    organization with rollup rows gets an entry per rollup that makes its next refresh derive
    everything."""
    if conn.dialect.name != "postgresql":
        return
    if installed(conn) and _functions_current(conn):
        return  # no DDL: CREATE TRIGGER would lock the tables against writers
    for statement in install_sql():
        conn.execute(text(statement))
    conn.execute(
        text(
            f"INSERT INTO {TABLE} (id, organization_id) SELECT gen_random_uuid(), "
            "o.organization_id FROM (SELECT DISTINCT organization_id FROM deal_risk_facts) o"
        )
    )
    conn.execute(
        text(
            f"INSERT INTO {TABLE} (id, organization_id, meeting_id) SELECT gen_random_uuid(), "
            f"o.organization_id, CAST('{EVERY_MEETING}' AS UUID) "
            "FROM (SELECT DISTINCT organization_id FROM meeting_accounts) o"
        )
    )


def _functions_current(conn: Connection) -> bool:
    """Whether the trigger functions are this version's (their source unchanged)."""
    rows = conn.execute(
        text(
            "SELECT proname, prosrc FROM pg_proc "
            "WHERE proname LIKE 'revtops\\_journal\\_%' AND pronamespace = "
            "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        )
    ).all()
    stored: dict[str, str] = {str(name): str(source) for name, source in rows}
    return all(stored.get(_FUNCTION.format(table=t)) == _body_of(t) for t in JOURNALED)


def _body_of(table: str) -> str:
    sql = _function_sql(table)
    return sql[sql.index("$$") + 2 : sql.rindex("$$")]


def installed(conn: Connection) -> bool:
    """Whether every journal trigger is in place (a store upgraded by this version)."""
    if conn.dialect.name != "postgresql":
        return False
    expected = {
        _TRIGGER.format(table=t, op=op) for t in JOURNALED for op in ("insert", "update", "delete")
    }
    found = {
        row[0]
        for row in conn.execute(
            text(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
                "AND tgname LIKE 'revtops_journal_%' AND tgrelid = ANY(CAST(:tables AS regclass[]))"
            ),
            {"tables": list(JOURNALED)},
        )
    }
    return expected <= found


@dataclass
class Taken:
    entries: int  # journal rows taken
    scope: int  # distinct deals (or meetings) in the scope
    everything: bool  # an entry asking for everything (``install``'s, on new triggers)


def take(conn: Connection, org: str) -> Taken:
    """Take ``org``'s deal_risk_facts entries (in ``conn``'s transaction: a rollback puts them
    back) into the temporary table ``_derived_scope`` (``deal_id``): the journaled deals and
    every deal of a journaled account."""
    return _take(
        conn,
        org,
        which="meeting_id IS NULL",
        columns="deal_id, account_id",
        everything="deal_id IS NULL AND account_id IS NULL",
        scope=SCOPE,
        column="deal_id",
        select="SELECT deal_id FROM _derived_taken WHERE deal_id IS NOT NULL "
        "UNION SELECT d.id FROM deals d WHERE d.organization_id = :org AND d.account_id IN "
        "(SELECT account_id FROM _derived_taken WHERE account_id IS NOT NULL)",
    )


def take_meetings(conn: Connection, org: str) -> Taken:
    """Take ``org``'s meeting_accounts entries into the temporary table ``_meeting_scope``
    (``meeting_id``), as ``take``."""
    return _take(
        conn,
        org,
        which="meeting_id IS NOT NULL",
        columns="meeting_id",
        everything=f"meeting_id = CAST('{EVERY_MEETING}' AS UUID)",
        scope=MEETING_SCOPE,
        column="meeting_id",
        select="SELECT DISTINCT meeting_id FROM _derived_taken",
    )


def _take(
    conn: Connection,
    org: str,
    *,
    which: str,
    columns: str,
    everything: str,
    scope: str,
    column: str,
    select: str,
) -> Taken:
    """Delete ``org``'s entries matching ``which`` (their ``columns``) into ``_derived_taken``,
    and make the temporary table ``scope`` (``column``, indexed and analyzed) of ``select``
    over them; ``everything``: the condition of an entry asking for every row."""
    conn.execute(text("DROP TABLE IF EXISTS _derived_taken"))
    conn.execute(
        text(
            "CREATE TEMPORARY TABLE _derived_taken AS WITH taken AS ("
            f"DELETE FROM {TABLE} WHERE organization_id = :org AND {which} "
            f"RETURNING {columns}) SELECT {columns} FROM taken"
        ),
        {"org": org},
    )
    entries, asks_all = conn.execute(
        text(f"SELECT count(*), count(*) FILTER (WHERE {everything}) FROM _derived_taken")
    ).one()
    conn.execute(text(f"DROP TABLE IF EXISTS {scope}"))
    conn.execute(text(f"CREATE TEMPORARY TABLE {scope} AS {select}"), {"org": org})
    conn.execute(text(f"CREATE UNIQUE INDEX ON {scope} ({column})"))
    conn.execute(text(f"ANALYZE {scope}"))
    conn.execute(text("DROP TABLE _derived_taken"))
    return Taken(int(entries), _count(conn, scope), bool(asks_all))


def _count(conn: Connection, name: str) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())


def widen(conn: Connection, sql: str, params: dict[str, object]) -> int:
    """Add the deals ``sql`` selects (one column) to the scope; return how many were new."""
    added = conn.execute(
        text(
            f"INSERT INTO {SCOPE} (deal_id) SELECT x.deal_id FROM ({sql}) x "
            f"WHERE x.deal_id IS NOT NULL ON CONFLICT DO NOTHING"
        ),
        params,
    ).rowcount
    conn.execute(text(f"ANALYZE {SCOPE}"))
    return max(added or 0, 0)


def discard(conn: Connection, org: str) -> None:
    """Drop ``org``'s deal_risk_facts entries (a full refresh derives all they would scope)."""
    conn.execute(
        text(f"DELETE FROM {TABLE} WHERE organization_id = :org AND meeting_id IS NULL"),
        {"org": org},
    )


def discard_meetings(conn: Connection, org: str) -> None:
    """Drop ``org``'s meeting_accounts entries (a full refresh derives them all)."""
    conn.execute(
        text(f"DELETE FROM {TABLE} WHERE organization_id = :org AND meeting_id IS NOT NULL"),
        {"org": org},
    )
