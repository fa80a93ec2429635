"""A job's state, read from the markers in its folder (the folder is the source of truth).

Order matters: a done marker wins; a held lock means a process runs the job; a failure marker
gives the reason; a process record without a marker and without a lock holder means the process
died without a word (reason `killed`). Unreadable markers are reported, never fatal.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .atomic import CorruptFileError, read_json
from .layout import JobDir
from .locks import is_locked

DONE = "done"
ERROR = "error"
RUNNING = "running"
WAITING = "waiting"
UNSCHEDULED = "unscheduled"
STATES = (DONE, ERROR, RUNNING, WAITING, UNSCHEDULED)


class JobStatus:
    """A job's state as read from its folder, with the problems met while reading it."""

    __slots__ = ("message", "pid", "problems", "reason", "state")

    def __init__(
        self,
        state: str,
        reason: str | None = None,
        message: str | None = None,
        pid: int | None = None,
        problems: list[str] | None = None,
    ) -> None:
        self.state = state
        self.reason = reason
        self.message = message
        self.pid = pid
        self.problems = problems if problems is not None else []

    def __repr__(self) -> str:
        return f"JobStatus({self.state!r}, reason={self.reason!r})"


def _read(path: Any, problems: list[str]) -> Any:
    try:
        value = read_json(path)
    except FileNotFoundError:
        return None
    except CorruptFileError as exc:
        problems.append(str(exc))
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a JSON object, found {type(value).__name__}")
        return None
    return value


def process_alive(record: dict[str, Any]) -> bool:
    """Whether the process described by `{pid, host, create_time}` still runs on this host."""
    import socket  # lazily, like psutil below: job processes never call this

    if record.get("host") not in (None, socket.gethostname()):
        return True  # another machine: cannot tell, assume alive
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    import psutil  # lazily: only listing needs it, not the job process

    try:
        proc = psutil.Process(pid)
        started = record.get("create_time")
        return started is None or abs(proc.create_time() - float(started)) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def check_done(job: JobDir, *, repair: bool = True) -> bool:
    """Whether `job` is done: its done marker exists and is readable.

    An unreadable marker (truncated, garbage) is logged with its path and, with `repair`,
    moved aside to `.etude/history/`, so the job counts as not done and runs again.
    """
    return read_done(job, repair=repair) is not None


def undo_done(job: JobDir) -> Path | None:
    """Make a done job not done, so that the next submission runs it again: its done marker
    moves to `.etude/history/` (its outputs stay). Returns the marker's new path, or None when
    the job was not done."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    target = job.history / f"{stamp}-{job.done.name}"
    job.history.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(job.done, target)
    except FileNotFoundError:
        return None
    return target


def read_done(job: JobDir, *, repair: bool = True) -> dict[str, Any] | None:
    """The done marker of `job` (`started`, `ended`, `code`), or None when it is not done;
    an unreadable marker is handled as `check_done` says."""
    try:
        with open(job.done, "rb") as marker:
            value = json.loads(marker.read())
            if isinstance(value, dict):
                return value
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        pass  # reported below with the reading machinery's message
    problems: list[str] = []
    value = _read(job.done, problems)
    if value is not None:
        return dict(value)
    if not repair:
        return None
    import logging  # lazily: job processes never get here

    logging.getLogger("etude.workspace").warning(
        "etude: %s; the job is treated as not done", "; ".join(problems)
    )
    job.history.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(job.done, job.history / f"corrupt-{os.getpid()}-done.json")
    except FileNotFoundError:
        pass  # another process moved it first
    return None


def read_status(
    job: JobDir, ask_launcher: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None
) -> JobStatus:
    """The state of `job` as anyone reading its folder sees it. Never raises for bad files.

    A job handed to a remote launcher (Slurm) has a process record but no lock until it starts
    on its node: `ask_launcher(record)` returns the launcher's `(state, reason)` for it, or None
    when the launcher no longer knows it (then it is reported as killed).
    """
    problems: list[str] = []
    if os.path.exists(job.done) and _read(job.done, problems) is not None:
        return JobStatus(DONE, problems=problems)
    return status_when_not_done(
        lambda name, met: _read(job.meta / name, met),
        lambda: is_locked(job.lock),
        ask_launcher,
        problems,
    )


#: `read(NAME, problems)`: the JSON object of `.etude/NAME`, None if absent or unreadable
#: (with the problem appended to `problems`).
MarkerReader = Callable[[str, list[str]], "dict[str, Any] | None"]


def status_when_not_done(
    read: MarkerReader,
    locked: Callable[[], bool],
    ask_launcher: Callable[[dict[str, Any]], tuple[str, str] | None] | None,
    problems: list[str],
) -> JobStatus:
    """The rest of `read_status`'s decision, for a job without a readable done marker, from
    the markers `read` gives and whether its lock is held (`locked()`, asked only then).
    Shared with the index's folder reader (etude.store.records), which reads markers its own
    way."""
    if locked():
        record = read("process.json", problems) or {}
        pid = record.get("pid")
        return JobStatus(RUNNING, pid=pid if isinstance(pid, int) else None, problems=problems)
    failed = read("failed.json", problems)
    if failed is not None:
        reason = failed.get("reason")
        return JobStatus(
            ERROR,
            reason=reason if isinstance(reason, str) else "error",
            message=str(failed.get("message") or ""),
            problems=problems,
        )
    process = read("process.json", problems)
    queued = ask_launcher(process) if process is not None and ask_launcher else None
    if queued is not None:
        state, why = queued
        if state == "PENDING":
            return JobStatus(WAITING, message=f"queued ({why})", problems=problems)
        return JobStatus(RUNNING, message=state.lower(), problems=problems)
    if process is not None:
        return JobStatus(
            ERROR,
            reason="killed",
            message="the job process ended without writing done or failed (killed?)",
            problems=problems,
        )
    scheduled = read("scheduled.json", problems)
    if scheduled is not None and process_alive(scheduled):
        return JobStatus(WAITING, problems=problems)
    return JobStatus(UNSCHEDULED, problems=problems)
