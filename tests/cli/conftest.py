"""Fixtures of the command-line tests: a finished demo workspace and a running job."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import DEMO, SLEEPY, RunningJob


@pytest.fixture
def demo(workspace: Path, run_script) -> Path:
    """A workspace after the demo experiment: jobs x0, x1 and b done, x2 failed."""
    result = run_script(DEMO, str(workspace))
    assert "failed: 1 job(s) failed" in result.stdout, result.stdout + result.stderr
    return workspace


@pytest.fixture
def start_sleepy(workspace: Path, tmp_path: Path) -> Iterator[Callable[..., RunningJob]]:
    """Start the Sleepy experiment; its job is stopped at the end of the test."""
    started: list[RunningJob] = []
    script = tmp_path / "sleepy.py"
    script.write_text(textwrap.dedent(SLEEPY))

    def start(*, stubborn: bool = False) -> RunningJob:
        started.append(RunningJob(workspace, script, stubborn=stubborn))
        return started[-1]

    yield start
    for running in started:
        running.stop()
