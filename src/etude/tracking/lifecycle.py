"""A run's life seen from outside it: clone, edit a draft, enqueue and dequeue, abort, reset,
publish — the state table of seed 004, checked before every change.

    draft     --enqueue-->  queued  --(agent)-->  running  --> completed / failed / aborted
    queued    --dequeue-->  draft                  running  --abort-->  aborted
    completed / failed / aborted  --reset-->  draft     (outputs deleted)
    completed / failed / aborted  --publish-->  published  (read-only; may still be cloned)

A clone is a new draft with the parameters, configuration objects, input models and code state
of its source (none of its outputs). Every change of state is made under the run folder's lock
and noted in `runs/edits.log`, so every reader's index sees it at its next look; enqueuing also
adds the claimable queue entry to the index (`store/queue.py`).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workspace.atomic import CorruptFileError, write_atomic
from ..workspace.run_folder import RunFolder, append_edit, owner_alive, runs_root
from .errors import RunStateError
from .sections import json_value

if TYPE_CHECKING:
    from .run import Run

#: What each state allows (seed 004's table, plus archive and delete where harmless).
ACTIONS: dict[str, tuple[str, ...]] = {
    "draft": ("edit", "enqueue", "clone", "archive", "delete"),
    "queued": ("dequeue", "clone", "archive"),
    "running": ("abort", "clone"),
    "completed": ("reset", "publish", "clone", "archive", "delete"),
    "failed": ("reset", "publish", "clone", "archive", "delete"),
    "aborted": ("reset", "publish", "clone", "archive", "delete"),
    "published": ("clone", "archive"),
}
_HINTS = {
    "edit": "clone it and edit the clone",
    "enqueue": "reset it (back to draft) or clone it, then enqueue that",
    "reset": "clone it instead",
}
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
ABORT_WAIT = 30.0


def require(run: Run, action: str) -> str:
    """The run's current state (read from its files), if it allows `action`; else
    RunStateError naming the state and what it allows."""
    state = run.reload().state
    if action in ACTIONS.get(state, ()):
        return state
    allowed = ", ".join(ACTIONS.get(state, ())) or "nothing"
    hint = _HINTS.get(action)
    raise RunStateError(
        f"run {run.id} ({run.project}/{run.name}) is {state}: it cannot be {_past(action)}. "
        f"A {state} run allows: {allowed}." + (f" To change it, {hint}." if hint else "")
    )


def _past(action: str) -> str:
    return {"edit": "edited", "enqueue": "enqueued", "dequeue": "dequeued", "abort": "aborted",
            "reset": "reset", "publish": "published", "clone": "cloned",
            "archive": "archived", "delete": "deleted"}.get(action, action)


def _require_own_run(run: Run, action: str) -> None:
    if run.job is not None:
        raise RunStateError(
            f"run {run.id} is the run of job {run.job['folder']}: its state follows the job. "
            f"It cannot be {_past(action)}; clone it to run an edited copy, or use "
            "`etude jobs` on the job."
        )


# -- clone and edit -----------------------------------------------------------------------
def clone_run(source: Run, *, name: str | None, project: str | None,
              comment: str | None) -> Run:
    """A new draft with the source's inputs (parameters, configuration, user properties,
    input models, code state), `parent` set to the source."""
    from .live import new_meta
    from .run import Run, new_run_id

    # A job's run has its project, name, type and tags in the index row only: read them
    # before `reload` drops the row.
    fields = {
        "project": project or source.project,
        "name": name or f"Clone Of {source.name}",
        "type": source.type,
        "tags": list(source.tags),
        "comment": source.comment if comment is None else comment,
        "parent": source.id,
    }
    meta = source.reload()._read_meta()
    root = source.workspace
    folder = RunFolder(runs_root(root) / new_run_id())
    # A job's run: its configuration (Config/...) and what its code connected, from the index.
    params = copy.deepcopy(_sections(source.params) if source.job is not None
                           else meta.get("params", {}))
    configuration = copy.deepcopy(meta.get("configuration", {}))
    new = new_meta(folder.run_id, time.time(), **fields)
    new.update(
        params=params,
        configuration=configuration,
        user_properties=copy.deepcopy(meta.get("user_properties", {})),
        # A clone runs with exactly the recorded values, whatever the code's defaults are. A
        # job's clone is rebuilt from the job's own configuration: only what is set on the
        # draft afterwards is an edit (its shown values, e.g. a nested configuration's type
        # name, could not be set back anyway).
        edited=copy.deepcopy(params) if source.job is None else {},
        edited_configuration=copy.deepcopy(configuration),
    )
    new["models"]["input"] = copy.deepcopy(meta.get("models", {}).get("input", {}))
    for key in ("function", "entry"):
        if key in meta:
            new[key] = copy.deepcopy(meta[key])
    if source.job is not None:
        new["source_job"] = _job_source(source)
    folder.write_meta(new)
    _copy_environment(source, folder)
    folder.write_status({"state": "draft"})
    append_edit(root, folder.run_id)
    return Run(folder, root)


def _sections(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"Section/key": value} (a job run's parameters, from the index) as sections."""
    grouped: dict[str, dict[str, Any]] = {}
    for path, value in flat.items():
        section, _, key = path.partition("/")
        grouped.setdefault(section, {})[key] = value
    return grouped


