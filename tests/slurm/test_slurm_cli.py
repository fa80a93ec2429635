"""The command line with Slurm jobs: list shows queued jobs, kill cancels them; and
launchers.yaml sends a job to Slurm when its requirements exceed the local launcher."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
import slurm_tasks as st

from etude import experiment
from etude.cli import main
from etude.launchers import SlurmLauncher
from etude.workspace import read_json


def listed(workspace: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["jobs", "list", "--json", "-w", str(workspace)]) == 0
    return json.loads(capsys.readouterr().out)


def test_queued_slurm_job_is_listed_waiting_then_killed(
    slurm_cluster, workspace: Path, capsys
):
    xp = st.start_blocking_experiment(workspace, ["--begin=now+120"])  # stays pending
    try:
        st.wait_until(lambda: bool(list(workspace.glob("jobs/*/*/.etude/process.json"))),
                   what="the submission")
        st.wait_until(lambda: listed(workspace, capsys)[0]["state"] == "waiting",
                   what="the job listed as waiting")
        row = listed(workspace, capsys)[0]
        assert "BeginTime" in row["message"]
        assert main(["jobs", "kill", row["id"][:8], "-w", str(workspace)]) == 0
        assert "Cancelled" in capsys.readouterr().out
        out, _ = xp.communicate(timeout=60)
    finally:
        xp.kill()
    assert "cancelled" in out or "killed" in out
    assert not (workspace / "log.txt").exists(), "the job never started"


def test_running_slurm_job_is_cancelled_by_jobs_kill(
    slurm_cluster, workspace: Path, capsys
):
    xp = st.start_blocking_experiment(workspace, [])
    try:
        st.wait_until((workspace / "started.json").exists, what="the job to start")
        row = listed(workspace, capsys)[0]
        assert row["state"] == "running"
        # the index knows it as a Slurm job, with Slurm's job id
        assert row["launcher"] == "slurm" and str(row["cluster_job_id"]).isdigit(), row
        assert main(["jobs", "kill", row["id"][:8], "-w", str(workspace)]) == 0
        out, _ = xp.communicate(timeout=60)
    finally:
        xp.kill()
    assert (workspace / "cancelled.txt").read_text() == "TaskCancelled"
    assert listed(workspace, capsys)[0]["reason"] == "cancelled"
    assert "cancelled" in out


def test_launchers_yaml_sends_long_jobs_to_slurm(
    slurm_cluster, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "config"
    (config / "etude").mkdir(parents=True)
    (config / "etude" / "launchers.yaml").write_text(
        "launchers:\n"
        "  - {name: here, type: direct, limits: {duration: 1h}}\n"
        "  - name: cluster\n"
        "    type: slurm\n"
        "    options: {poll_interval: [0.2, 1.0], batch_window: 0.2}\n"
        "    limits: {duration: 1d}\n"
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    log = workspace / "log.txt"
    with experiment(workspace, "xp"):
        short = st.Echo.C(value=1, log=log)
        short.submit(requirements="duration=10m")
        long = st.Echo.C(value=2, log=log)
        long.submit(requirements="duration=4h")
    records = {t.value: read_json(t.jobpath / ".etude" / "process.json") for t in (short, long)}
    assert records[1]["launcher"] == "direct"
    assert records[2]["launcher"] == "slurm" and "--time=240" in records[2]["sbatch"]
    assert "#SBATCH --time=240" in (long.jobpath / "echo.sh").read_text()


def test_slurm_launcher_reports_a_task_killed_without_a_word(slurm_cluster, workspace: Path):
    """SIGKILL inside the job (as the OOM killer would do): recorded `killed`, not running."""
    done = threading.Event()

    def kill_job() -> None:
        st.wait_until((workspace / "started.json").exists, what="the job to start")
        subprocess.run(["kill", "-9", str(_job_pid(workspace))], check=True)
        done.set()

    threading.Thread(target=kill_job, daemon=True).start()
    launcher = SlurmLauncher(time=5, poll_interval=(0.2, 1.0), batch_window=0.0)
    with pytest.raises(Exception, match="killed"):
        with experiment(workspace, "xp", launcher=launcher):
            task = st.Blocks.C(started=workspace / "started.json", go=workspace / "go",
                               log=workspace / "log.txt").submit()
    assert done.is_set()
    record = read_json(task.jobpath / ".etude" / "failed.json")
    assert (record["reason"], record["slurm_state"]) == ("killed", "FAILED")


def _job_pid(workspace: Path) -> int:
    """The job process of this test's workspace (other tests run Blocks jobs at the same time)."""
    import psutil

    folder = str(next(workspace.glob("jobs/*/*")))
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        if proc.info["cwd"] == folder and "blocks.py" in " ".join(proc.info["cmdline"] or ()):
            return proc.pid
    raise AssertionError(f"no job process runs in {folder}")
