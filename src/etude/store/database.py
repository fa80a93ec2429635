"""Connecting to the index database and bringing its schema up to date.

Opening checks the schema revision with one query; an empty database gets the current schema
at once (stamped with the head revision), and only an old one imports Alembic and migrates.
Either happens under a lock (a file lock beside a SQLite file, an advisory lock on
PostgreSQL), so two processes opening an old index at once migrate it once: one migrates, the
other waits and then finds it current. A database whose revision this etude does not know was
written by a newer etude: opening it is refused with both versions named.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from ..workspace import FileLock
from .location import StoreLocation
from .schema import HEAD, REVISIONS, metadata

logger = logging.getLogger("etude.store")

T = TypeVar("T")
BUSY_TIMEOUT_S = 60  # how long SQLite waits for another writer before giving up
WRITE_ATTEMPTS = 6  # a write transaction is tried again after a lock timeout or a deadlock
PG_MIGRATION_LOCK = 0x65747564  # advisory lock key ("etud")


class StoreError(RuntimeError):
    """The index cannot be used; the message names the database and what to do."""


class StoreVersionError(StoreError):
    """The index was written by a newer etude."""


class StoreCorruptError(StoreError):
    """The SQLite file is not a readable database."""


def create_engine(location: StoreLocation) -> sa.Engine:
    """An engine for `location`; SQLite in WAL mode, waiting for other writers."""
    if not location.is_sqlite:
        return sa.create_engine(location.url, pool_pre_ping=True, pool_size=2, max_overflow=4)
    assert location.path is not None
    location.path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        location.url,
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is off: `_sqlite_begin` opens every transaction,
    # so that writers can take the write lock up front (BEGIN IMMEDIATE) and never deadlock
    # upgrading a read lock.
    dbapi_connection.isolation_level = None
    from .filters import sqlite_regexp  # the `~` operator of filters; SQLite has no REGEXP

    dbapi_connection.create_function("regexp", 2, sqlite_regexp, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get("etude_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a write transaction, committed on exit, rolled back on error."""
    with engine.connect() as connection:
        connection = connection.execution_options(etude_write=True)
        with connection.begin():
            yield connection


def run_write(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
    """`work(connection)` in a write transaction, tried again when the database was busy
    (SQLite's lock timeout) or chose this transaction as a deadlock victim (PostgreSQL)."""
    delay = 0.05
    for attempt in range(WRITE_ATTEMPTS):
        try:
            with write_transaction(engine) as connection:
                return work(connection)
        except sa.exc.OperationalError as exc:
            if attempt == WRITE_ATTEMPTS - 1 or not _transient(exc):
                raise
            logger.info("index busy (%s); trying again in %.2f s", exc.orig, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def _transient(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(word in text for word in ("locked", "busy", "deadlock", "could not serialize"))


# -- schema revision ------------------------------------------------------------------------
def read_revision(connection: sa.Connection) -> str | None:
    """The Alembic revision of the database, None for an empty one."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    return rows[0][0] if rows else None


def ensure_schema(engine: sa.Engine, location: StoreLocation) -> None:
    """Migrate the database to `HEAD` if it is older; raise `StoreVersionError` if newer.

    Raises `StoreCorruptError` when a SQLite file is not a database.
    """
    try:
        with engine.connect() as connection:
            revision = read_revision(connection)
    except sa.exc.DatabaseError as exc:
        _raise_unreadable(exc, location)
    if revision == HEAD:
        return
    _check_known(revision, location)
    with _migration_lock(engine, location):
        with engine.connect() as connection:
            revision = read_revision(connection)  # another process may have migrated it
        if revision == HEAD:
            return
        _check_known(revision, location)
        _upgrade(engine, location, revision)


def _raise_unreadable(exc: sa.exc.DatabaseError, location: StoreLocation) -> None:
    if location.is_sqlite and not isinstance(exc, sa.exc.OperationalError):
        raise StoreCorruptError(
            f"{location.display}: not a readable SQLite database ({exc.orig})"
        ) from exc
    raise StoreError(f"cannot open the index at {location.display}: {exc.orig}") from exc


def _check_known(revision: str | None, location: StoreLocation) -> None:
    if revision is None or revision in REVISIONS:
        return
    from .. import __version__  # the package's version, only for this message

    raise StoreVersionError(
        f"the index at {location.display} has schema revision {revision!r}, written by a newer "
        f"etude; this etude ({__version__}) knows revisions up to {HEAD!r}. Upgrade etude on "
        "this machine (pip install -U etude), or give this workspace another store "
        "(ETUDE_STORE, or 'store:' in settings.yaml)."
    )


@contextmanager
def _migration_lock(engine: sa.Engine, location: StoreLocation) -> Iterator[None]:
    if location.is_sqlite:
        assert location.path is not None
        with FileLock(location.path.with_name(location.path.name + ".migrate-lock")):
            yield
        return
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": PG_MIGRATION_LOCK}
            )
            connection.commit()


def _create(engine: sa.Engine, location: StoreLocation) -> None:
    """Make the schema of an empty database at once and stamp it `HEAD`: what the revisions
    would build (a test compares both), without importing Alembic (a new workspace's first
    experiment would pay a third of a second for it)."""
    logger.info("etude: migrating the index at %s from an empty database to %s", location.display,
                HEAD)
    with write_transaction(engine) as connection:
        metadata.create_all(connection)
        version = sa.Table(
            "alembic_version",
            sa.MetaData(),
            sa.Column("version_num", sa.String(32), primary_key=True),
        )
        version.create(connection)
        connection.execute(version.insert().values(version_num=HEAD))


def _upgrade(engine: sa.Engine, location: StoreLocation, revision: str | None) -> None:
    if revision is None:
        _create(engine, location)
        return
    # Alembic is imported only here: a current database never pays for it.
    from alembic import command
    from alembic.config import Config

    logger.info(
        "etude: migrating the index at %s from %s to %s",
        location.display,
        revision or "an empty database",
        HEAD,
    )
    config = Config()
    config.set_main_option("script_location", "etude.store:migrations")
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, HEAD)
        connection.commit()


# -- statements shared by the store's modules --------------------------------------------
CHUNK = 500  # keys per IN (...) list and rows per statement


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a query's tens of thousands of rows become
    objects: they hold no cycles, and the collections their creation triggers walk every
    object alive (up to 4x the time of making them, and as variable)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fetch_rows(connection: sa.Connection, query: sa.Select[Any]) -> list[Any]:
    """The rows of `query` as the driver's tuples: no SQLAlchemy Row per row (a third of
    the time of a 16,000-row query). For columns the driver returns as they are (numbers,
    text; a boolean is 0/1 on SQLite)."""
    result = connection.execute(query)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def insert_rows(connection: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
                ) -> None:
    """Plain INSERTs of `rows` (dicts with the same keys, values the driver takes as they
    are: numbers, text, None) through the driver's executemany: SQLAlchemy's parameter
    processing per row was a third of an index rebuild (10,000 jobs, 270,000 rows)."""
    if not rows:
        return
    columns = list(rows[0])
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    quote = connection.dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join([mark] * len(columns))})")
    connection.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in rows])


def insert_for(connection: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_update` / `on_conflict_do_nothing`."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """`items` in slices of at most `size` (IN lists and multi-row INSERTs stay bounded)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]



