"""Jobs: local processes, arrays, debug runs, cancellation, tracebacks, workdir copies, Slurm
option mapping and job lookup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from infra_models import Counted, log_lines, wait_for

from etude.infra import JobError, SubmitError, TaskInfra, find_slurm_job
from etude.infra.jobs import slurm_options


def counted(tmp_path: Path, cluster: str | None = "local", **kwargs: object) -> Counted:
    infra = {"folder": tmp_path / "cache", "cluster": cluster, **kwargs.pop("infra", {})}  # type: ignore[dict-item]
    return Counted(log=str(tmp_path / "log"), infra=infra, **kwargs)  # type: ignore[arg-type]


def test_local_job_is_nonblocking_and_runs_in_another_process(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    task = counted(tmp_path, x=2, gate=str(gate))
    assert task.infra.status() == "not submitted"
    job = task.infra.job()
    assert task.infra.job() is job
    wait_for(lambda: len(log_lines(tmp_path / "log")) == 1, what="the job to start")
    assert task.infra.status() == "running" and not job.done()
    pid = int(log_lines(tmp_path / "log")[0].split()[0])
    assert pid != os.getpid() and job.job_id == str(pid)
    gate.touch()
    assert job.result(timeout=60) == 4
    assert job.done() and task.infra.status() == "completed"
    assert task.process() == 4
    assert counted(tmp_path, x=2).process() == 4
    assert len(log_lines(tmp_path / "log")) == 1
    assert job.stderr() is not None


def test_job_failure_reraised_with_the_job_traceback(tmp_path: Path) -> None:
    task = counted(tmp_path, x=3, fail=True)
    with pytest.raises(JobError) as info:
        task.infra.job().result(timeout=60)
    text = str(info.value)
    assert "ValueError: failing on purpose for x=3" in text
    assert 'infra_models.py", line' in text and "raise ValueError" in text
    assert info.value.error_type == "builtins.ValueError"
    assert isinstance(info.value.__cause__, ValueError)
    assert task.infra.status() == "failed"
    with pytest.raises(JobError, match="failing on purpose"):
        counted(tmp_path, x=3, fail=True).process()
    assert "failing on purpose" in (task.infra.job().stderr() or "")


def test_job_array_submits_only_what_is_missing(tmp_path: Path) -> None:
    base = counted(tmp_path, x=0)
    assert counted(tmp_path, cluster=None, x=1).process() == 2  # computed before, in-process
    with base.infra.job_array() as array:
        for x in (1, 2, 3):
            array.append(base.infra.clone_obj({"x": x}))
    assert all(a.infra.status() in ("completed", "running") for a in array)
    assert [a.process() for a in array] == [2, 4, 6]
    xs = sorted(int(line.split()[1]) for line in log_lines(tmp_path / "log"))
    assert xs == [1, 2, 3]


def test_debug_cluster_runs_in_this_process_through_the_job_folder(tmp_path: Path) -> None:
    task = counted(tmp_path, cluster="debug", x=4)
    assert task.process() == 8
    assert log_lines(tmp_path / "log")[0].split()[0] == str(os.getpid())
    folder = task.infra.uid_folder()
    assert folder is not None and (folder / "job.pkl").exists()
    assert (folder / ".etude" / "done.json").exists()
    with pytest.raises(JobError) as info:
        counted(tmp_path, cluster="debug", x=5, fail=True).process()
    assert isinstance(info.value.__cause__, ValueError)


def test_cancel_stops_a_local_job(tmp_path: Path) -> None:
    task = counted(tmp_path, x=6, gate=str(tmp_path / "never"))
    job = task.infra.job()
    wait_for(lambda: len(log_lines(tmp_path / "log")) == 1, what="the job to start")
    job.cancel()
    with pytest.raises(JobError, match=r"failed \(cancelled\)"):
        job.result(timeout=60)
    assert task.infra.status() == "failed"


PACKAGE = """
import pydantic
from pathlib import Path
from etude.infra import TaskInfra
from . import constants

