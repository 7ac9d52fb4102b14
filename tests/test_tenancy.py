"""Who gets in: organizations by work domain, members, the waitlist and invitations."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from revtops_kernel.email_domains import is_consumer_domain, normalize_email
from revtops_kernel.store.database import Database
from revtops_kernel.store.locks import lock_admission
from revtops_kernel.tenancy import (
    TenancyError,
    admit,
    create_organization,
    invite,
    join_waitlist,
    members,
    organization_by_domain,
    waitlist,
)


@pytest.mark.parametrize(
    "domain", ["gmail.com", "GoogleMail.com", "yahoo.co.uk", "hotmail.fr", "gmx.de", "icloud.com"]
)
def test_consumer_domains(domain: str) -> None:
    assert is_consumer_domain(domain)


@pytest.mark.parametrize("domain", ["acme.com", "mail.acme.com", "yahoo-partners.io"])
def test_work_domains(domain: str) -> None:
    assert not is_consumer_domain(domain)


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "a@@b.com", "a b@c.com", "x@-bad.com"])
def test_bad_emails_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match="not an email address"):
        normalize_email(bad)


def test_consumer_mailbox_is_refused_and_not_waitlisted(db: Database) -> None:
    admission = admit(db, email="Pat@Gmail.com", subject="sub-1")
    assert admission.status == "consumer_domain"
    assert "work email" in admission.message
    assert waitlist(db) == []


def test_unknown_domain_goes_to_the_waitlist_once(db: Database) -> None:
    first = admit(db, email="ana@newco.io", subject="sub-ana", name="Ana")
    again = admit(db, email="ana@newco.io", subject="sub-ana")
    assert first.status == again.status == "waitlisted"
    assert [entry["email"] for entry in waitlist(db)] == ["ana@newco.io"]
    assert first.member is None


def test_invited_user_founds_the_org_and_colleagues_join_it(db: Database) -> None:
    join_waitlist(db, email="ana@newco.io", name="Ana", company="NewCo", note="pipeline reviews")
    invite(db, "ana@newco.io")
    founder = admit(db, email="ana@newco.io", subject="sub-ana", name="Ana")
    assert founder.status == "admitted" and founder.member is not None
    assert founder.member.role == "admin"
    org = organization_by_domain(db, "newco.io")
    assert org is not None and org["id"] == founder.member.organization_id == "newco-io"
    assert waitlist(db)[0]["status"] == "joined"

    colleague = admit(db, email="bo@NEWCO.io", subject="sub-bo")
    assert colleague.status == "admitted" and colleague.member is not None
    assert colleague.member.organization_id == "newco-io" and colleague.member.role == "member"
    assert [m.email for m in members(db, "newco-io")] == ["ana@newco.io", "bo@newco.io"]

    returning = admit(db, email="ana@newco.io", subject="sub-ana")
    assert returning.member is not None and returning.member.id == founder.member.id


def test_existing_org_by_domain_admits_new_members(db: Database) -> None:
    org = create_organization(db, name="Acme", domain="acme.com")
    assert org["id"] == "acme-com"
    admission = admit(db, email="rep@acme.com", subject="s")
    assert admission.status == "admitted" and admission.member is not None
    assert admission.member.organization_id == "acme-com"
    assert admission.member.role == "admin"  # the first to join runs it
    second = admit(db, email="rep2@acme.com", subject="s2")
    assert second.member is not None and second.member.role == "member"
    with pytest.raises(TenancyError, match="already uses the domain"):
        create_organization(db, name="Acme again", domain="acme.com")
    with pytest.raises(TenancyError, match="personal mailbox"):
        create_organization(db, name="Mine", domain="gmail.com")


def test_waitlist_validation_and_invite_errors(db: Database) -> None:
    with pytest.raises(TenancyError, match="not an email address"):
        join_waitlist(db, email="nope")
    with pytest.raises(TenancyError, match="note is longer"):
        join_waitlist(db, email="a@b.co", note="x" * 2001)
    with pytest.raises(TenancyError, match="not on the waitlist"):
        invite(db, "ghost@nowhere.io")
    entry = join_waitlist(db, email="A@B.co", name="A")
    assert entry["email"] == "a@b.co" and entry["status"] == "waiting"
    assert join_waitlist(db, email="a@b.co", name="Other")["name"] == "A"
    assert invite(db, "a@b.co")["status"] == "invited"
    assert invite(db, "a@b.co")["status"] == "invited"  # idempotent


# DuckDB has one writing process, whose writers take turns: the race is PostgreSQL's.
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_first_colleagues_signing_in_at_once_make_one_admin(db: Database) -> None:
    """App processes admit the first people of an organization at the same instant: the
    read-then-write of "is anyone here yet?" is serialized per domain, so one is the admin."""
    org = create_organization(db, name="Initrode", domain="initrode.com")["id"]
    start = threading.Barrier(8)

    def sign_in(n: int) -> None:
        start.wait()
        admit(db, email=f"person{n}@initrode.com", subject=f"subject-{n}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(sign_in, range(8)))
    roles = sorted(m.role for m in members(db, org))
    assert roles == ["admin"] + ["member"] * 7


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_sign_in_waits_for_another_of_its_domain(db: Database) -> None:
    create_organization(db, name="Initrode", domain="initrode.com")
    done = threading.Event()
    with db.begin() as held:
        lock_admission(held, "initrode.com")
        worker = threading.Thread(
            target=lambda: (admit(db, email="ann@initrode.com", subject="s-ann"), done.set()),
            daemon=True,
        )
        worker.start()
        assert not done.wait(0.5)  # held by the other sign-in's transaction
        admit_elsewhere = threading.Event()
        other = threading.Thread(
            target=lambda: (
                admit(db, email="bo@globex.com", subject="s-bo"),
                admit_elsewhere.set(),
            ),
            daemon=True,
        )
        other.start()
        assert admit_elsewhere.wait(10)  # another domain is not held up
    assert done.wait(10)
    worker.join()
    other.join()
