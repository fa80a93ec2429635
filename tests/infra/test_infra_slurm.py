"""The pydantic infra on the real Slurm test cluster: jobs, arrays, MapInfra chunks, `auto`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra_models import Counted, Squares, log_lines

from etude.infra import find_slurm_job
from etude.infra.jobs import resolve_cluster
from etude.launchers.slurm import SlurmJob


def counted(tmp_path: Path, **kwargs: object) -> Counted:
    infra = {"folder": tmp_path / "cache", "cluster": "slurm", "timeout_min": 5}
    return Counted(log=str(tmp_path / "log"), infra=infra, **kwargs)  # type: ignore[arg-type]


def test_task_runs_as_a_slurm_job_and_is_found_by_its_id(slurm_cluster, tmp_path: Path):
    task = counted(tmp_path, x=21)
    job = task.infra.job()
    handle = job.launched  # type: ignore[attr-defined]
    assert isinstance(handle, SlurmJob)
    assert job.result(timeout=120) == 42
    assert task.infra.status() == "completed"
    assert counted(tmp_path, x=21).process() == 42
    assert len(log_lines(tmp_path / "log")) == 1, "computed once, on the node"
    found = find_slurm_job(handle.slurm_job_id, tmp_path / "cache")
    assert found is not None and found.folder == task.infra.uid_folder()


def test_job_array_is_one_slurm_array(slurm_cluster, tmp_path: Path):
    base = counted(tmp_path, x=0)
    with base.infra.job_array() as array:
        array.extend(base.infra.clone_obj({"x": x}) for x in range(1, 5))
    ids = [obj.infra.job().launched.slurm_job_id for obj in array]  # type: ignore[attr-defined]
    assert len({i.split("_")[0] for i in ids}) == 1 and all("_" in i for i in ids)
    assert [obj.infra.job().result(timeout=120) for obj in array] == [2, 4, 6, 8]


def test_map_infra_spreads_missing_items_over_a_slurm_array(slurm_cluster, tmp_path: Path):
    log = tmp_path / "log"
    infra = {"folder": tmp_path / "cache", "cluster": "slurm", "timeout_min": 5,
             "max_jobs": 3, "min_samples_per_job": 2}
    squares = Squares(log=str(log), infra=infra)  # type: ignore[arg-type]
    assert list(squares.process(range(6))) == [i * i for i in range(6)]
    assert sorted(int(x) for x in log_lines(log)) == list(range(6))
    assert list(squares.process(range(8))) == [i * i for i in range(8)]
    assert sorted(int(x) for x in log_lines(log)) == list(range(8)), "only new items computed"


def test_auto_is_slurm_only_when_a_controller_answers(slurm_cluster, tmp_path: Path):
    assert resolve_cluster("auto") == "slurm"
    # Without a usable Slurm configuration (in a child process, so this process's followers
    # keep theirs), the controller does not answer and `auto` means local.
    code = "from etude.infra.jobs import resolve_cluster; print(resolve_cluster('auto'))"
    env = {**os.environ, "SLURM_CONF": str(tmp_path / "no-such-slurm.conf")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "local", done.stderr
