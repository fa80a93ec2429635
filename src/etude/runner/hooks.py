"""What higher layers ask the job process to do when a job ends.

Run tracking (`etude.tracking`) starts a job's run on first use inside `execute()` and needs
it closed (its last points written) before the job's done or failed marker appears; the
runner cannot import tracking (a lower layer never imports a higher one), so tracking
registers a callback here and the runner calls `job_ended` with the outcome.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

logger = logging.getLogger("etude.runner")

#: The folder of the job this process executes (set by the runner for `Run.current()`).
JOB_FOLDER_ENV = "ETUDE_JOB_FOLDER"

_callbacks: list[Callable[[str, str | None], None]] = []


def on_job_end(callback: Callable[[str, str | None], None]) -> None:
    """Call `callback(state, message)` once when the current job ends; state is completed,
    failed or aborted."""
    _callbacks.append(callback)


def job_started(folder: str | os.PathLike[str]) -> None:
    os.environ[JOB_FOLDER_ENV] = os.fspath(folder)


def job_ended(state: str, message: str | None = None) -> None:
    """Run (and forget) the callbacks; a failing one is logged, the others still run."""
    os.environ.pop(JOB_FOLDER_ENV, None)
    while _callbacks:
        callback = _callbacks.pop(0)
        try:
            callback(state, message)
        except Exception as error:  # the job's own outcome matters more than its run's
            logger.warning("closing the job's run failed (%s)", error)
