"""`Run`: one recorded execution — parameters, console, scalars, plots, artifacts, models.

A run lives in a folder (see `workspace.run_folder`): the process that runs it writes only
there, and the workspace's index ingests it when someone reads (`Run.get`, `Run.query`,
`etude runs list`), as it does for job folders. So a run records the same way on a laptop,
on a cluster node that shares only the workspace folder, and with PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..workspace.run_folder import (
    ENDED_STATES,
    RunFolder,
    append_edit,
    effective_status,
    owner_alive,
)
from .errors import ReportError, RunNotFoundError, RunStateError
from .sections import (
    flatten_section,
    merge_edited,
    params_view,
    plain_values,
)

logger = logging.getLogger("etude.tracking")

RUN_TYPES = (
    "training",
    "testing",
    "inference",
    "data_processing",
    "qc",
    "controller",
    "optimizer",
    "monitor",
    "service",
    "application",
    "custom",
)

_current: Run | None = None
_current_lock = threading.RLock()


class Run:
    """A run. `Run.init()` starts one in this process (live: it records); `Run.get()` and
    `Run.query()` return recorded ones (read from their folders; editable where the state
    allows)."""

    def __init__(
        self,
        folder: RunFolder,
        workspace: Path,
        meta: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
    ) -> None:
        self._folder = folder
        self._workspace = workspace
        self._meta = meta
        self._status = status
        self._live: Any = None  # the LiveRun while this process records it
        self._row: Any = None  # the index's row, for a run found by a query

    def _indexed(self, name: str) -> Any:
        """A field from the index row of a queried run (fresh as of the query), else None
        when the run's files must be read."""
        if self._row is None or self._live is not None:
            return None
        if self._meta is not None and self.job is None:
            return None  # read since: the files are fresher than the query
        return getattr(self._row, name)

    # -- starting -----------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        project: str = "default",
        name: str = "run",
        type: str = "training",
        tags: list[str] | tuple[str, ...] | None = None,
        *,
        workspace: str | os.PathLike[str] | None = None,
        comment: str | None = None,
        reuse_last: bool = True,
        continue_last: bool = False,
        auto_connect_arg_parser: bool = True,
        auto_connect_frameworks: bool = True,
        auto_resource_monitoring: bool = True,
        auto_connect_streams: bool = True,
    ) -> Run:
        """Start recording this process as a run of `project` (nested with `/`) named `name`.

        Reuses the last run of the same project and name started on this machine when it is
        recent (`tracking.reuse_hours`, 72), has no artifacts or models and no live process
        (cleared first); `reuse_last=False` always makes a new run, `continue_last=True`
        continues the last one (its iterations go on). Raises RunStateError when another run
        is live in this process, ValueError for a bad project, name, type or tag.
        """
        from .live import start_run  # the machinery of live runs

        return start_run(
            cls,
            project=project,
            name=name,
            type=type,
            tags=list(tags or ()),
            workspace=workspace,
            comment=comment,
            reuse_last=reuse_last,
            continue_last=continue_last,
            argparse=auto_connect_arg_parser,
            frameworks=auto_connect_frameworks,
            monitor=auto_resource_monitoring,
            streams=auto_connect_streams,
        )

    @classmethod
    def current(cls) -> Run | None:
        """The run this process records (a `Run.init()` run, or the run of the job this
        process executes), or None."""
        with _current_lock:
            if _current is not None:
                return _current
        from .live import attach_job_run  # a job process: its run starts on first use

        return attach_job_run(cls)

    @classmethod
    def get(
        cls,
        run_id: str | None = None,
        *,
        project: str | None = None,
        name: str | None = None,
        workspace: str | os.PathLike[str] | None = None,
    ) -> Run:
        """The run with this id (a unique prefix works), or the last modified run of
        `project` named `name`. Raises RunNotFoundError."""
        from .query import get_run

        return get_run(cls, run_id, project=project, name=name, workspace=workspace)

    @classmethod
    def query(
        cls,
        *,
        project: str | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        state: list[str] | str | None = None,
        type: list[str] | str | None = None,
        search: str | None = None,
        where: str | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        include_archived: bool = False,
        workspace: str | os.PathLike[str] | None = None,
    ) -> list[Run]:
        """Runs matching every filter given, newest first unless `order_by` (the filter
        grammar's sort spec, e.g. `-metrics.accuracy`). `project` includes sub-projects;
        tags `-x` excludes x; `search` is a regular expression over name, id and comment;
        `where` is the filter grammar (`params.lr < 0.05 and metrics.loss.train < 0.5`).
        No limit unless `limit`. Raises FilterError for a bad `where` or `order_by`."""
        from .query import query_runs

        return query_runs(
            cls,
            project=project,
            name=name,
            tags=tags,
            state=state,
            type=type,
            search=search,
            where=where,
            order_by=order_by,
            limit=limit,
            offset=offset,
            include_archived=include_archived,
            workspace=workspace,
        )

    # -- what a run is ------------------------------------------------------------------------
    def _read_meta(self) -> dict[str, Any]:
        if self._live is not None:
            return self._live.meta
        if self._meta is None:
            try:
                self._meta = self._folder.read_meta()
            except FileNotFoundError:
                if self.job is None:
                    raise
                self._meta = {}  # a job whose code reported nothing: the index knows it
        return self._meta

    def _read_status(self) -> dict[str, Any]:
        if self._live is not None:
            return self._live.recorder.status
        if self._status is None:
            self._status = effective_status(self._folder, self._folder.read_status())
        return self._status

    def reload(self) -> Run:
        """Read the run's files again (for a run recorded by another process). A run this
        process records writes what it has not written yet instead (its files then agree
        with it)."""
        if self._live is None:
            self._meta = self._status = self._row = None
        else:
            self._live.write_pending()
        return self

    @property
    def id(self) -> str:
        return self._folder.run_id

    @property
    def folder(self) -> Path:
        return self._folder.path

    @property
    def workspace(self) -> Path:
        return self._workspace

    @property
    def project(self) -> str:
        indexed = self._indexed("project")
        if indexed is not None:
            return indexed
        return str(self._read_meta().get("project", ""))

    @property
    def name(self) -> str:
        indexed = self._indexed("name")
        if indexed is not None:
            return indexed
        return str(self._read_meta().get("name", ""))

    @property
    def type(self) -> str:
        indexed = self._indexed("type")
        if indexed is not None:
            return indexed
        return str(self._read_meta().get("type", "training"))

    @property
    def tags(self) -> list[str]:
        indexed = self._indexed("tags")
        if indexed is not None:
            return indexed
        return list(self._read_meta().get("tags", []))

    @property
    def comment(self) -> str | None:
        indexed = self._indexed("comment")
        if indexed is not None:
            return indexed
        return self._read_meta().get("comment")

    @property
    def parent(self) -> str | None:
        indexed = self._indexed("parent")
        if indexed is not None:
            return indexed
        return self._read_meta().get("parent")

    @property
    def archived(self) -> bool:
        return bool(self._read_meta().get("archived"))

    @property
    def created(self) -> float | None:
        indexed = self._indexed("created")
        if indexed is not None:
            return indexed
        return self._read_meta().get("created")

    @property
    def job(self) -> dict[str, Any] | None:
        """For the run of a job (front doors 1 and 2): `{"folder": its job folder, "name":
        the NAME of its NAME.out/.err}`; None for a `Run.init()` run."""
        path = self._folder.path
        if path.name != "run" or path.parent.name != ".etude":
            return None
        job = path.parent.parent
        name = job.parent.name.rsplit(".", 1)[-1].lower() if job.parent.parent.name == "jobs" \
            else "job"
        return {"folder": str(job), "name": name}

    @property
    def state(self) -> str:
        indexed = self._indexed("state")
        if indexed is not None:
            return str(indexed)
        status = self._read_status()
        if self._read_meta().get("published"):
            return "published"
        return str(status.get("state") or "draft")

    @property
    def reason(self) -> str | None:
        return self._read_status().get("reason")

    @property
    def message(self) -> str | None:
        return self._read_status().get("message")

    @property
    def traceback(self) -> str | None:
        return self._read_status().get("traceback")

    @property
    def started(self) -> float | None:
        return self._read_status().get("started")

    @property
    def ended(self) -> float | None:
        return self._read_status().get("ended")

    @property
    def params(self) -> dict[str, Any]:
        """`{"Section/key": value}` with the values' types (`"General/lr": 0.1`); a job's
        configuration is section `Config`."""
        job = self.job
        own = params_view(self._read_meta().get("params", {}))
        if job is None:
            return own
        from ..store.runs import job_config_params

        return {**job_config_params(Path(job["folder"])), **own}

    @property
    def configuration(self) -> dict[str, Any]:
        """Configuration objects by name."""
        return dict(self._read_meta().get("configuration", {}))

    @property
    def user_properties(self) -> dict[str, Any]:
        return dict(self._read_meta().get("user_properties", {}))

    @property
    def metrics(self) -> dict[str, dict[str, dict[str, Any]]]:
        """`{title: {series: {"last", "min", "max", "count"}}}` (a single value NAME is
        `{NAME: {NAME: ...}}`)."""
        if self._live is not None:
            self._live.recorder.flush(status=True)
        metrics = self._read_status().get("metrics", {})
        return {
            title: {
                series: {
                    key: value
                    for key, value in summary.items()
                    if key in ("last", "min", "max", "count")
                }
                for series, summary in by_series.items()
            }
            for title, by_series in metrics.items()
        }

    @property
    def environment(self) -> dict[str, Any]:
        """What `Run.init()` captured (code, packages, argv, host, Python); `{}` if nothing
        was (yet)."""
        if self._live is not None:
            self._live.wait_capture()
            self._live.write_pending()  # run.json may name a shared copy
        return self._folder.read_environment()

    def get_scalars(self, title: str | None = None) -> dict[str, dict[str, tuple[Any, Any]]]:
        """`{title: {series: (iterations, values)}}` (numpy arrays, or lists without numpy)."""
        from .points import read_points

        if self._live is not None:
            self._live.recorder.flush()
        return {
            series_title: {series: (points[0], points[1]) for series, points in by_series.items()}
            for series_title, by_series in read_points(self._folder.scalars, title).items()
        }

    def get_points(self, title: str | None = None) -> dict[str, dict[str, tuple[Any, Any, Any]]]:
        """Like `get_scalars`, with the report times: (iterations, values, times)."""
        from .points import read_points

        if self._live is not None:
            self._live.recorder.flush()
        return read_points(self._folder.scalars, title)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The reports other than scalars (text, table, plotly, matplotlib, image, media,
        histogram), oldest first; `file` is relative to the run's folder."""
        from .events import read_events

        if self._live is not None:
            self._live.recorder.flush()
        return read_events(self._folder, kind)

    def console(self, tail_bytes: int | None = None) -> str:
        """The captured stdout and stderr (for a job: its `.out` then `.err`)."""
        from .events import console_text

        if self._live is not None:
            self._live.flush_console()
        return console_text(self, tail_bytes)

    @property
    def artifacts(self) -> Mapping[str, Any]:
        """Artifacts by name, each with `get()` and `get_local_copy()`."""
        from .outputs import artifact_map

        return artifact_map(self, self._read_meta().get("artifacts", {}))

    @property
    def models(self) -> dict[str, Mapping[str, Any]]:
        """`{"input": {name: model}, "output": {name: model}}`."""
        from .outputs import artifact_map

        models = self._read_meta().get("models", {})
        return {side: artifact_map(self, models.get(side, {})) for side in ("input", "output")}

    @property
    def logger(self) -> Any:
        """The reporting interface (`report_scalar`, `report_table`, ...) of a live run."""
        if self._live is None:
            raise RunStateError(
                f"run {self.id} is not running in this process: only the "
                "process that runs a run reports to it."
            )
        return self._live.logger

    # -- what the code says -------------------------------------------------------------------
    def connect(self, mutable: Any, name: str = "General") -> Any:
        """Record `mutable` (a dict, an argparse Namespace or an object with attributes) as
        the parameters of section `name`, and return the values to use: the same, unless the
        run was edited before it ran (a clone run by the agent)."""
        values = plain_values(mutable, f"connect(name={name!r})")
        flat = flatten_section(values)
        edited = self._record_section(name, flat)
        return merge_edited(mutable, values, edited)

    def connect_configuration(self, configuration: Any, name: str = "General") -> Any:
        """Record a configuration object (a JSON-able dict or list, or the path of a text
        file) under `name`; return it (or its edited version)."""
        from .sections import configuration_value

        value, returned = configuration_value(configuration, name)
        edited = self._edit(lambda meta: _set_configuration(meta, name, value))
        stored = edited.get("configuration", {}).get(name, value)
        return returned(stored)

    def set_user_properties(self, **properties: Any) -> None:
        """Set user properties (key/value, searchable as `user.KEY`); allowed after the run
        ended too, not once it is published."""
        for key, value in properties.items():
            if not isinstance(value, (str, int, float, bool)) and value is not None:
                raise ReportError(
                    f"user property {key!r}: expected a string, number, bool or "
                    f"None, got {type(value).__name__}."
                )
        self._edit(lambda meta: meta.setdefault("user_properties", {}).update(properties))

    def add_tags(self, *tags: str) -> None:
        from .sections import check_tags

        check_tags(list(tags))
        self._edit(
            lambda meta: meta.__setitem__(
                "tags", list(dict.fromkeys([*meta.get("tags", []), *tags]))
            )
        )

    def remove_tags(self, *tags: str) -> None:
        self._edit(
            lambda meta: meta.__setitem__(
                "tags", [tag for tag in meta.get("tags", []) if tag not in tags]
            )
        )

    def set_comment(self, comment: str | None) -> None:
        self._edit(lambda meta: meta.__setitem__("comment", comment))

    def archive(self, archived: bool = True) -> None:
        """Hide the run from queries (unless `include_archived=True`); reversible."""
        self._edit(lambda meta: meta.__setitem__("archived", bool(archived)), published=True)

    def unarchive(self) -> None:
        self.archive(False)

    # -- the life of a run seen from outside (tracking/lifecycle.py) --------------------------
    @staticmethod
    def clone(
        source: Run | str,
        name: str | None = None,
        project: str | None = None,
        comment: str | None = None,
        *,
        workspace: str | os.PathLike[str] | None = None,
    ) -> Run:
        """A new draft copying `source`'s inputs (parameters, configuration objects, user
        properties, input models, code state), named "Clone Of NAME" unless `name` is given;
        none of its outputs. Edit it, then `enqueue()` it for an agent."""
        from .lifecycle import clone_run

        if isinstance(source, str):
            source = Run.get(source, workspace=workspace)
        return clone_run(source, name=name, project=project, comment=comment)

    @classmethod
    def create(
        cls,
        project: str = "default",
        name: str = "run",
        *,
        script: str,
        repo: str | None = None,
        branch: str | None = None,
        commit: str | None = None,
        working_directory: str | None = None,
        argv: list[str] | tuple[str, ...] = (),
        packages: list[str] | str | None = None,
        type: str = "training",
        tags: list[str] | tuple[str, ...] | None = None,
        comment: str | None = None,
        workspace: str | os.PathLike[str] | None = None,
    ) -> Run:
        """A draft that runs `script` (relative to `repo`, a local path or a URL the agent can
        reach; without `repo`, a script file on this machine) at `commit` (else the head of
        `branch`), from `working_directory`, with `argv`; nothing is executed here."""
        from .drafts import create_draft

        return create_draft(cls, project=project, name=name, script=script, repo=repo,
                            branch=branch, commit=commit, working_directory=working_directory,
                            argv=list(argv), packages=packages, type=type,
                            tags=list(tags or ()), comment=comment, workspace=workspace)

    def set_parameter(self, path: str, value: Any) -> None:
        """Set one parameter of a draft, named "Section/key" (a bare key is in General)."""
        from .lifecycle import edit_parameters

        edit_parameters(self, {path: value}, replace=False, where="set_parameter")

    def set_parameters(self, values: Mapping[str, Any]) -> None:
        """Replace all parameters of a draft with `values` ({"Section/key": value})."""
        from .lifecycle import edit_parameters

        edit_parameters(self, dict(values), replace=True, where="set_parameters")

    def update_parameters(self, values: Mapping[str, Any]) -> None:
        """Merge `values` ({"Section/key": value}) into the parameters of a draft."""
        from .lifecycle import edit_parameters

        edit_parameters(self, dict(values), replace=False, where="update_parameters")

    def remove_parameters(self, paths: Iterable[str]) -> None:
        """Remove parameters ("Section/key") from a draft: when it runs, the code gives
        them their values again (the script's own, or the job's for a job's clone)."""
        from .lifecycle import edit_parameters

        edit_parameters(self, {}, replace=False, where="remove_parameters", remove=list(paths))

    def set_configuration(self, name: str, configuration: Any) -> None:
        """Replace the configuration object `name` of a draft."""
        from .lifecycle import edit_configuration

        edit_configuration(self, name, configuration)

    def enqueue(self, queue: str = "default") -> None:
        """draft -> queued: an agent serving `queue` will run it."""
        from .lifecycle import enqueue

        enqueue(self, queue)

    def dequeue(self) -> None:
        """queued -> draft (unless an agent already took it)."""
        from .lifecycle import dequeue

        dequeue(self)

    def abort(self, wait: float = 30.0) -> str:
        """running -> aborted: its process gets SIGTERM (wherever it runs); waits up to `wait`
        seconds for the run to record it and returns the state then."""
        from .lifecycle import abort

        return abort(self, wait=wait)

    def reset(self) -> None:
        """completed / failed / aborted -> draft, its outputs deleted."""
        from .lifecycle import reset

        reset(self)

    def execute_remotely(
        self, queue: str = "default", clone: bool = False, exit_process: bool = True
    ) -> Run | None:
        """Stop running here and let an agent run this (or, with `clone`, a copy of it) from
        `queue`; the process then exits with status 0 unless `exit_process` is False. Run by
        an agent, does nothing and returns None."""
        from .drafts import execute_remotely

        return execute_remotely(self, queue, clone, exit_process)

    def create_function_task(
        self, func: Any, func_name: str | None = None, task_name: str | None = None,
        **kwargs: Any,
    ) -> Run | None:
        """A draft that runs `func(**kwargs)` of this script when an agent runs it; the
        arguments are its parameters (section Function). Run by that agent, this call runs
        the function and ends the process."""
        from .drafts import create_function_task

        return create_function_task(self, func, func_name, task_name, kwargs)

    def publish(self) -> None:
        """Make an ended run read-only: every later edit raises RunStateError."""
        if self.state not in ENDED_STATES:
            raise RunStateError(
                f"run {self.id} is {self.state}: only an ended run (completed, "
                "failed or aborted) can be published."
            )
        self._edit(lambda meta: meta.__setitem__("published", True))

    def upload_artifact(
        self, name: str, artifact_object: Any, metadata: dict[str, Any] | None = None
    ) -> Any:
        """Store an artifact (a file or folder path, dict, DataFrame, ndarray, PIL image or
        any picklable object) once by content under the workspace; returns it."""
        from .outputs import add_output

        return add_output(self, "artifact", name, artifact_object, metadata)

    def log_model(
        self, path: str | os.PathLike[str], name: str | None = None, framework: str | None = None
    ) -> Any:
        """Record an output model (a weights file or folder)."""
        from .outputs import add_output

        return add_output(
            self,
            "output_model",
            name or Path(path).name,
            os.fspath(path),
            {"framework": framework} if framework else None,
        )

    def log_input_model(
        self, path: str | os.PathLike[str], name: str | None = None, framework: str | None = None
    ) -> Any:
        """Record an input model (weights the run loaded)."""
        from .outputs import add_output

        return add_output(
            self,
            "input_model",
            name or Path(path).name,
            os.fspath(path),
            {"framework": framework} if framework else None,
        )

    def _record_section(self, section: str, flat: dict[str, Any]) -> dict[str, Any]:
        """Write a parameter section; return the values to use (edited ones win)."""
        edited: dict[str, Any] = {}

        def change(meta: dict[str, Any]) -> None:
            params = meta.setdefault("params", {})
            overrides = meta.get("edited", {}).get(section, {})
            edited.update(overrides)
            params[section] = {**flat, **{k: v for k, v in overrides.items() if k in flat}}

        self._edit(change)
        return edited

    def _edit(self, change: Any, *, published: bool = False) -> dict[str, Any]:
        if not published and self._read_meta().get("published"):
            raise RunStateError(
                f"run {self.id} is published, so read-only. Clone it to change anything."
            )
        if self._live is not None:
            return self._live.edit(change)
        meta = self._folder.update_meta(change)
        self._meta = meta
        append_edit(self._workspace, self.id)
        return meta

    # -- ending -------------------------------------------------------------------------------
    def close(self) -> None:
        """End a live run as completed (also done at interpreter exit); writes everything."""
        if self._live is not None:
            self._live.close("completed", None, None, None)

    def mark_failed(self, message: str | None = None) -> None:
        if self._live is not None:
            self._live.close("failed", "marked", message, None)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        from .process import exit_state

        if self._live is not None:
            self._live.close(*exit_state(error))

    def __repr__(self) -> str:
        try:
            where = f"{self.project}: {self.name}"
        except (OSError, ValueError):
            where = str(self.folder)
        return f"<Run {self.id[:12]} {where}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id and other.folder == self.folder

    def __hash__(self) -> int:
        return hash((self.id, self.folder))


