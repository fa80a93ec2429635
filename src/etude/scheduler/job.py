"""A job: one submitted task, its folder, its dependencies and its state in this experiment."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, Task
from ..workspace import JobDir, Workspace

if TYPE_CHECKING:
    from ..launchers import LaunchedJob, Launcher, Requirements
    from ..workspace import FileLock
    from .tokens import Token

# States of a job inside an experiment (the folder's states are in etude.workspace.status).
WAITING = "waiting"  # dependencies or a free slot
RUNNING = "running"
DONE = "done"
ERROR = "error"
FINAL = (DONE, ERROR)


_launcher_names: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


class OutputWatcher:
    """A `watch_output` callback and how many of the job's events it has been shown."""

    __slots__ = ("callback", "method", "path", "seen")

    def __init__(self, path: str, method: str, callback: Callable[[Any], Any]) -> None:
        self.path = path
        self.method = method
        self.callback = callback
        self.seen = 0


class Job:
    """A task submitted in an experiment. `environ` and `launcher_options` are for hooks."""

    def __init__(
        self,
        task: Task,
        job_id: str,
        type_name: str,
        folder: JobDir,
        launcher: Launcher,
        max_retries: int,
        requirements: Requirements | None = None,
    ) -> None:
        self.task = task
        self.id = job_id
        self.type_name = type_name
        self.dir = folder
        self.launcher = launcher
        self.max_retries = max_retries
        self.requirements = requirements
        self.retries = 0  # attempts started again after a timeout
        self.environ: dict[str, str] = {}
        self.launcher_options: dict[str, Any] = {}
        self.dependencies: list[Job] = []
        self.tags: dict[str, Any] = {}
        self.config_params: dict[str, Any] = {}
        self.state = WAITING
        self.reason: str | None = None
        self.message: str | None = None
        self.experiment: str | None = None  # the experiment that submitted it here
        self.workspace: Workspace | None = None  # that experiment's (marked in a dry run)
        self.reused = False  # already done before this experiment
        self.rerun: bool | str = False  # submit(rerun=...): True, "changed" or False
        self.code: dict[str, Any] | None = None  # fingerprint of its code (see code_changes)
        self.elsewhere = False  # another process holds its lock
        self.process: LaunchedJob | None = None
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.output_watchers: list[OutputWatcher] = []
        self.output_events: list[tuple[str, str, dict[str, Any]]] = []  # read so far
        self.outputs_offset = 0  # bytes of task-outputs.jsonl already read
        self.on_new_watcher: Callable[[Job], None] | None = None  # set by the scheduler
        self.configs: dict[str, Any] = {}  # path in the task's graph -> configuration
        self.config_paths: dict[int, str] = {}  # id(configuration) -> its path
        self.output_marker: Callable[[Any], Any] | None = None
        self.tokens: list[tuple[Token, int]] = []  # (token, units) held while it runs
        self.token_locks: list[FileLock] = []  # the slots held now
        self._callbacks: list[Callable[[], Any]] = []
        self._lock = threading.Lock()
        self._on_callback: Callable[[Job, Callable[[], Any]], None] | None = None

    @property
    def launcher_name(self) -> str | None:
        """The launcher's name as its `describe()` gives it (`direct`, `slurm`), cached."""
        try:
            return _launcher_names[self.launcher]
        except KeyError:
            name = self.launcher.describe().get("launcher")
            _launcher_names[self.launcher] = name
            return name

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def name(self) -> str:
        return f"{self.dir.task_name}/{self.id[:12]}"

    def add_completed_callback(self, callback: Callable[[], Any]) -> None:
        """Run `callback()` once the job is done (at once, in the callback thread, if it is)."""
        with self._lock:
            if self.state != DONE or self._on_callback is None:
                self._callbacks.append(callback)
                return
        self._on_callback(self, callback)

    def add_output_watcher(self, owner: Any, method: str, callback: Callable[[Any], Any]) -> None:
        """Watch `owner.method` outputs (see `Task.watch_output`); `owner` must be in the task."""
        path = self.config_paths.get(id(owner))
        if path is None:
            raise ConfigError(
                f"watch_output: {type(owner).__qualname__}.{method} belongs to a configuration "
                f"that {type(self.task).__qualname__} does not use; watch a method of one of "
                "its parameters."
            )
        with self._lock:
            self.output_watchers.append(OutputWatcher(path, method, callback))
        if self.on_new_watcher is not None:
            self.on_new_watcher(self)

    def take_callbacks(self, runner: Callable[[Job, Callable[[], Any]], None]) -> None:
        """Hand pending callbacks to `runner`; later ones go there directly."""
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
            self._on_callback = runner
        for callback in callbacks:
            runner(self, callback)

    def __repr__(self) -> str:
        return f"<Job {self.name} {self.state}{f' ({self.reason})' if self.reason else ''}>"
