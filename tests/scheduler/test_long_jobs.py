"""Resumable tasks, time limits, retries and cancellation, with real processes and signals."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import long_tasks as lt
import pytest

from etude import ExperimentFailed, experiment
from etude.launchers import DirectLauncher
from etude.workspace import is_locked, read_status

FAST_KILL = DirectLauncher(kill_grace=1.0)


def attempts(task: lt.Training) -> int:
    return json.loads((task.jobpath / "checkpoint.json").read_text())["attempts"]


def test_resumable_task_cut_by_time_limit_resumes_and_finishes(workspace: Path):
    with experiment(workspace, "xp", launcher=FAST_KILL) as xp:
        task = lt.Training.C(epochs=8, epoch_seconds=0.25)
        task.submit(requirements="duration=1s", max_retries=10)
    assert (task.jobpath / "result.txt").read_text() == str(sum(range(1, 9)))
    assert attempts(task) >= 2
    assert xp.jobs[0].retries == attempts(task) - 1
    history = sorted((task.jobpath / ".etude" / "history").glob("*failed.json"))
    assert history and all(json.loads(p.read_text())["reason"] == "timeout" for p in history)
    out = (task.jobpath / "training.out").read_text()
    assert "attempt 1 from epoch 0" in out and "attempt 2 from epoch" in out


def test_graceful_timeout_retries_before_the_kill(workspace: Path):
    with experiment(workspace, "xp", launcher=FAST_KILL):
        task = lt.Training.C(epochs=6, epoch_seconds=0.25, graceful=True)
        task.submit(requirements="duration=1s", max_retries=10)
    assert (task.jobpath / "result.txt").read_text() == str(sum(range(1, 7)))
    assert attempts(task) >= 2
    history = sorted((task.jobpath / ".etude" / "history").glob("*failed.json"))
    messages = [json.loads(p.read_text())["message"] for p in history]
    assert any("not enough for another epoch" in m for m in messages)


def test_retries_stop_at_max_retries(workspace: Path):
    with pytest.raises(ExperimentFailed, match="timeout"):
        with experiment(workspace, "xp", launcher=FAST_KILL):
            task = lt.Training.C(epochs=100, epoch_seconds=0.25)
            task.submit(requirements="duration=0.5s", max_retries=1)
    assert attempts(task) == 2
    status = read_status(next(iter(_job_dirs(workspace))))
    assert (status.state, status.reason) == ("error", "timeout")


def test_plain_task_timing_out_is_not_retried(workspace: Path):
    with pytest.raises(ExperimentFailed, match="timeout"):
        with experiment(workspace, "xp", launcher=FAST_KILL):
            task = lt.Sleeper.C(seconds=30)
            task.submit(requirements="duration=0.5s", max_retries=5)
    record = json.loads((task.jobpath / ".etude" / "failed.json").read_text())
    assert record["reason"] == "timeout"
    assert not (task.jobpath / ".etude" / "history").exists()
    # The task saw TaskCancelled with the grace period before SIGKILL.
    assert json.loads((task.jobpath / "cancelled.json").read_text()) == 1.0


def test_settings_file_gives_the_workspace_max_retries(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    config = tmp_path / "config"
    (config / "etude").mkdir(parents=True)
    (config / "etude" / "settings.yaml").write_text(
        f"workspaces:\n  - id: main\n    path: {workspace}\n    max_retries: 1\n"
        "    env:\n      ETUDE_FROM_SETTINGS: 'yes'\n"
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    with pytest.raises(ExperimentFailed):
        with experiment("main", "xp", launcher=FAST_KILL) as xp:
            task = lt.Training.C(epochs=100, epoch_seconds=0.25)
            task.submit(requirements="duration=0.5s")
    assert xp.workspace.path == workspace
    assert attempts(task) == 2
    assert xp.jobs[0].environ["ETUDE_FROM_SETTINGS"] == "yes"


def test_remaining_time_is_none_without_limit_and_counts_down_with_one(workspace: Path):
    with experiment(workspace, "xp"):
        free = lt.Sleeper.C(seconds=0.0)
        free.submit()
        limited = lt.Sleeper.C(seconds=0.01)
        limited.submit(requirements="duration=1h")
    assert json.loads((free.jobpath / "remaining.json").read_text()) is None
    left = json.loads((limited.jobpath / "remaining.json").read_text())
    assert 3500 < left <= 3600


@pytest.mark.parametrize("swallow", [False, True], ids=["reraised", "swallowed"])
def test_sigterm_records_cancelled_and_releases_the_lock(workspace: Path, swallow: bool):
    task = lt.Sleeper.C(seconds=60, swallow=swallow)

    def cancel_when_started() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            process = task.jobpath / ".etude" / "process.json"
            if (task.jobpath / "started").exists() and process.exists():
                os.kill(json.loads(process.read_text())["pid"], signal.SIGTERM)
                return
            time.sleep(0.02)

    with pytest.raises(ExperimentFailed, match="cancelled"):
        with experiment(workspace, "xp"):
            task.submit()
            threading.Thread(target=cancel_when_started, daemon=True).start()
    status = read_status(next(iter(_job_dirs(workspace))))
    assert (status.state, status.reason) == ("error", "cancelled")
    assert (task.jobpath / "cancelled.json").exists()
    assert not is_locked(task.jobpath / ".etude" / "lock")
    assert not (task.jobpath / ".etude" / "done.json").exists()


def _job_dirs(workspace: Path):
    from etude.workspace import Workspace

    return Workspace(workspace).iter_job_dirs()
