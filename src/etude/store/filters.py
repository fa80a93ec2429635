"""The one filter grammar of etude (Python API, CLI `--where`, web UI), compiled to SQLAlchemy.

    state = error and reason in (killed, timeout)
    params.lr < 0.01 and tags.model = "cnn"
    not tags has debug or (task ~ "learn" and duration > 1h)

`parse` (in `filter_syntax`, with the tokenizer, the tree and `FilterError`) turns text into
an AST (no SQL involved). `compile_filter` turns the AST into a
condition through a table of field resolvers (`JOB_FIELDS` for the `jobs` table), so another
table can reuse the grammar with its own fields; `sort_by` does the same for sort specs.

Every comparison compiles to a condition that is true or false, never NULL: `not`, `!=` and
`not in` are plain negations, so `reason != killed` keeps the jobs without a reason and
`params.lr != 0.1` the jobs without that parameter. Values and paths from the user are always
bound parameters; field names are checked against the resolver table.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .filter_syntax import (
    _DATE,
    _DURATION,
    _DURATION_PART,
    _REGEX_FLAGS,
    DATE_HELP,
    DURATION_HELP,
    JOB_STATES,
    ORDERINGS,
    STATE_ALIASES,
    UNIT_SECONDS,
    And,
    Compare,
    Field,
    FilterError,
    In,
    Node,
    Not,
    Or,
    Value,
    _Parser,
    _quote,
    _tokenize,
    parse,
)
from .schema import experiments, job_experiments, job_params, job_tags, jobs

# -- compiling ------------------------------------------------------------------------------
Condition = sa.ColumnElement[bool]
TEXT_OPERATORS = frozenset({"in", "~"})
NUMBER_OPERATORS = frozenset({"in", *ORDERINGS})


class FieldResolver:
    """How one field, or a family of fields when `takes_path` (`params.PATH`), becomes SQL.

    `condition(path, op, values)` gets one of `operators`: `in` (for =, !=, in and not in; the
    compiler negates), an ordering (<, <=, >, >=; one value), `~` (one valid pattern) or `has`
    (no path; one value, the name). It returns a condition that is never NULL, and raises
    FilterError (at the value's column) for a value it cannot take.
    """

    operators: frozenset[str] = frozenset({"in"})
    takes_path = False

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def usage(self) -> str:
        return self.name

    def condition(self, path: str | None, op: str, values: Sequence[Value]) -> Condition:
        raise NotImplementedError

    def sort_keys(self, path: str | None) -> list[sa.ColumnElement[Any]]:
        raise NotImplementedError


def _any_of(parts: list[Condition]) -> Condition:
    return parts[0] if len(parts) == 1 else sa.or_(*parts)


def _is_in(column: sa.ColumnElement[Any], items: Sequence[Any]) -> Condition:
    return column == items[0] if len(items) == 1 else column.in_(items)


class ColumnField(FieldResolver):
    """A column of the filtered table: `convert(name, value)` gives the bound value of a
    literal or raises FilterError; `ordered` columns take <, <=, >, >=, the others ~."""

    def __init__(
        self, name: str, column: sa.ColumnElement[Any],
        convert: Callable[[str, Value], Any] | None = None,
        ordered: bool = False,
    ) -> None:
        super().__init__(name)
        self.column, self.convert = column, convert or _text
        self.operators = NUMBER_OPERATORS if ordered else TEXT_OPERATORS

    def condition(self, path: str | None, op: str, values: Sequence[Value]) -> Condition:
        if op == "~":
            return self._not_null(self.column.regexp_match(values[0].text))
        items = [self.convert(self.name, value) for value in values if value.kind != "null"]
        if op in ORDERINGS:
            if not items:
                raise FilterError(f"'{op}' cannot compare with null", values[0].column)
            return self._not_null(ORDERINGS[op](self.column, items[0]))
        parts = [self._not_null(self.equals(items))] if items else []
        if len(items) < len(values):
            parts.append(self.column.is_(None))
        return _any_of(parts)

    def _not_null(self, condition: Condition) -> Condition:
        # NULL would make `not` drop the row too; an absent value is simply not equal.
        nullable = getattr(self.column, "nullable", True)  # an expression may be NULL
        return sa.and_(self.column.is_not(None), condition) if nullable else condition

    def equals(self, items: Sequence[Any]) -> Condition:
        return _is_in(self.column, items)

    def sort_keys(self, path: str | None) -> list[sa.ColumnElement[Any]]:
        return [self.column]


def _text(name: str, value: Value) -> str:
    if value.kind == "bool":
        raise FilterError(f"{name} is text, not true or false", value.column,
                          f'quote it to compare with the text: {name} = "{value.text}"')
    return value.text


def _state(name: str, value: Value) -> str:
    """A job state, checked against JOB_STATES (`failed` means `error`)."""
    state = _text(name, value).lower()
    state = STATE_ALIASES.get(state, state)
    if state not in JOB_STATES:
        close = difflib.get_close_matches(state, [*JOB_STATES, *STATE_ALIASES], n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise FilterError(f"unknown state {value.text!r}", value.column,
                          f"{guess}Valid states: {', '.join(JOB_STATES)} (failed means error)")
    return state


def _count(name: str, value: Value, expected: str = "a number") -> float:
    if value.kind != "number":
        raise FilterError(f"{name}: expected {expected}, got {value.text!r}", value.column)
    return float(value.value)  # type: ignore[arg-type]


def _seconds(name: str, value: Value) -> float:
    if value.kind == "text" and _DURATION.fullmatch(value.text):
        parts = _DURATION_PART.findall(value.text)
        return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)
    return _count(name, value, DURATION_HELP)


def _epoch(name: str, value: Value) -> float:
    if value.kind == "text" and _DATE.fullmatch(value.text):
        try:
            return datetime.fromisoformat(value.text).timestamp()  # naive: local time
        except ValueError as error:
            raise FilterError(f"{name}: {error}", value.column) from None
    return _count(name, value, DATE_HELP)


class TaskField(ColumnField):
    """The task's name, case-insensitive; `task = learn` also matches `xp.Learn`."""

    def equals(self, items: Sequence[Any]) -> Condition:
        lowered, names = sa.func.lower(self.column), [item.lower() for item in items]
        last_parts = [lowered.endswith(f".{name}", autoescape=True) for name in names]
        return sa.or_(_is_in(lowered, names), *last_parts)

    def condition(self, path: str | None, op: str, values: Sequence[Value]) -> Condition:
        if op == "~":
            values = [replace(values[0], text=_ignoring_case(values[0].text))]
        return super().condition(path, op, values)


def _ignoring_case(pattern: str) -> str:
    """`pattern` with the `i` flag. SQLAlchemy drops `flags` on SQLite; Python and PostgreSQL
    both read one leading flag group (PostgreSQL not two)."""
    match = _REGEX_FLAGS.match(pattern)
    if match is None:
        return f"(?i){pattern}"
    return pattern if "i" in match[1] else f"(?i{match[1]}){pattern[match.end() :]}"


class ExperimentField(ColumnField):
    """Matches when ANY experiment that used the job matches; `experiment = null`: none did.
    Sorts by the experiment that submitted the job last."""

    def __init__(self, name: str) -> None:
        super().__init__(name, experiments.c.name)

    def condition(self, path: str | None, op: str, values: Sequence[Value]) -> Condition:
        if op == "~":
            return self._exists(self.column.regexp_match(values[0].text))
        texts = [_text(self.name, value) for value in values if value.kind != "null"]
        parts = [self._exists(_is_in(self.column, texts))] if texts else []
        if len(texts) < len(values):
            parts.append(~sa.exists().where(job_experiments.c.job_pk == jobs.c.pk).correlate(jobs))
        return _any_of(parts)

    def _exists(self, condition: Condition) -> Condition:
        on = experiments.c.pk == job_experiments.c.experiment_pk
        link = job_experiments.join(experiments, on)
        query = sa.select(1).select_from(link).where(job_experiments.c.job_pk == jobs.c.pk)
        return query.where(condition).correlate(jobs).exists()

    def sort_keys(self, path: str | None) -> list[sa.ColumnElement[Any]]:
        return [jobs.c.experiment]


class KeyValueField(FieldResolver):
    """`NAME.KEY` over a side table of (link to `owner`, key, kind, num, text) rows, through
    correlated EXISTS: numbers compare `num` (booleans excluded), text compares `text`, true and
    false kind 'bool' and num 1/0, null kind 'null'. Sorts by num, then text."""

    takes_path = True

    def __init__(
        self, name: str, table: sa.Table, key: str, owner: sa.Column[Any], has: bool = False
    ) -> None:
        super().__init__(name)
        self.table, self.key, self.owner = table, table.c[key], owner
        self.link = next(column for column in table.c if column.references(owner))
        self.operators = frozenset({"in", "~", *ORDERINGS, *(["has"] if has else [])})

    @property
    def usage(self) -> str:
        return f"{self.name}.{self.key.name.upper()}"

    def condition(self, path: str | None, op: str, values: Sequence[Value]) -> Condition:
        columns, value = self.table.c, values[0]
        if op == "has":
            return self._exists(value.text, None)
        assert path is not None
        if op == "~":
            return self._exists(path, columns.text.regexp_match(value.text))
        if op not in ORDERINGS:
            return self._exists(path, _any_of(self._equals(values)))
        if value.kind != "number":
            raise FilterError(f"'{op}' compares numbers, got {value.text!r}", value.column,
                              f"compare text with =, in or ~: {self.name}.{path} = {value}")
        return self._exists(path, sa.and_(columns.kind != "bool", ORDERINGS[op](columns.num,
                                                                                value.value)))

    def _equals(self, values: Sequence[Value]) -> list[Condition]:
        columns = self.table.c
        by_kind: dict[str, list[Any]] = {}
        for value in values:
            by_kind.setdefault(value.kind, []).append(value.value)
        parts = []
        if "number" in by_kind:
            parts.append(sa.and_(columns.kind != "bool", _is_in(columns.num, by_kind["number"])))
        if "text" in by_kind:
            parts.append(_is_in(columns.text, by_kind["text"]))
        for flag in sorted(set(by_kind.get("bool", []))):
            parts.append(sa.and_(columns.kind == "bool", columns.num == (1.0 if flag else 0.0)))
        if "null" in by_kind:
            parts.append(columns.kind == "null")
        return parts

    def _key(self, key: str) -> Condition:
        return self.key == key

    def _exists(self, key: str, condition: Condition | None) -> Condition:
        # By default `owner IN (SELECT link ... WHERE key ...)`: the list is built once, from
        # the (key, num) index (a correlated EXISTS without statistics once ran on that index,
        # walking every match of the key per row: minutes over 100,000 runs). Looked up per
        # row, through the (link, key) key, when `KeyValueForms` says so: faster for a page
        # walked in the order of an index when the list would be long.
        terms = [self._key(key)] if condition is None else [self._key(key), condition]
        query = sa.select(self.link).where(*terms)
        forms = _forms.get()
        if forms is not None and forms.next_is_correlated(query):
            exists = sa.select(1).where(self.link == self.owner, *terms)
            return exists.correlate(self.owner.table).exists()
        return self.owner.in_(query)

    def sort_keys(self, path: str | None) -> list[sa.ColumnElement[Any]]:
        assert path is not None
        return [
            sa.select(column).where(self.link == self.owner, self._key(path))
            .correlate(self.owner.table).scalar_subquery()
            for column in (self.table.c.num, self.table.c.text)
        ]


class KeyValueForms:
    """How the `params.` / `tags.` conditions of one filter are written, in the order the
    filter compiles them: True for a correlated EXISTS (looked up per row), False for an IN
    list (built once). Compiling under `choosing()` records each condition's list query in
    `lists`, so that the caller can measure them (`Store._page_query`)."""

    def __init__(self, correlated: Sequence[bool] = ()) -> None:
        self.correlated = list(correlated)
        self.lists: list[sa.Select[Any]] = []

    def next_is_correlated(self, query: sa.Select[Any]) -> bool:
        index = len(self.lists)
        self.lists.append(query)
        return index < len(self.correlated) and self.correlated[index]

    @contextmanager
    def choosing(self) -> Iterator[KeyValueForms]:
        self.lists = []
        token = _forms.set(self)
        try:
            yield self
        finally:
            _forms.reset(token)


_forms: ContextVar[KeyValueForms | None] = ContextVar("etude_key_value_forms", default=None)


def matches_few(text: str, long: Sequence[bool]) -> bool:
    """Whether the jobs the filter `text` matches are known to be few, given for each of its
    `params.` / `tags.` conditions (in the order they compile) whether it matches many rows:
    a short condition makes an `and` short, an `or` is short when all its parts are, and a
    negation or any other field is not."""
    flags = iter(long)

    def few(node: Node) -> bool:
        if isinstance(node, (And, Or)):
            parts = [few(operand) for operand in node.operands]  # each consumes its flags
            return any(parts) if isinstance(node, And) else all(parts)
        if isinstance(node, Not):
            few(node.operand)
            return False
        if not isinstance(JOB_FIELDS.get(node.field.name), KeyValueField):
            return False
        short = not next(flags)
        negated = (isinstance(node, Compare) and node.op == "!=") or (
            isinstance(node, In) and node.negated)
        return short and not negated

    node = parse(text)
    return node is not None and few(node)


JOB_FIELDS: dict[str, FieldResolver] = {
    "state": ColumnField("state", jobs.c.state, _state),
    "reason": ColumnField("reason", jobs.c.reason),
    "task": TaskField("task", jobs.c.task),
    "experiment": ExperimentField("experiment"),
    "id": ColumnField("id", jobs.c.id),
    "kind": ColumnField("kind", jobs.c.kind),
    "launcher": ColumnField("launcher", jobs.c.launcher),
    "cluster_job_id": ColumnField("cluster_job_id", jobs.c.cluster_job_id),
    "retries": ColumnField("retries", jobs.c.retries, _count, ordered=True),
    "message": ColumnField("message", jobs.c.message),
    "folder": ColumnField("folder", jobs.c.folder),
    "submitted": ColumnField("submitted", jobs.c.submitted, _epoch, ordered=True),
    "started": ColumnField("started", jobs.c.started, _epoch, ordered=True),
    "ended": ColumnField("ended", jobs.c.ended, _epoch, ordered=True),
    "duration": ColumnField("duration", jobs.c.duration, _seconds, ordered=True),
    "tags": KeyValueField("tags", job_tags, "name", jobs.c.pk, has=True),
    "params": KeyValueField("params", job_params, "path", jobs.c.pk),
}


def job_fields() -> list[str]:
    """The fields of job filters and sort specs, as shown in help (`params.PATH`)."""
    return [resolver.usage for resolver in JOB_FIELDS.values()]


def compile_job_filter(text: str | None) -> Condition | None:
    """The condition on `jobs` for a filter; None for no filter (None, empty or blank).
    Raises FilterError."""
    node = None if text is None else parse(text)
    if node is None:
        return None
    try:
        return compile_filter(node, JOB_FIELDS)
    except FilterError as error:
        raise error.located(text or "") from None


def sort_expressions(spec: str | None) -> list[sa.ColumnElement[Any]]:
    """ORDER BY expressions for a sort spec such as `-duration, params.lr`, NULLs last in both
    directions, ending with `jobs.pk` for stable paging. Raises FilterError."""
    return sort_by(spec, JOB_FIELDS, jobs.c.pk)


def compile_filter(node: Node, fields: Mapping[str, FieldResolver]) -> Condition:
    """The condition for an AST over the fields of `fields`. Raises FilterError without the
    filter's text (add it with `error.located(text)`)."""
    if isinstance(node, (And, Or)):
        parts = [compile_filter(operand, fields) for operand in node.operands]
        return sa.and_(*parts) if isinstance(node, And) else sa.or_(*parts)
    if isinstance(node, Not):
        return sa.not_(compile_filter(node.operand, fields))
    if isinstance(node, Compare):
        op = "in" if node.op in ("=", "!=") else node.op
        condition = _condition(node.field, op, (node.value,), node.column, fields)
        return sa.not_(condition) if node.op == "!=" else condition
    if isinstance(node, In):
        condition = _condition(node.field, "in", node.values, node.column, fields)
        return sa.not_(condition) if node.negated else condition
    return _condition(node.field, "has", (node.name,), node.column, fields)


def _condition(
    field: Field, op: str, values: Sequence[Value], column: int,
    fields: Mapping[str, FieldResolver],
) -> Condition:
    resolver = _resolve(field, fields, "field", need_path=op != "has")
    if op not in resolver.operators:
        raise _operator_error(op, resolver, fields, column)
    if op == "has" and field.path is not None:
        raise FilterError("'has' takes the name after it", column,
                          f"write {field.name} has {_quote(field.path)}")
    return resolver.condition(_path_of(field, resolver), op, values)


def _path_of(field: Field, resolver: FieldResolver) -> str | None:
    """The path handed to a resolver: as written, or for resolvers that read dotted parts
    (`takes_parts`, e.g. metrics.TITLE.SERIES) the parts joined by PART_SEPARATOR, so that a
    backtick-quoted part may hold dots."""
    if field.path is None or not getattr(resolver, "takes_parts", False):
        return field.path
    return PART_SEPARATOR.join(field.path_parts)


PART_SEPARATOR = "\x1f"


def _operator_error(
    op: str, resolver: FieldResolver, fields: Mapping[str, FieldResolver], column: int
) -> FilterError:
    names = {"in": "=, !=, in, not in", **{op: op for op in (*ORDERINGS, "~", "has")}}
    usable = ", ".join(name for op, name in names.items() if op in resolver.operators)
    if op != "has":
        return FilterError(f"{op!r} does not apply to {resolver.usage}", column, f"use {usable}")
    owners = [f"{other.name} ({other.name} has NAME)" for other in fields.values()
              if "has" in other.operators]
    problem = f"'has' applies to {' and '.join(owners) or 'no field'}, not to {resolver.usage}"
    return FilterError(problem, column, f"with {resolver.usage} use {usable}")


def _resolve(
    field: Field, fields: Mapping[str, FieldResolver], what: str, need_path: bool
) -> FieldResolver:
    resolver = fields.get(field.name)
    valid = "Valid fields: " + ", ".join(other.usage for other in fields.values())
    if resolver is None:
        close = difflib.get_close_matches(field.name, list(fields), n=1)
        close = close or [name for name in fields if name.startswith(field.name)][:1]
        guess = f"did you mean {str(replace(field, name=close[0]))!r}? " if close else ""
        raise FilterError(f"unknown {what} {str(field)!r}", field.column, guess + valid)
    if field.path is not None and not resolver.takes_path:
        raise FilterError(f"unknown {what} {str(field)!r}", field.column,
                          f"{field.name} has no sub-fields. {valid}")
    if need_path and resolver.takes_path and field.path is None:
        raise FilterError(f"{field.name} needs a {resolver.usage.split('.')[1].lower()}",
                          field.column, f"write {resolver.usage}")
    return resolver


def sort_by(
    spec: str | None, fields: Mapping[str, FieldResolver], tiebreaker: sa.ColumnElement[Any]
) -> list[sa.ColumnElement[Any]]:
    """ORDER BY expressions for a comma-separated list of fields, each optionally prefixed
    with `-` (descending) or `+`; NULLs last either way; `tiebreaker` last."""
    keys: list[sa.ColumnElement[Any]] = []
    try:
        for field, descending in _sort_fields(spec or ""):
            resolver = _resolve(field, fields, "sort field", need_path=True)
            for key in resolver.sort_keys(_path_of(field, resolver)):
                keys.append(sa.nulls_last(key.desc() if descending else key.asc()))
    except FilterError as error:
        raise error.located(spec or "") from None
    return [*keys, tiebreaker]


def _sort_fields(spec: str) -> list[tuple[Field, bool]]:
    parser, items = _Parser(_tokenize(spec)), list[tuple[Field, bool]]()
    while parser.peek().kind != "end" or items:
        token = parser.peek()
        if token.kind == "word" and token.text[0] in "+-" and len(token.text) > 1:
            stripped = token.text[1:]
            parser.tokens[parser.at] = replace(token, text=stripped, value=stripped,
                                               start=token.start + 1)
        items.append((parser.field(), token.text.startswith("-")))
        if parser.peek().kind != ",":
            parser.expect_end("',' or the end of the sort spec")
            break
        parser.take()
    return items


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def sqlite_regexp(pattern: str, value: str | None) -> bool:
    """SQLite's `regexp(pattern, value)`, which `value REGEXP pattern` calls: Python's
    `re.search`; False for NULL. Register it on each connection (2 arguments)."""
    if value is None:
        return False
    return _compiled(pattern).search(value if isinstance(value, str) else str(value)) is not None


__all__ = [
    "JOB_STATES",
    "FieldResolver",
    "FilterError",
    "Node",
    "compile_filter",
    "compile_job_filter",
    "job_fields",
    "parse",
    "sort_by",
    "sort_expressions",
    "sqlite_regexp",
]
