"""The experiment process killed at any moment, and damaged job folders, lose nothing."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from etude.workspace import Workspace, read_status

SCRIPT = """
import sys, time
from pathlib import Path
from etude import Task, Param, Meta, experiment
from etude.launchers import DirectLauncher

class Step(Task):
    n: Param[int]
    log: Meta[Path]

    def execute(self):
        time.sleep(0.2)
        with open(self.log, "a") as out:
            out.write(f"{self.n}\\n")

class Total(Task):
    steps: Param[list[Step]]
    log: Meta[Path]

    def execute(self):
        with open(self.log, "a") as out:
            out.write("total\\n")

if __name__ == "__main__":
    log = Path(sys.argv[2])
    with experiment(sys.argv[1], "crash", launcher=DirectLauncher(max_jobs=2)):
        steps = [Step.C(n=n, log=log).submit() for n in range(8)]
        Total.C(steps=steps, log=log).submit()
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_experiment_killed_at_random_moments_runs_each_job_once(tmp_path: Path, seed: int):
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(SCRIPT))
    workspace, log = tmp_path / "ws", tmp_path / "log"
    rng = random.Random(seed)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, script, workspace, log])
        time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(
        [sys.executable, script, workspace, log], capture_output=True, text=True, timeout=120
    )
    assert final.returncode == 0, final.stdout + final.stderr
    counts = Counter(log.read_text().split())
    assert counts == Counter({**{str(n): 1 for n in range(8)}, "total": 1}), counts
    for job in Workspace(workspace).iter_job_dirs():
        assert read_status(job).state == "done"
        json.loads(job.params.read_text())  # every marker and params file is whole


def test_truncated_done_marker_is_reported_and_the_job_runs_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(SCRIPT))
    workspace, log = tmp_path / "ws", tmp_path / "log"
    subprocess.run([sys.executable, script, workspace, log], check=True, timeout=120)
    victim = next(j for j in Workspace(workspace).iter_job_dirs() if j.task_name == "crash.step")
    victim.done.write_text('{"started": 1')  # truncated
    status = read_status(victim)
    assert status.state != "done" and any(str(victim.done) in p for p in status.problems)
    rerun = subprocess.run(
        [sys.executable, script, workspace, log], capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    assert str(victim.done) in rerun.stderr  # the warning names the file
    assert read_status(victim).state == "done"
    assert len(log.read_text().split()) == 10  # 8 steps + total, then one step again


def test_garbage_params_file_does_not_break_status_reading(tmp_path: Path):
    job = Workspace(tmp_path).job_dir("x.Task", "ab" * 32)
    job.meta.mkdir(parents=True)
    job.params.write_bytes(b"\x00\xffgarbage")
    job.failed.write_text("[1, 2")
    status = read_status(job)
    assert status.state == "unscheduled"
    assert any(str(job.failed) in p for p in status.problems)
