"""Live runs: starting a run in this process, recording it, and closing it.

`start_run` makes (or reuses, or continues) the run folder and hands the run to the
recorder's writer thread, which writes a new run's `run.json` and `status.json` moments later
(`LiveRun.defer_first_write`); console capture, resource monitoring, the
framework hooks and the environment capture start after it, the capture in a background
thread, so that `Run.init()` returns in a few milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..workspace.run_folder import (
    RunFolder,
    job_run_folder,
    job_run_id,
    owner_alive,
    runs_root,
    write_shared_environment,
)
from ..workspace.settings import load_tracking
from . import process
from .errors import RunStateError
from .logger import Logger
from .pointers import last_run_id, record_last_run
from .recorder import Recorder
from .run import (
    RUN_TYPES,
    Run,
    current_live,
    is_reusable,
    new_run_id,
    running_status,
    set_current,
)
from .sections import check_tags
from .where import resolve_workspace

logger = logging.getLogger("etude.tracking")
JOB_FOLDER_ENV = "ETUDE_JOB_FOLDER"
#: Set by the agent for the process it starts: the queued run's folder, and the agent's id.
RUN_FOLDER_ENV = "ETUDE_RUN_FOLDER"
AGENT_ENV = "ETUDE_AGENT"
_capture_cache: dict[str, Any] = {}


class LiveRun:
    """What this process holds while it records a run."""

    def __init__(
        self,
        run: Run,
        meta: dict[str, Any],
        recorder: Recorder,
        settings: dict[str, Any],
        offset: int,
    ) -> None:
        self.run = run
        self.meta = meta
        self.recorder = recorder
        self.settings = settings
        self.logger = Logger(recorder, int(settings["debug_samples"]), offset)
        self.console: Any = None
        self.monitor: Any = None
        self.capture_thread: threading.Thread | None = None
        self.lock = threading.RLock()
        self.closed = False
        self.attached = False  # started for this process (a job's run): Run.init returns it
        self.agent: str | None = None  # the agent that started this process for the run
        # A new run's run.json is not written yet (see `defer_first_write`): until then it
        # is edited here only, as nobody else knows the run.
        self.pending = False

    def defer_first_write(self, pointer: Callable[[], None]) -> None:
        """Leave run.json, the first status.json and the `pointer` to the recorder's first
        flush (`recorder.FIRST_WRITE_SECONDS` after the start, or at close, or before a read
        in this process): a run of a few milliseconds then writes each file once. A run
        killed by SIGKILL before that flush leaves no record."""
        self.pending = True

        def first_write(status: dict[str, Any] | None) -> None:
            with self.lock:
                # Ended already: its final status goes into run.json (one file fewer).
                self.run._folder.write_meta(self.meta if status is None
                                            else {**self.meta, "status": status})
                self.pending = False
            pointer()

        self.recorder.first_write = first_write

    def write_pending(self) -> None:
        """Write what waits for the first flush now (before the run is read from its files
        or the index, in this process)."""
        if self.pending:
            self.recorder.flush(status=True)

    def edit(self, change: Any) -> dict[str, Any]:
        with self.lock:
            if self.pending:
                change(self.meta)
                self.meta["modified"] = time.time()
                return self.meta
            if self.closed:
                return self.run._folder.update_meta(change)
            meta = self.run._folder.update_meta(change)
            self.meta.clear()
            self.meta.update(meta)
            return self.meta

    def wait_capture(self, timeout: float = 30.0) -> None:
        thread = self.capture_thread
        if thread is not None:
            thread.join(timeout)

    def flush_console(self) -> None:
        if self.console is not None:
            self.console.flush()

    def close(self, state: str, reason: str | None, message: str | None, text: str | None) -> None:
        """Stop recording: hooks, monitor, console, then the last points and the final
        status. Safe to call twice (the second call does nothing)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        with process.deferring_sigterm():  # a SIGTERM now waits until the state is written
            self.logger.closed = True
            if self.monitor is not None:
                self.monitor.stop()
            if self.console is not None:
                self.console.stop()
            status = self.recorder.status
            status.update(state=state, ended=time.time())
            for key, value in (("reason", reason), ("message", message), ("traceback", text)):
                if value is not None:
                    status[key] = value
            self.recorder.stop()
            if current_live() is self.run:
                set_current(None)
                process.clear()
            self.run._meta, self.run._status = dict(self.meta), dict(status)
            self.run._live = None
            self.wait_capture(10.0)  # environment.json, which a daemon thread is writing


