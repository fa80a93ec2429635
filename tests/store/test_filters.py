"""The filter grammar: parsing and its errors (tables), what filters select and how sort specs
order on SQLite and on PostgreSQL, and that nothing the user writes reaches the SQL text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from etude.store import schema
from etude.store.filters import (
    JOB_STATES,
    FilterError,
    Value,
    compile_job_filter,
    job_fields,
    parse,
    sort_expressions,
    sqlite_regexp,
)
from etude.store.records import typed_value
from etude.store.schema import jobs


# -- parsing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("state = error", "state = error", id="comparison"),
        pytest.param("  state=error  ", "state = error", id="no-spaces"),
        pytest.param("a = 1 and b = 2 or c = 3", "(a = 1 and b = 2) or c = 3", id="and-over-or"),
        pytest.param("a = 1 or b = 2 and c = 3", "a = 1 or (b = 2 and c = 3)", id="and-over-or-2"),
        pytest.param("not a = 1 and b = 2", "not a = 1 and b = 2", id="not-over-and"),
        pytest.param("not (a = 1 or b = 2)", "not (a = 1 or b = 2)", id="not-group"),
        pytest.param("not not a = 1", "not not a = 1", id="not-not"),
        pytest.param("(a = 1 or b = 2) and c = 3", "(a = 1 or b = 2) and c = 3", id="parens"),
        pytest.param("((a = 1))", "a = 1", id="double-parens"),
        pytest.param("a = 1 AND NOT b = 2 Or c = 3", "(a = 1 and not b = 2) or c = 3",
                     id="keywords-any-case"),
        pytest.param("a != 1", "a != 1", id="not-equal"),
        pytest.param("a<1 and b<=2 and c>3 and d>=4", "a < 1 and b <= 2 and c > 3 and d >= 4",
                     id="orderings"),
        pytest.param('task ~ "le.rn$"', 'task ~ "le.rn$"', id="regex"),
        pytest.param("reason in (killed, timeout)", "reason in (killed, timeout)", id="in"),
        pytest.param("reason NOT IN (killed,)", "reason not in (killed)",
                     id="not-in-trailing-comma"),
        pytest.param("tags has debug", "tags has debug", id="has"),
        pytest.param('tags has "my tag"', 'tags has "my tag"', id="has-quoted"),
        pytest.param("params.model.lr < -1.5e-3", "params.model.lr < -1.5e-3", id="path-number"),
        pytest.param('params."a key" = 1', 'params."a key" = 1', id="quoted-path"),
        pytest.param("tags.my-tag = x", "tags.my-tag = x", id="dash-in-path"),
        pytest.param("task = xp.learn", "task = xp.learn", id="dotted-word"),
        pytest.param("a = 'it''s'", None, id="adjacent-strings"),
        pytest.param(r'a = "say \"hi\" \\ \d"', r'a = "say \"hi\" \\ \\d"', id="escapes"),
        pytest.param("a = TRUE or b = False or c = NULL", "a = true or b = false or c = null",
                     id="constants"),
        pytest.param('a = "true"', 'a = "true"', id="quoted-constant-is-text"),
        pytest.param("submitted >= 2026-12-01T10:30", "submitted >= 2026-12-01T10:30", id="date"),
        pytest.param("duration > 1h30m", "duration > 1h30m", id="duration"),
    ],
)
def test_parse_groups_as_written(text: str, expected: str | None) -> None:
    """str() of the tree gives the filter back, with parentheses where `and` binds."""
    if expected is None:
        with pytest.raises(FilterError):
            parse(text)
    else:
        assert str(parse(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("42", Value("number", 42, "42", 5), id="int"),
        pytest.param("-2.5", Value("number", -2.5, "-2.5", 5), id="negative-float"),
        pytest.param("1e-3", Value("number", 0.001, "1e-3", 5), id="exponent"),
        pytest.param("1.2.3", Value("text", "1.2.3", "1.2.3", 5), id="version-is-text"),
        pytest.param("cnn", Value("text", "cnn", "cnn", 5), id="bare-word"),
        pytest.param("'cnn'", Value("text", "cnn", "cnn", 5, quoted=True), id="single-quotes"),
        pytest.param("True", Value("bool", True, "true", 5), id="true"),
        pytest.param("null", Value("null", None, "null", 5), id="null"),
        pytest.param("90s", Value("text", "90s", "90s", 5), id="duration-word"),
        pytest.param('"2026-12-01 10:30:00"',
                     Value("text", "2026-12-01 10:30:00", "2026-12-01 10:30:00", 5, quoted=True),
                     id="quoted-date"),
    ],
)
def test_parse_reads_values(text: str, expected: Value) -> None:
    node = parse(f"a = {text}")
    assert getattr(node, "value", None) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_filter_means_no_condition(text: str) -> None:
    assert parse(text) is None
    assert compile_job_filter(text) is None
    assert compile_job_filter(None) is None


SYNTAX_ERRORS = [
    pytest.param("state =", 8, "missing value after '='", id="missing-value"),
    pytest.param("state = )", 9, "expected a value after '=', got ')'", id="missing-value-paren"),
    pytest.param("state", 6, "expected an operator after 'state', got the end", id="no-operator"),
    pytest.param("state is null", 7, "expected an operator after 'state', got 'is'; valid "
                 "operators: = != < <= > >= ~ in, not in, has", id="bad-operator-word"),
    pytest.param("state == error", 7, "unknown operator '=='; use '='", id="double-equals"),
    pytest.param("state <> error", 7, "unknown operator '<>'; use '!='", id="sql-not-equal"),
    pytest.param("state =! error", 7, "unknown operator '=!'; valid operators", id="bad-operator"),
    pytest.param("task !~ x", 6, "unknown operator '!~'; use 'not FIELD ~ X'", id="not-regex-op"),
    pytest.param("(state = error", 1, "unclosed parenthesis; add ')'", id="unclosed-paren"),
    pytest.param("reason in (a, b", 11, "unclosed parenthesis", id="unclosed-list"),
    pytest.param("state = error)", 14, "unexpected ')'; no '(' opens it", id="extra-paren"),
    pytest.param('message = "oops', 11, 'unclosed string; close it with "', id="unclosed-string"),
    pytest.param("message = 'it\\'", 11, "unclosed string; close it with '",
                 id="unclosed-escaped-quote"),
    pytest.param("state = error done", 15, "unexpected 'done'; expected 'and', 'or' or the end",
                 id="trailing-garbage"),
    pytest.param("(state = error done)", 16, "expected 'and', 'or' or ')'",
                 id="garbage-in-parens"),
    pytest.param("state in error", 10, "expected '(' after 'in', got 'error'; write a list",
                 id="in-without-list"),
    pytest.param("state in ()", 11, "empty list", id="empty-list"),
    pytest.param("state in (a b)", 13, "expected ',' or ')' in the list, got 'b'",
                 id="list-without-comma"),
    pytest.param("state not error", 11, "expected 'in' after 'not', got 'error'", id="not-alone"),
    pytest.param("and = 1", 1, "expected a field name, got 'and'", id="keyword-as-field"),
    pytest.param('"state" = error', 1, "expected a field name, got '\"state\"'",
                 id="quoted-field"),
    pytest.param("1 = 1", 1, "expected a field name, got '1'", id="number-as-field"),
    pytest.param("state = error and", 18, "expected a field name, got the end", id="dangling-and"),
    pytest.param("params..lr = 1", 1, "invalid field name 'params..lr'", id="empty-path-part"),
    pytest.param("reason = and", 10, "got the keyword 'and'; quote it", id="keyword-as-value"),
    pytest.param("state = err@r", 12, "unexpected character '@'", id="bad-character"),
    pytest.param('message ~ "a(b"', 13, "invalid regular expression: missing )",
                 id="bad-regex-quoted"),
    pytest.param(r'message ~ "\"x\"["', 17, "invalid regular expression", id="bad-regex-escaped"),
    pytest.param("message ~ +a", 11, "invalid regular expression: nothing to repeat",
                 id="bad-regex-bare"),
    pytest.param("message ~ null", 11, "'~' needs a pattern", id="regex-null"),
    pytest.param("submitted > 2026-01-01 10:00", 13, 'a date and a time must be quoted together;'
                 ' write "2026-01-01 10:00" or 2026-01-01T10:00', id="unquoted-date-time"),
    pytest.param("retries = 1e999", 11, "number 1e999 is too large", id="huge-number"),
]


@pytest.mark.parametrize(("text", "column", "message"), SYNTAX_ERRORS)
def test_parse_rejects(text: str, column: int, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text)
    assert message in f"{caught.value.problem}; {caught.value.hint}"
    assert caught.value.column == column
    assert caught.value.text == text


FIELDS = ", ".join(job_fields())
MEANING_ERRORS = [
    pytest.param("stat = error", 1,
                 f"unknown field 'stat' at column 1; did you mean 'state'? Valid fields: {FIELDS}",
                 id="unknown-field"),
    pytest.param("param.lr < 1", 1, "did you mean 'params.lr'?", id="unknown-namespace"),
    pytest.param("dur > 1", 1, "did you mean 'duration'?", id="prefix-of-field"),
    pytest.param("zzz = 1", 1, f"unknown field 'zzz' at column 1; Valid fields: {FIELDS}",
                 id="no-close-field"),
    pytest.param("state.x = 1", 1, "unknown field 'state.x' at column 1; state has no sub-fields",
                 id="path-on-column"),
    pytest.param("params = 1", 1, "params needs a path at column 1; write params.PATH",
                 id="namespace-without-path"),
    pytest.param("tags ~ x", 1, "tags needs a name at column 1; write tags.NAME",
                 id="tags-without-name"),
    pytest.param("state has x", 7, "'has' applies to tags (tags has NAME), not to state",
                 id="has-on-column"),
    pytest.param("params has lr", 8, "'has' applies to tags", id="has-on-params"),
    pytest.param("tags.x has y", 8,
                 "'has' takes the name after it at column 8; write tags has \"x\"",
                 id="has-with-path"),
    pytest.param("state = faild", 9, "unknown state 'faild' at column 9; did you mean 'failed'?",
                 id="bad-state"),
    pytest.param("state in (done, runing)", 17, "did you mean 'running'? Valid states: "
                 + ", ".join(JOB_STATES), id="bad-state-in-list"),
    pytest.param("state = true", 9, "state is text, not true or false", id="bool-on-text"),
    pytest.param("reason < b", 8,
                 "'<' does not apply to reason at column 8; use =, !=, in, not in, ~",
                 id="ordering-on-text"),
    pytest.param("duration ~ 1", 10, "'~' does not apply to duration", id="regex-on-number"),
    pytest.param("duration > soon", 12, "duration: expected a duration such as 90s",
                 id="bad-duration"),
    pytest.param('duration > "1 h"', 12, "expected a duration", id="spaced-duration"),
    pytest.param("retries > 2h", 11, "retries: expected a number, got '2h'", id="count-not-number"),
    pytest.param("submitted > yesterday", 13, "submitted: expected a date such as 2026-12-01",
                 id="bad-date"),
    pytest.param("ended < 2026-13-01", 9, "ended: month must be in 1..12", id="impossible-date"),
    pytest.param("duration < null", 12, "'<' cannot compare with null", id="ordering-null"),
    pytest.param("params.lr < small", 13, "'<' compares numbers, got 'small'",
                 id="ordering-param-text"),
]


@pytest.mark.parametrize(("text", "column", "message"), MEANING_ERRORS)
def test_compile_rejects(text: str, column: int, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_job_filter(text)
    assert message in str(caught.value)
    assert caught.value.column == column
    assert caught.value.text == text


def test_error_shows_the_filter_with_a_caret() -> None:
    with pytest.raises(FilterError) as caught:
        compile_job_filter("state = error and  duraton > 1h")
    assert str(caught.value) == (
        "unknown field 'duraton' at column 20; did you mean 'duration'? "
        f"Valid fields: {FIELDS}\n"
        "state = error and  duraton > 1h\n"
        "                   ^"
    )
    assert isinstance(caught.value, ValueError)


def test_job_fields_lists_columns_then_namespaces() -> None:
    fields = job_fields()
    assert fields[:4] == ["state", "reason", "task", "experiment"]
    assert fields[-2:] == ["tags.NAME", "params.PATH"]


# -- behaviour on both databases -------------------------------------------------------------
def at(text: str) -> float:
    """Seconds since the epoch of a local time."""
    return datetime.fromisoformat(text).timestamp()


JOBS: list[dict[str, Any]] = [
    {
        "id": "a1", "task": "xp.Learn", "state": "error", "reason": "killed", "retries": 1,
        "message": "CUDA out of memory", "launcher": "slurm", "cluster_job_id": "12345",
        "submitted": at("2026-01-02T08:00"), "started": at("2026-01-02T08:00"),
        "ended": at("2026-01-02T10:00"), "duration": 7200.0,
        "params": {"lr": 0.001, "layers": 2, "model.name": "cnn", "flag": True, "mixed": 3},
        "tags": {"model": "cnn", "debug": True}, "experiments": ["base"],
    },
    {
        "id": "b2", "task": "xp.Learn", "state": "done", "duration": 1800.0,
        "submitted": at("2025-12-15T12:00"),
        "params": {"lr": 0.1, "layers": 10, "flag": False, "opt": None, "mixed": "abc"},
        "tags": {"model": "rnn"}, "experiments": ["base", "sweep"],
    },
    {
        "id": "c3", "task": "xp.Evaluate", "state": "error", "reason": "timeout",
        "duration": 100.0, "message": "over time", "params": {"a key": 1},
        "tags": {}, "experiments": [],
    },
    {
        "id": "d4", "task": "other.learning", "state": "running", "submitted": at("2026-03-01"),
        "params": {"lr": 0.005, "layers": 2, "mixed": 20},
        "tags": {"model": "cnn", "my-tag": "x"}, "experiments": ["sweep"],
    },
    {
        "id": "e5", "task": "xp.Prepare", "state": "waiting", "kind": "infra",
        "params": {}, "tags": {"debug": False, "note": "x' OR 1=1 --"},
        "experiments": ["other"],
    },
]
ALL = {"a1", "b2", "c3", "d4", "e5"}


def _fill(connection: sa.Connection) -> None:
    workspace = connection.execute(
        schema.workspaces.insert().values(path="/ws", created=0.0).returning(
            schema.workspaces.c.pk)
    ).scalar_one()
    names = sorted({name for job in JOBS for name in job["experiments"]})
    experiment_pk = {
        name: connection.execute(
            schema.experiments.insert().values(workspace_pk=workspace, name=name).returning(
                schema.experiments.c.pk)
        ).scalar_one()
        for name in names
    }
    for job in JOBS:
        columns = {k: v for k, v in job.items() if k not in ("params", "tags", "experiments")}
        columns.setdefault("kind", "task")
        pk = connection.execute(
            jobs.insert().values(
                workspace_pk=workspace, folder=f"jobs/{job['task']}/{job['id']}", updated=0.0,
                **columns,
            ).returning(jobs.c.pk)
        ).scalar_one()
        for table, key, values in (
            (schema.job_params, "path", job["params"]), (schema.job_tags, "name", job["tags"]),
        ):
            for name, value in values.items():
                kind, num, text = typed_value(value)
                connection.execute(
                    table.insert().values(job_pk=pk, kind=kind, num=num, text=text, **{key: name})
                )
        for name in job["experiments"]:
            connection.execute(schema.job_experiments.insert().values(
                job_pk=pk, experiment_pk=experiment_pk[name]))


def _register_regexp(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("regexp", 2, sqlite_regexp, deterministic=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A database holding JOBS."""
    if request.param == "sqlite":
        made = sa.create_engine(f"sqlite:///{tmp_path / 'index.db'}")
        sa.event.listen(made, "connect", _register_regexp)
    else:
        made = sa.create_engine(request.getfixturevalue("pg_database_url"))
    schema.metadata.create_all(made)
    with made.begin() as connection:
        _fill(connection)
    yield made
    made.dispose()


