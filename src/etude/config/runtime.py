"""What a task can ask about its own run, and the exceptions that end it early.

The job process (`etude.runner`) fills in the deadline; tasks read it with `remaining_time()`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

#: Set by the job process: writes a dynamic-output event (see `Config.register_task_output`).
output_sink: Callable[[Any, str, dict[str, Any]], None] | None = None

#: Environment variable holding the job's deadline (seconds since the epoch), set by launchers.
DEADLINE_ENV = "ETUDE_JOB_DEADLINE"
#: Seconds between SIGTERM and SIGKILL when the launcher stops a job, set by launchers.
KILL_GRACE_ENV = "ETUDE_KILL_GRACE"
#: Descriptor of the job lock that the job process inherits from the scheduler.
LOCK_FD_ENV = "ETUDE_LOCK_FD"
#: Seconds a job process started by a remote launcher waits for the job lock (set by launchers).
LOCK_WAIT_ENV = "ETUDE_LOCK_WAIT"


class GracefulTimeout(Exception):
    """Raise it from a `ResumableTask` to stop now and be started again (reason `timeout`)."""


class TaskCancelled(BaseException):
    """Raised in the task's main thread on SIGTERM or SIGINT.

    A `BaseException`, like `KeyboardInterrupt`, so that `except Exception` does not swallow
    it. The job is recorded as cancelled (or as timed out, when the signal comes at the time
    limit) whether or not the task re-raises it. `remaining_time` is the number of seconds
    before the launcher kills the process, when known.
    """

    def __init__(self, remaining_time: float | None = None) -> None:
        super().__init__(
            "the job was cancelled"
            + (f" ({remaining_time:.0f} s before it is killed)" if remaining_time else "")
        )
        self.remaining_time = remaining_time


def deadline() -> float | None:
    """The job's deadline (epoch seconds), or None without a time limit."""
    value = os.environ.get(DEADLINE_ENV)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def remaining_time() -> float | None:
    """Seconds left before the launcher stops this job, or None when there is no limit."""
    end = deadline()
    return None if end is None else max(0.0, end - time.time())


def emit_output(config: Any, method: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Hand a dynamic-output event to the job process's sink; raises outside a job process."""
    from .errors import ConfigError

    if output_sink is None:
        raise ConfigError(
            f"{type(config).__qualname__}.register_task_output() works only inside the running "
            "job of a ResumableTask."
        )
    name = getattr(method, "__name__", None)
    if getattr(method, "__self__", None) is not config or name is None:
        raise ConfigError(
            f"register_task_output({method!r}): pass a method of this configuration, e.g. "
            "self.register_task_output(self.checkpoint, step=3)."
        )
    output_sink(config, name, kwargs)
