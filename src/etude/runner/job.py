"""What runs inside a job process (started as `python NAME.py` in the job folder)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError, ResumableTask, SerializationError, Task, runtime, type_name, walk
from ..config.runtime import (
    DEADLINE_ENV,
    KILL_GRACE_ENV,
    LOCK_FD_ENV,
    LOCK_WAIT_ENV,
    GracefulTimeout,
)
from ..config.serialize import load
from ..workspace import (
    FileLock,
    JobDir,
    Workspace,
    check_done,
    current_workspace,
    read_json,
    write_json_atomic,
)
from ..workspace.layout import short_name
from .cancel import Cancellation
from .hooks import job_ended, job_started


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError) as exc:  # a closed stream: nothing left to lose
            print(f"etude: cannot flush {stream!r}: {exc}", file=sys.__stderr__)


def _fail(job: JobDir, exc: BaseException, started: float) -> int:
    import traceback  # lazily: only failing jobs need it

    reason = "timeout" if isinstance(exc, GracefulTimeout) else "error"
    record: dict[str, Any] = {
        "reason": reason,
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        # `KeyError: 'lr'`, `SystemExit: 3`: the type says what the text alone does not
        "message": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "started": started,
        "ended": time.time(),
    }
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    _flush()
    write_json_atomic(job.failed, record)
    return 1


def _prepare(job: JobDir) -> tuple[Task, str | None]:
    """The task of the job folder, and the digest of its code (see `params.json`'s `code`)."""
    params = read_json(job.params)
    for entry in reversed(params["config"].get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    current_workspace.set(Workspace(params["workspace"]))
    task, _ = load(params["config"])
    if not isinstance(task, Task):
        raise TypeError(f"{job.params}: the root object is {type(task).__name__}, not a Task.")
    task.__taskdir__ = job.path
    task.__maintaskdir__ = job.path
    task.__tags__ = dict(params.get("tags", {}))
    runtime.output_sink = _output_sink(job, task)
    return task, (params.get("code") or {}).get("digest")


def _output_sink(job: JobDir, task: Task) -> Any:
    paths = {id(cfg): path for path, cfg in walk(task, short_name(type_name(type(task))))}

    def sink(config: Any, method: str, kwargs: dict[str, Any]) -> None:
        if not isinstance(task, ResumableTask):
            raise ConfigError(
                f"register_task_output() needs a ResumableTask; {type(task).__qualname__} is a "
                "plain Task. Derive it from ResumableTask to announce outputs while it runs."
            )
        path = paths.get(id(config))
        if path is None:
            raise ConfigError(
                f"register_task_output(): {type(config).__qualname__} is not part of the task "
                f"{type(task).__qualname__}'s configuration."
            )
        try:
            line = json.dumps({"path": path, "method": method, "kwargs": kwargs})
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"{path}.{method}: register_task_output keywords must be JSON values ({exc})."
            ) from exc
        with open(job.outputs, "a") as out:  # one write per event: lines never interleave
            out.write(line + "\n")

    return sink


def _take_lock(lock: FileLock, wait: float) -> bool:
    """Take the job lock, waiting up to `wait` seconds: a cluster job may start before the
    experiment that submitted it has let go of the lock."""
    deadline = time.monotonic() + wait
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _slurm_deadline() -> None:
    """Set the deadline that `remaining_time()` reads from the Slurm job's time left."""
    from ..launchers.slurm import SIGNAL_DELAY_ENV  # lazily: only Slurm jobs need it
    from ..launchers.slurm_queue import slurm_deadline

    end = slurm_deadline()
    if end is None:
        return
    delay = float(os.environ.get(SIGNAL_DELAY_ENV) or 0)
    os.environ[DEADLINE_ENV] = repr(end - delay)  # --signal stops the task that much earlier
    if delay:
        os.environ.setdefault(KILL_GRACE_ENV, repr(delay))


def run_job(script: str | os.PathLike[str]) -> int:
    """Run the job whose `NAME.py` is `script`; return the process exit status.

    Writes `.etude/done.json` after `execute()` returns, or `.etude/failed.json` (with the
    exception and traceback, also printed to `NAME.err`) if anything raises. On SIGTERM or
    SIGINT the job is recorded as cancelled (or timed out) even if the task swallows
    `TaskCancelled`.
    """
    path = Path(script).resolve()
    job = JobDir(path.parent, short_name(path.stem))
    if LOCK_FD_ENV not in os.environ:  # by hand, or on a cluster node: take the lock here
        lock = FileLock(job.lock)
        if not _take_lock(lock, float(os.environ.get(LOCK_WAIT_ENV) or 0)):
            print(
                f"etude: {job.path} is running in another process; not starting it twice.",
                file=sys.stderr,
            )
            return 75  # EX_TEMPFAIL
        if check_done(job, repair=False):  # it ran while we waited for the lock
            print(f"etude: {job.path} is already done.", file=sys.stderr)
            return 0
        assert lock.fd is not None
        os.environ[LOCK_FD_ENV] = str(lock.fd)
    if "SLURM_JOB_ID" in os.environ and DEADLINE_ENV not in os.environ:
        _slurm_deadline()
    started = time.time()
    cancellation = Cancellation(job, started)
    cancellation.install()
    job_started(job.path)
    code = None
    try:
        task, code = _prepare(job)
        os.chdir(job.path)
        for init in task._etude.init_tasks:
            init.execute()
        task.execute()
    except BaseException as exc:
        if cancellation.reason is not None:
            import traceback  # lazily: only stopped jobs need it

            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
            job_ended("aborted", cancellation.reason)
            _flush()
            return cancellation.finish()
        job_ended("failed", f"{type(exc).__name__}: {exc}")
        return _fail(job, exc, started)
    if cancellation.reason is not None:  # the task swallowed TaskCancelled
        job_ended("aborted", cancellation.reason)
        _flush()
        return cancellation.finish()
    job_ended("completed")
    _flush()
    done: dict[str, Any] = {"started": started, "ended": time.time()}
    if code is not None:  # read back by the experiment that reuses the job: did its code change?
        done["code"] = code
    write_json_atomic(job.done, done)
    return 0
