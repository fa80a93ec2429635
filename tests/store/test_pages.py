"""A page of jobs (a query with a limit) is the start of the whole sorted answer, whichever
way the filter's `params.` / `tags.` conditions are written for it (SQLite looks long ones
up per row and starts from short ones), on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from etude.store import Store
from etude.store import store as store_module
from etude.store.records import JobRecord, typed_value

JOBS = 300
FILTERS = [
    'params.lr < 0.01 and tags.model = "cnn"',  # both long
    "params.seed = 7",  # short
    'params.seed = 7 and tags.model = "cnn"',  # short and long
    'params.seed = 7 or tags.model = "cnn"',  # an or with a long part: long
    "params.seed in (3, 7) or params.seed = 11",  # short parts: short
    'not params.seed = 7 and tags.model = "mlp"',
    "params.seed != 7 and state = done",
    "tags has model and state = error",
    "params.lr < 0.00001",  # matches nothing
    'params.seed = 7 and task = "xp.Eval"',
]


def record(i: int, rng: random.Random) -> JobRecord:
    model = rng.choice(["cnn", "mlp", "rnn"])
    params = {"lr": typed_value(rng.choice([0.001, 0.005, 0.05, 0.1])),
              "seed": typed_value(i % 40)}
    return JobRecord(
        folder=f"jobs/xp.learn/{i:04d}", id=f"{i:04d}", task=rng.choice(["xp.Learn", "xp.Eval"]),
        state="error" if i % 9 == 0 else "done", submitted=1000.0 + rng.randrange(50),
        tags={"model": model}, params=params,
    )


@pytest.fixture
def filled(store: Store) -> Store:
    rng = random.Random(5)
    store.write_jobs([record(i, rng) for i in range(JOBS)])
    return store


@pytest.fixture
def statements(filled: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(filled.engine, "before_cursor_execute", keep)
    yield seen
    sa.event.remove(filled.engine, "before_cursor_execute", keep)


@pytest.mark.parametrize("where", FILTERS)
@pytest.mark.parametrize("sort", ["-submitted", "params.lr", None])
def test_a_page_is_the_start_of_the_whole_answer(
    filled: Store, where: str, sort: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PAGE_PROBE", 20)  # 300 jobs: short and long conditions
    whole = [row.id for row in filled.query_jobs(where, sort=sort)]
    for offset in (0, 7):
        page = filled.query_jobs(where, sort=sort, limit=10, offset=offset)
        assert [row.id for row in page] == whole[offset:offset + 10]


def test_sqlite_looks_long_conditions_up_per_row_and_starts_from_short_ones(
    filled: Store, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PAGE_PROBE", 20)

    def page_sql(where: str) -> str:
        statements.clear()
        filled.query_jobs(where, sort="-submitted", limit=10)
        return statements[-1]

    if filled.engine.dialect.name == "postgresql":  # its planner has statistics: IN lists
        for where in ('params.lr < 0.01 and tags.model = "cnn"', "params.seed = 7"):
            sql = page_sql(where)
            assert "EXISTS" not in sql and "workspace_pk + " not in sql
        return
    both_long = page_sql('params.lr < 0.01 and tags.model = "cnn"')
    assert both_long.count("EXISTS") == 2 and "workspace_pk + " not in both_long
    mixed = page_sql('params.seed = 7 and tags.model = "cnn"')
    assert mixed.count("EXISTS") == 1 and "IN (SELECT" in mixed
    assert "workspace_pk + " in mixed  # the short list leads
    either = page_sql('params.seed = 7 or tags.model = "cnn"')
    assert "workspace_pk + " not in either  # an or with a long part is long
    unpaged = filled.query_jobs('params.lr < 0.01 and tags.model = "cnn"')
    assert unpaged and "EXISTS" not in statements[-1]  # the whole answer: IN lists
