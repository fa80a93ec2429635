"""Every store test runs on SQLite and on PostgreSQL (a real server, see tests/pg_server.py),
through the `store_url` / `store_env` fixtures of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from etude.store import Store, open_store


@pytest.fixture
def store(workspace: Path, store_env: dict[str, str]) -> Iterator[Store]:
    """The (empty) index of the test's workspace."""
    opened = open_store(workspace)
    yield opened
    opened.close()
