"""The SOQL subset the Salesforce emulator understands: parse once, evaluate per record.

    SELECT f1, f2 FROM Object          (or SELECT COUNT() FROM Object: the rows' number only)
      [WHERE cond]     cond: f op literal | f [NOT] IN (lit, ...) | f LIKE 'a%' | NULL checks,
                             joined by AND / OR / NOT and parentheses
      [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
      [LIMIT n]

Literals: 'strings' (with SOQL backslash escapes), numbers, NULL, TRUE/FALSE, dates
(2024-05-01) and datetimes (2024-05-01T00:00:00Z, offsets, fractional seconds).
Reference: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any

from connector.kernel.timeutil import parse_datetime


class SoqlError(ValueError):
    """A query Salesforce would refuse; ``code`` is the errorCode it would send."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


# -- AST -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compare:
    field: str
    op: str  # = != < <= > >=
    value: Any


@dataclass(frozen=True)
class InList:
    field: str
    values: tuple[Any, ...]
    negate: bool = False


@dataclass(frozen=True)
class Like:
    field: str
    pattern: str


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Compare | InList | Like | BoolOp | Not


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass
class Query:
    fields: list[str]
    sobject: str
    where: Node | None = None
    order_by: list[OrderKey] = field(default_factory=list)
    limit: int | None = None
    count: bool = False  # SELECT COUNT(): only totalSize is answered

    def referenced_fields(self) -> list[str]:
        """Every field name the query mentions (select list, filters, ordering)."""
        names = list(self.fields)
        stack: list[Node] = [self.where] if self.where is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, BoolOp):
                stack.extend(node.parts)
            elif isinstance(node, Not):
                stack.append(node.part)
            else:
                names.append(node.field)
        return names + [key.field for key in self.order_by]


