"""Text that crosses the REST boundary: one rule for every field, query argument and claim.

A field is a string, trimmed, at most ``max_length`` characters, without NUL, other C0/C1
control characters or lone surrogates (newlines and tabs only where a field allows several
lines). Anything else is refused with a message naming the field, so PostgreSQL (which refuses
NUL) and the model never see it and the client learns exactly what to fix.
"""

from __future__ import annotations

import re
from typing import Any

from revtops_kernel.email_domains import normalize_email
from revtops_kernel.tenancy import DOMAIN_PATTERN

# C0 and C1 controls, DEL, and UTF-16 surrogates (a JSON "\ud800" decodes to one on its own).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")

DEFAULT_MAX_LENGTH = 200
EMAIL_MAX_LENGTH = 254


class InvalidText(ValueError):
    """A field's value is not acceptable text; the message names the field and the problem."""


def clean_text(
    value: Any,
    name: str,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    multiline: bool = False,
) -> str:
    """The trimmed string, or `InvalidText` saying what is wrong with field ``name``."""
    if not isinstance(value, str):
        raise InvalidText(f"'{name}' must be a string")
    pattern = _CONTROL_MULTILINE if multiline else _CONTROL
    found = pattern.search(value)
    if found is not None:
        char = found.group()
        what = "surrogate" if "\ud800" <= char <= "\udfff" else "control"
        raise InvalidText(f"'{name}' must not contain {what} characters (found U+{ord(char):04X})")
    value = value.strip()
    if len(value) > max_length:
        raise InvalidText(f"'{name}' is longer than {max_length:,} characters")
    return value


def clean_email(value: Any, name: str = "email") -> str:
    """A normalized email address (local@domain.tld, at most 254 characters)."""
    text = clean_text(value, name, max_length=EMAIL_MAX_LENGTH)
    try:
        return normalize_email(text)
    except ValueError:
        raise InvalidText(f"'{name}' is not an email address") from None


def clean_domain(value: Any, name: str = "domain") -> str:
    """A lowercase DNS domain such as ``acme.com`` (no scheme, path, port or trailing dot)."""
    text = clean_text(value, name, max_length=253).lower()
    if not DOMAIN_PATTERN.match(text):
        raise InvalidText(f"'{name}' is not a domain name such as acme.com")
    return text
