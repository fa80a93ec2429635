"""The test cluster behaves like the Slurm etude's launcher targets."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from slurm_cluster import Cluster

T = TypeVar("T")
FINAL_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
}  # fmt: skip


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{argv} exited {result.returncode}: {result.stderr}"
    return result.stdout


def sbatch(*args: str) -> str:
    return run("sbatch", "--parsable", *args).strip()


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Call `probe` until it returns something other than None; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finished_states(job_id: str) -> list[str] | None:
    """The states of the job (one per array element) once all are final, else None."""
    states = run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T").split()
    return states if states and FINAL_STATES.issuperset(states) else None


def squeue_status(job_id: str) -> str:
    return run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T %r").strip()


def settled_status(job_id: str) -> str | None:
    """'STATE REASON' once the scheduler has looked at the job, else None."""
    status = squeue_status(job_id)
    # Just submitted, a job pends with reason None or PartitionConfig for up to a second.
    return None if status in ("", "PENDING None", "PENDING PartitionConfig") else status


def test_batch_job_runs_and_writes_its_output(slurm_cluster: Cluster, tmp_path: Path) -> None:
    job_id = sbatch(f"--output={tmp_path}/%j.out", "--wrap", "echo hello from slurm")
    states = wait_for(lambda: finished_states(job_id), f"job {job_id} to finish")
    assert states == ["COMPLETED"]
    assert (tmp_path / f"{job_id}.out").read_text() == "hello from slurm\n"


def test_array_job_runs_every_element(slurm_cluster: Cluster, tmp_path: Path) -> None:
    job_id = sbatch(
        "--array=0-4", f"--output={tmp_path}/%A_%a.out", "--wrap", "echo $SLURM_ARRAY_TASK_ID"
    )
    states = wait_for(lambda: finished_states(job_id), f"array job {job_id} to finish")
    assert states == ["COMPLETED"] * 5
    outputs = {(tmp_path / f"{job_id}_{i}.out").read_text() for i in range(5)}
    assert outputs == {f"{i}\n" for i in range(5)}


def test_usr1_to_the_batch_shell_reaches_its_trap(slurm_cluster: Cluster, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"trap 'echo got USR1 > {tmp_path}/signal; kill $child; exit 0' USR1\n"
        "sleep 120 & child=$!\n"
        f"touch {tmp_path}/started\n"
        "wait $child\n"
    )
    job_id = sbatch(f"--output={tmp_path}/out", str(script))
    started = tmp_path / "started"
    wait_for(lambda: True if started.exists() else None, f"job {job_id} to start")
    run("scancel", "--signal=USR1", "--batch", job_id)
    states = wait_for(lambda: finished_states(job_id), f"job {job_id} to exit on USR1", 30)
    assert states == ["COMPLETED"]
    assert (tmp_path / "signal").read_text() == "got USR1\n"


def test_job_over_the_partition_time_limit_pends_forever(slurm_cluster: Cluster) -> None:
    """etude's tests rely on this to get a job that never starts."""
    job_id = sbatch("-p", slurm_cluster.short_partition, "--time=5", "--wrap", "true")
    try:
        status = wait_for(lambda: settled_status(job_id), f"a pending reason for job {job_id}")
        assert status == "PENDING PartitionTimeLimit"
    finally:
        run("scancel", job_id)
