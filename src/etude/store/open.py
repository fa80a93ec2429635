"""Opening a workspace's index: find it, check it, migrate it, and rebuild it when the SQLite
file is corrupt (it is derived from the folders, so nothing is lost)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..workspace import FileLock, Workspace
from ..workspace.settings import find_workspace
from .database import StoreCorruptError
from .location import StoreLocation, locate
from .store import Store

logger = logging.getLogger("etude.store")

SQLITE_MAGIC = b"SQLite format 3\x00"
_warned_network: set[str] = set()


def open_store(
    workspace: Workspace | str | os.PathLike[str],
    configured: str | None = None,
    *,
    location: StoreLocation | None = None,
) -> Store:
    """The index of `workspace`, migrated to this etude's schema.

    `configured` is the settings' `store:` URL (looked up in settings.yaml when None).
    A corrupt SQLite index is moved aside (`index.sqlite.corrupt-TIME`), reported with its
    path and rebuilt from the folders. Raises `StoreVersionError` for an index written by a
    newer etude, `StoreError` when the database cannot be reached.
    """
    if not isinstance(workspace, Workspace):
        workspace = Workspace(workspace)
    if location is None:
        if configured is None:
            configured = find_workspace(workspace.path).store
        location = locate(workspace.path, configured)
    _warn_network(location, workspace)
    problem = header_problem(location.path) if location.path is not None else None
    if problem is not None:
        return recover(workspace, location, problem)
    store = Store(workspace, location)
    try:
        store.migrate()
    except StoreCorruptError as exc:
        store.close()
        return recover(workspace, location, str(exc))
    return store


def _warn_network(location: StoreLocation, workspace: Workspace) -> None:
    if location.network_fs is None or str(workspace.path) in _warned_network:
        return
    _warned_network.add(str(workspace.path))
    logger.warning(
        "etude: %s is on a network file system (%s), where SQLite is not safe; its index is "
        "kept on this machine at %s. To share one index between machines, give the workspace "
        "a PostgreSQL store ('store:' in settings.yaml, or ETUDE_STORE).",
        workspace.path,
        location.network_fs,
        location.path,
    )


def header_problem(path: Path) -> str | None:
    """Why the SQLite file at `path` is unusable, judged from its header; None if it looks
    sound (or does not exist yet)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc})"
    if size == 0:
        return None  # SQLite makes a database of an empty file
    if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
        return "not a SQLite database (its header is wrong)"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The page count is valid when the "version valid for" number matches the change counter.
    if head[92:96] == head[24:28] and size < pages * page_size:
        return f"truncated ({size} bytes; its header says {pages * page_size})"
    return None


def recover(workspace: Workspace, location: StoreLocation, problem: str) -> Store:
    """Move a corrupt SQLite index aside and rebuild a new one from the folders."""
    from .reconcile import rebuild  # reconcile imports this module's neighbours

    path = location.path
    assert path is not None
    with FileLock(path.with_name(path.name + ".migrate-lock")):
        if header_problem(path) is not None or _unreadable(location):
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.urandom(2).hex()}"
            aside = path.with_name(f"{path.name}.corrupt-{stamp}")
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{path}{suffix}")
                if source.exists():
                    os.replace(source, Path(f"{aside}{suffix}"))
            logger.warning(
                "etude: the index %s is corrupt: %s. Moved it to %s; rebuilding the index "
                "from the workspace folders.",
                path,
                problem,
                aside,
            )
    store = Store(workspace, location)
    store.migrate()
    count = rebuild(store)
    logger.warning("etude: rebuilt the index of %s (%d jobs)", workspace.path, count)
    return store


def _unreadable(location: StoreLocation) -> bool:
    import sqlalchemy as sa

    from .database import create_engine

    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            result = connection.exec_driver_sql("PRAGMA quick_check(1)").scalar()
            return result != "ok"
    except sa.exc.DatabaseError:
        return True
    finally:
        engine.dispose()
