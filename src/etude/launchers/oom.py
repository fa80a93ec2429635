"""Telling a job killed by the kernel's out-of-memory killer from one killed by a person.

Both end with SIGKILL and nothing on standard error. The memory cgroup of the job counts the
processes the OOM killer ended in it: `oom_kill` in `memory.events` (cgroup v2) or in
`memory.oom_control` (cgroup v1, Linux 4.13+). `OomWatch` reads that count when the job
starts and again when it ended; a count that grew while a job died of SIGKILL says that
memory is the likely cause. Another process of the same cgroup killed at the same time would
be taken for the job (hence "likely"); where the counter cannot be read (not Linux, no
memory controller), nothing is said.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

logger = logging.getLogger("etude.launchers")

CGROUP_ROOT = Path("/sys/fs/cgroup")


def oom_counter(pid: int, root: Path = CGROUP_ROOT) -> Path | None:
    """The file holding the OOM-kill count of `pid`'s memory cgroup, or None."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if "memory" in controllers.split(","):  # cgroup v1
            candidate = root / "memory" / relative / "memory.oom_control"
        elif controllers == "":  # cgroup v2 (mounted at the root, or at unified/ in hybrid)
            candidate = root / relative / "memory.events"
            if not candidate.exists():
                candidate = root / "unified" / relative / "memory.events"
        else:
            continue
        if candidate.exists():
            return candidate
    return None


def read_oom_kills(counter: Path) -> int | None:
    """The `oom_kill` count in `counter`, or None when it cannot be read."""
    try:
        text = counter.read_text()
    except OSError as exc:
        logger.debug("etude: cannot read %s: %s", counter, exc)
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


class OomWatch:
    """The OOM-kill count of a job's memory cgroup, read when the job started."""

    __slots__ = ("before", "counter")

    def __init__(self, pid: int) -> None:
        self.counter = oom_counter(pid)
        self.before = None if self.counter is None else read_oom_kills(self.counter)

    def killed_by_oom(self, status: int | None) -> bool:
        """Whether a job that ended with `status` (negative: the signal) was likely ended by
        the OOM killer: SIGKILL, and the cgroup's count grew since the start."""
        if status != -signal.SIGKILL or self.counter is None or self.before is None:
            return False
        after = read_oom_kills(self.counter)
        return after is not None and after > self.before


def oom_outcome(watch: OomWatch | None, status: int | None) -> dict[str, object] | None:
    """The failure record of a job the OOM killer likely ended, or None."""
    if watch is None or not watch.killed_by_oom(status):
        return None
    return {
        "reason": "killed",
        "message": "killed (signal 9) by the kernel's out-of-memory killer, most likely: the "
        f"job's memory cgroup counted an OOM kill ({watch.counter}). The job needed more "
        "memory than it was allowed; give it more (a launcher with more memory, or fewer jobs "
        "at once) or make it use less.",
        "exit_status": status,
        "oom_kill": True,
    }
