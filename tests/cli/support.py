"""Experiment scripts and helpers shared by the command-line tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from etude.cli import main
from etude.workspace import JobDir, Workspace, is_locked, read_status
from polling import wait_until  # the CLI tests import it from here

# Four jobs: Hello x=0 and x=1 end done, Hello x=2 fails, Other name=b ends done.
DEMO = """
from etude import Param, Task, experiment, tag

class Hello(Task):
    x: Param[int]

    def execute(self):
        print("hello", self.x)
        if self.x == 2:
            raise ValueError("boom")

class Other(Task):
    name: Param[str]

    def execute(self):
        print("other", self.name)

if __name__ == "__main__":
    import sys
    try:
        with experiment(sys.argv[1], "demo") as xp:
            for x in range(3):
                Hello.C(x=tag(x)).submit()
            Other.C(name=tag("b")).submit()
    except Exception as e:
        print("failed:", e)
"""

# One job that starts a child process, prints "first", waits for the file `release`, then
# stops its child, prints "last" and ends done. A stubborn job ignores SIGTERM.
SLEEPY = """
import signal
import subprocess
import time
from pathlib import Path

from etude import Param, Task, experiment

class Sleepy(Task):
    release: Param[str]
    stubborn: Param[bool]

    def execute(self):
        child = subprocess.Popen(["sleep", "600"])
        if self.stubborn:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path("child.pid").write_text(str(child.pid))
        print("first", flush=True)
        deadline = time.monotonic() + 120
        while not Path(self.release).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("never released")
            time.sleep(0.05)
        child.terminate()
        child.wait()
        print("last", flush=True)

if __name__ == "__main__":
    import sys
    try:
        with experiment(sys.argv[1], "sleepy") as xp:
            Sleepy.C(release=sys.argv[2], stubborn=sys.argv[3] == "stubborn").submit()
    except Exception as e:
        print("failed:", e)
"""




def gone(pid: int) -> bool:
    """Whether `pid` ended (a zombie left for a parent to reap counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def run_cli(capsys: Any, *argv: str | os.PathLike[str]) -> tuple[int, str, str]:
    """`main(argv)` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def list_json(capsys: Any, workspace: Path, *filters: str) -> list[dict[str, Any]]:
    status, out, err = run_cli(capsys, "jobs", "list", "--json", "-w", workspace, *filters)
    assert status == 0, err
    return json.loads(out)


def job_ids(workspace: Path) -> dict[str, str]:
    """Job ids of the demo keyed by their tag: "x0", "x1", "x2", "b"."""
    ids = {}
    for job in Workspace(workspace).iter_job_dirs():
        tags = json.loads(job.params.read_text())["tags"]
        key = f"x{tags['x']}" if "x" in tags else tags["name"]
        ids[key] = job.job_id
    return ids


class RunningJob:
    """An experiment process (its own session) whose single Sleepy job is running."""

    def __init__(self, workspace: Path, script: Path, *, stubborn: bool = False) -> None:
        self.workspace = workspace
        self.release = script.parent / "release"
        mode = "stubborn" if stubborn else "polite"
        self.experiment = subprocess.Popen(
            [sys.executable, str(script), str(workspace), str(self.release), mode],
            cwd=script.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.job: JobDir = wait_until(self._running_job, "the Sleepy job to run")

    def _running_job(self) -> JobDir | None:
        if self.experiment.poll() is not None:
            raise AssertionError(f"the experiment ended early:\n{self.experiment.stdout.read()}")
        for job in Workspace(self.workspace).iter_job_dirs():
            started = job.process.exists() and (job.path / "child.pid").exists()
            if started and read_status(job).state == "running":
                return job
        return None

    @property
    def job_pid(self) -> int:
        return int(json.loads(self.job.process.read_text())["pid"])

    @property
    def child_pid(self) -> int:
        return int((self.job.path / "child.pid").read_text())

    def stop(self) -> None:
        """Let the job end, killing whatever is left after a deadline."""
        self.release.touch()
        deadline = time.monotonic() + 30
        while is_locked(self.job.lock) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in (self.job_pid, self.child_pid):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        try:
            self.experiment.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.experiment.pid, signal.SIGKILL)
            self.experiment.wait()
        if self.experiment.stdout is not None:
            self.experiment.stdout.close()