def selected(engine: sa.Engine, text: str) -> set[str]:
    condition = compile_job_filter(text)
    query = sa.select(jobs.c.id)
    query = query if condition is None else query.where(condition)
    with engine.connect() as connection:
        return set(connection.scalars(query))


def ordered(engine: sa.Engine, spec: str | None) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.select(jobs.c.id).order_by(*sort_expressions(spec))))


SELECTIONS = [
    # the examples of the brief
    pytest.param('params.lr < 0.01 and tags.model = "cnn"', {"a1", "d4"}, id="param-and-tag"),
    pytest.param('(state = error and reason in (killed, timeout)) or '
                 '(task ~ "learn" and duration > 3600)', {"a1", "c3"}, id="nested"),
    pytest.param("not tags has debug", {"b2", "c3", "d4"}, id="not-has"),
    pytest.param("duration > 1h", {"a1"}, id="duration-unit"),
    pytest.param("submitted >= 2026-01-01", {"a1", "d4"}, id="date"),
    # logic
    pytest.param("", ALL, id="empty"),
    pytest.param("state = done or state = error and reason = killed", {"a1", "b2"},
                 id="and-binds-tighter"),
    pytest.param("(state = done or state = error) and reason = killed", {"a1"}, id="parens"),
    pytest.param("not not state = done", {"b2"}, id="not-not"),
    pytest.param("STATE = error AND NOT reason = killed", None, id="fields-are-case-sensitive"),
    pytest.param("state = error AND NOT reason = killed", {"c3"}, id="keywords-any-case"),
    # columns
    pytest.param("state = failed", {"a1", "c3"}, id="failed-means-error"),
    pytest.param("state = Done", {"b2"}, id="state-any-case"),
    pytest.param("state != error", {"b2", "d4", "e5"}, id="state-not-equal"),
    pytest.param("state not in (error, done)", {"d4", "e5"}, id="state-not-in"),
    pytest.param("reason != killed", {"b2", "c3", "d4", "e5"}, id="not-equal-keeps-null"),
    pytest.param("not reason = killed", {"b2", "c3", "d4", "e5"}, id="not-keeps-null"),
    pytest.param("reason not in (killed, timeout)", {"b2", "d4", "e5"}, id="not-in-keeps-null"),
    pytest.param("reason = null", {"b2", "d4", "e5"}, id="column-null"),
    pytest.param("reason != null", {"a1", "c3"}, id="column-not-null"),
    pytest.param("reason in (killed, null)", {"a1", "b2", "d4", "e5"}, id="in-with-null"),
    pytest.param("task = learn", {"a1", "b2"}, id="task-last-part"),
    pytest.param("task = XP.LEARN", {"a1", "b2"}, id="task-full-name-any-case"),
    pytest.param("task = ear", set(), id="task-no-substring"),
    pytest.param('task = "%"', set(), id="task-like-wildcard-escaped"),
    pytest.param("task = earning", set(), id="task-last-part-whole"),
    pytest.param("task in (evaluate, prepare)", {"c3", "e5"}, id="task-in"),
    pytest.param('task ~ "LEARN"', {"a1", "b2", "d4"}, id="task-regex-any-case"),
    pytest.param('task ~ "(?i)^xp\\.l"', {"a1", "b2"}, id="task-regex-own-flag"),
    pytest.param('task ~ "(?s)^xp\\.L"', {"a1", "b2"}, id="task-regex-other-flag"),
    pytest.param('message ~ "memory"', {"a1"}, id="regex-unanchored"),
    pytest.param('message ~ "Memory"', set(), id="regex-case-sensitive"),
    pytest.param('not message ~ "memory"', {"b2", "c3", "d4", "e5"}, id="not-regex-keeps-null"),
    pytest.param('id ~ "^[ab]"', {"a1", "b2"}, id="id-regex"),
    pytest.param("id = a", set(), id="id-exact"),
    pytest.param("kind = infra", {"e5"}, id="kind"),
    pytest.param("launcher = slurm and cluster_job_id = 12345", {"a1"}, id="number-as-text"),
    pytest.param('folder ~ "^jobs/xp\\.Learn/"', {"a1", "b2"}, id="folder-regex"),
    pytest.param("folder ~ jobs/other", {"d4"}, id="bare-regex"),
    pytest.param("retries >= 1", {"a1"}, id="retries"),
    pytest.param("retries = 0", {"b2", "c3", "d4", "e5"}, id="retries-default"),
    pytest.param("duration <= 30m", {"b2", "c3"}, id="duration-minutes"),
    pytest.param("duration > 1h30m and duration < 1d", {"a1"}, id="duration-compound"),
    pytest.param("duration = 1800", {"b2"}, id="duration-seconds"),
    pytest.param("duration = null", {"d4", "e5"}, id="duration-null"),
    pytest.param("not duration > 1000", {"c3", "d4", "e5"}, id="not-ordering-keeps-null"),
    pytest.param('submitted < "2026-01-01 00:00:00"', {"b2"}, id="date-time-quoted"),
    pytest.param("submitted > 2026-02-28T12:00", {"d4"}, id="date-time-bare"),
    pytest.param(f"submitted = {at('2026-03-01')}", {"d4"}, id="epoch-seconds"),
    pytest.param("ended = null", {"b2", "c3", "d4", "e5"}, id="time-null"),
    # experiments
    pytest.param("experiment = base", {"a1", "b2"}, id="experiment"),
    pytest.param("experiment = sweep", {"b2", "d4"}, id="experiment-any"),
    pytest.param("experiment != base", {"c3", "d4", "e5"}, id="experiment-not"),
    pytest.param("experiment = null", {"c3"}, id="experiment-none"),
    pytest.param("experiment in (sweep, other)", {"b2", "d4", "e5"}, id="experiment-in"),
    pytest.param('experiment ~ "^sw"', {"b2", "d4"}, id="experiment-regex"),
    # params and tags
    pytest.param("params.lr = 0.1", {"b2"}, id="param-equal"),
    pytest.param("params.lr != 0.1", {"a1", "c3", "d4", "e5"}, id="param-not-equal-keeps-missing"),
    pytest.param("params.layers > 5", {"b2"}, id="param-numeric-not-text"),
    pytest.param("params.layers < 5", {"a1", "d4"}, id="param-less"),
    pytest.param("params.layers in (2, 10)", {"a1", "b2", "d4"}, id="param-in"),
    pytest.param("params.layers not in (2)", {"b2", "c3", "e5"}, id="param-not-in"),
    pytest.param("params.lr >= 5e-3", {"b2", "d4"}, id="param-exponent"),
    pytest.param("params.flag = true", {"a1"}, id="param-true"),
    pytest.param("params.flag = false", {"b2"}, id="param-false"),
    pytest.param("params.flag = 1", set(), id="param-bool-is-not-number"),
    pytest.param("params.flag >= 0", set(), id="param-bool-not-ordered"),
    pytest.param('params.flag = "true"', {"a1"}, id="param-text-of-bool"),
    pytest.param("params.opt = null", {"b2"}, id="param-null"),
    pytest.param("params.model.name = cnn", {"a1"}, id="param-dotted-path"),
    pytest.param('params.model.name ~ "^c"', {"a1"}, id="param-regex"),
    pytest.param('params."a key" = 1', {"c3"}, id="param-quoted-path"),
    pytest.param("params.mixed in (3, abc)", {"a1", "b2"}, id="param-in-mixed"),
    pytest.param("params.nothing = 1", set(), id="param-missing"),
    pytest.param("tags has debug", {"a1", "e5"}, id="has"),
    pytest.param("tags.debug = true", {"a1"}, id="tag-bool"),
    pytest.param("tags.my-tag = x", {"d4"}, id="tag-dash"),
    pytest.param("tags.model in (cnn, rnn)", {"a1", "b2", "d4"}, id="tag-in"),
    pytest.param("not tags.model = cnn", {"b2", "c3", "e5"}, id="tag-not"),
]


