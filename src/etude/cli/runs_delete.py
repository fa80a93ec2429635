"""`etude runs delete RUN [RUN...]`: remove runs' folders and their rows of the index.

Nothing is deleted unless every named run may be: a running run (its process is alive) or a
queued one (an agent may take it) is refused, a published run needs `--force`, and a job's
run belongs to its job (`etude jobs clean` deletes failed jobs). The user confirms on a
terminal; without one, `--yes` is required.

Each folder is first renamed to a hidden name under its lock, so that no reader sees half a
run (readers skip hidden entries of `runs/`), then removed; the index rows go in one
transaction after. If that transaction cannot be made, the next listing removes the rows
anyway (the `runs/` folder changed, so it is listed again).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import TYPE_CHECKING, Any

from ..workspace import Workspace, WorkspaceError
from ..workspace.run_folder import RunFolder, effective_status, owner_alive
from .index import open_index, with_index
from .runs_resolve import resolve_runs

if TYPE_CHECKING:
    from ..store import Store


class RunDeleteRefused(WorkspaceError):
    """A named run may not be deleted; nothing was."""


def delete(workspace: Workspace, args: argparse.Namespace) -> int:
    store = open_index(workspace)
    runs = resolve_runs(workspace, args.runs, store)
    refusals = [reason for reason in (_refusal(run, args.force) for run in runs) if reason]
    if refusals:
        raise RunDeleteRefused("nothing deleted:\n" + "\n".join(f"  {r}" for r in refusals))
    for run in runs:
        print(f"  {run.id[:12]}  {run.project}/{run.name}  ({run.state})  {run.folder}",
              file=sys.stderr)
    if not args.yes:
        answer = _confirm(len(runs))
        if answer is None:
            raise RunDeleteRefused(f"not deleting {_count(len(runs))}: no terminal to confirm "
                                   "on; pass --yes to delete without asking.")
        if not answer:
            print("Nothing deleted.", file=sys.stderr)
            return 1
    kept = {run.id: reason for run in runs if (reason := _remove(run)) is not None}
    deleted = [run.id for run in runs if run.id not in kept]
    _forget(store, deleted)
    for run_id, reason in kept.items():
        print(f"etude: kept run {run_id[:12]}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps({"deleted": deleted,
                          "kept": [{"id": i, "reason": r} for i, r in kept.items()]}, indent=2))
    else:
        print(f"Deleted {_count(len(deleted))}.")
    return 1 if kept else 0


def _count(number: int) -> str:
    return f"{number} run" if number == 1 else f"{number} runs"


def _refusal(run: Any, force: bool) -> str | None:
    """Why `run` may not be deleted, or None."""
    label = f"{run.id[:12]} ({run.project}/{run.name})"
    job = run.job
    if job is not None:
        return (f"{label} is the run of the job in {job['folder']}: it belongs to the job and "
                "goes with it (`etude jobs clean` deletes failed and orphan jobs).")
    state = run.state
    if state == "running":
        return (f"{label} is running: stop its process (Ctrl-C, or kill it), then delete it "
                "once it has ended.")
    if state == "queued":
        return (f"{label} is queued: an agent may start it; take it off its queue first "
                "(`etude runs dequeue`), then delete it.")
    if state == "published" and not force:
        return f"{label} is published (read-only); pass --force to delete it anyway."
    return None


def _confirm(count: int) -> bool | None:
    """The user's answer, or None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    sys.stderr.write(f"Delete {_count(count)}? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _remove(run: Any) -> str | None:
    """Delete the run's folder; return why it was kept, or None. Checked again under the
    folder's lock: the run may have been started since it was listed."""
    folder = RunFolder(run.folder, run.id)
    effective_status(folder, folder.read_status())  # a killed run reads as failed from here
    trash = folder.path.parent / f".deleting-{run.id}-{os.getpid()}"
    try:
        with folder.locked():
            status = folder.read_status()
            if status.get("state") == "running" and owner_alive(status):
                return "it started running meanwhile"
            if status.get("state") == "queued":
                return "it was queued meanwhile"
            os.rename(folder.path, trash)
    except OSError as error:
        return f"cannot move its folder aside ({error})"
    try:
        shutil.rmtree(trash)
    except OSError as error:
        # The run is gone for every reader (hidden name); only the space is not given back.
        print(f"etude: run {run.id[:12]} deleted, but {trash} could not be removed ({error}); "
              "remove it by hand.", file=sys.stderr)
    return None


def _forget(store: Store, ids: list[str]) -> None:
    """Remove the runs' rows (and, by cascade, their parameters, tags, properties and
    metrics) in one transaction."""
    if not ids:
        return
    from ..store.database import run_write
    from ..store.runs import delete_runs_in

    with_index(store, lambda s: run_write(
        s.engine, lambda connection: delete_runs_in(connection, s.workspace_pk, ids)))
