"""Keeping the index in line with the workspace folders, which are the source of truth.

Who writes what:
- the experiment process writes its jobs and their state changes as they happen, and its
  runs (start, end, counts);
- job processes (here or on a cluster node) never touch the index: they write markers in
  their folders;
- every reader (`etude jobs list`, `etude experiments ...`, the Python API through
  `refresh`) first reconciles what changed behind the index's back, cheaply: folders that hold
  job folders and whose modification time changed are listed again (new job folders are read,
  vanished ones dropped), and every job the index holds as not ended (or failed, in case it
  was run again elsewhere) is read again from its markers;
- `rebuild` remakes the whole index from the folders; `check` compares every job and repairs
  the differences.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..workspace import CorruptFileError, JobDir, Workspace, read_json
from ..workspace.layout import ETUDE_DIR, INFRA_JOB_NAME, is_infra_job, job_dir_at, short_name
from .database import run_write
from .records import AskLauncher, JobRecord, read_folder_status, read_job_folder, relative_folder
from .rows import OUTCOMES, JobRow
from .store import Store

if TYPE_CHECKING:
    from ..workspace.status import JobStatus

logger = logging.getLogger("etude.store")

RUNS_HISTORY = "runs.jsonl"  # experiments/NAME/: one line per ended run


# -- the folders that hold job folders ------------------------------------------------------
# Paths are handled as strings, relative to the workspace (as the index keeps them) and joined
# to its path with `_absolute`: refresh runs before every listing and meets every failed job
# and every entry of a changed folder, where pathlib's joins cost several times the file system.
def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _absolute(root: str, folder: str) -> str:
    """The path of `folder` (relative to the workspace `root`, or absolute)."""
    if folder == ".":
        return root
    return folder if folder.startswith("/") else f"{root}/{folder}"


def containers(workspace: Workspace) -> dict[str, float]:
    """Folders whose listing changes when a job folder is created or deleted, with their
    modification times: `jobs/`, `jobs/TASK/`, the workspace itself and the pydantic-infra
    folders `METHOD,VERSION/` and `METHOD,VERSION/UID/jobs/`."""
    found: dict[str, float] = {}
    root = str(workspace.path)

    def add(folder: str) -> None:
        mtime = _mtime(_absolute(root, folder))
        if mtime is not None:
            found[folder] = mtime

    add(".")
    jobs = _absolute(root, "jobs")
    if os.path.isdir(jobs):
        add("jobs")
        for task_dir in os.scandir(jobs):
            if task_dir.is_dir():
                add(f"jobs/{task_dir.name}")
    for method in _infra_methods(root):
        add(method)
        for uid in os.scandir(_absolute(root, method)):
            if uid.is_dir() and os.path.isdir(f"{uid.path}/jobs"):
                add(f"{method}/{uid.name}/jobs")
    return found


def _infra_methods(root: str) -> Iterator[str]:
    """Names of the pydantic-infra method folders `METHOD,VERSION` in the workspace `root`."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if "," in entry.name and entry.is_dir():
            yield entry.name


def _job_folders_in(root: str, container: str) -> Iterator[tuple[str, str]]:
    """(folder, NAME of its files) of the job folders directly inside `container`, both
    relative to the workspace `root`, sorted."""
    try:
        entries = sorted(os.scandir(_absolute(root, container)), key=lambda e: e.name)
    except OSError:
        return
    parts = container.split("/")
    prefix = "" if container == "." else f"{container}/"
    if len(parts) == 2 and parts[0] == "jobs":  # jobs/TASK/ID
        name = short_name(parts[1])
        for entry in entries:
            if entry.is_dir():
                yield prefix + entry.name, name
    elif "," in parts[0]:  # METHOD,VERSION/UID or METHOD/UID/jobs/CHUNK
        for entry in entries:
            if not entry.is_dir():
                continue
            if len(parts) == 1:  # a uid folder: a MapInfra cache is not a job
                is_job = is_infra_job(entry.path)
            else:
                is_job = os.path.isdir(f"{entry.path}/{ETUDE_DIR}")
            if is_job:
                yield prefix + entry.name, INFRA_JOB_NAME


def _job_folders(root: str) -> Iterator[tuple[str, str]]:
    """(folder, NAME of its files) of every job folder of the workspace `root`: the folders
    `Workspace.iter_job_dirs` lists, in its order, from the listings of their containers."""
    try:
        tasks = sorted(entry.name for entry in os.scandir(f"{root}/jobs") if entry.is_dir())
    except OSError:
        tasks = []
    for task in tasks:
        yield from _job_folders_in(root, f"jobs/{task}")
    for method in sorted(_infra_methods(root)):
        for uid in sorted(os.listdir(f"{root}/{method}")):
            folder = f"{method}/{uid}"
            if is_infra_job(f"{root}/{folder}"):
                yield folder, INFRA_JOB_NAME
            yield from _job_folders_in(root, f"{folder}/jobs")  # MapInfra: one per chunk