class Versioned(pydantic.BaseModel):
    gate: str = ""
    infra: TaskInfra = TaskInfra()
    _exclude_from_cls_uid = ("gate",)

    @infra.apply
    def process(self) -> int:
        deadline = __import__("time").monotonic() + 30
        while not Path(self.gate).exists() and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.01)
        return constants.VALUE
"""


def test_workdir_copy_freezes_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing the package after submission does not change what the job runs."""
    package = tmp_path / "src" / "wd_frozen_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "constants.py").write_text("VALUE = 1\n")
    (package / "models.py").write_text(textwrap.dedent(PACKAGE))
    monkeypatch.syspath_prepend(str(package.parent))
    from wd_frozen_pkg.models import Versioned  # type: ignore[import-not-found]

    gate = tmp_path / "gate"
    infra = {
        "folder": tmp_path / "cache",
        "cluster": "local",
        "workdir": {"copied": [package]},  # a Path, as well as a string
    }
    task = Versioned(gate=str(gate), infra=infra)
    job = task.infra.job()
    (package / "constants.py").write_text("VALUE = 2\n")
    gate.touch()
    assert job.result(timeout=60) == 1
    copies = list((tmp_path / "cache").glob("*/code/*/wd_frozen_pkg/constants.py"))
    assert [c.read_text() for c in copies] == ["VALUE = 1\n"]
    process = json.loads((job.folder / ".etude" / "process.json").read_text())  # type: ignore[operator]
    assert process["pid"] != os.getpid()


def test_find_slurm_job_by_id(tmp_path: Path) -> None:
    task = counted(tmp_path, cluster=None, x=8)
    task.process()
    folder = task.infra.uid_folder()
    assert folder is not None
    (folder / ".etude" / "scheduled.json").write_text(json.dumps({"slurm_job_id": "123_4"}))
    found = find_slurm_job("123_4", tmp_path / "cache")
    assert found is not None and found.folder == folder
    assert found.config is not None and found.config["x"] == 8
    assert found.stdout == folder / "job.out"
    assert find_slurm_job("999", tmp_path / "cache") is None


def test_slurm_options_map_the_infra_fields() -> None:
    infra = TaskInfra(
        timeout_min=90,
        cpus_per_task=4,
        gpus_per_node=2,
        mem_gb=16,
        slurm_partition="gpu",
        slurm_account="lab",
        slurm_constraint="a100",
        slurm_additional_parameters={"mail_type": "END", "exclusive": True},
    )
    assert slurm_options(infra, "Task.process") == {
        "job_name": "Task.process",
        "time": 90,
        "cpus_per_task": 4,
        "gpus": 2,
        "mem": "16G",
        "partition": "gpu",
        "account": "lab",
        "constraint": "a100",
        "extra_options": ["--mail-type=END", "--exclusive"],
    }
    assert slurm_options(TaskInfra(mem_gb=1.5, job_name="mine"), "x") == {
        "job_name": "mine",
        "mem": "1536M",
    }


def test_script_classes_work_in_job_processes(tmp_path: Path, run_script) -> None:  # type: ignore[no-untyped-def]
    """A model defined in the running script is found again by the job process, which runs
    in the submitter's working directory."""
    result = run_script(
        """
        import os, pydantic
        from etude.infra import TaskInfra

        class Script(pydantic.BaseModel):
            x: int = 1
            infra: TaskInfra = TaskInfra()

            @infra.apply
            def process(self) -> tuple[int, str]:
                return os.getpid(), os.getcwd()

        task = Script(infra={"folder": "cache", "cluster": "local"})
        pid, cwd = task.process()
        assert pid != os.getpid(), pid
        assert cwd == os.getcwd(), (cwd, os.getcwd())
        print("ok", task.infra.uid_folder())
        """,
        name="script_job.py",
    )
    assert "ok" in result.stdout and "script_job.Script.process,0" in result.stdout
    assert sys.executable


