"""Quotas: what each rep is expected to close in a period, imported from a CSV file.

No CRM holds quotas, so they come from a file (``revtops quotas import FILE.csv``, or the web
app's upload through ``import_quotas``). A file has a header row and one quota per line:

    owner_email,quarter,amount,team
    ana@acme.com,2026-Q4,250000,West

``owner_email`` (or ``email``) and ``amount`` are required; the period is either ``quarter``
(``2026-Q4``, ``Q4 2026``, ``2026Q4``) or ``period_start`` and ``period_end`` (YYYY-MM-DD,
inclusive); ``team`` is optional. An import is all or nothing: every problem of the file is
reported at once (line and column), an email that matches no owner of the organization is
named, and nothing is stored until the whole file is valid. A quota is keyed by
(owner, period start): importing it again updates it. A rep's periods must not overlap (a
quarter and one of its months would count twice); ``replace=True`` first deletes the owner's
quotas that overlap the file's periods.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from revtops_kernel.errors import QuotaImportError
from revtops_kernel.store.database import Database
from revtops_kernel.store.schema import metadata

MAX_AMOUNT = Decimal("9999999999999999.99")  # Numeric(18, 2)
MAX_ROWS = 10_000
_COLUMNS = {
    "owner_email": "owner_email",
    "email": "owner_email",
    "amount": "amount",
    "quota": "amount",
    "quarter": "quarter",
    "period_start": "period_start",
    "period_end": "period_end",
    "team": "team",
}
_QUARTER = re.compile(r"^(?:(\d{4})\s*-?\s*q([1-4])|q([1-4])\s*[- ]?\s*(\d{4}))$", re.IGNORECASE)
_AMOUNT_NOISE = re.compile(r"[\s,_$€£]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class QuotaRow:
    """One quota of a file, validated; ``line`` is its line in the file (the header is 1)."""

    owner_email: str
    period_start: date
    period_end: date
    amount: Decimal
    team: str | None
    line: int


@dataclass(frozen=True)
class StoredQuota:
    owner_email: str
    owner: str | None  # the owner's full name, when an owner has that email
    team: str | None
    period_start: date
    period_end: date
    amount: Decimal


@dataclass(frozen=True)
class QuotaImport:
    """What an import did: quotas added, updated (same owner and start) and replaced."""

    source: str
    inserted: int
    updated: int
    replaced: int

    @property
    def imported(self) -> int:
        return self.inserted + self.updated


def quarter_bounds(text: str) -> tuple[date, date]:
    """``2026-Q4`` (or ``Q4 2026``, ``2026Q4``) → its first and last day. ValueError if not."""
    match = _QUARTER.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a quarter; write it like 2026-Q4")
    year = int(match.group(1) or match.group(4))
    quarter = int(match.group(2) or match.group(3))
    start = date(year, 3 * quarter - 2, 1)
    following = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, following - timedelta(days=1)


def parse_quotas(text: str, *, source: str = "quotas.csv") -> list[QuotaRow]:
    """Every quota of a CSV text, validated; QuotaImportError lists all the file's problems."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise QuotaImportError(source, ["the file is empty; it needs a header row"])
    columns, problems = _header(header)
    if problems:
        raise QuotaImportError(source, problems)
    rows: list[QuotaRow] = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) >= MAX_ROWS:
            problems.append(f"more than {MAX_ROWS:,} quotas; split the file")
            break
        if len(cells) != len(header):
            problems.append(f"line {line}: {len(cells)} cells, the header has {len(header)}")
            continue
        row = _row(dict(zip(columns, (c.strip() for c in cells), strict=True)), line, problems)
        if row is not None:
            rows.append(row)
    if not rows and not problems:
        problems.append("the file has a header but no quotas")
    problems += _overlaps(rows)
    if problems:
        raise QuotaImportError(source, problems)
    return rows