def start_run(
    cls: type[Run],
    *,
    project: str,
    name: str,
    type: str,
    tags: list[str],
    workspace: Any,
    comment: str | None,
    reuse_last: bool,
    continue_last: bool,
    argparse: bool,
    frameworks: bool,
    monitor: bool,
    streams: bool,
) -> Run:
    live = current_live()
    if live is not None:
        if live._live is not None and live._live.attached:
            return live  # the run this process was started for (a job's, an agent's)
        raise RunStateError(
            f"run {live.id} ({live.project}/{live.name}) is still open in this "
            "process: call run.close() before Run.init() starts another."
        )
    queued = os.environ.pop(RUN_FOLDER_ENV, None)  # popped: the script's children start their own
    if queued:
        return _start_for_agent(cls, RunFolder(queued), argparse, frameworks, monitor, streams)
    _check(project, name, type, tags)
    root = resolve_workspace(workspace)
    settings = load_tracking()
    folder, meta, status, offset, new = _prepare_folder(
        root, project, name, type, tags, comment, reuse_last, continue_last, settings
    )
    run = cls(folder, root)
    recorder = Recorder(folder, status, float(settings["flush_seconds"]))
    if continue_last:
        recorder.resume()
    live_run = LiveRun(run, meta, recorder, settings, offset)
    run._live = live_run
    if new:
        live_run.defer_first_write(lambda: record_last_run(root, project, name, run.id))
    recorder.start()
    set_current(run)
    process.install(live_run.close)
    _start_extras(live_run, root, argparse, frameworks, monitor, streams)
    if not new:
        record_last_run(root, project, name, run.id)
    return run


def _start_for_agent(cls: type[Run], folder: RunFolder, argparse: bool, frameworks: bool,
                     monitor: bool, streams: bool) -> Run:
    """The run an agent started this process for: the queued draft, edited values and all
    (whatever project and name the script passes to Run.init)."""
    root = folder.path.parent.parent
    meta = folder.read_meta()
    agent = os.environ.pop(AGENT_ENV, None)
    with folder.locked():
        previous = folder.read_status()
        status = running_status()
        for key in ("queue", "enqueued", "agent"):
            if key in previous:
                status[key] = previous[key]
        folder.write_status(status)
    settings = load_tracking()
    run = cls(folder, root)
    recorder = Recorder(folder, status, float(settings["flush_seconds"]))
    live_run = LiveRun(run, meta, recorder, settings, 0)
    live_run.attached = True
    live_run.agent = agent or "agent"
    run._live = live_run
    recorder.start()
    set_current(run)
    process.install(live_run.close)
    _start_extras(live_run, root, argparse, frameworks, monitor, streams)
    return run


def _check(project: str, name: str, type: str, tags: list[str]) -> None:
    for value, what in ((project, "project"), (name, "name")):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"Run.init: {what} must be a non-empty string, got {value!r}.")
    if any(not part.strip() for part in project.split("/")):
        raise ValueError(
            f"Run.init: project {project!r} has an empty part; nest projects "
            "with single slashes, e.g. 'vision/mnist'."
        )
    if type not in RUN_TYPES:
        raise ValueError(f"Run.init: unknown type {type!r}; valid types: {', '.join(RUN_TYPES)}.")
    check_tags(tags)


