"""What the scheduler asks of a launcher: start a job's process, and tell when it ends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .requirements import Requirements


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
    workspace: Path | None = None  # where a launcher may keep files of its own
    requirements: Requirements | None = None  # what the job asked for (cores, memory, GPUs)
    #: The process dies with the one that launched it (an agent's runs): a launcher that
    #: starts local processes arranges it; a cluster job outlives its submitter anyway.
    bound_to_parent: bool = False


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
    #: Seconds to wait for submissions to pause before starting ready jobs, so that jobs
    #: submitted in a loop reach `launch_many` together (0: start each job at once).
    batch_window: float = 0.0

    @abstractmethod
    def launch(self, request: LaunchRequest) -> LaunchedJob:
        """Start the job and return at once; raises `OSError` if it cannot be started."""

    def launch_many(self, requests: list[LaunchRequest]) -> list[LaunchedJob | OSError]:
        """Start several jobs that became ready together; one result per request, in order.

        A launcher that can group them (a Slurm job array) overrides this; the error of a job
        that could not be started takes its place in the list.
        """
        results: list[LaunchedJob | OSError] = []
        for request in requests:
            try:
                results.append(self.launch(request))
            except OSError as exc:
                results.append(exc)
        return results

    def reserve(self, job_id: str, requirements: Requirements | None) -> bool:
        """Set aside what a job needs (GPUs) before it is launched; False: not now, and the
        scheduler holds the job back and asks again when a job of this launcher ends. The
        job's `launch` uses the reservation, and its end frees it."""
        return True

    def release(self, job_id: str) -> None:
        """Free what `reserve` set aside for a job that will not be launched after all."""
        return None  # this launcher sets nothing aside

    def reattach(self, record: dict[str, Any]) -> LaunchedJob | None:
        """The still-running job of a job folder's process record, if this launcher can follow
        it from another process (a Slurm job id); None otherwise."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the job folder records about the launcher."""
        return {"launcher": type(self).__name__}
