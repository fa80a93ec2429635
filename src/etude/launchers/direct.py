"""`DirectLauncher`: job processes on this machine."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from .base import LaunchedJob, Launcher, LaunchRequest


class DirectLauncher(Launcher):
    """Runs each job as a subprocess of this machine, at most `max_jobs` at a time.

    `max_jobs` defaults to the number of CPUs. Jobs run in their own session, so that they
    outlive an experiment process killed by a signal (a new run of the experiment waits for
    them instead of starting them twice).
    """

    def __init__(self, max_jobs: int | None = None) -> None:
        if max_jobs is None:
            max_jobs = os.cpu_count() or 1
        if not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 1:
            raise ValueError(
                f"DirectLauncher(max_jobs={max_jobs!r}): expected a positive integer, e.g. "
                "max_jobs=4."
            )
        self.max_jobs = max_jobs

    def launch(self, request: LaunchRequest) -> LaunchedJob:
        with open(request.stdout, "wb") as out, open(request.stderr, "wb") as err:
            return subprocess.Popen(
                request.argv,
                cwd=request.cwd,
                env=request.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=request.keep_fds,
                start_new_session=True,
            )

    def describe(self) -> dict[str, Any]:
        return {"launcher": "direct", "max_jobs": self.max_jobs}

    def __repr__(self) -> str:
        return f"DirectLauncher(max_jobs={self.max_jobs})"