@pytest.mark.parametrize(("text", "expected"), SELECTIONS)
def test_filter_selects(engine: sa.Engine, text: str, expected: set[str] | None) -> None:
    if expected is None:
        with pytest.raises(FilterError):
            selected(engine, text)
    else:
        assert selected(engine, text) == expected


def test_filter_works_inside_a_subquery(engine: sa.Engine) -> None:
    """The EXISTS conditions stay correlated to `jobs` when the query is nested (counts)."""
    inner = sa.select(jobs.c.state).where(
        compile_job_filter("tags.model = cnn or experiment = sweep")
    ).subquery()
    query = sa.select(inner.c.state, sa.func.count()).group_by(inner.c.state)
    with engine.connect() as connection:
        assert dict(connection.execute(query).all()) == {"error": 1, "done": 1, "running": 1}


# -- injection ------------------------------------------------------------------------------
HOSTILE = [
    pytest.param("message = \"x' OR 1=1 --\"", set(), id="quote-in-value"),
    pytest.param("message = '\"; DROP TABLE jobs; --'", set(), id="drop-in-value"),
    pytest.param('message ~ "\'; DROP TABLE jobs; --"', set(), id="drop-in-regex"),
    pytest.param("tags.note = \"x' OR 1=1 --\"", {"e5"}, id="quote-is-literal"),
    pytest.param("task = \"learn' OR '1'='1\"", set(), id="quote-in-task"),
    pytest.param('params."lr; DROP TABLE jobs" = 1', set(), id="drop-in-quoted-path"),
    pytest.param("tags has \"debug' OR '1'='1\"", set(), id="quote-in-tag-name"),
    pytest.param("experiment = \"base' --\"", set(), id="quote-in-experiment"),
    pytest.param("params.lr; DROP TABLE jobs = 1", None, id="drop-in-field"),
    pytest.param("state) or (1=1", None, id="paren-in-field"),
    pytest.param("state = error) or (1=1", None, id="paren-after-value"),
    pytest.param("state = error; DROP TABLE jobs", None, id="statement-after-value"),
    pytest.param("1=1 or state = error", None, id="tautology"),
    pytest.param("state = error -- and reason = killed", None, id="comment"),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_hostile_input_is_an_error_or_a_literal(
    engine: sa.Engine, text: str, expected: set[str] | None
) -> None:
    if expected is None:
        with pytest.raises(FilterError):
            selected(engine, text)
    else:
        assert selected(engine, text) == expected
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(jobs)) == len(JOBS)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "pg"])
def test_user_text_is_bound_never_in_the_sql(dialect: sa.Dialect) -> None:
    condition = compile_job_filter(
        'message = "DROP1" or params."DROP2" = DROP3 or tags has DROP4 or task = DROP5 '
        'or experiment ~ DROP6 or reason in (DROP7) or tags.DROP8 < 1'
    )
    query = sa.select(jobs.c.id).where(condition).order_by(*sort_expressions("-params.DROP9"))
    compiled = query.compile(dialect=dialect)
    assert "DROP" not in str(compiled)
    assert {f"DROP{n}" for n in range(1, 10)} <= {
        value.strip("%.").upper() for value in map(str, compiled.params.values())
    }


