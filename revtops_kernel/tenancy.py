"""Who may use the product: organizations, their members, the waitlist and invitations.

Sign-in (the server extension) calls `admit` with an identity it has already verified; this
module decides what that person may do. Rules:

- an identity whose email is not an email address, or whose provider says the address is not
  verified, is refused (never admitted to the organization of a domain it has not proven);
- a consumer mailbox (gmail.com, outlook.com...) never maps to an organization: refused;
- a known user (by token subject or email) is admitted to their organization;
- a new user whose work domain belongs to an organization joins it (the first one to join
  administers it, the others are members);
- a new user whose email was invited from the waitlist founds the organization of their domain
  and becomes its admin;
- everyone else is put on the waitlist (once).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from revtops_kernel.email_domains import email_domain, is_consumer_domain, normalize_email
from revtops_kernel.errors import TenancyConflictError, TenancyError
from revtops_kernel.settings import ORG_ID_PATTERN
from revtops_kernel.store.database import Database
from revtops_kernel.store.locks import lock_admission
from revtops_kernel.store.schema import metadata
from revtops_kernel.timeutil import iso_z, utcnow

_orgs = metadata.tables["organizations"]
_users = metadata.tables["users"]
_waitlist = metadata.tables["waitlist"]
DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class WaitlistStatus(StrEnum):
    """Where a person on the waitlist stands (``waitlist.status``)."""

    WAITING = "waiting"
    INVITED = "invited"
    JOINED = "joined"


AdmissionStatus = Literal[
    "admitted", "waitlisted", "consumer_domain", "unverified_email", "invalid_email"
]


@dataclass(frozen=True)
class Member:
    id: uuid.UUID
    organization_id: str
    email: str
    name: str | None
    role: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "organization_id": self.organization_id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
        }


@dataclass(frozen=True)
class Admission:
    status: AdmissionStatus
    email: str
    member: Member | None = None
    message: str = ""


def admit(
    db: Database,
    *,
    email: str,
    subject: str,
    name: str | None = None,
    email_verified: bool = True,
) -> Admission:
    """Decide what a verified identity may do, creating its user row when it is admitted.

    ``email_verified`` is the identity provider's word that the person owns the address; an
    unverified address is refused before anything is stored (not even a waitlist entry).
    """
    try:
        email = normalize_email(email)
    except ValueError:
        shown = email[:80].encode("unicode_escape").decode("ascii")
        return Admission(
            "invalid_email",
            shown,
            message=f"Your sign-in's email {shown!r} is not an email address; "
            "sign in with your work email.",
        )
    if not email_verified:
        return Admission(
            "unverified_email",
            email,
            message=f"Please verify your email first: {email} is not verified yet. "
            "Open the confirmation email, then sign in again.",
        )
    domain = email_domain(email)
    if is_consumer_domain(domain):
        return Admission(
            "consumer_domain",
            email,
            message=f"{domain} is a personal mailbox: please sign in with your work email.",
        )
    with db.begin() as conn:
        lock_admission(conn, domain)  # one sign-in of this domain decides at a time
        known = _member_where(conn, (_users.c.auth_subject == subject) | (_users.c.email == email))
        if known is not None:
            conn.execute(
                update(_users)
                .where(_users.c.id == known.id)
                .values(last_sign_in_at=utcnow(), auth_subject=subject)
            )
            return Admission("admitted", email, known)
        org = conn.execute(select(_orgs.c.id).where(_orgs.c.domain == domain)).scalar()
        if org is not None:
            # The first person to join an organization (one an operator created) runs it.
            first = conn.execute(select(_users.c.id).where(_users.c.organization_id == org)).first()
            added = _add_user(conn, org, email, subject, name, "member" if first else "admin")
            return Admission("admitted", email, added)
        invited = conn.execute(
            select(_waitlist.c.id).where(
                (_waitlist.c.email == email) & (_waitlist.c.status == WaitlistStatus.INVITED)
            )
        ).scalar()
        if invited is not None:
            org = _create_org(conn, name=domain, domain=domain)
            member = _add_user(conn, org, email, subject, name, "admin")
            conn.execute(
                update(_waitlist)
                .where(_waitlist.c.id == invited)
                .values(status=WaitlistStatus.JOINED)
            )
            return Admission("admitted", email, member)
        _waitlist_insert(conn, email=email, name=name, company=None, note=None)
        return Admission(
            "waitlisted",
            email,
            message="You are on the waitlist; we will email you when your invitation is ready.",
        )


def member(db: Database, user_id: uuid.UUID) -> Member | None:
    with db.connect() as conn:
        return _member_where(conn, _users.c.id == user_id)


def members(db: Database, org: str) -> list[Member]:
    with db.connect() as conn:
        rows = conn.execute(
            select(_users).where(_users.c.organization_id == org).order_by(_users.c.email)
        ).mappings()
        return [_member(row) for row in rows]


def rename_member(db: Database, user_id: uuid.UUID, name: str) -> None:
    """The member's display name, as their identity provider now says it."""
    with db.begin() as conn:
        conn.execute(update(_users).where(_users.c.id == user_id).values(name=name))


