"""Querying runs: the filter grammar's run fields, and the query behind `Run.query`,
`runs_dataframe` and `etude runs list`.

Fields (besides those of every table: state, id, name ...):
    project, name, type, comment, host, parent, kind, reason
    created, started, ended, modified (dates), duration
    params.KEY          KEY in any section; params."Section/KEY" exactly
    metrics.NAME        a single value (the series NAME/NAME), last value
    metrics.TITLE.SERIES[.last|.min|.max|.count]
    user.KEY            user properties
    tags has X, tags.NAME = VALUE
Quote a part holding dots or spaces with backticks: metrics.`val/loss`.train.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..workspace.run_folder import RUN_STATES
from .database import chunks, fetch_rows, paused_gc
from .filter_syntax import ORDERINGS, FilterError, Value, parse
from .filters import (
    PART_SEPARATOR,
    ColumnField,
    Condition,
    FieldResolver,
    KeyValueField,
    _count,
    _epoch,
    _seconds,
    _text,
    compile_filter,
    sort_by,
)
from .schema import run_metrics, run_params, run_properties, run_tags, runs

AGGREGATES = ("last", "min", "max", "count")


def _run_state(name: str, value: Value) -> str:
    state = _text(name, value).lower()
    if state not in RUN_STATES:
        raise FilterError(f"unknown run state {value.text!r}", value.column,
                          f"valid states: {', '.join(RUN_STATES)}")
    return state


class ParamField(KeyValueField):
    """`params.KEY`: KEY in any section; `params."Section/KEY"`: that one."""

    def _key(self, key: str) -> Condition:
        column = run_params.c.path if "/" in key else run_params.c.key
        return column == key


class MetricField(FieldResolver):
    """`metrics.NAME`, `metrics.TITLE.SERIES`, `metrics.TITLE.SERIES.AGG` over the series
    summaries (the number of parts decides; AGG is last, min, max or count)."""

    takes_path = True
    takes_parts = True
    operators = frozenset({"in", *ORDERINGS})

    @property
    def usage(self) -> str:
        return "metrics.TITLE.SERIES[.last|.min|.max]"

    def _target(self, path: str) -> tuple[str, str, sa.Column[Any]]:
        parts = path.split(PART_SEPARATOR)
        if len(parts) == 1:
            parts = [parts[0], parts[0]]
        if len(parts) == 3 and parts[2] not in AGGREGATES:
            raise FilterError(f"metrics.{'.'.join(parts)}: {parts[2]!r} is not an aggregate",
                              1, f"use one of {', '.join(AGGREGATES)}, or quote a title or "
                                 "series holding dots with backticks: metrics.`a.b`.c")
        if len(parts) > 3:
            raise FilterError(f"metrics.{'.'.join(parts)}: too many parts", 1,
                              "write metrics.TITLE.SERIES[.AGG]; quote a part holding dots "
                              "with backticks: metrics.`val.loss`.train")
        aggregate = parts[2] if len(parts) == 3 else "last"
        return parts[0], parts[1], run_metrics.c[aggregate]

    def _exists(self, path: str, condition: Any) -> Condition:
        title, series, column = self._target(path)
        query = sa.select(run_metrics.c.run_pk).where(
            run_metrics.c.title == title, run_metrics.c.series == series,
            column.is_not(None), condition(column))
        return runs.c.pk.in_(query)  # built once (see KeyValueField._exists)

    def condition(self, path: str | None, op: str, values: Sequence[Value]) -> Condition:
        assert path is not None
        numbers = []
        for value in values:
            if value.kind != "number":
                raise FilterError(f"metrics compare numbers, got {value.text!r}", value.column)
            numbers.append(value.value)
        if op in ORDERINGS:
            return self._exists(path, lambda column: ORDERINGS[op](column, numbers[0]))
        return self._exists(path, lambda column: column.in_(numbers))

    def sort_keys(self, path: str | None) -> list[sa.ColumnElement[Any]]:
        assert path is not None
        title, series, column = self._target(path)
        query = sa.select(column).where(run_metrics.c.run_pk == runs.c.pk,
                                        run_metrics.c.title == title,
                                        run_metrics.c.series == series)
        return [query.correlate(runs).scalar_subquery()]


RUN_FIELDS: dict[str, FieldResolver] = {
    "state": ColumnField("state", runs.c.state, _run_state),
    "project": ColumnField("project", runs.c.project),
    "name": ColumnField("name", runs.c.name),
    "type": ColumnField("type", runs.c.type),
    "id": ColumnField("id", runs.c.id),
    "kind": ColumnField("kind", runs.c.kind),
    "reason": ColumnField("reason", runs.c.reason),
    "comment": ColumnField("comment", runs.c.comment),
    "host": ColumnField("host", runs.c.host),
    "parent": ColumnField("parent", runs.c.parent),
    "created": ColumnField("created", runs.c.created, _epoch, ordered=True),
    "started": ColumnField("started", runs.c.started, _epoch, ordered=True),
    "ended": ColumnField("ended", runs.c.ended, _epoch, ordered=True),
    "modified": ColumnField("modified", runs.c.modified, _epoch, ordered=True),
    "duration": ColumnField("duration", (runs.c.ended - runs.c.started).label("duration"),
                            _seconds, ordered=True),
    "outputs": ColumnField("outputs", runs.c.outputs, _count, ordered=True),
    "tags": KeyValueField("tags", run_tags, "name", runs.c.pk, has=True),
    "params": ParamField("params", run_params, "path", runs.c.pk),
    "user": KeyValueField("user", run_properties, "key", runs.c.pk),
    "metrics": MetricField("metrics"),
}


def run_fields() -> list[str]:
    """The fields of run filters, as shown in help."""
    return [resolver.usage for resolver in RUN_FIELDS.values()]


ROW_COLUMNS = ("pk", "id", "kind", "folder", "project", "name", "type", "state", "reason",
               "message", "comment", "parent", "tags", "host", "created", "started", "ended",
               "modified", "archived", "outputs")


class RunRow:
    """A run as the index holds it (parameters and metrics are read with `run_values`).
    Built from a result tuple in ROW_COLUMNS order; `tags` is decoded when first read, since
    queries may return tens of thousands of rows."""

    __slots__ = (*(c if c != "tags" else "_tags" for c in ROW_COLUMNS), "_tag_list")

    pk: int
    id: str
    kind: str
    folder: str
    project: str
    name: str
    type: str
    state: str
    reason: str | None
    message: str | None
    comment: str | None
    parent: str | None
    host: str | None
    created: float | None
    started: float | None
    ended: float | None
    modified: float | None
    archived: bool
    outputs: int

    def __init__(self, values: Sequence[Any]) -> None:
        (self.pk, self.id, self.kind, self.folder, self.project, self.name, self.type,
         self.state, self.reason, self.message, self.comment, self.parent, self._tags,
         self.host, self.created, self.started, self.ended, self.modified, archived,
         self.outputs) = values
        self.archived = bool(archived)
        self._tag_list: list[str] | None = None

    @property
    def tags(self) -> list[str]:
        if self._tag_list is None:
            self._tag_list = json.loads(self._tags or "[]")
        return list(self._tag_list)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ROW_COLUMNS if name != "pk"}

    def __repr__(self) -> str:
        return f"RunRow({self.id!r}, {self.project!r}, {self.name!r}, {self.state!r})"


@dataclass
class RunFilter:
    """The filters of `Run.query` besides the grammar (`where`)."""

    where: str | None = None
    project: str | None = None
    name: str | None = None
    tags: Sequence[str] = ()
    states: Sequence[str] = ()
    types: Sequence[str] = ()
    search: str | None = None
    include_archived: bool = False


def _conditions(ws: int, spec: RunFilter, *, by_lists: bool = False) -> list[Condition]:
    """The SQL conditions of `spec` in workspace `ws`; `by_lists`: the workspace's index is
    kept from the planner (`workspace_pk + 0`), so that it starts from the IN lists."""
    workspace = runs.c.workspace_pk + 0 if by_lists else runs.c.workspace_pk
    conditions: list[Condition] = [workspace == ws]
    if spec.where:
        node = parse(spec.where)
        if node is not None:
            try:
                conditions.append(compile_filter(node, RUN_FIELDS))
            except FilterError as error:
                raise error.located(spec.where) from None
    if spec.project:
        project = spec.project.rstrip("/")
        conditions.append(sa.or_(runs.c.project == project,
                                 runs.c.project.startswith(f"{project}/", autoescape=True)))
    if spec.name is not None:
        conditions.append(runs.c.name == spec.name)
    for state in spec.states:
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}; valid states: "
                             f"{', '.join(RUN_STATES)}")
    if spec.states:
        conditions.append(runs.c.state.in_(list(spec.states)))
    if spec.types:
        conditions.append(runs.c.type.in_(list(spec.types)))
    for tag in spec.tags:
        conditions.append(_tag_condition(tag))
    if spec.search:
        import re

        try:
            re.compile(spec.search)
        except re.error as error:
            raise ValueError(f"search={spec.search!r} is not a regular expression ({error})") \
                from None
        conditions.append(sa.or_(*(sa.and_(column.is_not(None),
                                           column.regexp_match(spec.search))
                                   for column in (runs.c.name, runs.c.id, runs.c.comment))))
    if not spec.include_archived:
        conditions.append(runs.c.archived == sa.false())
    return conditions


def _tag_condition(tag: str) -> Condition:
    from .runs import tag_value

    excluded = tag.startswith("-")
    name, (kind, _num, text) = tag_value(tag[1:] if excluded else tag)
    query = sa.select(run_tags.c.run_pk).where(run_tags.c.name == name)
    if kind != "null":
        query = query.where(run_tags.c.text == text)
    return runs.c.pk.not_in(query) if excluded else runs.c.pk.in_(query)


def query_runs(connection: sa.Connection, ws: int, spec: RunFilter, sort: str | None = None,
               limit: int | None = None, offset: int = 0) -> list[RunRow]:
    """The runs matching `spec`, sorted by `sort` (default: newest first)."""
    order = sort_by(sort, RUN_FIELDS, runs.c.pk) if sort else [
        sa.nulls_last(runs.c.created.desc()), runs.c.pk.desc()]
    # Every match wanted: the planner must start from the runs the conditions' lists name
    # (`pk IN (...)`), not walk every run of the workspace in date order probing them
    # (SQLite's choice, 20 ms instead of 3 for a filter matching 37 of 100,000 runs).
    conditions = _conditions(ws, spec, by_lists=limit is None and bool(spec.where or spec.tags))
    metric = _single_metric_sort(sort) if limit is not None else None
    if metric is not None:
        assert limit is not None
        return _page_by_metric(connection, conditions, metric, limit, offset)
    columns = [runs.c[name] for name in ROW_COLUMNS]
    query = sa.select(*columns).where(*conditions).order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    with paused_gc():
        return [RunRow(row) for row in fetch_rows(connection, query)]


MetricSort = tuple[str, str, sa.Column[Any], bool]


def _single_metric_sort(sort: str | None) -> MetricSort | None:
    """(title, series, summary column, descending) when `sort` is one metric field."""
    from .filters import _path_of, _sort_fields

    if not sort:
        return None
    try:
        fields = _sort_fields(sort)
    except FilterError:
        return None  # sort_by reports it
    if len(fields) != 1 or fields[0][0].name != "metrics" or fields[0][0].path is None:
        return None
    field, descending = fields[0]
    resolver = RUN_FIELDS["metrics"]
    assert isinstance(resolver, MetricField)
    path = _path_of(field, resolver)
    assert path is not None
    title, series, column = resolver._target(path)
    return title, series, column, descending


def _page_by_metric(connection: sa.Connection, conditions: list[Condition],
                    metric: MetricSort, limit: int, offset: int) -> list[RunRow]:
    """A page sorted by one metric, read in the order of the metric's index (so the first
    page of 100,000 runs reads ~50 index entries, not 100,000 subqueries): first the runs
    that have the value, then (NULLs last) those that do not, each part by pk for ties —
    the order `sort_by` gives."""
    title, series, column, descending = metric
    has = sa.and_(run_metrics.c.run_pk == runs.c.pk, run_metrics.c.title == title,
                  run_metrics.c.series == series, column.is_not(None))
    columns = [runs.c[name] for name in ROW_COLUMNS]
    first = (sa.select(*columns).select_from(runs.join(run_metrics, has)).where(*conditions)
             .order_by(column.desc() if descending else column.asc(), runs.c.pk)
             .limit(limit).offset(offset))
    rows = [RunRow(row) for row in connection.execute(first)]
    if len(rows) == limit:
        return rows
    with_value = connection.execute(sa.select(sa.func.count()).select_from(
        runs.join(run_metrics, has)).where(*conditions)).scalar_one()
    valued = sa.select(run_metrics.c.run_pk).where(
        run_metrics.c.title == title, run_metrics.c.series == series, column.is_not(None))
    rest = (sa.select(*columns).where(*conditions, runs.c.pk.not_in(valued))
            .order_by(runs.c.pk).limit(limit - len(rows))
            .offset(max(0, offset - with_value)))
    return rows + [RunRow(row) for row in connection.execute(rest)]


def count_runs(connection: sa.Connection, ws: int, spec: RunFilter) -> dict[str, int]:
    """{state: count} of the runs matching `spec`."""
    conditions = _conditions(ws, spec, by_lists=bool(spec.where or spec.tags))
    query = sa.select(runs.c.state, sa.func.count()).where(*conditions).group_by(runs.c.state)
    return {state: int(count) for state, count in connection.execute(query)}


def run_values(connection: sa.Connection, pks: Sequence[int]
               ) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, dict[str, Any]]]]:
    """Parameters (`{"Section/key": value}`) and metric summaries of the runs `pks`, for
    tables and data frames."""
    from .rows import plain_value

    params: dict[int, dict[str, Any]] = {pk: {} for pk in pks}
    metrics: dict[int, dict[str, dict[str, Any]]] = {pk: {} for pk in pks}
    for chunk in chunks(list(pks)):
        for row in connection.execute(sa.select(run_params).where(
                run_params.c.run_pk.in_(chunk))):
            params[row.run_pk][row.path] = plain_value(row._mapping)
        for row in connection.execute(sa.select(run_metrics).where(
                run_metrics.c.run_pk.in_(chunk))):
            metrics[row.run_pk].setdefault(row.title, {})[row.series] = {
                "last": row.last, "min": row.min, "max": row.max, "count": row.count}
    return params, metrics
