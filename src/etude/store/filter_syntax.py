"""The filter grammar's syntax: tokens, the tree, the parser and its errors (no SQL here;
`filters` compiles the tree). See `filters` for the grammar.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..workspace.status import STATES

JOB_STATES: tuple[str, ...] = STATES
STATE_ALIASES = {"failed": "error"}
KEYWORDS = frozenset({"and", "or", "not", "in", "has", "true", "false", "null"})
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "~")
OPERATOR_HELP = "= != < <= > >= ~ in, not in, has"
OPERATOR_FIXES = {
    "==": "=", "<>": "!=", "=~": "~", "=<": "<=", "=>": ">=", "!": "not", "!~": "not FIELD ~ X",
}
ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_HELP = "a duration such as 90s, 30m, 2h, 1d or 1h30m, or a number of seconds"
DATE_HELP = (
    'a date such as 2026-12-01, 2026-12-01T10:30 or "2026-12-01 10:30:00" (local time), '
    "or seconds since the epoch"
)

_WORD = re.compile(r"[\w.:/+\-]+")
_OPERATOR = re.compile(r"[=!<>~]+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_FIELD = re.compile(r"[^\W\d]\w*(?:\.[\w\-]+)*")
_NAME = re.compile(r"[^\W\d]\w*\.")  # before a quoted path: params."a key"
_PLAIN_PATH = re.compile(r"[\w\-]+(?:\.[\w\-]+)*")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DATE = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?")
_TIME = re.compile(r"\d\d:\d\d(?::\d\d(?:\.\d+)?)?")
_REGEX_FLAGS = re.compile(r"\(\?([a-zA-Z]+)\)")


class FilterError(ValueError):
    """A filter or sort spec that cannot be used. `column` is 1-based; `str()` gives the
    message, then the filter with a caret under the column."""

    def __init__(self, problem: str, column: int, hint: str = "", text: str = "") -> None:
        super().__init__(problem, column, hint, text)
        self.problem, self.column, self.hint, self.text = problem, column, hint, text

    @property
    def message(self) -> str:
        return f"{self.problem} at column {self.column}" + (f"; {self.hint}" if self.hint else "")

    def located(self, text: str) -> FilterError:
        """The same error, shown under `text`."""
        return FilterError(self.problem, self.column, self.hint, text)

    def __str__(self) -> str:
        if not self.text:
            return self.message
        shown = re.sub(r"\s", " ", self.text)
        return f"{self.message}\n{shown}\n{' ' * (self.column - 1)}^"


# -- the AST (str() gives the filter back, with parentheses showing the grouping) -------------
@dataclass(frozen=True)
class Field:
    """`name` or `name.path` (`params.model.lr`: name `params`, path `model.lr`). `parts` are
    the path's dotted parts as written: a part quoted with backticks may hold dots
    (metrics.`val.loss`.train: parts `val.loss`, `train`)."""

    name: str
    path: str | None
    column: int
    parts: tuple[str, ...] = ()

    @property
    def path_parts(self) -> tuple[str, ...]:
        if self.parts:
            return self.parts
        return () if self.path is None else tuple(self.path.split("."))

    def __str__(self) -> str:
        if self.path is None:
            return self.name
        if self.parts and any("." in p or not _PLAIN_PATH.fullmatch(p) for p in self.parts):
            shown = ".".join(p if _PLAIN_PATH.fullmatch(p) and "." not in p else f"`{p}`"
                             for p in self.parts)
            return f"{self.name}.{shown}"
        return f"{self.name}.{self.path if _PLAIN_PATH.fullmatch(self.path) else _quote(self.path)}"


@dataclass(frozen=True)
class Value:
    """A literal: `kind` is number, text, bool or null; `text` is as written for numbers and
    bare words, the decoded string for quoted ones."""

    kind: str
    value: int | float | str | bool | None
    text: str
    column: int
    quoted: bool = False

    def __str__(self) -> str:
        return _quote(self.text) if self.quoted else self.text


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # one of OPERATORS
    value: Value
    column: int  # of the operator

    def __str__(self) -> str:
        return f"{self.field} {self.op} {self.value}"


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Value, ...]
    negated: bool
    column: int  # of `in` (or of `not`)

    def __str__(self) -> str:
        values = ", ".join(map(str, self.values))
        return f"{self.field} {'not in' if self.negated else 'in'} ({values})"


@dataclass(frozen=True)
class Has:
    field: Field
    name: Value
    column: int  # of `has`

    def __str__(self) -> str:
        return f"{self.field} has {self.name}"


@dataclass(frozen=True)
class Not:
    operand: Node

    def __str__(self) -> str:
        return f"not {_grouped(self.operand)}"


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " and ".join(map(_grouped, self.operands))


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]

    def __str__(self) -> str:
        return " or ".join(map(_grouped, self.operands))


Node = Compare | In | Has | Not | And | Or


def _grouped(node: Node) -> str:
    return f"({node})" if isinstance(node, (And, Or)) else str(node)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- tokens ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    kind: str  # word, number, string, op, "(", ")", ",", end
    text: str  # as written
    value: str  # strings: decoded; others: as written
    start: int  # 0-based
    offsets: tuple[int, ...] = ()  # strings: where each decoded character was written

    @property
    def column(self) -> int:
        return self.start + 1

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "end" else repr(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens, at = [], 0
    while at < len(text):
        char = text[at]
        if char.isspace():
            at += 1
            continue
        if char in "(),":
            token = _Token(char, char, char, at)
        elif char in "\"'":
            token = _read_string(text, at)
        elif match := _OPERATOR.match(text, at):
            if match[0] not in OPERATORS:
                fix = OPERATOR_FIXES.get(match[0])
                hint = f"use {fix!r}" if fix else f"valid operators: {OPERATOR_HELP}"
                raise FilterError(f"unknown operator {match[0]!r}", at + 1, hint)
            token = _Token("op", match[0], match[0], at)
        elif char == "`" or _WORD.match(text, at):
            token = _read_word(text, at)
        else:
            raise FilterError(f"unexpected character {char!r}", at + 1, "quote values holding it")
        tokens.append(token)
        at = token.end
    return [*tokens, _Token("end", "", "", len(text))]


def _read_word(text: str, start: int) -> _Token:
    """A bare word or number, in which backticks may quote parts (metrics.`val/loss`.x)."""
    at = start
    while at < len(text):
        if text[at] == "`":
            close = text.find("`", at + 1)
            if close < 0:
                raise FilterError("unclosed backtick", at + 1, "close the quoted part with `")
            at = close + 1
        elif match := _WORD.match(text, at):
            at = match.end()
        else:
            break
    word = text[start:at]
    kind = "number" if _NUMBER.fullmatch(word) else "word"
    return _Token(kind, word, word, start)


def _split_parts(word: str, column: int) -> list[str]:
    """The dotted parts of a field written with backtick-quoted parts."""
    parts, current, at = [], "", 0
    while at < len(word):
        char = word[at]
        if char == "`":
            close = word.index("`", at + 1)
            current += word[at + 1 : close]
            at = close + 1
            continue
        if char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
        at += 1
    parts.append(current)
    if any(not part for part in parts):
        raise FilterError(f"invalid field name {word!r}", column,
                          "each dotted part needs a name: metrics.`val/loss`.train")
    return parts


def _read_string(text: str, start: int) -> _Token:
    """A quoted string; a backslash escapes a quote or a backslash and is kept otherwise
    (so regular expressions read as written: "\\d+")."""
    quote, at = text[start], start + 1
    chars: list[str] = []
    offsets: list[int] = []
    while at < len(text):
        if text[at] == quote:
            return _Token("string", text[start : at + 1], "".join(chars), start, tuple(offsets))
        if text[at] == "\\" and text[at + 1 : at + 2] in ("\\", '"', "'"):
            at += 1
        chars.append(text[at])
        offsets.append(at)
        at += 1
    raise FilterError("unclosed string", start + 1, f"close it with {quote}")


# -- parsing --------------------------------------------------------------------------------
def parse(text: str) -> Node | None:
    """The AST of a filter; None for an empty one. Raises FilterError for a syntax error or
    an invalid regular expression (field names are checked when compiling)."""
    try:
        parser = _Parser(_tokenize(text))
        if parser.peek().kind == "end":
            return None
        node = parser.disjunction()
        parser.expect_end("'and', 'or' or the end of the filter")
        return node
    except FilterError as error:
        raise error.located(text) from None


def _keyword(token: _Token, *words: str) -> bool:
    return token.kind == "word" and token.value.lower() in words


class _Parser:
    """Recursive descent: `or` binds loosest, then `and`, then `not`; then a comparison or a
    parenthesised filter."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return token

    def expect_end(self, expected: str) -> None:
        token = self.peek()
        if token.kind == ")":
            raise FilterError("unexpected ')'", token.column, "no '(' opens it")
        if token.kind != "end":
            problem = f"unexpected {token.describe()}"
            raise FilterError(problem, token.column, f"expected {expected}")

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while _keyword(self.peek(), "or"):
            self.take()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.negation()]
        while _keyword(self.peek(), "and"):
            self.take()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> Node:
        if _keyword(self.peek(), "not"):
            self.take()
            return Not(self.negation())
        if self.peek().kind != "(":
            return self.comparison()
        opening = self.take()
        node = self.disjunction()
        closing = self.take()
        if closing.kind == "end":
            raise FilterError("unclosed parenthesis", opening.column, "add ')'")
        if closing.kind != ")":
            expected = "expected 'and', 'or' or ')'"
            raise FilterError(f"unexpected {closing.describe()}", closing.column, expected)
        return node

    def comparison(self) -> Node:
        field = self.field()
        token = self.take()
        if token.kind == "op":
            written = self.peek()
            value = self.value(after=token.text)
            if token.text == "~":
                _check_regex(value, written)
            return Compare(field, token.text, value, token.column)
        if _keyword(token, "not"):
            if not _keyword(follow := self.take(), "in"):
                raise FilterError(f"expected 'in' after 'not', got {follow.describe()}",
                                  follow.column, f"write {field} not in (A, B)")
            return In(field, self.value_list(), negated=True, column=token.column)
        if _keyword(token, "in"):
            return In(field, self.value_list(), negated=False, column=token.column)
        if _keyword(token, "has"):
            return Has(field, self.value(after="has"), token.column)
        raise FilterError(f"expected an operator after {str(field)!r}, got {token.describe()}",
                          token.column, f"valid operators: {OPERATOR_HELP}")

    def field(self) -> Field:
        token = self.take()
        if token.kind != "word" or token.value.lower() in KEYWORDS:
            raise FilterError(f"expected a field name, got {token.describe()}", token.column,
                              'for example state = error, params.lr < 0.01, tags has debug')
        if "`" in token.text:
            parts = _split_parts(token.text, token.column)
            if not _FIELD.fullmatch(parts[0]) or len(parts) < 2:
                raise FilterError(f"invalid field name {token.text!r}", token.column,
                                  "quote the parts after the field's name: metrics.`a.b`.c")
            return Field(parts[0], ".".join(parts[1:]), token.column, tuple(parts[1:]))
        quoted, name = self.peek(), token.text.removesuffix(".")
        if quoted.kind == "string" and quoted.start == token.end and _NAME.fullmatch(token.text):
            self.take()  # params."a key"
            return Field(name, quoted.value, token.column)
        if not _FIELD.fullmatch(token.text):
            raise FilterError(f"invalid field name {token.text!r}", token.column,
                              'a field is a name with dotted parts (params.model.lr); quote '
                              'other paths: params."a key"')
        name, _, path = token.text.partition(".")
        return Field(name, path or None, token.column)

    def value(self, after: str) -> Value:
        token = self.take()
        word = token.text.lower()
        if token.kind == "string":
            return Value("text", token.value, token.value, token.column, quoted=True)
        if token.kind == "number":
            number = int(token.text) if _INTEGER.fullmatch(token.text) else float(token.text)
            if not math.isfinite(number):
                raise FilterError(f"number {token.text} is too large", token.column)
            return Value("number", number, token.text, token.column)
        if token.kind == "end":
            raise FilterError(f"missing value after {after!r}", token.column)
        if token.kind != "word":
            raise FilterError(f"expected a value after {after!r}, got {token.describe()}",
                              token.column)
        if word in ("true", "false", "null"):
            kind, value = ("null", None) if word == "null" else ("bool", word == "true")
            return Value(kind, value, word, token.column)
        if word in KEYWORDS:
            raise FilterError(f"expected a value after {after!r}, got the keyword {token.text!r}",
                              token.column, f'quote it to use it as text: "{token.text}"')
        if _DATE.fullmatch(token.text) and _TIME.fullmatch(time := self.peek().text):
            raise FilterError("a date and a time must be quoted together", token.column,
                              f'write "{token.text} {time}" or {token.text}T{time}')
        return Value("text", token.text, token.text, token.column)

    def value_list(self) -> tuple[Value, ...]:
        opening = self.take()
        if opening.kind != "(":
            raise FilterError(f"expected '(' after 'in', got {opening.describe()}",
                              opening.column, "write a list: state in (error, waiting)")
        if self.peek().kind == ")":
            raise FilterError("empty list", self.peek().column, "give at least one value")
        values = [self.value(after="(")]
        while (token := self.take()).kind == "," and self.peek().kind != ")":
            values.append(self.value(after=","))
        if token.kind == ",":  # a trailing comma
            token = self.take()
        if token.kind == "end":
            raise FilterError("unclosed parenthesis", opening.column, "add ')'")
        if token.kind != ")":
            raise FilterError(f"expected ',' or ')' in the list, got {token.describe()}",
                              token.column)
        return tuple(values)


def _check_regex(value: Value, token: _Token) -> None:
    if value.kind in ("bool", "null"):
        raise FilterError("'~' needs a pattern", value.column, f'quote it: "{value.text}"')
    try:
        re.compile(value.text)
    except re.error as error:
        at = error.pos or 0
        if token.offsets:
            start = token.offsets[at] if at < len(token.offsets) else token.end - 1
        else:
            start = token.start + at
        hint = "see Python's re module for the syntax"
        raise FilterError(f"invalid regular expression: {error.msg}", start + 1, hint) from None