def _prepare_folder(
    root: Path,
    project: str,
    name: str,
    type: str,
    tags: list[str],
    comment: str | None,
    reuse_last: bool,
    continue_last: bool,
    settings: dict[str, Any],
) -> tuple[RunFolder, dict[str, Any], dict[str, Any], int, bool]:
    """The run's folder, run.json, first status.json, first iteration, and whether the
    folder is new (its files not written yet: see `LiveRun.defer_first_write`)."""
    now = time.time()
    # The last run of this project/name matters only to continue or reuse it.
    previous = _last_run(root, project, name) if continue_last or reuse_last else None
    if continue_last and previous is not None:
        if previous.read_status().get("state") == "running" and owner_alive(
                previous.read_status(), now):
            raise RunStateError(f"run {previous.run_id} ({project}/{name}) is still running in "
                                "another process; continue it once that process has ended, or "
                                "start a new run (continue_last=False).")
        meta = previous.read_meta()
        status = running_status(previous.read_status(meta))
        meta.pop("status", None)  # a short run's final status: status.json takes over
        meta.update(tags=list(dict.fromkeys([*meta.get("tags", []), *tags])))
        previous.write_meta(meta)
        offset = _next_iteration(status)
        return previous, meta, status, offset, False
    reuse_seconds = float(settings["reuse_hours"]) * 3600
    reused = previous if reuse_last and previous is not None and is_reusable(
        previous, reuse_seconds, now) else None
    if reused is not None:
        _clear_outputs(reused)
        folder = reused
    else:
        folder = RunFolder(f"{runs_root(root)}/{new_run_id()}")
    meta = new_meta(folder.run_id, now, project=project, name=name, type=type, tags=tags,
                    comment=comment)
    if reused is not None:
        folder.write_meta(meta)  # replaces the old run's run.json at once
    else:
        folder.make()  # console and capture write into it; run.json comes with the first flush
    return folder, meta, running_status(), 0, reused is None


def _next_iteration(status: dict[str, Any]) -> int:
    last = [
        summary.get("iteration")
        for title, by_series in status.get("metrics", {}).items()
        if not title.startswith(":monitor:")
        for summary in by_series.values()
    ]
    numbers = [value for value in last if isinstance(value, int)]
    return max(numbers) + 1 if numbers else 0


def _last_run(root: Path, project: str, name: str) -> RunFolder | None:
    run_id = last_run_id(root, project, name)
    if not run_id or not re.fullmatch(r"[0-9a-f]{32}", run_id):
        return None
    folder = RunFolder(runs_root(root) / run_id)
    return folder if folder.exists() else None


def _clear_outputs(folder: RunFolder) -> None:
    """A reused run starts clean: its points, events, files, console and capture go."""
    for path in (
        folder.scalars,
        folder.events,
        folder.console,
        folder.environment,
        folder.status_file,
    ):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder.files, ignore_errors=True)


def _start_extras(
    live: LiveRun, root: Path, argparse: bool, frameworks: bool, monitor: bool, streams: bool
) -> None:
    run = live.run
    if streams:
        from .console import ConsoleCapture

        live.console = ConsoleCapture(run._folder.console)
        live.console.start()
    if monitor:
        from .monitor import ResourceMonitor

        live.monitor = ResourceMonitor(live.logger.report_scalar, interval=5.0)
        live.monitor.start()
    if argparse:
        from . import frameworks as hooks
        from .bridge import Sink

        hooks.apply_pending_arguments(Sink(run))
    if frameworks:
        from . import frameworks as hooks

        hooks.install_framework_hooks(_current_sink)
    if _capture_key(_script()) in _capture_cache:  # captured by an earlier run of this process
        _capture(run, root, live.settings)
        return
    live.capture_thread = threading.Thread(
        target=_capture, args=(run, root, live.settings), name="etude-run-capture", daemon=True
    )
    live.capture_thread.start()


def _current_sink() -> Any:
    from .bridge import Sink

    run = current_live()
    return None if run is None or run._live is None else Sink(run)


def _script() -> str | None:
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    return os.path.abspath(script) if script and os.path.exists(script) else None


