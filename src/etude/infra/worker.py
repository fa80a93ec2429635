"""The job process: `python -m etude.infra FOLDER [FOLDER...]` (see `__main__.py`).

For each job folder in turn: take the folder's lock (skip the folder if another process holds
it), record the process in `.etude/process.json`, load the pickled object from `job.pkl`, run
its infra method, and store the result (atomically) or the failure (`.etude/failed.json` with
the traceback). The process's standard streams go to each folder's `job.out` / `job.err`.
SIGTERM stops the job and records it as cancelled.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from ..config.runtime import TaskCancelled
from ..runner.hooks import job_ended, job_started
from ..workspace import FileLock
from .pickling import read_payload
from .results import job_dir, payload_path, process_record, store_failure, write_json_quick


def run_folder(path: Path, *, in_job_process: bool) -> BaseException | None:
    """Run the job of folder `path`; return the exception it raised (also recorded), if any.

    `in_job_process` is False for `cluster="debug"`, where this runs inside the caller.
    """
    job = job_dir(path)
    lock = FileLock(job.lock)
    if not lock.try_acquire():
        print(f"etude: {path} is computed by another process; skipping it.", file=sys.stderr)
        return None
    started = time.time()
    infra = None
    try:
        if job.done.exists():
            return None  # computed while this process waited for its turn
        write_json_quick(job.process, process_record(sys.argv if in_job_process else None))
        owner, field, items, meta = read_payload(payload_path(job), in_job_process=in_job_process)
        infra = owner.__dict__[field]
        job_started(job.path)
        infra._run_job(job, items, meta, started)
        job_ended("completed")
        return None
    except BaseException as exc:
        job_ended("aborted" if isinstance(exc, TaskCancelled) else "failed",
                  f"{type(exc).__name__}: {exc}")
        store_failure(job, exc, started)
        if in_job_process:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return exc
    finally:
        if infra is not None:
            infra._share_job(job)  # `permissions`: what this process wrote
        lock.release()


def _redirect(path: Path) -> None:
    """Send fds 1 and 2 (and so subprocesses' output) to the folder's log files."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    job = job_dir(path)
    for fd, target in ((1, job.stdout), (2, job.stderr)):
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(handle, fd)
        os.close(handle)


def _cancel(signum: int, frame: FrameType | None) -> None:
    raise TaskCancelled()


def main(argv: list[str] | None = None) -> int:
    """Run every folder given; exit status 1 if one failed."""
    folders = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not folders:
        print("usage: python -m etude.infra FOLDER [FOLDER...]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _cancel)
    status = 0
    for folder in folders:
        _redirect(folder)
        error = run_folder(folder, in_job_process=True)
        if error is not None:
            status = 1
            if isinstance(error, (TaskCancelled, KeyboardInterrupt)):
                break  # the whole process was asked to stop
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    return status
