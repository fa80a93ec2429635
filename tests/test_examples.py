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
