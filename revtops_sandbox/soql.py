"""A small SOQL parser: the subset connectors use, with Salesforce's error codes and messages.

Grammar (keywords case-insensitive)::

    SELECT (COUNT() | path {, path}) FROM name
      [WHERE cond] [ORDER BY path [ASC|DESC] [NULLS FIRST|LAST] {, ...}]
      [LIMIT n] [OFFSET n]
    cond    := unary {AND unary} | unary {OR unary}     -- mixing needs parentheses, as in SOQL
    unary   := NOT unary | '(' cond ')' | path op value | path [NOT] IN '(' value {, value} ')'
             | path LIKE 'pattern'
    value   := 'string' | number | TRUE | FALSE | NULL | 2024-01-01 | 2024-01-01T00:00:00Z
             | TODAY | YESTERDAY | TOMORROW | LAST_N_DAYS:n | NEXT_N_DAYS:n | N_DAYS_AGO:n

Datetime literals are unquoted; a quoted date compared with a date field is a type error that
`salesforce.py` reports, as Salesforce does. Parsing knows no schema: field names are checked
when the query is planned against an object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from revtops_sandbox.company import ms_of

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),:])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_RELATIVE = {"TODAY", "YESTERDAY", "TOMORROW"}
_RELATIVE_N = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}
_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
    "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL",
}  # fmt: skip


class SOQLError(ValueError):
    """A query Salesforce would refuse: ``error_code`` is its errorCode, ``column`` 1-based."""

    def __init__(self, message: str, error_code: str = "MALFORMED_QUERY", column: int = 0) -> None:
        self.error_code = error_code
        self.column = column
        super().__init__(message)

    def salesforce_message(self, query: str) -> str:
        """The message as Salesforce formats it: the query, a caret, the row and column."""
        if not self.column:
            return str(self)
        caret = " " * (self.column - 1) + "^"
        return f"\n{query}\n{caret}\nERROR at Row:1:Column:{self.column}\n{self}"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int  # 0-based offset in the query

    @property
    def upper(self) -> str:
        return self.text.upper()


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str  # string | number | boolean | null | date | datetime | relative
    value: Any  # str | float | bool | None | day (int) | ms (int) | (keyword, n)
    pos: int


@dataclass(frozen=True, slots=True)
class Comparison:
    path: str
    op: str  # = != < <= > >= IN NOT IN LIKE
    values: tuple[Literal, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND | OR | NOT
    items: tuple[Condition, ...]


Condition = Comparison | BoolOp


@dataclass(frozen=True, slots=True)
class OrderItem:
    path: str
    descending: bool
    nulls_last: bool
    pos: int


@dataclass(slots=True)
class Query:
    object_name: str
    object_pos: int
    fields: list[tuple[str, int]]  # (path as written, position)
    count_only: bool = False
    where: Condition | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            bad = text[pos]
            if bad == "'":
                raise SOQLError("unterminated string literal", column=pos + 1)
            raise SOQLError(f"unexpected token: '{bad}'", column=pos + 1)
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def parse(text: str) -> Query:
    """Parse one SOQL statement or raise SOQLError (MALFORMED_QUERY)."""
    if not text.strip():
        raise SOQLError("A query string has to be specified")
    return _Parser(tokenize(text), len(text)).query()


class _Parser:
    def __init__(self, tokens: list[Token], end: int) -> None:
        self.tokens = tokens
        self.i = 0
        self.end = end

    # -- token helpers ----------------------------------------------------------------------

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise SOQLError("unexpected end of query", column=self.end + 1)
        self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "ident" and tok.upper in words

    def expect_keyword(self, word: str) -> Token:
        tok = self.next()
        if tok.kind != "ident" or tok.upper != word:
            raise SOQLError(f"unexpected token: '{tok.text}'", column=tok.pos + 1)
        return tok

    def expect_punct(self, ch: str) -> Token:
        tok = self.next()
        if tok.text != ch:
            raise SOQLError(f"unexpected token: '{tok.text}'", column=tok.pos + 1)
        return tok

    def path(self) -> Token:
        tok = self.next()
        if tok.kind != "ident" or tok.upper in _KEYWORDS:
            raise SOQLError(f"unexpected token: '{tok.text}'", column=tok.pos + 1)
        return tok

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or not tok.text.isdigit():
            raise SOQLError(f"unexpected token: '{tok.text}'", column=tok.pos + 1)
        return int(tok.text)

    # -- grammar ------------------------------------------------------------------------------

    def query(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[tuple[str, int]] = []
        count_only = False
        if self.at_keyword("COUNT") and (p := self.peek(1)) is not None and p.text == "(":
            self.next()
            self.expect_punct("(")
            self.expect_punct(")")
            count_only = True
        else:
            while True:
                tok = self.path()
                fields.append((tok.text, tok.pos))
                if self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                    self.next()
                    continue
                break
        self.expect_keyword("FROM")
        obj = self.path()
        q = Query(obj.text, obj.pos, fields, count_only)
        if self.at_keyword("WHERE"):
            self.next()
            q.where = self.condition()
        if self.at_keyword("ORDER"):
            self.next()
            self.expect_keyword("BY")
            q.order_by = self.order_items()
        if self.at_keyword("LIMIT"):
            self.next()
            q.limit = self.integer()
        if self.at_keyword("OFFSET"):
            self.next()
            q.offset = self.integer()
        rest = self.peek()
        if rest is not None:
            raise SOQLError(f"unexpected token: '{rest.text}'", column=rest.pos + 1)
        return q

    def order_items(self) -> list[OrderItem]:
        items: list[OrderItem] = []
        while True:
            tok = self.path()
            desc = False
            if self.at_keyword("ASC", "DESC"):
                desc = self.next().upper == "DESC"
            nulls_last = False
            if self.at_keyword("NULLS"):
                self.next()
                word = self.next()
                if word.upper not in ("FIRST", "LAST"):
                    raise SOQLError(f"unexpected token: '{word.text}'", column=word.pos + 1)
                nulls_last = word.upper == "LAST"
            items.append(OrderItem(tok.text, desc, nulls_last, tok.pos))
            if self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.next()
                continue
            return items

    def condition(self) -> Condition:
        first = self.unary()
        items = [first]
        joiner: str | None = None
        while self.at_keyword("AND", "OR"):
            tok = self.next()
            if joiner is not None and tok.upper != joiner:
                raise SOQLError(f"unexpected token: '{tok.text}'", column=tok.pos + 1)
            joiner = tok.upper
            items.append(self.unary())
        return first if joiner is None else BoolOp(joiner, tuple(items))

    def unary(self) -> Condition:
        if self.at_keyword("NOT"):
            self.next()
            return BoolOp("NOT", (self.unary(),))
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.next()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        field_tok = self.path()
        tok = self.next()
        if tok.kind == "op":
            op = "!=" if tok.text == "<>" else tok.text
            return Comparison(field_tok.text, op, (self.literal(),), field_tok.pos)
        word = tok.upper if tok.kind == "ident" else ""
        if word == "NOT" and self.at_keyword("IN"):
            self.next()
            return Comparison(field_tok.text, "NOT IN", self.literal_list(), field_tok.pos)
        if word == "IN":
            return Comparison(field_tok.text, "IN", self.literal_list(), field_tok.pos)
        if word == "LIKE":
            lit = self.literal()
            if lit.kind != "string":
                raise SOQLError("LIKE needs a quoted pattern", column=lit.pos + 1)
            return Comparison(field_tok.text, "LIKE", (lit,), field_tok.pos)
        raise SOQLError(f"unexpected token: '{tok.text}'", column=tok.pos + 1)

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect_punct("(")
        values = [self.literal()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.next()
            values.append(self.literal())
        self.expect_punct(")")
        return tuple(values)

    def literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "string":
            return Literal("string", _unescape(tok.text[1:-1]), tok.pos)
        if tok.kind == "number":
            return Literal("number", float(tok.text), tok.pos)
        if tok.kind == "date":
            return Literal("date", _day(tok), tok.pos)
        if tok.kind == "datetime":
            return Literal("datetime", _datetime_ms(tok), tok.pos)
        if tok.kind == "ident":
            word = tok.upper
            if word in ("TRUE", "FALSE"):
                return Literal("boolean", word == "TRUE", tok.pos)
            if word == "NULL":
                return Literal("null", None, tok.pos)
            if word in _RELATIVE:
                return Literal("relative", (word, 0), tok.pos)
            if word in _RELATIVE_N:
                self.expect_punct(":")
                return Literal("relative", (word, self.integer()), tok.pos)
        raise SOQLError(f"unexpected token: '{tok.text}'", column=tok.pos + 1)


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), s)


def _day(tok: Token) -> int:
    try:
        d = datetime.strptime(tok.text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise SOQLError(f"invalid date: {tok.text}", column=tok.pos + 1) from exc
    return ms_of(d) // 86_400_000


def _datetime_ms(tok: Token) -> int:
    text = tok.text.replace("Z", "+00:00")
    if text[-5] in "+-" and ":" not in text[-5:]:  # +0000 -> +00:00
        text = text[:-2] + ":" + text[-2:]
    try:
        return ms_of(datetime.fromisoformat(text))
    except ValueError as exc:
        raise SOQLError(f"invalid date time: {tok.text}", column=tok.pos + 1) from exc
