"""Task classes for the Slurm launcher tests (importable by the job processes on the node)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from etude import GracefulTimeout, Meta, Param, ResumableTask, Task, TaskCancelled, experiment
from etude.launchers import SlurmLauncher


def wait_for(path: Path, timeout: float = 120.0) -> None:
    """Block until `path` exists (the test's go-ahead), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


def wait_until(condition: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def blocking_experiment(workspace: str, extra_options: list[str]) -> None:
    """An experiment that submits one `Blocks` job to Slurm (run in a child process)."""
    ws = Path(workspace)
    launcher = SlurmLauncher(
        time=5, poll_interval=(0.2, 1.0), batch_window=0.0, extra_options=extra_options
    )
    with experiment(ws, "xp", launcher=launcher):
        Blocks.C(started=ws / "started.json", go=ws / "go", log=ws / "log.txt").submit()


def start_blocking_experiment(workspace: Path, extra_options: list[str]) -> subprocess.Popen:
    """Start `blocking_experiment` in a child process; its stdout and stderr (where progress
    goes) are one pipe."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import slurm_tasks; "
        f"slurm_tasks.blocking_experiment({str(workspace)!r}, {extra_options!r})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


class Echo(Task):
    """Appends its value and Slurm job id to a shared log."""

    value: Param[int]
    log: Meta[Path]

    def execute(self) -> None:
        with open(self.log, "a") as out:
            out.write(f"{self.value} {os.environ.get('SLURM_JOB_ID')}\n")


class Fails(Task):
    value: Param[int] = 0

    def execute(self) -> None:
        raise ValueError(f"bad value {self.value}")


class Blocks(Task):
    """Says it started, then waits for `go` (or until cancelled: it records TaskCancelled)."""

    value: Param[int] = 0
    started: Meta[Path]
    go: Meta[Path]
    log: Meta[Path]

    def execute(self) -> None:
        with open(self.log, "a") as out:
            out.write(f"start {os.environ.get('SLURM_JOB_ID')}\n")
        self.started.write_text(json.dumps({"remaining": self.remaining_time()}))
        try:
            wait_for(self.go, timeout=600)
        except TaskCancelled:
            (self.started.parent / "cancelled.txt").write_text("TaskCancelled")
            raise


class Checkpointed(ResumableTask):
    """Attempt 1 stops early (GracefulTimeout, or waits for the time limit); attempt 2 ends."""

    value: Param[int] = 0
    graceful: Meta[bool] = True
    log: Meta[Path]

    def execute(self) -> None:
        state = self.__taskdir__ / "state.json"
        attempts = json.loads(state.read_text())["attempts"] + 1 if state.exists() else 1
        state.write_text(json.dumps({"attempts": attempts}))
        with open(self.log, "a") as out:
            out.write(f"attempt {attempts} remaining {self.remaining_time()}\n")
        if attempts > 1:
            return
        if self.graceful:
            raise GracefulTimeout("checkpoint saved, not enough time left")
        try:
            time.sleep(600)  # until Slurm's time limit
        except TaskCancelled:
            with open(self.log, "a") as out:
                out.write("cancelled at the limit\n")
            raise
