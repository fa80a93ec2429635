"""Shared fixtures: a fresh workspace folder per test, a way to run experiment scripts, and
`slurm_cluster`, a real single-node Slurm cluster (see tests/slurm_cluster.py).

The cluster is started on first use (installing the Debian packages if needed, which needs
root) and is left running when the session ends: other xdist workers, or the next test run,
reuse it. Stop it with `make slurm-down`. Its config is DIR/slurm.conf, with
/etc/slurm/slurm.conf a symlink to it, and SLURM_CONF is also set in os.environ for the
session, so sbatch/squeue run as plain subprocesses (by tests or by etude) reach it.
DIR is $ETUDE_SLURM_DIR, else /tmp/etude-slurm.

`postgres_server` is a real PostgreSQL server (see tests/pg_server.py), started on first use
and left running like the cluster (`make pg-down` stops it); `pg_database_url` is the URL of
an empty database of it, made for one test and dropped after it. With ETUDE_PG_URL set (a
SQLAlchemy URL, postgresql+psycopg://...) that server is used instead. Unlike the Slurm
tests, PostgreSQL tests fail, never skip, when no server can be had.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

import pg_server
from slurm_cluster import DEFAULT_DIR, Cluster, ClusterUnavailable, start


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def run_script(tmp_path: Path):
    """Write `source` to a script file and run it with this Python; return the completed process."""

    def run(
        source: str,
        *args: str,
        name: str = "xp.py",
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        script = tmp_path / name
        script.write_text(textwrap.dedent(source))
        result = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{script} exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    return run


def _skip_loudly(request: pytest.FixtureRequest, reason: str) -> NoReturn:
    """Skip, and say so on stderr (past pytest's capture) and in the warnings summary."""
    message = f"SLURM TESTS SKIPPED: {reason}"
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{'!' * 72}\n{message}\n{'!' * 72}", file=sys.stderr, flush=True)
    warnings.warn(message, pytest.PytestWarning, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        _skip_loudly(
            request, "the Slurm test cluster needs root (it installs packages, runs daemons)"
        )
    try:
        cluster = start(Path(os.environ.get("ETUDE_SLURM_DIR", DEFAULT_DIR)))
    except ClusterUnavailable as error:
        _skip_loudly(request, str(error))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in cluster.env.items():
            patch.setenv(name, value)
        yield cluster


@pytest.fixture(scope="session")
def postgres_server() -> pg_server.PgServer:
    """The shared test server: `.url` (its `postgres` database) and `.create_database(name)`."""
    external = os.environ.get("ETUDE_PG_URL")
    try:
        if external:
            pg_server.check_reachable(external)
            return pg_server.PgServer(url=external)
        return pg_server.start()
    except pg_server.PgServerError as error:
        where = "ETUDE_PG_URL" if external else "the test server (tests/pg_server.py)"
        failure = f"POSTGRES UNAVAILABLE: {where}: {error}"
    pytest.fail(failure, pytrace=False)  # outside `except`: no chained traceback


@pytest.fixture
def pg_database_url(
    request: pytest.FixtureRequest, postgres_server: pg_server.PgServer
) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database made for this test, dropped after it."""
    # t_FILE_TEST, cut to leave room for a random part: PostgreSQL keeps 63 bytes of a name.
    readable = re.sub(r"[^a-z0-9]+", "_", f"t_{request.node.path.stem}_{request.node.name}".lower())
    name = f"{readable[:54].rstrip('_')}_{secrets.token_hex(4)}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


# -- SQLite and PostgreSQL ----------------------------------------------------------------------
# `store_url` is None for the workspace's own SQLite file, else the URL of a fresh PostgreSQL
# database; `store_env` also puts it in ETUDE_STORE, so that processes started by the test (and
# `open_store` in this one) use it. Store and tracking tests take one of them to run on both.
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


