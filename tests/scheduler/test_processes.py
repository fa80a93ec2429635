"""Experiment scripts run as real processes: classes from the script, races, dry runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from etude.workspace import Workspace, read_status

SCRIPT = """
import sys, time
from pathlib import Path
from etude import Task, Param, Meta, experiment

class Work(Task):
    name: Param[str]
    log: Meta[Path]
    seconds: Meta[float] = 0.0

    def execute(self):
        with open(self.log, "a") as out:
            out.write(f"{self.name}\\n")
        time.sleep(self.seconds)

def main(workspace, log, seconds, names):
    with experiment(workspace, "race") as xp:
        for name in names:
            Work.C(name=name, log=Path(log), seconds=seconds).submit()
    print("states", [j.state for j in xp.jobs], "reused", [j.reused for j in xp.jobs])

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4].split(","))
"""


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_classes_defined_in_the_script_run_in_job_processes(tmp_path: Path, workspace: Path):
    script = write(tmp_path, "race.py", SCRIPT)
    log = tmp_path / "log"
    subprocess.run([sys.executable, script, workspace, log, "0", "a,b"], check=True, timeout=60)
    assert sorted(log.read_text().split()) == ["a", "b"]
    jobs = sorted((workspace / "jobs").iterdir())
    assert [p.name for p in jobs] == ["race.work"]


def test_script_without_main_guard_stops_at_the_experiment_in_jobs(tmp_path: Path, workspace: Path):
    script = write(
        tmp_path,
        "unguarded.py",
        f"""
        from pathlib import Path
        from etude import Task, Param, experiment

        Path("{tmp_path}/loads").open("a").write("load\\n")

        class Hello(Task):
            x: Param[int]
            def execute(self):
                Path("out.txt").write_text(str(self.x))

        with experiment("{workspace}", "plain"):
            Hello.C(x=1).submit()
            Hello.C(x=2).submit()
        """,
    )
    subprocess.run([sys.executable, script], check=True, timeout=60, cwd=tmp_path)
    outs = sorted(p.read_text() for p in (workspace / "jobs").rglob("out.txt"))
    assert outs == ["1", "2"]
    # The script body before the experiment ran once per process (experiment + 2 jobs).
    assert (tmp_path / "loads").read_text().count("load") == 3


def test_two_experiments_at_once_run_a_shared_job_once(tmp_path: Path, workspace: Path):
    script = write(tmp_path, "race.py", SCRIPT)
    log = tmp_path / "log"
    procs = [
        subprocess.Popen(
            [sys.executable, script, workspace, log, "1.0", names],
            stdout=subprocess.PIPE,
            text=True,
        )
        for names in ("shared,only-a", "shared,only-b")
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sorted(log.read_text().split()) == ["only-a", "only-b", "shared"]
    assert all("'done', 'done'" in out for out in outputs), outputs


def test_second_process_waits_for_a_job_running_elsewhere(tmp_path: Path, workspace: Path):
    script = write(tmp_path, "race.py", SCRIPT)
    log = tmp_path / "log"
    first = subprocess.Popen([sys.executable, script, workspace, log, "2.0", "long"])
    deadline = time.monotonic() + 30
    while not log.exists():
        assert time.monotonic() < deadline, "first job never started"
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, script, workspace, log, "2.0", "long"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    first.wait(timeout=60)
    assert second.returncode == 0, second.stderr
    assert "running in another process" in second.stderr
    assert log.read_text().split() == ["long"]


def test_dry_run_lists_what_would_run_and_why_without_writing(tmp_path: Path, workspace: Path):
    script = write(
        tmp_path,
        "plan.py",
        """
        import sys
        from pathlib import Path
        from etude import Task, Param, Meta, experiment

        class Step(Task):
            name: Param[str]
            fixed: Meta[Path]
            def execute(self):
                if self.name == "bad" and not self.fixed.exists():
                    raise RuntimeError("bad step")

        class Final(Task):
            steps: Param[list[Step]]
            def execute(self):
                pass

        if __name__ == "__main__":
            with experiment(sys.argv[1], "plan") as xp:
                fixed = Path(sys.argv[2])
                steps = [Step.C(name=n, fixed=fixed).submit() for n in ("good", "bad")]
                if len(sys.argv) > 3:
                    Step.C(name="extra", fixed=fixed).submit()
                Final.C(steps=steps).submit()
        """,
    )
    marker = tmp_path / "fixed"
    first = subprocess.run(
        [sys.executable, script, workspace, marker], capture_output=True, text=True, timeout=60
    )
    assert first.returncode != 0 and "bad step" in first.stdout + first.stderr
    before = sorted(p.relative_to(workspace) for p in workspace.rglob("*"))
    plan = subprocess.run(
        [sys.executable, script, workspace, marker, "extra"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ETUDE_DRY_RUN": "1"},
    )
    assert plan.returncode == 0, plan.stderr
    text = plan.stdout
    assert "3 of 4 job(s) would run" in text
    assert any(line.split()[0] == "reuse" and "step" in line for line in text.splitlines()[1:])
    assert "failed before (error)" in text
    assert "new" in text
    assert "failed before (dependency)" in text
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*")) == before


def test_bad_experiment_exits_nonzero_naming_failed_jobs(tmp_path: Path, workspace: Path):
    script = write(
        tmp_path,
        "fail.py",
        f"""
        from etude import Task, Param, experiment

        class Boom(Task):
            x: Param[int]
            def execute(self):
                raise ValueError("boom " + str(self.x))

        if __name__ == "__main__":
            with experiment("{workspace}", "fail"):
                Boom.C(x=7).submit()
        """,
    )
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "ExperimentFailed" in result.stderr and "fail.boom/" in result.stderr
    assert "boom 7" in result.stderr and "boom.err" in result.stderr
    params = next((workspace / "jobs").rglob("params.json"))
    assert json.loads(params.read_text())["type"] == "fail.Boom"


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        pytest.param("sys.exit(3)", "SystemExit: 3", id="sys-exit"),
        pytest.param("{}['lr']", "KeyError: 'lr'", id="key-error"),
        pytest.param("raise ValueError('boom')", "ValueError: boom", id="value-error"),
    ],
)
def test_failure_message_names_the_exception_type(
    tmp_path: Path, workspace: Path, raised: str, message: str
):
    script = write(
        tmp_path,
        "failing.py",
        f"""
        import sys
        from etude import Task, experiment

        class Fails(Task):
            def execute(self):
                {raised}

        if __name__ == "__main__":
            with experiment(sys.argv[1], "failing"):
                Fails.C().submit()
        """,
    )
    result = subprocess.run(
        [sys.executable, script, workspace], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"failed: error: {message}" in result.stderr, result.stderr
    [job] = Workspace(workspace).iter_job_dirs()
    assert read_status(job).message == message
