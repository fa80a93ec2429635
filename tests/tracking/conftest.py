"""Tracking tests: an isolated settings folder, a workspace, and no run left open.

Tests that query take `store_env` (tests/conftest.py) to run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from etude.tracking import Run
from etude.tracking.query import close_indexes

QUIET = {"auto_connect_arg_parser": False, "auto_connect_frameworks": False,
         "auto_resource_monitoring": False, "auto_connect_streams": False}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ETUDE_WORKSPACE", raising=False)
    monkeypatch.delenv("ETUDE_JOB_FOLDER", raising=False)
    yield
    run = Run.current()
    if run is not None:
        run.close()
    close_indexes()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return tmp_path / "ws"
