"""Progress display: a live summary on a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = """
import sys
from etude import Task, Param, experiment

class Step(Task):
    x: Param[int]
    def execute(self):
        if self.x == 2:
            raise ValueError("step two fails")

if __name__ == "__main__":
    with experiment(sys.argv[1], "progress"):
        for x in range(4):
            Step.C(x=x).submit()
"""


def run_in_terminal(script: Path, *args: str) -> tuple[int, str]:
    """Run `script` with its stdout and stderr on a pseudo-terminal; return status and output."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, script, *args], stdout=follower, stderr=follower, stdin=subprocess.DEVNULL
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_terminal_shows_live_summary_and_failures_with_log_path(tmp_path: Path):
    script = tmp_path / "progress.py"
    script.write_text(textwrap.dedent(SCRIPT))
    status, output = run_in_terminal(script, str(tmp_path / "ws"))
    assert status == 1
    assert "\x1b[" in output  # drawn by the live display (terminal control sequences)
    assert "progress.step/" in output and "failed: error: ValueError: step two fails" in output
    assert "step.err" in output
    assert "etude: 3 done, 1 error" in output


def test_without_terminal_prints_plain_lines(tmp_path: Path):
    script = tmp_path / "progress.py"
    script.write_text(textwrap.dedent(SCRIPT))
    result = subprocess.run(
        [sys.executable, script, tmp_path / "ws"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stdout == "", "progress is status: it goes to standard error"
    assert "\x1b[" not in result.stderr
    lines = result.stderr.splitlines()
    done = [line for line in lines if re.search(r" done in \d+\.\ds$", line)]
    assert len(done) == 3, lines  # each with its elapsed time
    assert "etude: 3 done, 1 error" in lines  # the summary, before the ExperimentFailed traceback
