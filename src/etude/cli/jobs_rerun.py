"""`etude jobs rerun ID... | --where FILTER`: make done jobs run again at their next submission.

A job is done while its done marker exists; rerunning moves the marker to
`.etude/history/` (the job's outputs stay, for the task to overwrite). The next run of the
experiment script then runs the job again, as `submit(rerun=True)` would.
"""

from __future__ import annotations

import argparse
import sys

from ..workspace import FileLock, JobDir, Workspace, read_done, undo_done
from .index import open_index, with_index


def _chosen(workspace: Workspace, args: argparse.Namespace) -> list[JobDir]:
    """The job folders that the IDs and `--where` name, each once, in that order."""
    folders = [workspace.find_job(reference) for reference in args.jobs]
    if args.where:
        store = open_index(workspace)
        rows = with_index(store, lambda s: s.query_jobs(args.where))
        folders += [workspace.find_job(str(workspace.path / row.folder)) for row in rows]
    unique: dict[str, JobDir] = {}
    for folder in folders:
        unique.setdefault(str(folder.path), folder)
    return list(unique.values())


def _rerun(workspace: Workspace, args: argparse.Namespace) -> int:
    if not args.jobs and not args.where:
        print(
            "etude: jobs rerun: name jobs by id (prefix) or folder, or choose them with "
            "--where, e.g. --where \"task = 'xp.learn' and state = done\".",
            file=sys.stderr,
        )
        return 2
    from ..store import FilterError  # imported here: the store loads SQLAlchemy

    try:
        folders = _chosen(workspace, args)
    except FilterError as exc:
        print(f"etude: bad --where: {exc}", file=sys.stderr)
        return 2
    marked: list[JobDir] = []
    for folder in folders:
        label = folder.label
        if read_done(folder, repair=False) is None:
            print(f"Not done: {label} (it runs at its next submission anyway).")
            continue
        lock = FileLock(folder.lock)
        if not lock.try_acquire():  # an experiment is about to reuse or run it
            print(f"Kept {label}: an experiment process holds its lock.", file=sys.stderr)
            continue
        try:
            undo_done(folder)
        finally:
            lock.release()
        marked.append(folder)
        print(f"Will run again: {label}")
    if marked:
        _update_index(workspace, marked)
    print(
        f"{len(marked)} job(s) will run again at their next submission (run the experiment "
        "again)."
    )
    return 0


def _update_index(workspace: Workspace, folders: list[JobDir]) -> None:
    """Write the new state of `folders` to the index (which reads done jobs only once)."""
    from ..store.records import read_job_folder

    store = open_index(workspace, refresh=False)
    records = []
    for folder in folders:
        record = read_job_folder(workspace, folder)
        record.params = None  # unchanged: keep the stored ones
        records.append(record)
    with_index(store, lambda s: s.write_jobs(records))


def add_rerun(rerun: argparse.ArgumentParser) -> None:
    rerun.add_argument(
        "jobs", metavar="ID", nargs="*", help="job id prefixes or folders (or use --where)"
    )
    rerun.add_argument(
        "--where",
        metavar="FILTER",
        help="the jobs the filter selects, as in `etude jobs list --where`",
    )
    rerun.set_defaults(handler=_rerun)