# -- sorting --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(None, ["a1", "b2", "c3", "d4", "e5"], id="none-is-pk"),
        pytest.param("duration", ["c3", "b2", "a1", "d4", "e5"], id="nulls-last"),
        pytest.param("-duration", ["a1", "b2", "c3", "d4", "e5"], id="desc-nulls-last"),
        pytest.param("params.layers", ["a1", "d4", "b2", "c3", "e5"], id="param-numeric"),
        pytest.param("-params.layers", ["b2", "a1", "d4", "c3", "e5"], id="param-desc"),
        pytest.param("params.mixed", ["a1", "d4", "b2", "c3", "e5"], id="param-num-then-text"),
        pytest.param("-tags.model", ["b2", "a1", "d4", "c3", "e5"], id="tag-desc"),
        pytest.param("task, -submitted", ["d4", "c3", "a1", "b2", "e5"], id="two-keys"),
        pytest.param("+state ,-id", ["b2", "c3", "a1", "d4", "e5"], id="plus-and-spaces"),
        pytest.param('params."a key"', ["c3", "a1", "b2", "d4", "e5"], id="quoted-path"),
        pytest.param("experiment", ["a1", "b2", "c3", "d4", "e5"], id="experiment"),
    ],
)
def test_sort_orders(engine: sa.Engine, spec: str | None, expected: list[str]) -> None:
    assert ordered(engine, spec) == expected


