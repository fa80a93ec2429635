"""`etude experiments list` on workspaces made by running experiment scripts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from etude.workspace import Workspace

from .support import job_ids, run_cli


def _experiments(capsys, workspace: Path) -> dict[str, dict]:
    status, out, err = run_cli(capsys, "experiments", "list", "--json", "-w", workspace)
    assert status == 0, err
    return {row["name"]: row for row in json.loads(out)}


def test_list_json_counts_job_states(demo, capsys):
    row = _experiments(capsys, demo)["demo"]
    assert row["status"] == "ended" and row["problems"] == []
    assert row["jobs"] == 4 and row["states"] == {"done": 3, "error": 1}
    assert row["started"] <= row["ended"]
    assert row["path"] == str(Workspace(demo).experiments / "demo" / "run.json")


def test_list_table(demo, capsys):
    status, out, _ = run_cli(capsys, "experiments", "list", "-w", demo)
    assert status == 0
    line = next(line for line in out.splitlines() if line.split()[:1] == ["demo"])
    assert line.split()[5:] == ["1", "4", "3", "done,", "1", "error"]


def test_list_in_a_real_process(demo):
    result = subprocess.run(
        [sys.executable, "-m", "etude.cli", "experiments", "list", "--json", "-w", str(demo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)] == ["demo"]


def test_a_deleted_job_folder_leaves_the_index(demo, capsys):
    shutil.rmtree(Workspace(demo).find_job(job_ids(demo)["x2"]).path)
    row = _experiments(capsys, demo)["demo"]
    assert row["states"] == {"done": 3} and row["jobs"] == 4  # the run submitted 4


def test_show_lists_runs_and_jobs(demo, capsys, run_script):
    from .support import DEMO

    run_script(DEMO, str(demo))  # a second run: x2 fails again, the rest is reused
    status, out, err = run_cli(capsys, "experiments", "show", "demo", "--json", "-w", demo)
    assert status == 0, err
    data = json.loads(out)
    assert [run["counts"] for run in data["history"]] == [{"done": 3, "error": 1}] * 2
    assert sorted(job["state"] for job in data["job_list"]) == ["done", "done", "done", "error"]
    status, out, _ = run_cli(capsys, "experiments", "show", "demo", "-w", demo)
    assert status == 0 and "run 2:" in out and "xp.Hello" in out
    status, _, err = run_cli(capsys, "experiments", "show", "nope", "-w", demo)
    assert status == 2 and "no experiment named 'nope'" in err and "demo" in err


def test_rebuild_survives_a_corrupt_run_record(demo, capsys):
    """run.json is rewritten while an experiment runs; runs.jsonl keeps every ended run."""
    (demo / "experiments" / "demo" / "run.json").write_text('{"name": "de')
    (demo / "experiments" / "empty").mkdir()
    status, _, _ = run_cli(capsys, "index", "rebuild", "-w", demo)
    assert status == 0
    rows = _experiments(capsys, demo)
    assert set(rows) == {"demo"}
    assert rows["demo"]["status"] == "ended" and rows["demo"]["jobs"] == 4


def test_bad_job_entries_are_skipped_by_rebuild(demo, capsys):
    record_path = demo / "experiments" / "demo" / "runs.jsonl"
    record = json.loads(record_path.read_text())
    record["jobs"] = [*record["jobs"], 42, {"id": "nope", "task": "xp.gone"}]
    record_path.write_text(json.dumps(record) + "\n")
    status, _, _ = run_cli(capsys, "index", "rebuild", "-w", demo)
    assert status == 0
    row = _experiments(capsys, demo)["demo"]
    assert row["states"] == {"done": 3, "error": 1}


def test_running_then_interrupted_experiment(start_sleepy, workspace, capsys):
    running = start_sleepy()
    assert _experiments(capsys, workspace)["sleepy"]["status"] == "running"
    _, out, _ = run_cli(capsys, "experiments", "list", "-w", workspace)
    assert "running" in out
    os.killpg(running.experiment.pid, signal.SIGKILL)  # no chance to record its end
    running.experiment.wait(timeout=60)
    row = _experiments(capsys, workspace)["sleepy"]
    assert row["status"] == "interrupted" and row["ended"] is None


def test_ctrl_c_says_one_line_and_lists_the_experiment_as_interrupted(
    start_sleepy, workspace, capsys
):
    running = start_sleepy()
    running.experiment.send_signal(signal.SIGINT)  # Ctrl-C reaches the experiment's process
    output, _ = running.experiment.communicate(timeout=60)
    assert running.experiment.returncode == -signal.SIGINT, output  # still dies as interrupted
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "experiment 'sleepy' interrupted: 1 job(s) stopped or not started, 0 done" in output
    row = _experiments(capsys, workspace)["sleepy"]
    assert row["status"] == "interrupted" and row["ended"] is not None
    _, out, _ = run_cli(capsys, "experiments", "list", "-w", workspace)
    assert "interrupted" in out
    # The history keeps it: a rebuilt index says the same.
    status, _, err = run_cli(capsys, "index", "rebuild", "-w", workspace)
    assert status == 0, err
    assert _experiments(capsys, workspace)["sleepy"]["status"] == "interrupted"


def test_empty_workspace(workspace, capsys):
    (workspace / "jobs").mkdir()  # what an experiment makes first
    status, out, _ = run_cli(capsys, "experiments", "list", "-w", workspace)
    assert status == 0 and "No experiments" in out
    assert _experiments(capsys, workspace) == {}


def test_a_folder_that_is_no_workspace_is_a_one_line_error_and_stays_untouched(
    workspace, capsys
):
    for command in (["experiments", "list"], ["jobs", "list"], ["index", "rebuild"]):
        status, out, err = run_cli(capsys, *command, "-w", workspace)
        assert status == 2 and out == ""
        assert "is not an etude workspace" in err and err.count("\n") == 1
    assert list(workspace.iterdir()) == [], "no index was created there"
