"""`etude index rebuild|check`, and how every command opens a workspace's index.

Commands that read the index first reconcile it with the folders (`etude.store.refresh`):
what changed behind its back since the last look is read again, so a listing never shows a
deleted job or a job that ended on a cluster node as still running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..launchers.slurm_queue import recorded_job_state
from ..workspace import Workspace, WorkspaceError

if TYPE_CHECKING:
    from ..store import Store

T = TypeVar("T")


class IndexUnavailable(WorkspaceError):
    """The index cannot be opened or read; the message says why and what to do."""


def is_workspace(workspace: Workspace) -> bool:
    """Whether the folder holds anything of etude's: `jobs/`, `experiments/`, `runs/`, `.etude/`, or
    pydantic-infra cache folders (`MODULE.CLASS.METHOD,VERSION/`)."""
    path = workspace.path
    if any((path / name).is_dir() for name in ("jobs", "experiments", "runs", ".etude")):
        return True
    try:
        return any("," in entry.name and entry.is_dir() for entry in os.scandir(path))
    except OSError:
        return False


def open_index(workspace: Workspace, *, refresh: bool = True) -> Store:
    """The workspace's index, reconciled with its folders. Raises `IndexUnavailable`, and
    `WorkspaceError` for a folder that is not a workspace (where nothing is created)."""
    if not is_workspace(workspace):
        raise WorkspaceError(
            f"{workspace.path} is not an etude workspace (no jobs/ or experiments/ in it); pass "
            "the folder given to experiment(...) with --workspace PATH."
        )
    # The store (SQLAlchemy) is imported here: commands that do not read it stay fast.
    from ..store import StoreError, open_store
    from ..store import refresh as reconcile

    try:
        store = open_store(workspace)
    except (StoreError, ValueError) as exc:
        raise IndexUnavailable(str(exc)) from exc
    if refresh:
        with_index(store, lambda s: reconcile(s, recorded_job_state))
    return store


def with_index(store: Store, work: Callable[[Store], T]) -> T:
    """`work(store)`; a SQLite index found corrupt on the way is rebuilt and `work` tried once
    more, and a database error becomes `IndexUnavailable` (a one-line message)."""
    import sqlalchemy as sa

    from ..store.open import recover

    try:
        return work(store)
    except sa.exc.DatabaseError as exc:
        if not store.location.is_sqlite or isinstance(exc, sa.exc.OperationalError):
            raise IndexUnavailable(
                f"the index at {store.location.display} cannot be read: {exc.orig}"
            ) from exc
        store.close()
        store.take_over(recover(store.workspace, store.location, str(exc.orig)))
        return work(store)


def _rebuild(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..store import rebuild

    store = open_index(workspace, refresh=False)
    begun = time.perf_counter()
    count = with_index(store, lambda s: rebuild(s, recorded_job_state))
    took = time.perf_counter() - begun
    print(f"Indexed {count} jobs of {workspace.path} in {took:.2f} s ({store.location.display}).")
    return 0


def _check(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..store import check

    store = open_index(workspace, refresh=False)
    integrity = _integrity(store)
    if integrity is not None:
        print(f"{store.location.display}: {integrity}; rebuilding it.", file=sys.stderr)
        from ..store.open import recover

        store = recover(workspace, store.location, integrity)
    changes = with_index(store, lambda s: check(s, recorded_job_state, repair=not args.dry_run))
    for problem in changes.problems:
        print(f"(!) {problem}")
    verb = "would be" if args.dry_run else "was"
    for folder in changes.added:
        print(f"missing from the index: {folder} ({verb} added)")
    for folder in changes.removed:
        print(f"no longer in the workspace: {folder} ({verb} removed)")
    for folder, was, now in changes.updated:
        print(f"differs: {folder}: index {was}, folder {now} ({verb} updated)")
    if not changes:
        count = sum(store.count_jobs().values())
        print(f"The index agrees with the {count} job folders of {workspace.path}.")
        return 0
    count = len(changes.added) + len(changes.removed) + len(changes.updated)
    print(f"{count} difference(s) {'found' if args.dry_run else 'repaired'}.")
    return 1


def _integrity(store: Store) -> str | None:
    """SQLite's own verdict on the file (`PRAGMA quick_check`), None when sound."""
    if not store.location.is_sqlite:
        return None
    import sqlalchemy as sa

    try:
        with store.engine.connect() as connection:
            verdict = connection.exec_driver_sql("PRAGMA quick_check").scalar()
    except sa.exc.DatabaseError as exc:
        return str(exc.orig)
    return None if verdict == "ok" else str(verdict)


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `index` and its sub-commands to `groups`; `common` holds the shared options."""
    group = groups.add_parser("index", help="rebuild or check the workspace's index")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rebuild = commands.add_parser(
        "rebuild", parents=[common], help="remake the index from the workspace folders"
    )
    rebuild.set_defaults(handler=_rebuild)
    check = commands.add_parser(
        "check",
        parents=[common],
        help="compare the index with the folders and repair the differences (exit 1 if any)",
    )
    check.add_argument(
        "--dry-run", action="store_true", help="only report the differences, change nothing"
    )
    check.set_defaults(handler=_check)
