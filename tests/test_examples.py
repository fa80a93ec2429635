"""The examples shipped in examples/ run and do what their docstrings say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_quickstart_trains_evaluates_then_reuses_everything(tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            EXAMPLES / "quickstart.py",
            "--workspace",
            tmp_path / "runs",
            "--lrs",
            "0.01",
            "0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    first, _ = result.stdout.split("== second run")
    summaries = [line for line in result.stderr.splitlines() if line.startswith("etude: 4 done")]
    assert summaries == ["etude: 4 done", "etude: 4 done (4 reused)"], result.stderr
    rows = [line.split() for line in first.splitlines() if line.strip().startswith("0.")]
    assert len(rows) == 2
    mse = {float(r[0]): float(r[1]) for r in rows}
    assert mse[0.1] < mse[0.01]  # a larger step converges further in 200 epochs


def test_track_training_records_and_finds_its_run(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, EXAMPLES / "track_training.py", "--workspace", tmp_path / "runs",
         "--epochs", "20"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    accuracy = float(lines[0].rsplit(" ", 1)[-1])
    assert accuracy > 0.85
    assert lines[1].endswith("after 20 epochs")
    assert lines[2] == "artifacts: ['predictions'], models: ['weights']"
    from etude.tracking import Run

    (run,) = Run.query(workspace=tmp_path / "runs")
    assert run.params["Args/epochs"] == 20 and run.params["model/l2"] == 0.001
    assert [event["kind"] for event in run.events()] == ["table", "matplotlib"]
    assert "git" in run.environment["code"]["kind"] or run.environment["code"]["text"]
