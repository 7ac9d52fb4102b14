"""A small hand-built store for the deal-risk rules: for each rule, deals it must flag and
near-misses it must not, every other deal healthy on every rule.

A healthy open deal (``Builder.deal`` with its defaults) has: a close date ahead, 7 days in
Discovery (won deals spent 30 there), a meeting 5 days ago with two customer contacts, a reply
(inbound email) 3 days ago, no close-date or amount history. Each named deal changes one thing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from revtops_kernel.ids import record_id
from revtops_kernel.store import Database
from revtops_kernel.store.risk_facts import refresh_risk_facts
from revtops_kernel.store.upsert import upsert

ORG = "risk-test"
OTHER_ORG = "risk-other"
AS_OF = date(2026, 11, 1)
SYSTEM = "hubspot"


def at(day: date | int, hour: int = 12) -> datetime:
    """A time on ``day`` (a date, or days before AS_OF)."""
    when = AS_OF - timedelta(days=day) if isinstance(day, int) else day
    return datetime(when.year, when.month, when.day, hour, tzinfo=UTC)


class Builder:
    """Rows of one organization, written with the store's own upsert."""

    def __init__(self, org: str = ORG) -> None:
        self.org = org
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.serial = 0
        owner = self.add("owners", email="ann@seller.example", full_name="Ann Rep")
        self.owner = owner
        self.pipeline = self.add("pipelines", name="New Business", display_order=0)
        self.stages = {
            label: self.add(
                "deal_stages",
                pipeline_id=self.pipeline,
                label=label,
                display_order=order,
                probability=Decimal(prob),
                is_closed=closed,
                is_won=won,
            )
            for order, (label, prob, closed, won) in enumerate(
                (
                    ("Discovery", "0.1", False, False),
                    ("Negotiation", "0.8", False, False),
                    ("Closed Won", "1", True, True),
                    ("Closed Lost", "0", True, False),
                )
            )
        }
        self.deal_ids: dict[str, uuid.UUID] = {}
        self.accounts: dict[uuid.UUID, uuid.UUID] = {}  # deal -> its account
        self.contacts: dict[uuid.UUID, list[uuid.UUID]] = {}  # deal -> its account's contacts

    def add(self, table: str, **values: Any) -> uuid.UUID:
        self.serial += 1
        source_id = f"{table}-{self.serial}"
        row_id = record_id(self.org, SYSTEM, table, source_id)
        stamp = at(60)
        self.rows[table].append(
            {
                "id": row_id,
                "organization_id": self.org,
                "source_system": SYSTEM,
                "source_id": source_id,
                "created_at": stamp,
                "updated_at": stamp,
                "deleted_at": None,
                "raw": None,
                **values,
            }
        )
        return row_id

    # --- deals ----------------------------------------------------------------------------

    def deal(
        self,
        name: str,
        *,
        stage: str = "Discovery",
        entered: int | None = 7,
        close: date = date(2026, 12, 15),
        amount: str | None = "50000",
        created: int = 90,
        healthy_meeting: bool = True,
        healthy_reply: bool = True,
    ) -> uuid.UUID:
        """An open deal, healthy unless told otherwise; its account has two contacts."""
        account = self.add("accounts", name=f"{name} Inc", domain=f"{name}.example")
        contacts = [
            self.add("contacts", email=f"{who}@{name}.example", full_name=f"{who} of {name}",
                     account_id=account)
            for who in ("buyer", "champion")
        ]  # fmt: skip
        deal = self.add(
            "deals",
            name=name,
            amount=Decimal(amount) if amount is not None else None,
            pipeline_id=self.pipeline,
            stage_id=self.stages[stage],
            stage_name=stage,
            close_date=close,
            owner_id=self.owner,
            account_id=account,
            is_closed=stage.startswith("Closed"),
            is_won=stage == "Closed Won",
            stage_entered_at=None if entered is None else at(entered, 9),
        )
        self.rows["deals"][-1]["created_at"] = at(created)
        self.deal_ids[name] = deal
        self.accounts[deal] = account
        self.contacts[deal] = contacts
        if healthy_meeting:
            self.activity(deal, "meeting", 5, contacts=contacts)
        if healthy_reply:
            self.activity(deal, "email", 3, direction="inbound")
        return deal

    def won_deal(self, name: str, days_in_negotiation: int) -> None:
        """A won deal that spent 30 days in Discovery and then ``days_in_negotiation``."""
        start = at(300)
        deal = self.deal(name, stage="Closed Won", entered=None, close=date(2026, 6, 30),
                         healthy_meeting=False, healthy_reply=False)  # fmt: skip
        path = (
            ("Discovery", start),
            ("Negotiation", start + timedelta(days=30)),
            ("Closed Won", start + timedelta(days=30 + days_in_negotiation)),
        )
        for label, when in path:
            self.add("deal_stage_history", deal_id=deal, pipeline_id=self.pipeline,
                     stage_id=self.stages[label], stage_name=label, entered_at=when)  # fmt: skip

    def history(self, deal: uuid.UUID, field: str, *values: tuple[int, Any]) -> None:
        """``deal_field_history`` rows: (days before AS_OF, value)."""
        for days, value in values:
            self.add(
                "deal_field_history",
                deal_id=deal,
                field=field,
                amount=Decimal(value) if field == "amount" else None,
                close_date=value if field == "close_date" else None,
                changed_at=at(days, 10),
            )

    # --- activities ---------------------------------------------------------------------------

    def activity(
        self,
        deal: uuid.UUID | None,
        activity_type: str,
        days: int,
        *,
        direction: str | None = None,
        contacts: Sequence[uuid.UUID] = (),
        status: str | None = None,
        account: uuid.UUID | None = None,
        author_internal: bool | None = None,
        internal_participant: bool = False,
    ) -> uuid.UUID:
        activity = self.add(
            "activities",
            activity_type=activity_type,
            occurred_at=at(days),
            direction=direction,
            status=status,
            deal_id=deal,
            account_id=account if account is not None else None,
            owner_id=self.owner,
        )
        for contact in contacts:
            self.add("activity_participants", activity_id=activity, contact_id=contact,
                     role="attendee", is_internal=False, account_id=None)  # fmt: skip
        if internal_participant:
            self.add("activity_participants", activity_id=activity, contact_id=None,
                     role="attendee", is_internal=True, account_id=None)  # fmt: skip
        if author_internal is not None:
            self.add("activity_participants", activity_id=activity, contact_id=None,
                     role="author", is_internal=author_internal, account_id=None)  # fmt: skip
        return activity

    def write(self, db: Database) -> None:
        with db.begin() as conn:
            for table, rows in self.rows.items():
                shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
                for row in rows:
                    shapes[tuple(sorted(row))].append(row)
                for batch in shapes.values():
                    upsert(conn, table, batch)
            refresh_risk_facts(conn, self.org)  # as a sync does after writing


