"""`experiment(workdir, name)`: the context in which tasks are submitted and run."""

from __future__ import annotations

import gc
import json
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from ..config import (
    Config,
    ConfigError,
    LightweightTask,
    ScriptLoadStop,
    SerializationError,
    Task,
    check_required,
    collect_tags,
    current_submitter,
    digest,
    loading_script,
    schema_of,
    type_name,
    walk,
)
from ..config.serialize import dump
from ..launchers import DirectLauncher, Launcher
from ..launchers.finder import find_launcher, launchers_path
from ..launchers.requirements import Requirements, as_requirements
from ..workspace import (
    Workspace,
    current_workspace,
    read_done,
    undo_done,
    write_atomic,
    write_json_atomic,
)
from ..workspace.layout import short_name
from ..workspace.settings import find_workspace
from .code_changes import CodeChangeReport, CodeFingerprints
from .engine import Scheduler
from .hooks import hooks_for
from .index import IndexWriter, Reporters
from .job import DONE, ERROR, Job
from .plan import DryRunPlan
from .progress import Progress
from .tokens import Token

JOB_SCRIPT = """\
# etude job {type_name} {job_id}
# Run it again by hand with: {python} {script}
import sys

# Python puts this folder first on sys.path; job outputs (or this file) must not shadow modules.
del sys.path[0]

from etude.runner import run_job  # noqa: E402

sys.exit(run_job(__file__))
"""


class ExperimentFailed(RuntimeError):
    """Raised when an experiment ends with failed jobs; `.jobs` lists them."""

    def __init__(self, jobs: list[Job], callback_errors: list[str]) -> None:
        lines = [f"{len(jobs)} job(s) failed:"] if jobs else []
        for job in jobs:
            lines.append(f"  {job.name}: {job.reason}: {job.message or ''}".rstrip(": "))
            if job.dir.stderr.exists():
                lines.append(f"    log: {job.dir.stderr}")
        lines.extend(callback_errors)
        super().__init__("\n".join(lines))
        self.jobs = jobs


def _dry_run_default() -> bool:
    return os.environ.get("ETUDE_DRY_RUN", "").lower() in ("1", "true", "yes")


