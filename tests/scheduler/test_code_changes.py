"""Jobs record the code they ran with; a done job reused after its code changed is reported
once per task, and `submit(rerun=...)` runs done jobs again. Real experiment and job processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODEL = """
from etude import Config, Param

class Model(Config):
    hidden: Param[int] = 64
"""

SCRIPT = """
import os, sys
from pathlib import Path
from etude import Param, Task, experiment
from model_lib import Model

class Learn(Task):
    lr: Param[float]
    model: Param[Model]

    def execute(self):
        runs = Path("runs.txt")
        runs.write_text(runs.read_text() + "x" if runs.exists() else "x")

if __name__ == "__main__":
    rerun = {"": False, "true": True, "changed": "changed"}[os.environ.get("RERUN", "")]
    with experiment(sys.argv[1], "xp", dry_run=os.environ.get("DRY") == "1"):
        for lr in (0.1, 0.2):
            Learn.C(lr=lr, model=Model.C()).submit(rerun=rerun)
"""


class Project:
    def __init__(self, root: Path, workspace: Path) -> None:
        self.root = root
        self.workspace = workspace
        (root / "model_lib.py").write_text(textwrap.dedent(MODEL))
        (root / "learn.py").write_text(textwrap.dedent(SCRIPT))

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "learn.py", str(self.workspace)],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def runs(self) -> list[str]:
        """How many times each job ran, in the order of their folders."""
        return [p.read_text() for p in sorted(self.workspace.glob("jobs/*/*/runs.txt"))]

    def change_model(self) -> None:
        path = self.root / "model_lib.py"
        path.write_text(path.read_text() + "\n# a change that keeps identifiers\n")


@pytest.fixture
def project(tmp_path: Path, workspace: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root, workspace)


def test_a_job_records_the_files_of_its_code(project: Project):
    project.run()
    params = json.loads(next(project.workspace.glob("jobs/*/*/.etude/params.json")).read_text())
    files = {Path(m["file"]).name for m in params["code"]["modules"].values()}
    assert files == {"learn.py", "model_lib.py"}
    done = json.loads(next(project.workspace.glob("jobs/*/*/.etude/done.json")).read_text())
    assert done["code"] == params["code"]["digest"]


def test_reusing_jobs_whose_code_changed_is_said_once_per_task(project: Project):
    project.run()
    quiet = project.run()
    assert "code changed" not in quiet.stderr, "unchanged code: nothing to say"
    project.change_model()
    told = project.run()
    assert told.stderr.count("the code changed since done job") == 1, told.stderr
    line = next(line for line in told.stderr.splitlines() if "code changed" in line)
    assert "(model_lib.py)" in line and "learn.py" not in line
    assert "rerun=\"changed\"" in told.stderr and "etude jobs rerun" in told.stderr
    assert "Constant" in told.stderr
    assert project.runs() == ["x", "x"], "kept: the default"


def test_rerun_changed_runs_the_jobs_whose_code_changed(project: Project):
    project.run()
    project.run(RERUN="changed")
    assert project.runs() == ["x", "x"], "same code: reused"
    project.change_model()
    result = project.run(RERUN="changed")
    assert "code changed" not in result.stderr
    assert project.runs() == ["xx", "xx"]
    history = list(project.workspace.glob("jobs/*/*/.etude/history/*-done.json"))
    assert len(history) == 2, "the earlier done markers are kept"
    project.run(RERUN="changed")
    assert project.runs() == ["xx", "xx"], "run with this code already"


def test_rerun_true_forces_done_jobs_and_a_dry_run_says_so(project: Project):
    project.run()
    dry = project.run(RERUN="true", DRY="1")
    lines = [line for line in dry.stdout.splitlines() if line.strip().startswith("run ")]
    assert len(lines) == 2 and all(
        line.endswith("done before, forced (rerun=True)") for line in lines
    ), dry.stdout
    assert project.runs() == ["x", "x"], "a dry run runs nothing"
    project.run(RERUN="true")
    assert project.runs() == ["xx", "xx"]


def test_a_dry_run_names_changed_code_of_reused_jobs(project: Project):
    project.run()
    project.change_model()
    dry = project.run(DRY="1")
    reused = [line for line in dry.stdout.splitlines() if line.strip().startswith("reuse")]
    assert len(reused) == 2
    note = "done before; its code changed since (model_lib.py)"
    assert all(line.endswith(note) for line in reused), dry.stdout
    assert "the code changed since" not in dry.stderr, "the plan says it, not a warning"


def test_a_bad_rerun_value_is_refused(run_script, workspace: Path):
    result = run_script(
        """
        import sys
        from etude import Param, Task, experiment

        class T(Task):
            x: Param[int]
            def execute(self):
                pass

        if __name__ == "__main__":
            with experiment(sys.argv[1], "xp"):
                T.C(x=1).submit(rerun="always")
        """,
        str(workspace),
        check=False,
    )
    assert result.returncode != 0
    assert "submit(rerun='always'): expected True" in result.stderr
