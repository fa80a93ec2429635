"""SlurmLauncher on the real single-node test cluster: arrays, states, cancellation, retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import slurm_tasks as st

from etude import ExperimentFailed, experiment
from etude.launchers import SlurmLauncher
from etude.workspace import read_json

FAST = {"poll_interval": (0.2, 1.0), "batch_window": 0.3}


def launcher(**options) -> SlurmLauncher:
    return SlurmLauncher(**{"time": 5, **FAST, **options})


def slurm_id(task) -> str:
    return read_json(task.jobpath / ".etude" / "process.json")["slurm_job_id"]


def failure(task) -> dict:
    return read_json(task.jobpath / ".etude" / "failed.json")


def test_jobs_submitted_together_go_out_as_one_array(slurm_cluster, workspace: Path):
    log = workspace / "log.txt"
    with experiment(workspace, "xp", launcher=launcher()):
        tasks = [st.Echo.C(value=i, log=log).submit() for i in range(8)]
    arrays = list((workspace / "slurm-arrays").iterdir())
    assert len(arrays) == 1, "eight jobs ready together must be one sbatch call"
    listed = (arrays[0] / "jobs.txt").read_text().split()
    assert sorted(listed) == sorted(str(t.jobpath / "echo.sh") for t in tasks)
    ids = {slurm_id(t) for t in tasks}
    assert len({i.split("_")[0] for i in ids}) == 1 and len(ids) == 8
    lines = log.read_text().splitlines()
    assert sorted(int(line.split()[0]) for line in lines) == list(range(8))
    assert len({line.split()[1] for line in lines}) == 8  # each element its own Slurm job
    script = (tasks[0].jobpath / "echo.sh").read_text()
    assert "#SBATCH --time=5" in script and "exec " in script


def test_a_lone_job_is_submitted_with_its_own_script(slurm_cluster, workspace: Path):
    log = workspace / "log.txt"
    with experiment(workspace, "xp", launcher=launcher()):
        task = st.Echo.C(value=1, log=log).submit()
    assert not (workspace / "slurm-arrays").exists()
    job_id = slurm_id(task)
    assert "_" not in job_id
    assert log.read_text().split() == ["1", job_id]
    assert (task.jobpath / ".etude" / f"slurm-{job_id}.log").exists()


def test_requirements_become_sbatch_options(slurm_cluster, workspace: Path):
    with experiment(workspace, "xp", launcher=launcher()):
        task = st.Echo.C(value=2, log=workspace / "log.txt")
        task.submit(requirements="duration=2m & cpu(cores=2, mem=100M)")
    script = (task.jobpath / "echo.sh").read_text()
    for line in ("--time=2", "--cpus-per-task=2", "--mem=100M"):
        assert f"#SBATCH {line}\n" in script


def test_failing_task_reports_its_traceback(slurm_cluster, workspace: Path):
    with pytest.raises(ExperimentFailed, match="error"):
        with experiment(workspace, "xp", launcher=launcher()):
            task = st.Fails.C(value=3).submit()
    record = failure(task)
    assert record["reason"] == "error"
    assert "bad value 3" in record["traceback"]
    assert "bad value 3" in (task.jobpath / "fails.err").read_text()


def test_scancel_reaches_the_task_as_task_cancelled(slurm_cluster, workspace: Path):
    started = workspace / "started.json"

    def cancel_when_started() -> None:
        st.wait_until(started.exists, what="the job to start")
        subprocess.run(["scancel", slurm_id(task)], check=True)

    with pytest.raises(ExperimentFailed, match="cancelled"):
        with experiment(workspace, "xp", launcher=launcher()):
            task = st.Blocks.C(started=started, go=workspace / "go", log=workspace / "log.txt")
            task.submit()
            threading.Thread(target=cancel_when_started, daemon=True).start()
    assert (workspace / "cancelled.txt").read_text() == "TaskCancelled"
    assert failure(task)["reason"] == "cancelled"
    remaining = json.loads(started.read_text())["remaining"]
    assert 200 < remaining <= 300, "remaining_time() counts down from the 5-minute limit"


def test_graceful_timeout_resubmits_into_the_same_folder(slurm_cluster, workspace: Path):
    log = workspace / "log.txt"
    with experiment(workspace, "xp", launcher=launcher()) as xp:
        task = st.Checkpointed.C(log=log).submit(max_retries=2)
    lines = log.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["1", "2"]
    assert xp.jobs[0].retries == 1
    history = list((task.jobpath / ".etude" / "history").glob("*failed.json"))
    assert [json.loads(p.read_text())["reason"] for p in history] == ["timeout"]


def test_pending_forever_is_reported_with_slurm_reason(slurm_cluster, workspace: Path):
    short = launcher(partition=slurm_cluster.short_partition)  # MaxTime 1 min < --time=5
    with pytest.raises(ExperimentFailed, match="error"):
        with experiment(workspace, "xp", launcher=short):
            task = st.Echo.C(value=4, log=workspace / "log.txt").submit()
    record = failure(task)
    assert record["slurm_reason"] == "PartitionTimeLimit"
    assert "PartitionTimeLimit" in record["message"]
    assert "scontrol show partition" in record["message"]
    queued = subprocess.run(
        ["squeue", "-h", "-j", slurm_id(task), "-o", "%T"], capture_output=True, text=True
    )
    assert "PENDING" not in queued.stdout, "etude cancels a job that can never start"


def test_sbatch_refusal_is_a_clear_error(slurm_cluster, workspace: Path):
    with pytest.raises(ExperimentFailed):
        with experiment(workspace, "xp", launcher=launcher(partition="no-such-partition")):
            task = st.Echo.C(value=5, log=workspace / "log.txt").submit()
    message = failure(task)["message"]
    assert "sbatch refused" in message and "partition" in message.lower()


def test_one_squeue_call_per_poll_for_all_jobs(slurm_cluster, workspace: Path, tmp_path: Path):
    calls = tmp_path / "squeue-calls"
    wrapper = tmp_path / "squeue"
    wrapper.write_text(f'#!/bin/bash\necho "$*" >> {calls}\nexec squeue "$@"\n')
    wrapper.chmod(0o755)
    slurm = SlurmLauncher(time=5, poll_interval=(0.5, 0.5), batch_window=0.3)
    slurm.squeue = str(wrapper)
    started = time.monotonic()
    with experiment(workspace, "xp", launcher=slurm):
        for i in range(12):
            st.Echo.C(value=i, log=workspace / "log.txt").submit()
    elapsed = time.monotonic() - started
    lines = calls.read_text().splitlines()
    assert all("--me" in line and "-j" not in line.split() for line in lines)
    assert len(lines) <= elapsed / 0.5 + 2, f"{len(lines)} squeue calls in {elapsed:.1f} s"


@pytest.mark.slow
def test_time_limit_retries_a_resumable_task(slurm_cluster, workspace: Path):
    """Slurm kills at --time=1 (60-90 s here); etude records `timeout` and resubmits."""
    log = workspace / "log.txt"
    with experiment(workspace, "xp", launcher=launcher(time=1)):
        task = st.Checkpointed.C(value=9, graceful=False, log=log).submit(max_retries=1)
    text = log.read_text()
    assert "attempt 1" in text and "cancelled at the limit" in text and "attempt 2" in text
    history = list((task.jobpath / ".etude" / "history").glob("*failed.json"))
    assert [json.loads(p.read_text())["reason"] for p in history] == ["timeout"]


@pytest.mark.parametrize("pending", [False, True], ids=["running", "pending"])
def test_restarted_experiment_reattaches_to_its_slurm_job(
    slurm_cluster, workspace: Path, pending: bool
):
    first = st.start_blocking_experiment(workspace, ["--begin=now+4"] if pending else [])
    process_json = next_process_json(workspace)
    st.wait_until(lambda: process_json() is not None, what="the job to be submitted")
    if not pending:
        st.wait_until((workspace / "started.json").exists, what="the job to start")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    submitted = process_json()["slurm_job_id"]

    with experiment(workspace, "xp", launcher=launcher(batch_window=0.0)) as xp:
        task = st.Blocks.C(
            started=workspace / "started.json", go=workspace / "go", log=workspace / "log.txt"
        ).submit()
        st.wait_until(lambda: xp.jobs[0].state == "running", what="the job to be followed")
        (workspace / "go").write_text("go")
    assert slurm_id(task) == submitted, "the second experiment must not submit again"
    assert (workspace / "log.txt").read_text().count("start") == 1


def next_process_json(workspace: Path):
    def read():
        found = list((workspace / "jobs").glob("*/*/.etude/process.json"))
        return read_json(found[0]) if found else None

    return read


def test_arrays_are_split_at_max_array_size(slurm_cluster, workspace: Path):
    log = workspace / "log.txt"
    with experiment(workspace, "xp", launcher=launcher(max_array_size=2)):
        tasks = [st.Echo.C(value=i, log=log).submit() for i in range(5)]
    arrays = sorted(len((a / "jobs.txt").read_text().split()) for a in
                    (workspace / "slurm-arrays").iterdir())
    assert arrays == [2, 2], "5 jobs, 2 per array: two arrays and one lone job"
    assert sum("_" not in slurm_id(t) for t in tasks) == 1
    assert len(log.read_text().splitlines()) == 5
