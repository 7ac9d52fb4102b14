"""Identity resolution's rules, as pure functions: who an email is, and which deal a meeting is for.

The store applies the same rules set-based in SQL after every sync (``revtops_kernel.resolve``);
these functions are the rules' one written statement, used by the normalizers (mentions), by
``resolve`` (which domains are consumer mailboxes) and by the tests (a reference to check the
SQL against).

Rules:

1. A participant's email matches a contact case-insensitively. When several live contacts share
   it (the same person in HubSpot and Salesforce), the CRM first in ``CRM_PRECEDENCE`` wins, then
   the smallest row id: one deterministic choice, and the account and deals then come from the
   same CRM.
2. Its account is the contact's account; with no contact, the account whose ``domain`` equals the
   email's domain (same tie rule) - never for a consumer mailbox (``email_domains``), where a
   shared domain says nothing about an employer, and never for the organization's own domains.
3. Its owner is the live owner (internal user) with that email (same tie rule). A participant is
   internal when it matched an owner, or its domain is one of the organization's own domains: the
   non-consumer domains of the owners' emails.
4. A Slack message or calendar event takes owner, contact and account from its live
   participants: the owner is the organizer or author if internal, else the internal
   participant with the smallest email; the contact is the participant with a contact and the
   smallest email; the account is the one most of its external participants resolved to (ties:
   the smallest account id). CRM activities keep what the CRM says (see ``resolve``).
5. A calendar event links to the deal open on its account when it took place: created at or
   before the event, and either still open or closed on or after the event's (UTC) date. Of
   several, the most recently created one (then the smallest id): the deal the meeting most
   likely advanced.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import NamedTuple

from revtops_kernel.email_domains import is_consumer_domain
from revtops_kernel.providers import CRM_PROVIDERS

CRM_PRECEDENCE: tuple[str, ...] = CRM_PROVIDERS
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentioned_user_ids(text: object) -> list[str]:
    """Slack user ids mentioned in a message (``<@U061F7AUR>`` or ``<@U061F7AUR|ann>``), in
    order, each once."""
    if not isinstance(text, str):
        return []
    return list(dict.fromkeys(_MENTION.findall(text)))


def domain_of(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower().rstrip(".") or None


def account_domain_allowed(domain: str | None, own_domains: Iterable[str] = ()) -> bool:
    """May an email at ``domain`` resolve to an account by its domain alone?"""
    return bool(domain) and not is_consumer_domain(domain or "") and domain not in set(own_domains)


def consumer_domains(domains: Iterable[str | None]) -> list[str]:
    """The consumer mailbox domains among ``domains``, sorted (what ``resolve`` excludes)."""
    return sorted({d for d in domains if d and is_consumer_domain(d)})


def own_domains(owner_emails: Iterable[str | None]) -> set[str]:
    """The organization's own email domains: where its owners' work addresses are."""
    return {
        d
        for d in (domain_of(e) for e in owner_emails)
        if d is not None and not is_consumer_domain(d)
    }


class DealFacts(NamedTuple):
    """What rule 5 reads of a deal."""

    id: uuid.UUID
    created_at: datetime | None
    is_closed: bool | None
    close_date: date | None


_DEAL_ID = operator.attrgetter("id")
_CREATED_AT = operator.attrgetter("created_at")


def latest_first(deals: Iterable[DealFacts]) -> list[DealFacts]:
    """An account's deals in the order rule 5 tries them: latest created first, the smallest id
    first on a tie; those without a creation time (never open at any moment) left out."""
    ordered = sorted((d for d in deals if d.created_at is not None), key=_DEAL_ID)
    ordered.sort(key=_CREATED_AT, reverse=True)  # stable: ids stay in order on a tie
    return ordered


def open_deal_at(moment: datetime, deals: Iterable[DealFacts]) -> uuid.UUID | None:
    """Rule 5: the deal of an account that was open at ``moment``, or None; ``deals`` in
    ``latest_first`` order, so the first open one is the rule's."""
    day = moment.date()
    for deal_id, created_at, is_closed, close_date in deals:
        if (
            created_at is not None
            and created_at <= moment
            and (not is_closed or (close_date is not None and close_date >= day))
        ):
            return deal_id
    return None