def _header(header: list[str]) -> tuple[list[str], list[str]]:
    columns = [cell.strip().lower().replace(" ", "_") for cell in header]
    problems = []
    unknown = [c for c in columns if c not in _COLUMNS]
    if unknown:
        problems.append(
            f"line 1: unknown column(s) {', '.join(repr(c) for c in unknown)}; the columns are "
            "owner_email, amount, quarter or period_start and period_end, team (optional)"
        )
    canonical = [_COLUMNS.get(c, c) for c in columns]
    duplicated = sorted({c for c in canonical if canonical.count(c) > 1})
    if duplicated:
        problems.append(f"line 1: column(s) given twice: {', '.join(duplicated)}")
    present = set(canonical)
    for required in ("owner_email", "amount"):
        if required not in present:
            problems.append(f"line 1: no {required} column")
    has_range = {"period_start", "period_end"} <= present
    if "quarter" in present and present & {"period_start", "period_end"}:
        problems.append("line 1: give either a quarter column or period_start and period_end")
    elif "quarter" not in present and not has_range:
        problems.append("line 1: no period: add a quarter column or period_start and period_end")
    return canonical, problems


def _row(cells: dict[str, str], line: int, problems: list[str]) -> QuotaRow | None:
    found = len(problems)
    email = cells["owner_email"].lower()
    if not _EMAIL.match(email):
        given = cells["owner_email"]
        problems.append(f"line {line}, column owner_email: {given!r} is not an email")
    amount = _amount(cells["amount"], line, problems)
    start = end = None
    if "quarter" in cells:
        try:
            start, end = quarter_bounds(cells["quarter"])
        except ValueError as exc:
            problems.append(f"line {line}, column quarter: {exc}")
    else:
        start = _day(cells["period_start"], "period_start", line, problems)
        end = _day(cells["period_end"], "period_end", line, problems)
        if start and end and end < start:
            problems.append(f"line {line}: period_end {end} is before period_start {start}")
    if len(problems) > found or start is None or end is None or amount is None:
        return None
    return QuotaRow(email, start, end, amount, cells.get("team") or None, line)


def _amount(text: str, line: int, problems: list[str]) -> Decimal | None:
    where = f"line {line}, column amount"
    try:
        amount = Decimal(_AMOUNT_NOISE.sub("", text))
    except InvalidOperation:
        problems.append(f"{where}: {text!r} is not a number")
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        problems.append(f"{where}: {text!r} must be between 0 and {MAX_AMOUNT:,}")
        return None
    if amount != amount.quantize(Decimal("0.01")):
        problems.append(f"{where}: {text!r} has more than two decimals")
        return None
    return amount.quantize(Decimal("0.01"))


def _day(text: str, column: str, line: int, problems: list[str]) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"line {line}, column {column}: {text!r} is not a date; use YYYY-MM-DD")
        return None


def _overlaps(rows: list[QuotaRow]) -> list[str]:
    problems = []
    by_owner: dict[str, list[QuotaRow]] = {}
    for row in rows:
        by_owner.setdefault(row.owner_email, []).append(row)
    for email, mine in by_owner.items():
        mine.sort(key=lambda r: (r.period_start, r.line))
        for earlier, later in itertools.pairwise(mine):
            if later.period_start <= earlier.period_end:
                problems.append(
                    f"lines {earlier.line} and {later.line}: {email}'s periods overlap "
                    f"({earlier.period_start}..{earlier.period_end} and "
                    f"{later.period_start}..{later.period_end})"
                )
    return problems


def import_quotas(
    db: Database,
    org: str,
    data: str | bytes | Path,
    *,
    source: str | None = None,
    replace: bool = False,
    now: datetime | None = None,
) -> QuotaImport:
    """Import a quota CSV (its text, bytes as uploaded, or a path) for ``org``, all or nothing.

    The web app's upload calls this with the file's bytes. Raises QuotaImportError naming every
    problem: bad cells, unknown owner emails, periods overlapping each other or stored ones."""
    name, text = _read(data, source)
    rows = parse_quotas(text, source=name)
    stamp = now or datetime.now(UTC)
    table = metadata.tables["quotas"]
    with db.begin() as conn:
        known = set(
            conn.execute(
                select(func.lower(metadata.tables["owners"].c.email)).where(
                    metadata.tables["owners"].c.organization_id == org,
                    metadata.tables["owners"].c.deleted_at.is_(None),
                )
            ).scalars()
        )
        unknown = sorted({r.owner_email for r in rows} - known)
        if unknown:
            lines = {e: [r.line for r in rows if r.owner_email == e] for e in unknown}
            raise QuotaImportError(
                name,
                [
                    f"no owner in organization {org!r} has the email {e} (line(s) "
                    f"{', '.join(map(str, lines[e]))}); sync the CRM first or fix the email"
                    for e in unknown
                ],
                tuple(unknown),
            )
        stored = _stored(conn, org, {r.owner_email for r in rows})
        clashes = [(r, s) for r in rows for s in stored if _clash(r, s)]
        replaced = 0
        if clashes and replace:
            for s in {s for _, s in clashes}:
                conn.execute(delete(table).where(table.c.id == s[0]))
                replaced += 1
        elif clashes:
            raise QuotaImportError(
                name,
                [
                    f"line {r.line}: {r.owner_email}'s period {r.period_start}..{r.period_end} "
                    f"overlaps the stored quota {s[2]}..{s[3]}; import with --replace to "
                    "replace it"
                    for r, s in clashes
                ],
            )
        inserted, updated = _write(conn, org, rows, stamp)
    return QuotaImport(name, inserted, updated, replaced)