class _FrozenHeap:
    """The objects alive when the outermost experiment starts (the interpreter's modules, the
    script's data) are left out of the garbage collector's full passes until it ends
    (`gc.freeze`, undone by `gc.unfreeze`). Submitting 10,000 jobs makes enough objects to
    run dozens of full passes, each of which walked every one of them again: 0.2-0.4 s of a
    10,000-job resubmission. Nothing is lost: an old object that becomes cyclic garbage
    meanwhile is collected after the experiment, and reference counting frees the others
    as usual. A script that calls `gc.freeze()` itself before an experiment sees its
    objects unfrozen at the experiment's end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0

    def enter(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                gc.freeze()

    def exit(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                gc.unfreeze()


_frozen_heap = _FrozenHeap()


class Experiment:
    """A run of an experiment script: submits tasks into a workspace and waits for them.

    Use through `experiment(workdir, name)`. `launcher` is the default for tasks submitted
    without one (a `DirectLauncher` by default). With `dry_run=True` (or `ETUDE_DRY_RUN=1`)
    nothing is written or run: the experiment prints which jobs would run and why.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        name: str,
        *,
        launcher: Launcher | None = None,
        dry_run: bool | None = None,
        progress: Progress | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(
                f"experiment name {name!r}: use a non-empty name without '/' (e.g. 'mnist')."
            )
        if launcher is not None and not isinstance(launcher, Launcher):
            raise TypeError(
                f"experiment(launcher=...): expected a Launcher such as DirectLauncher(), got "
                f"{type(launcher).__name__}."
            )
        self.dry_run = _dry_run_default() if dry_run is None else dry_run
        self.settings = find_workspace(workdir)
        self.workspace = Workspace(self.settings.path, dry_run=self.dry_run)
        self.name = name
        self.launcher = launcher or DirectLauncher()
        self._launcher_given = launcher is not None
        self.progress = progress or Progress()
        self.index = IndexWriter(self.workspace, name, self.settings.store)
        self.scheduler = Scheduler(Reporters(self.progress, self.index))
        self.fingerprints = CodeFingerprints()
        self.code_report = CodeChangeReport()
        self.plan = DryRunPlan(self.code_report)
        self._jobs: dict[str, Job] = {}
        self._tokens: list[Any] = []
        self._submit_lock = threading.RLock()
        self._declared_tokens: dict[str, Token] = {}
        self.started_at = time.time()

    # -- context ----------------------------------------------------------------------------
    def __enter__(self) -> Experiment:
        if loading_script():
            raise ScriptLoadStop()
        _frozen_heap.enter()
        self._tokens = [current_submitter.set(self), current_workspace.set(self.workspace)]
        if not self.dry_run:
            try:
                self.workspace.jobs.mkdir(parents=True, exist_ok=True)
                self._write_record(running=True)
                self.index.start(self.started_at)
                self.scheduler.start()
                self.progress.start()
            except BaseException:
                self._reset_context()
                _frozen_heap.exit()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.dry_run:
                if exc_type is None:
                    self.plan.explain_new(self.workspace, self.settings.store)
                    self.plan.print(self.workspace)
                return
            try:
                self._finish(exc_type)
            except KeyboardInterrupt as interrupt:
                self._say_interrupted(interrupt)
                raise
            if isinstance(exc, KeyboardInterrupt):
                self._say_interrupted(exc)
        finally:
            self._reset_context()
            _frozen_heap.exit()
        if exc_type is None:
            failed = [job for job in self.scheduler.jobs if job.state == ERROR]
            if failed or self.scheduler.callback_errors:
                raise ExperimentFailed(failed, self.scheduler.callback_errors)

    def _reset_context(self) -> None:
        if self._tokens:
            submitter_token, workspace_token = self._tokens
            current_workspace.reset(workspace_token)
            current_submitter.reset(submitter_token)
            self._tokens = []

    def _say_interrupted(self, interrupt: KeyboardInterrupt) -> None:
        """One line on stderr instead of a traceback from the scheduler's wait (see
        `_quiet_interrupts`); the interpreter still exits as interrupted (status 130)."""
        done = sum(1 for job in self.scheduler.jobs if job.state == DONE)
        left = len(self.scheduler.jobs) - done
        print(f"etude: experiment {self.name!r} interrupted: {left} job(s) stopped or not "
              f"started, {done} done (kept); run the script again to go on.", file=sys.stderr,
              flush=True)
        interrupt._etude_reported = True  # type: ignore[attr-defined]
        _quiet_interrupts()

    def _outcome(self, exc_type: type[BaseException] | None, interrupted: bool) -> str:
        if interrupted:
            return "interrupted"
        failed = any(job.state == ERROR for job in self.scheduler.jobs)
        return "failed" if exc_type is not None or failed or self.scheduler.callback_errors \
            else "completed"

    def _finish(self, exc_type: type[BaseException] | None) -> None:
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        try:
            if exc_type is None:
                self._write_record(running=True)  # the full job list, before the long wait
                self.scheduler.wait()
            else:
                self.scheduler.stop_scheduling()
                if issubclass(exc_type, KeyboardInterrupt):
                    self.scheduler.terminate_running()
        except KeyboardInterrupt:
            interrupted = True
            self.scheduler.stop_scheduling()
            self.scheduler.terminate_running()
            raise
        finally:
            self.scheduler.close()
            self.progress.stop()
            outcome = self._outcome(exc_type, interrupted)
            ended = self._write_record(running=False, outcome=outcome)
            self.index.close(self.scheduler.jobs, ended, outcome)

    def wait(self) -> None:
        """Wait until every job submitted so far has ended (without leaving the context)."""
        if not self.dry_run:
            self.scheduler.wait()

    def token(self, name: str, size: int) -> Token:
        """A token: `size` units of a resource named `name`, shared by every experiment of
        this workspace (see `Token`). Raises `ValueError` for a bad name or size, or if this
        experiment already declared `name` with another size."""
        token = self._declared_tokens.get(name)
        if token is None:
            token = self._declared_tokens[name] = Token(name, size)
        elif token.size != size:
            raise ValueError(
                f"token {name!r} was declared with size {token.size} in this experiment; "
                f"declare it once (got size {size} now)."
            )
        return token

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    # -- submit -----------------------------------------------------------------------------
    def submit(
        self,
        task: Task,
        *,
        launcher: Launcher | None,
        init_tasks: Iterable[LightweightTask],
        max_retries: int | None,
        requirements: str | Requirements | None = None,
        rerun: bool | str = False,
    ) -> Any:
        """Register `task` as a job (see `Task.submit`); returns `task.task_outputs(dep)`."""
        if not isinstance(rerun, bool) and rerun != "changed":
            raise ValueError(
                f"{type(task).__qualname__}.submit(rerun={rerun!r}): expected True (run it again "
                "even if done), \"changed\" (only if its code changed) or False."
            )
        with self._submit_lock:  # callbacks submit from their own thread
            return self._submit(task, launcher, init_tasks, max_retries, requirements, rerun)

    def _submit(
        self,
        task: Task,
        launcher: Launcher | None,
        init_tasks: Iterable[LightweightTask],
        max_retries: int | None,
        requirements: str | Requirements | None = None,
        rerun: bool | str = False,
    ) -> Any:
        if task._etude.job is not None and task._etude.job.id in self._jobs:
            return task.task_outputs(_marker(task))
        needs = as_requirements(
            requirements if requirements is not None else getattr(task, "__requirements__", None)
        )
        if launcher is None:
            launcher = self._launcher_for(needs)
        job = self._make_job(task, launcher, tuple(init_tasks), max_retries)
        job.requirements = needs
        job.rerun = rerun
        existing = self._jobs.get(job.id)
        if existing is not None:
            task._etude.job = existing
            return task.task_outputs(_marker(task))
        self._jobs[job.id] = job
        task._etude.job = job
        job.tokens = [(t, n) for t in self._declared_tokens.values() if (n := t.take_need(task))]
        if task._etude.completed_callbacks:
            for callback in task._etude.completed_callbacks:
                job.add_completed_callback(callback)
            task._etude.completed_callbacks = None
        if self.dry_run:
            self.plan.add(job)
        else:
            self._register(job)
        return task.task_outputs(_marker(task))

    def _launcher_for(self, needs: Requirements | None) -> Launcher:
        """The experiment's launcher; for a job that states requirements, when the experiment
        names no launcher and launchers.yaml exists, the first launcher there that fits."""
        if needs is None or self._launcher_given or not launchers_path().exists():
            return self.launcher
        return find_launcher(needs)

    def _make_job(
        self,
        task: Task,
        launcher: Launcher | None,
        init_tasks: tuple[LightweightTask, ...],
        max_retries: int | None,
    ) -> Job:
        if not isinstance(task, Task):
            raise TypeError(f"submit() takes a Task, got {type(task).__name__}.")
        if launcher is not None and not isinstance(launcher, Launcher):
            raise TypeError(
                f"{type(task).__qualname__}.submit(launcher=...): expected a Launcher such as "
                f"DirectLauncher(max_jobs=2), got {type(launcher).__name__}."
            )
        for i, init in enumerate(init_tasks):
            if not isinstance(init, LightweightTask):
                raise ConfigError(
                    f"{type(task).__qualname__}.submit(init_tasks=[...]): item {i} is a "
                    f"{type(init).__name__}; init tasks must be LightweightTask configurations."
                )
        state = task._etude
        if state.sealed and init_tasks and init_tasks != state.init_tasks:
            raise ConfigError(
                f"{type(task).__qualname__} is sealed (already submitted, or seal() was called) "
                "with other init tasks; build a new configuration to submit it with these."
            )
        if not state.sealed:
            state.init_tasks = init_tasks
        tname = type_name(type(task))
        # Errors name a value by its class, then its field path (`Train.model.hidden`), as
        # `.C()` does for the value it is given.
        shown = type(task).__qualname__
        nodes = walk(task, shown)
        check_required(nodes)
        _check_submitted(task, nodes)
        try:
            job_id = digest(task).hex()
        except SerializationError:
            dump(task, root_path=shown)  # raises the same problem with the parameter's path
            raise
        folder = self.workspace.job_dir(tname, job_id)
        for _, cfg in nodes:
            _generate_paths(cfg, folder.path)  # only paths not generated yet
        task.seal()
        if max_retries is None:
            max_retries = self.settings.max_retries
        elif not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"submit(max_retries={max_retries!r}): expected an integer >= 0.")
        job = Job(task, job_id, tname, folder, launcher or self.launcher, max_retries)
        job.environ.update(self.settings.env)
        job.experiment = self.name
        job.workspace = self.workspace
        job.tags = collect_tags(nodes)
        # The job process names configurations in its output events from its own root
        # (`NAME`, as in `runner.job`), and job folders keep those events: the same here.
        root = short_name(tname)
        kept = [(root + path[len(shown) :], cfg) for path, cfg in nodes]
        job.configs = dict(kept)
        job.config_paths = {id(cfg): path for path, cfg in kept}
        job.output_marker = _marker(task, announced=True)
        for owner, method, callback in state.watchers or ():
            job.add_output_watcher(owner, method, callback)
        job.dependencies = self._dependencies(task, nodes)
        for hook in hooks_for({type(cfg) for _, cfg in nodes}):
            hook.process(job, job.launcher)
        job.config_params = dump(task, root_path=shown)  # raises before anything is written
        job.code = self.fingerprints.of(cfg for _, cfg in nodes)
        return job

    def _dependencies(self, task: Task, nodes: list[tuple[str, Config]]) -> list[Job]:
        """The jobs `task` waits for: producers of the task outputs it uses. A dynamic output
        (announced by a running job, see `watch_output`) exists already: its producer is not
        waited for, unless the task also uses an ordinary output of the same job."""
        found: dict[str, Job] = {}
        for path, cfg in nodes:
            if cfg._etude.dep_announced:
                continue
            producer = cfg._etude.dep_task
            if producer is None or producer is task:
                continue
            job = producer._etude.job
            if job is None:
                raise ConfigError(f"{path}: output of a task that was never submitted.")
            if job.id not in self._jobs:  # submitted in another experiment object
                self._submit(producer, None, producer._etude.init_tasks, None)
                job = producer._etude.job
            found[job.id] = job
        return list(found.values())

    def _register(self, job: Job) -> None:
        done = read_done(job.dir)
        if done is not None and self._reuses(job, done):
            job.state = DONE
            job.reused = True
        else:
            if done is not None:
                undo_done(job.dir)  # submit(rerun=...): the marker goes to .etude/history/
            folder = job.dir
            folder.meta.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder.params, self._job_params(job))
            script = JOB_SCRIPT.format(
                type_name=job.type_name, job_id=job.id, python=sys.executable, script=folder.script
            )
            write_atomic(folder.script, script)
            record = {**_process_record(self.name), "submitted": job.submitted_at}
            write_json_atomic(folder.scheduled, record)
        self.scheduler.add(job)

    def _reuses(self, job: Job, done: dict[str, Any]) -> bool:
        """Whether a done job is reused rather than run again as `submit(rerun=...)` asks;
        when it is reused although its code changed, the experiment says so (once per task)."""
        changed = self.code_report.code_changed(job, done)
        if job.rerun is True or (job.rerun == "changed" and changed):
            return False
        if changed:
            self.code_report.reused(job)
        return True

    def _job_params(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "type": job.type_name,
            "workspace": str(self.workspace.path),
            "experiment": self.name,
            "tags": {k: _plain(v) for k, v in job.tags.items()},
            "dependencies": [d.id for d in job.dependencies],
            "requirements": str(job.requirements) if job.requirements else None,
            "max_retries": job.max_retries,
            "config": job.config_params,
            "code": job.code,
        }

    def _write_record(self, *, running: bool, outcome: str | None = None) -> float | None:
        """`experiments/NAME/run.json`: this run and its jobs; at the end, also a line in
        `runs.jsonl` (the history the index is rebuilt from)."""
        folder = self.workspace.experiments / self.name
        folder.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {
            "name": self.name,
            "workspace": str(self.workspace.path),
            "started": self.started_at,
            "ended": None if running else time.time(),
            "process": _process_record(self.name),
            "jobs": [
                {"id": job.id, "task": job.type_name, "path": str(job.path)}
                for job in self._jobs.values()
            ],
        }
        if not running:
            states = Counter(job.state for job in self.scheduler.jobs)
            record["counts"] = dict(states)
            record["outcome"] = outcome
        write_json_atomic(folder / "run.json", record, compact=True)
        if running:
            self.index.jobs_listed(len(self._jobs))
        else:
            _append_line(folder / "runs.jsonl", record)
        return record["ended"]


