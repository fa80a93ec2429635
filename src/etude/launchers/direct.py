"""`DirectLauncher`: job processes on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from ..config.runtime import DEADLINE_ENV, KILL_GRACE_ENV
from .base import LaunchedJob, Launcher, LaunchRequest
from .oom import OomWatch, oom_outcome


class LocalJob:
    """A job process of this machine; `wait()` enforces the time limit.

    At the limit the job's process group gets SIGTERM (the task sees `TaskCancelled` and is
    recorded as timed out), then SIGKILL if it is still there after the grace period.
    """

    def __init__(self, popen: subprocess.Popen[bytes], time_limit: float | None, grace: float):
        self.popen = popen
        self.pid = popen.pid
        self.time_limit = time_limit
        self.grace = grace
        self.timed_out = False
        self.oom = OomWatch(self.pid)

    def wait(self) -> int:
        if self.time_limit is None:
            return self.popen.wait()
        try:
            return self.popen.wait(timeout=self.time_limit)
        except subprocess.TimeoutExpired:
            self.timed_out = True
        self._signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self.popen.wait()

    def poll(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def outcome(self) -> dict[str, Any] | None:
        """How the job ended when the job could not say it: a likely OOM kill, else None."""
        return oom_outcome(self.oom, self.popen.returncode)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass


class DirectLauncher(Launcher):
    """Runs each job as a subprocess of this machine, at most `max_jobs` at a time.

    `max_jobs` defaults to the number of CPUs. A job with a duration requirement is stopped at
    its limit: SIGTERM, then SIGKILL after `kill_grace` seconds. Jobs run in their own
    session, so that they outlive an experiment process killed by a signal (a new run of the
    experiment waits for them instead of starting them twice).
    """

    def __init__(self, max_jobs: int | None = None, *, kill_grace: float = 10.0) -> None:
        if max_jobs is None:
            max_jobs = os.cpu_count() or 1
        if not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 1:
            raise ValueError(
                f"DirectLauncher(max_jobs={max_jobs!r}): expected a positive integer, e.g. "
                "max_jobs=4."
            )
        if kill_grace < 0:
            raise ValueError(f"DirectLauncher(kill_grace={kill_grace!r}): must be >= 0 seconds.")
        self.max_jobs = max_jobs
        self.kill_grace = kill_grace

    def launch(self, request: LaunchRequest) -> LaunchedJob:
        env = dict(request.env)
        env[KILL_GRACE_ENV] = str(self.kill_grace)
        if request.time_limit is not None:
            env[DEADLINE_ENV] = repr(time.time() + request.time_limit)
        else:
            env.pop(DEADLINE_ENV, None)
        mode = "ab" if request.append_logs else "wb"
        with open(request.stdout, mode) as out, open(request.stderr, mode) as err:
            popen = subprocess.Popen(
                request.argv,
                cwd=request.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=request.keep_fds,
                start_new_session=True,
                preexec_fn=_die_with_parent if request.bound_to_parent else None,
            )
        return LocalJob(popen, request.time_limit, self.kill_grace)

    def describe(self) -> dict[str, Any]:
        return {"launcher": "direct", "max_jobs": self.max_jobs}

    def __repr__(self) -> str:
        return f"DirectLauncher(max_jobs={self.max_jobs})"


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when its parent dies (PR_SET_PDEATHSIG),
    so a killed agent leaves no orphan runs behind. Elsewhere, nothing (documented)."""
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
