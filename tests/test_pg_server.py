"""The throwaway PostgreSQL server of tests/pg_server.py and its fixtures."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import pg_server

SCRIPT = Path(__file__).with_name("pg_server.py")


def _scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar()
    finally:
        engine.dispose()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"  # xdist workers share the server


def test_server_answers_through_sqlalchemy_and_psycopg(postgres_server):
    engine = sa.create_engine(postgres_server.url)
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_created_databases_are_isolated(postgres_server):
    first, second = _unique("iso_a"), _unique("iso_b")
    try:
        url_a = postgres_server.create_database(first)
        url_b = postgres_server.create_database(second)
        assert url_a.endswith(f"/{first}") and url_b.endswith(f"/{second}")
        engine = sa.create_engine(url_a)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE item (id int)"))
            conn.execute(sa.text("INSERT INTO item VALUES (1), (2)"))
        engine.dispose()
        assert _scalar(url_a, "SELECT count(*) FROM item") == 2
        assert _scalar(url_b, "SELECT to_regclass('item') IS NULL") is True
        assert _scalar(url_a, "SELECT current_database()") == first
    finally:
        postgres_server.drop_database(first)
        postgres_server.drop_database(second)


def test_create_database_replaces_an_existing_one_even_while_in_use(postgres_server):
    name = _unique("again")
    try:
        url = postgres_server.create_database(name)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE item (id int)"))
        held = engine.connect()  # a session left open does not block the drop
        assert postgres_server.create_database(name) == url
        assert _scalar(url, "SELECT to_regclass('item') IS NULL") is True
        held.invalidate()
        engine.dispose()
    finally:
        postgres_server.drop_database(name)
    count = f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    assert _scalar(postgres_server.url, count) == 0


def test_create_database_rejects_names_that_need_quoting(postgres_server):
    with pytest.raises(ValueError, match="database name"):
        postgres_server.create_database('x"; DROP DATABASE postgres; --')


def test_url_is_stable(postgres_server, monkeypatch):
    monkeypatch.delenv("ETUDE_PG_PORT", raising=False)
    default = "postgresql+psycopg://postgres@127.0.0.1:55432/postgres"
    assert pg_server.url() == pg_server.url() == default
    monkeypatch.setenv("ETUDE_PG_PORT", "55999")
    assert pg_server.url() == "postgresql+psycopg://postgres@127.0.0.1:55999/postgres"
    assert pg_server.url(5432).endswith("@127.0.0.1:5432/postgres")
    monkeypatch.undo()
    if postgres_server.dir is not None:  # ours, not ETUDE_PG_URL's
        assert postgres_server.url == pg_server.url()
        assert pg_server.start().url == postgres_server.url


def test_pg_database_url_is_an_empty_database_named_after_the_test(pg_database_url):
    name = pg_database_url.rpartition("/")[2]
    assert name.startswith("t_test_pg_server_test_pg_database_url_is_an_empty_")
    assert len(name) <= 63
    assert _scalar(pg_database_url, "SELECT current_database()") == name
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert _scalar(pg_database_url, tables) == 0


@pytest.fixture
def private_server_dir() -> Iterator[Path]:
    """A folder and a free port for a second server (tmp_path is private to root: 0700)."""
    if os.environ.get("ETUDE_PG_URL"):
        pytest.skip("ETUDE_PG_URL names the server to use; the local harness is not under test")
    dir = Path(tempfile.mkdtemp(prefix="etude-pg-test-", dir="/tmp"))
    try:
        yield dir
    finally:
        pg_server.stop(dir)
        shutil.rmtree(dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postmaster(dir: Path) -> int:
    return int((dir / "data" / "postmaster.pid").read_text().split()[0])


def test_lifecycle_shares_reuses_restarts_and_reinitializes(private_server_dir):
    dir, port = private_server_dir, _free_port()
    up = [sys.executable, str(SCRIPT), "up", "--dir", str(dir), "--port", str(port)]
    starters = [
        subprocess.Popen(up, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)
    ]
    outputs = [starter.communicate(timeout=120)[0].decode() for starter in starters]
    assert [starter.returncode for starter in starters] == [0, 0, 0], outputs
    log = (dir / "log" / "postgres.log").read_text()
    assert log.count("ready to accept connections") == 1  # one started it, two reused it
    server_url = pg_server.url(port)
    kept = pg_server.create_database("kept", server_url)

    pid = _postmaster(dir)
    assert pg_server.start(dir, port).url == server_url and _postmaster(dir) == pid

    pg_server.stop(dir)
    assert not pg_server.is_up(dir, port)
    pg_server.start(dir, port)  # restarted, data kept
    assert _postmaster(dir) != pid and _scalar(kept, "SELECT 1") == 1

    pg_server.stop(dir)
    (dir / "data" / "global" / "pg_control").unlink()
    pg_server.start(dir, port)  # a fresh cluster
    count = "SELECT count(*) FROM pg_database WHERE datname = 'kept'"
    assert _scalar(server_url, count) == 0


def test_start_failure_names_the_log(private_server_dir):
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(pg_server.PgServerError, match="Address already in use") as caught:
            pg_server.start(private_server_dir, port)
    assert "postgres.log" in str(caught.value)
