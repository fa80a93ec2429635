"""Following Slurm jobs: one `squeue` call per poll for every job a process follows.

States come from `squeue --me -t all`, which lists pending, running and recently ended jobs
(Slurm keeps ended jobs for `MinJobAge`, 300 s by default). etude does not need accounting
(`sacct`/slurmdbd): how a job ended is read from the job's own markers, and Slurm's final state
only fills the gaps (a job killed for memory or at its time limit, which cannot write one).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("etude.launchers.slurm")

#: States after which a Slurm job runs no more. COMPLETING is not one: processes still end.
ENDED = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "CANCELLED",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)

#: Pending reasons that never resolve by waiting: the request itself cannot be met.
_HOPELESS = frozenset(
    {
        "PartitionTimeLimit",
        "PartitionNodeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "QOSNotAllowed",
        "AccountNotAllowed",
        "DependencyNeverSatisfied",
        "JobLaunchFailure",
    }
)


def hopeless(reason: str) -> bool:
    """Whether a pending job with this Slurm reason can never start as submitted."""
    return reason in _HOPELESS or reason.endswith(("PerJobLimit", "PerJob"))


def outcome(state: str | None, slurm_job_id: str) -> dict[str, Any]:
    """The failure record that Slurm's final `state` implies (for a job that wrote none)."""
    word = state or "UNKNOWN"
    where = f"Slurm job {slurm_job_id} ended with state {word}"
    if word in ("TIMEOUT", "DEADLINE"):
        return {"reason": "timeout", "message": f"{where} (its time limit)"}
    if word == "CANCELLED":
        return {"reason": "cancelled", "message": f"{where} (scancel or an administrator)"}
    if word == "FAILED":
        return {
            "reason": "killed",
            "message": f"{where} and no done or failed marker: the job process was killed, or "
            "the batch script failed before it started (see .etude/slurm-*.log)",
        }
    if word == "UNKNOWN":
        return {
            "reason": "killed",
            "message": f"Slurm job {slurm_job_id} is no longer listed by squeue and left no "
            "done or failed marker",
        }
    return {"reason": "killed", "message": where}