def _set_configuration(meta: dict[str, Any], name: str, value: Any) -> None:
    configuration = meta.setdefault("configuration", {})
    edited = meta.get("edited_configuration", {})
    configuration[name] = edited.get(name, value)


def set_current(run: Run | None) -> None:
    global _current
    with _current_lock:
        _current = run


def current_live() -> Run | None:
    with _current_lock:
        return _current


def new_run_id() -> str:
    """32 random hex digits (like uuid4().hex, without importing uuid at start-up)."""
    return os.urandom(16).hex()


def is_reusable(folder: RunFolder, reuse_seconds: float, now: float) -> bool:
    """Whether a run may be reused by a new `Run.init` of the same project and name: ended
    (or killed) recently, no artifacts, no models, not published, no live process."""
    try:
        meta = folder.read_meta()
    except (OSError, ValueError):
        return False
    status = folder.read_status()
    if meta.get("published") or meta.get("archived") or meta.get("artifacts"):
        return False
    if any(meta.get("models", {}).get(side) for side in ("input", "output")):
        return False
    if status.get("state") in ("draft", "queued"):
        return False
    if status.get("state") == "running" and owner_alive(status, now):
        return False
    last = status.get("heartbeat") or status.get("ended") or meta.get("created") or 0
    return now - float(last) < reuse_seconds


def _pid_create_time() -> float | None:
    """This process's start time (read once per process: it cannot change)."""
    pid = os.getpid()
    if pid not in _create_times:
        try:
            import psutil  # lazily: Run.init's cost matters

            _create_times[pid] = float(psutil.Process(pid).create_time())
        except Exception as error:  # only used to tell a reused pid; absence is tolerated
            logger.debug("no process start time (%s)", error)
            _create_times[pid] = None
    return _create_times[pid]


_create_times: dict[int, float | None] = {}


def running_status(continued: dict[str, Any] | None = None) -> dict[str, Any]:
    """status.json of a run starting in this process."""
    import socket

    status = {} if continued is None else dict(continued)
    for key in ("reason", "message", "traceback", "ended"):
        status.pop(key, None)
    status.update(
        state="running",
        started=time.time(),
        host=socket.gethostname(),
        pid=os.getpid(),
        create_time=_pid_create_time(),
        argv=list(sys.argv),
    )
    return status


__all__ = ["RUN_TYPES", "Run", "RunNotFoundError"]
