"""Numbers in a question: look-back lengths ("no activity in 2 weeks", "stuck more than 45
days"), "top 5", "at least 3 meetings", "only one contact"."""

from __future__ import annotations

import re
from dataclasses import dataclass

from revtops_kernel.agent.routing.periods import NUMBER, UNIT_DAYS, number


@dataclass(frozen=True)
class Quantity:
    kind: str  # "days", "limit", "min_meetings", "max_contacts"
    value: int
    span: tuple[int, int]


# "more than 45 days" is 46 days or more: the queries compare with >=.
_STRICT = r"(more than|over|longer than|greater than|beyond|>|at least|minimum of|min|\+)"
_DURATION = re.compile(
    r"\b(?:"
    + _STRICT
    + r" )?"
    + NUMBER
    + r" ?(\+ )?(day|week|fortnight|month|year)s?( or more| plus)?"
)
_TOP = re.compile(r"\b(?:top|best|first|leading) " + NUMBER + r"\b")
_MEETINGS = re.compile(r"\b(?:" + _STRICT + r" )?" + NUMBER + r" ?(\+ )?(?:or more )?meetings?\b")
_TIMES_MET = re.compile(
    r"\b(?:" + _STRICT + r" )?(once|twice|" + NUMBER[1:-1] + r" times)\b"
)  # "met with at least twice"
_CONTACTS = re.compile(
    r"\b(no|zero|only|just|a single|only a single|only one|just one|fewer than|less than|"
    r"under|at most|max(?:imum)?(?: of)?|one)(?: " + NUMBER + r")?(?: or (?:fewer|less))? "
    r"(?:engaged |customer )?(contacts?|people|persons?|stakeholders?|buyers?|champions?)\b"
)
_NOBODY = re.compile(
    r"\b(?:(?:haven't|have not|hasn't|has not|not|never) (?:yet )?(?:engaged|talked to|spoken to|"
    r"spoke to|reached|contacted) (?:with )?(?:anyone|anybody|any contacts?)|no one engaged|"
    r"nobody engaged)\b"
)  # "deals where we haven't engaged anyone": no contact engaged
_AT_MOST = re.compile(r"\b" + NUMBER + r" or (?:fewer|less) (contacts?|people|stakeholders?)\b")


def find_quantities(text: str, taken: list[tuple[int, int]]) -> list[Quantity]:
    """Quantities in normalized ``text`` outside the ``taken`` spans (periods)."""
    found: list[Quantity] = []
    spans = list(taken)

    def free(span: tuple[int, int]) -> bool:
        return not any(span[0] < b and a < span[1] for a, b in spans)

    def add(kind: str, value: int, span: tuple[int, int]) -> None:
        spans.append(span)
        found.append(Quantity(kind, value, span))

    for match in _NOBODY.finditer(text):
        add("max_contacts", 0, match.span())
    for match in _AT_MOST.finditer(text):
        if free(match.span()):
            add("max_contacts", number(match.group(1)), match.span())
    for match in _CONTACTS.finditer(text):
        if not free(match.span()):
            continue
        cue, count = match.group(1), match.group(2)
        if cue in ("no", "zero"):
            value = 0
        elif cue in ("fewer than", "less than", "under"):
            value = number(count or "two") - 1
        else:
            value = number(count) if count else 1
        add("max_contacts", max(value, 0), match.span())
    for match in _MEETINGS.finditer(text):
        if free(match.span()):
            value = number(match.group(2))
            strict = match.group(1) in ("more than", "over", "greater than", "beyond", ">")
            add("min_meetings", value + 1 if strict else value, match.span())
    if re.search(r"\b(?:meet|met|meeting)", text):
        for match in _TIMES_MET.finditer(text):
            if free(match.span()):
                said = match.group(2)
                value = {"once": 1, "twice": 2}.get(said) or number(said.split()[0])
                strict = match.group(1) in ("more than", "over", "greater than", "beyond", ">")
                add("min_meetings", value + 1 if strict else value, match.span())
    for match in _DURATION.finditer(text):
        if free(match.span()):
            days = number(match.group(2)) * UNIT_DAYS[match.group(4)]
            strict = match.group(1) in ("more than", "over", "longer than", "greater than",
                                        "beyond", ">")  # fmt: skip
            add("days", days + 1 if strict else days, match.span())
    for match in _TOP.finditer(text):
        if free(match.span()):
            add("limit", number(match.group(1)), match.span())
    return sorted(found, key=lambda q: q.span)


_DIGITS = re.compile(r"\$?\d[\d,.]*[km]?\b")


def stray_numbers(text: str, taken: list[tuple[int, int]]) -> list[str]:
    """Numbers no slot used ("deals over $50k"): the router cannot honour them."""
    return [
        m.group(0)
        for m in _DIGITS.finditer(text)
        if not any(m.start() < b and a < m.end() for a, b in taken)
    ]
