"""Email addresses and their domains: which are work domains, which are consumer mailboxes.

A leaf module shared by sign-in (a consumer address cannot map to an organization) and identity
resolution (a consumer domain never resolves to an account).
"""

from __future__ import annotations

import re

# Free mailbox providers. A family with country variants (yahoo.co.uk, hotmail.fr...) is listed by
# its base name in CONSUMER_FAMILIES and matched on any suffix.
CONSUMER_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "hey.com",
        "fastmail.com",
        "tutanota.com",
        "qq.com",
        "163.com",
        "126.com",
        "mail.ru",
        "web.de",
        "t-online.de",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
    }
)
CONSUMER_FAMILIES: tuple[str, ...] = ("yahoo", "hotmail", "gmx", "ymail", "rocketmail", "libero")

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}$"
)


def normalize_email(email: str) -> str:
    """Lowercased and trimmed; raises ValueError naming the address if it is not one."""
    cleaned = email.strip().lower()
    if len(cleaned) > 254 or not _EMAIL.match(cleaned):
        raise ValueError(f"not an email address: {email!r}")
    return cleaned


def email_domain(email: str) -> str:
    """The domain part of a valid address, lowercase."""
    return normalize_email(email).rsplit("@", 1)[1]


def is_consumer_domain(domain: str) -> bool:
    """True for free mailbox providers: their users share a domain but not a company."""
    domain = domain.strip().lower().rstrip(".")
    if domain in CONSUMER_DOMAINS:
        return True
    first_label = domain.split(".", 1)[0]
    return first_label in CONSUMER_FAMILIES