def _read(data: str | bytes | Path, source: str | None) -> tuple[str, str]:
    if isinstance(data, Path):
        name = source or str(data)
        try:
            raw = data.read_bytes()
        except OSError as exc:
            raise QuotaImportError(name, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    elif isinstance(data, bytes):
        name, raw = source or "uploaded file", data
    else:
        return source or "quotas", data
    try:
        return name, raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text (byte {exc.start}); save it as CSV UTF-8"
        raise QuotaImportError(name, [problem]) from exc


StoredKey = tuple[object, str, date, date]  # id, owner_email, period_start, period_end


def _stored(conn: Connection, org: str, emails: set[str]) -> list[StoredKey]:
    t = metadata.tables["quotas"]
    found = conn.execute(
        select(t.c.id, t.c.owner_email, t.c.period_start, t.c.period_end).where(
            t.c.organization_id == org, t.c.owner_email.in_(sorted(emails))
        )
    )
    return [(r.id, r.owner_email, r.period_start, r.period_end) for r in found]


def _clash(row: QuotaRow, stored: StoredKey) -> bool:
    """A stored quota of the same owner that overlaps ``row`` and is not the one it updates."""
    _, email, start, end = stored
    same_key = start == row.period_start
    overlaps = start <= row.period_end and row.period_start <= end
    return email == row.owner_email and overlaps and not same_key


def _write(
    conn: Connection, org: str, rows: Iterable[QuotaRow], stamp: datetime
) -> tuple[int, int]:
    t = metadata.tables["quotas"]
    inserted = updated = 0
    for row in rows:
        values = {
            "team": row.team,
            "period_end": row.period_end,
            "amount": row.amount,
            "updated_at": stamp,
        }
        key = and_(
            t.c.organization_id == org,
            t.c.owner_email == row.owner_email,
            t.c.period_start == row.period_start,
        )
        if conn.execute(update(t).where(key).values(**values)).rowcount:
            updated += 1
            continue
        conn.execute(
            insert(t).values(
                organization_id=org,
                owner_email=row.owner_email,
                period_start=row.period_start,
                created_at=stamp,
                **values,
            )
        )
        inserted += 1
    return inserted, updated


def list_quotas(
    db: Database, org: str, *, start: date | None = None, end: date | None = None
) -> list[StoredQuota]:
    """The organization's quotas (overlapping ``start``..``end`` when given), by period and
    owner, with the owner's name."""
    t, owners = metadata.tables["quotas"], metadata.tables["owners"]
    names = (
        select(
            func.lower(owners.c.email).label("email"), func.max(owners.c.full_name).label("name")
        )
        .where(owners.c.organization_id == org, owners.c.deleted_at.is_(None))
        .group_by(func.lower(owners.c.email))
        .subquery()
    )
    query = (
        select(t, names.c.name)
        .outerjoin(names, names.c.email == t.c.owner_email)
        .where(t.c.organization_id == org)
        .order_by(t.c.period_start, t.c.team, t.c.owner_email)
    )
    if start is not None:
        query = query.where(t.c.period_end >= start)
    if end is not None:
        query = query.where(t.c.period_start <= end)
    with db.connect() as conn:
        return [
            StoredQuota(r.owner_email, r.name, r.team, r.period_start, r.period_end, r.amount)
            for r in conn.execute(query)
        ]
