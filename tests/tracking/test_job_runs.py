"""Front doors 1 and 2 are runs too: every job has its run record, and `Run.current()` inside
`execute()` (or an infra method) is that run. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from etude.tracking import Run

SCRIPT = """
import sys
from etude import Param, Task, experiment, tag
from etude.tracking import Run

class Learn(Task):
    lr: Param[float]
    epochs: Param[int] = 3

    def execute(self):
        run = Run.current()
        assert Run.init(project="ignored", name="ignored") is run  # the job's own run
        for epoch in range(self.epochs):
            run.logger.report_scalar("loss", "train", self.lr / (epoch + 1), epoch)
        run.set_user_properties(note="from the job")
        if self.lr > 0.5:
            raise ValueError("too big")

if __name__ == "__main__":
    try:
        with experiment(sys.argv[1], "sweep"):
            for lr in (0.1, 0.2, 0.9):
                Learn.C(lr=tag(lr)).submit()
    except Exception as error:
        print("failed:", error)
"""


def run_script(tmp_path: Path, ws: Path, source: str, env: dict[str, str]) -> str:
    script = tmp_path / "learn.py"
    script.write_text(textwrap.dedent(source))
    result = subprocess.run([sys.executable, str(script), str(ws)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_jobs_are_runs(tmp_path: Path, ws: Path, store_env: dict[str, str]) -> None:
    output = run_script(tmp_path, ws, SCRIPT, store_env)
    assert "failed: 1 job(s) failed" in output, output
    runs = {run.params["Config/lr"]: run for run in Run.query(workspace=ws, project="sweep")}
    assert sorted(runs) == [0.1, 0.2, 0.9]
    good, bad = runs[0.2], runs[0.9]
    assert (good.state, good.name, good.tags) == ("completed", "Learn", ["lr=0.2"])
    assert good.metrics["loss"]["train"]["count"] == 3
    assert good.metrics["loss"]["train"]["last"] == 0.2 / 3
    assert good.user_properties == {"note": "from the job"}
    assert bad.state == "failed"
    assert "too big" in (bad.message or "")
    found = Run.query(workspace=ws, where="params.lr > 0.15 and metrics.loss.train < 0.1")
    assert [run.id for run in found] == [good.id]
    assert good.job is not None and Path(good.job["folder"]).is_dir()


INFRA = """
import sys
import pydantic
from etude.infra import TaskInfra
from etude.tracking import Run

class Model(pydantic.BaseModel):
    coeff: float = 1.0
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def fit(self) -> float:
        Run.current().logger.report_single_value("score", self.coeff * 2)
        return self.coeff * 2

if __name__ == "__main__":
    print(Model(coeff=3.0, infra={"folder": sys.argv[1], "cluster": "local"}).fit())
"""


def test_infra_jobs_are_runs(tmp_path: Path, ws: Path, store_env: dict[str, str]) -> None:
    output = run_script(tmp_path, ws, INFRA, store_env)
    assert "6.0" in output
    (run,) = Run.query(workspace=ws)
    assert run.state == "completed"
    assert run.metrics == {"score": {"score": {"last": 6.0, "min": 6.0, "max": 6.0,
                                               "count": 1}}}
    assert run.params["Config/coeff"] == 3.0


LIVE = """
import sys, time
from pathlib import Path
from etude import Param, Task, experiment
from etude.tracking import Run

class Wait(Task):
    gate: Param[str]

    def execute(self):
        Run.current().logger.report_scalar("progress", "done", 1.0, 0)
        while not Path(self.gate).exists():
            time.sleep(0.05)

if __name__ == "__main__":
    with experiment(sys.argv[1], "live"):
        Wait.C(gate=sys.argv[2]).submit()
"""


def test_a_running_job_shows_its_live_metrics(tmp_path: Path, ws: Path,
                                              store_env: dict[str, str]) -> None:
    import time

    script = tmp_path / "wait.py"
    script.write_text(textwrap.dedent(LIVE))
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, str(script), str(ws), str(gate)],
                               env={**os.environ, **store_env})
    try:
        deadline = time.monotonic() + 60
        seen = None
        while time.monotonic() < deadline:
            found = Run.query(workspace=ws, project="live") if ws.exists() else []
            if found and found[0].state == "running" and "progress" in found[0].metrics:
                seen = found[0]
                break
            time.sleep(0.2)
        assert seen is not None, "the running job's run never showed its metric"
        gate.write_text("go")
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    (done,) = Run.query(workspace=ws, project="live")
    assert done.state == "completed" and done.metrics["progress"]["done"]["count"] == 1


RESUMABLE = """
import json, sys, time
from pathlib import Path
from etude import Meta, Param, PathGenerator, ResumableTask, experiment, field
from etude.launchers import DirectLauncher
from etude.tracking import Run

class Train(ResumableTask):
    epochs: Param[int]
    checkpoint: Meta[Path] = field(default_factory=PathGenerator("checkpoint.json"))

    def execute(self):
        run = Run.current()
        epoch = json.loads(self.checkpoint.read_text()) if self.checkpoint.exists() else 0
        while epoch < self.epochs:
            time.sleep(0.25)
            run.logger.report_scalar("loss", "train", 1.0 / (epoch + 1), epoch)
            run.logger.flush()
            epoch += 1
            self.checkpoint.write_text(json.dumps(epoch))

if __name__ == "__main__":
    with experiment(sys.argv[1], "resume", launcher=DirectLauncher(kill_grace=1.0)) as xp:
        # 5 s of work in 4 s attempts: at least one retry, and room for a slow start on a
        # loaded machine (with 1-2 s limits, a start that slow left no time for an epoch).
        Train.C(epochs=20).submit(requirements="duration=4s", max_retries=20)
    print("retries", xp.jobs[0].retries)
"""


def test_a_resumable_task_continues_the_same_run(tmp_path: Path, ws: Path,
                                                 store_env: dict[str, str]) -> None:
    output = run_script(tmp_path, ws, RESUMABLE, store_env)
    retries = int(output.split("retries ")[1].split()[0])
    assert retries >= 1, output
    (run,) = Run.query(workspace=ws, project="resume")
    assert run.state == "completed"
    iterations, _ = run.get_scalars("loss")["loss"]["train"]
    assert sorted(set(int(i) for i in iterations)) == list(range(20))  # one run, every epoch
