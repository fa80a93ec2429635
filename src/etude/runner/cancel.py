"""SIGTERM / SIGINT in a job process: record the job as cancelled, then raise `TaskCancelled`.

The record and the release of the job lock happen in a background thread, so they are done even
if the task catches `TaskCancelled` and carries on; the main thread gets the exception at once.
A signal that arrives at the job's time limit records the reason `timeout` instead.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType

from ..config.runtime import KILL_GRACE_ENV, LOCK_FD_ENV, TaskCancelled, remaining_time
from ..workspace import JobDir, write_json_atomic

TIMEOUT_MARGIN = 2.0  # seconds: a signal this close to the deadline is the time limit


class Cancellation:
    """Installs the signal handlers of a job process and remembers why it was stopped."""

    def __init__(self, job: JobDir, started: float) -> None:
        self.job = job
        self.started = started
        self.reason: str | None = None
        self.signum: int | None = None
        self._cleanup: threading.Thread | None = None

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None:
            return  # already stopping; a second signal changes nothing
        left = remaining_time()
        self.reason = "timeout" if left is not None and left <= TIMEOUT_MARGIN else "cancelled"
        self.signum = signum
        self._cleanup = threading.Thread(target=self._record, name="etude-cancel")
        self._cleanup.start()
        grace = os.environ.get(KILL_GRACE_ENV)
        raise TaskCancelled(float(grace) if grace else None)

    def _record(self) -> None:
        name = signal.Signals(self.signum).name if self.signum else "signal"
        write_json_atomic(
            self.job.failed,
            {
                "reason": self.reason,
                "message": f"stopped by {name}"
                + (" at the time limit" if self.reason == "timeout" else ""),
                "started": self.started,
                "ended": time.time(),
            },
        )
        release_lock()

    def finish(self) -> int:
        """Wait for the record to be written; return the exit status of a stopped job."""
        if self._cleanup is not None:
            self._cleanup.join()
        return 128 + (self.signum or signal.SIGTERM)


def release_lock() -> None:
    """Close the inherited job-lock descriptor (another process may then take the job)."""
    value = os.environ.pop(LOCK_FD_ENV, None)
    if value:
        try:
            os.close(int(value))
        except (OSError, ValueError):
            pass  # already closed, or not ours: nothing is held through it
