"""What the scheduler asks of a launcher: start a job's process, and tell when it ends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class LaunchRequest:
    """One job to start: run `argv` in `cwd`, streams to `stdout`/`stderr`, with `env`.

    `keep_fds` are descriptors the process must inherit (the job lock). `time_limit` is the
    job's duration requirement in seconds: the launcher stops the job when it is spent.
    `append_logs` keeps the streams of earlier attempts (a resumed job).
    """

    job_id: str
    cwd: Path
    argv: list[str]
    env: dict[str, str]
    stdout: Path
    stderr: Path
    keep_fds: tuple[int, ...] = ()
    time_limit: float | None = None
    append_logs: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class LaunchedJob(Protocol):
    """A started job, as the scheduler follows it."""

    pid: int
    timed_out: bool  # True once the launcher stopped the job at its time limit

    def wait(self) -> int:
        """Block until the job ends; return its exit status (negative: killed by that signal)."""
        ...

    def poll(self) -> int | None:
        """The exit status if the job ended, else None."""
        ...

    def terminate(self) -> None:
        """Ask the job to stop (SIGTERM)."""
        ...


class Launcher(ABC):
    """Starts job processes. `max_jobs` bounds how many of its jobs run at once."""

    max_jobs: int

    @abstractmethod
    def launch(self, request: LaunchRequest) -> LaunchedJob:
        """Start the job and return at once; raises `OSError` if it cannot be started."""

    def describe(self) -> dict[str, Any]:
        """What the job folder records about the launcher."""
        return {"launcher": type(self).__name__}