def parse_time_left(text: str) -> float | None:
    """Seconds in squeue's `%L` (`D-HH:MM:SS`, `HH:MM:SS`, `MM:SS`); None for UNLIMITED etc."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text.strip())
    if not match:
        return None
    numbers = [int(p) for p in match.group(2).split(":")]
    while len(numbers) < 3:  # MM:SS, or plain seconds
        numbers.insert(0, 0)
    hours, minutes, seconds = numbers
    return float(int(match.group(1) or 0) * 86400 + hours * 3600 + minutes * 60 + seconds)


def slurm_deadline(squeue: str = "squeue", job_id: str | None = None) -> float | None:
    """Epoch seconds at which the running Slurm job `job_id` ($SLURM_JOB_ID) hits its limit."""
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return None
    try:
        done = subprocess.run(
            [squeue, "-h", "-j", job_id, "-o", "%L"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("etude: cannot ask squeue for the time left of job %s: %s", job_id, exc)
        return None
    left = parse_time_left(done.stdout.strip().splitlines()[0]) if done.stdout.strip() else None
    return None if left is None else time.time() + left


def slurm_available(timeout: float = 5.0) -> bool:
    """Whether a Slurm controller answers here (`scontrol ping` reports it UP in time)."""
    try:
        done = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "UP" in done.stdout


class QueueError(OSError):
    """squeue failed; the message has its output."""


def query(squeue: str = "squeue") -> dict[str, tuple[str, str]]:
    """`{job id: (state, reason)}` for this user's jobs, array elements one by one."""
    try:
        done = subprocess.run(
            [squeue, "--me", "-h", "-r", "-t", "all", "-o", "%i|%T|%r"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QueueError(f"cannot run {squeue}: {exc}") from exc
    if done.returncode != 0:
        raise QueueError(f"{squeue} failed (exit {done.returncode}): {done.stderr.strip()}")
    states: dict[str, tuple[str, str]] = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


class Followed:
    """What the queue needs of a followed job: its id and a way to tell it what squeue says."""

    slurm_job_id: str

    def update(self, state: str | None, reason: str) -> bool:  # pragma: no cover - interface
        """Take the latest state (None: not listed); return True once the job has ended."""
        raise NotImplementedError


class SlurmQueue:
    """Polls squeue for all followed jobs in one thread; the interval backs off when calm.

    The interval starts at `interval[0]`, grows by half after each poll that changed nothing,
    up to `interval[1]`, and starts over when something changes or a job is added.
    """

    def __init__(self, squeue: str, interval: tuple[float, float]) -> None:
        self.squeue = squeue
        self.interval = interval
        self._jobs: dict[str, Followed] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._wake = False
        self._last: dict[str, tuple[str, str]] = {}
        self._last_at = 0.0

    def follow(self, job: Followed) -> None:
        with self._cond:
            self._jobs[job.slurm_job_id] = job
            self._wake = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True)
                self._thread.name = "etude-squeue"
                self._thread.start()
            self._cond.notify_all()

    def snapshot(self, max_age: float = 1.0) -> dict[str, tuple[str, str]]:
        """The latest squeue listing, queried again if older than `max_age` seconds."""
        with self._cond:
            if time.monotonic() - self._last_at <= max_age:
                return self._last
        states = query(self.squeue)
        with self._cond:
            self._last, self._last_at = states, time.monotonic()
        return states

    def _loop(self) -> None:
        delay = self.interval[0]
        while True:
            with self._cond:
                if not self._jobs:
                    self._thread = None
                    return
                jobs = dict(self._jobs)
            changed = self._poll(jobs)
            with self._cond:
                if changed or self._wake:
                    delay = self.interval[0]
                else:
                    delay = min(self.interval[1], delay * 1.5)
                self._wake = False
                self._cond.wait_for(lambda: self._wake, timeout=delay)

    def _poll(self, jobs: dict[str, Followed]) -> bool:
        try:
            states = self.snapshot(max_age=0.0)
        except QueueError as exc:
            logger.warning("etude: %s; trying again", exc)
            return False
        changed = False
        for job_id, job in jobs.items():
            state, reason = states.get(job_id, (None, ""))
            if job.update(state, reason):
                changed = True
                with self._cond:
                    self._jobs.pop(job_id, None)
        return changed


#: Seconds between two squeue calls of a follower: (first, most) — SlurmLauncher's default.
DEFAULT_INTERVAL = (0.5, 10.0)
_queues: dict[tuple[str, tuple[float, float]], SlurmQueue] = {}
_queues_lock = threading.Lock()


def queue_for(squeue: str, interval: tuple[float, float]) -> SlurmQueue:
    """The process's queue follower for this squeue command (one thread, one call per poll)."""
    with _queues_lock:
        key = (squeue, interval)
        if key not in _queues:
            _queues[key] = SlurmQueue(squeue, interval)
        return _queues[key]


def recorded_job_state(record: dict[str, Any]) -> tuple[str, str] | None:
    """`(state, reason)` of the live Slurm job named by a job folder's process record.

    None for a record of another launcher, or a Slurm job that has ended or is unknown. One
    squeue call serves every record read within two seconds (a whole `etude jobs list`).
    """
    job_id = record.get("slurm_job_id")
    if record.get("launcher") != "slurm" or not isinstance(job_id, str):
        return None
    try:
        listing = queue_for("squeue", DEFAULT_INTERVAL).snapshot(max_age=2.0)
    except QueueError as exc:
        logger.warning("etude: %s", exc)
        return None
    found = listing.get(job_id)
    return None if found is None or found[0] in ENDED else found


def run_quietly(argv: list[str], what: str, on_error: Callable[[str], None]) -> bool:
    """Run a Slurm command; report its failure through `on_error` instead of raising."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        on_error(f"{what}: cannot run {argv[0]}: {exc}")
        return False
    if done.returncode != 0:
        on_error(f"{what}: {' '.join(argv)} failed: {done.stderr.strip()}")
        return False
    return True