def _job_source(source: Run) -> dict[str, Any]:
    job = source.job or {}
    folder = Path(job["folder"])
    return {"folder": os.path.relpath(folder, source.workspace)}


def _copy_environment(source: Run, folder: RunFolder) -> None:
    """The clone gets its own environment.json (the source's may be a shared copy)."""
    try:
        environment = source.environment  # a live source's: once its capture is done
    except CorruptFileError:
        return  # the clone then has no code state, as a run whose capture failed
    if environment:
        folder.write_environment(environment)


def split_path(path: str, where: str) -> tuple[str, str]:
    """`"Section/key"` -> (section, key); a bare key is in section `General`."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{where}: a parameter is named 'Section/key' (e.g. 'General/lr'), "
                         f"got {path!r}.")
    section, _, key = path.partition("/") if "/" in path else ("General", "", path)
    if not section or not key:
        raise ValueError(f"{where}: {path!r} has an empty section or key; write "
                         "'Section/key', e.g. 'General/lr'.")
    return section, key


def edit_parameters(run: Run, values: dict[str, Any], *, replace: bool, where: str,
                    remove: list[str] | None = None) -> None:
    """Set parameters of a draft (`replace`: they become all of its parameters) and remove
    those in `remove`, in one edit. A removed parameter gets its value from the code again
    when the draft runs (`connect()` returns the script's own value; a job's clone keeps the
    job's). Raises ValueError naming every path to remove that the draft does not have."""
    _require_own_run_or_draft(run)
    grouped: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        section, key = split_path(path, where)
        grouped.setdefault(section, {})[key] = json_value(value)
    targets = [split_path(path, where) for path in remove or []]
    if targets:
        params = run._folder.read_meta().get("params", {})
        unknown = [f"{section}/{key}" for section, key in targets
                   if key not in params.get(section, {})]
        if unknown:
            raise ValueError(f"{where}: the draft has no parameter {', '.join(unknown)}; "
                             "its parameters are listed by run.params.")

    def change(meta: dict[str, Any]) -> None:
        params = {} if replace else meta.setdefault("params", {})
        edited = {} if replace else meta.setdefault("edited", {})
        for section, items in grouped.items():
            params.setdefault(section, {}).update(items)
            edited.setdefault(section, {}).update(items)
        for sections in (params, edited):
            for section, key in targets:
                found = sections.get(section)
                if found is not None:
                    found.pop(key, None)
                    if not found:
                        del sections[section]
        meta["params"], meta["edited"] = params, edited

    _edit_draft(run, change)


def edit_configuration(run: Run, name: str, value: Any, *, read_files: bool = True) -> None:
    """Replace the configuration object `name` of a draft. A text naming a file on this
    machine is read (its text stored) unless `read_files` is False: then every text is
    stored as it is (values that come from elsewhere, such as the web UI, never make this
    process read a file)."""
    from .sections import configuration_data, configuration_value

    _require_own_run_or_draft(run)
    if read_files:
        stored, _ = configuration_value(value, name)
    else:
        stored = configuration_data(value, f"configuration {name!r}")

    def change(meta: dict[str, Any]) -> None:
        meta.setdefault("configuration", {})[name] = stored
        meta.setdefault("edited_configuration", {})[name] = stored

    _edit_draft(run, change)


def _require_own_run_or_draft(run: Run) -> None:
    require(run, "edit")


def _edit_draft(run: Run, change: Any) -> None:
    folder = run._folder
    with folder.locked():
        state = folder.read_status().get("state") or "draft"
        if state != "draft":
            raise RunStateError(f"run {run.id} became {state} meanwhile; only a draft is "
                                "edited. Clone it and edit the clone.")
        meta = folder.read_meta()
        change(meta)
        meta["modified"] = time.time()
        folder.write_meta(meta)
    run._meta = meta
    append_edit(run.workspace, run.id)


# -- queues -------------------------------------------------------------------------------
def check_queue(queue: str) -> str:
    if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
        raise ValueError(
            f"queue name {queue!r}: use letters, digits and . _ : - (up to 128, starting "
            "with a letter or digit), e.g. 'default' or 'gpu'."
        )
    return queue


def enqueue(run: Run, queue: str) -> None:
    """draft -> queued on `queue`: an agent serving it will run it."""
    from ..store.queue import add_entry
    from .query import open_index

    check_queue(queue)
    require(run, "enqueue")
    folder = run._folder
    now = time.time()
    with folder.locked():
        state = folder.read_status().get("state") or "draft"
        if state != "draft":
            raise RunStateError(f"run {run.id} became {state} meanwhile; only a draft is "
                                "enqueued.")
        folder.write_status({"state": "queued", "queue": queue, "enqueued": now})
    append_edit(run.workspace, run.id)
    add_entry(open_index(run.workspace), run.id, queue, now)
    run.reload()


def dequeue(run: Run) -> None:
    """queued -> draft, unless an agent has already taken it."""
    from ..store.queue import remove_entry
    from .query import open_index

    require(run, "dequeue")
    agent = remove_entry(open_index(run.workspace), run.id)
    if agent is not None:
        raise RunStateError(f"run {run.id} was already taken by agent {agent}; abort it "
                            "instead (etude runs abort).")
    folder = run._folder
    with folder.locked():
        status = folder.read_status()
        if status.get("state") == "queued":
            folder.write_status({"state": "draft"})
    append_edit(run.workspace, run.id)
    run.reload()


# -- abort, reset, publish ----------------------------------------------------------------
def abort(run: Run, *, wait: float = ABORT_WAIT) -> str:
    """Stop a running run: the process that runs it gets SIGTERM (directly on this host; on
    another host through the run folder's abort request, which its writer thread checks every
    half second) and records `aborted`. Returns the state at the end of the wait."""
    _require_own_run(run, "abort")
    require(run, "abort")
    folder = run._folder
    write_atomic(folder.abort_request, f"{time.time()}\n", fsync=False)
    status = folder.read_status()
    if status.get("host") == socket.gethostname() and isinstance(status.get("pid"), int):
        try:
            os.kill(status["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = folder.read_status()
        if status.get("state") != "running":
            break
        if not owner_alive(status):
            _mark_aborted(folder)
            break
        time.sleep(0.1)
    append_edit(run.workspace, run.id)
    return run.reload().state


def _mark_aborted(folder: RunFolder) -> None:
    with folder.locked():
        status = folder.read_status()
        if status.get("state") == "running" and not owner_alive(status):
            status.update(state="aborted", reason="user", ended=time.time(),
                          message="aborted while its process was gone")
            folder.write_status(status, fsync=True)


def reset(run: Run) -> None:
    """completed / failed / aborted -> draft: its outputs (points, console, events, files,
    artifacts, output models) are deleted; its inputs stay, ready to enqueue again."""
    _require_own_run(run, "reset")
    require(run, "reset")
    folder = run._folder
    with folder.locked():
        state = folder.read_status().get("state")
        if state not in ("completed", "failed", "aborted"):
            raise RunStateError(f"run {run.id} became {state} meanwhile; it was not reset.")
        for path in (folder.scalars, folder.events, folder.console, folder.abort_request):
            path.unlink(missing_ok=True)
        shutil.rmtree(folder.files, ignore_errors=True)
        meta = folder.read_meta()
        meta["artifacts"] = {}
        meta.setdefault("models", {})["output"] = {}
        meta["edited"] = copy.deepcopy(meta.get("params", {}))
        meta["edited_configuration"] = copy.deepcopy(meta.get("configuration", {}))
        meta["modified"] = time.time()
        folder.write_meta(meta)
        folder.write_status({"state": "draft"})
    append_edit(run.workspace, run.id)
    run.reload()