def _capture_key(script: str | None) -> str:
    return f"{script}\0{os.getcwd()}"


def _capture(run: Run, root: Path, settings: dict[str, Any]) -> None:
    """Write environment.json (once per process the expensive part: git and packages)."""
    try:
        from .capture import capture

        script = _script()
        key = _capture_key(script)
        environment = _capture_cache.get(key)
        live = run._live
        if environment is not None and live is not None and live.pending:
            # A later run of this process (a sweep): name the shared copy in run.json, which
            # is not written yet, instead of writing one more file into the run's folder.
            digest = _share_environment(run._folder.path.parent, key, environment)
            live.edit(lambda meta: meta.__setitem__("environment", digest))
            return
        if environment is None:
            environment = capture(
                script=script,
                argv=list(sys.argv),
                cwd=os.getcwd(),
                exclude=[str(root)],
                env_names=list(settings["env"]),
            )
            _capture_cache[key] = environment
        run._folder.write_environment(environment)
    except Exception as error:  # the run goes on without its environment; say why
        logger.warning("run %s: capturing the environment failed (%s)", run.id, error)


# -- the run of a job ---------------------------------------------------------------------------
def attach_job_run(cls: type[Run]) -> Run | None:
    """In a job process (front doors 1 and 2), the job's run, started on first use."""
    folder_text = os.environ.get(JOB_FOLDER_ENV)
    if not folder_text:
        return None
    from ..runner.hooks import on_job_end

    job_path = Path(folder_text).absolute()
    root = _job_workspace(job_path)
    folder = job_run_folder(job_path, job_run_id(job_path.relative_to(root).as_posix()))
    try:
        meta = folder.read_meta()
    except FileNotFoundError:
        meta = new_meta(folder.run_id, time.time())
        folder.write_meta(meta)
    settings = load_tracking()
    status = running_status(folder.read_status())
    run = cls(folder, root)
    recorder = Recorder(folder, status, float(settings["flush_seconds"]))
    recorder.resume()
    live = LiveRun(run, meta, recorder, settings, 0)
    live.attached = True
    run._live = live
    recorder.start()
    set_current(run)
    on_job_end(lambda state, message: live.close(state, None, message, None))
    return run


def new_meta(run_id: str, now: float, **fields: Any) -> dict[str, Any]:
    """run.json of a new run: `fields` (project, name, type, tags, comment) over empty
    parameters, configuration, properties, artifacts and models. A job's run has no project,
    name or type of its own: the index takes them from the job."""
    return {"id": run_id, "tags": [], "comment": None, "parent": None, "created": now,
            "modified": now, "params": {}, "configuration": {}, "user_properties": {},
            "artifacts": {}, "models": {"input": {}, "output": {}}, "archived": False,
            **fields}


def _job_workspace(job_path: Path) -> Path:
    """The workspace holding a job folder: `WS/jobs/TASK/ID`, or a pydantic-infra folder
    `WS/METHOD,VERSION/UID[/jobs/CHUNK]`."""
    for parent in job_path.parents:
        if "," in parent.name:
            return parent.parent
    for parent in job_path.parents:
        if parent.name == "jobs":
            return parent.parent
    return job_path.parent


def _share_environment(runs_dir: Path, key: str, environment: dict[str, Any]) -> str:
    """The SHA-256 of `environment`'s file in `runs_dir/.environments/`, written there (once
    per process and folder; the same content from another process is the same file)."""
    shared = _shared_environments.get(key)
    if shared is None:
        text = json.dumps(environment, sort_keys=True)
        shared = _shared_environments[key] = (text, hashlib.sha256(text.encode()).hexdigest())
    text, digest = shared
    if (runs_dir, digest) not in _shared_written:
        write_shared_environment(runs_dir, digest, text)
        _shared_written.add((runs_dir, digest))
    return digest


_shared_environments: dict[str, tuple[str, str]] = {}  # capture key -> (JSON text, digest)
_shared_written: set[tuple[Path, str]] = set()  # (runs folder, digest) written or found