def create_organization(db: Database, *, name: str, domain: str | None = None) -> dict[str, Any]:
    """A new organization; its id is a slug of the domain (or name). Refuses a taken domain."""
    if domain is not None:
        domain = domain.strip().lower()
        if not DOMAIN_PATTERN.match(domain):
            raise TenancyError(f"{domain[:80]!r} is not a domain name such as acme.com")
        if is_consumer_domain(domain):
            raise TenancyError(f"{domain} is a personal mailbox domain, not a company's")
    with db.begin() as conn:
        if domain and conn.execute(select(_orgs.c.id).where(_orgs.c.domain == domain)).scalar():
            raise TenancyConflictError(f"an organization already uses the domain {domain}")
        org = _create_org(conn, name=name, domain=domain)
    found = organization(db, org)
    assert found is not None
    return found


def organization(db: Database, org: str) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = conn.execute(select(_orgs).where(_orgs.c.id == org)).mappings().first()
    return _org_json(row) if row else None


def organization_by_domain(db: Database, domain: str) -> dict[str, Any] | None:
    with db.connect() as conn:
        row = (
            conn.execute(select(_orgs).where(_orgs.c.domain == domain.strip().lower()))
            .mappings()
            .first()
        )
    return _org_json(row) if row else None


def join_waitlist(
    db: Database,
    *,
    email: str,
    name: str | None = None,
    company: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Add someone to the waitlist; asking twice keeps the first entry (and says so)."""
    try:
        email = normalize_email(email)
    except ValueError as exc:
        raise TenancyError(str(exc)) from None
    limits = (("name", name, 200), ("company", company, 200), ("note", note, 2000))
    for field, value, limit in limits:
        if value is not None and len(value) > limit:
            raise TenancyError(f"{field} is longer than {limit} characters")
    with db.begin() as conn:
        _waitlist_insert(conn, email=email, name=name, company=company, note=note)
        row = conn.execute(select(_waitlist).where(_waitlist.c.email == email)).mappings().one()
    return _waitlist_json(row)


def waitlist(db: Database, *, status: str | None = None) -> list[dict[str, Any]]:
    query = select(_waitlist).order_by(_waitlist.c.created_at)
    if status is not None:
        query = query.where(_waitlist.c.status == status)
    with db.connect() as conn:
        return [_waitlist_json(row) for row in conn.execute(query).mappings()]


def invite(db: Database, email: str) -> dict[str, Any]:
    """Let a waitlisted person in: their next sign-in founds their organization."""
    try:
        email = normalize_email(email)
    except ValueError as exc:
        raise TenancyError(str(exc)) from None
    with db.begin() as conn:
        done = conn.execute(
            update(_waitlist)
            .where((_waitlist.c.email == email) & (_waitlist.c.status == WaitlistStatus.WAITING))
            .values(status=WaitlistStatus.INVITED, invited_at=utcnow())
        )
        row = conn.execute(select(_waitlist).where(_waitlist.c.email == email)).mappings().first()
    if row is None:
        raise TenancyError(f"{email} is not on the waitlist")
    if done.rowcount == 0 and row["status"] != WaitlistStatus.INVITED:
        raise TenancyConflictError(f"{email} has already joined")
    return _waitlist_json(row)


# --- rows -------------------------------------------------------------------------------------


def _member_where(conn: Connection, condition: Any) -> Member | None:
    row = conn.execute(select(_users).where(condition)).mappings().first()
    return _member(row) if row else None


def _member(row: Any) -> Member:
    return Member(row["id"], row["organization_id"], row["email"], row["name"], row["role"])


def _add_user(
    conn: Connection, org: str, email: str, subject: str, name: str | None, role: str
) -> Member:
    now = utcnow()
    user_id = uuid.uuid4()
    conn.execute(
        _users.insert().values(
            id=user_id,
            organization_id=org,
            email=email,
            name=name,
            role=role,
            auth_subject=subject,
            created_at=now,
            last_sign_in_at=now,
        )
    )
    return Member(user_id, org, email, name, role)


def _create_org(conn: Connection, *, name: str, domain: str | None) -> str:
    base = _slug(domain or name)
    taken = set(conn.execute(select(_orgs.c.id).where(_orgs.c.id.like(f"{base}%"))).scalars())
    org = base
    suffix = 2
    while org in taken:
        org = f"{base[:58]}-{suffix}"
        suffix += 1
    now = utcnow()
    conn.execute(
        _orgs.insert().values(id=org, name=name, domain=domain, created_at=now, updated_at=now)
    )
    return org


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63] or "org"
    if not ORG_ID_PATTERN.match(slug):
        slug = f"org-{slug}"[:63]
    return slug


def _waitlist_insert(
    conn: Connection, *, email: str, name: str | None, company: str | None, note: str | None
) -> None:
    # ON CONFLICT: asking twice (or two requests at once) keeps the first entry.
    conn.execute(
        pg_insert(_waitlist)
        .values(
            id=uuid.uuid4(),
            email=email,
            name=name,
            company=company,
            note=note,
            status=WaitlistStatus.WAITING,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["email"])
    )


def _iso(value: datetime | None) -> str | None:
    return iso_z(value) if value is not None else None


def _org_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "domain": row["domain"],
        "created_at": _iso(row["created_at"]),
    }


def _waitlist_json(row: Any) -> dict[str, Any]:
    return {
        "email": row["email"],
        "name": row["name"],
        "company": row["company"],
        "status": row["status"],
        "created_at": _iso(row["created_at"]),
        "invited_at": _iso(row["invited_at"]),
    }