def build(db: Database) -> dict[str, uuid.UUID]:
    """The dataset; returns the open deals' ids by name."""
    b = Builder()
    for n, days in enumerate((10, 20, 30, 40, 50)):  # Negotiation's 75th percentile: 40 days
        b.won_deal(f"won{n}", days)

    b.deal("healthy")
    # An email without a recorded direction counts neither way: not ghosted.
    undirected = b.deal("undirected", healthy_reply=False)
    b.activity(undirected, "email", 2)

    # ghosted: 2 emails and a call out in the last 14 days, the last reply 20 days ago.
    ghosted = b.deal("ghosted", healthy_reply=False)
    b.activity(ghosted, "email", 20, direction="inbound")
    b.activity(ghosted, "email", 10, direction="outbound")
    b.activity(ghosted, "email", 3, direction="outbound")
    b.activity(ghosted, "call", 5, direction="outbound")
    # near-miss: the reply came on the window's first day (as_of - 13).
    replied = b.deal("ghosted_near", healthy_reply=False)
    b.activity(replied, "email", 13, direction="inbound")
    b.activity(replied, "email", 2, direction="outbound")
    # ghosted on Slack: our message 2 days ago, the customer's last one 30 days ago.
    slack = b.deal("ghosted_slack", healthy_reply=False)
    b.activity(slack, "slack_message", 30, author_internal=False)
    b.activity(slack, "slack_message", 2, author_internal=True)

    # no recent meeting: the last one 40 days ago; a cancelled one 5 days ago does not count.
    quiet = b.deal("no_meeting", healthy_meeting=False)
    b.activity(quiet, "email", 3, direction="inbound", contacts=b.contacts[quiet])
    b.activity(quiet, "meeting", 40)
    b.activity(quiet, "meeting", 5, status="cancelled")
    # near-miss: same, but a calendar event with the account is scheduled in 9 days (linked
    # through an attendee resolved to the account, not to the deal).
    booked = b.deal("no_meeting_near", healthy_meeting=False)
    b.activity(booked, "email", 3, direction="inbound", contacts=b.contacts[booked])
    b.activity(booked, "meeting", 40)
    event = b.activity(None, "calendar_event", -9)
    b.add("activity_participants", activity_id=event, contact_id=None, role="attendee",
          is_internal=False, account_id=b.accounts[booked])  # fmt: skip
    # near-miss: no meeting ever, but the deal is 10 days old.
    young = b.deal("no_meeting_young", healthy_meeting=False, created=10)
    b.activity(young, "email", 3, direction="inbound", contacts=b.contacts[young])

    # stalled: 41 days in Negotiation (won deals' 75th percentile: 40); near-miss: 40.
    b.deal("stalled", stage="Negotiation", entered=41)
    b.deal("stalled_near", stage="Negotiation", entered=40)

    # single-threaded: one customer contact in 30 days (an internal attendee does not count,
    # the other contact was engaged 40 days ago; the one engaged twice counts once). Near-miss:
    # the healthy deals (two).
    single = b.deal("single", healthy_meeting=False)
    b.activity(single, "meeting", 5, contacts=b.contacts[single][:1], internal_participant=True)
    b.activity(single, "email", 20, contacts=b.contacts[single][:1])
    b.activity(single, "meeting", 40, contacts=b.contacts[single][1:])
    # Scheduled, so not "no recent meeting"; with the other contact: engaged once as_of reaches
    # it (after the store's last touch: the deal row's summary of contacts stops before it).
    b.activity(single, "meeting", -3, contacts=b.contacts[single][1:])

    # close date pushed: later, earlier, later again = 2 pushes; near-miss: 1.
    pushed = b.deal("pushed")
    b.history(pushed, "close_date", (80, date(2026, 10, 1)), (60, date(2026, 10, 15)),
              (40, date(2026, 10, 10)), (20, date(2026, 12, 15)))  # fmt: skip
    pushed_once = b.deal("pushed_near")
    b.history(pushed_once, "close_date", (80, date(2026, 11, 1)), (60, date(2026, 12, 20)),
              (40, date(2026, 12, 15)))  # fmt: skip

    # amount dropped 21% since entering Discovery 7 days ago; near-miss 19%; and a cut before
    # the stage began does not count.
    dropped = b.deal("dropped", amount="79000")
    b.history(dropped, "amount", (80, "100000"), (2, "79000"))
    dropped_near = b.deal("dropped_near", amount="81000")
    b.history(dropped_near, "amount", (80, "100000"), (2, "81000"))
    dropped_before = b.deal("dropped_before", amount="50000")
    b.history(dropped_before, "amount", (80, "100000"), (30, "50000"))

    # past due: the close date was yesterday; near-miss: today.
    b.deal("past_due", close=AS_OF - timedelta(days=1))
    b.deal("past_due_near", close=AS_OF)

    # two flags: ghosted and past due (score 20 + 10).
    both = b.deal("ghosted_past_due", close=date(2026, 10, 1), healthy_reply=False)
    b.activity(both, "call", 4, direction="outbound")

    # A lost deal with everything wrong is not open: never flagged.
    lost = b.deal("lost", stage="Closed Lost", close=date(2026, 9, 1), healthy_meeting=False,
                  healthy_reply=False)  # fmt: skip
    b.activity(lost, "email", 2, direction="outbound")
    b.write(db)

    other = Builder(OTHER_ORG)
    other.deal("elsewhere", close=date(2026, 1, 1))  # past due, but another organization's
    other.write(db)
    return {name: b.deal_ids[name] for name in b.deal_ids if not name.startswith("won")}


# What each rule must flag with the defaults (every other open deal is a near-miss or healthy).
EXPECTED: dict[str, set[str]] = {
    "ghosted": {"ghosted", "ghosted_slack", "ghosted_past_due"},
    "no_recent_meeting": {"no_meeting"},
    "stalled": {"stalled"},
    "single_threaded": {"single"},
    "close_date_pushed": {"pushed"},
    "amount_dropped": {"dropped"},
    "past_due": {"past_due", "ghosted_past_due"},
}
