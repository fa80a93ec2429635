"""Every store test runs on SQLite and on PostgreSQL (a real server, see tests/pg_server.py).

`store_url` is None for the workspace's own SQLite file, else the URL of a fresh PostgreSQL
database; `store_env` also puts it in ETUDE_STORE, so that experiment processes started by the
test (and `open_store` in this one) use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from etude.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def store_env(store_url: str | None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for child processes (and this one) to use the test's store."""
    if store_url is None:
        monkeypatch.delenv("ETUDE_STORE", raising=False)
        return {}
    monkeypatch.setenv("ETUDE_STORE", store_url)
    return {"ETUDE_STORE": store_url}


@pytest.fixture
def store(workspace: Path, store_env: dict[str, str]) -> Iterator[Store]:
    """The (empty) index of the test's workspace."""
    opened = open_store(workspace)
    yield opened
    opened.close()