def test_sort_ends_with_the_primary_key() -> None:
    assert sort_expressions("") == [jobs.c.pk]
    assert sort_expressions("-duration")[-1] is jobs.c.pk


@pytest.mark.parametrize(
    ("spec", "column", "message"),
    [
        pytest.param("-stat", 2, "unknown sort field 'stat' at column 2; did you mean 'state'? "
                     f"Valid fields: {FIELDS}", id="unknown"),
        pytest.param("params", 1, "params needs a path", id="namespace-alone"),
        pytest.param("task task", 6, "expected ',' or the end of the sort spec", id="no-comma"),
        pytest.param("task,", 6, "expected a field name, got the end", id="trailing-comma"),
        pytest.param("-", 1, "invalid field name '-'", id="sign-alone"),
        pytest.param("task; DROP TABLE jobs", 5, "unexpected character ';'", id="injection"),
    ],
)
def test_sort_rejects(spec: str, column: int, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        sort_expressions(spec)
    assert message in str(caught.value)
    assert caught.value.column == column


# -- SQLite's regexp ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        pytest.param("ear", "learn", True, id="search-not-match"),
        pytest.param("^ear", "learn", False, id="anchored"),
        pytest.param("(?i)LEARN", "xp.Learn", True, id="flag"),
        pytest.param("x", None, False, id="null"),
    ],
)
def test_sqlite_regexp(pattern: str, value: str | None, expected: bool) -> None:
    assert sqlite_regexp(pattern, value) is expected
