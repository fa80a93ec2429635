"""`etude jobs kill`: stop a running job (a signal to its process, or `scancel` for Slurm)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from ..launchers.slurm_queue import recorded_job_state
from ..workspace import CorruptFileError, JobDir, Workspace, is_locked, read_json, read_status
from ..workspace.status import RUNNING, WAITING

POLL_INTERVAL = 0.1  # seconds between two looks at a job being stopped
SIGKILL_WAIT = 10.0  # at least this long after SIGKILL (which cannot be ignored) for the exit


def _process_record(job: JobDir) -> dict[str, Any] | None:
    try:
        record = read_json(job.process)
    except (FileNotFoundError, CorruptFileError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    return record


def _why_not_signal(job: JobDir, record: dict[str, Any] | None) -> str | None:
    label = job.label
    if record is None:
        return (
            f"{label} holds its lock but {job.process} is missing or unreadable, so its "
            "process is unknown; try again in a moment."
        )
    launcher = record.get("launcher")
    if launcher not in (None, "direct"):
        return f"{label} was started by the {launcher!r} launcher; stop it with its own tools."
    host = record.get("host")
    if host not in (None, socket.gethostname()):
        return f"{label} runs on host {host!r}; run `etude jobs kill` there."
    return None


def _send(pid: int, signum: int) -> None:
    """Signal the job's process group when it leads one (its children stop too), else it."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it ended meanwhile; the caller checks that it is gone anyway


def _process_running(pid: int) -> bool:
    import psutil  # lazily, as etude.workspace.status does: only `kill` needs it here

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _wait_stopped(job: JobDir, pid: int, timeout: float) -> bool:
    """Wait until the job's lock is free and its process has ended, at most `timeout` s.

    Both are needed: a job process may release its lock before it exits (while it cleans up).
    """
    deadline = time.monotonic() + timeout
    while is_locked(job.lock) or _process_running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL / 2)
    return True


def stop_job(workspace: Workspace, args: argparse.Namespace) -> int:
    job = workspace.find_job(args.job)
    label = job.label
    status = read_status(job, recorded_job_state)
    if status.state not in (RUNNING, WAITING):
        print(f"etude: {label} is not running (state {status.state}).", file=sys.stderr)
        return 1
    slurm = _slurm_record(job)
    if slurm is not None:
        return _scancel(job, label, slurm, args.timeout)
    if status.state != RUNNING:
        print(f"etude: {label} is not running (state {status.state}).", file=sys.stderr)
        return 1
    record = _process_record(job)
    refusal = _why_not_signal(job, record)
    if refusal is not None or record is None:
        print(f"etude: {refusal}", file=sys.stderr)
        return 1
    pid = record["pid"]
    _send(pid, signal.SIGTERM)
    stopped = _wait_stopped(job, pid, args.timeout)
    if not stopped and args.force:
        _send(pid, signal.SIGKILL)
        stopped = _wait_stopped(job, pid, max(args.timeout, SIGKILL_WAIT))
    if not stopped:
        signal_name = "SIGKILL" if args.force else "SIGTERM; pass --force to send SIGKILL"
        print(f"etude: {label} (pid {pid}) still runs after {signal_name}.", file=sys.stderr)
        return 1
    after = read_status(job)
    how = f" ({after.reason})" if after.reason else ""
    print(f"Stopped {label} (pid {pid}); it is now {after.state}{how}.")
    return 0


def _slurm_record(job: JobDir) -> dict[str, Any] | None:
    try:
        record = read_json(job.process)
    except (FileNotFoundError, CorruptFileError):
        return None
    if isinstance(record, dict) and isinstance(record.get("slurm_job_id"), str):
        return record
    return None


def _scancel(job: JobDir, label: str, record: dict[str, Any], timeout: float) -> int:
    """Cancel the job's Slurm job and wait until Slurm and the folder agree it ended."""
    slurm_id = record["slurm_job_id"]
    done = subprocess.run(["scancel", slurm_id], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"etude: scancel {slurm_id} failed: {done.stderr.strip()}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + timeout
    while is_locked(job.lock) or recorded_job_state(record) is not None:
        if time.monotonic() >= deadline:
            print(f"etude: {label} (Slurm job {slurm_id}) still runs.", file=sys.stderr)
            return 1
        time.sleep(POLL_INTERVAL)
    after = read_status(job)
    how = f" ({after.reason})" if after.reason else ""
    print(f"Cancelled {label} (Slurm job {slurm_id}); it is now {after.state}{how}.")
    return 0


