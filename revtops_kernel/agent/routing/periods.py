"""Periods in a question ("this quarter", "last month", "Q3", "in 2026", "the next 30 days",
"YTD") resolved to inclusive date windows, from the user's local "today"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "couple": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
    "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "sixty": 60, "ninety": 90,
}  # fmt: skip
NUMBER = r"(\d{1,4}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
UNIT_DAYS = {"day": 1, "week": 7, "fortnight": 14, "month": 30, "quarter": 91, "year": 365}
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_MONTH_ABBR = {m[:3]: i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}


def number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBER_WORDS[text]


@dataclass(frozen=True)
class Period:
    """An inclusive window; ``rolling_days`` is set for "the last N days" (a look-back length)."""

    start: date
    end: date
    text: str
    span: tuple[int, int]
    rolling_days: int | None = None
    forward: bool = False  # a rolling window ahead of today ("the next 30 days")


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, _month_length(year, month + 1)))


def _month_length(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _month(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, _month_length(year, month))


def _quarter(year: int, quarter: int) -> tuple[date, date]:
    start = date(year, 3 * quarter - 2, 1)
    return start, add_months(start, 3) - timedelta(days=1)


def _calendar(unit: str, offset: int, today: date) -> tuple[date, date]:
    if unit == "week":  # weeks start on Monday (ISO)
        start = today - timedelta(days=today.weekday()) + timedelta(weeks=offset)
        return start, start + timedelta(days=6)
    if unit == "month":
        first = add_months(today.replace(day=1), offset)
        return _month(first.year, first.month)
    if unit == "quarter":
        first = add_months(quarter_start(today), 3 * offset)
        return _quarter(first.year, (first.month - 1) // 3 + 1)
    return date(today.year + offset, 1, 1), date(today.year + offset, 12, 31)


_OFFSETS = {"this": 0, "current": 0, "last": -1, "previous": -1, "prior": -1, "next": 1,
            "coming": 1, "upcoming": 1}  # fmt: skip
_UNIT = r"(day|week|fortnight|month|quarter|qtr|year)s?"
_ROLLING = re.compile(
    r"\b(?:in |over |within |during |for )?(?:the )?(next|last|past|previous|coming|upcoming) "
    + NUMBER + r" " + _UNIT + r"\b"
)  # fmt: skip
_CALENDAR = re.compile(
    r"\b(?:in |for |during |over )?(?:the )?(this|current|last|previous|prior|next|coming|upcoming)"
    r" (week|month|quarter|qtr|year|fiscal year|fy)\b"
)
_TO_DATE = re.compile(
    r"\b(?:so far )?(?:this )?(qtd|mtd|ytd|quarter to date|month to date|year to date)\b"
    r"(?: so far)?"
)
_QUARTER = re.compile(
    r"\b(?:in |for |during )?(?:fy ?)?(?:q([1-4])|(first|second|third|fourth|1st|2nd|3rd|4th) "
    r"quarter)(?: (?:of )?(?:fy ?)?(\d{4}|'\d{2}))?\b"
)
_MONTH = re.compile(
    r"\b(in |for |during |since |of )?(" + "|".join(MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|"
    r"sept|sep|oct|nov|dec)\b(?: (\d{4}))?"
)
_YEAR = re.compile(r"\b(?:in |for |during |of |since )?(20\d{2})\b")
_UNTIL_END = re.compile(
    r"\b(?:by|before|until|through|thru) (?:the )?end of (?:the |this )?(month|quarter|year)\b"
    r"|\b(?:by|before) (month|quarter|year) end\b"
)
_TODAY = re.compile(r"\b(today|tomorrow|yesterday)\b")
_ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3,
            "4th": 4}  # fmt: skip


def find_periods(text: str, today: date) -> list[Period]:
    """Every period in normalized ``text``, left to right; spans do not overlap."""
    found: list[Period] = []
    taken: list[tuple[int, int]] = []

    def add(match: re.Match[str], start: date, end: date, **extra: object) -> None:
        span = match.span()
        if any(span[0] < b and a < span[1] for a, b in taken):
            return
        taken.append(span)
        found.append(Period(start, end, match.group(0).strip(), span, **extra))  # type: ignore[arg-type]

    for match in _ROLLING.finditer(text):
        direction, count, unit = match.group(1), number(match.group(2)), match.group(3)
        unit = "quarter" if unit == "qtr" else unit
        if unit in ("month", "quarter", "year"):
            months = count * {"month": 1, "quarter": 3, "year": 12}[unit]
            back, ahead = add_months(today, -months), add_months(today, months)
        else:
            back = today - timedelta(days=count * UNIT_DAYS[unit])
            ahead = today + timedelta(days=count * UNIT_DAYS[unit])
        if direction in ("next", "coming", "upcoming"):
            add(match, today, ahead, forward=True)
        else:
            add(match, back, today, rolling_days=(today - back).days)
    for match in _UNTIL_END.finditer(text):
        unit = match.group(1) or match.group(2)
        add(match, today, _calendar(unit, 0, today)[1])
    for match in _TO_DATE.finditer(text):
        unit = {"q": "quarter", "m": "month", "y": "year"}[match.group(1)[0]]
        add(match, _calendar(unit, 0, today)[0], today)
    for match in _CALENDAR.finditer(text):
        unit = {"qtr": "quarter", "fiscal year": "year", "fy": "year"}.get(
            match.group(2), match.group(2)
        )
        add(match, *_calendar(unit, _OFFSETS[match.group(1)], today))
    for match in _QUARTER.finditer(text):
        quarter = int(match.group(1)) if match.group(1) else _ORDINAL[match.group(2)]
        year = _year(match.group(3), today)
        add(match, *_quarter(year, quarter))
    for match in _MONTH.finditer(text):
        name, year_text, lead = match.group(2), match.group(3), (match.group(1) or "").strip()
        if name in ("may", "mar", "dec", "sep") and not (lead or year_text):
            continue  # "may" the verb, "mar"/"dec"/"sep" as words: a month only with a cue
        month = MONTHS.index(name) + 1 if name in MONTHS else _MONTH_ABBR[name]
        start, end = _month(int(year_text) if year_text else today.year, month)
        if lead == "since":
            end = today
        add(match, start, end)
    for match in _YEAR.finditer(text):
        year = int(match.group(1))
        since = match.group(0).startswith("since")
        add(match, date(year, 1, 1), today if since else date(year, 12, 31))
    for match in _TODAY.finditer(text):
        offset = {"today": 0, "tomorrow": 1, "yesterday": -1}[match.group(1)]
        day = today + timedelta(days=offset)
        add(match, day, day)
    return sorted(found, key=lambda p: p.span)


def _year(text: str | None, today: date) -> int:
    if not text:
        return today.year
    return 2000 + int(text[1:]) if text.startswith("'") else int(text)