# -- tokens --------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
    | (?P<number>-?\d+(?:\.\d+)?)(?![\w])
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_LIKE_ESCAPES = {"%": "\\%", "_": "\\_"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    value: Any
    column: int


def _unescape(body: str, column: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in _LIKE_ESCAPES:
                out.append(_LIKE_ESCAPES[nxt])  # kept escaped for LIKE patterns
            else:
                raise SoqlError(f"Invalid string literal at column {column + i}: illegal escape")
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            rest = text[pos:].split()
            raise SoqlError(_unexpected(text, pos, rest[0] if rest else ""))
        kind = match.lastgroup or ""
        raw = match.group(kind)
        column = match.start(kind) + 1
        value: Any = raw
        if kind == "string":
            value = _unescape(raw[1:-1], column)
        elif kind == "datetime":
            value = parse_datetime(raw)
        elif kind == "date":
            value = date.fromisoformat(raw)
        elif kind == "number":
            value = float(raw)
        elif kind == "op" and raw == "<>":
            value = "!="
        tokens.append(_Token(kind, raw, value, column))
        pos = match.end()
    return tokens


def _unexpected(text: str, column: int, token: str) -> str:
    return (
        f"\n{text}\n{' ' * column}^\nERROR at Row:1:Column:{column + 1}\n"
        f"unexpected token: {token or '<EOF>'}"
    )


# -- parser --------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        """Consume the keywords if they come next (case-insensitive)."""
        for offset, word in enumerate(words):
            index = self.pos + offset
            if index >= len(self.tokens):
                return False
            token = self.tokens[index]
            if token.kind != "ident" or token.text.upper() != word:
                return False
        self.pos += len(words)
        return True

    def fail(self) -> SoqlError:
        token = self.peek()
        column = token.column - 1 if token else len(self.text)
        return SoqlError(_unexpected(self.text, column, token.text if token else ""))

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None or token.kind != kind or (text is not None and token.text != text):
            raise self.fail()
        self.pos += 1
        return token

    def ident(self) -> str:
        token = self.expect("ident")
        if token.text.upper() in _RESERVED:
            self.pos -= 1
            raise self.fail()
        return token.text

    def parse(self) -> Query:
        if not self.keyword("SELECT"):
            raise self.fail()
        count = self.count()
        fields = [] if count else [self.ident()]
        while not count and self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
            self.pos += 1
            fields.append(self.ident())
        if not self.keyword("FROM"):
            raise self.fail()
        query = Query(fields=fields, sobject=self.ident(), count=count)
        if self.keyword("WHERE"):
            query.where = self.disjunction()
        if self.keyword("ORDER", "BY"):
            query.order_by = [self.order_key()]
            while self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
                self.pos += 1
                query.order_by.append(self.order_key())
        if self.keyword("LIMIT"):
            token = self.expect("number")
            query.limit = int(token.value)
        if self.peek() is not None:
            raise self.fail()
        return query

    def count(self) -> bool:
        """``COUNT()``: the query answers with its number of rows only."""
        following = self.tokens[self.pos + 1 : self.pos + 3]
        if [t.text for t in following] != ["(", ")"] or not self.keyword("COUNT"):
            return False
        self.pos += 2
        return True

    def order_key(self) -> OrderKey:
        name = self.ident()
        descending = self.keyword("DESC")
        if not descending:
            self.keyword("ASC")
        nulls_last = descending
        if self.keyword("NULLS", "FIRST"):
            nulls_last = False
        elif self.keyword("NULLS", "LAST"):
            nulls_last = True
        return OrderKey(name, descending, nulls_last)

    def disjunction(self) -> Node:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.negation()]
        while self.keyword("AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def negation(self) -> Node:
        if self.keyword("NOT"):
            return Not(self.negation())
        token = self.peek()
        if token is not None and token.text == "(":
            self.pos += 1
            node = self.disjunction()
            self.expect("punct", ")")
            return node
        return self.condition()

    def condition(self) -> Node:
        name = self.ident()
        if self.keyword("NOT", "IN"):
            return InList(name, self.value_list(), negate=True)
        if self.keyword("IN"):
            return InList(name, self.value_list())
        if self.keyword("LIKE"):
            token = self.expect("string")
            return Like(name, token.value)
        op = self.expect("op").value
        return Compare(name, op, self.literal())

    def value_list(self) -> tuple[Any, ...]:
        self.expect("punct", "(")
        values = [self.literal()]
        while self.peek() and self.peek().text == ",":  # type: ignore[union-attr]
            self.pos += 1
            values.append(self.literal())
        self.expect("punct", ")")
        return tuple(values)

    def literal(self) -> Any:
        token = self.peek()
        if token is None:
            raise self.fail()
        if token.kind in {"string", "number", "date", "datetime"}:
            self.pos += 1
            value = token.value
            if token.kind == "string":
                value = _strip_like_escapes(value)
            return value
        if token.kind == "ident" and token.text.upper() in {"NULL", "TRUE", "FALSE"}:
            self.pos += 1
            return {"NULL": None, "TRUE": True, "FALSE": False}[token.text.upper()]
        raise self.fail()


_RESERVED = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "LIMIT",
    "NULL",
    "TRUE",
    "FALSE",
    "ASC",
    "DESC",
    "NULLS",
}


def _strip_like_escapes(value: str) -> str:
    return value.replace("\\%", "%").replace("\\_", "_")


def parse(text: str) -> Query:
    """Parse a query of the subset, raising :class:`SoqlError` (MALFORMED_QUERY) otherwise."""
    return _Parser(text).parse()


# -- evaluation ----------------------------------------------------------------------------
def _coerce(value: Any, like: Any) -> Any:
    """Bring a stored value to the literal's type (stored datetimes and dates are strings)."""
    if isinstance(like, datetime):
        return parse_datetime(value) if isinstance(value, str) else value
    if isinstance(like, date):
        return date.fromisoformat(value[:10]) if isinstance(value, str) else value
    if isinstance(like, bool):
        return bool(value)
    if isinstance(like, float):
        return float(value)
    if isinstance(like, str):
        return str(value).lower()
    return value


def _compare(value: Any, op: str, literal: Any, exact: bool = False, cased: bool = False) -> bool:
    if literal is None:
        return (value is None) if op == "=" else (value is not None) if op == "!=" else False
    if value is None:
        return op == "!="  # SOQL: a null field is "not equal" to any value
    try:
        left = _coerce(value, literal)
    except (TypeError, ValueError) as exc:
        raise SoqlError(
            f"value of filter criterion does not fit the field: {literal!r}",
            "INVALID_QUERY_FILTER_OPERATOR",
        ) from exc
    right = literal.lower() if isinstance(literal, str) else literal
    if cased and isinstance(literal, str):  # unique case-sensitive text fields
        left, right = str(value), literal
    if exact and isinstance(literal, str):  # Ids: case-sensitive; 15 characters match 18
        left, right = str(value), literal
        if len(right) == 15 and len(left) == 18:
            left = left[:15]
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return ops[op](left, right)


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.fullmatch("".join(regex), str(value), re.IGNORECASE | re.DOTALL) is not None


def matches(
    node: Node | None,
    record: Mapping[str, Any],
    id_fields: frozenset[str] = frozenset(),
    case_sensitive: frozenset[str] = frozenset(),
) -> bool:
    """Does ``record`` (keyed by lower-cased field names) satisfy the WHERE clause?

    ``id_fields`` (lower-cased) compare case-sensitively, a 15-character Id matching its 18;
    so do ``case_sensitive`` text fields (SOQL: unique case-sensitive fields compare with case).
    """
    if node is None:
        return True
    if isinstance(node, BoolOp):
        results = (matches(part, record, id_fields, case_sensitive) for part in node.parts)
        return all(results) if node.op == "AND" else any(results)
    if isinstance(node, Not):
        return not matches(node.part, record, id_fields, case_sensitive)
    name = node.field.lower()
    value = record.get(name)
    if isinstance(node, Like):
        return _like(value, node.pattern)
    exact, cased = name in id_fields, name in case_sensitive
    if isinstance(node, InList):
        found = any(_compare(value, "=", literal, exact, cased) for literal in node.values)
        return not found if node.negate else found
    return _compare(value, node.op, node.value, exact, cased)


def _value_of(name: str, fold: bool, record: Mapping[str, Any]) -> Any:
    value = record[name]
    return value.lower() if fold and isinstance(value, str) else value


def order(
    records: Iterable[Mapping[str, Any]],
    keys: list[OrderKey],
    case_sensitive: frozenset[str] = frozenset(),
) -> list[Mapping[str, Any]]:
    """Sort records (lower-cased keys) by ORDER BY keys, nulls placed as SOQL places them.

    Text sorts without case, except the (lower-cased) ``case_sensitive`` fields: Ids."""
    result = list(records)
    for key in reversed(keys):
        name = key.field.lower()
        present = [r for r in result if r.get(name) is not None]
        nulls = [r for r in result if r.get(name) is None]
        fold = name not in case_sensitive
        present.sort(key=partial(_value_of, name, fold), reverse=key.descending)
        result = present + nulls if key.nulls_last else nulls + present
    return result
