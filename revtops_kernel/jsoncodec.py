"""JSON on the sync's hot path: orjson, with the standard library's exact output kept.

A sync decodes every provider page and serializes every record's ``raw`` payload; with the
standard library those were ~40% of the sync's CPU (bench/README.md). orjson (Rust, one
dependency-free wheel) decodes ~1.3x and serializes sorted keys 5-7x faster.

``dumps_sorted`` must give byte for byte what ``json.dumps(sort_keys=True,
separators=(",", ":"), default=str)`` gave: DuckDB keeps JSON text verbatim and the upsert
compares ``raw`` to decide whether a row changed, so a different spelling of the same payload
would rewrite every row on the next sync. orjson differs from the standard library in a few
spellings only (checked by tests/test_jsoncodec.py against random payloads): it writes
non-ASCII and DEL unescaped, and floats below 1e-4 as ``1e-7`` or ``0.00001`` instead of
``1e-07``; it refuses integers beyond 64 bits and non-string keys. Non-ASCII and DEL, which can
only stand inside strings, are escaped in orjson's output as the standard library escapes them
(``\\u00e9``; a surrogate pair past U+FFFF); the other payloads (and any output that merely
looks like one) go through the standard library, so the text never changes.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Output orjson may spell differently from json.dumps: small floats (orjson 1e-7 / 0.00001,
# json 1e-07 / 1e-05) where a number may start. Strings containing the same bytes are merely
# sent the slow way.
_MAYBE_SMALL_FLOAT = re.compile(
    rb"(?:\A|[:,\[])-?(?:[0-9.]*[0-9]e-|0\.0000)"
)  # = _maybe_small_float
_DIGITS = frozenset(b"0123456789")
_MANTISSA = frozenset(b"0123456789.")
_MINUS = ord("-")
_BEFORE_NUMBER = frozenset(b":,[")  # what precedes a value in compact output
# 19 digits in a row may be an integer past 64 bits (or just a long string of digits). Found
# by mapping digits to "0" and the rest to " " (bytes.translate and ``in`` run at C speed; a
# regular expression scanning every position cost more than orjson's decoding).
_LONG_DIGITS = b"0" * 19
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))


def loads(data: bytes | str) -> Any:
    """``json.loads``, faster, with the same values: payloads orjson refuses (NaN) or reads
    differently (integers beyond 64 bits, which it turns into floats) use the standard library."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGITS in raw.translate(_DIGITS_AS_ZERO):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps_sorted(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)``, the same text."""
    try:
        data = orjson.dumps(value, default=str, option=_SORTED)
    except (orjson.JSONEncodeError, TypeError):
        return _stdlib(value)
    if _maybe_small_float(data):
        return _stdlib(value)
    if data.isascii():
        if b"\x7f" not in data:
            return data.decode("ascii")
        return data.decode("ascii").replace("\x7f", "\\u007f")
    # A name or a text with an accent (one CRM record in twenty): escaped here, not dumped again
    # by the standard library (5-10x orjson's time).
    text = data.decode("utf-8").encode("ascii", _ESCAPE_NON_ASCII).decode("ascii")
    return text.replace("\x7f", "\\u007f") if "\x7f" in text else text


def _escape_non_ascii(error: UnicodeError) -> tuple[str, int]:
    """The standard library's ``ensure_ascii`` spelling of the characters ``error`` covers."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    escaped = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{code:04x}")
    return "".join(escaped), error.end


_ESCAPE_NON_ASCII = "revtops-json-ascii"
codecs.register_error(_ESCAPE_NON_ASCII, _escape_non_ascii)


def _maybe_small_float(data: bytes) -> bool:
    """Whether ``data`` may hold a number orjson spells unlike the standard library (a float
    below 1e-4: ``1e-7``, ``0.00001``), by C-speed substring searches (a regular expression
    over every payload cost more than orjson). A hit counts only where a number can start in
    orjson's compact output (the payload's start, or after ``:``, ``,`` or ``[``, with its
    sign): ids such as HubSpot's call dispositions (``...-4f6e-bf70-...``) hold ``6e-`` in a
    string, and sent every call the slow way. A string that merely looks like such a number
    (``":1e-5"``) still goes the slow way, which gives the same text."""
    at = data.find(b"0.0000")
    while at != -1:
        if _number_starts(data, at):
            return True
        at = data.find(b"0.0000", at + 1)
    at = data.find(b"e-")
    while at != -1:
        if at and data[at - 1] in _DIGITS:
            start = at - 1
            while start and data[start - 1] in _MANTISSA:
                start -= 1
            if _number_starts(data, start):
                return True
        at = data.find(b"e-", at + 2)
    return False


def _number_starts(data: bytes, at: int) -> bool:
    """Whether a JSON number may start at ``at`` (or at its minus sign just before)."""
    if at and data[at - 1] == _MINUS:
        at -= 1
    return at == 0 or data[at - 1] in _BEFORE_NUMBER


def _stdlib(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
