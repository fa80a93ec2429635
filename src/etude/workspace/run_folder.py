"""The folder of a tracked run: the source of truth that the index ingests.

```
WORKSPACE/runs/RUN_ID/          a run of `Run.init()` (RUN_ID: 32 hex digits)
JOB_FOLDER/.etude/run/          the run of a job of front doors 1 and 2 (RUN_ID: the job's id)
  run.json          who the run is and what the user said: project, name, type, tags, comment,
                    parent, created, parameters, configuration objects, user properties,
                    artifacts, models, archived. Written by read-modify-write under `lock`.
  status.json       what the running process says: state, reason, times, host, pid, heartbeat,
                    and the summary of every scalar series (last, min, max, count). Written
                    only by the process that runs the run (atomic replace, every second), or,
                    when no process runs it, under `lock` (enqueue, publish, killed detection).
                    A run that ended before its first flush has none: its final status is
                    run.json's `status` (status.json, once written, wins).
  environment.json  what `Run.init()` captured: code, packages, argv, host, Python. The later
                    runs of a process that captured the same (a sweep in one script) name it
                    instead: run.json's `environment` is the SHA-256 of a file in
                    `../.environments/` (beside the run folders), written once.
  scalars.bin       every scalar point (see `etude.tracking.points`).
  events.jsonl      text, tables, plots, images, histograms and media, one JSON per line;
  files/            their payloads (PNG, JSON).
  console.log       stdout and stderr.
```

A run process writes only its folder, never the index: readers ingest run folders as they do
job folders (`store/reconcile.py`), so a run on a cluster node that shares only the workspace
folder is recorded the same way. Edits of a run that no process runs (tags, user properties,
publish) are appended to `runs/edits.log` too, so that every index sees them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .atomic import CorruptFileError, read_json, write_atomic, write_json_atomic
from .layout import ETUDE_DIR
from .locks import FileLock

RUNS_DIR = "runs"
#: Environments shared by several runs, by content (`RunFolder.read_environment`).
ENVIRONMENTS_DIR = ".environments"
EDITS_LOG = "edits.log"
RUN_STATES = ("draft", "queued", "running", "completed", "failed", "aborted", "published")
ENDED_STATES = frozenset({"completed", "failed", "aborted", "published"})
#: A running run whose heartbeat is older than this, and whose process is gone, was killed.
HEARTBEAT_TIMEOUT = 10.0
HEARTBEAT_ENV = "ETUDE_HEARTBEAT_TIMEOUT"


class RunFolder:
    """Paths and atomic reads/writes of one run folder; creating the object touches nothing."""

    __slots__ = ("_path", "_text", "run_id")

    def __init__(self, path: str | os.PathLike[str], run_id: str | None = None) -> None:
        # A query may make tens of thousands of these: the Path is made on first use.
        self._text = os.fspath(path)
        self._path: Path | None = None
        self.run_id = run_id or os.path.basename(self._text.rstrip("/"))

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = Path(self._text)
        return self._path

    # -- paths --------------------------------------------------------------------------------
    @property
    def meta(self) -> Path:
        return self.path / "run.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def environment(self) -> Path:
        return self.path / "environment.json"

    @property
    def scalars(self) -> Path:
        return self.path / "scalars.bin"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def files(self) -> Path:
        return self.path / "files"

    @property
    def console(self) -> Path:
        return self.path / "console.log"

    @property
    def lock(self) -> Path:
        return self.path / "lock"

    @property
    def abort_request(self) -> Path:
        """Written by `abort()`; the process running the run stops when it sees it."""
        return self.path / "abort.request"

    def exists(self) -> bool:
        return self.meta.exists()

    # -- reads --------------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        """run.json; raises FileNotFoundError or CorruptFileError."""
        return _object(self.meta)

    def read_environment(self) -> dict[str, Any]:
        """What was captured: environment.json, else the shared file run.json names; `{}`
        when there is neither (capture switched off, failed or not finished). Raises
        CorruptFileError for a damaged file."""
        try:
            value = read_json(self.environment)
        except FileNotFoundError:
            try:
                digest = self.read_meta().get("environment")
            except FileNotFoundError:
                return {}
            if not isinstance(digest, str) or not digest:
                return {}
            try:
                value = read_json(shared_environment(self.path.parent, digest))
            except FileNotFoundError:
                return {}
        return value if isinstance(value, dict) else {}

    def read_status(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """status.json; else the status run.json holds (`meta`, when already read) for a
        run that ended before its first flush; else `{}` (never started)."""
        try:
            return _object(self.status_file)
        except FileNotFoundError:
            pass
        if meta is None:
            try:
                meta = self.read_meta()
            except FileNotFoundError:
                return {}
        status = meta.get("status")
        return dict(status) if isinstance(status, dict) else {}

    # -- writes -------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock (between processes; not re-entrant)."""
        with FileLock(self.lock):
            yield

    def update_meta(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply `change` to run.json under the lock and write it back atomically."""
        with self.locked():
            meta = self.read_meta()
            change(meta)
            meta["modified"] = time.time()
            write_json_atomic(self.meta, meta, compact=True, fsync=False)
            return meta

    def make(self) -> None:
        """Create the folder (and `runs/` above it for a workspace's first run)."""
        try:
            os.mkdir(self._text)
        except FileNotFoundError:
            os.makedirs(self._text, exist_ok=True)

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Write a new run.json (a run being created: nobody else knows it yet)."""
        try:
            write_json_atomic(self.meta, meta, compact=True, fsync=False)
        except FileNotFoundError:
            self.make()
            write_json_atomic(self.meta, meta, compact=True, fsync=False)

    def write_environment(self, environment: dict[str, Any]) -> None:
        """Write this run's own environment.json (what `read_environment` reads first)."""
        write_json_atomic(self.environment, environment, compact=True, fsync=False)

    def write_status(self, status: dict[str, Any], *, fsync: bool = False) -> None:
        """Replace status.json (by the process running the run, or under `locked()`)."""
        write_json_atomic(self.status_file, status, compact=True, fsync=fsync)


def _object(path: Path) -> dict[str, Any]:
    value = read_json(path)
    if not isinstance(value, dict):
        raise CorruptFileError(path, f"expected a JSON object, got {type(value).__name__}")
    return value


def shared_environment(runs_dir: Path, digest: str) -> Path:
    """The file of an environment shared by runs of `runs_dir` (`digest`: its SHA-256)."""
    if not all(c in "0123456789abcdef" for c in digest):
        raise CorruptFileError(runs_dir / ENVIRONMENTS_DIR,
                               f"environment {digest!r} is not a SHA-256 in hexadecimal")
    return runs_dir / ENVIRONMENTS_DIR / f"{digest}.json"


def write_shared_environment(runs_dir: Path, digest: str, text: str) -> None:
    """Write the shared environment `text` (JSON whose SHA-256 is `digest`) unless a run
    already did: same digest, same content."""
    path = shared_environment(runs_dir, digest)
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, text + "\n", fsync=False)


def heartbeat_timeout() -> float:
    """Seconds after which a silent running run counts as killed (`ETUDE_HEARTBEAT_TIMEOUT`)."""
    try:
        return float(os.environ.get(HEARTBEAT_ENV) or HEARTBEAT_TIMEOUT)
    except ValueError:
        return HEARTBEAT_TIMEOUT


def owner_alive(status: dict[str, Any], now: float | None = None) -> bool:
    """Whether the process that runs the run (per status.json) may still be running: its
    heartbeat is recent, or it is on this host and its pid is the same process."""
    import socket  # lazily: only readers check liveness

    now = time.time() if now is None else now
    beat = status.get("heartbeat")
    if isinstance(beat, (int, float)) and now - beat < heartbeat_timeout():
        return True
    if status.get("host") != socket.gethostname():
        return False
    from .status import process_alive  # lazily: it imports psutil

    return process_alive({"pid": status.get("pid"), "host": status.get("host"),
                          "create_time": status.get("create_time")})


def effective_status(folder: RunFolder, status: dict[str, Any]) -> dict[str, Any]:
    """`status` with a running run whose process died without a word marked failed, reason
    `killed` (written back to the folder under its lock, so every reader agrees)."""
    if status.get("state") != "running" or owner_alive(status):
        return status
    with folder.locked():
        current = folder.read_status()
        if current.get("state") != "running" or owner_alive(current):
            return current
        ended = current.get("heartbeat") or current.get("started") or time.time()
        current.update(state="failed", reason="killed", ended=ended,
                       message="the process stopped without a word (killed, out of memory "
                               "or machine lost)")
        folder.write_status(current, fsync=True)
        return current


def runs_root(workspace_path: Path) -> Path:
    return workspace_path / RUNS_DIR


def job_run_folder(job_path: Path, run_id: str) -> RunFolder:
    """The run folder of a job (front doors 1 and 2): `.etude/run/` in the job folder."""
    return RunFolder(job_path / ETUDE_DIR / "run", run_id)


def job_run_id(relative_folder: str) -> str:
    """The run id of the job in `relative_folder` (relative to the workspace): the job's id
    for a task's job (`jobs/TASK/ID`); for a pydantic-infra job, whose folder name is not
    unique across methods, a digest of the folder."""
    if relative_folder.startswith("jobs/"):
        return relative_folder.rsplit("/", 1)[-1]
    import hashlib

    return hashlib.sha256(relative_folder.encode()).hexdigest()[:32]


def append_edit(workspace_path: Path, run_id: str) -> None:
    """Note in `runs/edits.log` that `run_id` changed while no process runs it (one short
    O_APPEND write, so concurrent writers do not mix lines)."""
    path = runs_root(workspace_path) / EDITS_LOG
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{run_id}\n".encode())
    finally:
        os.close(fd)


def read_edits(workspace_path: Path, offset: int) -> tuple[list[str], int]:
    """Run ids appended to the edits log from byte `offset` on (complete lines only), and the
    offset to read from next time."""
    path = runs_root(workspace_path) / EDITS_LOG
    try:
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size < offset:
                offset = 0  # the log was replaced
            stream.seek(offset)
            data = stream.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    ids = [line for line in data[:end].decode(errors="replace").splitlines() if line]
    return ids, offset + end


def dumps(value: Any) -> str:
    """JSON as the run files hold it: NaN and infinities kept (Python reads them back)."""
    return json.dumps(value, allow_nan=True)
