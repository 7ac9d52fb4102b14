"""The sync's JSON codec spells every payload exactly as the standard library did.

The upsert compares stored ``raw`` text with the incoming one (DuckDB keeps JSON verbatim), so
one different byte would make a re-sync rewrite an unchanged row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from revtops_kernel import jsoncodec
from revtops_kernel.jsoncodec import _MAYBE_SMALL_FLOAT, _maybe_small_float, dumps_sorted, loads


def stdlib(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past orjson's 64 bits too
    finite_floats,
    st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False),  # orjson's other spellings
    st.text(),  # any code point: non-ASCII, DEL, control characters, NUL, surrogates' partners
    st.sampled_from(["one-time", "0.00001", "2e-5", "café", "\x7f", "\u2028", "a\x00b"]),
)
payloads = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.text(max_size=8), inner, max_size=6),
    ),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(payloads)
def test_dumps_sorted_is_the_standard_librarys_text(value: Any) -> None:
    assert dumps_sorted(value) == stdlib(value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(), scalars, max_size=4))  # one key type: json sorts them
def test_non_string_keys_are_spelled_like_the_standard_library(value: dict[Any, Any]) -> None:
    assert dumps_sorted(value) == stdlib(value)


@dataclass
class Point:
    x: int


def test_values_json_cannot_hold_go_through_str_as_before() -> None:
    value = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # str(): a space, not orjson's T
        "day": date(2026, 1, 2),
        "amount": Decimal("12.50"),
        "point": Point(1),  # orjson would serialize a dataclass as an object
        "tuple": (1, 2),
    }
    assert dumps_sorted(value) == stdlib(value)
    assert '"at":"2026-01-02 03:04:05+00:00"' in dumps_sorted(value)


@settings(max_examples=500, deadline=None)
@given(payloads)
def test_loads_gives_the_standard_librarys_values(value: Any) -> None:
    text = stdlib(value)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


def test_loads_accepts_what_only_the_standard_library_reads() -> None:
    assert math.isnan(loads(b'{"a": NaN}')["a"])
    big = 123456789012345678901234567890
    assert loads(b'{"big": %d}' % big)["big"] == big  # orjson would give a float


@given(st.binary(max_size=24) | st.text(alphabet="0123456789e-.a:,[", max_size=24).map(str.encode))
@settings(max_examples=300, deadline=None)
def test_the_small_float_scan_finds_what_its_expression_finds(data: bytes) -> None:
    assert _maybe_small_float(data) is (_MAYBE_SMALL_FLOAT.search(data) is not None)


def test_ids_with_digit_e_dash_in_strings_are_not_dumped_again(monkeypatch: Any) -> None:
    """A HubSpot call's disposition is a GUID (``...-4f6e-bf70-...``): ``6e-`` in a string is
    no number, and the payload keeps orjson's text; a small float beside it still does not."""
    value = {"hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7", "n": [1, "9e-"]}
    expected = stdlib(value)
    monkeypatch.setattr(jsoncodec, "_stdlib", lambda value: "dumped by the standard library")
    assert dumps_sorted(value) == expected
    for small in (1e-7, -2.5e-5, [0.00001]):
        assert dumps_sorted({**value, "x": small}) == "dumped by the standard library"


def test_non_ascii_and_del_are_escaped_in_orjsons_output(monkeypatch: Any) -> None:
    value = {
        "é": "café ☕ 😀 \x7f",
        "e": ["ü", "\u2028", "\U0010ffff", "\U00010000", "\ud7ff", "\ue000"],
        "z": "a\x7fb",
        "Z": {"ñ": 1, "n": "日本語", "😀": [1.5, None, True]},
        "\x7f": "del key",
    }
    expected = stdlib(value)

    def refused(value: Any) -> str:
        raise AssertionError("dumped by the standard library")

    # Escaped from orjson's bytes, not dumped again by json.dumps.
    monkeypatch.setattr(jsoncodec, "_stdlib", refused)
    assert dumps_sorted(value) == expected
    assert dumps_sorted({"a": "\x7f"}) == '{"a":"\\u007f"}'