def _job_dirs(workspace: Workspace) -> Iterator[JobDir]:
    """Every job folder of `workspace`, as `Workspace.iter_job_dirs` lists them."""
    root = str(workspace.path)
    for folder, name in _job_folders(root):
        yield JobDir(Path(f"{root}/{folder}"), name)


# -- refresh --------------------------------------------------------------------------------
@dataclass
class Changes:
    """What a reconciliation found (and, unless asked not to, wrote)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[tuple[str, str, str]] = field(default_factory=list)  # folder, was, now
    problems: list[str] = field(default_factory=list)
    runs: int = 0  # run rows written or removed

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.updated)


def refresh(store: Store, ask_launcher: AskLauncher | None = None) -> Changes:
    """Reconcile what changed in the folders since the index last saw them (see the module)."""
    changes = Changes()
    workspace = store.workspace
    recorded = store.scanned()
    first = not recorded
    current = containers(workspace)
    stale = [path for path, mtime in current.items() if recorded.get(path) != mtime]
    gone = [path for path in recorded if path not in current]
    indexed = store.folders_under(stale + gone) if (stale or gone) else {}
    records: list[JobRecord] = []
    seen: set[str] = set()
    root = str(workspace.path)
    for container in stale:
        for folder, name in _job_folders_in(root, container):
            seen.add(folder)
            if folder not in indexed:
                job = JobDir(Path(_absolute(root, folder)), name)
                records.append(read_job_folder(workspace, job, ask_launcher))
                changes.added.append(folder)
    for folder in indexed:
        container = folder.rsplit("/", 1)[0]
        listed_again = container in stale or container in gone
        if listed_again and folder not in seen and not os.path.isdir(_absolute(root, folder)):
            changes.removed.append(folder)
    exclude = {*changes.added, *changes.removed}  # a deleted running job is removed once
    records += _recheck_live(store, ask_launcher, changes, exclude)
    if records:
        store.write_jobs(records)
    store.delete_jobs(changes.removed)
    if stale or gone:
        store.set_scanned({path: current[path] for path in stale})
        if gone:
            _forget_scanned(store, gone)
    if first:
        ingest_experiments(store)
    from .runs import refresh_runs

    changes.runs = refresh_runs(store)
    return changes


def _recheck_live(
    store: Store, ask_launcher: AskLauncher | None, changes: Changes, exclude: set[str]
) -> list[JobRecord]:
    """Read again the jobs the index holds as not ended, and failed jobs now done: their
    state first, and the whole folder only when the state changed, or when a waiting job's
    message did (Slurm's pending reason: the experiment indexes a submitted job as waiting
    before squeue has said why it waits, and the reason changes while it waits)."""
    workspace = store.workspace
    root = str(workspace.path)
    done = f"/{ETUDE_DIR}/done.json"
    candidates = store.live_jobs()
    candidates += [
        (folder, "error", None)
        for folder, state in store.all_folders_in_state("error")
        if os.path.exists(_absolute(root, folder) + done)
    ]
    records = []
    for folder, state, message in candidates:
        if folder in exclude:
            continue
        path = _absolute(root, folder)
        if not os.path.isdir(path):
            changes.removed.append(folder)
            continue
        status = read_folder_status(path, ask_launcher)
        if status.state == state and not _new_pending_reason(status, message):
            continue
        record = read_job_folder(workspace, job_dir_at(Path(path)), ask_launcher)
        if record.state != state or _new_pending_reason(record, message):
            changes.updated.append((folder, state, record.state))
            record.params = None  # unchanged: keep the stored ones
            records.append(record)
    return records


def _new_pending_reason(now: JobStatus | JobRecord, message: str | None) -> bool:
    """Whether a job still waiting now has a message the index does not hold."""
    return now.state == "waiting" and (now.message or None) != message


def _forget_scanned(store: Store, paths: list[str]) -> None:
    from .schema import scanned_dirs

    ws = store.workspace_pk
    run_write(
        store.engine,
        lambda connection: connection.execute(
            scanned_dirs.delete().where(
                scanned_dirs.c.workspace_pk == ws, scanned_dirs.c.path.in_(paths)
            )
        ),
    )


# -- experiments ----------------------------------------------------------------------------
def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            logger.warning("etude: %s:%d is not JSON; skipped", path, number)
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def experiment_runs_on_disk(workspace: Workspace, name: str) -> list[dict[str, Any]]:
    """The runs of experiment `name` its folder records: ended ones from `runs.jsonl`, then
    the latest (`run.json`, possibly still running or interrupted)."""
    folder = workspace.experiments / name
    runs = {run.get("started"): run for run in _read_lines(folder / RUNS_HISTORY)}
    try:
        latest = read_json(folder / "run.json")
    except (FileNotFoundError, CorruptFileError) as exc:
        if isinstance(exc, CorruptFileError):
            logger.warning("etude: %s", exc)
        latest = None
    if isinstance(latest, dict):
        runs.setdefault(latest.get("started"), latest)
    return [run for key, run in sorted(runs.items(), key=_started) if isinstance(key, float | int)]


def _started(item: tuple[Any, Any]) -> float:
    key = item[0]
    return float(key) if isinstance(key, int | float) else 0.0


def ingest_experiments(store: Store, connection: sa.Connection | None = None) -> None:
    """Write every experiment run recorded in `experiments/*/` and link its jobs."""
    workspace = store.workspace
    if not workspace.experiments.is_dir():
        return
    ws = store.workspace_pk

    def work(connection: sa.Connection) -> None:
        for folder in sorted(workspace.experiments.iterdir()):
            if folder.is_dir():
                _ingest_experiment(store, connection, ws, folder.name)

    if connection is not None:
        work(connection)
    else:
        run_write(store.engine, work)


def _ingest_experiment(store: Store, connection: sa.Connection, ws: int, name: str) -> None:
    workspace = store.workspace
    for run in experiment_runs_on_disk(workspace, name):
        process = run.get("process")
        process = process if isinstance(process, dict) else {}
        entries = run.get("jobs")
        entries = entries if isinstance(entries, list) else []
        folders = [f for f in (_entry_folder(workspace, e) for e in entries) if f is not None]
        counts = run.get("counts")
        store.experiment_run_in(
            connection,
            ws,
            name,
            started=float(run["started"]),
            ended=run.get("ended") if isinstance(run.get("ended"), float | int) else None,
            host=process.get("host"),
            pid=process.get("pid") if isinstance(process.get("pid"), int) else None,
            create_time=process.get("create_time"),
            jobs_count=len(entries),
            counts=counts if isinstance(counts, dict) else None,
            outcome=run["outcome"] if run.get("outcome") in OUTCOMES else None,
        )
        store.link_in(connection, ws, name, folders)


def _entry_folder(workspace: Workspace, entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return None
    job_id, task = entry.get("id"), entry.get("task")
    if isinstance(job_id, str) and isinstance(task, str) and job_id and task:
        if "/" not in job_id + task and "." not in (job_id, task):
            return f"jobs/{task.lower()}/{job_id}"  # what the general case gives, cheaply
        return relative_folder(workspace, workspace.job_dir(task, job_id))
    path = entry.get("path")
    if isinstance(path, str) and path:
        return relative_folder(workspace, JobDir(Path(path), short_name(Path(path).parent.name)))
    return None


# -- rebuild and check ----------------------------------------------------------------------
def rebuild(store: Store, ask_launcher: AskLauncher | None = None) -> int:
    """Remake the index of the workspace from its folders, in one transaction (readers see
    the old index until it commits). Returns the number of jobs indexed."""
    workspace = store.workspace
    current = containers(workspace)  # before listing: what changes later is seen later
    records = [read_job_folder(workspace, job, ask_launcher) for job in _job_dirs(workspace)]
    ws = store.workspace_pk

    def work(connection: sa.Connection) -> None:
        store.clear_in(connection, ws)
        store.insert_jobs_in(connection, ws, records)
        ingest_experiments(store, connection)
        from .runs import rebuild_runs_in
        from .schema import scanned_dirs

        rows = [{"workspace_pk": ws, "path": p, "mtime": m} for p, m in sorted(current.items())]
        if rows:
            connection.execute(scanned_dirs.insert(), rows)
        rebuild_runs_in(store, connection, ws)

    run_write(store.engine, work)
    return len(records)


FIELDS_CHECKED = ("task", "state", "reason", "kind", "experiment")


def check(store: Store, ask_launcher: AskLauncher | None = None, *, repair: bool = True) -> Changes:
    """Compare every job of the index with its folder; with `repair`, write the folders'
    version of every difference. Returns the differences."""
    workspace = store.workspace
    changes = Changes()
    indexed = {row.folder: row for row in store.query_jobs()}
    records: list[JobRecord] = []
    for job in _job_dirs(workspace):
        record = read_job_folder(workspace, job, ask_launcher)
        changes.problems += record.problems
        row = indexed.pop(record.folder, None)
        if row is None:
            changes.added.append(record.folder)
            records.append(record)
            continue
        differs = _difference(row, record)
        if differs:
            changes.updated.append((record.folder, differs[0], differs[1]))
            records.append(record)
    changes.removed = sorted(indexed)
    if repair and changes:
        store.write_jobs(records)
        store.delete_jobs(changes.removed)
        store.set_scanned(containers(workspace), replace=True)
    return changes


def _difference(row: JobRow, record: JobRecord) -> tuple[str, str] | None:
    for name in FIELDS_CHECKED:
        was, now = getattr(row, name), getattr(record, name)
        if was != now:
            return f"{name}={was}", f"{name}={now}"
    return None
