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
    assert line.split()[5:] == ["4", "3", "done,", "1", "error"]


def test_list_in_a_real_process(demo):
    result = subprocess.run(
        [sys.executable, "-m", "etude.cli", "experiments", "list", "--json", "-w", str(demo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)] == ["demo"]


def test_a_deleted_job_folder_counts_as_missing(demo, capsys):
    shutil.rmtree(Workspace(demo).find_job(job_ids(demo)["x2"]).path)
    assert _experiments(capsys, demo)["demo"]["states"] == {"done": 3, "missing": 1}


def test_corrupt_run_record_is_listed_with_its_problem(demo, capsys):
    (demo / "experiments" / "demo" / "run.json").write_text('{"name": "de')
    (demo / "experiments" / "empty").mkdir()
    rows = _experiments(capsys, demo)
    assert rows["demo"]["status"] == "unknown" and rows["demo"]["jobs"] == 0
    assert "run.json: is not valid JSON" in rows["demo"]["problems"][0]
    assert "run.json: missing" in rows["empty"]["problems"][0]
    status, out, _ = run_cli(capsys, "experiments", "list", "-w", demo)
    assert status == 0 and "is not valid JSON" in out.replace("\n", "")


def test_bad_job_entries_are_problems_not_crashes(demo, capsys):
    record_path = demo / "experiments" / "demo" / "run.json"
    record = json.loads(record_path.read_text())
    record["jobs"] = [*record["jobs"], 42]
    record_path.write_text(json.dumps(record))
    row = _experiments(capsys, demo)["demo"]
    assert row["jobs"] == 5 and row["states"]["unknown"] == 1
    assert "jobs[4] names no job" in row["problems"][0]


def test_running_then_interrupted_experiment(start_sleepy, workspace, capsys):
    running = start_sleepy()
    assert _experiments(capsys, workspace)["sleepy"]["status"] == "running"
    _, out, _ = run_cli(capsys, "experiments", "list", "-w", workspace)
    assert "running" in out
    os.killpg(running.experiment.pid, signal.SIGKILL)  # no chance to record its end
    running.experiment.wait(timeout=60)
    row = _experiments(capsys, workspace)["sleepy"]
    assert row["status"] == "interrupted" and row["ended"] is None


def test_empty_workspace(workspace, capsys):
    status, out, _ = run_cli(capsys, "experiments", "list", "-w", workspace)
    assert status == 0 and "No experiments" in out
    assert _experiments(capsys, workspace) == {}