def _quiet_interrupts() -> None:
    """Have the interpreter's last-resort handler skip the traceback of a Ctrl-C that an
    experiment has already reported (the traceback only shows the scheduler waiting)."""
    previous = sys.excepthook
    if getattr(previous, "_etude_quiet", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if isinstance(value, KeyboardInterrupt) and getattr(value, "_etude_reported", False):
            return
        previous(kind, value, tb)

    hook._etude_quiet = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class DetachedDryRun:
    """What `task.submit(dry_run=WORKDIR)` submits to outside an experiment: a dry-run
    experiment of its own, used for that call only; nothing is written, run or printed."""

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.experiment = Experiment(workdir, "dry-run", dry_run=True)

    def submit(self, task: Task, **options: Any) -> Any:
        token = current_workspace.set(self.experiment.workspace)  # for partial folders
        try:
            return self.experiment.submit(task, **options)
        finally:
            current_workspace.reset(token)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write (O_APPEND): concurrent writers never mix."""
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _marker(task: Task, *, announced: bool = False) -> Any:
    """The `dep` function given to `task_outputs` (or, with `announced`, to the output methods
    of `watch_output`): it marks a value as an output of `task`."""

    def dep(value: Any) -> Any:
        if isinstance(value, Config):
            state = value._etude
            state.dep_task = task
            state.dep_announced = announced
            if value is not task:
                state.dep_digest = digest(task)
                job = task._etude.job
                if job is not None and job.tags and not task._etude.tags_stopped:
                    state.tags = {**job.tags, **(state.tags or {})}
        return value

    return dep


def _check_submitted(task: Task, nodes: list[tuple[str, Config]]) -> None:
    """Raise `ConfigError` for a task among `task`'s values that was never submitted.

    Such a task would never run, and its generated paths would point inside `task`'s folder;
    it is not submitted implicitly, so that its launcher, requirements and retries stay the
    user's choice.
    """
    for path, cfg in nodes[1:]:
        if isinstance(cfg, Task) and cfg._etude.job is None and cfg._etude.dep_task is None:
            name = type(cfg).__qualname__
            raise ConfigError(
                f"{path}: this {name} task was never submitted, so it would not run and the "
                f"paths it generates would point inside {type(task).__qualname__}'s folder. "
                f"Submit it first and pass what submit() returns: `x = {name}.C(...).submit()`, "
                f"then give `x` as {path}."
            )


def _generate_paths(cfg: Config, jobpath: Path) -> None:
    values = cfg.__dict__
    for name, f in schema_of(type(cfg)).fields.items():
        if f.generator is not None and name not in values:
            values[name] = f.generator.generate(jobpath, cfg)


def _process_record(experiment_name: str) -> dict[str, Any]:
    import psutil  # lazily: only the experiment process needs it, not job processes

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "create_time": psutil.Process().create_time(),
        "experiment": experiment_name,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