def test_infra_jobs_in_a_workspace_are_listed_by_the_cli(tmp_path: Path, capsys) -> None:
    """An infra whose folder is a workspace shows its jobs in `etude jobs list`."""
    from etude.cli import main

    task = Counted(x=5, infra={"folder": tmp_path, "cluster": "local"})  # type: ignore[arg-type]
    assert task.infra.job().result(timeout=60) == 10
    failing = Counted(x=6, fail=True, infra={"folder": tmp_path, "cluster": "local"})  # type: ignore[arg-type]
    with pytest.raises(JobError):
        failing.infra.job().result(timeout=60)
    assert main(["jobs", "list", "--json", "-w", str(tmp_path)]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    done = rows[task.infra.uid_folder().name]
    assert done["state"] == "done" and done["task"] == "infra_models.Counted.process"
    assert not done["problems"] and done["kind"] == "infra"
    assert rows[failing.infra.uid_folder().name]["state"] == "error"
    # indexed with their parameters (from the infra's config.json), so filters find them
    where = ["--where", "kind = infra and params.x = 5"]
    assert main(["jobs", "list", "--json", "-w", str(tmp_path), *where]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in found] == [task.infra.uid_folder().name]


def test_results_computed_in_process_are_indexed_without_false_alarms(
    tmp_path: Path, capsys
) -> None:
    """A cluster=None result has no params.json: it is listed done, as an infra job of its
    method, with no "params.json missing" problem."""
    from etude.cli import main

    task = Counted(x=7, infra={"folder": tmp_path})  # type: ignore[arg-type]
    assert task.process() == 14
    assert main(["jobs", "list", "--json", "-w", str(tmp_path)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["state"], row["kind"]) == (task.infra.uid_folder().name, "done", "infra")
    assert row["task"] == "infra_models.Counted.process" and row["problems"] == []


SCRIPT_WITHOUT_FILE = """
import pydantic
from etude.infra import TaskInfra

class Square(pydantic.BaseModel):
    x: int = 2
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def process(self) -> int:
        return self.x**2

print(Square(infra={"folder": "cache", "cluster": "local"}).process())
"""


@pytest.mark.parametrize(
    ("argv", "stdin", "where"),
    [
        pytest.param(["-"], SCRIPT_WITHOUT_FILE, "standard input", id="stdin"),
        pytest.param(["-c", SCRIPT_WITHOUT_FILE], "", "a notebook cell", id="python-c"),
    ],
)
def test_class_a_job_cannot_load_is_refused_at_submit(tmp_path, argv, stdin, where):
    """A class of a script without a file (stdin, `python -c`, a notebook cell: these take
    the same path, `__main__` without a readable `__file__`; no notebook kernel is started
    here) fails at the call, with the fix, instead of in the job."""
    result = subprocess.run(
        [sys.executable, *argv], input=stdin, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"InfraConfigError: Square is defined in {where}" in result.stderr, result.stderr
    assert "into a module file" in result.stderr and "cluster=None" in result.stderr
    made = [path.name for path in (tmp_path / "cache").rglob("*")]
    assert not {".etude", "job.pkl", "job.out", "failed.json"} & set(made), made


def test_a_refused_slurm_submission_is_not_kept_and_is_tried_again(tmp_path, monkeypatch):
    """A fake `sbatch` that cannot reach a controller (the real thing cannot be made to fail
    this way on demand): the call fails, nothing is recorded, the next call runs sbatch
    again, and the same computation then runs elsewhere without `mode="retry"`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch-calls"
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        "#!/bin/sh\n"
        f"echo called >> {calls}\n"
        "echo 'sbatch: error: Batch job submission failed: Unable to contact slurm "
        "controller (connect failure)' >&2\n"
        "exit 1\n"
    )
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for attempt in (1, 2):
        task = counted(tmp_path, cluster="slurm", x=5)
        with pytest.raises(SubmitError, match="Unable to contact slurm controller"):
            task.process()
        assert log_lines(calls) == ["called"] * attempt
        assert task.infra.status() != "failed"
        folder = task.infra.uid_folder()
        assert folder is not None and not (folder / ".etude" / "failed.json").exists()
    assert counted(tmp_path, cluster="local", x=5).process() == 10
